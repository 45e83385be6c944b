//! `streamtier archive` daemons as real processes, and a store and configuration for them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use streamtier_tiers::store::{LocalStore, Store};

use super::archiver::{binary, write_config};
use super::redis::RedisServer;
use super::stream::archived_entries;

/// A `streamtier archive` daemon with its stderr in a file; killed on drop if still running.
pub struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    pub fn start(config: &Path, log: PathBuf) -> Daemon {
        let stderr = std::fs::File::create(&log).expect("create daemon log");
        let child = Command::new(binary())
            .args(["archive", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start daemon");
        Daemon { child, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!("daemon exited early with {status}; its log:\n{}", self.log());
        }
    }

    /// The process id (inside the daemon's owner id, `host-PID-random`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill9(&mut self) {
        self.assert_running();
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }

    /// Sends SIGTERM and waits (at most 15 s) for the process to exit.
    pub async fn terminate(&mut self) -> ExitStatus {
        self.assert_running();
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not stop after SIGTERM; its log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Object keys this daemon logged as created by itself (not adopted).
    pub fn created_objects(&self) -> BTreeSet<String> {
        self.log()
            .lines()
            .filter(|l| l.contains("archived object"))
            .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("object_key=")))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Milliseconds since the Unix epoch, like stream ids.
pub fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).expect("time").as_millis() as u64
}

/// Polls `$done` every 50 ms until it holds; fails after `$secs` seconds, or as soon as one of
/// the daemons exits, with their logs.
#[macro_export]
macro_rules! wait_until {
    ($what:expr, $secs:expr, [$($daemon:expr),+], $done:expr) => {{
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs($secs);
        while !$done {
            $($daemon.assert_running();)+
            if std::time::Instant::now() > deadline {
                let logs = [$($daemon.log()),+].join("\n---\n");
                panic!("timed out after {} s waiting for {}; logs:\n{logs}", $secs, $what);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }};
}

/// Whether each `(topic, partition, n)` has at least `n` entries archived.
pub async fn archived_at_least(store: &Store, want: &[(&str, u32, usize)]) -> bool {
    for (topic, p, n) in want {
        if archived_entries(store, topic, *p).await.len() < *n {
            return false;
        }
    }
    true
}

/// A temporary directory holding a local-directory store and a configuration for `redis`.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub archive: PathBuf,
    pub store: Store,
    pub config: PathBuf,
}

impl Setup {
    pub fn new(redis: &RedisServer, archive_section: &str, topics: &str) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let archive = dir.path().join("archive");
        let store = Store::Local(LocalStore::new(&archive).expect("local store"));
        let toml = format!(
            "[redis]\nurl = \"{}\"\n[store]\nurl = \"{}\"\n[archive]\n{archive_section}\n{topics}",
            redis.url(),
            archive.display()
        );
        let config = write_config(dir.path(), &toml);
        Setup {
            dir,
            archive,
            store,
            config,
        }
    }

    pub fn daemon(&self, name: &str) -> Daemon {
        Daemon::start(&self.config, self.dir.path().join(format!("{name}.log")))
    }
}
