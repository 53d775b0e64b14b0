//! exim-pilot: tails Exim's main log into SQLite and answers what happened to
//! every message.
//!
//! The binary (`src/main.rs`) is a thin shell over this library so that the
//! integration tests can drive the same code. See ARCHITECTURE.md for the
//! bird's-eye view.

pub mod backoff;
pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod exit;
pub mod fleet;
pub mod localtime;
pub mod logging;
pub mod model;
pub mod output;
pub mod parse;
pub mod pipeline;
pub mod query;
pub mod queue;
pub mod source;
pub mod store;
#[cfg(any(test, feature = "synth"))]
pub mod synth;
#[cfg(feature = "web")]
pub mod web;
