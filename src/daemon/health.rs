//! The health task: pings the database through the pool at `[health]
//! interval`; when a ping fails it marks the store unhealthy and rebuilds
//! the pool with exponential backoff and jitter until one answers.

use tokio::sync::watch;

use crate::config::Config;
use crate::store::{self, Backoff, StoreHandle};

/// Runs until `shutdown` changes. Reads the current configuration on each
/// round, so a reload applies new intervals and pool settings.
pub async fn run(
    handle: StoreHandle,
    config: watch::Receiver<std::sync::Arc<Config>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let current = config.borrow().clone();
        tokio::select! {
            _ = tokio::time::sleep(current.health.interval) => {}
            _ = shutdown.changed() => return,
        }
        let store = handle.current();
        match store.ping(current.health.timeout).await {
            Ok(()) => {
                if !handle.is_healthy() {
                    tracing::info!("the database answers again");
                }
                handle.set_healthy(true);
            }
            Err(err) => {
                handle.set_healthy(false);
                tracing::error!(error = %err, "database health check failed; rebuilding the connection pool");
                if !rebuild(&handle, &current, &mut shutdown).await {
                    return;
                }
            }
        }
    }
}

/// Builds a new pool until one connects; returns false on shutdown.
async fn rebuild(
    handle: &StoreHandle,
    config: &Config,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let mut backoff = Backoff::new(config.health.backoff_min, config.health.backoff_max);
    loop {
        match store::connect(&config.database).await {
            Ok(store) => {
                handle.replace(store);
                tracing::info!(
                    attempts = backoff.attempts() + 1,
                    "database connection pool rebuilt"
                );
                return true;
            }
            Err(err) => {
                let delay = backoff.next_delay();
                tracing::error!(error = %err, attempt = backoff.attempts(), retry_in = ?delay, "cannot reconnect to the database");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.changed() => return false,
                }
            }
        }
    }
}
