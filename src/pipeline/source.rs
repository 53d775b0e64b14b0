//! The contract between a source of log lines and the pipeline: what a
//! source is ([`LineSource`]), what it sends ([`ItemSink`] of
//! [`super::item::Item`]), and how a source generation is identified
//! ([`Fingerprint`]) and recognised at a read position ([`TailMarker`]).
//! The file follower (`crate::source::file`) and the journal (`crate::source::journal`)
//! implement it; what only files need has a default body that a source
//! without files leaves alone. The writer knows nothing of where lines
//! come from.

use std::path::PathBuf;

use super::item::Item;
pub use super::item::{Fingerprint, TAIL_MARKER_BYTES, TailMarker};

/// A source of log lines, driven by `super::drive`: it catches up on
/// start, then is polled until finished or stopped, sending lines (with
/// the read position after each) to the writer.
pub trait LineSource: Send {
    /// What it reads, for status lines and logs (a path, a journal match).
    fn describe(&self) -> String;

    /// Catches up with what happened while exim-pilot was stopped (for a
    /// file: generations rotated meanwhile), before the first poll; lines
    /// sent. A source whose polls resume by themselves (the journal, from
    /// its cursor) has nothing to do here.
    fn resume(&mut self, _sink: &mut dyn ItemSink) -> std::io::Result<u64> {
        Ok(0)
    }

    /// Reads what is new and sends it.
    fn poll(&mut self, sink: &mut dyn ItemSink) -> std::io::Result<PollOutcome>;

    /// Whether the source has nothing more, ever: `ingest`'s sources end
    /// (files read, journalctl done); a followed source never does.
    fn finished(&self) -> bool {
        false
    }

    /// How far reading is behind the end of the source, in bytes (0 when
    /// the source cannot tell, as the journal cannot).
    fn lag_bytes(&self) -> u64 {
        0
    }

    /// A directory whose changes mean "poll now" (file-system events), if
    /// the source has one; without it the reader polls on its own.
    fn wake_directory(&self) -> Option<PathBuf> {
        None
    }

    /// Follows another path from now on (a reload changed `[log] path`),
    /// after sending what the current one still holds. A source without a
    /// path keeps reading what it reads.
    fn switch_path(&mut self, _path: PathBuf, _sink: &mut dyn ItemSink) -> std::io::Result<()> {
        Ok(())
    }
}

/// What one poll did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollOutcome {
    /// Lines sent.
    pub lines: u64,
    /// The source wants to be polled again at once (more to read, or a
    /// state change to act on).
    pub again: bool,
    /// The writer has gone away: stop.
    pub closed: bool,
}

/// Sends items to the writer, waiting while the channel is full (never
/// dropping). Fails once the writer has gone away.
pub trait ItemSink {
    /// Sends one item (a sink may gather items and send them together);
    /// `false` when the receiver is gone (a gathering sink notices when it
    /// sends what it gathered).
    fn send(&mut self, item: Item) -> bool;

    /// Sends whatever was gathered: called whenever the reader has nothing
    /// more to read for now, and before it ends. `false` when the receiver
    /// is gone.
    fn flush(&mut self) -> bool {
        true
    }

    /// Whether the reader should stop at the next step (the daemon is
    /// shutting down): long reads look at it between bounded steps.
    fn stopping(&self) -> bool {
        false
    }

    /// A line longer than `max_line_bytes` is being sent truncated.
    fn truncated(&mut self, _path: &str, _offset: u64, _length: u64) {}
}

/// A sink that keeps what a source sends, for the sources' tests.
#[cfg(test)]
#[derive(Debug, Default)]
pub struct Collected(pub Vec<Item>);

#[cfg(test)]
impl ItemSink for Collected {
    fn send(&mut self, item: Item) -> bool {
        self.0.push(item);
        true
    }
}

#[cfg(test)]
impl Collected {
    /// The lines sent, in order.
    pub fn line_items(&self) -> Vec<&super::item::LineItem> {
        self.0
            .iter()
            .filter_map(|item| match item {
                Item::Line(line) => Some(line),
                Item::Gap(_) | Item::Audit(_) | Item::QueueSample(_) => None,
            })
            .collect()
    }

    /// The gaps sent, in order.
    pub fn gaps(&self) -> Vec<&super::item::GapItem> {
        self.0
            .iter()
            .filter_map(|item| match item {
                Item::Gap(gap) => Some(gap),
                Item::Line(_) | Item::Audit(_) | Item::QueueSample(_) => None,
            })
            .collect()
    }
}
