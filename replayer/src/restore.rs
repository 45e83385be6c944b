//! Faithful restore: a replay with original ids that also puts back each partition's consumer
//! groups (positions, consumers, pending entries) and the stream's counters, from the group
//! snapshot the archiver recorded (see `streamtier_schemas::groups`).
//!
//! For each partition the plan picks the latest snapshot at or before `at` (or the latest), and
//! writes the entries the source held then: from the snapshot's first entry to its last
//! generated id (without `at`: to the end of the archive), plus the older entries a group still
//! had pending (trimmed from the source, they come back from the archive). Entries the archive
//! does not hold (newer than its last object) cannot come back. Once a partition's entries are
//! written, one script creates its groups and sets its counters; a marker set in the same
//! script makes that step happen once, however often the job is resumed. A target that already
//! holds entries or groups is refused before anything is written.
//!
//! An archive without snapshots (written before they existed, or of a stream without groups)
//! restores its entries and the counters its objects know, and says so in the job.

use std::collections::BTreeSet;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use streamtier_schemas::groups::GroupSnapshot;
use streamtier_schemas::StreamId;
use streamtier_tiers::archive::PartitionArchive;
use streamtier_tiers::hot::{Hot, RestoreCounters, RestoredGroups};
use streamtier_tiers::store::Store;

use crate::plan::JobPlan;
use crate::range::{parse_bound, IdRange};
use crate::source::PartitionSource;
use crate::{Error, Result};

/// What a restore does to one partition, fixed when the job is created, and what it did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PartitionRestore {
    /// The group snapshot restored (its key); none when the archive holds none.
    pub snapshot: Option<String>,
    /// When that snapshot was taken (epoch milliseconds).
    pub snapshot_taken_at_ms: Option<u64>,
    /// The ids read from the archive.
    pub range: IdRange,
    /// Entries below this id are written only when a group had them pending.
    #[schema(value_type = Option<String>)]
    pub window_from: Option<StreamId>,
    /// The counters the stream gets at the end.
    pub counters: Option<Counters>,
    /// Groups created, once done.
    pub groups_restored: Option<u64>,
    /// Pending entries put back.
    pub pending_restored: u64,
    /// Pending entries whose entry the archive does not hold (Redis leaves them out).
    pub pending_missing: u64,
    /// Pending entries the snapshot did not record (cut at `group_snapshot_max_pending`).
    pub pending_not_recorded: u64,
    /// What the restore cannot bring back, in words.
    pub note: Option<String>,
}

/// A stream's counters as a restore sets them (`XSETID`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Counters {
    /// Last generated id.
    #[schema(value_type = String)]
    pub last_generated_id: StreamId,
    /// Entries ever added.
    pub entries_added: u64,
    /// Highest id removed by `XDEL`.
    #[schema(value_type = String)]
    pub max_deleted_id: StreamId,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Plans the restore of every partition of `plan`: refuses targets that hold entries or groups,
/// then picks each partition's snapshot and range.
///
/// # Errors
/// [`Error::Occupied`] for a target in use, [`Error::Invalid`] for a malformed `at`,
/// [`Error::Tier`] when Redis or the store fails.
pub async fn plan_restore(hot: &Hot, store: &Store, plan: &JobPlan) -> Result<Vec<PartitionRestore>> {
    let at_ms = plan
        .request
        .at
        .as_deref()
        .map(|at| parse_bound("at", at).map(|id| id.ms))
        .transpose()?;
    let topic = &plan.request.topic;
    for (_, _, target) in &plan.partitions {
        let context = || format!("read `{target}`");
        let length = hot
            .stream_info(target)
            .await
            .map_err(Error::tier(context()))?
            .map_or(0, |i| i.length);
        let groups = hot
            .consumer_groups(target)
            .await
            .map_err(Error::tier(context()))?;
        if length > 0 || !groups.is_empty() {
            return Err(Error::Occupied {
                target: target.clone(),
                entries: length,
                groups: groups.len() as u64,
            });
        }
    }
    let mut out = Vec::with_capacity(plan.partitions.len());
    for (partition, _, _) in &plan.partitions {
        let archive = PartitionArchive::new(store.clone(), topic, *partition);
        let context = || format!("{topic}/{partition}: read the archive");
        let end = match archive.last_object(None).await.map_err(Error::tier(context()))? {
            Some(object) => Some(archive.meta(&object).await.map_err(Error::tier(context()))?),
            None => None,
        };
        let snapshot = archive
            .group_snapshot(at_ms, now_ms())
            .await
            .map_err(Error::tier(context()))?;
        out.push(partition_plan(
            snapshot,
            end.map(|m| (m.last_id, m.last_offset)),
            at_ms,
        ));
    }
    Ok(out)
}

