//! Compaction: merges the consecutive small objects of a closed partition-span (hour or day)
//! into as few objects as `max_object_entries` and `max_object_bytes` allow, for archives that
//! hold small objects (written by older versions, by retention pressure or by `--flush`).
//!
//! # Why it never loses or duplicates an entry
//! 1. **Written before removed.** A merged object is created (create-if-absent, durable) under
//!    its own key, named by its first and last ID ([`layout::merged_object_key`]), before any
//!    object it replaces is removed; those are then removed in ascending key order.
//! 2. **Removed only while held elsewhere.** An object is removed only while a merged object
//!    listed beside it holds all of its IDs (checked against both footers). A merged object is
//!    never merged again, so the "held by" relation cannot loop: whatever compactors, crashes
//!    and archivers do at the same time, every removed object's entries are in a live object.
//! 3. **Only closed spans the chain has left.** A span is touched only when a later object
//!    exists (the archiver never writes behind its chain end) and its end plus `close_grace`
//!    has passed; the span holding the chain end is never touched.
//! 4. **Crashes.** A crash leaves a merged object beside a suffix of the objects it replaced;
//!    the next run removes them (rule 2). Meanwhile readers see each entry once: the replayer
//!    skips objects that end at or before its cursor, drops entries at or before it, and lists
//!    again from its cursor when an object it listed is gone. A plain listing (DuckDB, Athena)
//!    sees the merged object and the not yet removed ones twice in that window.

use std::sync::Arc;

use streamtier_schemas::parquet::typed_columns_of;
use streamtier_schemas::{
    decode_object, layout, EncodeOptions, Entry, EntryBatch, ObjectKey, ObjectMeta, TypedColumn,
};
use streamtier_tiers::archive::ObjectRef;
use streamtier_tiers::store::PutOutcome;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::chain::{self, tier};
use crate::object::ObjectBuilder;
use crate::partition::Partition;
use crate::worker::Context;
use crate::{Error, Result};

/// Objects stored larger than this are never merged: they are not small, and merging reads
/// each input whole.
pub const MAX_MERGE_INPUT: u64 = 8 << 20;

/// What to compact.
#[derive(Clone, Debug, Default)]
pub struct CompactOptions {
    /// Only spans that end at or before this time (epoch milliseconds).
    pub before_ms: Option<u64>,
    /// Read and plan, write and remove nothing.
    pub dry_run: bool,
}

/// What compaction did (or, in a dry run, would do) to a partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactStats {
    /// Closed spans with more than one object.
    pub spans: u64,
    /// Merged objects written.
    pub written: u64,
    /// Objects merged into them, then removed.
    pub merged: u64,
    /// Objects an interrupted compaction had left beside the merged object holding them,
    /// removed.
    pub leftovers: u64,
    /// Entries in the merged objects.
    pub entries: u64,
    /// Stored bytes of the objects merged.
    pub bytes_before: u64,
    /// Stored bytes of the merged objects (0 in a dry run).
    pub bytes_after: u64,
}

/// Compacts one partition's closed spans, oldest first; stops between spans when `shutdown`
/// is cancelled.
///
/// # Errors
/// [`Error::Tier`] when the store fails, [`Error::Format`] for an unreadable object,
/// [`Error::Compaction`] for objects it must not touch (the partition is then left as is from
/// that span on).
pub async fn compact_partition(
    ctx: &Context,
    p: &Partition,
    opts: &CompactOptions,
    shutdown: &CancellationToken,
) -> Result<CompactStats> {
    let mut stats = CompactStats::default();
    let mut span: Vec<ObjectRef> = Vec::new();
    let mut pages = p.archive(&ctx.store).pages(None);
    let bucket = |k: &ObjectKey| (k.span, k.span.of(k.first_id));
    while let Some(page) = pages.next_page().await.map_err(tier(p))? {
        for object in page {
            if span
                .first()
                .is_some_and(|s| bucket(&s.parsed) != bucket(&object.parsed))
            {
                // A later object exists: the chain has left this span.
                if shutdown.is_cancelled() {
                    return Ok(stats);
                }
                compact_span(ctx, p, opts, std::mem::take(&mut span), &mut stats).await?;
            }
            span.push(object);
        }
    }
    // The last span holds the chain end: archivers may still add to it.
    Ok(stats)
}

