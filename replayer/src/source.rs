//! One partition's entries in a range, wherever they live: archived objects first, then the part
//! still only in Redis, with no duplicate and no hole at the seam.
//!
//! The source keeps a cursor (the last id handed out). It reads the archive from the cursor on;
//! when the archive is exhausted it reads Redis after the cursor. Redis trims with `MINID`, so
//! when the stream's first entry is at or before the cursor's successor, Redis holds every
//! entry after the cursor. Otherwise entries between the cursor and Redis' first entry were
//! trimmed; if the archive grew meanwhile (new objects after the last one read) the source goes
//! back to it, else those entries were never archived (a recorded gap) and Redis goes on.

use streamtier_schemas::{layout, Entry, StreamId};
use streamtier_tiers::archive::{ObjectRef, PartitionArchive, FOOTER_PREFETCH};
use streamtier_tiers::hot::Hot;
use streamtier_tiers::store::Store;

use crate::archive::{open_object, ObjectBlocks};
use crate::filter::Filter;
use crate::range::IdRange;
use crate::readahead::Readahead;
use crate::{Error, Result};

/// Entries read from Redis per request.
pub const REDIS_BATCH: usize = 1000;
/// Times in a row a partition lists its archive again because a listed object was gone
/// (replaced by compaction) before it fails.
const MAX_RELISTS: u32 = 8;

/// Where a source reads from now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Archive,
    Redis,
    Done,
}

/// Counters of what a source read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceStats {
    /// Objects opened.
    pub objects_read: u64,
    /// Bytes fetched from the store.
    pub bytes_read: u64,
    /// Of those, bytes fetched for footers and page indexes.
    pub footer_bytes: u64,
    /// Entries read from Redis.
    pub redis_entries: u64,
}

/// Reads one partition's range in id order.
pub struct PartitionSource {
    hot: Hot,
    store: Store,
    archive: PartitionArchive,
    topic: String,
    partition: u32,
    stream: String,
    range: IdRange,
    cursor: Option<StreamId>,
    phase: Phase,
    ahead: Option<Readahead>,
    current: Option<(ObjectRef, ObjectBlocks)>,
    last_object: Option<String>,
    /// Last id and entries-added offset of the previous object read, to prove continuity.
    previous: Option<(StreamId, Option<u64>)>,
    /// Bytes of the current object already added to `stats`.
    counted: u64,
    /// First request for the next object's footer: what the previous one spanned, and a margin.
    footer_prefetch: usize,
    /// Listings started again in a row because a listed object was gone.
    relists: u32,
    /// Blocks whose statistics exclude this filter are not read (its caller still filters the
    /// entries of the others).
    filter: Option<Filter>,
    /// What was read so far.
    pub stats: SourceStats,
}

impl PartitionSource {
    /// A source for `stream` (partition `partition` of `topic`), resuming after `cursor`.
    pub fn new(
        hot: Hot,
        store: Store,
        topic: &str,
        partition: u32,
        stream: &str,
        range: IdRange,
        cursor: Option<StreamId>,
    ) -> Self {
        PartitionSource {
            hot,
            archive: PartitionArchive::new(store.clone(), topic, partition),
            store,
            topic: topic.to_string(),
            partition,
            stream: stream.to_string(),
            range,
            cursor,
            phase: Phase::Archive,
            ahead: None,
            current: None,
            last_object: None,
            previous: None,
            counted: 0,
            footer_prefetch: FOOTER_PREFETCH,
            relists: 0,
            filter: None,
            stats: SourceStats::default(),
        }
    }

    /// Leaves unread the blocks whose statistics say `filter` takes nothing from them. The
    /// entries handed out are still all of the read blocks': the caller applies the filter.
    pub fn skipping_for(mut self, filter: Option<Filter>) -> Self {
        self.filter = filter;
        self
    }

    fn label(&self) -> String {
        format!("{}/{}", self.topic, self.partition)
    }

