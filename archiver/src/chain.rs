//! The archive chain of one partition: where it ends, read back from the store (the source of
//! truth), with the Redis hint only as a listing shortcut.

use streamtier_schemas::{layout, ObjectMeta, StreamId};
use streamtier_tiers::hot::Hot;
use streamtier_tiers::store::Store;

use crate::partition::Partition;
use crate::{Error, Result};

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

/// A tier error of the partition; an unreadable object is [`Error::Format`].
pub(crate) fn tier(p: &Partition) -> impl Fn(streamtier_tiers::Error) -> Error + '_ {
    move |source| match source {
        streamtier_tiers::Error::Object { key, source } => Error::Format {
            partition: p.label(),
            key,
            source,
        },
        source => Error::Tier {
            partition: p.label(),
            source,
        },
    }
}

/// Reads an object's metadata: S3 user metadata when present, else the Parquet footer.
///
/// # Errors
/// [`Error::Tier`] when the store fails, [`Error::Format`] when the footer is unreadable.
pub async fn object_meta(store: &Store, p: &Partition, key: &str) -> Result<ObjectMeta> {
    p.archive(store).meta_of_key(key).await.map_err(tier(p))
}

/// Finds the end of the chain from the store, starting the listing at the Redis hint when it
/// names an object that still exists.
///
/// # Errors
/// [`Error::Tier`] when Redis or the store fails, [`Error::Format`] on an unreadable footer.
pub async fn resync(hot: &Hot, store: &Store, p: &Partition) -> Result<Chain> {
    let archive = p.archive(store);
    let hint = hot
        .chain_hint(&p.stream)
        .await
        .map_err(tier(p))?
        .filter(|h| h.starts_with(archive.prefix()) && layout::parse_object_key(h).is_some());
    let mut last = match &hint {
        Some(h) => archive
            .last_object(Some(h))
            .await
            .map_err(tier(p))?
            .map(|o| o.key),
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
        last = archive.last_object(None).await.map_err(tier(p))?.map(|o| o.key);
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
