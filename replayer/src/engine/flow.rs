//! Flow control: between batches, a replay waits while its target holds more undelivered
//! entries than `max_target_backlog`, while Redis' memory would pass `max_redis_memory`, or
//! while an operator holds the job; it goes on when that is gone. Nothing is written halfway:
//! the wait is before a batch, never inside one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use streamtier_tiers::hot::Pressure;
use tokio_util::sync::CancellationToken;

use super::{poisoned, Replayer, Stop};
use crate::job::{JobRecord, JobState};
use crate::{Error, Result};

/// How often a waiting replay, or one near a bound, reads Redis again.
const LOOK_EVERY: Duration = Duration::from_millis(250);
/// What one written entry is taken to cost Redis beyond the reading: twice its payload and 64
/// bytes (stream nodes, ids, listpack headers), so that the bound holds between readings.
const ENTRY_OVERHEAD: u64 = 64;

/// Why a replay waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PauseReason {
    /// The target holds more entries its groups have not been delivered than allowed.
    TargetBacklog,
    /// Redis' memory would pass the bound.
    RedisMemory,
    /// An operator paused the job.
    Operator,
}

impl PauseReason {
    /// Every reason, in metric order.
    pub const ALL: [PauseReason; 3] = [
        PauseReason::TargetBacklog,
        PauseReason::RedisMemory,
        PauseReason::Operator,
    ];

    /// The name in job records and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            PauseReason::TargetBacklog => "target_backlog",
            PauseReason::RedisMemory => "redis_memory",
            PauseReason::Operator => "operator",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Milliseconds replays spent paused, per [`PauseReason`].
#[derive(Debug, Default)]
pub struct PausedMillis([AtomicU64; 3]);

impl PausedMillis {
    /// Milliseconds paused for `reason`.
    pub fn get(&self, reason: PauseReason) -> u64 {
        self.0[reason.index()].load(Ordering::Relaxed)
    }

    fn add(&self, reason: PauseReason, d: Duration) {
        self.0[reason.index()].fetch_add(d.as_millis() as u64, Ordering::Relaxed);
    }
}

/// The most memory replays may take Redis to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MemoryBound {
    /// No bound.
    Off,
    /// `used_memory` in bytes.
    Bytes(u64),
    /// A share (percent) of `maxmemory`, or of the machine's memory when Redis has none.
    Percent(u64),
}

impl MemoryBound {
    /// Parses `"2GiB"`, `"80%"` or `"off"`.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming `field`.
    pub fn parse(field: &str, text: &str) -> Result<MemoryBound> {
        let t = text.trim();
        let bad = || Error::Invalid {
            field: field.to_owned(),
            reason: format!("`{text}` is neither a size (`2GiB`), a share of maxmemory (`80%`) nor `off`"),
        };
        if t == "off" {
            return Ok(MemoryBound::Off);
        }
        if let Some(p) = t.strip_suffix('%') {
            return match p.trim().parse::<u64>() {
                Ok(p @ 1..=100) => Ok(MemoryBound::Percent(p)),
                _ => Err(bad()),
            };
        }
        match streamtier_schemas::units::size_bytes(t) {
            Some(b) if b > 0 => Ok(MemoryBound::Bytes(b)),
            _ => Err(bad()),
        }
    }

    /// The bound in bytes for a node as `p` saw it.
    pub fn bytes(self, p: &Pressure) -> Option<u64> {
        match self {
            MemoryBound::Off => None,
            MemoryBound::Bytes(b) => Some(b),
            MemoryBound::Percent(pct) => {
                let of = if p.maxmemory > 0 {
                    p.maxmemory
                } else {
                    p.total_system_memory
                };
                (of > 0).then(|| of / 100 * pct)
            }
        }
    }
}

/// One partition's view of the pressure it puts on Redis.
pub(super) struct Flow {
    target: String,
    job: String,
    backlog: Option<u64>,
    memory: MemoryBound,
    /// The last reading, and when.
    read: Option<(Instant, Pressure)>,
    /// Entries and payload bytes written since that reading.
    since: (u64, u64),
    /// Whether an operator holds the job, and when that was looked at.
    held: Option<(Instant, bool)>,
}

impl Flow {
    /// The flow of `job` into `target`: at most `backlog` undelivered entries (none: no bound).
    pub(super) fn new(job: &str, target: &str, backlog: Option<u64>, memory: MemoryBound) -> Flow {
        Flow {
            target: target.to_owned(),
            job: job.to_owned(),
            backlog,
            memory,
            read: None,
            since: (0, 0),
            held: None,
        }
    }

    /// Counts a written batch.
    pub(super) fn wrote(&mut self, entries: u64, bytes: u64) {
        self.since.0 += entries;
        self.since.1 += bytes;
    }

