//! What the handlers share: the replay engine, the topic catalog, the target rules, counters.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use streamtier_archiver::partition::{self, Owners};
use streamtier_archiver::settings::{Retention, Topic};
use streamtier_archiver::Metrics;
use streamtier_replayer::plan::TargetRules;
use streamtier_replayer::{Replayer, SourcePartition};
use streamtier_schemas::StreamId;
use streamtier_tiers::archive::{catalog, PartitionArchive};
use streamtier_tiers::hot::Hot;
use streamtier_tiers::store::Store;

use axum::http::StatusCode;

use crate::ApiError;

/// Where topics come from: the configured `[[topics]]`, or discovery over Redis keys; either
/// way with the topics the archive holds (see [`Catalog::topics`]).
#[derive(Clone, Debug)]
pub enum Catalog {
    /// Configured topics.
    Topics(Vec<Topic>),
    /// Stream keys found by `SCAN`.
    Discover(Retention),
}

impl Catalog {
    /// Every topic and its partitions now: the configured ones (or those discovery finds in
    /// Redis), and with them every topic and partition the archive holds, so that a topic
    /// whose keys Redis lost can still be read, replayed and restored. A partition known to
    /// both keeps the stream key of the configuration or of Redis; one known only to the
    /// archive gets the key its newest object was archived from.
    ///
    /// # Errors
    /// [`streamtier_tiers::Error::Redis`] when Redis cannot be scanned, the store's errors
    /// when the archive cannot be listed.
    pub async fn topics(
        &self,
        hot: &Hot,
        store: &Store,
    ) -> streamtier_tiers::Result<BTreeMap<String, Vec<SourcePartition>>> {
        let mut out = self.live(hot).await?;
        for topic in catalog::archived_topics(store).await? {
            add_archived(store, &topic, &mut out).await?;
        }
        Ok(out)
    }

    /// One topic's partitions, as [`Catalog::topics`] has them, listing only that topic's part
    /// of the archive (one delimited listing, and a few requests per partition only the
    /// archive holds): what a read of one partition pays per page.
    ///
    /// # Errors
    /// As [`Catalog::topics`].
    pub async fn topic(
        &self,
        hot: &Hot,
        store: &Store,
        name: &str,
    ) -> streamtier_tiers::Result<Option<Vec<SourcePartition>>> {
        let mut one = BTreeMap::new();
        if let Some(parts) = self.live(hot).await?.remove(name) {
            one.insert(name.to_string(), parts);
        }
        add_archived(store, name, &mut one).await?;
        Ok(one.remove(name))
    }

    /// The stream key of `topic`'s `partition` when the configuration or Redis knows it
    /// (asking the store nothing), else `None`.
    ///
    /// # Errors
    /// [`streamtier_tiers::Error::Redis`] when Redis cannot be scanned.
    pub async fn live_stream(
        &self,
        hot: &Hot,
        topic: &str,
        partition: u32,
    ) -> streamtier_tiers::Result<Option<String>> {
        Ok(self
            .live(hot)
            .await?
            .remove(topic)
            .and_then(|parts| parts.into_iter().find(|p| p.partition == partition))
            .map(|p| p.stream))
    }

    /// The configured topics, or those discovery finds in Redis.
    async fn live(&self, hot: &Hot) -> streamtier_tiers::Result<BTreeMap<String, Vec<SourcePartition>>> {
        let parts = match self {
            Catalog::Topics(topics) => partition::from_topics(topics),
            Catalog::Discover(retention) => {
                let keys = hot.scan_streams().await?;
                partition::discover(&keys, retention, &Owners::new()).0
            }
        };
        let mut out: BTreeMap<String, Vec<SourcePartition>> = BTreeMap::new();
        for p in parts {
            out.entry(p.topic.clone()).or_default().push(SourcePartition {
                partition: p.partition,
                stream: p.stream,
            });
        }
        Ok(out)
    }
}

