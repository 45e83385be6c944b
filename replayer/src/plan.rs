//! Turning a request into a job ([`plan_request`], for the API and the command line): the
//! topic and partitions, the rate, the targets and their rules, the range end resolved; and the
//! dry-run plan of what a replay would read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use streamtier_schemas::StreamId;
use streamtier_tiers::archive::{ObjectRef, PartitionArchive};
use streamtier_tiers::hot::{is_internal_key, Hot};
use streamtier_tiers::store::Store;

use crate::engine::ReplayLimits;
use crate::filter::Filter;
use crate::job::{expand_target, Ids, ReplayRequest, DEFAULT_TARGET};
use crate::range::IdRange;
use crate::restore::{CountSource, PartitionRestore, RestoreCount, Restoring};
use crate::settings::glob_match;
use crate::source::PartitionSource;
use crate::{Error, Result};

/// One partition of a topic as the caller's configuration names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourcePartition {
    /// Partition number.
    pub partition: u32,
    /// Its stream key.
    pub stream: String,
}

/// A checked job, ready to be submitted.
#[derive(Clone, Debug)]
pub struct JobPlan {
    /// The request.
    pub request: ReplayRequest,
    /// The range with `to` fixed.
    pub range: IdRange,
    /// Entries per second.
    pub rate: u64,
    /// `(partition, source stream, target stream)`.
    pub partitions: Vec<(u32, String, String)>,
    /// For a restore, each partition's (in the order of `partitions`); empty otherwise.
    pub restores: Vec<PartitionRestore>,
}

/// Makes a plan ready to run against what Redis and the store hold now: targets that exist
/// and are not streams are refused; a restore gets its partitions' snapshots and ranges (and
/// refuses targets in use); a replay with original ids refuses targets that hold later ids.
/// Nothing is written.
///
/// # Errors
/// [`Error::NotAStream`], [`Error::Occupied`] or [`Error::Conflict`] naming the target,
/// [`Error::Tier`] when Redis or the store fails.
pub async fn prepare(hot: &Hot, store: &Store, mut plan: JobPlan) -> Result<JobPlan> {
    check_target_types(hot, &plan).await?;
    if plan.request.restore_groups {
        plan.restores = crate::restore::plan_restore(hot, store, &plan).await?;
    } else {
        check_original_targets(hot, store, &plan).await?;
    }
    Ok(plan)
}

/// What a replay would read, per partition.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PartitionPlan {
    /// Partition number.
    pub partition: u32,
    /// Source stream.
    pub stream: String,
    /// Target stream.
    pub target: String,
    /// Archived objects that overlap the range.
    pub objects: u64,
    /// Entries in those objects (whole objects; the edges may hold entries outside the range).
    pub archived_entries: u64,
    /// Bytes of those objects (an upper bound on what is fetched).
    pub bytes: u64,
    /// Entries in the range that Redis holds beyond the archive.
    pub redis_entries: u64,
    /// With a filter: the entries of the range it takes, counted by reading the range (the
    /// objects' statistics cannot count fields).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matching_entries: Option<u64>,
    /// With a restore: the entries it writes (the snapshot's window and the older entries a
    /// group had pending), counted from the objects' footers; only the objects at the window's
    /// edges and those holding pending entries are read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_entries: Option<u64>,
    /// With a restore: of those, the entries older than the window, pending in a group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_pending_entries: Option<u64>,
}

/// Fixes an open range end at the newest entry of the partitions now, so that a job ends even
/// while producers keep writing.
///
/// # Errors
/// [`Error::Tier`] when Redis fails.
pub async fn resolve_range(hot: &Hot, range: IdRange, partitions: &[SourcePartition]) -> Result<IdRange> {
    if range.to.is_some() {
        return Ok(range);
    }
    let mut newest: Option<StreamId> = None;
    for p in partitions {
        let info = hot
            .stream_info(&p.stream)
            .await
            .map_err(Error::tier(format!("read `{}`", p.stream)))?;
        if let Some(info) = info {
            newest = newest.max(Some(info.last_generated_id));
        }
    }
    // Without any stream in Redis the archive is complete: read it to its end.
    Ok(IdRange {
        from: range.from,
        to: newest.map(|n| n.successor().unwrap_or(StreamId::MAX)),
    })
}

