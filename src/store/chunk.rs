//! Raw lines stored in chunks: consecutive lines of one source, framed and
//! compressed into one `log_chunks` row.
//!
//! A row per line cost several B-tree writes per line and stored the text
//! uncompressed; a chunk of a few hundred lines is one row, and zstd makes
//! its text about a tenth of its size. Each framed line keeps what a query
//! needs without parsing it again: its byte span in the file, its real
//! length (the stored bytes may be truncated), its time and its message row.
//!
//! Pure: no I/O and no SQL. The writer builds chunks, the store reads them.

use thiserror::Error;

/// A chunk closes after this many lines: small enough that a trace decodes
/// little more than it shows, large enough to compress well.
pub const MAX_CHUNK_LINES: usize = 512;
/// ... or once its framed text reaches this many bytes.
pub const MAX_CHUNK_BYTES: usize = 96 * 1024;

/// zstd's level: 3 (its default) compresses logs about 9:1 at several
/// hundred MB/s; higher levels cost far more time for little.
const ZSTD_LEVEL: i32 = 3;

/// A zstd compression context, made on first use and then reused: a new
/// one per chunk allocated over a megabyte of workspace each time, most of
/// an ingest's page faults.
#[derive(Default)]
pub struct Compressor {
    context: Option<zstd::bulk::Compressor<'static>>,
}

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressor").finish_non_exhaustive()
    }
}

impl Compressor {
    fn compress(&mut self, data: &[u8]) -> Result<Vec<u8>, ChunkError> {
        let context = match &mut self.context {
            Some(context) => context,
            None => self
                .context
                .insert(zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(ChunkError::Compress)?),
        };
        context.compress(data).map_err(ChunkError::Compress)
    }
}

const HAS_TIME: u8 = 1;
const HAS_MESSAGE: u8 = 2;

/// One line as the writer hands it over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineRecord<'a> {
    /// Offset of the line's first byte in its source.
    pub start: u64,
    /// Offset just past the line and its newline.
    pub end: u64,
    /// The real length without the newline (may exceed `bytes.len()`).
    pub length: u64,
    /// Its stored bytes (at most `max_line_bytes`).
    pub bytes: &'a [u8],
    /// The line's time in the log's clock (continuations inherit it).
    pub logged_ms: Option<i64>,
    /// The row of the message the line is about.
    pub message: Option<i64>,
}

/// Lines being collected into a chunk.
#[derive(Debug, Clone)]
pub struct ChunkBuilder {
    start: u64,
    end: u64,
    lines: u32,
    first_ms: Option<i64>,
    last_ms: Option<i64>,
    framed: Vec<u8>,
    messages: Vec<i64>,
}

/// A chunk ready to store: compressed text plus what is indexed about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedChunk {
    /// Offset of the first line.
    pub start: u64,
    /// Offset just past the last line.
    pub end: u64,
    /// Lines in it.
    pub lines: u32,
    /// The earliest line time in it.
    pub first_ms: Option<i64>,
    /// The latest line time in it.
    pub last_ms: Option<i64>,
    /// The framed lines, zstd-compressed.
    pub data: Vec<u8>,
    /// Message rows with a line in the chunk, each once, ascending.
    pub messages: Vec<i64>,
}

impl ChunkBuilder {
    /// An empty chunk whose first line will start at `start`.
    pub fn new(start: u64) -> Self {
        ChunkBuilder {
            start,
            end: start,
            lines: 0,
            first_ms: None,
            last_ms: None,
            // Room for a whole chunk and its last line: grown by doubling,
            // the buffer crossed malloc's mmap threshold and was copied
            // and faulted in again for every chunk.
            framed: Vec::with_capacity(MAX_CHUNK_BYTES + 8 * 1024),
            messages: Vec::new(),
        }
    }

    /// Whether `line` can join: it starts where the chunk ends, and the
    /// chunk has room.
    pub fn accepts(&self, line: &LineRecord<'_>) -> bool {
        line.start == self.end
            && (self.lines as usize) < MAX_CHUNK_LINES
            && self.framed.len() < MAX_CHUNK_BYTES
    }

    /// Adds `line`; callers check [`accepts`](Self::accepts) first.
    pub fn push(&mut self, line: &LineRecord<'_>) {
        let mut flags = 0;
        if line.logged_ms.is_some() {
            flags |= HAS_TIME;
        }
        if line.message.is_some() {
            flags |= HAS_MESSAGE;
        }
        self.framed.push(flags);
        put_varint(&mut self.framed, line.end.saturating_sub(line.start));
        put_varint(&mut self.framed, line.length);
        if let Some(ms) = line.logged_ms {
            put_varint(&mut self.framed, zigzag(ms));
            self.first_ms = Some(self.first_ms.map_or(ms, |first| first.min(ms)));
            self.last_ms = Some(self.last_ms.map_or(ms, |last| last.max(ms)));
        }
        if let Some(message) = line.message {
            put_varint(&mut self.framed, zigzag(message));
            if let Err(at) = self.messages.binary_search(&message) {
                self.messages.insert(at, message);
            }
        }
        put_varint(&mut self.framed, line.bytes.len() as u64);
        self.framed.extend_from_slice(line.bytes);
        self.end = line.end;
        self.lines += 1;
    }

