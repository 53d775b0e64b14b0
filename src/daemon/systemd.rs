//! Talking to systemd over `NOTIFY_SOCKET`: readiness, reloads, stopping,
//! status text and the watchdog. Without a socket (not under systemd, or in
//! a test without one) every call does nothing.

use std::time::{Duration, Instant};

use sd_notify::NotifyState;

/// Sends sd_notify messages; rate-limits status and watchdog pings.
pub struct Notifier {
    watchdog: Option<Duration>,
    last_watchdog: Option<Instant>,
    last_status: Option<Instant>,
}

impl Notifier {
    /// Reads `WATCHDOG_USEC` once, at start.
    pub fn new() -> Self {
        Notifier {
            watchdog: sd_notify::watchdog_enabled(),
            last_watchdog: None,
            last_status: None,
        }
    }

    /// `READY=1` with a status line.
    pub fn ready(&mut self, status: &str) {
        send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// `RELOADING=1` with the monotonic time systemd needs to match it.
    pub fn reloading(&mut self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => send(&[NotifyState::Reloading, now]),
            Err(_) => send(&[NotifyState::Reloading]),
        }
    }

    /// `STOPPING=1`.
    pub fn stopping(&mut self) {
        send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    /// `STATUS=...`, at most every two seconds unless `force`.
    pub fn status(&mut self, status: &str, force: bool) {
        let due = self
            .last_status
            .is_none_or(|last| last.elapsed() >= Duration::from_secs(2));
        if force || due {
            self.last_status = Some(Instant::now());
            send(&[NotifyState::Status(status)]);
        }
    }

    /// `WATCHDOG=1`, when systemd asked for it, at most every quarter of
    /// the watchdog period. Called from the writer's progress path only.
    pub fn watchdog(&mut self) {
        let Some(period) = self.watchdog else {
            return;
        };
        let due = self
            .last_watchdog
            .is_none_or(|last| last.elapsed() >= period / 4);
        if due {
            self.last_watchdog = Some(Instant::now());
            send(&[NotifyState::Watchdog]);
        }
    }
}

impl Default for Notifier {
    fn default() -> Self {
        Self::new()
    }
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(err) = sd_notify::notify(states) {
        tracing::debug!(error = %err, "sd_notify failed");
    }
}
