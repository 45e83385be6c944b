//! Reading the archived part of a range: choose objects by key, row groups and pages by `ts`
//! statistics, decode whole checksum blocks and prove each one before handing it on.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, RowSelection, RowSelector};
use parquet::arrow::async_reader::ParquetRecordBatchStream;
use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::statistics::Statistics;
use streamtier_schemas::parquet::{
    check_chunk_ranges, guarded, key_value, meta_of, parse_blocks, reader_schema, verify_block, Block,
    BLOCKS_KEY, COL_TS,
};
use streamtier_schemas::{decode_object, entries_from_batch, Entry, ObjectMeta, StreamId};
use streamtier_tiers::store::Store;

use crate::filter::Filter;
use crate::range::IdRange;
use streamtier_tiers::archive::footer::load_footer;
use streamtier_tiers::archive::{ObjectFile, ObjectRef, FOOTER_PREFETCH, MAX_FOOTER_PREFETCH};

/// What went wrong reading an object.
pub type ObjectError = Box<dyn std::error::Error + Send + Sync>;

/// The verified blocks of one object that overlap a range, decoded one at a time.
pub struct ObjectBlocks {
    stream: Option<ParquetRecordBatchStream<ObjectFile>>,
    /// Blocks still to come, in order.
    blocks: VecDeque<Block>,
    pending: Vec<Entry>,
    /// Entries of an object without block checksums, decoded whole and verified.
    whole: Option<std::vec::IntoIter<Entry>>,
    range: IdRange,
    after: Option<StreamId>,
    last_seen: Option<StreamId>,
    meta: ObjectMeta,
    fetched: Arc<AtomicU64>,
    footer: u64,
    footer_span: usize,
}

/// Opens `object` for the ids in `range` that are above `after`, asking first for the last
/// `prefetch` bytes (see [`ObjectBlocks::footer_span`]), or reading from `body` when the whole
/// object was fetched ahead (counted as fetched).
///
/// # Errors
/// The store's errors, or a description of the damage when the footer is unreadable.
pub async fn open_object(
    store: &Store,
    object: &ObjectRef,
    range: IdRange,
    after: Option<StreamId>,
    prefetch: usize,
    body: Option<Bytes>,
    filter: Option<&Filter>,
) -> Result<ObjectBlocks, ObjectError> {
    if body.as_ref().is_some_and(|b| b.len() as u64 != object.size) {
        return Err(format!(
            "the listing says {} bytes, a read gave {}",
            object.size,
            body.map_or(0, |b| b.len())
        )
        .into());
    }
    let whole = body.is_some();
    let mut file = ObjectFile::new(store.clone(), object.key.clone(), object.size, body.clone());
    let fetched = file.fetched();
    let (metadata, footer_span) = load_footer(
        &mut file,
        prefetch.clamp(FOOTER_PREFETCH, MAX_FOOTER_PREFETCH),
        PageIndexPolicy::Optional,
    )
    .await?;
    let metadata = Arc::new(metadata);
    let footer = if whole {
        footer_span as u64
    } else {
        fetched.load(Ordering::Relaxed)
    };
    check_chunk_ranges(&metadata, object.size as usize)?;
    let meta = meta_of(&metadata)?;
    if meta.first_id != object.first_id {
        return Err(format!(
            "footer says the first id is `{}`, the key says `{}`",
            meta.first_id, object.first_id
        )
        .into());
    }
    let counter = fetched.clone();
    let opened = move |meta, stream, blocks, whole| ObjectBlocks {
        stream,
        blocks,
        pending: Vec::new(),
        whole,
        range,
        after,
        last_seen: None,
        meta,
        fetched: counter,
        footer,
        footer_span,
    };
    let Some(blocks) = key_value(&metadata, BLOCKS_KEY) else {
        // Written before block checksums: verify the whole object (bounded by the archiver's
        // `max_object_bytes`).
        let data = match body {
            Some(body) => body,
            None => {
                let data = store.get(&object.key).await?;
                fetched.fetch_add(data.len() as u64, Ordering::Relaxed);
                data
            }
        };
        let (meta, entries) = decode_object(data)?;
        return Ok(opened(meta, None, VecDeque::new(), Some(entries.into_iter())));
    };
    let blocks = parse_blocks(&blocks)?;
    let total: u64 = blocks.iter().map(|b| b.rows).sum();
    if total != meta.entry_count {
        return Err(format!(
            "block checksums cover {total} entries, the footer says {}",
            meta.entry_count
        )
        .into());
    }
    let candidates = candidate_rows(&metadata, range, after);
    let (chosen, rows) = blocks_covering(&blocks, candidates);
    // Each block with its rows; a filter's statistics may leave some out.
    let mut spans = Vec::with_capacity(chosen.len());
    let mut at = rows.start;
    for block in chosen {
        spans.push((block, at..at + block.rows));
        at += block.rows;
    }
    if let Some(f) = filter {
        let keep = crate::prune::blocks_may_match(&metadata, &spans, f);
        spans = spans
            .into_iter()
            .zip(keep)
            .filter(|(_, k)| *k)
            .map(|(s, _)| s)
            .collect();
    }
    let chosen: Vec<Block> = spans.iter().map(|(b, _)| *b).collect();
    let plain = ArrowReaderMetadata::try_new(
        metadata.clone(),
        ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional),
    )?;
    let (wide, roots) = reader_schema(plain.schema())?;
    let options = ArrowReaderOptions::new()
        .with_page_index_policy(PageIndexPolicy::Optional)
        .with_schema(Arc::new(wide));
    let reader_meta = ArrowReaderMetadata::try_new(metadata.clone(), options)?;
    let mask = ProjectionMask::roots(reader_meta.parquet_schema(), roots);
    let ranges: Vec<Range<u64>> = spans.into_iter().map(|(_, r)| r).collect();
    let (groups, selection) = select_rows(&metadata, &ranges);
    let batch = chosen.iter().map(|b| b.rows).min().unwrap_or(1).max(1) as usize;
    let stream = if chosen.is_empty() {
        None
    } else {
        let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(file, reader_meta)
            .with_projection(mask)
            .with_row_groups(groups)
            .with_row_selection(selection)
            .with_batch_size(batch);
        Some(builder.build()?)
    };
    Ok(opened(meta, stream, chosen.into(), None))
}