    /// The exclusive lower bound of what is still to come.
    fn after(&self) -> Option<StreamId> {
        self.cursor.or_else(|| self.range.from.predecessor())
    }

    /// The next entries in id order (never empty), or `None` when the range is done.
    ///
    /// # Errors
    /// [`Error::BadObject`] for a missing or damaged object (naming the last id handed out),
    /// [`Error::Tier`] when Redis or the store fails.
    pub async fn next_batch(&mut self) -> Result<Option<Vec<Entry>>> {
        loop {
            if self.after().is_some_and(|a| self.range.ends_at_or_before(a)) {
                self.phase = Phase::Done;
            }
            match self.phase {
                Phase::Done => return Ok(None),
                Phase::Archive => {
                    if let Some(entries) = self.next_archived().await? {
                        return Ok(Some(entries));
                    }
                }
                Phase::Redis => {
                    if let Some(entries) = self.next_from_redis().await? {
                        return Ok(Some(entries));
                    }
                }
            }
        }
    }

    fn bad_object(&self, key: &str, source: crate::archive::ObjectError) -> Error {
        Error::BadObject {
            partition: self.label(),
            key: key.to_string(),
            last_written: self.cursor,
            source,
        }
    }

    /// One step in the archive; `None` means "look again" (the phase may have changed).
    async fn next_archived(&mut self) -> Result<Option<Vec<Entry>>> {
        if self.current.is_none() {
            let after = self.after();
            let ahead = self.ahead.get_or_insert_with(|| {
                let lister = self.archive.lister(after, self.range.to);
                Readahead::new(self.store.clone(), lister)
            });
            let next = ahead
                .next(after)
                .await
                .map_err(Error::tier(format!("{}: list archive", self.topic)))?;
            let Some((object, body)) = next else {
                self.ahead = None;
                self.phase = Phase::Redis;
                return Ok(None);
            };
            let opened = match body.transpose() {
                Ok(body) => {
                    open_object(
                        &self.store,
                        &object,
                        self.range,
                        after,
                        self.footer_prefetch,
                        body,
                        self.filter.as_ref(),
                    )
                    .await
                }
                Err(e) => Err(e),
            };
            let blocks = match opened {
                Ok(blocks) => blocks,
                Err(e) => return self.vanished_or(&object.key, e).await,
            };
            self.footer_prefetch = blocks.footer_span() + blocks.footer_span() / 4;
            self.stats.objects_read += 1;
            self.stats.footer_bytes += blocks.footer_bytes();
            if after.is_some_and(|a| blocks.meta().last_id <= a) {
                // Everything in it was handed out already: the rest of a group of objects that
                // compaction merged into one read before them (both exist for a moment).
                return Ok(None);
            }
            let (first_id, first_offset, last_offset, last_id) = {
                let meta = blocks.meta();
                (
                    meta.first_id,
                    meta.last_offset.map(|l| (l + 1).saturating_sub(meta.entry_count)),
                    meta.last_offset,
                    meta.last_id,
                )
            };
            // An object that starts at or before the previous one's end (a merged object read
            // after some of its parts) leaves no hole between them.
            let follows = self.previous.filter(|(prev_last, _)| first_id > *prev_last);
            if let (Some((prev_last, Some(prev_offset))), Some(first_offset)) = (follows, first_offset) {
                // Entries that vanished before they were archived are recorded as gaps after the
                // last id known exactly, which may lie before this object or inside it.
                if first_offset != prev_offset + 1
                    && !self
                        .archive
                        .gap_between(prev_last, last_id)
                        .await
                        .map_err(Error::tier(format!("{}: list gaps", self.label())))?
                {
                    let reason = format!(
                        "the archive has a hole before this object: entries-added offsets jump from \
                         {prev_offset} to {first_offset} after `{prev_last}` and no gap record explains it \
                         (an object is missing)"
                    );
                    return Err(self.bad_object(&object.key, reason.into()));
                }
            }
            self.previous = Some((last_id, last_offset));
            self.last_object = Some(object.key.clone());
            self.current = Some((object, blocks));
            self.counted = 0;
        }
        let Some((object, blocks)) = self.current.as_mut() else {
            return Ok(None);
        };
        let result = blocks.next_block().await;
        // Count fetched bytes as they come: a range may end (or a job stop) inside an object.
        let fetched = blocks.bytes_fetched();
        self.stats.bytes_read += fetched - self.counted;
        self.counted = fetched;
        match result {
            Ok(Some(entries)) => {
                let after = self.after();
                let entries: Vec<Entry> = entries
                    .into_iter()
                    .filter(|e| after.is_none_or(|a| e.id > a))
                    .collect();
                self.relists = 0;
                match entries.last() {
                    Some(last) => {
                        self.cursor = Some(last.id);
                        Ok(Some(entries))
                    }
                    None => Ok(None),
                }
            }
            Ok(None) => {
                self.current = None;
                Ok(None)
            }
            Err(e) => {
                let key = object.key.clone();
                self.vanished_or(&key, e).await
            }
        }
    }