/// Builds the plan of a checked request.
///
/// # Errors
/// [`Error::NotFound`] for a partition the topic does not have, [`Error::Unacceptable`] for a
/// target that writes into a source stream or streamtier's own keys unless `allowed` says so.
pub fn build_plan(
    request: &ReplayRequest,
    range: IdRange,
    rate: u64,
    sources: &[SourcePartition],
    target_allowed: impl Fn(&str) -> Result<()>,
) -> Result<JobPlan> {
    let chosen: Vec<&SourcePartition> = match &request.partitions {
        None => sources.iter().collect(),
        Some(wanted) => {
            let mut chosen = Vec::new();
            for (i, p) in wanted.iter().enumerate() {
                let found = sources
                    .iter()
                    .find(|s| s.partition == *p)
                    .ok_or_else(|| Error::Missing {
                        field: format!("partitions[{i}]"),
                        what: format!("partition {p} of topic `{}`", request.topic),
                    })?;
                if chosen.iter().any(|c: &&SourcePartition| c.partition == *p) {
                    return Err(Error::Invalid {
                        field: format!("partitions[{i}]"),
                        reason: format!("partition {p} is listed twice"),
                    });
                }
                chosen.push(found);
            }
            chosen
        }
    };
    if chosen.is_empty() {
        return Err(Error::Unacceptable {
            field: "partitions".into(),
            reason: "no partition to replay".into(),
        });
    }
    let template = request.target.as_deref().unwrap_or(DEFAULT_TARGET);
    crate::job::check_target_template(template, chosen.len())?;
    let mut partitions = Vec::with_capacity(chosen.len());
    for p in chosen {
        let target = expand_target(template, &request.topic, p.partition, &p.stream);
        target_allowed(&target)?;
        if partitions
            .iter()
            .any(|(_, _, t): &(u32, String, String)| *t == target)
        {
            return Err(Error::Unacceptable {
                field: "target".into(),
                reason: format!("two partitions would both write into `{target}`"),
            });
        }
        partitions.push((p.partition, p.stream.clone(), target));
    }
    if request.ids == Ids::Original && request.origin_field.is_some() {
        return Err(Error::Unacceptable {
            field: "origin_field".into(),
            reason: "only with `ids: new`; original ids already name the source entry".into(),
        });
    }
    if let Some(field) = &request.origin_field {
        if field.is_empty() {
            return Err(Error::Invalid {
                field: "origin_field".into(),
                reason: "must not be empty".into(),
            });
        }
    }
    if let Some(filter) = &request.filter {
        crate::filter::Filter::parse(filter)?;
    }
    if request.restore_groups {
        if request.filter.is_some() {
            return Err(Error::Unacceptable {
                field: "filter".into(),
                reason: "a restore brings back what the source held: no filter".into(),
            });
        }
        if request.ids != Ids::Original {
            return Err(Error::Unacceptable {
                field: "restore_groups".into(),
                reason: "a restore writes the original ids: add `ids: original`".into(),
            });
        }
        if let Some(field) = [("from", &request.from), ("to", &request.to)]
            .into_iter()
            .find_map(|(f, v)| v.is_some().then_some(f))
        {
            return Err(Error::Unacceptable {
                field: field.into(),
                reason: "a restore takes its range from the group snapshot: give `at` instead".into(),
            });
        }
    } else if request.at.is_some() {
        return Err(Error::Unacceptable {
            field: "at".into(),
            reason: "only with `restore_groups: true`".into(),
        });
    }
    Ok(JobPlan {
        request: request.clone(),
        range,
        rate,
        partitions,
        restores: Vec::new(),
    })
}

/// Refuses a target that exists and is not a stream (a job could never write into it).
///
/// # Errors
/// [`Error::NotAStream`] naming the target and its type, [`Error::Tier`] when Redis fails.
pub async fn check_target_types(hot: &Hot, plan: &JobPlan) -> Result<()> {
    for (_, _, target) in &plan.partitions {
        let found = hot
            .key_type(target)
            .await
            .map_err(Error::tier(format!("read the type of `{target}`")))?;
        if let Some(found) = found.filter(|t| t != "stream") {
            return Err(Error::NotAStream {
                target: target.clone(),
                found,
            });
        }
    }
    Ok(())
}

/// With original ids, refuses a target that already holds an id at or above the first one the
/// replay would write (approximated here by `from` or the first archived id; the write script
/// checks exactly, before writing anything).
///
/// # Errors
/// [`Error::Conflict`] naming the target, [`Error::Tier`] when Redis or the store fails.
pub async fn check_original_targets(hot: &Hot, store: &Store, plan: &JobPlan) -> Result<()> {
    if plan.request.ids != Ids::Original {
        return Ok(());
    }
    for (partition, stream, target) in &plan.partitions {
        let Some(info) = hot
            .stream_info(target)
            .await
            .map_err(Error::tier(format!("read `{target}`")))?
        else {
            continue;
        };
        let mut first = plan.range.from;
        let mut lister = PartitionArchive::new(store.clone(), &plan.request.topic, *partition)
            .lister(plan.range.from.predecessor(), plan.range.to);
        let next = lister
            .next_after(plan.range.from.predecessor())
            .await
            .map_err(Error::tier(format!("list archive of `{stream}`")))?;
        match next {
            Some(object) => first = first.max(object.first_id),
            None => {
                if let Some(redis_first) = hot
                    .stream_info(stream)
                    .await
                    .map_err(Error::tier(format!("read `{stream}`")))?
                    .and_then(|i| i.first_id)
                {
                    first = first.max(redis_first);
                }
            }
        }
        if info.last_generated_id >= first && info.last_generated_id != StreamId::MIN {
            return Err(Error::Conflict {
                target: target.clone(),
                target_last: info.last_generated_id,
                first,
            });
        }
    }
    Ok(())
}