/// Adds to `topics` the partitions of `topic` only the archive holds. Costs one delimited
/// listing, and a few requests per partition missing from `topics`.
async fn add_archived(
    store: &Store,
    topic: &str,
    topics: &mut BTreeMap<String, Vec<SourcePartition>>,
) -> streamtier_tiers::Result<()> {
    for partition in catalog::archived_partitions(store, topic).await? {
        let known = topics
            .get(topic)
            .is_some_and(|parts| parts.iter().any(|p| p.partition == partition));
        if known {
            continue;
        }
        let archive = PartitionArchive::new(store.clone(), topic, partition);
        let Some(stream) = archive.recorded_stream().await? else {
            continue; // gap records or group snapshots only: nothing to read
        };
        let parts = topics.entry(topic.to_string()).or_default();
        parts.push(SourcePartition { partition, stream });
        parts.sort_by_key(|p| p.partition);
    }
    Ok(())
}

/// A summary of one partition's archive, kept up to date by listing only new objects.
#[derive(Clone, Debug, Default)]
pub struct ArchiveSummary {
    /// Last object key counted.
    pub last_key: Option<String>,
    /// Objects.
    pub objects: u64,
    /// Entries in them.
    pub entries: u64,
    /// Their bytes.
    pub bytes: u64,
    /// First archived id.
    pub first_id: Option<StreamId>,
    /// Last archived id.
    pub last_id: Option<StreamId>,
    /// Entries-added offset of the last archived entry, when known.
    pub last_offset: Option<u64>,
}

/// Shared state of the API.
pub struct AppState {
    /// The replay engine (and through it, Redis and the store).
    pub replayer: Replayer,
    /// Topics.
    pub catalog: Catalog,
    /// Where replays may write (`[replay] allowed_targets`).
    pub targets: TargetRules,
    /// The bearer token.
    pub token: Option<String>,
    /// The archiver's counters when it runs in this process (`streamtier run`).
    pub archiver: Option<Arc<Metrics>>,
    /// Per-partition archive summaries.
    pub summaries: Mutex<HashMap<(String, u32), ArchiveSummary>>,
}

impl AppState {
    /// Every topic and its partitions now, Redis' and the archive's.
    ///
    /// # Errors
    /// 503 when Redis cannot be scanned or the store cannot be listed.
    pub async fn topics(&self) -> Result<BTreeMap<String, Vec<SourcePartition>>, ApiError> {
        let replayer = &self.replayer;
        Ok(self.catalog.topics(replayer.hot(), replayer.store()).await?)
    }

    /// The stream key of `topic`'s `partition`: from the configuration or Redis when they know
    /// it, else from the archive (see [`Catalog::topic`]), so that paging through a known
    /// partition asks the store nothing more.
    ///
    /// # Errors
    /// 404 naming `topic` or `partition` when neither knows it; 503 as [`AppState::topics`].
    pub async fn stream_of(&self, topic: &str, partition: u32) -> Result<String, ApiError> {
        let replayer = &self.replayer;
        if let Some(stream) = self.catalog.live_stream(replayer.hot(), topic, partition).await? {
            return Ok(stream);
        }
        let not_found = |field: &str, detail: String| ApiError::field(StatusCode::NOT_FOUND, field, detail);
        self.topic(topic)
            .await?
            .ok_or_else(|| not_found("topic", format!("topic `{topic}` not found")))?
            .into_iter()
            .find(|p| p.partition == partition)
            .map(|p| p.stream)
            .ok_or_else(|| {
                not_found(
                    "partition",
                    format!("topic `{topic}` has no partition {partition}"),
                )
            })
    }

    /// One topic's partitions (see [`Catalog::topic`]), `None` when neither Redis nor the
    /// archive has it.
    ///
    /// # Errors
    /// 503 as [`AppState::topics`].
    pub async fn topic(&self, name: &str) -> Result<Option<Vec<SourcePartition>>, ApiError> {
        let replayer = &self.replayer;
        Ok(self.catalog.topic(replayer.hot(), replayer.store(), name).await?)
    }
}
