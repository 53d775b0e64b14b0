//! The live tailer: a state machine over one log path, driven by polling
//! `fstat` of the open file and `stat` of the path. File-system events only
//! make it poll sooner; every decision comes from what the polls see:
//!
//! - the open file grew: read the new complete lines;
//! - it shrank, or the bytes before the read position changed: it was
//!   truncated (copytruncate, or truncated and rewritten between polls);
//!   unread bytes are taken from the rotated copy with the same first line,
//!   or recorded as a gap; the path is then read from 0;
//! - the path now names another file, or none: the open file was rotated or
//!   deleted; it is drained to its end through the open descriptor, and
//!   once the grace period after the rotation is over and it no longer
//!   grows, it is finished (its unterminated last line, if any, is sent)
//!   and closed. Meanwhile the new file is opened and held, so that even
//!   rapid rotations lose no generation; it is read from 0 next;
//! - the path cannot be opened (missing, EACCES while logrotate is still
//!   fixing permissions): retry with capped backoff, never give up.
//!
//! On start, rotation while stopped is handled first ([`Follower::resume`]):
//! the generation the last read position belongs to is found among the
//! rotated files by its first line, finished from that position, then the
//! newer generations, then the live file. Bytes that are gone for good are
//! recorded as a gap.

use std::fs::File;
use std::io::BufReader;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::finished::line_item;
use super::framing::LineReader;
use super::identity::Fingerprint;
use super::positions::Positions;
use crate::backoff::Backoff;
use crate::pipeline::item::SourceInfo;
use crate::pipeline::source::{ItemSink, PollOutcome};
use truncation::truncated;

mod open;
mod resume;
mod rotation;
#[cfg(test)]
mod tests;
mod truncation;

/// Timing and limits of the follower.
#[derive(Debug, Clone)]
pub struct FollowSettings {
    /// Longer lines are sent truncated, with their real length.
    pub max_line_bytes: usize,
    /// Poll interval while lines are arriving.
    pub poll_active: Duration,
    /// Poll interval after a while without lines.
    pub poll_idle: Duration,
    /// How long after a rotation the old file may still get lines (Exim
    /// stats the path before each write, so only briefly); after that, once
    /// it stops growing and is read to its end, it is finished and closed.
    pub rotate_grace: Duration,
    /// Cap of the retry delay when the path cannot be opened.
    pub open_retry_max: Duration,
    /// What the followed file's lines are.
    pub kind: crate::pipeline::item::SourceKind,
}

impl FollowSettings {
    /// The defaults for `max_line_bytes`.
    pub fn new(max_line_bytes: usize) -> Self {
        FollowSettings {
            max_line_bytes,
            poll_active: Duration::from_millis(250),
            poll_idle: Duration::from_secs(1),
            rotate_grace: Duration::from_secs(2),
            open_retry_max: Duration::from_secs(5),
            kind: crate::pipeline::item::SourceKind::EximLog,
        }
    }
}

/// Lines read in one go before the follower looks at the path again.
const LINES_PER_POLL: usize = 50_000;

/// The file being read.
struct Tracked {
    /// For `fstat` and positioned reads; the reader has its own handle.
    file: File,
    reader: LineReader<BufReader<File>>,
    source: Arc<SourceInfo>,
    /// The fingerprint of the first line when the file was opened (the
    /// source's may be a derived one).
    head: Fingerprint,
    device: u64,
    inode: u64,
    /// Size at the last poll.
    last_size: u64,
    /// When the path stopped naming this file.
    rotated_at: Option<Instant>,
}

impl Tracked {
    /// Offset of the first byte not yet read.
    fn read_position(&self) -> u64 {
        self.reader.committed_offset() + self.reader.pending_bytes()
    }
}

/// Why the path could not be opened, to log each episode once.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Waiting {
    Missing,
    NoFirstLine,
    Unreadable(String),
}

/// The newest stored read position of the followed log, for a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastRead {
    /// The generation.
    pub fingerprint: Fingerprint,
    /// Where reading of it stopped.
    pub offset: u64,
    /// When it was committed (wall clock, ms since 1970): a rotated
    /// generation never read and modified after it holds new lines.
    pub committed_ms: i64,
}

/// Follows one log path.
pub struct Follower {
    path: PathBuf,
    settings: FollowSettings,
    positions: Positions,
    current: Option<Tracked>,
    /// Newer generations opened while `current` is still being drained,
    /// oldest first.
    pending: std::collections::VecDeque<Tracked>,
    /// Names, sizes and times of the rotated generations when they were
    /// last read, to notice rotations that happened while no file was
    /// followed (between a restart and the first poll, or twice between
    /// two polls).
    siblings_signature_seen: Option<u64>,
    /// The rotated generations (by first line) at the last look: one that
    /// appears later without ever having been read was at the live path
    /// while no file was followed.
    siblings_known: Option<std::collections::HashSet<Fingerprint>>,
    waiting: Option<Waiting>,
    retry: Backoff,
    retry_at: Option<Instant>,
}

