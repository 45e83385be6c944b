//! Expiring partition leases, so that several archivers share the work without repeating it.
//!
//! A lease only avoids duplicate work; correctness never depends on it (the store's
//! create-if-absent write and the chain fence keep the archive exact even when a paused process
//! outlives its lease).

use std::time::Duration;

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
}

impl Lease {
    /// A lease on `stream` for `owner` (unique per process), lasting `ttl` after each renewal.
    pub fn new(stream: &str, owner: &str, ttl: Duration) -> Self {
        Self {
            key: lease_key(stream),
            owner: owner.to_string(),
            ttl,
        }
    }

    /// Takes or renews the lease; answers whether this owner holds it now.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails.
    pub async fn acquire(&self, hot: &Hot) -> Result<bool> {
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
        Ok(held == 1)
    }

    /// Gives the lease up if this owner holds it.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails.
    pub async fn release(&self, hot: &Hot) -> Result<()> {
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
