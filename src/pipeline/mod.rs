//! The ingest pipeline: a reader that frames a log file into batches, a
//! channel bounded by items and bytes, and the single writer that commits each batch together
//! with the read position. `exim-pilot ingest` runs it over whole files;
//! the daemon runs the same writer behind the live tailer.

pub mod channel;
mod failpoint;
pub mod item;
pub mod source;
pub mod writer;
