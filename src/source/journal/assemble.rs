//! Journal entries back into the lines Exim writes to a file (pure).
//!
//! With `log_file_path = syslog` Exim sends each log line to syslog, cut
//! into pieces of at most 870 bytes and at every embedded newline, each
//! piece but a lone one prefixed `[n/m] ` or `[n\m] ` (`\`: the piece ended
//! at a newline; Exim's `log.c`, `write_syslog`). Pieces of one line are
//! consecutive sends of one process, but other processes' lines can come
//! between them, so unfinished lines are kept per (boot, process) until
//! their last piece. Exim keeps its own timestamp at the start of the text
//! unless `syslog_timestamp = false`; then the entry's time is put there.
//!
//! Unfinished lines are part of the read position ([`Assembler::position`]):
//! a position commits with the lines before it, so after a crash a line
//! whose first pieces were read before the commit is still whole.

use super::export::JournalEntry;

/// Unfinished lines kept at most; the oldest is stored as it stands when
/// another would exceed this (a process that died between pieces).
const MAX_PENDING: usize = 64;

/// Bytes of an unfinished line kept at most (Exim's lines are far shorter).
const MAX_PENDING_BYTES: usize = 64 << 10;

/// An unfinished line stays at most this long (journal time, µs) before it
/// is stored as it stands.
const PENDING_FOR_US: u64 = 30_000_000;

/// A line of Exim's whose pieces are not all read yet.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    boot: Vec<u8>,
    pid: Vec<u8>,
    /// The piece number expected next.
    next: u32,
    /// How many pieces the line has.
    total: u32,
    /// When its first piece was logged (µs since the epoch).
    started_us: u64,
    /// The text so far, with the first piece's timestamp.
    text: Vec<u8>,
    /// The last piece read ended at a newline (`\`).
    newline: bool,
}

/// Joins pieces into lines; see the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assembler {
    pending: Vec<Pending>,
    /// Lines stored incomplete: pieces missing (a process died, journald
    /// dropped some), or a piece whose line began before what was read.
    pub partial_lines: u64,
}

/// A piece's place in its line, from its `[n/m] ` prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Piece {
    number: u32,
    total: u32,
    /// It ended at a newline (`\`).
    newline: bool,
}

impl Assembler {
    /// Takes one entry; returns the lines it completes, in the form Exim
    /// writes to a file (several when the line held newlines), oldest
    /// first.
    pub fn push(&mut self, entry: &JournalEntry) -> Vec<Vec<u8>> {
        let mut lines = self.expire(entry.time_us());
        let text = payload(entry);
        let Some((piece, rest)) = split_prefix(text) else {
            lines.extend(file_lines(with_time(text, entry.time_us())));
            return lines;
        };
        let key = |p: &Pending| p.boot == entry.boot_id && p.pid == entry.pid;
        if piece.number == 1 {
            if let Some(at) = self.pending.iter().position(key) {
                // Its previous line never finished.
                lines.extend(self.finish_partial(at));
            }
            if self.pending.len() >= MAX_PENDING {
                lines.extend(self.finish_partial(0));
            }
            self.pending.push(Pending {
                boot: entry.boot_id.clone(),
                pid: entry.pid.clone(),
                next: 2,
                total: piece.total,
                started_us: entry.time_us(),
                text: with_time(rest, entry.time_us()),
                newline: piece.newline,
            });
        } else {
            match self.pending.iter().position(key) {
                Some(at) if self.pending[at].next == piece.number => {
                    let pending = &mut self.pending[at];
                    if pending.newline {
                        pending.text.push(b'\n');
                    }
                    let room = MAX_PENDING_BYTES.saturating_sub(pending.text.len());
                    pending
                        .text
                        .extend_from_slice(&rest[..rest.len().min(room)]);
                    pending.next += 1;
                    pending.newline = piece.newline;
                }
                found => {
                    // A piece out of order, or whose line began before what
                    // was read: kept as it stands.
                    if let Some(at) = found {
                        lines.extend(self.finish_partial(at));
                    }
                    self.partial_lines += 1;
                    lines.extend(file_lines(with_time(text, entry.time_us())));
                    return lines;
                }
            }
        }
        if let Some(at) = self.pending.iter().position(|p| key(p) && p.next > p.total) {
            let done = self.pending.remove(at);
            lines.extend(file_lines(done.text));
        }
        lines
    }

