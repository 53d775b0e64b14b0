//! Exponential backoff with jitter, and a retry loop that uses it only for
//! errors that waiting can fix.

use std::future::Future;
use std::time::Duration;

use super::error::StoreError;

/// Delays that double from `min` up to `max`. Each delay is drawn uniformly
/// from its upper half ("equal jitter"), so many waiters do not retry in
/// lock-step, yet no delay is ever shorter than half the nominal one.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// A backoff from `min` to `max` (`max` is raised to `min` if smaller).
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max: max.max(min),
            attempt: 0,
        }
    }

    /// The nominal delay of the next attempt, before jitter.
    pub fn nominal(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.min.saturating_mul(factor).min(self.max)
    }

    /// The next delay, with jitter; advances the attempt counter.
    pub fn next_delay(&mut self) -> Duration {
        let nominal = self.nominal();
        self.attempt = self.attempt.saturating_add(1);
        let half = nominal / 2;
        let jitter_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(fastrand::u64(0..=jitter_nanos))
    }

    /// Back to the first delay, after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Attempts made since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

/// Runs `operation` until it succeeds, fails with an error that is not
/// retryable (constraint, corrupt, timeout, other), or has failed
/// `max_attempts` times. Every retry is logged with its delay.
pub async fn retry<T, F, Fut>(
    backoff: &mut Backoff,
    max_attempts: u32,
    mut operation: F,
) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match operation().await {
            Ok(value) => {
                backoff.reset();
                return Ok(value);
            }
            Err(err) if err.is_retryable() && attempts < max_attempts => {
                let delay = backoff.next_delay();
                tracing::warn!(
                    error = %err,
                    attempt = attempts,
                    retry_in = ?delay,
                    "database operation failed; retrying"
                );
                tokio::time::sleep(delay).await;
            }
            Err(err) => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::error::{Context, StoreError};

    #[test]
    fn delays_double_within_their_jitter_band_and_are_capped() {
        let min = Duration::from_millis(100);
        let max = Duration::from_millis(1000);
        let mut backoff = Backoff::new(min, max);
        let expected_nominal = [100, 200, 400, 800, 1000, 1000, 1000];
        for nominal in expected_nominal {
            let nominal = Duration::from_millis(nominal);
            assert_eq!(backoff.nominal(), nominal);
            let delay = backoff.next_delay();
            assert!(
                delay >= nominal / 2 && delay <= nominal,
                "{delay:?} vs {nominal:?}"
            );
        }
        for _ in 0..100 {
            assert!(backoff.next_delay() <= max);
        }
        backoff.reset();
        assert_eq!(backoff.nominal(), min);
    }

    #[test]
    fn jitter_spreads_delays() {
        let mut delays = std::collections::HashSet::new();
        for _ in 0..50 {
            let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(1));
            delays.insert(backoff.next_delay());
        }
        assert!(
            delays.len() > 10,
            "jitter produced only {} distinct delays",
            delays.len()
        );
    }

    fn busy() -> StoreError {
        StoreError::Busy {
            context: Box::new(Context::op("test")),
            cause: "locked".into(),
        }
    }

    fn constraint() -> StoreError {
        StoreError::Constraint {
            context: Box::new(Context::op("test")),
            kind: crate::store::ConstraintKind::Unique,
            cause: "duplicate".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_retryable_errors_until_success() {
        let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(50));
        let mut calls = 0;
        let result = retry(&mut backoff, 10, || {
            calls += 1;
            let outcome = if calls < 4 { Err(busy()) } else { Ok(calls) };
            async move { outcome }
        })
        .await;
        assert_eq!(result.unwrap(), 4);
        assert_eq!(backoff.attempts(), 0, "success resets the backoff");
    }

    #[tokio::test(start_paused = true)]
    async fn never_retries_constraint_errors() {
        let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(50));
        let mut calls = 0;
        let result: Result<(), _> = retry(&mut backoff, 10, || {
            calls += 1;
            async { Err(constraint()) }
        })
        .await;
        assert!(matches!(result, Err(StoreError::Constraint { .. })));
        assert_eq!(calls, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_attempts() {
        let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(50));
        let mut calls = 0;
        let result: Result<(), _> = retry(&mut backoff, 3, || {
            calls += 1;
            async { Err(busy()) }
        })
        .await;
        assert!(matches!(result, Err(StoreError::Busy { .. })));
        assert_eq!(calls, 3);
    }
}
