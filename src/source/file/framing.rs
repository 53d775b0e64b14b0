//! Byte-level line framing with bounded memory.
//!
//! Only newline-terminated lines are emitted, each with the byte offsets it
//! spans. A line longer than `max_line_bytes` keeps its first
//! `max_line_bytes` bytes and its real length; the rest is skipped without
//! being buffered. An unterminated last line is held back (Exim may be in
//! the middle of writing it) and is emitted once its newline arrives, so the
//! reader can be polled again after end of file. Nothing is decoded as UTF-8.

use std::io::{self, BufRead};

pub use crate::pipeline::source::{TAIL_MARKER_BYTES, TailMarker};

/// Bytes scanned in one go inside a single line (a sparse hole, a runaway
/// writer) before the reader looks at a stop request again: SIGTERM must be
/// answered within seconds whatever the file holds.
pub const SCAN_BYTES_PER_STEP: u64 = 16 * 1024 * 1024;

/// One framed line, borrowed from the reader's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    /// Offset of the line's first byte.
    pub start: u64,
    /// Offset just past its newline: where the next line starts.
    pub end: u64,
    /// The line's real length without the newline.
    pub length: u64,
    /// The stored bytes, without the newline; at most `max_line_bytes`.
    pub bytes: &'a [u8],
    /// Up to [`TAIL_MARKER_BYTES`] real bytes just before `end` (newline
    /// included), even when the line itself was truncated: stored with the
    /// read position to recognise the file on resume.
    pub tail_marker: &'a [u8],
}

impl Line<'_> {
    /// Whether `bytes` is shorter than the real line.
    pub fn is_truncated(&self) -> bool {
        (self.bytes.len() as u64) < self.length
    }
}

/// Frames lines out of any `BufRead`, counting offsets from `start_offset`.
#[derive(Debug)]
pub struct LineReader<R> {
    inner: R,
    max_line_bytes: usize,
    /// The kept bytes of the line being assembled.
    line: Vec<u8>,
    /// Offset of the line being assembled.
    line_start: u64,
    /// Bytes of the line being assembled seen so far (kept or skipped).
    line_seen: u64,
    /// The last bytes before `line_start` (newline included), kept even
    /// when the line itself was truncated.
    marker: TailMarker,
    /// The last bytes of the line being assembled.
    pending_marker: TailMarker,
    /// Bytes one call of [`LineReader::next_line`] scans at most before it
    /// returns, so a caller can look at a stop request even inside a line
    /// of gigabytes (a sparse hole has no newline).
    scan_limit: u64,
    /// Whether the last `next_line` stopped at the scan limit rather than
    /// at the end of the input.
    paused: bool,
}

impl<R: BufRead> LineReader<R> {
    /// A reader whose first byte is at `start_offset` in its file.
    pub fn new(inner: R, start_offset: u64, max_line_bytes: usize) -> Self {
        LineReader {
            inner,
            max_line_bytes,
            line: Vec::with_capacity(max_line_bytes.min(64 * 1024)),
            line_start: start_offset,
            line_seen: 0,
            marker: TailMarker::default(),
            pending_marker: TailMarker::default(),
            scan_limit: u64::MAX,
            paused: false,
        }
    }

    /// Makes [`LineReader::next_line`] return `None` with
    /// [`LineReader::paused`] set after scanning `bytes` without finishing
    /// a line; the next call continues the same line.
    pub fn with_scan_limit(mut self, bytes: u64) -> Self {
        self.scan_limit = bytes.max(1);
        self
    }

    /// Whether the last `next_line` returned `None` at the scan limit (more
    /// input may follow at once) rather than at the end of the input.
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// Starts with `marker` as the bytes before `start_offset` (what was
    /// stored with the read position), so a reader resumed mid-file can
    /// still tell if the file was rewritten before it reads a line.
    pub fn with_tail_marker(mut self, marker: &[u8]) -> Self {
        self.marker = TailMarker::default();
        self.marker.push(marker);
        self
    }