    /// Lines unfinished for too long by `now_us`, stored as they stand.
    pub fn expire(&mut self, now_us: u64) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        while let Some(at) = self
            .pending
            .iter()
            .position(|p| now_us.saturating_sub(p.started_us) > PENDING_FOR_US)
        {
            lines.extend(self.finish_partial(at));
        }
        lines
    }

    fn finish_partial(&mut self, at: usize) -> Vec<Vec<u8>> {
        self.partial_lines += 1;
        file_lines(self.pending.remove(at).text)
    }

    /// The read position after `cursor`'s entry, `skip` of the lines made
    /// from the entry after it already stored: the cursor, then the lines
    /// still unfinished. Stored with the lines it covers.
    pub fn position(&self, cursor: &str, skip: usize) -> Vec<u8> {
        let mut position = cursor.as_bytes().to_vec();
        if skip > 0 || !self.pending.is_empty() {
            position.extend_from_slice(format!("\nskip {skip}").as_bytes());
        }
        for p in &self.pending {
            position.extend_from_slice(
                format!(
                    "\n{} {} {} {} {} {} {}",
                    hex(&p.boot),
                    hex(&p.pid),
                    p.next,
                    p.total,
                    p.started_us,
                    u8::from(p.newline),
                    hex(&p.text)
                )
                .as_bytes(),
            );
        }
        position
    }

    /// The cursor, the lines to skip and the unfinished lines of a stored
    /// [`position`](Self::position); `None` if it is not one.
    pub fn restore(position: &[u8]) -> Option<(String, usize, Assembler)> {
        let text = std::str::from_utf8(position).ok()?;
        let mut lines = text.split('\n');
        let cursor = lines.next().filter(|c| !c.is_empty())?.to_owned();
        let mut skip = 0;
        let mut assembler = Assembler::default();
        for line in lines {
            if let Some(count) = line.strip_prefix("skip ") {
                skip = count.parse().ok()?;
                continue;
            }
            let mut parts = line.split(' ');
            let mut next = || parts.next();
            assembler.pending.push(Pending {
                boot: unhex(next()?)?,
                pid: unhex(next()?)?,
                next: next()?.parse().ok()?,
                total: next()?.parse().ok()?,
                started_us: next()?.parse().ok()?,
                newline: next()? == "1",
                text: unhex(next()?)?,
            });
        }
        Some((cursor, skip, assembler))
    }
}

/// Whether two cursors name the same entry: the boot, monotonic time,
/// realtime and hash parts agree (the sequence number parts may differ
/// between journal files; systemd's `sd_journal_test_cursor` compares
/// these).
pub fn same_entry(a: &str, b: &str) -> bool {
    let (a, b) = (identity(a), identity(b));
    a.iter().all(Option::is_some) && a == b
}

/// A cursor's boot, monotonic time, realtime and hash parts.
fn identity(cursor: &str) -> [Option<&str>; 4] {
    let mut kept = [None; 4];
    for part in cursor.split(';') {
        let slot = match part.split_once('=') {
            Some(("b", value)) => (0, value),
            Some(("m", value)) => (1, value),
            Some(("t", value)) => (2, value),
            Some(("x", value)) => (3, value),
            _ => continue,
        };
        kept[slot.0] = Some(slot.1);
    }
    kept
}

/// The realtime of a cursor's entry (its `t=` part, µs since the epoch,
/// in hexadecimal).
pub fn cursor_time_us(cursor: &str) -> Option<u64> {
    cursor
        .split(';')
        .find_map(|part| part.strip_prefix("t="))
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
}

/// The text Exim sent: `SYSLOG_RAW` after its `ident[pid]: ` header when
/// journald kept it (it changed `MESSAGE`), else `MESSAGE`.
fn payload(entry: &JournalEntry) -> &[u8] {
    if let Some(raw) = &entry.syslog_raw {
        let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
        if let Some(at) = memchr::memmem::find(raw, b"]: ") {
            return &raw[at + 3..];
        }
    }
    entry.message.as_deref().unwrap_or_default()
}

/// `[n/m] ` or `[n\m] ` at the start of `text`, and the rest.
fn split_prefix(text: &[u8]) -> Option<(Piece, &[u8])> {
    let inner_end = text.iter().position(|&b| b == b']')?;
    let inner = text.strip_prefix(b"[")?.get(..inner_end - 1)?;
    let delimiter = inner.iter().position(|&b| b == b'/' || b == b'\\')?;
    let number = std::str::from_utf8(&inner[..delimiter])
        .ok()?
        .parse()
        .ok()?;
    let total: u32 = std::str::from_utf8(&inner[delimiter + 1..])
        .ok()?
        .parse()
        .ok()?;
    let rest = text[inner_end + 1..].strip_prefix(b" ")?;
    if number == 0 || number > total {
        return None;
    }
    Some((
        Piece {
            number,
            total,
            newline: inner[delimiter] == b'\\',
        },
        rest,
    ))
}

/// `text`, starting with Exim's timestamp: its own, or the entry's time
/// when Exim left it out (`syslog_timestamp = false`).
fn with_time(text: &[u8], time_us: u64) -> Vec<u8> {
    if starts_with_timestamp(text) {
        return text.to_vec();
    }
    let mut line = local_timestamp(time_us).into_bytes();
    line.push(b' ');
    line.extend_from_slice(text);
    line
}

/// `YYYY-MM-DD HH:MM:SS` at the start.
fn starts_with_timestamp(text: &[u8]) -> bool {
    const SHAPE: &[u8] = b"0000-00-00 00:00:00";
    text.len() >= SHAPE.len()
        && text.iter().zip(SHAPE).all(|(&byte, &shape)| match shape {
            b'0' => byte.is_ascii_digit(),
            _ => byte == shape,
        })
}

/// The lines of `text` as Exim writes them to a file: one per newline. A
/// newline at the end ends the last line; it does not start an empty one.
fn file_lines(mut text: Vec<u8>) -> Vec<Vec<u8>> {
    if !text.contains(&b'\n') {
        return vec![text];
    }
    if text.last() == Some(&b'\n') {
        text.pop();
    }
    text.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect()
}

/// `time_us` in the host's local time, as Exim writes it.
fn local_timestamp(time_us: u64) -> String {
    let seconds = i64::try_from(time_us / 1_000_000).unwrap_or(0);
    let offset = crate::localtime::utc_offset_seconds(seconds);
    crate::parse::format_seconds(seconds.saturating_add(offset))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests;
