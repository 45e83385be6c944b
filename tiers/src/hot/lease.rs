//! Expiring partition leases, so that several archivers share the work without repeating it.
//!
//! A lease only avoids duplicate work; correctness never depends on it (the store's
//! create-if-absent write and the chain fence keep the archive exact even when a paused process
//! outlives its lease).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::raw::{Item, LEASE_ACQUIRE, LEASE_RELEASE};
use super::{keys::lease_key, Hot};
use crate::Result;

/// A lease held (or wanted) by one archiver process on one stream.
#[derive(Clone, Debug)]
pub struct Lease {
    key: String,
    owner: String,
    ttl: Duration,
    /// When this owner last took or renewed it (shared by clones).
    renewed: Arc<Mutex<Option<Instant>>>,
}

impl Lease {
    /// A lease on `stream` for `owner` (unique per process), lasting `ttl` after each renewal.
    pub fn new(stream: &str, owner: &str, ttl: Duration) -> Self {
        Self {
            key: lease_key(stream),
            owner: owner.to_string(),
            ttl,
            renewed: Arc::default(),
        }
    }

    /// Renews the lease only when a third of its time has passed since it was last taken or
    /// renewed (it then still has two thirds left): one round trip per `ttl / 3`, not one per
    /// object. Answers whether this owner holds it.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails.
    pub async fn renew_if_due(&self, hot: &Hot) -> Result<bool> {
        let fresh = self
            .renewed
            .lock()
            .ok()
            .and_then(|r| *r)
            .is_some_and(|at| at.elapsed() < self.ttl / 3);
        if fresh {
            return Ok(true);
        }
        self.acquire(hot).await
    }

    /// Takes or renews the lease; answers whether this owner holds it now.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails.
    pub async fn acquire(&self, hot: &Hot) -> Result<bool> {
        let asked = Instant::now();
        let ttl = (self.ttl.as_millis() as u64).to_string();
        let reply = hot
            .script("lease", &LEASE_ACQUIRE, &self.key, &[self.owner.as_bytes(), ttl.as_bytes()])
            .await?;
        let held = reply == Item::Int(1);
        if let Ok(mut renewed) = self.renewed.lock() {
            // Timed from before the request: the lease may have started a little earlier.
            *renewed = held.then_some(asked);
        }
        Ok(held)
    }

    /// Gives the lease up if this owner holds it.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails.
    pub async fn release(&self, hot: &Hot) -> Result<()> {
        if let Ok(mut renewed) = self.renewed.lock() {
            *renewed = None;
        }
        hot.script("release lease", &LEASE_RELEASE, &self.key, &[self.owner.as_bytes()])
            .await?;
        Ok(())
    }
}