/// Rows (global indexes) that may hold ids in `range` above `after`, from row-group statistics
/// and, when present, the page index of `ts`.
fn candidate_rows(metadata: &ParquetMetaData, range: IdRange, after: Option<StreamId>) -> Range<u64> {
    let lo_ms = after.map_or(range.from.ms, |a| a.ms.max(range.from.ms)) as i64;
    let hi_ms = range.to.map_or(i64::MAX, |to| to.ms.min(i64::MAX as u64) as i64);
    let ts_col = metadata
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|c| c.path().string() == COL_TS);
    let mut lo: Option<u64> = None;
    let mut hi = 0u64;
    let mut start = 0u64;
    for (g, group) in metadata.row_groups().iter().enumerate() {
        let rows = group.num_rows() as u64;
        let mut spans: Vec<(u64, u64, Option<i64>, Option<i64>)> = Vec::new();
        let page_index = metadata.page_index_for_row_group(g);
        if let Some(col) = ts_col {
            if let (Some(ColumnIndexMetaData::INT64(index)), Some(locs)) =
                (page_index.column_index(col), page_index.offset_index(col))
            {
                let locs = locs.page_locations();
                for (p, loc) in locs.iter().enumerate() {
                    let end = locs.get(p + 1).map_or(rows, |n| n.first_row_index as u64);
                    spans.push((
                        start + loc.first_row_index as u64,
                        start + end,
                        index.min_value(p).copied(),
                        index.max_value(p).copied(),
                    ));
                }
            }
        }
        if spans.is_empty() {
            let stats = ts_col.and_then(|c| group.column(c).statistics());
            let (min, max) = match stats {
                Some(Statistics::Int64(s)) => (s.min_opt().copied(), s.max_opt().copied()),
                _ => (None, None),
            };
            spans.push((start, start + rows, min, max));
        }
        for (s, e, min, max) in spans {
            let overlaps = max.is_none_or(|max| max >= lo_ms) && min.is_none_or(|min| min <= hi_ms);
            if overlaps {
                lo.get_or_insert(s);
                hi = e;
            }
        }
        start += rows;
    }
    match lo {
        Some(lo) => lo..hi,
        None => 0..0,
    }
}

