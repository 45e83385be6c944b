//! A partition's archive in the store, as every crate reads it: its objects in key order, what
//! each object's footer says, and its gap records.
//!
//! Object keys sort in id order within a partition (see `streamtier_schemas::layout`), so one
//! listing from a key on walks the chain from there. Gap records (`_gaps/`) and group snapshots
//! (`_groups/`) sort before every object (`dt=`): object listings start at `dt` and never page
//! through them, and the chain's end is found from the newest day (a delimited listing), so
//! neither costs more as snapshots pile up or the archive ages. The archiver finds the chain's end here, compaction walks its spans, the
//! replayer picks the objects of a range and the API sums them up: one lister, one footer reader.
//! [`catalog`] finds the topics and partitions the archive holds when Redis has lost them.

pub mod catalog;
pub mod footer;

use std::collections::VecDeque;

use streamtier_schemas::groups::GroupSnapshot;
use streamtier_schemas::layout::{self, ObjectKey};
use streamtier_schemas::{GapRecord, ObjectMeta, StreamId};

use crate::store::Store;
use crate::{Error, Result};

pub use footer::{ObjectFile, FOOTER_PREFETCH, MAX_FOOTER_PREFETCH};

/// Listing page size.
pub const LIST_PAGE: usize = 1000;

/// One archived object of a partition, as a listing shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectRef {
    /// Key in the store.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Its first entry id (from the key).
    pub first_id: StreamId,
    /// An upper bound of its ids, from the key: the last id of a merged object, else the end
    /// of its span (hour or day), which no object crosses.
    pub below: StreamId,
    /// The parts of its key.
    pub parsed: ObjectKey,
}

impl ObjectRef {
    /// The object of a listing entry, or `None` for a key that is not an object's.
    pub fn listed(key: String, size: u64) -> Option<ObjectRef> {
        let parsed = layout::parse_object_key(&key)?;
        let below = match parsed.merged_last {
            Some(last) => last,
            None => StreamId::new(parsed.span.end_ms(parsed.first_id), 0)
                .predecessor()
                .unwrap_or(StreamId::MIN),
        };
        Some(ObjectRef {
            key,
            size,
            first_id: parsed.first_id,
            below,
            parsed,
        })
    }
}

/// The archive of one partition.
#[derive(Clone, Debug)]
pub struct PartitionArchive {
    store: Store,
    topic: String,
    partition: u32,
    prefix: String,
}

impl PartitionArchive {
    /// The archive of `topic`'s `partition` in `store`.
    pub fn new(store: Store, topic: &str, partition: u32) -> Self {
        PartitionArchive {
            prefix: layout::partition_prefix(topic, partition),
            store,
            topic: topic.to_owned(),
            partition,
        }
    }

    /// The store it lives in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The prefix every key of the partition starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Pages of the objects whose keys sort after `start_after` (an object key, or a seek
    /// position such as [`layout::day_seek`]), or of all objects.
    ///
    /// The listing never starts before the first day (`dt=`): gap records (`_gaps/`) and group
    /// snapshots (`_groups/`) sort before every object, and a year of snapshots would otherwise
    /// be paged through before the first object.
    pub fn pages(&self, start_after: Option<String>) -> ObjectPages {
        // Every object key of the partition starts with `<prefix>dt=`, after this seek.
        let floor = format!("{}dt", self.prefix);
        ObjectPages {
            store: self.store.clone(),
            prefix: self.prefix.clone(),
            start_after: Some(start_after.map_or(floor.clone(), |s| s.max(floor))),
            done: false,
        }
    }

    /// The objects that directly follow the key `after` (or the first ones), at most `n`.
    ///
    /// # Errors
    /// The store's errors.
    pub async fn objects_after(&self, after: Option<&str>, n: usize) -> Result<Vec<ObjectRef>> {
        let mut pages = self.pages(after.map(str::to_owned));
        let mut out = Vec::new();
        while out.len() < n {
            let Some(page) = pages.next_page().await? else {
                break;
            };
            out.extend(page);
        }
        out.truncate(n);
        Ok(out)
    }

