//! Consumer-group snapshots: after a pass, at most once per `group_snapshot_interval`, a
//! partition whose stream has consumer groups records them (positions, consumers, the oldest
//! pending entries) and the stream's counters, when something changed since the last record.
//! A faithful restore reads them back (see `streamtier_schemas::groups`).

use std::time::Instant;

use bytes::Bytes;
use streamtier_schemas::groups::{GroupSnapshot, GROUPS_FORMAT_VERSION};
use streamtier_schemas::{layout, StreamId};
use streamtier_tiers::hot::GroupsNow;
use streamtier_tiers::store::PutOutcome;
use tracing::debug;

use crate::metrics::Metrics;
use crate::worker::PartitionWorker;
use crate::Result;

/// What a worker remembers of its snapshots.
#[derive(Debug, Default)]
pub struct Snapshots {
    /// When the groups were last looked at.
    looked_at: Option<Instant>,
    /// The last state recorded, without its clock readings.
    recorded: Option<GroupsNow>,
}

/// `now` without what changes by itself as time passes (idle times, the clock).
fn still(now: &GroupsNow) -> GroupsNow {
    let mut s = now.clone();
    s.time_ms = 0;
    for g in &mut s.groups {
        g.consumers.iter_mut().for_each(|c| c.idle_ms = 0);
        g.pending.iter_mut().for_each(|p| p.idle_ms = 0);
    }
    s
}

impl PartitionWorker {
    /// Records the stream's consumer groups when one is due; answers how many were written
    /// (0 or 1).
    ///
    /// # Errors
    /// [`crate::Error::Tier`] when Redis or the store fails.
    pub(crate) async fn snapshot_groups(&mut self) -> Result<u64> {
        let interval = self.ctx.config.group_snapshot_interval;
        let due = self.snapshots.looked_at.is_none_or(|at| at.elapsed() >= interval);
        if interval.is_zero() || !due {
            return Ok(0);
        }
        self.snapshots.looked_at = Some(Instant::now());
        let max_pending = self.ctx.config.group_snapshot_max_pending;
        let now = self
            .ctx
            .hot
            .groups_now(&self.p.stream, max_pending)
            .await
            .map_err(self.tier())?;
        let Some(now) = now.filter(|n| !n.groups.is_empty()) else {
            return Ok(0);
        };
        let state = still(&now);
        if self.snapshots.recorded.as_ref() == Some(&state) {
            return Ok(0);
        }
        let snapshot = GroupSnapshot {
            format_version: GROUPS_FORMAT_VERSION,
            topic: self.p.topic.clone(),
            partition: self.p.partition,
            stream: self.p.stream.clone(),
            taken_at_ms: now.time_ms,
            archived_id: self.chain.as_ref().map_or(StreamId::MIN, |c| c.last_id),
            stream_info: now.stream,
            groups: now.groups,
        };
        let key = layout::group_snapshot_key(&self.p.topic, self.p.partition, snapshot.taken_at_ms);
        let outcome = self
            .ctx
            .store
            .put_if_absent(&key, Bytes::from(snapshot.to_json()), &[])
            .await
            .map_err(self.tier())?;
        if outcome == PutOutcome::AlreadyExists {
            // Another archiver recorded the same instant.
            debug!(stream = %self.p.stream, snapshot_key = %key, "group snapshot already recorded");
        }
        Metrics::add(&self.ctx.metrics.group_snapshots, 1);
        self.snapshots.recorded = Some(state);
        Ok(1)
    }
}
