//! Running jobs: a bounded number at once (the rest queue), partitions concurrently within a
//! job, every batch written with its cursor in one script, paced by token buckets.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod adopt;
mod flow;
mod partition;

pub use flow::{MemoryBound, PauseReason, PausedMillis};

use futures::StreamExt;
use streamtier_schemas::Report;
use streamtier_tiers::hot::{Hot, Lease};
use streamtier_tiers::store::Store;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::job::{new_job_id, now_rfc3339, JobRecord, JobState, JobStore, PartitionJob};
use crate::plan::JobPlan;
use crate::rate::TokenBucket;
use crate::{Error, Result};
use adopt::Registered;

/// Default `replay.max_target_backlog`: a replay that nobody consumes stops growing its target
/// at a million entries (about 100 MiB of 100-byte entries) instead of filling Redis.
pub const DEFAULT_MAX_TARGET_BACKLOG: u64 = 1_000_000;
/// Default `replay.max_redis_memory`, in percent of `maxmemory` (of the machine's memory when
/// Redis has none): room is left for the producers, and Redis never refuses their writes
/// because of a replay.
pub const DEFAULT_MAX_REDIS_MEMORY_PERCENT: u64 = 80;

/// Limits of the `[replay]` section, checked.
#[derive(Clone, Debug)]
pub struct ReplayLimits {
    /// Jobs running at once; the rest queue.
    pub max_jobs: usize,
    /// Partitions of one job replayed at once.
    pub partition_concurrency: usize,
    /// Entries per second for a job that does not ask.
    pub default_rate: u64,
    /// Most entries per second for one job, and for all jobs together.
    pub max_rate: u64,
    /// Most entries per write batch.
    pub batch_entries: usize,
    /// Most payload bytes per write batch.
    pub batch_bytes: usize,
    /// Most entries a target's groups may not have been delivered (its length without groups)
    /// before a replay into it waits; `None`: no bound. Restores ignore it (their groups come
    /// last).
    pub max_target_backlog: Option<u64>,
    /// The most memory replays may take Redis to.
    pub max_redis_memory: MemoryBound,
}

impl Default for ReplayLimits {
    fn default() -> Self {
        ReplayLimits {
            max_jobs: 2,
            partition_concurrency: 4,
            default_rate: 20_000,
            max_rate: 200_000,
            batch_entries: 500,
            batch_bytes: 1 << 20,
            max_target_backlog: Some(DEFAULT_MAX_TARGET_BACKLOG),
            max_redis_memory: MemoryBound::Percent(DEFAULT_MAX_REDIS_MEMORY_PERCENT),
        }
    }
}

/// Counters for metrics.
#[derive(Debug, Default)]
pub struct ReplayMetrics {
    /// Entries written by replays.
    pub entries: AtomicU64,
    /// Write scripts run.
    pub batches: AtomicU64,
    /// Retried failures of Redis or the store.
    pub retries: AtomicU64,
    /// Failures of Redis seen by replays (retried or not).
    pub redis_errors: AtomicU64,
    /// Failures of the object store seen by replays (retried or not).
    pub store_errors: AtomicU64,
    /// Objects opened.
    pub objects: AtomicU64,
    /// Bytes fetched from the store.
    pub bytes: AtomicU64,
    /// Time replays waited, per reason.
    pub paused: PausedMillis,
}

/// How long a job's lease lasts without renewal (renewed every second while it runs).
const JOB_LEASE_TTL: Duration = Duration::from_secs(5);

/// Why a partition stopped early.
enum Stop {
    /// Cancelled by request.
    Cancelled,
    /// The process is shutting down: the job stays `running` and resumes at the next start.
    Shutdown,
    /// An error that ends the job.
    Failed(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Failed(e)
    }
}

struct Inner {
    hot: Hot,
    store: Store,
    jobs: JobStore,
    limits: ReplayLimits,
    global: TokenBucket,
    slots: Semaphore,
    shutdown: CancellationToken,
    running: Mutex<HashMap<String, CancellationToken>>,
    tasks: TaskTracker,
    metrics: ReplayMetrics,
    /// Unique per process: the owner of job leases.
    owner: String,
}