    /// The last object whose key sorts after `after` (or the last of all).
    ///
    /// Without `after`, it lists the partition's days (one delimited listing: a page holds
    /// 1,000 days) and then the objects of the newest day that has one, so that finding the
    /// chain's end costs about two requests whatever the archive's age.
    ///
    /// # Errors
    /// The store's errors.
    pub async fn last_object(&self, after: Option<&str>) -> Result<Option<ObjectRef>> {
        let Some(after) = after else {
            let days = self.store.list_prefixes(&self.prefix).await?;
            for day in days.iter().rev().filter(|d| layout::is_day_prefix(d)) {
                // `…/dt=2024-01-01` sorts just before every key of that day.
                if let Some(object) = self.last_after(day.trim_end_matches('/')).await? {
                    return Ok(Some(object));
                }
            }
            return Ok(None);
        };
        self.last_after(after).await
    }

    async fn last_after(&self, after: &str) -> Result<Option<ObjectRef>> {
        let mut pages = self.pages(Some(after.to_owned()));
        let mut last = None;
        while let Some(mut page) = pages.next_page().await? {
            last = page.pop().or(last);
        }
        Ok(last)
    }

    /// What a listed object's footer says (one ranged read, usually).
    ///
    /// # Errors
    /// The store's errors; [`Error::Object`] when the footer is unreadable.
    pub async fn meta(&self, object: &ObjectRef) -> Result<ObjectMeta> {
        footer::read_meta(&self.store, &object.key, object.size).await
    }

    /// The object named `key` and its metadata: the S3 user metadata when it carries them
    /// (one `HEAD`), else its footer.
    ///
    /// # Errors
    /// [`Error::NotFound`] when it is gone, the store's other errors; [`Error::Object`] when
    /// `key` does not name an object or its footer is unreadable.
    pub async fn meta_of_key(&self, key: &str) -> Result<ObjectMeta> {
        let head = self.store.head(key).await?;
        let pairs = head.metadata.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        if let Ok(meta) = ObjectMeta::from_s3_metadata(pairs) {
            return Ok(meta);
        }
        footer::read_meta(&self.store, key, head.size).await
    }

    /// The gap records of the partition in key order, at most `limit`.
    ///
    /// # Errors
    /// The store's errors; [`Error::Object`] for a record that is not one.
    pub async fn gaps(&self, limit: usize) -> Result<Vec<GapRecord>> {
        let prefix = layout::gaps_prefix(&self.topic, self.partition);
        let listed = self.store.list(&prefix, None, Some(limit)).await?;
        let mut gaps = Vec::with_capacity(listed.len());
        for info in listed {
            let body = self.store.get(&info.key).await?;
            let record = GapRecord::from_json(&body).map_err(|source| Error::Object {
                key: info.key.clone(),
                source,
            })?;
            gaps.push(record);
        }
        Ok(gaps)
    }

    /// Whether a gap record explains entries missing after `after` and before `before`.
    ///
    /// # Errors
    /// The store's errors.
    pub async fn gap_between(&self, after: StreamId, before: StreamId) -> Result<bool> {
        let prefix = layout::gaps_prefix(&self.topic, self.partition);
        let start = after
            .predecessor()
            .map(|p| layout::gap_key(&self.topic, self.partition, p));
        let page = self.store.list(&prefix, start.as_deref(), Some(1)).await?;
        Ok(page
            .first()
            .and_then(|o| layout::parse_gap_key(&o.key))
            .is_some_and(|g| g.after >= after && g.after < before))
    }

