//! Feeding systemd from real progress: the watchdog after every commit and
//! idle tick, and the status line with the rate, the lag and the path the
//! source reads now.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::source_thread::ReaderControl;
use super::systemd::Notifier;
use crate::pipeline::writer::{Progress, WriteTotals};

pub(super) fn lock(notifier: &Mutex<Notifier>) -> std::sync::MutexGuard<'_, Notifier> {
    notifier
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Feeds systemd's watchdog and status line from the writer's progress.
pub(super) struct DaemonProgress {
    notifier: Arc<Mutex<Notifier>>,
    reader: Arc<ReaderControl>,
    rate_since: Instant,
    rate_lines: u64,
    lines_per_second: f64,
    fleet: Option<Arc<crate::fleet::FleetProgress>>,
}

impl DaemonProgress {
    pub(super) fn new(
        notifier: Arc<Mutex<Notifier>>,
        reader: Arc<ReaderControl>,
        fleet: Option<Arc<crate::fleet::FleetProgress>>,
    ) -> Self {
        DaemonProgress {
            notifier,
            reader,
            rate_since: Instant::now(),
            rate_lines: 0,
            lines_per_second: 0.0,
            fleet,
        }
    }

    fn status(&mut self, totals: Option<WriteTotals>, healthy: bool) {
        let elapsed = self.rate_since.elapsed();
        if let Some(totals) = totals
            && elapsed >= Duration::from_secs(2)
        {
            let lines = totals.inserted + totals.replayed;
            self.lines_per_second = (lines - self.rate_lines) as f64 / elapsed.as_secs_f64();
            self.rate_lines = lines;
            self.rate_since = Instant::now();
        }
        let lag = self
            .reader
            .lag_bytes
            .load(std::sync::atomic::Ordering::Relaxed);
        // Asked each time: a reload may have switched the log path.
        let path = self.reader.describe();
        let mut status = if healthy {
            format!(
                "tailing {path}: {:.0} lines/s, {lag} bytes behind",
                self.lines_per_second
            )
        } else {
            format!("database unavailable, retrying; reading of {path} paused")
        };
        if let Some(stall) = self.reader.stall() {
            status.push_str(&format!(
                "; STALLED for {} s: {}",
                (crate::store::repo::now_ms() - stall.since_ms).max(0) / 1000,
                stall.reason
            ));
        }
        if let Some(fleet) = &self.fleet {
            status.push_str(&fleet_status(&fleet.status()));
        }
        let mut notifier = lock(&self.notifier);
        notifier.watchdog();
        notifier.status(&status, !healthy);
    }
}

/// The fleet's part of the status line.
fn fleet_status(fleet: &crate::fleet::FleetStatus) -> String {
    let state = if fleet.stopped {
        "replication stopped (see the log)"
    } else if fleet.up {
        "fleet"
    } else {
        "fleet unreachable"
    };
    format!(
        "; {state}: {} lines unshipped, {:.0}s behind",
        fleet.unshipped_lines, fleet.lag_seconds
    )
}

impl Progress for DaemonProgress {
    fn committed(&mut self, _batch: WriteTotals, totals: WriteTotals) {
        if let Some(fleet) = &self.fleet {
            fleet.committed();
        }
        self.status(Some(totals), true);
    }

    fn alive(&mut self, healthy: bool) {
        if healthy
            && self.lines_per_second != 0.0
            && self.rate_since.elapsed() > Duration::from_secs(5)
        {
            self.lines_per_second = 0.0;
        }
        self.status(None, healthy);
    }
}

#[cfg(test)]
mod tests {
    use super::fleet_status;
    use crate::fleet::FleetStatus;

    #[test]
    fn the_status_line_says_how_far_behind_the_fleet_is() {
        let status = |up, stopped| FleetStatus {
            up,
            unshipped_lines: 1200,
            lag_seconds: 42.4,
            stopped,
        };
        assert_eq!(
            fleet_status(&status(true, false)),
            "; fleet: 1200 lines unshipped, 42s behind"
        );
        assert_eq!(
            fleet_status(&status(false, false)),
            "; fleet unreachable: 1200 lines unshipped, 42s behind"
        );
        assert_eq!(
            fleet_status(&status(false, true)),
            "; replication stopped (see the log): 1200 lines unshipped, 42s behind"
        );
    }
}
