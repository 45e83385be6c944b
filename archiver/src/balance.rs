//! Sharing partitions evenly between archiver daemons: each one counts the live daemons (a
//! heartbeat in Redis) and holds at most its share, `ceil(partitions / daemons)`, of the
//! partition leases. One under its share takes free leases; one over it gives leases up after
//! their pass, one at a time, so that a stopped daemon's share moves within the lease time and
//! a new daemon gets its share without anyone giving up more than needed.
//!
//! Balance only spreads work: which process archives a partition never matters for
//! correctness (see the crate's invariants: create-if-absent objects, the chain fence).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use streamtier_schemas::Report;
use streamtier_tiers::hot::{heartbeat, Hot};
use streamtier_tiers::retry;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// What this daemon knows of the partitions it shares.
#[derive(Debug)]
pub struct Balance {
    /// Live daemons, this one included (at least 1).
    members: AtomicUsize,
    /// Partitions this daemon has a worker for (all of them: every daemon runs every one).
    partitions: AtomicUsize,
    /// Leases this daemon holds.
    held: AtomicUsize,
    /// Told when the share may have grown (fewer daemons, more partitions).
    grown: Notify,
}

impl Default for Balance {
    fn default() -> Self {
        Self {
            members: AtomicUsize::new(1),
            partitions: AtomicUsize::new(0),
            held: AtomicUsize::new(0),
            grown: Notify::new(),
        }
    }
}

impl Balance {
    /// The most leases this daemon should hold.
    pub fn share(&self) -> usize {
        let members = self.members.load(Ordering::Relaxed).max(1);
        self.partitions.load(Ordering::Relaxed).div_ceil(members)
    }

    /// Leases held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Whether a lease not held yet may be taken.
    pub fn may_take(&self) -> bool {
        self.held() < self.share()
    }

    /// Counts a lease taken.
    pub fn took(&self) {
        self.held.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a lease given up or lost.
    pub fn dropped(&self) {
        let _ = self
            .held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |h| h.checked_sub(1));
    }

    /// Whether to give one lease up now (over the share); counts it given up when so.
    pub fn give_one_up(&self) -> bool {
        let share = self.share();
        self.held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |h| {
                (h > share).then(|| h - 1)
            })
            .is_ok()
    }

    /// Notes how many partitions this daemon runs.
    pub fn set_partitions(&self, n: usize) {
        if self.partitions.swap(n, Ordering::Relaxed) < n {
            self.grown.notify_waiters();
        }
    }

    /// Notes how many daemons are live (from the heartbeat).
    pub fn set_members(&self, n: usize) {
        if self.members.swap(n.max(1), Ordering::Relaxed) > n {
            self.grown.notify_waiters();
        }
    }

    /// Waits until there is room for one more lease (at once if there is), the share may
    /// have grown, `timeout` passes or `shutdown`.
    pub async fn wait_for_room(&self, timeout: Duration, shutdown: &CancellationToken) {
        // Listening before looking: a growth between the two is not missed.
        let grown = self.grown.notified();
        tokio::pin!(grown);
        grown.as_mut().enable();
        if self.may_take() {
            return;
        }
        tokio::select! {
            () = grown => {}
            () = tokio::time::sleep(timeout) => {}
            () = shutdown.cancelled() => {}
        }
    }

    /// Every sixth of `ttl` (the lease time) until `shutdown`, says this daemon is live for half
    /// of `ttl` and learns how many are; leaves the set on shutdown, so that the others take its share at once.
    pub async fn heartbeat(
        self: Arc<Self>,
        hot: Hot,
        owner: String,
        ttl: Duration,
        shutdown: CancellationToken,
    ) {
        // A daemon counts as gone half a lease time after its last heartbeat: the others' share
        // grows before its leases run out, and they take them as soon as they do.
        loop {
            match heartbeat(&hot, &owner, ttl / 2).await {
                Ok(n) => self.set_members(n),
                Err(e) => warn!(error = %Report(&e), "archiver heartbeat failed; will retry"),
            }
            if !retry::pause(ttl / 6, &shutdown).await {
                break;
            }
        }
        if let Err(e) = heartbeat(&hot, &owner, Duration::ZERO).await {
            warn!(error = %Report(&e), "could not leave the set of live archivers");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_is_taken_up_to_and_given_back_down_to() {
        let b = Balance::default();
        b.set_partitions(10);
        for _ in 0..10 {
            assert!(b.may_take());
            b.took();
        }
        assert!(!b.may_take());
        assert!(!b.give_one_up());
        // Two more daemons: a share of 4 (10 / 3 rounded up); six leases go, one at a time.
        b.set_members(3);
        let given = (0..10).filter(|_| b.give_one_up()).count();
        assert_eq!((given, b.held()), (6, 4));
        assert!(!b.may_take());
        b.dropped();
        assert!(b.may_take());
    }

    /// A task waiting for room in `b` (started before this returns).
    async fn waiting(b: &Arc<Balance>) -> tokio::task::JoinHandle<()> {
        let b = b.clone();
        let task = tokio::spawn(async move {
            b.wait_for_room(Duration::from_secs(60), &CancellationToken::new())
                .await;
        });
        tokio::task::yield_now().await;
        task
    }

    /// Waits for `task` to end, `what` saying what should have ended it.
    async fn ended(task: tokio::task::JoinHandle<()>, what: &str) {
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap_or_else(|_| panic!("{what}"))
            .expect("task");
    }

    #[tokio::test]
    async fn a_growth_while_a_task_looks_is_not_missed() {
        let b = Arc::new(Balance::default());
        // No partitions known yet: no room, so the task waits...
        let waiter = waiting(&b).await;
        // ...until the partitions are counted.
        b.set_partitions(3);
        ended(waiter, "woken by the growth").await;
        // With room already, it returns at once.
        b.wait_for_room(Duration::from_secs(60), &CancellationToken::new())
            .await;
    }
}