    /// Compresses the chunk.
    pub fn seal(self) -> Result<SealedChunk, ChunkError> {
        self.seal_with(&mut Compressor::default())
    }

    /// Compresses the chunk with `compressor`, which keeps its workspace
    /// from chunk to chunk.
    pub fn seal_with(self, compressor: &mut Compressor) -> Result<SealedChunk, ChunkError> {
        let data = compressor.compress(&self.framed)?;
        Ok(SealedChunk {
            start: self.start,
            end: self.end,
            lines: self.lines,
            first_ms: self.first_ms,
            last_ms: self.last_ms,
            data,
            messages: self.messages,
        })
    }
}

/// One line read back from a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLine {
    /// Offset of the line's first byte in its source.
    pub offset: u64,
    /// The real length without the newline; longer than `bytes` when the
    /// line was truncated to `max_line_bytes`.
    pub length: u64,
    /// When it was logged (a continuation: the line before it).
    pub logged_ms: Option<i64>,
    /// The row of the message it belongs to.
    pub message: Option<i64>,
    /// Its stored bytes, without the newline.
    pub bytes: Vec<u8>,
}

impl StoredLine {
    /// Whether only the first `bytes.len()` bytes of the line were kept.
    pub fn is_truncated(&self) -> bool {
        self.length > self.bytes.len() as u64
    }
}

/// A chunk that cannot be written or read back. Messages carry the I/O
/// error's words (not also as a `source`: a chain would print them twice).
#[derive(Debug, Error)]
pub enum ChunkError {
    #[error("cannot compress a chunk of lines: {0}")]
    /// zstd could not compress it.
    Compress(std::io::Error),
    #[error("cannot decompress a chunk of lines: {0}")]
    /// zstd could not decompress it.
    Decompress(std::io::Error),
    #[error("a chunk of lines is malformed at byte {0} of its framed text")]
    /// Its framing does not add up.
    Malformed(usize),
}

/// The framed text of a chunk is never larger than this: a chunk closes
/// past [`MAX_CHUNK_BYTES`], so it holds at most that plus one line of at
/// most `max_line_bytes` (capped by the configuration at 64 MiB) and its
/// framing. Decoding stops there rather than trust a damaged length.
const MAX_FRAMED_BYTES: u64 = (MAX_CHUNK_BYTES as u64) + (64 << 20) + 64;

