//! Retry pacing shared by the archiver, the replayer and the S3 store: exponential backoff
//! with jitter, and a sleep that a cancellation token cuts short.

use std::time::Duration;

use rand::Rng;
use tokio_util::sync::CancellationToken;

/// How long to wait before retry number `attempt`: a random time between half and all of
/// `base * 2^attempt`, capped at `cap` (the jitter spreads retrying processes apart; the floor
/// keeps them from hammering a service that is down).
pub fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let max = base.saturating_mul(2u32.saturating_pow(attempt.min(16))).min(cap);
    let max_ms = max.as_millis().max(1) as u64;
    Duration::from_millis(rand::rng().random_range(max_ms / 2..=max_ms))
}

/// Sleeps for `wait` unless `token` is cancelled first; answers whether the whole wait passed.
pub async fn pause(wait: Duration, token: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(wait) => true,
        _ = token.cancelled() => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_within_its_cap() {
        let (base, cap) = (Duration::from_millis(100), Duration::from_secs(5));
        for attempt in 0..40 {
            let d = backoff(attempt, base, cap);
            assert!(d <= cap, "{d:?}");
            let max = base.saturating_mul(2u32.saturating_pow(attempt.min(16))).min(cap);
            assert!(d >= max / 2, "attempt {attempt}: {d:?}");
        }
    }

    #[tokio::test]
    async fn pause_ends_early_when_cancelled() {
        let token = CancellationToken::new();
        token.cancel();
        let started = std::time::Instant::now();
        assert!(!pause(Duration::from_secs(30), &token).await);
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(pause(Duration::from_millis(1), &CancellationToken::new()).await);
    }
}
