//! The journal source: Exim's main log read from the systemd journal, for
//! hosts where Exim logs with `log_file_path = syslog`.
//!
//! It runs `journalctl --output=export` (`export.rs` reads its entries),
//! joins Exim's syslog pieces back into the lines Exim writes to a file
//! (`assemble.rs`), and sends them to the writer like the file source does.
//! The read position committed with each line is the journal cursor of the
//! last entry it covers, with any line still unfinished, so the promise is
//! the file source's: nothing lost, nothing stored twice.
//!
//! Why journalctl and not libsystemd: it needs no build dependency (the
//! `systemd` crate needs libsystemd-dev and is LGPL), it runs as the same
//! process the sandbox allows, and its known faults on systemd 250-257 are
//! avoided by how it is called: `--merge` (`--follow` alone implies the
//! current boot), `--no-tail` (`--follow` alone prints 10 entries of a
//! backlog), and `--cursor` (inclusive) instead of `--after-cursor`, which
//! silently skips an entry when the cursor's own entry is gone. The first
//! entry read is dropped only when it is the stored one; when it is not,
//! the entries between were removed (vacuumed or rotated away while
//! stopped) and a gap is recorded with the time range lost.

mod assemble;
mod export;
mod reader;
mod settings;

use std::process::Command;
use std::sync::Arc;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use assemble::{cursor_time_us, same_entry};
use reader::Reader;

pub use assemble::Assembler;
pub use export::{JournalEntry, read_entry};
pub use settings::{JournalSettings, Window};

use crate::pipeline::item::{GapItem, Item, LineItem, ResumeMarker, SourceInfo};
use crate::pipeline::source::{ItemSink, LineSource, PollOutcome};
use crate::store::repo::ReadPosition;

/// Entries read at most per poll, so that a stop request is seen.
const ENTRIES_PER_POLL: usize = 4096;

/// How long a poll waits for a new entry before it returns.
const POLL_WAIT: Duration = Duration::from_millis(200);

/// How long to wait before running journalctl again after it exited.
const RESTART_AFTER: Duration = Duration::from_secs(1);

/// How long to wait before reading an entry without `MESSAGE` again.
const REREAD_AFTER: Duration = Duration::from_millis(200);

/// The journal as a [`LineSource`].
pub struct JournalSource {
    settings: JournalSettings,
    window: Window,
    follow: bool,
    source: Arc<SourceInfo>,
    /// Bytes of lines sent so far: the offsets of the lines.
    offset: u64,
    assembler: Assembler,
    /// Where the next run of journalctl starts: the cursor of the last
    /// entry taken, and how many of the next entry's lines are stored.
    resume: Option<(String, usize)>,
    /// The first entry of a run is still to be checked against `resume`.
    check_first: bool,
    /// Lines of the next entry stored already (a position taken inside an
    /// entry that made several lines).
    skip_next: usize,
    reader: Option<Reader>,
    restart_at: Option<Instant>,
    /// journalctl ended (not following): everything was read.
    finished: bool,
    /// The journal time of the last entry taken, and when it was taken.
    last_entry: (u64, Instant),
    /// The cursor of an entry without `MESSAGE` met once: read again, in
    /// case journald was still writing it; met again, it is skipped.
    empty_seen: Option<String>,
}

/// What became of one entry.
enum Taken {
    /// Its lines (if any) went to the sink.
    Sent,
    /// It has no `MESSAGE` yet: read the journal again from the last entry
    /// taken.
    ReadAgain,
    /// The writer has gone away.
    Closed,
}

impl JournalSource {
    /// A source reading `settings`' entries after `start`; following new
    /// ones (the daemon) or stopping at the end (`ingest`).
    pub fn new(
        settings: JournalSettings,
        start: Option<ReadPosition>,
        window: Window,
        follow: bool,
    ) -> Self {
        let restored = start
            .as_ref()
            .and_then(|position| Assembler::restore(&position.marker));
        let (resume, assembler) = match restored {
            Some((cursor, skip, assembler)) => (Some((cursor, skip)), assembler),
            None => (None, Assembler::default()),
        };
        JournalSource {
            source: settings.source_info(),
            settings,
            window,
            follow,
            offset: start.map_or(0, |position| position.byte_offset),
            assembler,
            resume,
            check_first: true,
            skip_next: 0,
            reader: None,
            restart_at: None,
            finished: false,
            last_entry: (0, Instant::now()),
            empty_seen: None,
        }
    }

