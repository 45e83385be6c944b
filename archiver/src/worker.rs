//! The per-partition pipeline: read -> encode -> upload (create-if-absent) -> verify -> trim.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use streamtier_schemas::{layout, EncodeOptions, EntryBatch, ObjectMeta, ObjectSpan, Report, StreamId};
use streamtier_tiers::hot::{Hot, Lease, ReadBatch, StreamInfo};
use streamtier_tiers::store::Store;
use tokio_util::sync::CancellationToken;
use tracing::error;

use crate::chain::{self, Chain};
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::object::ObjectBuilder;
use crate::offsets::{Continuity, Tally};
use crate::partition::Partition;
use crate::pending::{fit, Pending};
use crate::rotation::{self, close_reason, Close, Facts};
use crate::settings::ArchiveConfig;
use crate::{Error, Result};

/// Most entries asked of one `XRANGE`.
const MAX_BATCH_ENTRIES: u64 = 10_000;

/// While entries read ahead are still waiting to be placed, trimming waits at most this long
/// (otherwise it runs after each object whose next one needs a fresh read, and at pass end).
const TRIM_EVERY: Duration = Duration::from_secs(1);

/// What the archiver works with: clients built at the edge, settings, clock and counters.
#[derive(Clone, Debug)]
pub struct Context {
    /// The hot tier.
    pub hot: Hot,
    /// The cold tier.
    pub store: Store,
    /// Checked `[archive]` settings.
    pub config: Arc<ArchiveConfig>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Counters and status.
    pub metrics: Arc<Metrics>,
    /// Unique name of this process, for leases.
    pub owner: String,
}

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassStats {
    /// Entries written into new objects.
    pub entries: u64,
    /// New objects.
    pub objects: u64,
    /// Bytes of new objects.
    pub bytes: u64,
    /// Objects another archiver had written first.
    pub adopted: u64,
    /// Entries trimmed.
    pub trimmed: u64,
    /// Gap records written.
    pub gaps: u64,
    /// Consumer-group snapshots written.
    pub group_snapshots: u64,
}

impl PassStats {
    fn add(&mut self, o: &PassStats) {
        self.entries += o.entries;
        self.objects += o.objects;
        self.bytes += o.bytes;
        self.adopted += o.adopted;
        self.trimmed += o.trimmed;
        self.gaps += o.gaps;
        self.group_snapshots += o.group_snapshots;
    }
}

/// How far a pass goes. Every mode stops at the first object that is not due (see
/// [`crate::rotation`]); they differ in what is due and where the pass ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `--once` (cron): the entries present when the pass starts, in objects that are due:
    /// closed hours, full objects, and what retention or `flush_after` needs.
    Once,
    /// `--once --flush`: every entry present when the pass starts, open hour or not.
    Flush,
    /// The daemon: objects that are due, including entries added while the pass runs.
    Daemon,
}

/// Archives one partition, pass after pass, keeping its chain between passes.
#[derive(Debug)]
pub struct PartitionWorker {
    pub(crate) ctx: Context,
    pub(crate) p: Partition,
    pub(crate) chain: Option<Chain>,
    batch_entries: u64,
    avg_entry_bytes: u64,
    /// The stream's last generated id and since when (clock ms) this worker has seen it.
    newest: Option<(StreamId, u64)>,
    /// Entries read ahead of the object being built; lives within one pass.
    pub(crate) carry: Option<Pending>,
    /// Whether objects were stored since the last trim, and when that trim ran.
    pub(crate) untrimmed: bool,
    pub(crate) trimmed_at: Option<Instant>,
    /// What the last trim removed, and what the last read said about the stream (an idle
    /// pass trims only when that could remove something: see `trim::trim_may_remove`).
    pub(crate) last_trimmed: u64,
    pub(crate) last_info: Option<StreamInfo>,
    /// When the groups were last looked at for a snapshot, and what the last one recorded.
    pub(crate) snapshots: crate::snapshot::Snapshots,
}

pub(crate) enum Built {
    /// An object was stored or adopted; the chain moved.
    Stored,
    /// Nothing is due (or nothing is there).
    Idle,
    /// The chain moved under us (another archiver): start over from the chain end now in
    /// `self.chain` (`None` means: read it from the store first).
    Resync,
}

/// The start of an object that is due.
struct Opened {
    /// The chain end it follows.
    chain: Chain,
    /// The entries read so far, from the object's first.
    pending: Pending,
    /// The stream as it was when they were read.
    info: StreamInfo,
    first: StreamId,
    span: ObjectSpan,
    reason: Close,
}

