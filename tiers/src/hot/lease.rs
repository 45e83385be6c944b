//! Expiring partition leases, so that several archivers share the work without repeating it.
//!
//! A lease only avoids duplicate work; correctness never depends on it (the store's
//! create-if-absent write and the chain fence keep the archive exact even when a paused process
//! outlives its lease).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::Script;

use super::{keys::lease_key, Hot};
use crate::{Error, Result};

const ACQUIRE: &str = "local v = redis.call('GET', KEYS[1]) \
    if v == false then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end \
    if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end \
    return 0";
const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    return redis.call('DEL', KEYS[1]) end return 0";

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
        let mut con = hot.connection();
        let held: i64 = Script::new(ACQUIRE)
            .key(&self.key)
            .arg(&self.owner)
            .arg(self.ttl.as_millis() as u64)
            .invoke_async(&mut con)
            .await
            .map_err(|source| Error::Redis {
                op: "lease",
                key: self.key.clone(),
                source,
            })?;
        if let Ok(mut renewed) = self.renewed.lock() {
            // Timed from before the request: the lease may have started a little earlier.
            *renewed = (held == 1).then_some(asked);
        }
        Ok(held == 1)
    }

    /// Gives the lease up if this owner holds it.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails.
    pub async fn release(&self, hot: &Hot) -> Result<()> {
        if let Ok(mut renewed) = self.renewed.lock() {
            *renewed = None;
        }
        let mut con = hot.connection();
        Script::new(RELEASE)
            .key(&self.key)
            .arg(&self.owner)
            .invoke_async::<i64>(&mut con)
            .await
            .map_err(|source| Error::Redis {
                op: "release lease",
                key: self.key.clone(),
                source,
            })?;
        Ok(())
    }
}
