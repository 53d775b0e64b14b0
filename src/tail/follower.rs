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
use std::io::{BufReader, ErrorKind};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::finished::{ReadSummary, identify, line_item, read_file};
use super::framing::LineReader;
use super::identity::Fingerprint;
use super::input::MarkerCheck;
use super::positions::Positions;
use super::siblings::rotated_generations;
use crate::backoff::Backoff;
use crate::pipeline::item::{AuditItem, GapItem, Item, SourceInfo};
use crate::pipeline::source::{ItemSink, PollOutcome};

/// Timing and limits of the follower.
#[derive(Debug, Clone)]
pub struct FollowSettings {
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
        }
    }
}

/// Lines read in one go before the follower looks at the path again.
const LINES_PER_POLL: usize = 50_000;

/// Bytes scanned in one go inside a single line (a sparse hole, a runaway
/// writer) before the reader looks at a stop request again: SIGTERM must be
/// answered within seconds whatever the file holds.
pub const SCAN_BYTES_PER_STEP: u64 = 16 * 1024 * 1024;

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
    pub fingerprint: Fingerprint,
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

    /// Handles rotation while stopped: finishes the generation the newest
    /// read position of this log belongs to, then every newer one, before
    /// the live file is followed. A position whose file is gone becomes a
    /// gap. Returns the lines sent.
    pub fn resume(
        &mut self,
        latest: Option<LastRead>,
        sink: &mut dyn ItemSink,
    ) -> std::io::Result<u64> {
        let identified = self.identified_generations();
        // What is rotated now is history; only what appears later is new.
        self.siblings_known = Some(identified.iter().map(|(_, f)| *f).collect());
        let live = identify(&self.path).ok().flatten();
        if let Some(LastRead {
            fingerprint,
            offset,
            ..
        }) = latest
        {
            // The generation, or a rewrite in place of it.
            let found = identified
                .iter()
                .map(|(_, head)| *head)
                .chain(live.as_ref().map(|s| s.fingerprint))
                .any(|head| self.positions.is_generation_of(head, fingerprint));
            if !found {
                let gap = Item::Gap(GapItem {
                    source: None,
                    path: self.path.display().to_string(),
                    start: offset,
                    end: None,
                    reason: format!(
                        "the log generation last read (first line {fingerprint}) is gone: \
                         rotated away or deleted while exim-pilot was stopped"
                    ),
                });
                if !sink.send(gap) {
                    return Ok(0);
                }
            }
        }
        let live_known = live
            .as_ref()
            .is_some_and(|source| self.positions.get(&source.fingerprint).is_some());
        let mut lines = 0;
        if !live_known {
            lines += self.read_rotated_since_positions(&identified, sink)?;
        }
        // Generations never read but written after the last commit were
        // created and rotated away while exim-pilot was down.
        if let Some(last) = latest {
            for (path, fingerprint) in &identified {
                let modified_ms = std::fs::metadata(path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                if self.positions.get(fingerprint).is_none() && modified_ms >= last.committed_ms {
                    let summary = self.read_finished(path, sink)?;
                    lines += summary.lines;
                }
            }
        }
        Ok(lines)
    }

    /// Reads a rotated (finished) generation from its stored position to
    /// its end, unterminated last line included.
    fn read_finished(
        &mut self,
        path: &Path,
        sink: &mut dyn ItemSink,
    ) -> std::io::Result<ReadSummary> {
        read_file(
            path,
            &mut self.positions,
            self.settings.max_line_bytes,
            true,
            sink,
        )
    }

    /// The rotated generations that have a first line, oldest first.
    fn identified_generations(&self) -> Vec<(PathBuf, Fingerprint)> {
        rotated_generations(&self.path)
            .into_iter()
            .filter_map(|generation| match identify(&generation.path) {
                Ok(source) => source.map(|s| (generation.path, s.fingerprint)),
                Err(err) => {
                    tracing::warn!(path = %generation.path.display(), error = %err, "cannot read a rotated log");
                    None
                }
            })
            .collect()
    }

    /// Reads, oldest first, the newest rotated generation with a stored
    /// position and every generation after it: what was rotated away
    /// before it could be read from the live path.
    fn read_rotated_since_positions(
        &mut self,
        identified: &[(PathBuf, Fingerprint)],
        sink: &mut dyn ItemSink,
    ) -> std::io::Result<u64> {
        let Some(start) = identified
            .iter()
            .rposition(|(_, fingerprint)| self.positions.get(fingerprint).is_some())
        else {
            return Ok(0);
        };
        let mut lines = 0;
        let mut seen = std::collections::HashSet::new();
        for (path, fingerprint) in &identified[start..] {
            // A generation listed twice (plain and .gz) is read once.
            if !seen.insert(*fingerprint) {
                continue;
            }
            let summary = self.read_finished(path, sink)?;
            if summary.lines > 0 {
                tracing::info!(path = %path.display(), lines = summary.lines, from = summary.resumed_at, "read a rotated generation");
            }
            lines += summary.lines;
        }
        Ok(lines)
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
        tracing::info!(from = %self.path.display(), to = %path.display(), "following a new log path");
        self.current = None;
        self.pending.clear();
        self.waiting = None;
        self.path = path;
        Ok(())
    }

    /// Opens the live path if possible. Returns whether a file is tracked.
    fn open_live(&mut self, sink: &mut dyn ItemSink) -> std::io::Result<bool> {
        // A newer generation opened while the previous one was drained.
        if let Some(next) = self.pending.pop_front() {
            self.current = Some(next);
            return Ok(true);
        }
        // Generations rotated while no file was followed are read first,
        // from the newest one with a stored position on.
        let siblings = siblings_signature(&self.path);
        if self.siblings_signature_seen != Some(siblings) {
            self.siblings_signature_seen = Some(siblings);
            let identified = self.identified_generations();
            self.read_rotated_since_positions(&identified, sink)?;
            let known = self
                .siblings_known
                .replace(identified.iter().map(|(_, f)| *f).collect());
            if let Some(known) = known {
                // Generations that appeared since the last look and were
                // never read: they were at the live path in between.
                for (path, fingerprint) in &identified {
                    if !known.contains(fingerprint) && self.positions.get(fingerprint).is_none() {
                        self.read_finished(path, sink)?;
                    }
                }
            }
        }
        let Some(tracked) = self.open_path()? else {
            return Ok(false);
        };
        self.current = Some(tracked);
        Ok(true)
    }

    /// Opens the file the path names now, positioned where reading of that
    /// generation stopped (0 for a new one).
    fn open_path(&mut self) -> std::io::Result<Option<Tracked>> {
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            return Ok(None);
        }
        let file = match super::input::open_regular(&self.path) {
            Ok(file) => file,
            Err(err) if err.kind() == ErrorKind::NotFound => {
                self.wait(Waiting::Missing, false);
                return Ok(None);
            }
            Err(err) => {
                self.wait(Waiting::Unreadable(err.to_string()), true);
                return Ok(None);
            }
        };
        let Some(tracked) = self.track(file)? else {
            self.wait(Waiting::NoFirstLine, false);
            return Ok(None);
        };
        if let Some(Waiting::Unreadable(_)) = self.waiting.take() {
            tracing::info!(path = %self.path.display(), "the log can be read again");
        }
        self.retry.reset();
        self.retry_at = None;
        Ok(Some(tracked))
    }

    /// Starts reading `file` (the live log, or a file we hold) where
    /// reading of its generation stopped, 0 for a new one. `None` while it
    /// has no complete first line.
    fn track(&mut self, file: File) -> std::io::Result<Option<Tracked>> {
        let metadata = file.metadata()?;
        let Some(fingerprint) = head_fingerprint(&file)? else {
            return Ok(None);
        };
        let mut source = SourceInfo {
            fingerprint,
            path: self.path.display().to_string(),
            device: Some(metadata.dev()),
            inode: Some(metadata.ino()),
        };
        let resolved = self.positions.resolve(fingerprint, |offset, marker| {
            check_marker(&file, offset, marker)
        })?;
        if resolved.fingerprint != fingerprint {
            tracing::warn!(
                path = %self.path.display(),
                from = resolved.offset,
                "the log no longer holds what was read before at its stored position \
                 (rewritten in place); reading it as a rewritten generation"
            );
            source.fingerprint = resolved.fingerprint;
        }
        let (offset, marker) = (resolved.offset, resolved.marker);
        let reader_handle = file.try_clone()?;
        let mut buffered = BufReader::with_capacity(256 * 1024, reader_handle);
        std::io::Seek::seek(&mut buffered, std::io::SeekFrom::Start(offset))?;
        Ok(Some(Tracked {
            file,
            reader: LineReader::new(buffered, offset, self.settings.max_line_bytes)
                .with_tail_marker(if offset == 0 { &[] } else { &marker })
                .with_scan_limit(SCAN_BYTES_PER_STEP),
            source: Arc::new(source),
            head: fingerprint,
            device: metadata.dev(),
            inode: metadata.ino(),
            last_size: metadata.len(),
            rotated_at: None,
        }))
    }

    /// While the rotated file is drained, holds on to the generation the
    /// path names now, so that it is read later even if it is rotated away
    /// (or deleted) before the drain ends.
    fn hold_newer_generation(&mut self) -> std::io::Result<()> {
        let Ok(metadata) = std::fs::metadata(&self.path) else {
            return Ok(());
        };
        let known =
            |tracked: &Tracked| tracked.device == metadata.dev() && tracked.inode == metadata.ino();
        if self.current.as_ref().is_some_and(known) || self.pending.iter().any(known) {
            return Ok(());
        }
        if let Some(tracked) = self.open_path()? {
            tracing::debug!(path = %self.path.display(), "holding a newer generation until the rotated one is drained");
            // The generation before it was superseded now.
            let now = Instant::now();
            if let Some(previous) = self.pending.back_mut().or(self.current.as_mut()) {
                previous.rotated_at.get_or_insert(now);
            }
            self.pending.push_back(tracked);
        }
        Ok(())
    }

    fn wait(&mut self, reason: Waiting, backoff: bool) {
        if self.waiting.as_ref() != Some(&reason) {
            match &reason {
                Waiting::Missing => {
                    tracing::info!(path = %self.path.display(), "waiting for the log to appear");
                }
                Waiting::NoFirstLine => {
                    tracing::debug!(path = %self.path.display(), "waiting for the log's first line");
                }
                Waiting::Unreadable(error) => tracing::warn!(
                    path = %self.path.display(),
                    %error,
                    "cannot open the log; retrying with backoff (check that the service user may read it)"
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

    /// Finishes the rotated file: sends its unterminated last line, if any,
    /// and closes it. Returns false if the writer has gone away.
    fn finish_current(&mut self, sink: &mut dyn ItemSink) -> bool {
        let Some(mut tracked) = self.current.take() else {
            return true;
        };
        let mut open = true;
        if let Some(line) = tracked.reader.finish() {
            tracing::info!(path = %self.path.display(), bytes = line.length, "a rotated log ended without a newline; storing its last line as it is");
            open = sink.send(line_item(&tracked.source, &line));
        }
        self.positions.set(
            tracked.source.fingerprint,
            tracked.reader.committed_offset(),
            tracked.reader.tail_marker(),
        );
        tracing::info!(path = %self.path.display(), "finished a rotated log; following the new one");
        open && sink.send(AuditItem::item(
            "rotated",
            "daemon",
            serde_json::json!({
                "path": tracked.source.path,
                "first_line": tracked.source.fingerprint.to_string(),
                "bytes": tracked.reader.committed_offset(),
            }),
        )) && self.catch_up(tracked.source.fingerprint, sink)
    }

    /// After finishing a rotated generation, reads the generations between
    /// it and the ones held or live: several rotations between two polls
    /// leave generations that were never at the path while we looked.
    /// Returns false if the writer has gone away.
    fn catch_up(&mut self, finished: Fingerprint, sink: &mut dyn ItemSink) -> bool {
        let held: Vec<Fingerprint> = self.pending.iter().map(|t| t.source.fingerprint).collect();
        let live = identify(&self.path).ok().flatten().map(|s| s.fingerprint);
        let generations: Vec<(PathBuf, Fingerprint)> = rotated_generations(&self.path)
            .into_iter()
            .filter_map(|g| {
                let source = identify(&g.path).ok().flatten()?;
                Some((g.path, source.fingerprint))
            })
            .collect();
        let Some(start) = generations.iter().position(|(_, f)| *f == finished) else {
            return true;
        };
        let mut seen = std::collections::HashSet::from([finished]);
        for (path, fingerprint) in &generations[start + 1..] {
            // A held generation is read next, in its turn; what comes after
            // it is caught up when it is finished.
            if held.contains(fingerprint) || live == Some(*fingerprint) {
                break;
            }
            if !seen.insert(*fingerprint) {
                continue;
            }
            match self.read_finished(path, sink) {
                Ok(summary) if summary.lines > 0 => {
                    tracing::info!(path = %path.display(), lines = summary.lines, "read a generation rotated between two polls");
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(path = %path.display(), error = %err, "cannot read a rotated generation");
                }
            }
        }
        true
    }

    /// The tracked file was truncated. Bytes not yet read are taken from a
    /// rotated copy with the same first line (copytruncate) or recorded as
    /// a gap. Returns false if the writer has gone away.
    fn handle_truncation(
        &mut self,
        tracked: Tracked,
        sink: &mut dyn ItemSink,
    ) -> std::io::Result<bool> {
        let committed = tracked.reader.committed_offset();
        let fingerprint = tracked.source.fingerprint;
        self.positions
            .set(fingerprint, committed, tracked.reader.tail_marker());
        tracing::info!(path = %self.path.display(), read_up_to = committed, "the log was truncated (copytruncate?)");
        if !sink.send(AuditItem::item(
            "truncated",
            "daemon",
            serde_json::json!({ "path": tracked.source.path, "read_up_to": committed }),
        )) {
            return Ok(false);
        }
        let copy = rotated_generations(&self.path)
            .into_iter()
            .rev()
            .find(|generation| {
                identify(&generation.path)
                    .ok()
                    .flatten()
                    .is_some_and(|source| source.fingerprint == fingerprint)
            });
        let open = if let Some(copy) = copy {
            let summary = self.read_finished(&copy.path, sink)?;
            tracing::info!(path = %copy.path.display(), lines = summary.lines, "read the rest of the log from its rotated copy");
            self.catch_up(fingerprint, sink)
        } else if tracked.last_size > committed {
            let gap = Item::Gap(GapItem {
                source: Some(Arc::clone(&tracked.source)),
                path: tracked.source.path.clone(),
                start: committed,
                end: Some(tracked.last_size),
                reason: "the log was truncated before these bytes were read, and no rotated copy holds them"
                    .to_owned(),
            });
            sink.send(gap)
        } else {
            true
        };
        // What the file holds now is a new generation: read it from the
        // descriptor we hold (the path may name another file by now).
        let rotated_at = tracked.rotated_at;
        if let Some(mut next) = self.track(tracked.file)? {
            next.rotated_at = rotated_at;
            self.current = Some(next);
        }
        Ok(open)
    }
}

/// Whether the tracked file was truncated: it shrank, or (truncated and
/// rewritten between two polls, maybe to the same size) the bytes before
/// the read position changed. One 16-byte read per poll.
fn truncated(tracked: &Tracked, size: u64) -> bool {
    // Shorter than what was read, or than it was when last seen (a held
    // generation may be truncated before any of it was read).
    if size < tracked.read_position() || size < tracked.last_size {
        return true;
    }
    let committed = tracked.reader.committed_offset();
    if committed == 0 {
        // Nothing read yet, so no marker: the first line must still be the
        // one the file had when it was opened (it may have been held, then
        // copied and truncated before a line of it was read).
        return head_fingerprint(&tracked.file)
            .is_ok_and(|head| head.is_some_and(|h| h != tracked.head));
    }
    let marker = tracked.reader.tail_marker();
    matches!(
        check_marker(&tracked.file, committed, marker),
        Ok(MarkerCheck::Differs | MarkerCheck::TooShort)
    )
}

/// A hash of the names, sizes and modification times of the rotated
/// generations: cheap (no file is opened), and it changes with every
/// rotation and every late write to a rotated file.
fn siblings_signature(path: &Path) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for generation in rotated_generations(path) {
        generation.path.hash(&mut hasher);
        if let Ok(metadata) = std::fs::metadata(&generation.path) {
            metadata.len().hash(&mut hasher);
            metadata.modified().ok().hash(&mut hasher);
            metadata.ino().hash(&mut hasher);
        }
    }
    hasher.finish()
}

/// Compares the bytes before `offset` in `file` with `marker`.
fn check_marker(file: &File, offset: u64, marker: &[u8]) -> std::io::Result<MarkerCheck> {
    if offset == 0 {
        return Ok(MarkerCheck::Matches);
    }
    let start = offset.saturating_sub(marker.len() as u64);
    let mut found = vec![0u8; (offset - start) as usize];
    let mut filled = 0;
    while filled < found.len() {
        match file.read_at(&mut found[filled..], start + filled as u64) {
            Ok(0) => return Ok(MarkerCheck::TooShort),
            Ok(n) => filled += n,
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    if marker.is_empty() {
        // Nothing to compare, but the file reaches the offset.
        return Ok(MarkerCheck::Matches);
    }
    Ok(if found == marker[marker.len() - found.len()..] {
        MarkerCheck::Matches
    } else {
        MarkerCheck::Differs
    })
}

/// The fingerprint of the file's first line, read without moving anything.
fn head_fingerprint(file: &File) -> std::io::Result<Option<Fingerprint>> {
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    let limit = super::identity::FINGERPRINT_MAX_BYTES;
    while head.len() < limit {
        let n = match file.read_at(&mut chunk, head.len() as u64) {
            Ok(n) => n,
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
        if memchr::memchr(b'\n', &head).is_some() {
            break;
        }
    }
    head.truncate(limit);
    Fingerprint::of_head(&mut &head[..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn read_all(path: &Path) -> Vec<u8> {
        std::fs::read(path).unwrap()
    }

    /// Collects items as a writer would receive them.
    #[derive(Default)]
    struct Collect(Vec<Item>);

    impl ItemSink for Collect {
        fn send(&mut self, item: Item) -> bool {
            self.0.push(item);
            true
        }
    }

    impl Collect {
        fn lines(&self) -> Vec<String> {
            self.0
                .iter()
                .filter_map(|item| match item {
                    Item::Line(line) => Some(String::from_utf8_lossy(&line.bytes).into_owned()),
                    Item::Gap(_) | Item::Audit(_) => None,
                })
                .collect()
        }

        fn gaps(&self) -> Vec<&GapItem> {
            self.0
                .iter()
                .filter_map(|item| match item {
                    Item::Gap(gap) => Some(gap),
                    Item::Line(_) | Item::Audit(_) => None,
                })
                .collect()
        }
    }

    fn settings() -> FollowSettings {
        FollowSettings {
            rotate_grace: Duration::ZERO,
            ..FollowSettings::new(1024)
        }
    }

    fn append(path: &Path, text: &str) {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }

    /// A `mainlog` holding `initial`, followed and read until quiet.
    fn following(initial: &str) -> (tempfile::TempDir, PathBuf, Follower, Collect) {
        let dir = tempfile::TempDir::new().unwrap();
        let log = dir.path().join("mainlog");
        append(&log, initial);
        let mut follower = Follower::new(log.clone(), settings(), Positions::default());
        let mut sink = Collect::default();
        poll_until_quiet(&mut follower, &mut sink);
        (dir, log, follower, sink)
    }

    fn poll_until_quiet(follower: &mut Follower, sink: &mut Collect) {
        for _ in 0..10 {
            let outcome = follower.poll(sink).unwrap();
            if !outcome.again && outcome.lines == 0 {
                return;
            }
        }
    }

    #[test]
    fn follows_growth_and_holds_a_partial_line() {
        let (_dir, log, mut follower, mut sink) = following("one\ntw");
        assert_eq!(sink.lines(), ["one"]);
        append(&log, "o\nthree\n");
        poll_until_quiet(&mut follower, &mut sink);
        assert_eq!(sink.lines(), ["one", "two", "three"]);
    }

    #[test]
    fn rename_rotation_drains_the_old_file_then_reads_the_new_one() {
        let (dir, log, mut follower, mut sink) = following("a1\n");
        std::fs::rename(&log, dir.path().join("mainlog.1")).unwrap();
        // Written to the renamed file after the rename (Exim's stat/write race).
        append(&dir.path().join("mainlog.1"), "a2\nlast-without-newline");
        append(&log, "b1\n");
        poll_until_quiet(&mut follower, &mut sink);
        assert_eq!(sink.lines(), ["a1", "a2", "last-without-newline", "b1"]);
    }

    #[test]
    fn copytruncate_takes_unread_bytes_from_the_copy() {
        let (dir, log, mut follower, mut sink) = following("c1\n");
        append(&log, "c2\nc3\n");
        std::fs::write(dir.path().join("mainlog.1"), read_all(&log)).unwrap();
        std::fs::write(&log, "d1\n").unwrap();
        poll_until_quiet(&mut follower, &mut sink);
        assert_eq!(sink.lines(), ["c1", "c2", "c3", "d1"]);
        assert!(sink.gaps().is_empty());
    }

    #[test]
    fn truncation_without_a_copy_is_a_gap() {
        let (_dir, log, mut follower, mut sink) = following("e1\n");
        // Grows (seen by a poll that reads nothing more: simulate by
        // checking size only), then is truncated before the bytes are read.
        if let Some(tracked) = follower.current.as_mut() {
            tracked.last_size = 10;
        }
        std::fs::write(&log, "f1\n").unwrap();
        poll_until_quiet(&mut follower, &mut sink);
        assert_eq!(sink.lines(), ["e1", "f1"]);
        let gaps = sink.gaps();
        assert_eq!(gaps.len(), 1);
        assert_eq!((gaps[0].start, gaps[0].end), (3, Some(10)));
    }

    #[test]
    fn truncated_and_regrown_between_polls_is_detected_by_the_marker() {
        let (_dir, log, mut follower, mut sink) = following("g1 old line\n");
        // Rewritten, longer than before, same inode.
        std::fs::write(&log, "h1 a new first line, longer\nh2\n").unwrap();
        poll_until_quiet(&mut follower, &mut sink);
        assert_eq!(
            sink.lines(),
            ["g1 old line", "h1 a new first line, longer", "h2"]
        );
    }

    #[test]
    fn delete_and_recreate_and_a_missing_path() {
        let dir = tempfile::TempDir::new().unwrap();
        let log = dir.path().join("mainlog");
        let mut follower = Follower::new(log.clone(), settings(), Positions::default());
        let mut sink = Collect::default();
        poll_until_quiet(&mut follower, &mut sink);
        append(&log, "i1\n");
        poll_until_quiet(&mut follower, &mut sink);
        std::fs::remove_file(&log).unwrap();
        poll_until_quiet(&mut follower, &mut sink);
        append(&log, "j1\n");
        poll_until_quiet(&mut follower, &mut sink);
        assert_eq!(sink.lines(), ["i1", "j1"]);
    }

    #[test]
    fn resume_finishes_generations_rotated_while_stopped_including_gzip() {
        let dir = tempfile::TempDir::new().unwrap();
        let log = dir.path().join("mainlog");
        append(&log, "k1\nk2\n");
        let mut positions = Positions::default();
        let mut sink = Collect::default();
        {
            let mut follower = Follower::new(log.clone(), settings(), positions.clone());
            poll_until_quiet(&mut follower, &mut sink);
            positions = follower.positions.clone();
        }
        // While stopped: more lines, two rotations, the older compressed.
        append(&log, "k3\n");
        let k = read_all(&log);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&k).unwrap();
        std::fs::write(dir.path().join("mainlog.2.gz"), gz.finish().unwrap()).unwrap();
        std::fs::write(dir.path().join("mainlog.1"), "l1\nl2\n").unwrap();
        std::fs::write(&log, "m1\n").unwrap();

        let latest = Fingerprint::of_head(&mut &b"k1\n"[..])
            .unwrap()
            .map(|fingerprint| LastRead {
                fingerprint,
                offset: 6,
                committed_ms: 0,
            });
        let mut follower = Follower::new(log.clone(), settings(), positions);
        follower.resume(latest, &mut sink).unwrap();
        poll_until_quiet(&mut follower, &mut sink);
        assert_eq!(sink.lines(), ["k1", "k2", "k3", "l1", "l2", "m1"]);
        assert!(sink.gaps().is_empty());
    }

    #[test]
    fn a_generation_gone_while_stopped_is_a_gap() {
        let dir = tempfile::TempDir::new().unwrap();
        let log = dir.path().join("mainlog");
        std::fs::write(&log, "n1\n").unwrap();
        let gone = Fingerprint::of_head(&mut &b"old first line\n"[..])
            .unwrap()
            .unwrap();
        let mut positions = Positions::default();
        positions.set(gone, 500, b"x\n");
        let mut follower = Follower::new(log.clone(), settings(), positions);
        let mut sink = Collect::default();
        follower
            .resume(
                Some(LastRead {
                    fingerprint: gone,
                    offset: 500,
                    committed_ms: i64::MAX,
                }),
                &mut sink,
            )
            .unwrap();
        poll_until_quiet(&mut follower, &mut sink);
        assert_eq!(sink.lines(), ["n1"]);
        let gaps = sink.gaps();
        assert_eq!(gaps.len(), 1);
        assert_eq!((gaps[0].start, gaps[0].end), (500, None));
    }
}