impl PartitionWorker {
    /// A worker for `p`.
    pub fn new(ctx: Context, p: Partition) -> Self {
        Self {
            ctx,
            p,
            chain: None,
            batch_entries: 100,
            avg_entry_bytes: 1,
            newest: None,
            carry: None,
            untrimmed: false,
            trimmed_at: None,
            last_trimmed: 0,
            last_info: None,
            snapshots: Default::default(),
        }
    }

    /// The partition.
    pub fn partition(&self) -> &Partition {
        &self.p
    }

    pub(crate) fn tier(&self) -> impl Fn(streamtier_tiers::Error) -> Error + '_ {
        crate::chain::tier(&self.p)
    }

    /// Runs one pass; between objects it renews `lease` (once a third of its time has passed)
    /// and stops if it was lost or `shutdown` was requested. The steps of one object are never
    /// interrupted halfway: dropping an unfinished object is safe because trimming only follows
    /// a durable upload.
    ///
    /// # Errors
    /// Any failure of Redis, the store or the encoder; the chain is re-read from the store on
    /// the next pass.
    pub async fn pass(
        &mut self,
        mode: Mode,
        lease: Option<&Lease>,
        shutdown: &CancellationToken,
    ) -> Result<PassStats> {
        let mut stats = PassStats::default();
        self.pass_adding(mode, lease, shutdown, &mut stats)
            .await
            .map(|()| stats)
    }

    /// Runs one pass as [`PartitionWorker::pass`] does and adds what it did to `total`, also
    /// when it fails: a failed pass may have stored objects and trimmed before it failed, and
    /// whoever retries it (`--once`) reports those too.
    ///
    /// # Errors
    /// As [`PartitionWorker::pass`].
    pub async fn pass_adding(
        &mut self,
        mode: Mode,
        lease: Option<&Lease>,
        shutdown: &CancellationToken,
        total: &mut PassStats,
    ) -> Result<()> {
        let mut stats = PassStats::default();
        let result = self.pass_inner(mode, lease, shutdown, &mut stats).await;
        total.add(&stats);
        self.carry = None;
        if result.is_err() {
            // Whatever we believed may be stale now: the store decides again next time.
            self.chain = None;
        }
        let m = &self.ctx.metrics;
        m.update(&self.p.topic, self.p.partition, |s| {
            s.stream = self.p.stream.clone();
            s.archived_id = self.chain.as_ref().map(|c| c.last_id);
            s.last_error = result.as_ref().err().map(|e| Report(e).to_string());
        });
        result
    }

    /// One pass; `stats` (empty at the start) holds what it did so far when it fails.
    async fn pass_inner(
        &mut self,
        mode: Mode,
        lease: Option<&Lease>,
        shutdown: &CancellationToken,
        stats: &mut PassStats,
    ) -> Result<()> {
        let mut end: Option<StreamId> = None;
        let mut started = false;
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            if let Some(lease) = lease {
                if !lease.renew_if_due(&self.ctx.hot).await.map_err(self.tier())? {
                    break;
                }
            }
            if self.chain.is_none() {
                self.carry = None;
                self.chain = Some(chain::resync(&self.ctx.hot, &self.ctx.store, &self.p).await?);
            }
            let built = self.build_object(mode, &mut end, &mut started, stats).await?;
            match built {
                Built::Stored => {
                    // Trim when the next object needs a fresh read anyway, and at least every
                    // TRIM_EVERY while entries read ahead are being placed.
                    let overdue = self.trimmed_at.is_none_or(|at| at.elapsed() >= TRIM_EVERY);
                    if self.carry.is_none() || overdue {
                        stats.trimmed += self.trim().await?;
                    }
                }
                Built::Resync => self.carry = None,
                Built::Idle => break,
            }
        }
        self.carry = None;
        // What was archived since the last trim goes, and retention by time moves on even
        // when nothing new was archived (if the oldest entry may go now).
        if self.untrimmed
            || (stats.objects == 0 && stats.adopted == 0 && self.trim_may_remove(mode == Mode::Daemon))
        {
            stats.trimmed += self.trim().await?;
        }
        stats.group_snapshots += self.snapshot_groups().await?;
        Ok(())
    }

    /// After a daemon pass that stored nothing: `Some(id)` when everything the stream holds is
    /// archived, so that only an entry above `id` (its last generated id) gives the next pass
    /// work; `None` while entries wait for their object (time may close it).
    pub fn quiet(&self) -> Option<StreamId> {
        let chain = self.chain.as_ref()?;
        match &self.last_info {
            None => Some(chain.last_id),
            Some(info) => info
                .last_entry_id
                .is_none_or(|last| last <= chain.last_id)
                .then_some(info.last_generated_id.max(chain.last_id)),
        }
    }

    async fn read(&mut self, after: StreamId, end: Option<StreamId>, count: u64) -> Result<ReadBatch> {
        let batch = self
            .ctx
            .hot
            .read_after(&self.p.stream, after, end, count as usize)
            .await
            .map_err(self.tier())?;
        let m = &self.ctx.metrics;
        Metrics::add(&m.reads, 1);
        Metrics::add(&m.read_entries, batch.entries.len() as u64);
        self.adapt(&batch.entries);
        Ok(batch)
    }

    /// The entries the next object starts with: those left over by the last one, or a read
    /// (of one entry in the daemon, which only looks whether an object is due).
    async fn start(&mut self, mode: Mode, chain: &Chain, end: Option<StreamId>) -> Result<Pending> {
        if let Some(carry) = self.carry.take() {
            return Ok(carry);
        }
        let want = if mode == Mode::Daemon {
            1
        } else {
            self.batch_entries
        };
        self.read(chain.last_id, end, want).await.map(Pending::new)
    }

    /// Reads up to the first entry of the next object and decides whether it is due: `Break`
    /// with what to report when it is not (or the chain moved), else what it starts with.
    async fn open(
        &mut self,
        mode: Mode,
        end: &mut Option<StreamId>,
        started: &mut bool,
    ) -> Result<ControlFlow<Built, Opened>> {
        let chain = self.chain.clone().unwrap_or_else(Chain::empty);
        let pending = self.start(mode, &chain, *end).await?;
        self.last_info.clone_from(&pending.batch.info);
        let Some(info) = pending.batch.info.clone() else {
            return Ok(ControlFlow::Break(Built::Idle));
        };
        if !*started {
            *started = true;
            if mode != Mode::Daemon {
                // Everything present now, nothing added later: the pass ends.
                *end = Some(info.last_entry_id.unwrap_or(StreamId::MIN));
            }
        }
        if let Some(fence) = pending.batch.fence {
            if fence > chain.last_id {
                return self.stale(fence).await.map(ControlFlow::Break);
            }
        }
        if info.last_generated_id < chain.last_id {
            return Err(self.regressed(&chain, "has a last id below the archive"));
        }
        self.note_lag(&info, &chain);
        let Some(first) = pending.first_id() else {
            return Ok(ControlFlow::Break(Built::Idle));
        };
        let now_ms = self.ctx.clock.now_ms();
        let quiet_ms = match mode {
            // One pass has no history: the clock alone closes hours.
            Mode::Once | Mode::Flush => None,
            Mode::Daemon => {
                let since = match self.newest {
                    Some((id, since)) if id == info.last_generated_id => since,
                    _ => {
                        self.newest = Some((info.last_generated_id, now_ms));
                        now_ms
                    }
                };
                Some(now_ms.saturating_sub(since))
            }
        };
        let span = rotation::object_span(self.p.span, chain.last_key.as_deref(), first);
        let facts = Facts {
            first,
            span,
            info: &info,
            archived_offset: chain.last_offset,
            now_ms,
            avg_entry_bytes: self.avg_entry_bytes,
            quiet_ms,
        };
        let flush = mode == Mode::Flush;
        let Some(reason) = close_reason(&self.ctx.config, &self.p.retention, flush, &facts) else {
            return Ok(ControlFlow::Break(Built::Idle));
        };
        Ok(ControlFlow::Continue(Opened {
            chain,
            pending,
            info,
            first,
            span,
            reason,
        }))
    }

    /// Reads, encodes and stores the next object of the chain.
    async fn build_object(
        &mut self,
        mode: Mode,
        end: &mut Option<StreamId>,
        started: &mut bool,
        stats: &mut PassStats,
    ) -> Result<Built> {
        let Opened {
            chain,
            mut pending,
            info,
            first,
            span,
            reason,
        } = match self.open(mode, end, started).await? {
            ControlFlow::Continue(opened) => opened,
            ControlFlow::Break(built) => return Ok(built),
        };
        let key = layout::span_object_key(&self.p.topic, self.p.partition, span, first);
        let options = EncodeOptions {
            zstd_level: self.ctx.config.zstd_level,
            // Checked to fit when the settings were.
            row_group_bytes: usize::try_from(self.ctx.config.row_group_bytes).unwrap_or(usize::MAX),
            ..EncodeOptions::default()
        };
        let mut builder =
            ObjectBuilder::new(&self.p, &self.ctx.store, key.clone(), &self.p.columns, &options).await?;
        let bucket = span.of(first);
        let (max_entries, max_bytes) = (
            self.ctx.config.max_object_entries,
            self.ctx.config.max_object_bytes,
        );
        let (mut count, mut bytes) = (0u64, 0u64);
        let mut tally = Tally {
            last: chain.last_id,
            last_offset: chain.last_offset,
            estimate: chain.estimate,
        };
        loop {
            let info = pending.batch.info.clone().unwrap_or_else(|| info.clone());
            let Some(x1) = pending.first_id() else {
                break;
            };
            let len = pending.len();
            let reached_tail = pending.batch.entries.last_id() == info.last_entry_id;
            let batch_last = pending.batch.entries.last_id().unwrap_or(x1);
            let check = tally.check(&info, x1, batch_last, len, reached_tail);
            match check.continuity {
                Continuity::Contiguous | Continuity::Unknown => {}
                Continuity::Gap { count, last_offset } => {
                    let (after, before) = (check.gap_after, check.gap_before);
                    if self.record_gap(after, before, &info, count, last_offset).await? {
                        stats.gaps += 1;
                    }
                }
                Continuity::Inconsistent => {
                    return Err(self.regressed(&chain, "has fewer entries ever added than the archive holds"));
                }
            }
            let (take, take_bytes) = fit(
                pending.rest(),
                span,
                bucket,
                max_entries - count,
                max_bytes.saturating_sub(bytes),
                count == 0,
            );
            if take == 0 {
                break;
            }
            let piece = pending.take(take);
            let last = piece.last_id().unwrap_or(tally.last);
            tally.advance(&check, take as u64, take == len, last);
            count += take as u64;
            bytes += take_bytes;
            if take < len || reached_tail || Some(last) == *end {
                builder.write(piece).await?;
                break;
            }
            // Redis serves the next batch while this one is encoded.
            let want = self.batch_entries;
            let (written, next) = tokio::join!(builder.write(piece), self.read(last, *end, want));
            written?;
            let next = next?;
            if next.info.is_none() {
                break;
            }
            if next.fence.is_some_and(|f| f > chain.last_id) {
                self.chain = None;
                return Ok(Built::Resync);
            }
            pending = Pending::new(next);
        }
        if pending.len() > 0 {
            // The start of the next object, read with the same snapshot.
            self.carry = Some(pending);
        }
        if count == 0 {
            return Ok(Built::Idle);
        }
        let meta = ObjectMeta {
            topic: self.p.topic.clone(),
            partition: self.p.partition,
            stream: self.p.stream.clone(),
            first_id: first,
            last_id: tally.last,
            entry_count: count,
            last_offset: tally.last_offset,
        };
        let spool = builder.finish(meta.clone()).await?;
        self.store_object(chain, key, spool, meta, reason, tally.estimate, stats)
            .await
    }

    async fn stale(&mut self, fence: StreamId) -> Result<Built> {
        let chain = chain::resync(&self.ctx.hot, &self.ctx.store, &self.p).await?;
        if chain.last_id < fence {
            return Err(Error::ArchiveBehindFence {
                partition: self.p.label(),
                archived: chain.last_id,
                fence,
            });
        }
        self.chain = Some(chain);
        Ok(Built::Resync)
    }

    pub(crate) fn regressed(&self, chain: &Chain, reason: &str) -> Error {
        let e = Error::StreamRegressed {
            partition: self.p.label(),
            stream: self.p.stream.clone(),
            archived: chain.last_id,
            reason: reason.to_string(),
        };
        error!(stream = %self.p.stream, archived = %chain.last_id, "{e}");
        e
    }

    fn note_lag(&self, info: &StreamInfo, chain: &Chain) {
        self.ctx.metrics.update(&self.p.topic, self.p.partition, |s| {
            s.last_entry_id = info.last_entry_id;
            s.unarchived_entries = chain.last_offset.map(|o| info.entries_added.saturating_sub(o));
        });
    }

    /// Sizes the next read so that one reply stays near `read_batch_bytes`.
    fn adapt(&mut self, entries: &EntryBatch) {
        if entries.is_empty() {
            return;
        }
        let total: u64 = entries.iter().map(|e| e.payload_len() as u64).sum();
        let avg = (total / entries.len() as u64).max(1);
        self.avg_entry_bytes = avg;
        self.batch_entries = (self.ctx.config.read_batch_bytes / avg).clamp(1, MAX_BATCH_ENTRIES);
    }
}