    /// The latest group snapshot taken at or before `at_ms` (or the latest of all), with its
    /// key. Snapshot keys sort by time: the listing starts a day before `at_ms` (or `now_ms`),
    /// then 30 days before, then at the start.
    ///
    /// # Errors
    /// The store's errors; [`Error::Object`] for a snapshot that cannot be read.
    pub async fn group_snapshot(
        &self,
        at_ms: Option<u64>,
        now_ms: u64,
    ) -> Result<Option<(String, GroupSnapshot)>> {
        const DAY_MS: u64 = 86_400_000;
        let bound = at_ms.unwrap_or(u64::MAX);
        let anchor = at_ms.unwrap_or(now_ms);
        let prefix = layout::groups_prefix(&self.topic, self.partition);
        for back in [Some(DAY_MS), Some(30 * DAY_MS), None] {
            let mut start = back
                .map(|b| layout::group_snapshot_key(&self.topic, self.partition, anchor.saturating_sub(b)));
            let mut found = None;
            'listing: loop {
                let page = self
                    .store
                    .list(&prefix, start.as_deref(), Some(LIST_PAGE))
                    .await?;
                let full = page.len() == LIST_PAGE;
                for info in page {
                    match layout::parse_group_snapshot_key(&info.key) {
                        Some(t) if t > bound => break 'listing,
                        Some(_) => found = Some(info.key.clone()),
                        None => {}
                    }
                    start = Some(info.key);
                }
                if !full {
                    break;
                }
            }
            if let Some(key) = found {
                let body = self.store.get(&key).await?;
                let snapshot = GroupSnapshot::from_json(&body).map_err(|source| Error::Object {
                    key: key.clone(),
                    source,
                })?;
                return Ok(Some((key, snapshot)));
            }
        }
        Ok(None)
    }

    /// Walks the objects that may hold ids after `after` (all when `None`) and below `to`.
    pub fn lister(&self, after: Option<StreamId>, to: Option<StreamId>) -> ObjectLister {
        // Objects never span two days (hourly or daily), so the one holding the first id after
        // `after` starts on the day of `after`'s successor or later: list from that day's prefix
        // (gap records sort earlier). Objects of earlier days hold only ids up to `after`.
        let start = after
            .and_then(StreamId::successor)
            .map(|id| layout::day_seek(&self.topic, self.partition, id));
        ObjectLister {
            pages: self.pages(start),
            buffered: VecDeque::new(),
            to,
        }
    }
}

/// Pages of a partition's objects in key order (keys that are not objects' left out).
pub struct ObjectPages {
    store: Store,
    prefix: String,
    start_after: Option<String>,
    done: bool,
}

impl ObjectPages {
    /// The next page (possibly empty when a listing page held no object), or `None` at the end.
    ///
    /// # Errors
    /// The store's errors.
    pub async fn next_page(&mut self) -> Result<Option<Vec<ObjectRef>>> {
        if self.done {
            return Ok(None);
        }
        let page = self
            .store
            .list(&self.prefix, self.start_after.as_deref(), Some(LIST_PAGE))
            .await?;
        self.done = page.len() < LIST_PAGE;
        if let Some(last) = page.last() {
            self.start_after = Some(last.key.clone());
        }
        Ok(Some(
            page.into_iter()
                .filter_map(|info| ObjectRef::listed(info.key, info.size))
                .collect(),
        ))
    }

    /// The key the next page starts after.
    pub fn position(&self) -> Option<&str> {
        self.start_after.as_deref()
    }
}

/// Walks a partition's objects in id order, skipping those that end at or before a cursor and
/// stopping at the first that starts at or after the range end.
pub struct ObjectLister {
    pages: ObjectPages,
    buffered: VecDeque<ObjectRef>,
    to: Option<StreamId>,
}

impl ObjectLister {
    async fn fill(&mut self) -> Result<()> {
        while self.buffered.len() < 2 {
            let Some(page) = self.pages.next_page().await? else {
                break;
            };
            for object in page {
                if self.to.is_some_and(|to| object.first_id >= to) {
                    self.pages.done = true;
                    break;
                }
                self.buffered.push_back(object);
            }
        }
        Ok(())
    }

    /// The next object that may hold ids after `after`.
    ///
    /// # Errors
    /// The store's errors.
    pub async fn next_after(&mut self, after: Option<StreamId>) -> Result<Option<ObjectRef>> {
        loop {
            self.fill().await?;
            let Some(object) = self.buffered.pop_front() else {
                return Ok(None);
            };
            // An object's ids lie below the next object's first id, and at or below the bound
            // its key gives (listings start at the day of the cursor, so the objects of its
            // earlier hours are skipped here without being opened).
            let ends_before = after.is_some_and(|after| {
                object.below <= after
                    || self
                        .buffered
                        .front()
                        .is_some_and(|next| after.successor().is_none_or(|s| next.first_id <= s))
            });
            if !ends_before {
                return Ok(Some(object));
            }
        }
    }
}
