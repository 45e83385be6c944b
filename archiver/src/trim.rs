//! The two things a worker changes besides the store's objects: trimming Redis after a durable
//! upload (the only place archived entries leave Redis) and recording gaps.

use std::time::Instant;

use streamtier_schemas::{layout, GapRecord, StreamId};
use streamtier_tiers::hot::{StreamInfo, TrimOutcome, TrimRequest};
use streamtier_tiers::store::PutOutcome;
use tracing::{error, warn};

use crate::metrics::Metrics;
use crate::worker::PartitionWorker;
use crate::Result;

/// How long an idle partition waits before trying again a trim that removed nothing (consumer
/// groups held it back, or nothing was due).
const IDLE_RETRIM: std::time::Duration = std::time::Duration::from_secs(10);

impl PartitionWorker {
    /// Writes a gap record (create-if-absent); answers whether this call created it.
    pub(crate) async fn record_gap(
        &self,
        after: StreamId,
        before: StreamId,
        info: &StreamInfo,
        count: u64,
        last_offset: u64,
    ) -> Result<bool> {
        let reason = if after == StreamId::MIN {
            "gone-before-first-seen"
        } else if info.first_id == Some(before) {
            "trimmed-before-archive"
        } else {
            "deleted-before-archive"
        };
        let record = GapRecord {
            topic: self.p.topic.clone(),
            partition: self.p.partition,
            stream: self.p.stream.clone(),
            after_id: after,
            before_id: Some(before),
            count,
            last_offset,
            reason: reason.to_string(),
            detected_at_ms: self.ctx.clock.now_ms(),
        };
        let key = layout::gap_key(&self.p.topic, self.p.partition, after);
        let outcome = self
            .ctx
            .store
            .put_if_absent(&key, record.to_json().into(), &[])
            .await
            .map_err(self.tier())?;
        if outcome == PutOutcome::Created {
            error!(stream = %self.p.stream, after_id = %after, before_id = %before, num_entries = count,
                gap_key = %key, reason, "entries vanished from redis before they were archived");
            Metrics::add(&self.ctx.metrics.gaps, 1);
            Metrics::add(&self.ctx.metrics.gap_entries, count);
        }
        Ok(outcome == PutOutcome::Created)
    }

    /// Whether a trim could remove anything now, from what the last read said: the oldest
    /// entry is archived, more than `retain_entries` are kept, and it is older than
    /// `retain_for`. In the daemon, when the last trim removed nothing (consumer groups held it
    /// back), the next one waits [`IDLE_RETRIM`]; a `--once` run trims whatever it may. Objects
    /// stored since the last trim always trim (it also records the hint), whatever this says.
    pub(crate) fn trim_may_remove(&self, daemon: bool) -> bool {
        let (Some(chain), Some(info)) = (&self.chain, &self.last_info) else {
            return true;
        };
        let Some(first) = info.first_id else {
            return false;
        };
        let r = &self.p.retention;
        let removable = first <= chain.last_id
            && info.length > r.retain_entries
            && r.old_enough(first.ms, self.ctx.clock.now_ms());
        let held_back =
            daemon && self.last_trimmed == 0 && self.trimmed_at.is_some_and(|at| at.elapsed() < IDLE_RETRIM);
        removable && !held_back
    }

    /// Trims what the chain holds, within the topic's retention and the consumer groups, and
    /// records the chain's last object as the listing hint in the same script.
    pub(crate) async fn trim(&mut self) -> Result<u64> {
        let Some(chain) = self.chain.clone() else {
            return Ok(0);
        };
        if chain.last_key.is_none() {
            return Ok(0);
        }
        let r = &self.p.retention;
        // `0-1` is the lowest id an entry can have: a bound there keeps everything, where
        // `0-0` (a `retain_for` reaching back before 1970) is no valid end of the script's
        // exclusive `XRANGE`.
        let keep_from = r
            .keep_from_ms(self.ctx.clock.now_ms())
            .map(|ms| StreamId::new(ms, 0).max(StreamId::new(0, 1)));
        let req = TrimRequest {
            stream: &self.p.stream,
            archived: chain.last_id,
            archived_offset: chain.last_offset,
            keep_from,
            retain_entries: r.retain_entries,
            retain_max_entries: r.retain_max_entries,
            respect_groups: self.ctx.config.respect_consumer_groups,
            hint: chain.last_key.as_deref(),
        };
        Metrics::add(&self.ctx.metrics.trims, 1);
        self.untrimmed = false;
        self.trimmed_at = Some(Instant::now());
        match self.ctx.hot.trim(&req).await.map_err(self.tier())? {
            TrimOutcome::Trimmed { trimmed, behind, .. } => {
                if !behind.is_empty() {
                    warn!(stream = %self.p.stream, groups = ?behind,
                        "retain_max_entries trimmed entries that consumer groups had not yet processed");
                }
                self.ctx
                    .metrics
                    .update(&self.p.topic, self.p.partition, |s| s.groups_behind = behind);
                Metrics::add(&self.ctx.metrics.trimmed_entries, trimmed);
                self.last_trimmed = trimmed;
                Ok(trimmed)
            }
            TrimOutcome::Missing => Ok(0),
            TrimOutcome::Regressed => Err(self.regressed(&chain, "has a last id below the archive")),
            TrimOutcome::Recreated => {
                Err(self.regressed(&chain, "has fewer entries ever added than the archive holds"))
            }
        }
    }
}