async fn compact_span(
    ctx: &Context,
    p: &Partition,
    opts: &CompactOptions,
    objects: Vec<ObjectRef>,
    stats: &mut CompactStats,
) -> Result<()> {
    let first = &objects[0].parsed;
    let end = first.span.end_ms(first.first_id);
    let grace = ctx.config.close_grace.as_millis() as u64;
    if objects.len() < 2
        || end.saturating_add(grace) > ctx.clock.now_ms()
        || opts.before_ms.is_some_and(|b| end > b)
    {
        return Ok(());
    }
    stats.spans += 1;
    let mut metas = Vec::with_capacity(objects.len());
    for o in &objects {
        let meta = match chain::object_meta(&ctx.store, p, &o.key).await {
            Ok(meta) => meta,
            Err(e) if is_gone(&e) => {
                skip_changed(p, &o.key);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if meta.first_id != o.parsed.first_id || o.parsed.merged_last.is_some_and(|l| l != meta.last_id) {
            return Err(refuse(
                p,
                format!(
                    "the footer of `{}` says `{}`..`{}`",
                    o.key, meta.first_id, meta.last_id
                ),
            ));
        }
        metas.push(meta);
    }
    // Objects that a merged object of the span holds: left by an interrupted compaction.
    let held = |i: usize| {
        (0..objects.len()).any(|j| {
            j != i
                && objects[j].parsed.merged_last.is_some()
                && metas[j].first_id <= metas[i].first_id
                && metas[i].last_id <= metas[j].last_id
        })
    };
    let (leftovers, live): (Vec<usize>, Vec<usize>) = (0..objects.len()).partition(|&i| held(i));
    if let Some(w) = live
        .windows(2)
        .find(|w| metas[w[1]].first_id <= metas[w[0]].last_id)
    {
        return Err(refuse(
            p,
            format!("`{}` and `{}` overlap", objects[w[0]].key, objects[w[1]].key),
        ));
    }
    let mut group = Group::new(ctx, p, opts.dry_run);
    for &i in &live {
        let (o, meta) = (&objects[i], &metas[i]);
        if o.parsed.merged_last.is_some() || o.size > MAX_MERGE_INPUT {
            group.flush(stats).await?;
            continue;
        }
        if !group.accepts(meta) {
            group.flush(stats).await?;
        }
        let body = match ctx.store.get(&o.key).await {
            Ok(body) => body,
            Err(streamtier_tiers::Error::NotFound { .. }) => {
                skip_changed(p, &o.key);
                return Ok(());
            }
            Err(source) => return Err(tier(p)(source)),
        };
        let key = o.key.clone();
        let decoded = tokio::task::spawn_blocking(move || {
            let columns = typed_columns_of(&body)?;
            decode_object(body).map(|(meta, entries)| (columns, meta, entries))
        })
        .await
        .map_err(|e| Error::Task {
            partition: p.label(),
            reason: e.to_string(),
        })?;
        let (columns, decoded_meta, entries) = decoded.map_err(|source| Error::Format {
            partition: p.label(),
            key: key.clone(),
            source,
        })?;
        if decoded_meta != *meta {
            return Err(refuse(p, format!("`{key}` changed while it was read")));
        }
        let payload: u64 = entries.iter().map(|e| e.payload_len() as u64).sum();
        if !group.fits(&columns, payload) {
            group.flush(stats).await?;
        }
        group.add(o, meta.clone(), columns, payload, entries).await?;
    }
    group.flush(stats).await?;
    for i in leftovers {
        if !opts.dry_run {
            ctx.store.delete(&objects[i].key).await.map_err(tier(p))?;
            info!(partition = %p.label(), object_key = %objects[i].key, "removed an object that a merged object holds");
        }
        stats.leftovers += 1;
    }
    Ok(())
}

/// A run of consecutive objects being merged.
struct Group<'a> {
    ctx: &'a Context,
    p: &'a Partition,
    dry_run: bool,
    members: Vec<(String, u64, ObjectMeta)>,
    span: Option<ObjectKey>,
    columns: Arc<Vec<TypedColumn>>,
    /// The first member's entries, until a second one joins (a run of one is left alone).
    first_entries: Option<Vec<Entry>>,
    builder: Option<ObjectBuilder>,
    entries: u64,
    payload: u64,
}

impl<'a> Group<'a> {
    fn new(ctx: &'a Context, p: &'a Partition, dry_run: bool) -> Self {
        Group {
            ctx,
            p,
            dry_run,
            members: Vec::new(),
            span: None,
            columns: Arc::default(),
            first_entries: None,
            builder: None,
            entries: 0,
            payload: 0,
        }
    }

    /// Whether `meta` may follow: same stream, entries-added offsets without a gap (a gap
    /// record points between two objects), and within `max_object_entries`.
    fn accepts(&self, meta: &ObjectMeta) -> bool {
        let Some((_, _, last)) = self.members.last() else {
            return true;
        };
        let first_offset = meta
            .last_offset
            .and_then(|l| (l + 1).checked_sub(meta.entry_count));
        last.stream == meta.stream
            && last.last_offset.is_some_and(|o| first_offset == Some(o + 1))
            && self.entries + meta.entry_count <= self.ctx.config.max_object_entries
    }

    /// Whether an object with these typed columns and payload bytes fits.
    fn fits(&self, columns: &[TypedColumn], payload: u64) -> bool {
        self.members.is_empty()
            || (self.columns.as_slice() == columns
                && self.payload + payload <= self.ctx.config.max_object_bytes)
    }

    async fn add(
        &mut self,
        o: &ObjectRef,
        meta: ObjectMeta,
        columns: Vec<TypedColumn>,
        payload: u64,
        entries: Vec<Entry>,
    ) -> Result<()> {
        self.entries += meta.entry_count;
        self.payload += payload;
        self.members.push((o.key.clone(), o.size, meta));
        if self.members.len() == 1 {
            self.span = Some(o.parsed.clone());
            self.columns = Arc::new(columns);
            self.first_entries = Some(entries);
            return Ok(());
        }
        if self.dry_run {
            return Ok(());
        }
        if self.builder.is_none() {
            let options = EncodeOptions {
                zstd_level: self.ctx.config.zstd_level,
                row_group_bytes: usize::try_from(self.ctx.config.row_group_bytes).unwrap_or(usize::MAX),
                ..EncodeOptions::default()
            };
            let key = self.members[0].0.clone();
            let mut builder =
                ObjectBuilder::new(self.p, &self.ctx.store, key, &self.columns, &options).await?;
            let held = self.first_entries.take().unwrap_or_default();
            builder.write(EntryBatch::from_entries(&held)).await?;
            self.builder = Some(builder);
        }
        if let Some(builder) = self.builder.as_mut() {
            builder.write(EntryBatch::from_entries(&entries)).await?;
        }
        Ok(())
    }

    /// Writes the merged object of a run of two or more, then removes its members in key
    /// order; a run of one is left as it is. Starts a new run either way.
    async fn flush(&mut self, stats: &mut CompactStats) -> Result<()> {
        let members = std::mem::take(&mut self.members);
        let builder = self.builder.take();
        self.first_entries = None;
        let (entries, span) = (std::mem::take(&mut self.entries), self.span.take());
        self.payload = 0;
        let (Some(span), Some((_, _, first)), Some((_, _, last))) = (span, members.first(), members.last())
        else {
            return Ok(());
        };
        if members.len() < 2 {
            return Ok(());
        }
        let meta = ObjectMeta {
            topic: self.p.topic.clone(),
            partition: self.p.partition,
            stream: first.stream.clone(),
            first_id: first.first_id,
            last_id: last.last_id,
            entry_count: entries,
            last_offset: last.last_offset,
        };
        let key = layout::merged_object_key(
            &self.p.topic,
            self.p.partition,
            span.span,
            meta.first_id,
            meta.last_id,
        );
        stats.written += 1;
        stats.merged += members.len() as u64;
        stats.entries += entries;
        stats.bytes_before += members.iter().map(|(_, size, _)| size).sum::<u64>();
        let Some(builder) = builder.filter(|_| !self.dry_run) else {
            return Ok(());
        };
        let spool = builder.finish(meta.clone()).await?;
        stats.bytes_after += spool.len();
        let store = &self.ctx.store;
        let outcome = store
            .put_spooled_if_absent(&key, spool, &meta.to_s3_metadata())
            .await
            .map_err(tier(self.p))?;
        if outcome == PutOutcome::AlreadyExists {
            // Another compactor, or an earlier run of this one, merged the same run.
            let theirs = chain::object_meta(store, self.p, &key).await?;
            if theirs != meta {
                return Err(refuse(self.p, format!("`{key}` exists and holds other entries")));
            }
        }
        for (member, _, _) in &members {
            store.delete(member).await.map_err(tier(self.p))?;
        }
        info!(partition = %self.p.label(), object_key = %key, objects = members.len(), num_entries = entries, "merged objects");
        Ok(())
    }
}

fn refuse(p: &Partition, reason: String) -> Error {
    Error::Compaction {
        partition: p.label(),
        reason,
    }
}

fn is_gone(e: &Error) -> bool {
    matches!(
        e,
        Error::Tier {
            source: streamtier_tiers::Error::NotFound { .. },
            ..
        }
    )
}

/// Another compactor changed the span while it was read: leave it to the next run.
fn skip_changed(p: &Partition, key: &str) {
    warn!(partition = %p.label(), object_key = %key, "an object of the span went away while it was read; leaving the span to the next run");
}

/// The result of compacting one partition.
#[derive(Debug)]
pub struct CompactReport {
    /// The partition.
    pub partition: Partition,
    /// What was done, or why it stopped.
    pub result: Result<CompactStats>,
}

/// Compacts `partitions`, `archive.concurrency` at a time, and reports on each.
pub async fn compact_all(
    ctx: &Context,
    partitions: Vec<Partition>,
    opts: &CompactOptions,
    shutdown: &CancellationToken,
) -> Vec<CompactReport> {
    use futures::StreamExt;
    let mut reports: Vec<CompactReport> = futures::stream::iter(partitions)
        .map(|p| async move {
            let result = compact_partition(ctx, &p, opts, shutdown).await;
            CompactReport { partition: p, result }
        })
        .buffer_unordered(ctx.config.concurrency)
        .collect()
        .await;
    reports.sort_by(|a, b| {
        (&a.partition.topic, a.partition.partition).cmp(&(&b.partition.topic, b.partition.partition))
    });
    reports
}
