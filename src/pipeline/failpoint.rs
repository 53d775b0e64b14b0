//! Crash points for the crash tests, compiled in only with the
//! `failpoints` cargo feature (never in a package): when the environment
//! variable `EXIM_PILOT_FAILPOINT` is `NAME:N`, the process says so on
//! stderr and aborts (as SIGKILL would end it, nothing flushed or
//! committed) the Nth time it passes point `NAME`.

/// Aborts here if the crash tests asked for it.
#[cfg(feature = "failpoints")]
pub fn hit(name: &str) {
    use std::io::Write as _;
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
        // The test's proof that the abort happened here, not elsewhere.
        let _ = writeln!(std::io::stderr(), "failpoint {spec} reached; aborting");
        std::process::abort();
    }
}

/// Does nothing: failpoints are compiled in only with `--features failpoints`.
#[cfg(not(feature = "failpoints"))]
pub fn hit(_name: &str) {}
