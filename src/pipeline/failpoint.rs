//! Crash points for the crash tests: in debug builds only, when the
//! environment variable `EXIM_PILOT_FAILPOINT` is `NAME:N`, the process
//! aborts (as SIGKILL would end it) the Nth time it passes point `NAME`.
//! Release builds compile this to nothing.

/// Aborts here if the crash tests asked for it.
#[cfg(debug_assertions)]
pub fn hit(name: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static PASSES: AtomicU64 = AtomicU64::new(0);
    let Ok(spec) = std::env::var("EXIM_PILOT_FAILPOINT") else {
        return;
    };
    let Some((point, count)) = spec.split_once(':') else {
        return;
    };
    if point != name {
        return;
    }
    let passes = PASSES.fetch_add(1, Ordering::SeqCst) + 1;
    if count.parse() == Ok(passes) {
        std::process::abort();
    }
}

/// Aborts here if the crash tests asked for it (never, in release builds).
#[cfg(not(debug_assertions))]
pub fn hit(_name: &str) {}