/// One partition's restore, from its snapshot and the end of its archive (last id and its
/// offset).
fn partition_plan(
    snapshot: Option<(String, GroupSnapshot)>,
    end: Option<(StreamId, Option<u64>)>,
    at_ms: Option<u64>,
) -> PartitionRestore {
    let end_id = end.map(|(id, _)| id);
    // Only archived ids are read: the source stream may be the target itself.
    let read_to = |last: Option<StreamId>| -> Option<StreamId> {
        Some(last.and_then(StreamId::successor).unwrap_or(StreamId::MIN))
    };
    let Some((key, s)) = snapshot else {
        let last = match at_ms {
            Some(at) => end_id.map(|e| e.min(StreamId::new(at, u64::MAX))),
            None => end_id,
        };
        return PartitionRestore {
            snapshot: None,
            snapshot_taken_at_ms: None,
            range: IdRange {
                from: StreamId::MIN,
                to: read_to(last),
            },
            window_from: None,
            counters: match (at_ms, end) {
                (None, Some((id, offset))) => Some(Counters {
                    last_generated_id: id,
                    entries_added: offset.unwrap_or(0),
                    max_deleted_id: StreamId::MIN,
                }),
                _ => None,
            },
            groups_restored: None,
            pending_restored: 0,
            pending_missing: 0,
            pending_not_recorded: 0,
            note: Some(
                "the archive holds no group snapshot for this partition (written before snapshots \
                 existed, or the stream had no groups): entries restored, groups not"
                    .into(),
            ),
        };
    };
    let info = &s.stream_info;
    let snapshot_last = info.last_generated_id;
    let upto = if at_ms.is_some() {
        snapshot_last
    } else {
        end_id.map_or(snapshot_last, |e| e.max(snapshot_last))
    };
    let last_read = end_id.map(|e| e.min(upto));
    let window = info.first_entry_id.or_else(|| snapshot_last.successor());
    let oldest_pending = s
        .groups
        .iter()
        .filter_map(|g| g.pending.first())
        .map(|p| p.id)
        .min();
    let from = window
        .into_iter()
        .chain(oldest_pending)
        .min()
        .unwrap_or(StreamId::MIN);
    let entries_added = match end {
        // Entries archived after the snapshot come back too: the archive's offset counts them.
        Some((id, Some(offset))) if at_ms.is_none() && id > snapshot_last => offset,
        _ => info.entries_added,
    };
    let not_recorded: u64 = s
        .groups
        .iter()
        .map(|g| g.pending_count - g.pending.len() as u64)
        .sum();
    let lost = end_id.is_none_or(|e| e < snapshot_last);
    let note = match (lost, not_recorded) {
        (false, 0) => None,
        (lost, cut) => Some(
            [
                lost.then(|| {
                    format!(
                        "entries after `{}` up to `{snapshot_last}` were never archived and cannot come back",
                        end_id.unwrap_or(StreamId::MIN)
                    )
                }),
                (cut > 0).then(|| format!("{cut} pending entries were not recorded (the snapshot was cut)")),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("; "),
        ),
    };
    PartitionRestore {
        snapshot: Some(key),
        snapshot_taken_at_ms: Some(s.taken_at_ms),
        range: IdRange {
            from,
            to: read_to(last_read),
        },
        window_from: window,
        counters: Some(Counters {
            last_generated_id: upto,
            entries_added,
            max_deleted_id: info.max_deleted_entry_id,
        }),
        groups_restored: None,
        pending_restored: 0,
        pending_missing: 0,
        pending_not_recorded: not_recorded,
        note,
    }
}

/// A partition's restore while it runs: which entries it writes, and its snapshot.
pub(crate) struct Restoring {
    window_from: Option<StreamId>,
    pending: BTreeSet<StreamId>,
    snapshot: Option<GroupSnapshot>,
}

impl Restoring {
    /// Loads the snapshot `plan` names.
    ///
    /// # Errors
    /// [`Error::Tier`] when the store fails or the snapshot is unreadable.
    pub(crate) async fn load(store: &Store, plan: &PartitionRestore) -> Result<Restoring> {
        let snapshot = match &plan.snapshot {
            None => None,
            Some(key) => {
                let body = store
                    .get(key)
                    .await
                    .map_err(Error::tier(format!("read the group snapshot `{key}`")))?;
                let snapshot = GroupSnapshot::from_json(&body).map_err(|source| Error::Tier {
                    context: "read the group snapshot".into(),
                    source: streamtier_tiers::Error::Object {
                        key: key.clone(),
                        source,
                    },
                })?;
                Some(snapshot)
            }
        };
        let pending = snapshot
            .iter()
            .flat_map(|s| &s.groups)
            .flat_map(|g| &g.pending)
            .map(|p| p.id)
            .collect();
        Ok(Restoring {
            window_from: plan.window_from,
            pending,
            snapshot,
        })
    }

    /// Groups in the snapshot.
    pub(crate) fn groups(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, |s| s.groups.len() as u64)
    }

    /// Whether the entry `id` is written: inside the window, or pending in a group.
    pub(crate) fn keeps(&self, id: StreamId) -> bool {
        self.window_from.is_none_or(|w| id >= w) || self.pending.contains(&id)
    }

    /// Whether a group had an entry pending in `first..=last`.
    fn pending_within(&self, first: StreamId, last: StreamId) -> bool {
        // (`range` panics on a reversed range, which a damaged footer could give.)
        first <= last && self.pending.range(first..=last).next().is_some()
    }

    /// Creates the groups and sets the counters of `target`, once per job.
    ///
    /// # Errors
    /// [`Error::Tier`] when Redis fails or refuses.
    pub(crate) async fn finish(
        &self,
        hot: &Hot,
        job: &str,
        target: &str,
        plan: &PartitionRestore,
    ) -> Result<Option<RestoredGroups>> {
        let Some(c) = plan.counters else {
            return Ok(None);
        };
        let groups = self.snapshot.as_ref().map_or(&[][..], |s| &s.groups[..]);
        let counters = RestoreCounters {
            last_generated_id: c.last_generated_id,
            entries_added: c.entries_added,
            max_deleted_id: c.max_deleted_id,
        };
        hot.restore_groups(target, job, groups, counters)
            .await
            .map(Some)
            .map_err(Error::tier(format!("restore the groups of `{target}`")))
    }
}

