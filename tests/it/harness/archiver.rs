//! Running the archiver in-process and as the real `streamtier` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use streamtier_archiver::partition::Partition;
use streamtier_archiver::settings::{ArchiveSettings, Retention};
use streamtier_archiver::{Clock, Context, Metrics, SystemClock};
use streamtier_tiers::hot::Hot;
use streamtier_tiers::store::Store;

/// One hourly partition without typed columns.
pub fn partition(topic: &str, p: u32, stream: &str, retention: Retention) -> Partition {
    Partition {
        topic: topic.into(),
        partition: p,
        stream: stream.into(),
        retention,
        columns: Arc::new(Vec::new()),
        span: streamtier_schemas::ObjectSpan::Hour,
    }
}

/// A clock that tests move by hand.
#[derive(Debug, Default)]
pub struct TestClock(pub AtomicU64);

impl TestClock {
    /// A clock showing `ms`.
    pub fn at(ms: u64) -> Arc<TestClock> {
        Arc::new(TestClock(AtomicU64::new(ms)))
    }
}

impl Clock for TestClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Archive settings for tests: small objects so that chains have several links.
pub fn test_settings() -> ArchiveSettings {
    ArchiveSettings {
        max_object_entries: 50,
        poll_interval: "50ms".into(),
        lease_ttl: "2s".into(),
        ..ArchiveSettings::default()
    }
}

/// Retention that keeps nothing once archived.
pub fn keep_nothing() -> Retention {
    Retention {
        retain_entries: 0,
        retain_for: std::time::Duration::ZERO,
        retain_max_entries: None,
    }
}

/// An archiver context over real clients.
pub fn context(
    hot: Hot,
    store: Store,
    settings: &ArchiveSettings,
    clock: Arc<dyn Clock>,
    owner: &str,
) -> Context {
    Context {
        hot,
        store,
        config: Arc::new(settings.check().expect("test settings")),
        clock,
        metrics: Arc::new(Metrics::default()),
        owner: owner.to_string(),
    }
}

/// A context with the system clock.
pub fn system_context(hot: Hot, store: Store, settings: &ArchiveSettings, owner: &str) -> Context {
    context(hot, store, settings, Arc::new(SystemClock), owner)
}

/// The `streamtier` binary built for these tests.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_streamtier"))
}

/// Writes `toml` into `dir/streamtier.toml` and returns its path.
pub fn write_config(dir: &Path, toml: &str) -> PathBuf {
    let path = dir.join("streamtier.toml");
    std::fs::write(&path, toml).expect("write config");
    path
}

/// `streamtier archive --config FILE --once`, with extra environment variables: closed hours and
/// what retention needs.
pub fn archive_once(config: &Path, env: &[(&str, &str)]) -> Output {
    archive_with(&["archive", "--once"], config, env)
}

/// `streamtier archive --config FILE --once --flush`: everything present, open hour included.
pub fn archive_flush(config: &Path, env: &[(&str, &str)]) -> Output {
    archive_with(&["archive", "--once", "--flush"], config, env)
}

fn archive_with(args: &[&str], config: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(binary());
    cmd.args(args).arg("--config").arg(config);
    cmd.env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run streamtier")
}