/// The replay engine; cheap to clone.
#[derive(Clone)]
pub struct Replayer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Replayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replayer")
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

impl Replayer {
    /// An engine over clients built at the edge; `shutdown` stops every job between batches.
    pub fn new(hot: Hot, store: Store, limits: ReplayLimits, shutdown: CancellationToken) -> Self {
        Replayer {
            inner: Arc::new(Inner {
                jobs: JobStore::new(hot.clone()),
                hot,
                store,
                global: TokenBucket::new(limits.max_rate),
                slots: Semaphore::new(limits.max_jobs.max(1)),
                limits,
                shutdown,
                running: Mutex::new(HashMap::new()),
                tasks: TaskTracker::new(),
                metrics: ReplayMetrics::default(),
                owner: format!("{}-{:08x}", std::process::id(), rand::random::<u32>()),
            }),
        }
    }

    /// The job records.
    pub fn jobs(&self) -> &JobStore {
        &self.inner.jobs
    }

    /// The limits.
    pub fn limits(&self) -> &ReplayLimits {
        &self.inner.limits
    }

    /// The counters.
    pub fn metrics(&self) -> &ReplayMetrics {
        &self.inner.metrics
    }

    /// The hot tier.
    pub fn hot(&self) -> &Hot {
        &self.inner.hot
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Records a new queued job for `plan`.
    ///
    /// # Errors
    /// [`Error::Tier`] when Redis fails.
    pub async fn create(&self, plan: &JobPlan) -> Result<JobRecord> {
        let record = JobRecord {
            id: new_job_id(),
            state: JobState::Queued,
            request: plan.request.clone(),
            range: plan.range,
            rate_limit: plan.rate,
            partitions: plan
                .partitions
                .iter()
                .enumerate()
                .map(|(i, (partition, stream, target))| PartitionJob {
                    partition: *partition,
                    stream: stream.clone(),
                    target: target.clone(),
                    entries_replayed: 0,
                    last_source_id: None,
                    done: false,
                    paused: None,
                    restore: plan.restores.get(i).cloned(),
                })
                .collect(),
            entries_replayed: 0,
            objects_read: 0,
            bytes_read: 0,
            footer_bytes_read: 0,
            error: None,
            created_at: now_rfc3339(),
            started_at: None,
            finished_at: None,
        };
        self.inner.jobs.save(&record).await?;
        Ok(record)
    }

    /// Starts a recorded job in the background (it queues for a slot).
    pub fn spawn(&self, record: JobRecord) {
        let this = self.clone();
        self.inner.tasks.spawn(async move {
            let id = record.id.clone();
            if let Err(e) = this.run(record, |_| {}).await {
                tracing::error!(job = %id, error = %Report(&e), "replay job could not be recorded");
            }
        });
    }

    /// Starts every job left `queued` or `running` by a previous process (and puts it in the
    /// set of unfinished jobs, which records saved by earlier versions are not in).
    ///
    /// # Errors
    /// [`Error::Tier`] when Redis fails.
    pub async fn resume_unfinished(&self) -> Result<usize> {
        let (ids, _) = self.inner.jobs.list(0, u64::MAX / 2).await?;
        let mut resumed = 0;
        for id in ids.into_iter().rev() {
            match self.inner.jobs.get(&id).await {
                Ok(record) if !record.state.is_final() => {
                    tracing::info!(job = %id, "resuming replay job");
                    self.inner.jobs.mark_unfinished(&id, true).await?;
                    self.spawn(record);
                    resumed += 1;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(job = %id, error = %Report(&e), "skipping unreadable job record"),
            }
        }
        Ok(resumed)
    }

    /// Holds a job before its next batches (`hold`), or lets a held job go on; a job that has
    /// ended is answered as it is.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Tier`].
    pub async fn pause(&self, id: &str, hold: bool) -> Result<JobRecord> {
        let record = self.inner.jobs.get(id).await?;
        if !record.state.is_final() {
            self.inner.jobs.request_pause(id, hold).await?;
        }
        Ok(record)
    }

    /// Asks a job to stop between batches; a queued job stops before it starts.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Tier`].
    pub async fn cancel(&self, id: &str) -> Result<JobRecord> {
        let record = self.inner.jobs.get(id).await?;
        if record.state.is_final() {
            return Ok(record);
        }
        self.inner.jobs.request_cancel(id).await?;
        if let Some(token) = self.inner.running.lock().map_err(|_| poisoned())?.get(id) {
            token.cancel();
        }
        Ok(record)
    }

    /// Waits until every job task has stopped (after `shutdown` was cancelled).
    pub async fn wait_stopped(&self) {
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }

    /// Runs a recorded job to its end in this task, calling `progress` after every batch. A
    /// job this process already runs (or waits on) is not run twice: its record is answered.
    ///
    /// # Errors
    /// [`Error::Tier`] when the job record cannot be written; the job's own failure is in the
    /// returned record's `error`.
    pub async fn run(
        &self,
        record: JobRecord,
        progress: impl Fn(&JobRecord) + Send + Sync,
    ) -> Result<JobRecord> {
        let Some(registered) = self.register(&record.id)? else {
            return self.inner.jobs.get(&record.id).await;
        };
        self.run_registered(record, &registered, progress).await
    }

    async fn run_registered(
        &self,
        record: JobRecord,
        registered: &Registered,
        progress: impl Fn(&JobRecord) + Send + Sync,
    ) -> Result<JobRecord> {
        let inner = &self.inner;
        let token = registered.token.clone();
        // One runner per job: several servers resume the same unfinished jobs, and a lease
        // keeps all but one waiting. (Exactly-once does not depend on it: the cursor check in
        // the write script stops a second runner.) A job holds a slot only while it runs.
        let lease = self.job_lease(&record.id);
        loop {
            let permit = tokio::select! {
                permit = inner.slots.acquire() => permit.map_err(|_| poisoned())?,
                () = token.cancelled() => return self.stop_waiting(record, &lease, &token).await,
            };
            if lease
                .acquire(&inner.hot)
                .await
                .map_err(Error::tier("job lease"))?
            {
                let result = self.run_leased(record, &lease, &token, progress).await;
                drop(permit);
                if let Err(e) = lease.release(&inner.hot).await {
                    tracing::warn!(error = %Report(&e), "could not release a job lease");
                }
                return result;
            }
            drop(permit);
            let current = inner.jobs.get(&record.id).await?;
            if current.state.is_final() {
                return Ok(current);
            }
            tokio::select! {
                () = tokio::time::sleep(JOB_LEASE_TTL / 2) => {}
                () = token.cancelled() => return self.stop_waiting(record, &lease, &token).await,
            }
        }
    }

    /// Stops a job that is waiting (for a slot or for another runner's lease) without having
    /// run here. On shutdown nothing is written: the next start resumes the job. On a cancel
    /// request the job is marked cancelled only if no other runner holds it (that runner sees
    /// the request itself).
    async fn stop_waiting(
        &self,
        record: JobRecord,
        lease: &Lease,
        token: &CancellationToken,
    ) -> Result<JobRecord> {
        let inner = &self.inner;
        if inner.shutdown.is_cancelled() {
            return Ok(record);
        }
        if !lease
            .acquire(&inner.hot)
            .await
            .map_err(Error::tier("job lease"))?
        {
            return Ok(record);
        }
        let current = inner.jobs.get(&record.id).await.unwrap_or(record);
        let result = if current.state.is_final() {
            Ok(current)
        } else {
            self.finish(current, Stop::Cancelled, token).await
        };
        if let Err(e) = lease.release(&inner.hot).await {
            tracing::warn!(error = %Report(&e), "could not release a job lease");
        }
        result
    }

    async fn run_leased(
        &self,
        mut record: JobRecord,
        lease: &Lease,
        token: &CancellationToken,
        progress: impl Fn(&JobRecord) + Send + Sync,
    ) -> Result<JobRecord> {
        let inner = &self.inner;
        let token = token.clone();
        // The record may have moved on while this runner waited for the lease.
        if let Ok(current) = inner.jobs.get(&record.id).await {
            if current.state.is_final() {
                return Ok(current);
            }
            record = current;
        }
        if inner.jobs.cancel_requested(&record.id).await? {
            return self.finish(record, Stop::Cancelled, &token).await;
        }
        record.state = JobState::Running;
        let shared = Arc::new(Mutex::new(record.clone()));
        let job_rate = TokenBucket::new(record.rate_limit);
        let todo: Vec<usize> = (0..record.partitions.len())
            .filter(|i| !record.partitions[*i].done)
            .collect();
        let lost = Arc::new(AtomicBool::new(false));
        // Stops the saver between saves, so that no progress save can land after the final one.
        let stop_saver = CancellationToken::new();
        let mut saver = {
            let (shared, jobs, token) = (shared.clone(), inner.jobs.clone(), token.clone());
            let stop = stop_saver.clone();
            let (lease, hot, lost) = (lease.clone(), inner.hot.clone(), lost.clone());
            AbortOnDrop(tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        () = token.cancelled() => return,
                        () = stop.cancelled() => return,
                    }
                    if let Ok(false) = lease.acquire(&hot).await {
                        // Paused past the lease: another runner may have the job now.
                        lost.store(true, Ordering::SeqCst);
                        token.cancel();
                        return;
                    }
                    let snapshot = shared.lock().map(|r| r.clone()).ok();
                    if let Some(snapshot) = snapshot {
                        if let Err(e) = jobs.save(&snapshot).await {
                            tracing::warn!(job = %snapshot.id, error = %Report(&e), "could not save progress");
                        }
                    }
                }
            }))
        };
        let results: Vec<std::result::Result<(), Stop>> = futures::stream::iter(todo)
            .map(|i| {
                let (shared, job_rate, token, progress) = (&shared, &job_rate, &token, &progress);
                async move {
                    let result = self.run_partition(shared, i, job_rate, token, progress).await;
                    if matches!(result, Err(Stop::Failed(_))) {
                        // Stop the sibling partitions: the job has failed.
                        token.cancel();
                    }
                    result
                }
            })
            .buffer_unordered(inner.limits.partition_concurrency.max(1))
            .collect()
            .await;
        let outcome =
            results
                .into_iter()
                .filter_map(std::result::Result::err)
                .fold(None, |acc, stop| match (acc, stop) {
                    (Some(Stop::Failed(e)), _) | (_, Stop::Failed(e)) => Some(Stop::Failed(e)),
                    (Some(Stop::Cancelled), _) | (_, Stop::Cancelled) => Some(Stop::Cancelled),
                    _ => Some(Stop::Shutdown),
                });
        stop_saver.cancel();
        let _ = (&mut saver.0).await;
        drop(saver);
        let record = shared.lock().map_err(|_| poisoned())?.clone();
        let preempted = matches!(outcome, Some(Stop::Failed(Error::Preempted { .. })));
        if lost.load(Ordering::SeqCst) || preempted {
            // Another runner owns the job now: its record is theirs to write.
            tracing::warn!(job = %record.id, "lost the job to another runner; stopping here");
            return Ok(record);
        }
        match outcome {
            None => {
                let mut record = record;
                record.state = JobState::Succeeded;
                record.finished_at = Some(now_rfc3339());
                inner.jobs.save(&record).await?;
                progress(&record);
                Ok(record)
            }
            Some(stop) => self.finish(record, stop, &token).await,
        }
    }

    async fn finish(
        &self,
        mut record: JobRecord,
        stop: Stop,
        token: &CancellationToken,
    ) -> Result<JobRecord> {
        match stop {
            Stop::Shutdown if self.inner.shutdown.is_cancelled() => {
                // Stays queued or running: the next start resumes it.
                self.inner.jobs.save(&record).await?;
                return Ok(record);
            }
            Stop::Shutdown | Stop::Cancelled => {
                token.cancel();
                record.state = JobState::Cancelled;
            }
            Stop::Failed(e) => {
                tracing::error!(job = %record.id, error = %Report(&e), "replay job failed");
                record.state = JobState::Failed;
                record.error = Some(Report(&e).to_string());
            }
        }
        record.finished_at = Some(now_rfc3339());
        self.inner.jobs.save(&record).await?;
        Ok(record)
    }
}

/// Aborts a background task when its owner goes away (also when the owner's future is dropped).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn poisoned() -> Error {
    Error::BadRecord {
        job: String::new(),
        reason: "internal lock poisoned".into(),
    }
}
