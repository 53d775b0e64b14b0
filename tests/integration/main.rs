//! The integration tests: one binary (fast to link), a module per area.
//! They use real SQLite files in temporary directories and run the real
//! `exim-pilot` binary. The tests against a real Exim, PostgreSQL and
//! systemd are the system tests (`tests/system`).

// Tests and their helpers may panic on what they did not expect.
#![allow(clippy::unwrap_used)]

mod cli;
mod daemon;
mod faults;
mod hostile;
mod ingest;
mod journal;
mod layout;
mod metrics;
mod model;
mod parser;
mod query;
mod queue_audit;
mod retention;
mod rewrites;
mod scenarios;
mod schema;
mod signals;
mod store;
mod transactions;
mod util;
mod web;
mod web_hostile;
mod web_queue;
