//! The sources of log lines, each a `pipeline::source::LineSource`: the
//! file follower (`file/`: Exim's main log and its rotated generations)
//! and the journal (`journal/`: Exim logging to syslog, read through
//! journalctl). They send lines with their read positions to the writer
//! and know nothing of the database beyond the positions they resume from.

pub mod file;
pub mod journal;