    /// Lines stored incomplete so far (pieces missing).
    pub fn partial_lines(&self) -> u64 {
        self.assembler.partial_lines
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.settings.program);
        // Not --quiet: run by a user outside systemd-journal and adm,
        // journalctl reads only that user's entries, and its hint saying so
        // (logged as a warning) is the only sign.
        command.args(["--output=export", "--all", "--merge", "--no-pager"]);
        if self.follow {
            command.args(["--follow", "--no-tail"]);
        }
        match &self.resume {
            Some((cursor, _)) => {
                command.arg(format!("--cursor={cursor}"));
            }
            None => {
                if let Some(since) = &self.window.since {
                    command.arg(format!("--since={since}"));
                }
            }
        }
        if let Some(until) = &self.window.until {
            command.arg(format!("--until={until}"));
        }
        // Exim's main log is priority info (its reject log is notice and its
        // panic log alert; with Exim's default `syslog_duplication`, a
        // rejection is logged at both).
        command.args(["PRIORITY=6".to_owned(), self.settings.exim_match()]);
        command
    }

    fn start_reader(&mut self) -> std::io::Result<()> {
        let reader = Reader::spawn(self.command(), self.settings.describe())?;
        self.check_first = self.resume.is_some();
        self.reader = Some(reader);
        Ok(())
    }

    /// Takes one entry: checks it against the stored cursor when it is the
    /// first of a run, then sends the lines it completes.
    fn take(&mut self, entry: &JournalEntry, sink: &mut dyn ItemSink) -> Taken {
        let skip = std::mem::take(&mut self.skip_next);
        if std::mem::take(&mut self.check_first)
            && let Some((cursor, stored_skip)) = self.resume.clone()
        {
            if same_entry(&cursor, &entry.cursor) {
                // Taken before the position was stored; of the next entry,
                // `stored_skip` lines are stored too.
                self.skip_next = stored_skip;
                return Taken::Sent;
            }
            if !sink.send(self.gap(&cursor, entry)) {
                return Taken::Closed;
            }
        }
        if entry.message.is_none() && entry.syslog_raw.is_none() {
            return self.take_empty(entry, sink);
        }
        self.empty_seen = None;
        let before = self.assembler.clone();
        let lines = self.assembler.push(entry);
        let count = lines.len();
        let previous = self.resume.as_ref().map(|(cursor, _)| cursor.clone());
        for (index, bytes) in lines.into_iter().enumerate() {
            if index < skip {
                continue;
            }
            // Each line but the entry's last resumes inside this entry: at
            // the previous entry, with its lines up to this one stored.
            let position = match &previous {
                Some(cursor) if index + 1 < count => before.position(cursor, index + 1),
                _ => self.assembler.position(&entry.cursor, 0),
            };
            if !self.send_line(bytes, Arc::from(position), sink) {
                return Taken::Closed;
            }
        }
        self.resume = Some((entry.cursor.clone(), 0));
        Taken::Sent
    }

    /// An entry of Exim's identifier without `MESSAGE`. Read while journald
    /// was still writing it (systemd #40263), it is whole when read again,
    /// so the first time it is read again; the second time it really has
    /// none (anyone may log one with `logger` or `systemd-cat`), and it is
    /// skipped and recorded as a gap of one byte: offsets count one for it,
    /// so the gap is found again, not recorded twice, after a restart.
    fn take_empty(&mut self, entry: &JournalEntry, sink: &mut dyn ItemSink) -> Taken {
        if self.empty_seen.as_deref() != Some(entry.cursor.as_str()) {
            self.empty_seen = Some(entry.cursor.clone());
            return Taken::ReadAgain;
        }
        self.empty_seen = None;
        let reason = format!(
            "a journal entry of {} without MESSAGE, logged at {} UTC, was skipped (cursor {})",
            self.settings.exim_match(),
            format_us(entry.time_us()),
            entry.cursor
        );
        tracing::warn!(source = %self.source.path, cursor = %entry.cursor, "{reason}");
        let start = self.offset;
        self.offset += 1;
        self.resume = Some((entry.cursor.clone(), 0));
        let gap = Item::Gap(GapItem {
            source: Some(Arc::clone(&self.source)),
            path: self.source.path.clone(),
            start,
            end: Some(self.offset),
            reason,
        });
        if sink.send(gap) {
            Taken::Sent
        } else {
            Taken::Closed
        }
    }

    fn send_line(
        &mut self,
        mut bytes: Vec<u8>,
        position: Arc<[u8]>,
        sink: &mut dyn ItemSink,
    ) -> bool {
        let length = bytes.len() as u64;
        if bytes.len() > self.settings.max_line_bytes {
            sink.truncated(&self.source.path, self.offset, length);
            bytes.truncate(self.settings.max_line_bytes);
        }
        let start = self.offset;
        self.offset += length + 1;
        sink.send(Item::Line(LineItem {
            source: Arc::clone(&self.source),
            start,
            end: self.offset,
            length,
            bytes,
            resume: ResumeMarker::Cursor(position),
        }))
    }

    /// The entries between the stored cursor and `first` are gone.
    fn gap(&self, cursor: &str, first: &JournalEntry) -> Item {
        let lost_from = cursor_time_us(cursor).map_or_else(|| "?".to_owned(), format_us);
        let reason = format!(
            "the journal no longer holds the entries after the stored cursor (vacuumed or \
             rotated away): whatever Exim logged between {lost_from} and {} UTC is lost",
            format_us(first.time_us())
        );
        tracing::warn!(source = %self.source.path, "{}: {reason}", self.source.path);
        Item::Gap(GapItem {
            source: Some(Arc::clone(&self.source)),
            path: self.source.path.clone(),
            start: self.offset,
            end: Some(self.offset),
            reason,
        })
    }
}

