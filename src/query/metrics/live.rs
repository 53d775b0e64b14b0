//! What only a running daemon knows ([`Live`]) and the gauges it gives: the
//! database's health, the reader's lag and stalls, the fleet's shipping,
//! and Exim's queue as the queue helper lists it.

use super::exposition::Family;
use super::gauge;
use crate::queue::listing::QueueSize;

/// What only a running daemon knows; `None` fields are left out.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Live {
    /// Whether the database answers the health check.
    pub database_up: Option<bool>,
    /// Bytes of the log not yet read (file source).
    pub lag_bytes: Option<u64>,
    /// How long the reader has been behind the end of the log (0 when it
    /// is at the end).
    pub lag_seconds: Option<f64>,
    /// Whether the source's reads have failed or hung for `[health]
    /// stall_after`.
    pub source_stalled: Option<bool>,
    /// Whether the fleet's PostgreSQL took the last batch or answered the
    /// last try (`[fleet]` configured only).
    pub fleet_up: Option<bool>,
    /// Lines committed here that the fleet's PostgreSQL does not hold yet.
    pub fleet_unshipped_lines: Option<u64>,
    /// How long the oldest of them has waited.
    pub fleet_lag_seconds: Option<f64>,
    /// Messages in Exim's queue, and how many of them are frozen, as the
    /// queue helper last listed them (when its socket is there).
    pub queue: Option<QueueSize>,
}

pub(super) fn live_gauges(live: &Live) -> Vec<Family> {
    let mut families = Vec::new();
    if let Some(up) = live.database_up {
        families.push(gauge(
            "exim_pilot_database_up",
            "Whether the database answers the daemon's health check",
            if up { 1.0 } else { 0.0 },
        ));
    }
    if let Some(bytes) = live.lag_bytes {
        families.push(gauge(
            "exim_pilot_lag_bytes",
            "Bytes of the live log not yet read",
            bytes as f64,
        ));
    }
    if let Some(seconds) = live.lag_seconds {
        families.push(gauge(
            "exim_pilot_lag_seconds",
            "How long the reader has been behind the end of the log, 0 when it is at the end",
            seconds,
        ));
    }
    if let Some(stalled) = live.source_stalled {
        families.push(gauge(
            "exim_pilot_source_stalled",
            "Whether reading the log has failed or hung for [health] stall_after (1) or not (0)",
            if stalled { 1.0 } else { 0.0 },
        ));
    }
    if let Some(up) = live.fleet_up {
        families.push(gauge(
            "exim_pilot_fleet_up",
            "Whether the fleet's PostgreSQL took the last batch, or answered the last try",
            if up { 1.0 } else { 0.0 },
        ));
    }
    if let Some(lines) = live.fleet_unshipped_lines {
        families.push(gauge(
            "exim_pilot_fleet_unshipped_lines",
            "Lines committed here that the fleet's PostgreSQL does not hold yet",
            lines as f64,
        ));
    }
    if let Some(seconds) = live.fleet_lag_seconds {
        families.push(gauge(
            "exim_pilot_fleet_lag_seconds",
            "How long the oldest line not yet in the fleet's PostgreSQL has waited, 0 when none",
            seconds,
        ));
    }
    if let Some(QueueSize { messages, frozen }) = live.queue {
        // exim_exporter's names, so that its dashboards and alerts work.
        families.push(gauge(
            "exim_queue",
            "Messages in Exim's queue, as the queue helper last listed them",
            messages as f64,
        ));
        families.push(gauge(
            "exim_queue_frozen",
            "Frozen messages in Exim's queue, as the queue helper last listed them",
            frozen as f64,
        ));
    }
    families
}

/// What a daemon whose database cannot answer still exports.
pub fn live_only(live: &Live) -> Vec<Family> {
    live_gauges(live)
}
