//! Running the archiver: once over everything present (cron), or as a daemon until shutdown.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::balance::Balance;
use crate::partition::{self, Owners, Partition};
use crate::settings::{Retention, Topic};
use crate::watch::Watch;
use crate::worker::{Context, Mode, PartitionWorker, PassStats};
use crate::{Error, Result};
use streamtier_schemas::Report;
use streamtier_tiers::hot::Lease;
use streamtier_tiers::retry;

/// Attempts per partition in `--once` mode before it is reported as failed.
const ONCE_ATTEMPTS: u32 = 5;

/// Which partitions to archive.
#[derive(Clone, Debug)]
pub enum Source {
    /// The configured `[[topics]]`.
    Topics(Vec<Topic>),
    /// Every stream key found by `SCAN`, with these retention rules.
    Discover(Retention),
}

/// The result of archiving one partition in `--once` mode.
#[derive(Clone, Debug)]
pub struct PartitionReport {
    /// The partition.
    pub partition: Partition,
    /// What was done.
    pub stats: PassStats,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// Lists the partitions of `source` now, and the discovered keys skipped with the reason;
/// `owners` keep their slots (see [`partition::discover`]).
///
/// # Errors
/// [`Error::Tier`] when discovery cannot scan Redis.
pub async fn partitions(
    ctx: &Context,
    source: &Source,
    owners: &Owners,
) -> Result<(Vec<Partition>, Vec<(String, String)>)> {
    match source {
        Source::Topics(topics) => Ok((partition::from_topics(topics), Vec::new())),
        Source::Discover(retention) => {
            let keys = ctx.hot.scan_streams().await.map_err(|source| Error::Tier {
                partition: "discovery".into(),
                source,
            })?;
            Ok(partition::discover(&keys, retention, owners))
        }
    }
}

/// One pass over every partition in `mode` ([`Mode::Once`] or [`Mode::Flush`]) over the
/// entries present when it starts, trims, and reports each partition. A failed partition does
/// not stop the others.
///
/// # Errors
/// Only when the partitions cannot be listed; per-partition failures are in the reports.
pub async fn run_once(
    ctx: Context,
    source: &Source,
    mode: Mode,
    shutdown: CancellationToken,
) -> Result<Vec<PartitionReport>> {
    let (parts, skipped) = partitions(&ctx, source, &Owners::new()).await?;
    for (key, reason) in skipped {
        warn!(stream = %key, %reason, "stream key skipped by discovery");
    }
    let concurrency = ctx.config.concurrency;
    let reports = futures::stream::iter(parts.into_iter().map(|p| {
        let ctx = ctx.clone();
        let shutdown = shutdown.clone();
        async move { once_partition(ctx, p, mode, shutdown).await }
    }))
    .buffer_unordered(concurrency)
    .collect::<Vec<_>>()
    .await;
    let mut reports = reports;
    reports.sort_by(|a, b| {
        (&a.partition.topic, a.partition.partition).cmp(&(&b.partition.topic, b.partition.partition))
    });
    Ok(reports)
}

async fn once_partition(
    ctx: Context,
    p: Partition,
    mode: Mode,
    shutdown: CancellationToken,
) -> PartitionReport {
    let lease = Lease::new(&p.stream, &ctx.owner, ctx.config.lease_ttl);
    let mut worker = PartitionWorker::new(ctx.clone(), p.clone());
    let mut stats = PassStats::default();
    let mut error = None;
    // Wait for another archiver's lease to run out rather than work beside it.
    let deadline = tokio::time::Instant::now() + ctx.config.lease_ttl + Duration::from_secs(5);
    loop {
        match lease.acquire(&ctx.hot).await {
            Ok(true) => break,
            Ok(false) if tokio::time::Instant::now() < deadline => {
                if !retry::pause(Duration::from_millis(250), &shutdown).await {
                    break;
                }
            }
            Ok(false) => {
                error = Some("partition is leased by another archiver".to_string());
                break;
            }
            Err(e) => {
                error = Some(Report(&e).to_string());
                break;
            }
        }
    }
    if error.is_none() {
        for attempt in 0..ONCE_ATTEMPTS {
            // What a failed attempt stored and trimmed counts too: the next one goes on
            // from there.
            match worker
                .pass_adding(mode, Some(&lease), &shutdown, &mut stats)
                .await
            {
                Ok(()) => {
                    error = None;
                    break;
                }
                Err(e) => {
                    ctx.metrics.count_error(&e);
                    warn!(stream = %p.stream, error = %Report(&e), attempt, "archiving failed");
                    error = Some(Report(&e).to_string());
                    if matches!(
                        e,
                        Error::StreamRegressed { .. } | Error::ArchiveBehindFence { .. }
                    ) {
                        break;
                    }
                    let wait = retry::backoff(attempt, Duration::from_millis(200), Duration::from_secs(5));
                    if !retry::pause(wait, &shutdown).await {
                        break;
                    }
                }
            }
        }
    }
    if let Err(e) = lease.release(&ctx.hot).await {
        warn!(stream = %p.stream, error = %Report(&e), "could not release lease");
    }
    PartitionReport {
        partition: p,
        stats,
        error,
    }
}

/// Runs until `shutdown`: each partition is looked at every `poll_interval`, archived when an
/// object is due, and trimmed; with discovery, new stream keys are picked up as they appear.
///
/// # Errors
/// Never for a partition's failure (those are retried with backoff); only if the first
/// discovery fails.
pub async fn run(ctx: Context, source: Source, shutdown: CancellationToken) -> Result<()> {
    let tracker = TaskTracker::new();
    let permits = Arc::new(Semaphore::new(ctx.config.concurrency));
    // Slot -> stream: live workers, and owners learnt from the archive itself.
    let owners: Arc<Mutex<Owners>> = Arc::default();
    let running: Arc<Mutex<HashSet<String>>> = Arc::default();
    let watch: Arc<Watch> = Arc::default();
    tracker.spawn(
        watch
            .clone()
            .run(ctx.hot.clone(), ctx.config.poll_interval, shutdown.clone()),
    );
    let balance: Arc<Balance> = Arc::default();
    tracker.spawn(balance.clone().heartbeat(
        ctx.hot.clone(),
        ctx.owner.clone(),
        ctx.config.lease_ttl,
        shutdown.clone(),
    ));
    let discovering = matches!(source, Source::Discover(_));
    let mut warned: HashSet<(String, String)> = HashSet::new();
    let mut first = true;
    loop {
        let known = owners.lock().map(|o| o.clone()).unwrap_or_default();
        match partitions(&ctx, &source, &known).await {
            Ok((parts, skipped)) => {
                for (key, reason) in skipped {
                    if warned.insert((key.clone(), reason.clone())) {
                        warn!(stream = %key, %reason, "stream key skipped by discovery");
                    }
                }
                for p in parts {
                    if !claim(&owners, &running, &p) {
                        continue;
                    }
                    info!(stream = %p.stream, topic = %p.topic, partition = p.partition, "archiving partition");
                    let shared = Shared {
                        owners: owners.clone(),
                        running: running.clone(),
                        watch: watch.clone(),
                        balance: balance.clone(),
                        discovering,
                    };
                    tracker.spawn(daemon_partition(
                        ctx.clone(),
                        p,
                        permits.clone(),
                        shutdown.clone(),
                        shared,
                    ));
                }
                balance.set_partitions(running.lock().map_or(0, |r| r.len()));
            }
            Err(e) if first => return Err(e),
            Err(e) => warn!(error = %Report(&e), "discovery failed; will retry"),
        }
        if first {
            if let Some(every) = ctx.config.compact_interval {
                tracker.spawn(compact_every(
                    ctx.clone(),
                    source.clone(),
                    every,
                    shutdown.clone(),
                ));
            }
        }
        first = false;
        let more = match source {
            // Configured topics do not change while running.
            Source::Topics(_) => {
                shutdown.cancelled().await;
                false
            }
            Source::Discover(_) => retry::pause(ctx.config.discover_interval, &shutdown).await,
        };
        if !more {
            break;
        }
    }
    tracker.close();
    tracker.wait().await;
    Ok(())
}

/// The daemon's background compaction: every `every`, the closed spans of every partition (see
/// [`crate::compact`]); failures are logged and retried at the next turn.
async fn compact_every(ctx: Context, source: Source, every: Duration, shutdown: CancellationToken) {
    while retry::pause(every, &shutdown).await {
        let parts = match partitions(&ctx, &source, &Owners::new()).await {
            Ok((parts, _)) => parts,
            Err(e) => {
                warn!(error = %Report(&e), "compaction: cannot list partitions; will retry");
                continue;
            }
        };
        let opts = crate::compact::CompactOptions::default();
        for r in crate::compact::compact_all(&ctx, parts, &opts, &shutdown).await {
            match r.result {
                Ok(s) if s.written > 0 || s.leftovers > 0 => {
                    info!(stream = %r.partition.stream, merged = s.merged, written = s.written,
                        leftovers = s.leftovers, bytes_before = s.bytes_before, bytes_after = s.bytes_after,
                        "compacted");
                }
                Ok(_) => {}
                Err(e) => {
                    warn!(stream = %r.partition.stream, error = %Report(&e), "compaction failed; will retry")
                }
            }
        }
    }
}

/// What the daemon's workers share: who holds which slot, which streams have a worker, and
/// where quiet partitions wait.
struct Shared {
    owners: Arc<Mutex<Owners>>,
    running: Arc<Mutex<HashSet<String>>>,
    watch: Arc<Watch>,
    balance: Arc<Balance>,
    discovering: bool,
}

/// What a daemon partition does until its next pass.
enum Next {
    /// Sleep this long.
    Pause(Duration),
    /// Everything up to this id is archived: wait in the [`Watch`] for a newer entry (or a
    /// third of the lease's time, to renew it and look at the stream in full).
    Quiet(streamtier_schemas::StreamId),
}

/// Takes `p`'s slot for its stream unless the stream already has a worker or another stream's
/// live worker holds the slot.
fn claim(owners: &Mutex<Owners>, running: &Mutex<HashSet<String>>, p: &Partition) -> bool {
    let (Ok(mut owners), Ok(mut running)) = (owners.lock(), running.lock()) else {
        return false;
    };
    if running.contains(&p.stream) {
        return false;
    }
    let slot = (p.topic.clone(), p.partition);
    if owners
        .get(&slot)
        .is_some_and(|o| *o != p.stream && running.contains(o))
    {
        return false;
    }
    owners.insert(slot, p.stream.clone());
    running.insert(p.stream.clone());
    true
}

async fn daemon_partition(
    ctx: Context,
    p: Partition,
    permits: Arc<Semaphore>,
    shutdown: CancellationToken,
    shared: Shared,
) {
    let lease = Lease::new(&p.stream, &ctx.owner, ctx.config.lease_ttl);
    let mut worker = PartitionWorker::new(ctx.clone(), p.clone());
    let mut failures = 0u32;
    // Whether this task holds its lease (counted in the balance).
    let mut held = false;
    let balance = &shared.balance;
    while !shutdown.is_cancelled() {
        if !held && !balance.may_take() {
            // This daemon holds its share: leave the partition to another one until the share
            // grows (a daemon left, or more partitions), looking again once per lease time.
            balance.wait_for_room(ctx.config.lease_ttl, &shutdown).await;
            continue;
        }
        let wait = {
            let permit = tokio::select! {
                permit = permits.acquire() => permit,
                _ = shutdown.cancelled() => break,
            };
            let Ok(_permit) = permit else { break };
            // One round trip per third of the lease's time, not one per poll.
            let holds = lease.renew_or_wait(&ctx.hot).await;
            match (&holds, held) {
                (Ok(None), false) => balance.took(),
                (Ok(Some(_)), true) => balance.dropped(),
                _ => {}
            }
            held = matches!(holds, Ok(None)) || (held && holds.is_err());
            match holds {
                Ok(None) => match worker.pass(Mode::Daemon, Some(&lease), &shutdown).await {
                    Ok(_) if balance.give_one_up() => {
                        // Over this daemon's share (another one started): hand this partition
                        // over, after a pass, and leave it alone for a while.
                        held = false;
                        if let Err(e) = lease.release(&ctx.hot).await {
                            warn!(stream = %p.stream, error = %Report(&e), "could not release lease");
                        }
                        Next::Pause(ctx.config.lease_ttl / 2)
                    }
                    Ok(stats) => {
                        failures = 0;
                        match worker.quiet() {
                            Some(seen) if stats.objects == 0 && stats.adopted == 0 => Next::Quiet(seen),
                            _ => Next::Pause(ctx.config.poll_interval),
                        }
                    }
                    Err(Error::ForeignChain { owner, .. }) if shared.discovering => {
                        // The archive says which key this slot is: hand it over and stop.
                        warn!(stream = %p.stream, %owner, topic = %p.topic, partition = p.partition,
                            "the archive of this partition belongs to another stream key; leaving it to that key");
                        if let Ok(mut owners) = shared.owners.lock() {
                            owners.insert((p.topic.clone(), p.partition), owner);
                        }
                        break;
                    }
                    Err(e) => {
                        ctx.metrics.count_error(&e);
                        warn!(stream = %p.stream, error = %Report(&e), "archiving failed; backing off");
                        failures += 1;
                        Next::Pause(retry::backoff(
                            failures,
                            ctx.config.poll_interval,
                            Duration::from_secs(60),
                        ))
                    }
                },
                // Another daemon has it: ask again when its lease runs out (it renews before
                // that while it lives), or after a third of the lease's time if that is sooner
                // (it may give the lease up: a daemon over its share does).
                Ok(Some(left)) => Next::Pause(
                    left.min(ctx.config.lease_ttl / 3)
                        + retry::backoff(0, Duration::from_millis(500), Duration::from_secs(1)),
                ),
                Err(e) => {
                    failures += 1;
                    warn!(stream = %p.stream, error = %Report(&e), "lease failed; backing off");
                    Next::Pause(retry::backoff(
                        failures,
                        ctx.config.poll_interval,
                        Duration::from_secs(60),
                    ))
                }
            }
        };
        match wait {
            Next::Pause(wait) => {
                if !retry::pause(wait, &shutdown).await {
                    break;
                }
            }
            Next::Quiet(seen) => {
                let full_look = ctx.config.lease_ttl / 3;
                shared.watch.wait(&p.stream, seen, full_look, &shutdown).await;
            }
        }
    }
    if held {
        balance.dropped();
    }
    if let Err(e) = lease.release(&ctx.hot).await {
        warn!(stream = %p.stream, error = %Report(&e), "could not release lease");
    }
    if let Ok(mut running) = shared.running.lock() {
        running.remove(&p.stream);
    }
}
