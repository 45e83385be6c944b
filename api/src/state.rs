//! What the handlers share: the replay engine, the topic catalog, the target rules, counters.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use streamtier_archiver::partition::{self, Owners};
use streamtier_archiver::settings::{Retention, Topic};
use streamtier_archiver::Metrics;
use streamtier_replayer::plan::TargetRules;
use streamtier_replayer::{Replayer, SourcePartition};
use streamtier_schemas::StreamId;
use streamtier_tiers::hot::Hot;

use crate::ApiError;

/// Where topics come from: the configured `[[topics]]`, or discovery over Redis keys.
#[derive(Clone, Debug)]
pub enum Catalog {
    /// Configured topics.
    Topics(Vec<Topic>),
    /// Stream keys found by `SCAN`.
    Discover(Retention),
}

impl Catalog {
    /// Every topic and its partitions now (discovery scans Redis).
    ///
    /// # Errors
    /// [`streamtier_tiers::Error::Redis`] when Redis cannot be scanned.
    pub async fn topics(
        &self,
        hot: &Hot,
    ) -> streamtier_tiers::Result<BTreeMap<String, Vec<SourcePartition>>> {
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
    /// Every topic and its partitions now.
    ///
    /// # Errors
    /// 503 when Redis cannot be scanned.
    pub async fn topics(&self) -> Result<BTreeMap<String, Vec<SourcePartition>>, ApiError> {
        Ok(self.catalog.topics(self.replayer.hot()).await?)
    }
}
