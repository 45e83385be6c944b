//! Expiring partition leases, so that several archivers share the work without repeating it.
//!
//! A lease only avoids duplicate work; correctness never depends on it (the store's
//! create-if-absent write and the chain fence keep the archive exact even when a paused process
//! outlives its lease).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::raw::{Item, LEASE_ACQUIRE, LEASE_RELEASE, MEMBERS};
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
    /// [`crate::Error::Redis`] when Redis fails.
    pub async fn renew_if_due(&self, hot: &Hot) -> Result<bool> {
        Ok(self.renew_or_wait(hot).await?.is_none())
    }

    /// [`Lease::renew_if_due`], answering `None` when this owner holds the lease and otherwise
    /// how long the other owner's lease has left (when it is worth asking again).
    ///
    /// # Errors
    /// [`crate::Error::Redis`] when Redis fails.
    pub async fn renew_or_wait(&self, hot: &Hot) -> Result<Option<Duration>> {
        let fresh = self
            .renewed
            .lock()
            .ok()
            .and_then(|r| *r)
            .is_some_and(|at| at.elapsed() < self.ttl / 3);
        if fresh {
            return Ok(None);
        }
        self.take(hot).await
    }

    /// Takes or renews the lease; answers whether this owner holds it now.
    ///
    /// # Errors
    /// [`crate::Error::Redis`] when Redis fails.
    pub async fn acquire(&self, hot: &Hot) -> Result<bool> {
        Ok(self.take(hot).await?.is_none())
    }

    async fn take(&self, hot: &Hot) -> Result<Option<Duration>> {
        let asked = Instant::now();
        let ttl = (self.ttl.as_millis() as u64).to_string();
        let reply = hot
            .script(
                "lease",
                &LEASE_ACQUIRE,
                &[&self.key],
                &[self.owner.as_bytes(), ttl.as_bytes()],
            )
            .await?;
        let left = match reply {
            Item::Int(1) => None,
            Item::Int(n) if n < 0 => Some(Duration::from_millis(n.unsigned_abs())),
            other => {
                return Err(crate::Error::Protocol {
                    key: self.key.clone(),
                    reason: format!("lease reply {other:?}"),
                })
            }
        };
        if let Ok(mut renewed) = self.renewed.lock() {
            // Timed from before the request: the lease may have started a little earlier.
            *renewed = left.is_none().then_some(asked);
        }
        Ok(left)
    }

    /// Gives the lease up if this owner holds it.
    ///
    /// # Errors
    /// [`crate::Error::Redis`] when Redis fails.
    pub async fn release(&self, hot: &Hot) -> Result<()> {
        if let Ok(mut renewed) = self.renewed.lock() {
            *renewed = None;
        }
        hot.script(
            "release lease",
            &LEASE_RELEASE,
            &[&self.key],
            &[self.owner.as_bytes()],
        )
        .await?;
        Ok(())
    }
}

/// The sorted set of live archiver daemons (see [`heartbeat`]).
pub const MEMBERS_KEY: &str = "streamtier:archivers";

/// Says that `owner` is a live archiver daemon for `ttl` more (a zero `ttl`: it leaves), and
/// answers how many are live: what each one's share of the partitions is computed from.
///
/// # Errors
/// [`crate::Error::Redis`] when Redis fails.
pub async fn heartbeat(hot: &Hot, owner: &str, ttl: Duration) -> Result<usize> {
    let ttl = (ttl.as_millis() as u64).to_string();
    match hot
        .script(
            "members",
            &MEMBERS,
            &[MEMBERS_KEY],
            &[owner.as_bytes(), ttl.as_bytes()],
        )
        .await?
    {
        Item::Int(n) => Ok(usize::try_from(n).unwrap_or(0)),
        other => Err(crate::Error::Protocol {
            key: MEMBERS_KEY.into(),
            reason: format!("members reply {other:?}"),
        }),
    }
}