    /// What would stop a batch of `entries` entries and `bytes` payload bytes now, if anything.
    async fn blocked(
        &mut self,
        replayer: &Replayer,
        entries: u64,
        bytes: u64,
    ) -> Result<Option<PauseReason>> {
        let inner = &replayer.inner;
        if self.held.is_none_or(|(at, _)| at.elapsed() >= LOOK_EVERY) {
            let held = inner.jobs.pause_requested(&self.job).await?;
            self.held = Some((Instant::now(), held));
        }
        if self.held.is_some_and(|(_, held)| held) {
            return Ok(Some(PauseReason::Operator));
        }
        if self.backlog.is_none() && self.memory == MemoryBound::Off {
            return Ok(None);
        }
        let stale = self.read.is_none_or(|(at, _)| at.elapsed() >= LOOK_EVERY);
        if stale || self.estimate(entries, bytes).is_some() {
            let p = inner
                .hot
                .pressure(&self.target)
                .await
                .map_err(Error::tier(format!("read the pressure on `{}`", self.target)))?;
            self.read = Some((Instant::now(), p));
            self.since = (0, 0);
        }
        Ok(self.estimate(entries, bytes))
    }

    /// The reason to wait, from the last reading and what was written since.
    fn estimate(&self, entries: u64, bytes: u64) -> Option<PauseReason> {
        let (_, p) = self.read.as_ref()?;
        let (since_entries, since_bytes) = self.since;
        let backlog = p.backlog + since_entries;
        // A batch larger than the bound still goes into an empty backlog.
        if self
            .backlog
            .is_some_and(|max| backlog > 0 && backlog + entries > max)
        {
            return Some(PauseReason::TargetBacklog);
        }
        let cost = 2 * (since_bytes + bytes) + ENTRY_OVERHEAD * (since_entries + entries);
        if self.memory.bytes(p).is_some_and(|max| p.used_memory + cost > max) {
            return Some(PauseReason::RedisMemory);
        }
        None
    }
}

impl Replayer {
    /// Waits until a batch of `entries` entries and `bytes` bytes may be written by partition
    /// `index` of the job in `shared`, showing the job `paused` meanwhile.
    pub(super) async fn hold(
        &self,
        shared: &Arc<Mutex<JobRecord>>,
        index: usize,
        flow: &mut Flow,
        (entries, bytes): (u64, u64),
        token: &CancellationToken,
    ) -> std::result::Result<(), Stop> {
        let mut paused: Option<(PauseReason, Instant)> = None;
        let mut attempt = 0;
        loop {
            let reason = match flow.blocked(self, entries, bytes).await {
                Ok(reason) => reason,
                // Redis may come back: look again after a backoff, as a write would.
                Err(e)
                    if self
                        .retry(&e, &mut attempt, &flow.job, "a look at the pressure", token)
                        .await =>
                {
                    continue;
                }
                Err(e) => return Err(Stop::Failed(e)),
            };
            if let Some((was, since)) = paused {
                if reason != Some(was) {
                    self.inner.metrics.paused.add(was, since.elapsed());
                    paused = None;
                }
            }
            let Some(reason) = reason else {
                self.mark(shared, index, None)?;
                return Ok(());
            };
            if paused.is_none() {
                tracing::info!(job = %flow.job, target = %flow.target, reason = reason.as_str(), "replay paused");
                paused = Some((reason, Instant::now()));
                self.mark(shared, index, Some(reason))?;
            }
            tokio::select! {
                () = tokio::time::sleep(LOOK_EVERY) => {}
                () = token.cancelled() => {
                    if let Some((was, since)) = paused {
                        self.inner.metrics.paused.add(was, since.elapsed());
                    }
                    return Err(if self.inner.shutdown.is_cancelled() { Stop::Shutdown } else { Stop::Cancelled });
                }
            }
            if self.inner.jobs.cancel_requested(&flow.job).await.unwrap_or(false) {
                if let Some((was, since)) = paused {
                    self.inner.metrics.paused.add(was, since.elapsed());
                }
                return Err(Stop::Cancelled);
            }
        }
    }

    /// Records partition `index` as paused for `reason` (or not), and the job as `paused` while
    /// any of its partitions is.
    fn mark(&self, shared: &Arc<Mutex<JobRecord>>, index: usize, reason: Option<PauseReason>) -> Result<()> {
        let mut r = shared.lock().map_err(|_| poisoned())?;
        if r.partitions[index].paused == reason {
            return Ok(());
        }
        r.partitions[index].paused = reason;
        let any = r.partitions.iter().any(|p| p.paused.is_some());
        r.state = if any { JobState::Paused } else { JobState::Running };
        Ok(())
    }
}
