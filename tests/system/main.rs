//! The system tests: exim-pilot against real things that take minutes to
//! set up: a real Exim delivering over loopback (`exim`, `exim_rotation`),
//! a private PostgreSQL cluster (`fleet`), systemd's own checks of the
//! shipped units (`systemd`), headless Chromium (`browser`), a real
//! Prometheus (`prometheus`), the queue helper against a real Exim
//! (`queue`), and what needs root (`root`: other users,
//! a full tmpfs, journald's socket). Run with
//! `cargo test --locked --all-features --test system` (and by `.ci/run`);
//! `cargo test` alone runs the fast suite without them.

// Tests and their helpers may panic on what they did not expect.
#![allow(clippy::unwrap_used)]

mod browser;
mod exim;
mod exim_rotation;
mod fleet;
mod prometheus;
mod queue;
mod root;
mod systemd;
#[path = "../integration/util/mod.rs"]
mod util;
