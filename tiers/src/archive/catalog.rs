//! What the archive knows of topics without Redis: the topics and partitions it holds, found by
//! listing one prefix level at a time (never every object), and the stream key each
//! partition was archived from, as its newest object records it.

use streamtier_schemas::layout;

use super::PartitionArchive;
use crate::store::Store;
use crate::Result;

/// The topics the store holds keys of (`topic=<t>/` prefixes), by name. One delimited listing.
///
/// # Errors
/// The store's errors.
pub async fn archived_topics(store: &Store) -> Result<Vec<String>> {
    let prefixes = store.list_prefixes("topic=").await?;
    Ok(prefixes
        .iter()
        .filter_map(|p| layout::parse_topic_prefix(p))
        .collect())
}

/// The partitions of `topic` the store holds keys of (`topic=<t>/partition=<p>/` prefixes),
/// ascending. One delimited listing (none for a name that is not a valid topic name).
///
/// # Errors
/// The store's errors.
pub async fn archived_partitions(store: &Store, topic: &str) -> Result<Vec<u32>> {
    // A name no topic can have (a path separator, `..`, too long) is in no key: nothing to list.
    if layout::validate_topic_name(topic).is_err() {
        return Ok(Vec::new());
    }
    let prefix = format!("{}partition=", layout::topic_prefix(topic));
    let mut partitions: Vec<u32> = store
        .list_prefixes(&prefix)
        .await?
        .iter()
        .filter_map(|p| layout::parse_partition_prefix(p))
        .filter(|(t, _)| t == topic)
        .map(|(_, p)| p)
        .collect();
    partitions.sort_unstable();
    Ok(partitions)
}

impl PartitionArchive {
    /// The stream key the partition's newest object was archived from (the key that owns the
    /// partition's chain), or `None` when the partition has no object. Lists the partition's
    /// day prefixes, then the objects of the newest day that has one, and reads that object's
    /// metadata (a `HEAD` on S3, the footer otherwise).
    ///
    /// # Errors
    /// The store's errors; [`crate::Error::Object`] when that object's footer is unreadable.
    pub async fn recorded_stream(&self) -> Result<Option<String>> {
        // Compaction may replace the newest object between the listing and the read: list again.
        let mut attempts = 3;
        loop {
            match self.newest_object_stream().await {
                Err(crate::Error::NotFound { .. }) if attempts > 1 => attempts -= 1,
                other => return other,
            }
        }
    }

    async fn newest_object_stream(&self) -> Result<Option<String>> {
        match self.last_object(None).await? {
            Some(object) => Ok(Some(self.meta_of_key(&object.key).await?.stream)),
            None => Ok(None),
        }
    }
}