/// The blocks that cover `rows` and their row span.
fn blocks_covering(blocks: &[Block], rows: Range<u64>) -> (Vec<Block>, Range<u64>) {
    if rows.is_empty() {
        return (Vec::new(), 0..0);
    }
    let mut start = 0u64;
    let mut first = None;
    let mut span_start = 0;
    let mut chosen = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        let end = start + block.rows;
        if end > rows.start && start < rows.end {
            if first.is_none() {
                first = Some(i);
                span_start = start;
            }
            chosen.push(*block);
        }
        start = end;
    }
    let span_end = span_start + chosen.iter().map(|b| b.rows).sum::<u64>();
    (chosen, span_start..span_end)
}

/// Row groups that intersect `rows` (ascending, disjoint ranges) and the selection within them.
fn select_rows(metadata: &ParquetMetaData, rows: &[Range<u64>]) -> (Vec<usize>, RowSelection) {
    let mut groups = Vec::new();
    let mut selectors = Vec::new();
    let mut start = 0u64;
    for (g, group) in metadata.row_groups().iter().enumerate() {
        let end = start + group.num_rows() as u64;
        let mut at = start;
        for r in rows.iter().filter(|r| r.end > start && r.start < end) {
            let (s, e) = (r.start.max(start), r.end.min(end));
            if s > at {
                selectors.push(RowSelector::skip((s - at) as usize));
            }
            selectors.push(RowSelector::select((e - s) as usize));
            at = e;
        }
        if at > start {
            groups.push(g);
            if end > at {
                selectors.push(RowSelector::skip((end - at) as usize));
            }
        }
        start = end;
    }
    (groups, RowSelection::from(selectors))
}

impl ObjectBlocks {
    /// The object's footer metadata.
    pub fn meta(&self) -> &ObjectMeta {
        &self.meta
    }

    /// Bytes fetched to read the footer and page index.
    pub fn footer_bytes(&self) -> u64 {
        self.footer
    }

    /// Bytes the footer and page index span from the object's end.
    pub fn footer_span(&self) -> usize {
        self.footer_span
    }

    /// Bytes fetched from the store for this object so far, footer included.
    pub fn bytes_fetched(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
    }

    /// The next verified block's entries that lie in the range above the cursor (possibly
    /// empty), or `None` at the end.
    ///
    /// # Errors
    /// A description of the damage or the store's error.
    pub async fn next_block(&mut self) -> Result<Option<Vec<Entry>>, ObjectError> {
        if let Some(whole) = self.whole.as_mut() {
            let chunk: Vec<Entry> = whole.by_ref().take(1024).collect();
            if chunk.is_empty() {
                return Ok(None);
            }
            return Ok(Some(self.keep(chunk)));
        }
        let Some(block) = self.blocks.front().copied() else {
            return Ok(None);
        };
        while (self.pending.len() as u64) < block.rows {
            let Some(stream) = self.stream.as_mut() else {
                return Err("the object ended before its last block".into());
            };
            let next = std::panic::AssertUnwindSafe(stream.next()).catch_unwind().await;
            let batch = match next {
                Ok(Some(batch)) => batch?,
                Ok(None) => return Err("the object ended before its last block".into()),
                Err(_) => return Err("parquet reader panicked on damaged data".into()),
            };
            let entries = guarded(|| entries_from_batch(&batch))?;
            self.pending.extend(entries);
        }
        self.blocks.pop_front();
        let rest = self.pending.split_off(block.rows as usize);
        let entries = std::mem::replace(&mut self.pending, rest);
        verify_block(&entries, block)?;
        if let Some(pair) = entries.windows(2).find(|w| w[0].id >= w[1].id) {
            return Err(format!("ids not ascending: `{}` before `{}`", pair[0].id, pair[1].id).into());
        }
        if let (Some(last), Some(first)) = (self.last_seen, entries.first()) {
            if first.id <= last {
                return Err(format!("ids not ascending: `{last}` before `{}`", first.id).into());
            }
        }
        Ok(Some(self.keep(entries)))
    }

    fn keep(&mut self, mut entries: Vec<Entry>) -> Vec<Entry> {
        if let Some(last) = entries.last() {
            self.last_seen = Some(last.id);
        }
        let (range, after) = (self.range, self.after);
        entries.retain(|e| range.contains(e.id) && after.is_none_or(|a| e.id > a));
        entries
    }
}