impl Follower {
    /// A follower of `path` that resumes from `positions`.
    pub fn new(path: PathBuf, settings: FollowSettings, positions: Positions) -> Self {
        let retry = Backoff::new(Duration::from_millis(100), settings.open_retry_max);
        Follower {
            path,
            settings,
            positions,
            current: None,
            pending: std::collections::VecDeque::new(),
            siblings_signature_seen: None,
            siblings_known: None,
            waiting: None,
            retry,
            retry_at: None,
        }
    }

    /// The path being followed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How far behind the end of the live file reading is, in bytes.
    pub fn lag_bytes(&self) -> u64 {
        self.current.as_ref().map_or(0, |tracked| {
            tracked.file.metadata().map_or(0, |m| {
                m.len().saturating_sub(tracked.reader.committed_offset())
            })
        })
    }

    /// Looks at the file once and sends what is new.
    pub fn poll(&mut self, sink: &mut dyn ItemSink) -> std::io::Result<PollOutcome> {
        let mut outcome = PollOutcome::default();
        if self.current.is_none() && !self.open_live(sink)? {
            return Ok(outcome);
        }
        let Some(tracked) = self.current.as_mut() else {
            return Ok(outcome);
        };
        let size = tracked.file.metadata()?.len();
        if truncated(tracked, size) {
            let tracked = self.current.take();
            if let Some(tracked) = tracked {
                outcome.closed |= !self.handle_truncation(tracked, sink)?;
            }
            outcome.again = true;
            return Ok(outcome);
        }
        let Some(tracked) = self.current.as_mut() else {
            return Ok(outcome);
        };
        let mut sent = 0;
        let mut paused = false;
        while sent < LINES_PER_POLL {
            let Some(line) = tracked.reader.next_line()? else {
                paused = tracked.reader.paused();
                break;
            };
            if line.is_truncated() {
                sink.truncated(&tracked.source.path, line.start, line.length);
            }
            let item = line_item(&tracked.source, &line);
            if !sink.send(item) {
                outcome.closed = true;
                return Ok(outcome);
            }
            sent += 1;
            if sink.stopping() {
                break;
            }
        }
        outcome.lines = sent as u64;
        outcome.again = sent == LINES_PER_POLL || paused;
        let grew = size != tracked.last_size;
        tracked.last_size = size;
        self.positions.set(
            tracked.source.fingerprint,
            tracked.reader.committed_offset(),
            tracked.reader.tail_marker(),
        );
        if self.path_moved_on() {
            self.hold_newer_generation()?;
            let now = Instant::now();
            let rotated_at = self
                .current
                .as_mut()
                .map(|t| *t.rotated_at.get_or_insert(now));
            // Exim stats the path before every write, so a file renamed
            // longer than the grace ago gets no more lines: once it has not
            // grown since the last poll and is read to its end, it is done.
            if let Some(rotated_at) = rotated_at {
                let settled = now.duration_since(rotated_at) >= self.settings.rotate_grace;
                if settled && sent == 0 && !grew {
                    outcome.closed |= !self.finish_current(sink);
                    outcome.again = true;
                } else if settled {
                    // Confirm on an immediate poll that it stopped growing.
                    outcome.again = true;
                }
            }
        }
        Ok(outcome)
    }

    /// Starts following another path (SIGHUP with a new `[log] path`): what
    /// the current file has is read first; its position is kept.
    pub fn switch_path(&mut self, path: PathBuf, sink: &mut dyn ItemSink) -> std::io::Result<()> {
        if let Some(tracked) = self.current.as_mut() {
            while let Some(line) = tracked.reader.next_line()? {
                if !sink.send(line_item(&tracked.source, &line)) {
                    break;
                }
            }
        }
        tracing::info!(
            from = %self.path.display(),
            to = %path.display(),
            "following a new log path: {} instead of {}",
            path.display(),
            self.path.display()
        );
        self.current = None;
        self.pending.clear();
        self.waiting = None;
        self.path = path;
        Ok(())
    }

    fn wait(&mut self, reason: Waiting, backoff: bool) {
        if self.waiting.as_ref() != Some(&reason) {
            match &reason {
                Waiting::Missing => {
                    tracing::info!(path = %self.path.display(), "waiting for {} to appear", self.path.display());
                }
                Waiting::NoFirstLine => {
                    tracing::debug!(path = %self.path.display(), "waiting for the log's first line");
                }
                Waiting::Unreadable(error) => tracing::warn!(
                    path = %self.path.display(),
                    %error,
                    "cannot open the log {}: {error}; retrying with backoff (check that the service user \
                     may read it)",
                    self.path.display()
                ),
            }
            self.waiting = Some(reason);
        }
        self.retry_at = backoff.then(|| Instant::now() + self.retry.next_delay());
    }

    /// Whether the path names another file than the tracked one, or none.
    fn path_moved_on(&self) -> bool {
        let Some(tracked) = &self.current else {
            return false;
        };
        match std::fs::metadata(&self.path) {
            Ok(metadata) => metadata.dev() != tracked.device || metadata.ino() != tracked.inode,
            Err(_) => true,
        }
    }
}
