//! The replicator's state as the rest of the daemon sees it (the status
//! line, the metrics, the writer's wake-up after a commit). Plain atomics:
//! it is compiled without the `fleet` feature too, never made then.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use crate::store::repo;

/// The replicator's state, shared with the status line and the metrics.
#[derive(Debug)]
pub struct FleetProgress {
    /// The host name rows carry.
    pub host: String,
    pub(super) up: AtomicBool,
    pub(super) unshipped_lines: AtomicU64,
    /// When the oldest unshipped chunk was seen committed (ms since 1970),
    /// 0 when every chunk has shipped.
    pub(super) oldest_unshipped_ms: AtomicI64,
    pub(super) stopped: AtomicBool,
    /// Woken after each local commit.
    pub(super) wake: tokio::sync::Notify,
}

/// A reading of [`FleetProgress`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FleetStatus {
    /// Whether the last attempt to reach PostgreSQL worked.
    pub up: bool,
    /// Lines committed here and not yet in PostgreSQL.
    pub unshipped_lines: u64,
    /// How long the oldest of them has waited.
    pub lag_seconds: f64,
    /// Whether replication stopped for good in this run (a schema it
    /// cannot use, another database replicating as this host).
    pub stopped: bool,
}

impl FleetProgress {
    /// The state before the first connection.
    pub fn new(host: &str) -> Self {
        FleetProgress {
            host: host.to_owned(),
            up: AtomicBool::new(false),
            unshipped_lines: AtomicU64::new(0),
            oldest_unshipped_ms: AtomicI64::new(0),
            stopped: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// Says the writer committed a batch: an idle replicator reads it now
    /// instead of at its next poll. (A commit while it is busy leaves a
    /// permit, so none is missed.)
    pub fn committed(&self) {
        self.wake.notify_one();
    }

    /// The state now.
    pub fn status(&self) -> FleetStatus {
        let oldest = self.oldest_unshipped_ms.load(Ordering::Relaxed);
        let lag_seconds = if oldest == 0 {
            0.0
        } else {
            (repo::now_ms() - oldest).max(0) as f64 / 1000.0
        };
        FleetStatus {
            up: self.up.load(Ordering::Relaxed),
            unshipped_lines: self.unshipped_lines.load(Ordering::Relaxed),
            lag_seconds,
            stopped: self.stopped.load(Ordering::Relaxed),
        }
    }
}