    /// After a failed read of `key`: when the object is gone (compaction merged it into
    /// another), lists again from the cursor and answers "look again"; otherwise, or after
    /// [`MAX_RELISTS`] such turns in a row, fails with `error`.
    async fn vanished_or(
        &mut self,
        key: &str,
        error: crate::archive::ObjectError,
    ) -> Result<Option<Vec<Entry>>> {
        let gone = matches!(
            self.store.head(key).await,
            Err(streamtier_tiers::Error::NotFound { .. })
        );
        if !gone || self.relists >= MAX_RELISTS {
            return Err(self.bad_object(key, error));
        }
        self.relists += 1;
        tracing::info!(partition = %self.label(), object_key = %key, "object replaced by compaction; listing again");
        self.ahead = None;
        self.current = None;
        Ok(None)
    }

    /// Where to look for objects added after the last one read.
    fn grew_after(&self) -> Option<String> {
        self.last_object.clone().or_else(|| {
            self.after()
                .map(|a| layout::day_seek(&self.topic, self.partition, a))
        })
    }

    /// One step in Redis; `None` means "look again".
    async fn next_from_redis(&mut self) -> Result<Option<Vec<Entry>>> {
        let after = self.after().unwrap_or(StreamId::MIN);
        let batch = self
            .hot
            .read_after(&self.stream, after, self.range.last(), REDIS_BATCH)
            .await
            .map_err(Error::tier(format!("{}: read `{}`", self.label(), self.stream)))?;
        let Some(info) = batch.info else {
            self.phase = Phase::Done;
            return Ok(None);
        };
        // An empty stream is not proof of anything: the archiver may have archived and trimmed
        // everything after the cursor since the archive was read.
        let complete = info
            .first_id
            .is_some_and(|first| after.successor().is_none_or(|s| first <= s));
        let grew = if complete {
            false
        } else {
            // Borrows the archive only: the source's Parquet stream is `Send` but not `Sync`.
            let page = self
                .archive
                .pages(self.grew_after())
                .next_page()
                .await
                .map_err(Error::tier(format!("{}: list archive", self.label())))?;
            let to = self.range.to;
            page.unwrap_or_default()
                .iter()
                .any(|o| to.is_none_or(|to| o.first_id < to))
        };
        if grew {
            // The archiver moved on and trimmed while we read: the entries between the cursor and
            // Redis' first entry are in the new objects.
            self.phase = Phase::Archive;
            return Ok(None);
        }
        let entries: Vec<Entry> = batch
            .entries
            .to_entries()
            .into_iter()
            .filter(|e| self.range.contains(e.id))
            .collect();
        match entries.last() {
            Some(last) => {
                self.cursor = Some(last.id);
                self.stats.redis_entries += entries.len() as u64;
                Ok(Some(entries))
            }
            None => {
                self.phase = Phase::Done;
                Ok(None)
            }
        }
    }
}
