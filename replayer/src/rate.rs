//! Token buckets that pace replays: one per job and one shared by the whole server.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

#[derive(Debug)]
struct State {
    tokens: f64,
    last: Instant,
}

/// A token bucket refilled at `rate` tokens per second, holding at most one second's worth.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate: f64,
    state: Arc<Mutex<State>>,
}

impl TokenBucket {
    /// A bucket for `rate` entries per second (at least 1), starting full.
    pub fn new(rate: u64) -> Self {
        let rate = rate.max(1) as f64;
        TokenBucket {
            rate,
            state: Arc::new(Mutex::new(State {
                tokens: rate,
                last: Instant::now(),
            })),
        }
    }

    /// The rate in entries per second.
    pub fn rate(&self) -> u64 {
        self.rate as u64
    }

    /// Waits until `n` tokens are available and takes them. Requests above the bucket's size
    /// are served by going into debt, so the long-run rate holds for any batch size.
    pub async fn acquire(&self, n: u64) {
        let wait = {
            let mut state = self.state.lock().await;
            let now = Instant::now();
            let elapsed = now.duration_since(state.last).as_secs_f64();
            state.tokens = (state.tokens + elapsed * self.rate).min(self.rate);
            state.last = now;
            state.tokens -= n as f64;
            if state.tokens >= 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(-state.tokens / self.rate)
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paces_to_the_rate() {
        let bucket = TokenBucket::new(1000);
        let start = Instant::now();
        for _ in 0..30 {
            bucket.acquire(100).await;
        }
        // 3000 tokens at 1000/s with 1000 in the bucket at the start: two seconds.
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(1990), "{elapsed:?}");
        assert!(elapsed <= Duration::from_millis(2100), "{elapsed:?}");
    }
}
