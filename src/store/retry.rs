//! The one retry loop for database work: it retries exactly the errors
//! [`StoreError::is_retryable`] names (the one retry policy), waiting
//! [`Backoff`] delays between attempts.

use std::future::Future;
use std::time::Duration;

use super::error::StoreError;
use crate::backoff::Backoff;

/// Runs `operation` until it succeeds, fails with an error that is not
/// retryable, or has failed `max_attempts` times. Every retry is logged
/// with its delay.
pub async fn retry<T, Fut>(
    backoff: &mut Backoff,
    max_attempts: u32,
    operation: impl FnMut() -> Fut,
) -> Result<T, StoreError>
where
    Fut: Future<Output = Result<T, StoreError>>,
{
    retry_logged(
        backoff,
        Some(max_attempts),
        |err, attempt, delay| {
            tracing::warn!(
                error = %err,
                attempt,
                retry_in = ?delay,
                "database operation failed (attempt {attempt}): {err}; retrying in {delay:?}"
            );
        },
        operation,
    )
    .await
}

/// [`retry`] with `max_attempts` optional (`None`: until it succeeds or
/// fails for good, as the daemon's writer must) and the caller saying what
/// a retry means: `on_retry` gets the error, the attempts so far and the
/// delay before the next one.
pub async fn retry_logged<T, Fut>(
    backoff: &mut Backoff,
    max_attempts: Option<u32>,
    mut on_retry: impl FnMut(&StoreError, u32, Duration),
    mut operation: impl FnMut() -> Fut,
) -> Result<T, StoreError>
where
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
            Err(err) if err.is_retryable() && max_attempts.is_none_or(|max| attempts < max) => {
                let delay = backoff.next_delay();
                on_retry(&err, attempts, delay);
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