/// The lines of the chunk stored as `data`, whose first line starts at
/// `start`.
pub fn decode(start: u64, data: &[u8]) -> Result<Vec<StoredLine>, ChunkError> {
    use std::io::Read as _;
    let mut framed = Vec::with_capacity(data.len() * 8);
    zstd::stream::read::Decoder::new(data)
        .and_then(|decoder| decoder.take(MAX_FRAMED_BYTES).read_to_end(&mut framed))
        .map_err(ChunkError::Decompress)?;
    let mut cursor = Cursor {
        bytes: &framed,
        at: 0,
    };
    let mut lines = Vec::new();
    let mut offset = start;
    while !cursor.is_done() {
        let flags = cursor.byte()?;
        let span = cursor.varint()?;
        let length = cursor.varint()?;
        let logged_ms = (flags & HAS_TIME != 0)
            .then(|| cursor.varint().map(unzigzag))
            .transpose()?;
        let message = (flags & HAS_MESSAGE != 0)
            .then(|| cursor.varint().map(unzigzag))
            .transpose()?;
        let stored = cursor.varint()?;
        let bytes = cursor.take(stored)?.to_vec();
        lines.push(StoredLine {
            offset,
            length,
            logged_ms,
            message,
            bytes,
        });
        offset = offset.saturating_add(span);
    }
    Ok(lines)
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn is_done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    fn byte(&mut self) -> Result<u8, ChunkError> {
        let byte = *self
            .bytes
            .get(self.at)
            .ok_or(ChunkError::Malformed(self.at))?;
        self.at += 1;
        Ok(byte)
    }

    fn varint(&mut self) -> Result<u64, ChunkError> {
        let start = self.at;
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ChunkError::Malformed(start))
    }

    fn take(&mut self, len: u64) -> Result<&'a [u8], ChunkError> {
        let start = self.at;
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| start.checked_add(len))
            .filter(|end| *end <= self.bytes.len())
            .ok_or(ChunkError::Malformed(start))?;
        self.at = end;
        Ok(&self.bytes[start..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(
        start: u64,
        bytes: &[u8],
        logged_ms: Option<i64>,
        message: Option<i64>,
    ) -> LineRecord<'_> {
        LineRecord {
            start,
            end: start + bytes.len() as u64 + 1,
            length: bytes.len() as u64,
            bytes,
            logged_ms,
            message,
        }
    }

    #[test]
    fn lines_come_back_byte_exact_with_offsets_times_and_messages() {
        let mut chunk = ChunkBuilder::new(100);
        let lines: [(&[u8], Option<i64>, Option<i64>); 3] = [
            (
                b"2024-01-01 10:00:00 1abc <= a@b",
                Some(1_704_103_200_000),
                Some(7),
            ),
            (b"\xff\x00 not utf-8", None, None),
            (b"", Some(-5), Some(3)),
        ];
        let mut start = 100;
        for (bytes, ms, message) in lines {
            let line = record(start, bytes, ms, message);
            assert!(chunk.accepts(&line));
            chunk.push(&line);
            start = line.end;
        }
        let sealed = chunk.seal().unwrap();
        assert_eq!((sealed.start, sealed.end, sealed.lines), (100, start, 3));
        assert_eq!(
            (sealed.first_ms, sealed.last_ms),
            (Some(-5), Some(1_704_103_200_000))
        );
        assert_eq!(sealed.messages, [3, 7]);
        let decoded = decode(sealed.start, &sealed.data).unwrap();
        let offsets: Vec<u64> = decoded.iter().map(|l| l.offset).collect();
        assert_eq!(offsets, [100, 132, 145]);
        for (stored, (bytes, ms, message)) in decoded.iter().zip(lines) {
            assert_eq!(
                (stored.bytes.as_slice(), stored.logged_ms, stored.message),
                (bytes, ms, message)
            );
            assert!(!stored.is_truncated());
        }
    }

    #[test]
    fn a_truncated_line_keeps_its_real_length_and_span() {
        let mut chunk = ChunkBuilder::new(0);
        chunk.push(&LineRecord {
            start: 0,
            end: 5001,
            length: 5000,
            bytes: b"first bytes",
            logged_ms: None,
            message: None,
        });
        chunk.push(&record(5001, b"next", None, None));
        let decoded = decode(0, &chunk.seal().unwrap().data).unwrap();
        assert!(decoded[0].is_truncated());
        assert_eq!((decoded[0].length, decoded[1].offset), (5000, 5001));
    }

    #[test]
    fn a_chunk_refuses_a_line_that_does_not_follow_on_or_overfills_it() {
        let mut chunk = ChunkBuilder::new(10);
        assert!(!chunk.accepts(&record(11, b"x", None, None)), "a hole");
        let mut start = 10;
        for _ in 0..MAX_CHUNK_LINES {
            let line = record(start, b"x", None, None);
            assert!(chunk.accepts(&line));
            chunk.push(&line);
            start = line.end;
        }
        assert!(!chunk.accepts(&record(start, b"x", None, None)), "full");
    }

    #[test]
    fn damaged_data_is_an_error_not_a_panic() {
        let mut chunk = ChunkBuilder::new(0);
        chunk.push(&record(0, b"a line", Some(1), Some(1)));
        let sealed = chunk.seal().unwrap();
        assert!(matches!(
            decode(0, b"not zstd"),
            Err(ChunkError::Decompress(_))
        ));
        let mut framed = zstd::bulk::decompress(&sealed.data, 1024).unwrap();
        framed.truncate(framed.len() - 2);
        let damaged = zstd::bulk::compress(&framed, 1).unwrap();
        assert!(matches!(decode(0, &damaged), Err(ChunkError::Malformed(_))));
    }

    proptest! {
        #[test]
        fn any_lines_round_trip(
            lines in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..200), any::<Option<i64>>(), any::<Option<i64>>()),
                1..50,
            )
        ) {
            let mut chunk = ChunkBuilder::new(0);
            let mut start = 0;
            for (bytes, ms, message) in &lines {
                let line = record(start, bytes, *ms, *message);
                chunk.push(&line);
                start = line.end;
            }
            let decoded = decode(0, &chunk.seal().unwrap().data).unwrap();
            prop_assert_eq!(decoded.len(), lines.len());
            for (stored, (bytes, ms, message)) in decoded.iter().zip(&lines) {
                prop_assert_eq!(&stored.bytes, bytes);
                prop_assert_eq!(stored.logged_ms, *ms);
                prop_assert_eq!(stored.message, *message);
            }
        }
    }
}
