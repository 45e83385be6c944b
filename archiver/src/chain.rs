//! The archive chain of one partition: where it ends, read back from the store (the source of
//! truth), with the Redis hint only as a listing shortcut.

use bytes::Bytes;
use streamtier_schemas::{layout, ObjectMeta, StreamId};
use streamtier_tiers::hot::Hot;
use streamtier_tiers::store::Store;

use crate::partition::Partition;
use crate::{Error, Result};

/// Bytes read from the end of an object to find its footer in one request, usually.
const FOOTER_GUESS: u64 = 64 * 1024;
/// Listing page size.
const PAGE: usize = 1000;

/// Where a partition's archive ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    /// Key of the last object, if any.
    pub last_key: Option<String>,
    /// Last archived id (`0-0` when nothing is archived).
    pub last_id: StreamId,
    /// Entries-added offset of `last_id`, when known exactly (0 for an empty archive).
    pub last_offset: Option<u64>,
    /// While `last_offset` is unknown (an `XDEL` after the watermark hid it): the last id whose
    /// offset was exact and that offset plus the entries archived since. Kept in memory only; it
    /// lets the next exact offset count the deleted entries.
    pub estimate: Option<(StreamId, u64)>,
}

impl Chain {
    /// The chain of an empty archive.
    pub fn empty() -> Self {
        Self {
            last_key: None,
            last_id: StreamId::MIN,
            last_offset: Some(0),
            estimate: None,
        }
    }

    /// Moves the end of the chain to an object's end.
    pub fn advance(&mut self, key: String, meta: &ObjectMeta, estimate: Option<(StreamId, u64)>) {
        self.last_key = Some(key);
        self.last_id = meta.last_id;
        self.last_offset = meta.last_offset;
        self.estimate = if meta.last_offset.is_some() {
            None
        } else {
            estimate
        };
    }
}

fn tier(p: &Partition) -> impl Fn(streamtier_tiers::Error) -> Error + '_ {
    move |source| Error::Tier {
        partition: p.label(),
        source,
    }
}

/// Reads an object's footer metadata: S3 user metadata when present, else the Parquet footer.
///
/// # Errors
/// [`Error::Tier`] when the store fails, [`Error::Format`] when the footer is unreadable.
pub async fn object_meta(store: &Store, p: &Partition, key: &str) -> Result<ObjectMeta> {
    let head = store.head(key).await.map_err(tier(p))?;
    let pairs: Vec<(&str, &str)> = head
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if let Ok(meta) = ObjectMeta::from_s3_metadata(pairs) {
        return Ok(meta);
    }
    let format = |source| Error::Format {
        partition: p.label(),
        key: key.to_string(),
        source,
    };
    let tail = store
        .get_suffix(key, FOOTER_GUESS.min(head.size))
        .await
        .map_err(tier(p))?;
    let needed = crate::footer::footer_len(&tail).map_err(format)?;
    let footer: Bytes = if needed as usize <= tail.len() {
        tail
    } else {
        store.get_suffix(key, needed).await.map_err(tier(p))?
    };
    crate::footer::read_meta(&footer).map_err(format)
}

/// Finds the end of the chain from the store, starting the listing at the Redis hint when it
/// names an object that still exists.
///
/// # Errors
/// [`Error::Tier`] when Redis or the store fails, [`Error::Format`] on an unreadable footer.
pub async fn resync(hot: &Hot, store: &Store, p: &Partition) -> Result<Chain> {
    let prefix = layout::partition_prefix(&p.topic, p.partition);
    let hint = hot
        .chain_hint(&p.stream)
        .await
        .map_err(tier(p))?
        .filter(|h| h.starts_with(&prefix) && layout::parse_object_key(h).is_some());
    let mut last = match &hint {
        Some(h) => last_object_after(store, p, &prefix, Some(h)).await?,
        None => None,
    };
    if last.is_none() {
        if let Some(h) = &hint {
            // Nothing after the hint: the hint itself is the end, if it is still there.
            if store.head(h).await.is_ok() {
                last = Some(h.clone());
            }
        }
    }
    if last.is_none() {
        last = last_object_after(store, p, &prefix, None).await?;
    }
    match last {
        None => Ok(Chain::empty()),
        Some(key) => {
            let meta = object_meta(store, p, &key).await?;
            if meta.stream != p.stream {
                return Err(Error::ForeignChain {
                    partition: p.label(),
                    stream: p.stream.clone(),
                    owner: meta.stream,
                });
            }
            Ok(Chain {
                last_id: meta.last_id,
                last_offset: meta.last_offset,
                last_key: Some(key),
                estimate: None,
            })
        }
    }
}

async fn last_object_after(
    store: &Store,
    p: &Partition,
    prefix: &str,
    start: Option<&String>,
) -> Result<Option<String>> {
    let mut start = start.cloned();
    let mut last = None;
    loop {
        let page = store
            .list(prefix, start.as_deref(), Some(PAGE))
            .await
            .map_err(tier(p))?;
        for o in &page {
            if layout::parse_object_key(&o.key).is_some() {
                last = Some(o.key.clone());
            }
        }
        if page.len() < PAGE {
            return Ok(last);
        }
        start = page.last().map(|o| o.key.clone());
    }
}

/// The object keys that directly follow `after` (or the first ones), at most `n`.
///
/// # Errors
/// [`Error::Tier`] when the store fails.
pub async fn objects_after(
    store: &Store,
    p: &Partition,
    after: Option<&str>,
    n: usize,
) -> Result<Vec<String>> {
    let prefix = layout::partition_prefix(&p.topic, p.partition);
    let mut start = after.map(str::to_string);
    let mut out = Vec::new();
    loop {
        let page = store
            .list(&prefix, start.as_deref(), Some(PAGE))
            .await
            .map_err(tier(p))?;
        out.extend(
            page.iter()
                .filter(|o| layout::parse_object_key(&o.key).is_some())
                .map(|o| o.key.clone()),
        );
        if out.len() >= n || page.len() < PAGE {
            out.truncate(n);
            return Ok(out);
        }
        start = page.last().map(|o| o.key.clone());
    }
}