impl LineSource for JournalSource {
    fn describe(&self) -> String {
        self.source.path.clone()
    }

    /// Whether journalctl has ended and everything it printed was sent
    /// (only without following).
    fn finished(&self) -> bool {
        self.finished
    }

    /// Takes the entries journalctl has ready, up to a poll's worth.
    ///
    /// Long because it is the source's state machine in one place: start or
    /// restart journalctl, wait for the first entry, take entries, and say
    /// how the run ended (finished, restarted, failed with journalctl's own
    /// complaint).
    fn poll(&mut self, sink: &mut dyn ItemSink) -> std::io::Result<PollOutcome> {
        let mut outcome = PollOutcome::default();
        if self.finished {
            return Ok(outcome);
        }
        if self.reader.is_none() {
            if self.restart_at.is_some_and(|at| Instant::now() < at) {
                return Ok(outcome);
            }
            self.restart_at = None;
            self.start_reader()?;
        }
        let mut ended = None;
        for taken in 0..ENTRIES_PER_POLL {
            let Some(reader) = &self.reader else { break };
            let wait = if taken == 0 {
                POLL_WAIT
            } else {
                Duration::ZERO
            };
            let entry = match reader.entries.recv_timeout(wait) {
                Ok(Ok(entry)) => entry,
                Ok(Err(err)) => {
                    ended = Some(Err(err));
                    break;
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    ended = Some(Ok(()));
                    break;
                }
            };
            self.last_entry = (entry.time_us(), Instant::now());
            match self.take(&entry, sink) {
                Taken::Sent => {}
                Taken::Closed => {
                    outcome.closed = true;
                    return Ok(outcome);
                }
                Taken::ReadAgain => {
                    // The reader is dropped (journalctl killed) and run
                    // again from the last entry taken at the next poll.
                    self.reader = None;
                    self.restart_at = Some(Instant::now() + REREAD_AFTER);
                    outcome.again = false;
                    if !sink.flush() {
                        outcome.closed = true;
                    }
                    return Ok(outcome);
                }
            }
            outcome.lines += 1;
            if sink.stopping() {
                break;
            }
        }
        // Lines unfinished for too long are stored as they stand. The time
        // is the journal's: the last entry's, plus how long ago it was read
        // (a backlog read at full speed must not age its pieces by the
        // wall clock).
        let waited = u64::try_from(self.last_entry.1.elapsed().as_micros()).unwrap_or(u64::MAX);
        let expired = self
            .assembler
            .expire(self.last_entry.0.saturating_add(waited));
        if !expired.is_empty() {
            let (cursor, _) = self.resume.clone().unwrap_or_default();
            let position: Arc<[u8]> = Arc::from(self.assembler.position(&cursor, 0));
            for line in expired {
                if !self.send_line(line, Arc::clone(&position), sink) {
                    outcome.closed = true;
                    return Ok(outcome);
                }
            }
        }
        outcome.again = outcome.lines > 0;
        if !sink.flush() {
            outcome.closed = true;
            return Ok(outcome);
        }
        match ended {
            None => {}
            Some(result) => {
                // A following journalctl does not end by itself: killed
                // first, or the wait would hang (and the stop with it).
                let kill = self.follow || result.is_err();
                let mut complaint = String::new();
                let status = self.reader.take().map(|mut reader| {
                    if kill {
                        let _ = reader.child.kill();
                    }
                    let status = reader.child.wait();
                    // What it said last, once its stderr is read to the end
                    // (bounded: a process it left behind may hold the pipe).
                    if let Some(thread) = &reader.stderr_reader {
                        let deadline = Instant::now() + Duration::from_millis(200);
                        while !thread.is_finished() && Instant::now() < deadline {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                    if let Ok(last) = reader.last_complaint.lock() {
                        complaint.clone_from(&last);
                    }
                    status
                });
                if !self.follow && result.is_ok() {
                    self.finished = true;
                    if let Some(Ok(status)) = status
                        && !status.success()
                    {
                        return Err(std::io::Error::other(format!(
                            "journalctl failed: {status}"
                        )));
                    }
                    return Ok(outcome);
                }
                self.restart_at = Some(Instant::now() + RESTART_AFTER);
                result?;
                let why = match status {
                    Some(Ok(status)) if !status.success() && !complaint.is_empty() => {
                        format!(" ({status}: {complaint})")
                    }
                    Some(Ok(status)) if !status.success() => format!(" ({status})"),
                    _ => String::new(),
                };
                return Err(std::io::Error::other(format!(
                    "journalctl ended{why}; running it again from the last entry read"
                )));
            }
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests;

/// µs since the epoch as `YYYY-MM-DD HH:MM:SS` (UTC).
fn format_us(time_us: u64) -> String {
    crate::parse::format_seconds(i64::try_from(time_us / 1_000_000).unwrap_or(i64::MAX))
}
