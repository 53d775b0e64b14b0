//! Signals: caught from the first moment of `main`, given a meaning each,
//! and delivered to the daemon's async code.

use anyhow::{Context as _, Result};
use signal_hook::consts::{SIGALRM, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
use tokio::sync::mpsc;

/// Every signal the daemon gives a meaning to, caught from the first
/// moment of `main` (see [`catch_signals`]):
///
/// - SIGHUP: reload the configuration;
/// - SIGTERM, SIGINT, SIGQUIT: commit what has been read, then stop;
/// - SIGUSR1, SIGUSR2, SIGALRM: no meaning here; logged and ignored rather
///   than left to their default action, which kills without a drain.
pub const CAUGHT_SIGNALS: [i32; 7] = [SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM];

/// Signals caught before anything else runs; delivered once the daemon is
/// ready to act on them (one that arrives during start-up waits).
pub struct CaughtSignals(signal_hook::iterator::Signals);

/// Installs the handlers for [`CAUGHT_SIGNALS`]. Called first thing in
/// `main` for `run`, so that no signal finds its default action.
pub fn catch_signals() -> std::io::Result<CaughtSignals> {
    signal_hook::iterator::Signals::new(CAUGHT_SIGNALS).map(CaughtSignals)
}

/// Delivers the caught signals to async code.
pub(super) fn forward_signals(signals: CaughtSignals) -> Result<mpsc::Receiver<i32>> {
    let mut signals = signals.0;
    let (tx, rx) = mpsc::channel(8);
    std::thread::Builder::new()
        .name("signals".to_owned())
        .spawn(move || {
            for signal in signals.forever() {
                if tx.blocking_send(signal).is_err() {
                    break;
                }
            }
        })
        .context("starting the signal thread")?;
    Ok(rx)
}

/// A signal's name, for log lines.
pub(super) fn signal_name(signal: i32) -> &'static str {
    match signal {
        SIGHUP => "SIGHUP",
        SIGTERM => "SIGTERM",
        SIGINT => "SIGINT",
        SIGQUIT => "SIGQUIT",
        SIGUSR1 => "SIGUSR1",
        SIGUSR2 => "SIGUSR2",
        SIGALRM => "SIGALRM",
        _ => "a signal",
    }
}
