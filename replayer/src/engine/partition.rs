//! One partition of a running job: read from the source, pace, write each batch with its
//! cursor, retry what may go away by itself.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use streamtier_schemas::{Entry, Report, StreamId};
use streamtier_tiers::hot::{IdMode, ReplayBatch, ReplayWrite, RestoredGroups};
use streamtier_tiers::retry;
use streamtier_tiers::ErrorKind;
use tokio_util::sync::CancellationToken;

use super::flow::Flow;
use super::{poisoned, ReplayMetrics, Replayer, Stop};
use crate::filter::Filter;
use crate::job::{Ids, JobRecord};
use crate::rate::TokenBucket;
use crate::restore::Restoring;
use crate::source::PartitionSource;
use crate::Error;

/// The Redis or store error behind a replay error, if a dependency failed (also when the
/// Parquet reader wrapped it while fetching an object's bytes).
fn tier_cause(e: &Error) -> Option<&streamtier_tiers::Error> {
    match e {
        Error::Tier { source, .. } => Some(source),
        Error::BadObject { source, .. } => {
            let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
            while let Some(c) = cause {
                if let Some(t) = c.downcast_ref::<streamtier_tiers::Error>() {
                    return Some(t);
                }
                if let Some(parquet::errors::ParquetError::External(inner)) = c.downcast_ref() {
                    if let Some(t) = inner.downcast_ref::<streamtier_tiers::Error>() {
                        return Some(t);
                    }
                }
                cause = c.source();
            }
            None
        }
        _ => None,
    }
}

impl ReplayMetrics {
    fn count_error(&self, e: &Error) {
        match tier_cause(e).and_then(streamtier_tiers::Error::dependency) {
            Some(streamtier_tiers::Dependency::Redis) => self.redis_errors.fetch_add(1, Ordering::Relaxed),
            Some(streamtier_tiers::Dependency::Store) => self.store_errors.fetch_add(1, Ordering::Relaxed),
            None => 0,
        };
    }
}

/// Answers whether an error may go away by itself (Redis or the store unavailable).
pub(crate) fn retryable(e: &Error) -> bool {
    tier_cause(e).is_some_and(|t| t.kind() == ErrorKind::Unavailable)
}

const MAX_ATTEMPTS: u32 = 8;

/// The wait before retry number `attempt` of a read or a write: 100 ms doubling, at most 6.4 s.
fn backoff(attempt: u32) -> Duration {
    retry::backoff(attempt, Duration::from_millis(100), Duration::from_millis(6_400))
}