    /// The next complete line, or `None` at end of input. Bytes of an
    /// unterminated line stay pending; calling again after the input grew
    /// continues where it stopped.
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        if self.line_seen == 0 {
            self.line.clear();
        }
        self.paused = false;
        let mut scanned = 0u64;
        loop {
            if scanned >= self.scan_limit {
                self.paused = true;
                return Ok(None);
            }
            let available = match self.inner.fill_buf() {
                Ok(available) => available,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            };
            if available.is_empty() {
                return Ok(None);
            }
            let newline = memchr::memchr(b'\n', available);
            let take = newline.unwrap_or(available.len());
            let room = self.max_line_bytes.saturating_sub(self.line.len());
            self.line.extend_from_slice(&available[..take.min(room)]);
            self.line_seen += take as u64;
            scanned += take as u64;
            self.pending_marker.push(&available[..take]);
            match newline {
                Some(index) => {
                    self.inner.consume(index + 1);
                    self.pending_marker.push(b"\n");
                    self.marker = std::mem::take(&mut self.pending_marker);
                    let start = self.line_start;
                    let length = self.line_seen;
                    let end = start + length + 1;
                    self.line_start = end;
                    self.line_seen = 0;
                    return Ok(Some(Line {
                        start,
                        end,
                        length,
                        bytes: &self.line,
                        tail_marker: self.marker.as_slice(),
                    }));
                }
                None => self.inner.consume(take),
            }
        }
    }

    /// The unterminated last line, for readers of finished files (a log
    /// that crashed mid-line, a sample without a final newline). A tailer
    /// never calls this: the newline may still come.
    pub fn finish(&mut self) -> Option<Line<'_>> {
        if self.line_seen == 0 {
            return None;
        }
        let start = self.line_start;
        let length = self.line_seen;
        self.line_start = start + length;
        self.line_seen = 0;
        self.marker = std::mem::take(&mut self.pending_marker);
        Some(Line {
            start,
            end: start + length,
            length,
            bytes: &self.line,
            tail_marker: self.marker.as_slice(),
        })
    }

    /// Offset just past the last complete line: where reading would resume.
    pub fn committed_offset(&self) -> u64 {
        self.line_start
    }

    /// Up to [`TAIL_MARKER_BYTES`] bytes just before
    /// [`Self::committed_offset`], newline included; empty before the first
    /// line.
    pub fn tail_marker(&self) -> &[u8] {
        self.marker.as_slice()
    }

    /// Bytes read past [`Self::committed_offset`] that wait for a newline.
    pub fn pending_bytes(&self) -> u64 {
        self.line_seen
    }

    /// The underlying reader.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Read};

    /// (start, end, stored bytes, truncated) of each framed line.
    type Framed = Vec<(u64, u64, Vec<u8>, bool)>;

    fn frame(input: &[u8], max: usize) -> (Framed, u64) {
        let mut reader = LineReader::new(BufReader::with_capacity(7, input), 0, max);
        let mut lines = Vec::new();
        while let Some(line) = reader.next_line().unwrap() {
            lines.push((
                line.start,
                line.end,
                line.bytes.to_vec(),
                line.is_truncated(),
            ));
        }
        (lines, reader.pending_bytes())
    }

    #[test]
    fn frames_lines_with_offsets_across_small_buffers() {
        let (lines, pending) = frame(b"alpha\n\nbeta gamma delta\nz", 1024);
        assert_eq!(
            lines,
            vec![
                (0, 6, b"alpha".to_vec(), false),
                (6, 7, b"".to_vec(), false),
                (7, 24, b"beta gamma delta".to_vec(), false),
            ]
        );
        assert_eq!(pending, 1, "the unterminated 'z' waits");
    }

    #[test]
    fn long_lines_are_truncated_but_keep_their_length_and_offsets() {
        let mut input = vec![b'x'; 5000];
        input.push(b'\n');
        input.extend_from_slice(b"next\n");
        let mut reader = LineReader::new(BufReader::with_capacity(64, &input[..]), 100, 300);
        let line = reader.next_line().unwrap().unwrap();
        assert_eq!((line.start, line.end, line.length), (100, 5101, 5000));
        assert_eq!(line.bytes.len(), 300);
        assert!(line.is_truncated());
        let line = reader.next_line().unwrap().unwrap();
        assert_eq!((line.start, line.bytes), (5101, &b"next"[..]));
        assert!(!line.is_truncated());
    }

    #[test]
    fn a_scan_limit_pauses_inside_a_huge_line_and_continues_it() {
        let mut input = vec![0u8; 10_000];
        input.extend_from_slice(b"\nnext\n");
        let mut reader =
            LineReader::new(BufReader::with_capacity(64, &input[..]), 0, 100).with_scan_limit(1000);
        let mut pauses = 0;
        let line = loop {
            match reader.next_line().unwrap() {
                Some(line) => break (line.start, line.end, line.length),
                None => {
                    assert!(reader.paused(), "not at the end yet");
                    pauses += 1;
                }
            }
        };
        assert_eq!(line, (0, 10_001, 10_000));
        assert!(pauses >= 9, "paused {pauses} times");
        assert_eq!(reader.next_line().unwrap().unwrap().bytes, b"next");
        assert!(reader.next_line().unwrap().is_none());
        assert!(!reader.paused(), "the end of the input is no pause");
    }

    #[test]
    fn tail_marker_holds_the_bytes_before_the_committed_offset() {
        let mut input = b"short\n".to_vec();
        let mut reader = LineReader::new(BufReader::with_capacity(3, &input[..]), 0, 8);
        assert_eq!(reader.tail_marker(), b"");
        reader.next_line().unwrap();
        assert_eq!(reader.tail_marker(), b"short\n");

        input = vec![b'a'; 40];
        input.extend_from_slice(b"0123456789abcdef\nxy");
        let mut reader = LineReader::new(BufReader::with_capacity(5, &input[..]), 0, 8);
        let line = reader.next_line().unwrap().unwrap();
        assert!(line.is_truncated());
        // The marker is the real end of the line, not of its stored part.
        assert_eq!(reader.tail_marker(), b"123456789abcdef\n");
        assert!(reader.next_line().unwrap().is_none());
        assert_eq!(
            reader.tail_marker(),
            b"123456789abcdef\n",
            "a pending line does not move it"
        );
    }

    #[test]
    fn a_line_exactly_at_the_limit_is_not_truncated() {
        let (lines, _) = frame(b"abcd\n", 4);
        assert_eq!(lines, vec![(0, 5, b"abcd".to_vec(), false)]);
    }

    #[test]
    fn bytes_are_kept_exactly() {
        let input = b"nul\0byte \xff\xfe invalid \t tab\r\n";
        let (lines, _) = frame(input, 1024);
        assert_eq!(lines[0].2, input[..input.len() - 1].to_vec());
    }

    /// A reader whose data grows between polls, like a log being written.
    struct Growing {
        data: std::rc::Rc<std::cell::RefCell<Vec<u8>>>,
        pos: usize,
    }

    impl Read for Growing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let data = self.data.borrow();
            let n = buf.len().min(data.len() - self.pos);
            buf[..n].copy_from_slice(&data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    #[test]
    fn a_partial_line_completes_when_the_input_grows() {
        let data = std::rc::Rc::new(std::cell::RefCell::new(b"one\ntw".to_vec()));
        let growing = Growing {
            data: data.clone(),
            pos: 0,
        };
        let mut reader = LineReader::new(BufReader::new(growing), 0, 1024);
        assert_eq!(reader.next_line().unwrap().unwrap().bytes, b"one");
        assert!(reader.next_line().unwrap().is_none());
        assert_eq!((reader.committed_offset(), reader.pending_bytes()), (4, 2));
        data.borrow_mut().extend_from_slice(b"o\nthree\n");
        let line = reader.next_line().unwrap().unwrap();
        assert_eq!((line.start, line.end, line.bytes), (4, 8, &b"two"[..]));
        assert_eq!(reader.next_line().unwrap().unwrap().bytes, b"three");
        assert_eq!(reader.committed_offset(), 14);
    }

    #[test]
    fn finish_returns_the_unterminated_last_line() {
        let mut reader = LineReader::new(BufReader::new(&b"one\ntwo"[..]), 0, 1024);
        reader.next_line().unwrap();
        assert!(reader.next_line().unwrap().is_none());
        let last = reader.finish().unwrap();
        assert_eq!(
            (last.start, last.end, last.length, last.bytes),
            (4, 7, 3, &b"two"[..])
        );
        assert!(reader.finish().is_none());
    }

    #[test]
    fn empty_input_has_no_lines() {
        let (lines, pending) = frame(b"", 10);
        assert!(lines.is_empty());
        assert_eq!(pending, 0);
    }
}