/// What the plan would read, without writing anything.
///
/// # Errors
/// [`Error::Tier`] when Redis or the store fails, [`Error::BadObject`] for an unreadable footer.
/// Footer reads in flight while a dry run counts a partition's archived entries.
const FOOTER_READS: usize = 16;
/// Objects listed before their footers are read (bounds the memory of a dry run).
const FOOTER_BATCH: usize = 1024;

/// Adds the entries, objects and bytes of `objects` (drained) to `item`; returns their
/// metadata.
async fn count_objects(
    store: &Store,
    topic: &str,
    partition: u32,
    objects: &mut Vec<ObjectRef>,
    item: &mut PartitionPlan,
    last_archived: &mut Option<StreamId>,
) -> Result<Vec<streamtier_schemas::ObjectMeta>> {
    use futures::{StreamExt, TryStreamExt};
    let metas: Vec<_> = futures::stream::iter(objects.drain(..))
        .map(|object| async move {
            let meta = streamtier_tiers::archive::footer::read_meta(store, &object.key, object.size)
                .await
                .map_err(|source| Error::BadObject {
                    partition: format!("{topic}/{partition}"),
                    key: object.key.clone(),
                    last_written: None,
                    source: source.into(),
                })?;
            Ok::<_, Error>((object.size, meta))
        })
        .buffered(FOOTER_READS)
        .try_collect()
        .await?;
    let mut out = Vec::with_capacity(metas.len());
    for (size, meta) in metas {
        item.objects += 1;
        item.archived_entries += meta.entry_count;
        item.bytes += size;
        *last_archived = (*last_archived).max(Some(meta.last_id));
        out.push(meta);
    }
    Ok(out)
}

pub async fn dry_run(hot: &Hot, store: &Store, plan: &JobPlan) -> Result<Vec<PartitionPlan>> {
    let mut out = Vec::with_capacity(plan.partitions.len());
    for (i, (partition, stream, target)) in plan.partitions.iter().enumerate() {
        // A restore reads its own range (its entries filtered by the snapshot: counted apart).
        let range = plan.restores.get(i).map_or(plan.range, |r| r.range);
        let mut item = PartitionPlan {
            partition: *partition,
            stream: stream.clone(),
            target: target.clone(),
            ..PartitionPlan::default()
        };
        let after = range.from.predecessor();
        let mut lister =
            PartitionArchive::new(store.clone(), &plan.request.topic, *partition).lister(after, range.to);
        // Footers are read FOOTER_READS at a time: on S3 a sparse archive has tens of thousands
        // of objects, one round trip each.
        let mut objects = Vec::new();
        let mut last_archived: Option<StreamId> = None;
        let restore = match plan.restores.get(i) {
            Some(r) => Some((r, Restoring::load(store, r).await?)),
            None => None,
        };
        let mut restored = RestoreCount::default();
        let from = CountSource {
            hot,
            store,
            topic: &plan.request.topic,
            partition: *partition,
            stream,
        };
        loop {
            let next = lister
                .next_after(after)
                .await
                .map_err(Error::tier(format!("list archive of `{stream}`")))?;
            let listed_all = next.is_none();
            objects.extend(next);
            if listed_all || objects.len() == FOOTER_BATCH {
                let topic = &plan.request.topic;
                let metas = count_objects(
                    store,
                    topic,
                    *partition,
                    &mut objects,
                    &mut item,
                    &mut last_archived,
                )
                .await?;
                if let Some((r, restoring)) = &restore {
                    restoring.count_writes(&from, r, &metas, &mut restored).await?;
                }
            }
            if listed_all {
                break;
            }
        }
        let mut cursor = last_archived.max(after).unwrap_or(StreamId::MIN);
        loop {
            let batch = hot
                .read_after(stream, cursor, range.last(), 10_000)
                .await
                .map_err(Error::tier(format!("read `{stream}`")))?;
            let Some(last) = batch.entries.last_id() else {
                break;
            };
            cursor = last;
            item.redis_entries += batch
                .entries
                .ids()
                .iter()
                .filter(|id| range.contains(**id))
                .count() as u64;
        }
        if let Some(filter) = plan.request.filter.as_deref().map(Filter::parse).transpose()? {
            let mut source = PartitionSource::new(
                hot.clone(),
                store.clone(),
                &plan.request.topic,
                *partition,
                stream,
                range,
                None,
            )
            .skipping_for(Some(filter.clone()));
            let mut n = 0;
            while let Some(entries) = source.next_batch().await? {
                n += entries.iter().filter(|e| filter.matches(e)).count() as u64;
            }
            item.matching_entries = Some(n);
        }
        if restore.is_some() {
            item.restore_entries = Some(restored.entries);
            item.restore_pending_entries = Some(restored.pending_older);
        }
        out.push(item);
    }
    Ok(out)
}

