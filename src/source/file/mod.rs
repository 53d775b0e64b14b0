//! Reading Exim's log files: opening plain and compressed generations,
//! identifying a generation by its content, and framing bytes into lines
//! with exact offsets. The live tailer's state machine builds on these;
//! `ingest` reads the files it is given as one source (`named_files`).

pub mod file_source;
pub mod finished;
pub mod follower;
pub mod framing;
pub mod identity;
pub mod input;
pub mod named_files;
pub mod positioned;
pub mod positions;
pub mod siblings;
