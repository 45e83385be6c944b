//! Counters and per-partition status that the archiver keeps for operators.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use streamtier_schemas::StreamId;

/// Process-wide counters (rendered as Prometheus text by the API).
#[derive(Debug, Default)]
pub struct Metrics {
    /// Entries written into new objects.
    pub archived_entries: AtomicU64,
    /// Bytes of new objects.
    pub archived_bytes: AtomicU64,
    /// New objects.
    pub archived_objects: AtomicU64,
    /// Objects another archiver had already written (adopted).
    pub adopted_objects: AtomicU64,
    /// Objects this archiver stored and then removed: the chain had moved while they were
    /// built (another archiver got there first).
    pub removed_objects: AtomicU64,
    /// Entries received from Redis by archive reads (each entry once, unless a pass is
    /// retried or resynced).
    pub read_entries: AtomicU64,
    /// Archive reads (`XRANGE` round trips).
    pub reads: AtomicU64,
    /// Trim round trips.
    pub trims: AtomicU64,
    /// Entries removed from Redis by trimming.
    pub trimmed_entries: AtomicU64,
    /// Gap records written.
    pub gaps: AtomicU64,
    /// Consumer-group snapshots written.
    pub group_snapshots: AtomicU64,
    /// Entries counted in gap records.
    pub gap_entries: AtomicU64,
    /// Failed partition passes (each is retried with backoff).
    pub errors: AtomicU64,
    /// Of those, failures of Redis.
    pub redis_errors: AtomicU64,
    /// Of those, failures of the object store.
    pub store_errors: AtomicU64,
    status: Mutex<BTreeMap<(String, u32), PartitionStatus>>,
}

/// What the last pass over a partition saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartitionStatus {
    /// Stream key.
    pub stream: String,
    /// Last archived id.
    pub archived_id: Option<StreamId>,
    /// Newest entry in Redis when last read.
    pub last_entry_id: Option<StreamId>,
    /// Unarchived entries when last read, if known.
    pub unarchived_entries: Option<u64>,
    /// Consumer groups trimmed past by `retain_max_entries`.
    pub groups_behind: Vec<String>,
    /// Last error, if the last pass failed.
    pub last_error: Option<String>,
}

impl Metrics {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a failed pass, by the dependency that failed.
    pub fn count_error(&self, e: &crate::Error) {
        Self::add(&self.errors, 1);
        if let crate::Error::Tier { source, .. } = e {
            match source.dependency() {
                Some(streamtier_tiers::Dependency::Redis) => Self::add(&self.redis_errors, 1),
                Some(streamtier_tiers::Dependency::Store) => Self::add(&self.store_errors, 1),
                None => {}
            }
        }
    }

    /// Updates the status of one partition.
    pub fn update(&self, topic: &str, partition: u32, f: impl FnOnce(&mut PartitionStatus)) {
        let mut map = self.status.lock().unwrap_or_else(|e| e.into_inner());
        f(map.entry((topic.to_string(), partition)).or_default());
    }

    /// A copy of every partition's status.
    pub fn statuses(&self) -> BTreeMap<(String, u32), PartitionStatus> {
        self.status.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
