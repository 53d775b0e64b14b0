//! journalctl's export format (`--output=export`), read one entry at a
//! time (pure but for the reader it is given).
//!
//! An entry is a run of fields ended by an empty line. A field is
//! `NAME=value\n` when the value is printable text, or `NAME\n`, a 64-bit
//! little-endian length, the bytes and `\n` otherwise (systemd's
//! docs/JOURNAL_EXPORT_FORMATS.md). Only the fields a log line needs are
//! kept, each cut at a bound, so a hostile entry cannot grow memory.

use std::io::{self, BufRead, Read};

/// The fields of an entry that exim-pilot reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalEntry {
    /// `__CURSOR`: where this entry is, for resuming after it.
    pub cursor: String,
    /// `__REALTIME_TIMESTAMP`: when journald stored it (µs since the epoch).
    pub realtime_us: u64,
    /// `_SOURCE_REALTIME_TIMESTAMP`: when it was sent, if known.
    pub source_realtime_us: Option<u64>,
    /// `_BOOT_ID`.
    pub boot_id: Vec<u8>,
    /// `SYSLOG_PID`, or else `_PID`: the process that sent it.
    pub pid: Vec<u8>,
    /// `MESSAGE`.
    pub message: Option<Vec<u8>>,
    /// `SYSLOG_RAW`: the datagram as sent, when journald changed `MESSAGE`
    /// (it strips whitespace at both ends and cuts at NUL).
    pub syslog_raw: Option<Vec<u8>>,
}

impl JournalEntry {
    /// When Exim logged it: the sender's time when known.
    pub fn time_us(&self) -> u64 {
        self.source_realtime_us.unwrap_or(self.realtime_us)
    }
}

/// A field longer than this is cut (journald's own default line limit is
/// 48 KiB; Exim's syslog pieces are under 1 KiB).
pub const MAX_FIELD_BYTES: usize = 256 << 10;

/// Reads the next entry; `None` at the end of the stream. Fails on a
/// stream that is not in the export format.
pub fn read_entry<R: BufRead>(reader: &mut R) -> io::Result<Option<JournalEntry>> {
    let mut entry = JournalEntry::default();
    let mut fields = 0usize;
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = reader
            .by_ref()
            .take(MAX_FIELD_BYTES as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if read == 0 {
            return if fields == 0 {
                Ok(None)
            } else {
                Err(invalid("the journal export stream ended inside an entry"))
            };
        }
        if line.last() != Some(&b'\n') {
            // A text field over the bound: keep its start, skip the rest.
            skip_line(reader)?;
        } else {
            line.pop();
        }
        if line.is_empty() {
            if fields == 0 {
                continue;
            }
            if entry.cursor.is_empty() {
                return Err(invalid("a journal entry without __CURSOR"));
            }
            return Ok(Some(entry));
        }
        fields += 1;
        match line.iter().position(|&byte| byte == b'=') {
            Some(equals) => {
                let (name, value) = (&line[..equals], &line[equals + 1..]);
                keep(&mut entry, name, value.to_vec());
            }
            None => {
                let name = std::mem::take(&mut line);
                let value = read_binary(reader)?;
                keep(&mut entry, &name, value);
            }
        }
    }
}

/// A binary field's value: its length, its bytes (cut at the bound) and
/// the newline after them.
fn read_binary<R: BufRead>(reader: &mut R) -> io::Result<Vec<u8>> {
    let mut length = [0u8; 8];
    reader.read_exact(&mut length)?;
    let length = u64::from_le_bytes(length);
    let kept = length.min(MAX_FIELD_BYTES as u64);
    let mut value = Vec::new();
    reader.by_ref().take(kept).read_to_end(&mut value)?;
    if (value.len() as u64) < kept {
        return Err(invalid("the journal export stream ended inside a field"));
    }
    io::copy(&mut reader.by_ref().take(length - kept), &mut io::sink())?;
    let mut newline = [0u8; 1];
    reader.read_exact(&mut newline)?;
    if newline != *b"\n" {
        return Err(invalid("a binary journal field not followed by a newline"));
    }
    Ok(value)
}

fn skip_line<R: BufRead>(reader: &mut R) -> io::Result<()> {
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            return Ok(());
        }
        match memchr::memchr(b'\n', buffer) {
            Some(at) => {
                reader.consume(at + 1);
                return Ok(());
            }
            None => {
                let all = buffer.len();
                reader.consume(all);
            }
        }
    }
}