/// Cuts `entries` into write batches.
fn chunks(entries: &[Entry], max_entries: usize, max_bytes: usize) -> Vec<&[Entry]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, e) in entries.iter().enumerate() {
        let len = e.payload_len();
        if i > start && (i - start >= max_entries || bytes + len > max_bytes) {
            out.push(&entries[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += len;
    }
    if start < entries.len() {
        out.push(&entries[start..]);
    }
    out
}

impl Replayer {
    pub(super) async fn run_partition(
        &self,
        shared: &Arc<Mutex<JobRecord>>,
        index: usize,
        job_rate: &TokenBucket,
        token: &CancellationToken,
        progress: &(impl Fn(&JobRecord) + Send + Sync),
    ) -> std::result::Result<(), Stop> {
        let inner = &self.inner;
        let (id, topic, range, ids, origin, part, max_backlog, request_filter) = {
            let r = shared.lock().map_err(|_| Stop::Failed(poisoned()))?;
            (
                r.id.clone(),
                r.request.topic.clone(),
                r.range,
                r.request.ids,
                r.request.origin_field.clone(),
                r.partitions[index].clone(),
                r.request.max_target_backlog,
                r.request.filter.clone(),
            )
        };
        let mode = match ids {
            Ids::New => IdMode::New,
            Ids::Original => IdMode::Original,
        };
        let filter = match request_filter.as_deref().map(Filter::parse).transpose() {
            Ok(f) => f,
            Err(e) => return Err(Stop::Failed(e)),
        };
        // A restore reads its own range and writes only the entries its snapshot calls for.
        let range = part.restore.as_ref().map_or(range, |r| r.range);
        let restoring = match &part.restore {
            Some(plan) => Some(Restoring::load(&inner.store, plan).await.map_err(Stop::Failed)?),
            None => None,
        };
        // A restore's target has no groups until its last step: only memory bounds it.
        let backlog = match (&part.restore, max_backlog) {
            (Some(_), _) | (_, Some(0)) => None,
            (None, Some(n)) => Some(n),
            (None, None) => inner.limits.max_target_backlog,
        };
        let mut flow = Flow::new(&id, &part.target, backlog, inner.limits.max_redis_memory);
        let origin_prefix = format!("{}/", part.stream);
        let origin = origin.as_deref().map(|f| (f, origin_prefix.as_str()));
        let mut attempt = 0u32;
        'resume: loop {
            let (mut cursor, total) = inner
                .hot
                .replay_cursor(&part.target, &id)
                .await
                .map_err(Error::tier(format!("read cursor of `{}`", part.target)))?;
            self.update(shared, index, total, cursor, false);
            let mut source = PartitionSource::new(
                inner.hot.clone(),
                inner.store.clone(),
                &topic,
                part.partition,
                &part.stream,
                range,
                cursor,
            )
            .skipping_for(filter.clone());
            let mut seen = source.stats;
            let mut last_cancel_check = tokio::time::Instant::now();
            // Entries read but not written yet: batches are cut across the source's reads, so
            // that every write but the last carries a full batch.
            let mut pending: Vec<Entry> = Vec::new();
            let mut ended = false;
            let mut failed = None;
            // The last source id read (before any filter), this run.
            let mut last_read: Option<StreamId> = None;
            while !(ended && pending.is_empty()) {
                if token.is_cancelled() {
                    return Err(if inner.shutdown.is_cancelled() {
                        Stop::Shutdown
                    } else {
                        Stop::Cancelled
                    });
                }
                if last_cancel_check.elapsed() >= Duration::from_millis(250) {
                    last_cancel_check = tokio::time::Instant::now();
                    if inner.jobs.cancel_requested(&id).await.unwrap_or(false) {
                        return Err(Stop::Cancelled);
                    }
                }
                if !ended {
                    let next = source.next_batch().await;
                    let delta = (
                        source.stats.objects_read - seen.objects_read,
                        source.stats.bytes_read - seen.bytes_read,
                        source.stats.footer_bytes - seen.footer_bytes,
                    );
                    seen = source.stats;
                    self.count_reads(shared, delta);
                    // Entries a filter or a restore leaves out are done too: when a whole read
                    // is left out and nothing waits to be written, the cursor moves past it.
                    let mut left_out_to = None;
                    let next = next.map(|batch| {
                        batch.map(|mut entries| {
                            let read_last = entries.last().map(|e| e.id);
                            last_read = read_last.or(last_read);
                            entries.retain(|e| {
                                restoring.as_ref().is_none_or(|r| r.keeps(e.id))
                                    && filter.as_ref().is_none_or(|f| f.matches(e))
                            });
                            if entries.is_empty() {
                                left_out_to = read_last;
                            }
                            entries
                        })
                    });
                    match next {
                        Ok(Some(entries)) if pending.is_empty() => pending = entries,
                        Ok(Some(entries)) => pending.extend(entries),
                        Ok(None) => ended = true,
                        // A cancel or shutdown during the wait is seen at the loop's top.
                        Err(e) if self.retry(&e, &mut attempt, &id, "a replay read", token).await => {
                            continue 'resume;
                        }
                        Err(e) => {
                            // What was read before the failure is proven: write it first, so
                            // the error's last entry written is the source's cursor.
                            inner.metrics.count_error(&e);
                            failed = Some(e);
                            ended = true;
                        }
                    }
                    let past = left_out_to.filter(|t| pending.is_empty() && cursor.is_none_or(|c| *t > c));
                    if let Some(through) = past {
                        self.move_cursor(
                            shared,
                            index,
                            (&id, &part.target),
                            &mut cursor,
                            through,
                            &mut attempt,
                            token,
                        )
                        .await?;
                    }
                }
                let mut batches = chunks(&pending, inner.limits.batch_entries, inner.limits.batch_bytes);
                if !ended {
                    // The last batch may grow with the next read.
                    batches.pop();
                }
                let mut written = 0;
                for chunk in batches {
                    let n = chunk.len() as u64;
                    let bytes: u64 = chunk.iter().map(|e| e.payload_len() as u64).sum();
                    self.hold(shared, index, &mut flow, (n, bytes), token).await?;
                    tokio::select! {
                        () = async { job_rate.acquire(n).await; inner.global.acquire(n).await; } => {}
                        () = token.cancelled() => {
                            return Err(if inner.shutdown.is_cancelled() { Stop::Shutdown } else { Stop::Cancelled });
                        }
                    }
                    let last = chunk[chunk.len() - 1].id;
                    let total = self
                        .write(
                            &id,
                            &part.target,
                            cursor,
                            chunk,
                            mode,
                            origin,
                            &mut attempt,
                            token,
                            None,
                        )
                        .await?;
                    cursor = Some(last);
                    flow.wrote(n, bytes);
                    written += chunk.len();
                    attempt = 0;
                    self.update(shared, index, total, cursor, false);
                    if let Ok(r) = shared.lock() {
                        progress(&r);
                    }
                }
                pending.drain(..written);
            }
            if let Some(e) = failed {
                return Err(Stop::Failed(e));
            }
            // What a filter left out after the last entry written is done too.
            if let Some(through) = last_read.filter(|t| cursor.is_none_or(|c| *t > c)) {
                self.move_cursor(
                    shared,
                    index,
                    (&id, &part.target),
                    &mut cursor,
                    through,
                    &mut attempt,
                    token,
                )
                .await?;
            }
            if let (Some(r), Some(plan)) = (&restoring, &part.restore) {
                match r.finish(&inner.hot, &id, &part.target, plan).await {
                    Ok(done) => self.restored(shared, index, done, r.groups()),
                    Err(e)
                        if self
                            .retry(&e, &mut attempt, &id, "a restore's groups", token)
                            .await =>
                    {
                        continue 'resume;
                    }
                    Err(e) => return Err(Stop::Failed(e)),
                }
            }
            let total = shared
                .lock()
                .map(|r| r.partitions[index].entries_replayed)
                .unwrap_or(0);
            self.update(shared, index, total, cursor, true);
            return Ok(());
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn write(
        &self,
        job: &str,
        target: &str,
        expected: Option<StreamId>,
        chunk: &[Entry],
        ids: IdMode,
        origin: Option<(&str, &str)>,
        attempt: &mut u32,
        token: &CancellationToken,
        through: Option<StreamId>,
    ) -> std::result::Result<u64, Stop> {
        let Some(last) = through.or(chunk.last().map(|e| e.id)) else {
            return Err(Stop::Failed(Error::Invalid {
                field: "batch".into(),
                reason: "an empty batch moves no cursor".into(),
            }));
        };
        let batch = ReplayBatch {
            target,
            job,
            expected,
            entries: chunk,
            ids,
            origin,
            through,
        };
        loop {
            match self.inner.hot.write_replay_batch(&batch).await {
                Ok(ReplayWrite::Written { total }) => {
                    self.inner
                        .metrics
                        .entries
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    self.inner.metrics.batches.fetch_add(1, Ordering::Relaxed);
                    return Ok(total);
                }
                // A retry after a lost reply: the first attempt landed.
                Ok(ReplayWrite::CursorMoved { cursor, total }) if *attempt > 0 && cursor == Some(last) => {
                    self.inner
                        .metrics
                        .entries
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    return Ok(total);
                }
                Ok(ReplayWrite::CursorMoved { .. }) => {
                    return Err(Stop::Failed(Error::Preempted {
                        job: job.to_string(),
                        target: target.to_string(),
                    }))
                }
                Ok(ReplayWrite::IdConflict { target_last }) => {
                    return Err(Stop::Failed(Error::Conflict {
                        target: target.to_string(),
                        target_last,
                        first: chunk[0].id,
                    }))
                }
                Err(e) if e.kind() == ErrorKind::Unavailable && *attempt < MAX_ATTEMPTS => {
                    self.inner.metrics.redis_errors.fetch_add(1, Ordering::Relaxed);
                    *attempt += 1;
                    self.inner.metrics.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(job, target, attempt = *attempt, error = %Report(&e), "retrying replay write");
                    if !retry::pause(backoff(*attempt), token).await {
                        // Whether the last attempt landed or not, the target's cursor says so.
                        return Err(if self.inner.shutdown.is_cancelled() {
                            Stop::Shutdown
                        } else {
                            Stop::Cancelled
                        });
                    }
                }
                Err(e) => {
                    // Permanent (a target that is no stream, refused credentials) or out of
                    // attempts: the job fails now, with the reason.
                    self.inner.metrics.redis_errors.fetch_add(1, Ordering::Relaxed);
                    return Err(Stop::Failed(Error::Tier {
                        context: format!("write `{target}`"),
                        source: e,
                    }));
                }
            }
        }
    }

    /// Moves the job's cursor on its target to `through` without writing: the entries up to it
    /// were left out (a filter, a restore's window).
    #[allow(clippy::too_many_arguments)]
    async fn move_cursor(
        &self,
        shared: &Arc<Mutex<JobRecord>>,
        index: usize,
        (job, target): (&str, &str),
        cursor: &mut Option<StreamId>,
        through: StreamId,
        attempt: &mut u32,
        token: &CancellationToken,
    ) -> std::result::Result<(), Stop> {
        let total = self
            .write(
                job,
                target,
                *cursor,
                &[],
                IdMode::New,
                None,
                attempt,
                token,
                Some(through),
            )
            .await?;
        *cursor = Some(through);
        *attempt = 0;
        self.update(shared, index, total, *cursor, false);
        Ok(())
    }

    /// When `e` may go away by itself and attempts are left: counts it, waits the backoff (cut
    /// short by `token`) and answers true.
    pub(super) async fn retry(
        &self,
        e: &Error,
        attempt: &mut u32,
        job: &str,
        what: &str,
        token: &CancellationToken,
    ) -> bool {
        if !retryable(e) || *attempt >= MAX_ATTEMPTS {
            return false;
        }
        let metrics = &self.inner.metrics;
        metrics.count_error(e);
        *attempt += 1;
        metrics.retries.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(job, attempt = *attempt, error = %Report(e), "retrying {what}");
        retry::pause(backoff(*attempt), token).await;
        true
    }

    /// Records what a restore's last step did.
    fn restored(
        &self,
        shared: &Arc<Mutex<JobRecord>>,
        index: usize,
        done: Option<RestoredGroups>,
        groups: u64,
    ) {
        let Ok(mut r) = shared.lock() else { return };
        let Some(plan) = r.partitions[index].restore.as_mut() else {
            return;
        };
        match done {
            Some(d) if !d.already_done => {
                plan.groups_restored = Some(d.groups);
                plan.pending_restored = d.pending;
                plan.pending_missing = d.missing;
            }
            // Done by an earlier run of the job (the step is all or nothing: every group).
            Some(_) => {
                plan.groups_restored.get_or_insert(groups);
            }
            None => {}
        }
    }

    fn update(
        &self,
        shared: &Arc<Mutex<JobRecord>>,
        index: usize,
        total: u64,
        cursor: Option<StreamId>,
        done: bool,
    ) {
        if let Ok(mut r) = shared.lock() {
            let p = &mut r.partitions[index];
            p.entries_replayed = total;
            p.last_source_id = cursor.map(|c| c.to_string());
            p.done = done;
            r.entries_replayed = r.partitions.iter().map(|p| p.entries_replayed).sum();
        }
    }

    fn count_reads(&self, shared: &Arc<Mutex<JobRecord>>, (objects, bytes, footers): (u64, u64, u64)) {
        if objects == 0 && bytes == 0 {
            return;
        }
        self.inner.metrics.objects.fetch_add(objects, Ordering::Relaxed);
        self.inner.metrics.bytes.fetch_add(bytes, Ordering::Relaxed);
        if let Ok(mut r) = shared.lock() {
            r.objects_read += objects;
            r.bytes_read += bytes;
            r.footer_bytes_read += footers;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn chunks_respect_both_limits() {
        let e = |i: u64, len: usize| {
            Entry::new(
                StreamId::new(i, 0),
                vec![(Bytes::new(), Bytes::from(vec![0; len]))],
            )
        };
        let entries: Vec<Entry> = (0..10).map(|i| e(i, 10)).collect();
        let sizes: Vec<usize> = chunks(&entries, 4, 1000).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, vec![4, 4, 2]);
        // payload_len is 10 + 16 per entry here: two fit in 60 bytes, three do not.
        let sizes: Vec<usize> = chunks(&entries, 100, 60).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, vec![2, 2, 2, 2, 2]);
        // One entry larger than the byte limit still goes, alone.
        let big = vec![e(0, 5), e(1, 100), e(2, 5)];
        let sizes: Vec<usize> = chunks(&big, 100, 60).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, vec![1, 1, 1]);
        assert!(chunks(&[], 4, 4).is_empty());
    }
}
