//! Catching up a backlog without the secondary indexes: the daemon drops
//! them when it starts far behind (as `ingest` does for a bulk load), and
//! the writer builds them again once a batch comes in short, which means
//! the reader has reached the end of what was written.
//!
//! SQLite builds an index from sorted keys far faster than it keeps one up
//! to date under random inserts, so a daemon started on a day's backlog
//! catches up at `ingest`'s speed. Meanwhile queries still answer, more
//! slowly (they scan); a crash leaves nothing to repair that the next open
//! does not (every open creates missing indexes).

use std::time::Duration;

use super::Progress;
use crate::store::{StoreHandle, indexes};

/// Whether the writer must build the secondary indexes when caught up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Indexes {
    /// They are there (the usual case, and `ingest`, which rebuilds its
    /// own).
    Kept,
    /// The daemon dropped them to catch up a backlog.
    DroppedUntilCaughtUp,
}

/// How often the watchdog hears from a writer that is building indexes:
/// one index of a large database can take longer than systemd's
/// `WatchdogSec`, and the build is progress, not a hang.
const BUILDING_TICK: Duration = Duration::from_secs(5);

/// Builds the missing secondary indexes. Returns whether they are all
/// there now; after a failure (the database is down, say) they are built
/// at the next attempt, or by the next open.
pub(super) async fn build_indexes(store: &StoreHandle, progress: &mut dyn Progress) -> bool {
    let started = std::time::Instant::now();
    let current = store.current();
    let building = current.with_conn("build indexes after catching up", |conn| {
        indexes::ensure_secondary(conn)
    });
    tokio::pin!(building);
    let mut tick = tokio::time::interval(BUILDING_TICK);
    let built = loop {
        tokio::select! {
            built = &mut building => break built,
            _ = tick.tick() => progress.alive(true),
        }
    };
    match built {
        Ok(count) => {
            let seconds = started.elapsed().as_secs_f64();
            tracing::info!(
                indexes = count,
                seconds,
                "caught up with the log: built the indexes dropped for the catch-up ({count}, in \
                 {seconds:.1} s)"
            );
            true
        }
        Err(err) => {
            tracing::warn!(error = %err, "cannot build the indexes yet: {err}; trying again after the next batch");
            false
        }
    }
}