fn keep(entry: &mut JournalEntry, name: &[u8], value: Vec<u8>) {
    let number = |value: &[u8]| std::str::from_utf8(value).ok()?.parse::<u64>().ok();
    match name {
        b"__CURSOR" => entry.cursor = String::from_utf8_lossy(&value).into_owned(),
        b"__REALTIME_TIMESTAMP" => entry.realtime_us = number(&value).unwrap_or(0),
        b"_SOURCE_REALTIME_TIMESTAMP" => entry.source_realtime_us = number(&value),
        b"_BOOT_ID" => entry.boot_id = value,
        b"SYSLOG_PID" => entry.pid = value,
        b"_PID" if entry.pid.is_empty() => entry.pid = value,
        b"MESSAGE" => entry.message = Some(value),
        b"SYSLOG_RAW" => entry.syslog_raw = Some(value),
        _ => {}
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary(name: &str, value: &[u8]) -> Vec<u8> {
        let mut field = format!("{name}\n").into_bytes();
        field.extend_from_slice(&(value.len() as u64).to_le_bytes());
        field.extend_from_slice(value);
        field.push(b'\n');
        field
    }

    #[test]
    fn reads_text_and_binary_fields_entry_by_entry() {
        let mut stream =
            b"__CURSOR=s=1;i=2;b=b1;m=3;t=4;x=5\n__REALTIME_TIMESTAMP=1700000000000001\n\
            _BOOT_ID=b1\n_PID=42\nSYSLOG_PID=41\nSYSLOG_IDENTIFIER=exim\nMESSAGE=first line\n\n"
                .to_vec();
        stream.extend_from_slice(
            b"__CURSOR=c2\n__REALTIME_TIMESTAMP=7\n_SOURCE_REALTIME_TIMESTAMP=6\n",
        );
        stream.extend(binary("MESSAGE", b"two\nlines \xff"));
        stream.extend(binary("SYSLOG_RAW", b"<22>exim[41]: two\nlines \xff  "));
        stream.extend_from_slice(b"\n");
        let mut reader = io::Cursor::new(stream);
        let first = read_entry(&mut reader).unwrap().unwrap();
        assert_eq!(first.cursor, "s=1;i=2;b=b1;m=3;t=4;x=5");
        assert_eq!(first.realtime_us, 1_700_000_000_000_001);
        assert_eq!(first.pid, b"41", "SYSLOG_PID wins over _PID");
        assert_eq!(first.message.as_deref(), Some(&b"first line"[..]));
        let second = read_entry(&mut reader).unwrap().unwrap();
        assert_eq!(second.time_us(), 6);
        assert_eq!(second.message.as_deref(), Some(&b"two\nlines \xff"[..]));
        assert_eq!(
            second.syslog_raw.as_deref(),
            Some(&b"<22>exim[41]: two\nlines \xff  "[..])
        );
        assert_eq!(read_entry(&mut reader).unwrap(), None);
    }

    #[test]
    fn a_huge_field_is_cut_and_the_stream_stays_in_step() {
        let huge = vec![b'y'; MAX_FIELD_BYTES + 10];
        let mut stream = b"__CURSOR=c1\n".to_vec();
        stream.extend(binary("MESSAGE", &huge));
        stream.extend_from_slice(b"\n__CURSOR=c2\nMESSAGE=");
        stream.extend_from_slice(&huge);
        stream.extend_from_slice(b"\n\n__CURSOR=c3\nMESSAGE=small\n\n");
        let mut reader = io::Cursor::new(stream);
        let first = read_entry(&mut reader).unwrap().unwrap();
        assert_eq!(first.message.unwrap().len(), MAX_FIELD_BYTES);
        let second = read_entry(&mut reader).unwrap().unwrap();
        assert_eq!(second.cursor, "c2");
        assert!(second.message.unwrap().len() <= MAX_FIELD_BYTES);
        let third = read_entry(&mut reader).unwrap().unwrap();
        assert_eq!(third.message.as_deref(), Some(&b"small"[..]));
    }

    #[test]
    fn a_cut_stream_is_an_error_not_an_entry() {
        let mut reader = io::Cursor::new(b"__CURSOR=c1\nMESSAGE=x\n".to_vec());
        assert!(read_entry(&mut reader).is_err());
        let mut reader = io::Cursor::new(b"MESSAGE=x\n\n".to_vec());
        assert!(read_entry(&mut reader).is_err());
    }
}
