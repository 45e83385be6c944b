//! Which jobs this process runs or waits on, and adopting the jobs no live process runs: a job
//! whose runner died (`kill -9` of `streamtier replay`, or of one of several servers) is taken
//! over by a live server once the runner's lease has run out.
//!
//! Exactly once across servers: a server adopts a job only after taking its lease (one script
//! that sets the lease only when it is free), so of several servers looking at the same orphan
//! one adopts it and the others start nothing. (The cursor check of every batch would stop a
//! second runner anyway.)

use std::sync::Arc;
use std::time::Duration;

use streamtier_schemas::Report;
use streamtier_tiers::hot::Lease;
use streamtier_tiers::retry;
use tokio_util::sync::CancellationToken;

use super::{poisoned, Inner, Replayer, JOB_LEASE_TTL};
use crate::{Error, Result};

/// How often a server looks for orphaned jobs: a fifth of the lease time, so that an orphan is
/// adopted at most that long after its lease ran out. At rest it costs one `SMEMBERS`, and one
/// lease script per job that another process runs.
const ADOPT_EVERY: Duration = Duration::from_millis(JOB_LEASE_TTL.as_millis() as u64 / 5);

/// A job this process runs or waits on: it is in `Inner::running` (where a cancel finds its
/// token) for as long as this lives, and only one of these exists per job and process.
pub(super) struct Registered {
    inner: Arc<Inner>,
    id: String,
    pub(super) token: CancellationToken,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut running) = self.inner.running.lock() {
            running.remove(&self.id);
        }
    }
}

impl Replayer {
    /// The lease that gives job `id` one runner.
    pub(super) fn job_lease(&self, id: &str) -> Lease {
        Lease::new(&format!("replay-job:{id}"), &self.inner.owner, JOB_LEASE_TTL)
    }

    /// Records that this process runs (or waits on) job `id`; `None` when it already does.
    pub(super) fn register(&self, id: &str) -> Result<Option<Registered>> {
        let mut running = self.inner.running.lock().map_err(|_| poisoned())?;
        if running.contains_key(id) {
            return Ok(None);
        }
        let token = self.inner.shutdown.child_token();
        running.insert(id.to_string(), token.clone());
        Ok(Some(Registered {
            inner: self.inner.clone(),
            id: id.to_string(),
            token,
        }))
    }

    /// Starts the background task that adopts orphaned jobs every [`ADOPT_EVERY`] until the
    /// shutdown token is cancelled (for servers; [`Replayer::wait_stopped`] waits for it too).
    pub fn adopt_orphans(&self) {
        let this = self.clone();
        self.inner.tasks.spawn(async move {
            while retry::pause(ADOPT_EVERY, &this.inner.shutdown).await {
                match this.adopt_once().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(jobs = n, "adopted replay jobs whose runner is gone"),
                    Err(e) => tracing::warn!(error = %Report(&e), "could not look for orphaned replay jobs"),
                }
            }
        });
    }

    /// Starts every unfinished job that this process neither runs nor waits on and whose lease
    /// is free (its runner is gone); answers how many.
    ///
    /// # Errors
    /// [`Error::Tier`] when Redis fails.
    pub async fn adopt_once(&self) -> Result<usize> {
        let inner = &self.inner;
        let mut adopted = 0;
        for id in inner.jobs.unfinished().await? {
            let Some(registered) = self.register(&id)? else {
                continue;
            };
            let lease = self.job_lease(&id);
            if !lease
                .acquire(&inner.hot)
                .await
                .map_err(Error::tier("job lease"))?
            {
                // A live runner holds it.
                continue;
            }
            let record = match inner.jobs.get(&id).await {
                Ok(record) if !record.state.is_final() => Some(record),
                Ok(_) | Err(Error::NotFound { .. }) => {
                    // Ended (its last save raced with a progress save) or deleted.
                    inner.jobs.mark_unfinished(&id, false).await?;
                    None
                }
                Err(e) => {
                    tracing::warn!(job = %id, error = %Report(&e), "skipping unreadable job record");
                    None
                }
            };
            let Some(record) = record else {
                if let Err(e) = lease.release(&inner.hot).await {
                    tracing::warn!(error = %Report(&e), "could not release a job lease");
                }
                continue;
            };
            tracing::info!(job = %id, "adopting replay job whose runner is gone");
            let this = self.clone();
            inner.tasks.spawn(async move {
                if let Err(e) = this.run_registered(record, &registered, |_| {}).await {
                    tracing::error!(job = %registered.id, error = %Report(&e), "replay job could not be recorded");
                }
            });
            adopted += 1;
        }
        Ok(adopted)
    }
}
