//! Quiet partitions, looked at together: the daemon's partitions with nothing left to archive
//! wait here, and one pipelined round trip per Redis node per `poll_interval` says which of
//! them got new entries (see `Hot::newer_than`), instead of a read transaction each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use streamtier_schemas::{Report, StreamId};
use streamtier_tiers::hot::Hot;
use streamtier_tiers::retry;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// The waiting partitions: stream -> (the last id its worker saw, its wake-up).
#[derive(Debug, Default)]
pub struct Watch {
    waiting: Mutex<HashMap<String, (StreamId, Arc<Notify>)>>,
}

impl Watch {
    /// Waits until `stream` holds an entry above `seen`, `timeout` passes or `shutdown`.
    pub async fn wait(&self, stream: &str, seen: StreamId, timeout: Duration, shutdown: &CancellationToken) {
        let notify = Arc::new(Notify::new());
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.insert(stream.to_string(), (seen, notify.clone()));
        }
        tokio::select! {
            () = notify.notified() => {}
            () = tokio::time::sleep(timeout) => {}
            () = shutdown.cancelled() => {}
        }
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.remove(stream);
        }
    }

    /// Every `every` until `shutdown`, wakes the waiting partitions whose streams got new
    /// entries (all of them when Redis cannot answer: each then looks for itself).
    pub async fn run(self: Arc<Self>, hot: Hot, every: Duration, shutdown: CancellationToken) {
        while retry::pause(every, &shutdown).await {
            let waiting: Vec<(String, StreamId, Arc<Notify>)> = match self.waiting.lock() {
                Ok(w) => w.iter().map(|(k, (id, n))| (k.clone(), *id, n.clone())).collect(),
                Err(_) => continue,
            };
            if waiting.is_empty() {
                continue;
            }
            let streams: Vec<(&str, StreamId)> = waiting.iter().map(|(k, id, _)| (k.as_str(), *id)).collect();
            let newer = match hot.newer_than(&streams).await {
                Ok(newer) => newer,
                Err(e) => {
                    warn!(error = %Report(&e), "watching quiet partitions failed; waking them all");
                    vec![true; waiting.len()]
                }
            };
            for ((_, _, notify), newer) in waiting.iter().zip(newer) {
                if newer {
                    notify.notify_one();
                }
            }
        }
    }
}