/// What a restore of one partition writes, as its dry run counts it: `entries` in all, of them
/// `pending_older` below the window (pending in a group).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RestoreCount {
    pub(crate) entries: u64,
    pub(crate) pending_older: u64,
}

/// The source a restore dry run reads one partition from.
pub(crate) struct CountSource<'a> {
    pub(crate) hot: &'a Hot,
    pub(crate) store: &'a Store,
    pub(crate) topic: &'a str,
    pub(crate) partition: u32,
    pub(crate) stream: &'a str,
}

impl Restoring {
    /// Adds to `count` what the restore `plan` writes of the listed objects `metas` (in key
    /// order). An object inside the window counts whole from its footer; one below the window
    /// without a pending entry counts nothing; only the others (at the window's edges, or
    /// holding pending entries) are read, with the same source and rule as the restore.
    ///
    /// # Errors
    /// As [`PartitionSource::next_batch`].
    pub(crate) async fn count_writes(
        &self,
        from: &CountSource<'_>,
        plan: &PartitionRestore,
        metas: &[streamtier_schemas::ObjectMeta],
        count: &mut RestoreCount,
    ) -> Result<()> {
        let range = plan.range;
        for meta in metas {
            let (first, last) = (meta.first_id, meta.last_id);
            let in_window = self.window_from.is_none_or(|w| first >= w);
            if in_window && range.contains(first) && range.contains(last) {
                count.entries += meta.entry_count;
                continue;
            }
            let below_window = self.window_from.is_some_and(|w| last < w);
            if below_window && !self.pending_within(first, last) {
                continue;
            }
            let part = IdRange {
                from: first.max(range.from),
                to: match (last.successor(), range.to) {
                    (Some(end), Some(to)) => Some(end.min(to)),
                    (end, to) => end.or(to),
                },
            };
            if part.to.is_some_and(|to| to <= part.from) {
                continue;
            }
            let mut source = PartitionSource::new(
                from.hot.clone(),
                from.store.clone(),
                from.topic,
                from.partition,
                from.stream,
                part,
                None,
            );
            while let Some(entries) = source.next_batch().await? {
                for e in entries.iter().filter(|e| self.keeps(e.id)) {
                    count.entries += 1;
                    if self.window_from.is_some_and(|w| e.id < w) {
                        count.pending_older += 1;
                    }
                }
            }
        }
        Ok(())
    }
}
