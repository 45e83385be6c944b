//! A replay fixture: a real Redis, a local store, archiving `orders` partitions and planning
//! and running replays of them in-process.

use std::time::Duration;

use streamtier_archiver::settings::Retention;
use streamtier_archiver::PartitionWorker;
use streamtier_replayer::plan::{build_plan, check_original_targets, resolve_range, SourcePartition};
use streamtier_replayer::{IdRange, Ids, JobRecord, JobState, ReplayLimits, ReplayRequest, Replayer};
use streamtier_schemas::Entry;
use streamtier_tiers::hot::Hot;
use streamtier_tiers::store::{LocalStore, Store};
use tokio_util::sync::CancellationToken;

use crate::harness::archiver::{partition, system_context, test_settings};
use crate::harness::redis::RedisServer;
use crate::harness::s3::S3Sandbox;
use crate::harness::stream::xrange_all;

/// A real Redis and a local store (or S3) for replay tests.
pub struct Fixture {
    pub redis: RedisServer,
    pub hot: Hot,
    /// Holds the local store's directory for the fixture's life.
    pub _dir: tempfile::TempDir,
    pub root: std::path::PathBuf,
    pub store: Store,
}

impl Fixture {
    pub async fn new() -> Fixture {
        let redis = RedisServer::start();
        let hot = redis.hot().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        let store = Store::Local(LocalStore::new(&root).expect("store"));
        Fixture {
            redis,
            hot,
            _dir: dir,
            root,
            store,
        }
    }

    /// The same over a real S3-protocol server.
    pub async fn on_s3(s3: &S3Sandbox) -> Fixture {
        let mut f = Fixture::new().await;
        f.store = s3.store("replay");
        f
    }

    /// Archives `stream` as orders/`p`, keeping the newest `keep` entries in Redis.
    pub async fn archive(&self, p: u32, stream: &str, keep: u64) {
        let ctx = system_context(self.hot.clone(), self.store.clone(), &test_settings(), "t");
        let retention = Retention {
            retain_entries: keep,
            retain_for: Duration::ZERO,
            retain_max_entries: None,
        };
        let mut worker = PartitionWorker::new(ctx, partition("orders", p, stream, retention));
        worker
            .pass(streamtier_archiver::Mode::Flush, None, &CancellationToken::new())
            .await
            .expect("archive");
    }

    pub fn replayer(&self, rate: u64) -> Replayer {
        self.replayer_with(ReplayLimits {
            default_rate: rate,
            max_rate: rate.max(1_000_000),
            batch_entries: 40,
            ..ReplayLimits::default()
        })
    }

    /// A replayer with `limits`.
    pub fn replayer_with(&self, limits: ReplayLimits) -> Replayer {
        Replayer::new(
            self.hot.clone(),
            self.store.clone(),
            limits,
            CancellationToken::new(),
        )
    }

    pub async fn job(
        &self,
        replayer: &Replayer,
        request: ReplayRequest,
        partitions: u32,
    ) -> streamtier_replayer::Result<JobRecord> {
        let sources: Vec<SourcePartition> = (0..partitions)
            .map(|p| SourcePartition {
                partition: p,
                stream: format!("orders:{p}"),
            })
            .collect();
        let range = IdRange::parse(request.from.as_deref(), request.to.as_deref())?;
        let range = resolve_range(&self.hot, range, &sources).await?;
        let rate = request.rate_limit.unwrap_or(replayer.limits().default_rate);
        let plan = build_plan(&request, range, rate, &sources, |_| Ok(()))?;
        check_original_targets(&self.hot, &self.store, &plan).await?;
        replayer.create(&plan).await
    }
}

impl Fixture {
    /// Replays orders/0 with original ids into `restore:0`, and checks that it succeeded and
    /// that the target equals `produced`.
    pub async fn restore_partition_0(&self, produced: &[Entry]) -> JobRecord {
        let replayer = self.replayer(1_000_000);
        let record = self
            .job(&replayer, request("restore:{partition}", Ids::Original), 1)
            .await
            .expect("job");
        let done = replayer.run(record, |_| {}).await.expect("run");
        assert_eq!(done.state, JobState::Succeeded, "{:?}", done.error);
        assert_eq!(
            xrange_all(&mut self.redis.con(), "restore:0"),
            produced,
            "the restored stream differs"
        );
        done
    }
}

/// A replay of `orders` into `target`.
pub fn request(target: &str, ids: Ids) -> ReplayRequest {
    ReplayRequest {
        topic: "orders".into(),
        target: Some(target.into()),
        ids,
        ..ReplayRequest::default()
    }
}
