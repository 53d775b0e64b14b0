//! The health task: at `[health] interval` it checks that the database's
//! files are still the ones the pool holds (not deleted while open) and
//! pings the database through the pool; when either fails it marks the
//! store unhealthy and rebuilds the pool with exponential backoff and
//! jitter until one answers.

use tokio::sync::watch;

use crate::backoff::Backoff;
use crate::config::Config;
use crate::store::{self, StoreHandle};

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
        let deleted = store::deleted_while_open(&current.database.path);
        if !deleted.is_empty() {
            handle.set_healthy(false);
            let files: Vec<String> = deleted.iter().map(|p| p.display().to_string()).collect();
            tracing::error!(
                files = ?files,
                "database files deleted while open: {}; closing every connection and reopening {} \
                 (what only the deleted database held is gone with it)",
                files.join(", "),
                current.database.path.display()
            );
            if !reopen(&handle, &current, &mut shutdown).await {
                return;
            }
            continue;
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
                tracing::error!(error = %err, "database health check failed: {err}; rebuilding the connection pool");
                if !rebuild(&handle, &current, &mut shutdown).await {
                    return;
                }
            }
        }
    }
}

/// Closes the pool, waits (a little) for the connections in use to be
/// returned, so that SQLite checkpoints an unlinked WAL through the
/// descriptors it still holds and no new connection meets the old index,
/// then builds a new pool. Returns false on shutdown.
async fn reopen(
    handle: &StoreHandle,
    config: &Config,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    handle.current().close();
    for _ in 0..50 {
        if store::deleted_while_open(&config.database.path).is_empty() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
            _ = shutdown.changed() => return false,
        }
    }
    rebuild(handle, config, shutdown).await
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
                let attempts = backoff.attempts() + 1;
                tracing::info!(
                    attempts,
                    "database connection pool rebuilt ({attempts} attempt(s))"
                );
                return true;
            }
            Err(err) => {
                let delay = backoff.next_delay();
                let attempt = backoff.attempts();
                tracing::error!(
                    error = %err,
                    attempt,
                    retry_in = ?delay,
                    "cannot reconnect to the database (attempt {attempt}): {err}; retrying in {delay:?}"
                );
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.changed() => return false,
                }
            }
        }
    }
}
