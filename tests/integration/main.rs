//! The integration tests: one binary (fast to link), a module per area.
//! They use real SQLite files in temporary directories and run the real
//! `exim-pilot` binary.

// Tests and their helpers may panic on what they did not expect.
#![allow(clippy::unwrap_used)]

mod cli;
mod daemon;
mod exim;
mod faults;
mod hostile;
mod ingest;
mod model;
mod parser;
mod query;
mod retention;
mod scenarios;
mod store;
mod systemd;
mod util;
