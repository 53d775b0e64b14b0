//! The pipeline between sources of lines and the store: the contract a
//! source fulfils (`source`), the one loop that drives any source
//! (`drive`), what it sends (`item`), the channel bounded
//! by items and bytes (`channel`), and the single writer that parses,
//! batches and commits lines with their read positions (`writer`). Sources
//! (`crate::source::file`) call into it; it knows nothing of files. `exim-pilot
//! ingest` feeds it whole files, the daemon a live source.

pub mod channel;
pub mod drive;
pub mod failpoint;
pub mod item;
pub mod source;
pub mod writer;