/// Where replays may write: the globs of `[replay] allowed_targets`, or without them anything
/// but a source stream and streamtier's (or Runnel's) own keys.
#[derive(Clone, Debug, Default)]
pub struct TargetRules {
    /// `[replay] allowed_targets`; empty means the default rule.
    pub allowed: Vec<String>,
}

impl TargetRules {
    /// Whether a replay may write into `target`, given every source stream.
    ///
    /// # Errors
    /// [`Error::Unacceptable`] naming `target` and the rule it breaks.
    pub fn check(&self, target: &str, sources: &[String]) -> Result<()> {
        let refuse = |reason: String| Error::Unacceptable {
            field: "target".into(),
            reason,
        };
        if is_internal_key(target) {
            return Err(refuse(format!(
                "`{target}` is one of streamtier's or Runnel's own keys"
            )));
        }
        if !self.allowed.is_empty() {
            if self.allowed.iter().any(|p| glob_match(p, target)) {
                return Ok(());
            }
            return Err(refuse(format!(
                "`{target}` matches none of replay.allowed_targets"
            )));
        }
        if sources.iter().any(|s| s == target) {
            return Err(refuse(format!(
                "`{target}` is a live source stream; list it in replay.allowed_targets to write into it"
            )));
        }
        Ok(())
    }
}

/// Plans `request`, for the API and the command line alike: checks it against `topics` (each
/// topic's partitions), the engine's `limits` and the target `rules`, and fixes its range to
/// what Redis and the archive hold now.
///
/// # Errors
/// [`Error::Invalid`] for malformed fields, [`Error::Missing`] for an unknown topic or
/// partition, [`Error::Unacceptable`] for a range, template, target or rate that cannot be
/// honoured, [`Error::Tier`] when Redis cannot be read.
pub async fn plan_request(
    hot: &Hot,
    limits: &ReplayLimits,
    rules: &TargetRules,
    topics: &BTreeMap<String, Vec<SourcePartition>>,
    request: &ReplayRequest,
) -> Result<JobPlan> {
    if request.topic.is_empty() {
        return Err(Error::Invalid {
            field: "topic".into(),
            reason: "must not be empty".into(),
        });
    }
    let sources = topics.get(&request.topic).ok_or_else(|| Error::Missing {
        field: "topic".into(),
        what: format!("topic `{}`", request.topic),
    })?;
    let rate = match request.rate_limit {
        Some(0) => {
            return Err(Error::Unacceptable {
                field: "rate_limit".into(),
                reason: "must be at least 1".into(),
            })
        }
        Some(r) if r > limits.max_rate => {
            return Err(Error::Unacceptable {
                field: "rate_limit".into(),
                reason: format!(
                    "{r} entries/s is above the server's maximum of {}",
                    limits.max_rate
                ),
            })
        }
        Some(r) => r,
        None => limits.default_rate,
    };
    let range = IdRange::parse(request.from.as_deref(), request.to.as_deref())?;
    let all_sources: Vec<String> = topics.values().flatten().map(|p| p.stream.clone()).collect();
    let plan = build_plan(request, range, rate, sources, |t| rules.check(t, &all_sources))?;
    let range = resolve_range(hot, plan.range, sources).await?;
    Ok(JobPlan { range, ..plan })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_rules_refuse_sources_and_internal_keys_unless_listed() {
        let sources = vec!["orders:0".to_string()];
        let default = TargetRules::default();
        assert!(default.check("orders-replay:0", &sources).is_ok());
        for refused in ["orders:0", "streamtier:chain:{x}", "__lock:app"] {
            let err = default.check(refused, &sources).expect_err(refused);
            assert!(
                matches!(&err, Error::Unacceptable { field, .. } if field == "target"),
                "{err}"
            );
        }
        let listed = TargetRules {
            allowed: vec!["orders:*".into()],
        };
        assert!(listed.check("orders:0", &sources).is_ok());
        assert!(listed.check("other:0", &sources).is_err());
        assert!(listed.check("streamtier:x", &sources).is_err());
    }
}
