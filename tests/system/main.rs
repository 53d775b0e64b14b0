//! The system tests: exim-pilot against real things that take minutes to
//! set up: a real Exim delivering over loopback (`exim`, `exim_rotation`),
//! a private PostgreSQL cluster (`fleet`), systemd's own checks of the
//! shipped units (`systemd`), and headless Chromium (`browser`). Run with
//! `cargo test --locked --all-features --test system` (and by `.ci/run`);
//! `cargo test` alone runs the fast suite without them.

// Tests and their helpers may panic on what they did not expect.
#![allow(clippy::unwrap_used)]

mod browser;
mod exim;
mod exim_rotation;
mod fleet;
mod systemd;
#[path = "../integration/util/mod.rs"]
mod util;
