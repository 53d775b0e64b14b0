//! Reading a finished log file (a rotated generation, or a file named to
//! `ingest`) from its stored read position to the end.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::item::{Item, LineItem, SourceInfo};
use crate::store::repo::SourcePosition;
use crate::tail::framing::{Line, LineReader, TailMarker};
use crate::tail::identity::Fingerprint;
use crate::tail::input::{LogInput, MarkerCheck};

/// The stored read position of every known source, by fingerprint.
#[derive(Debug, Default, Clone)]
pub struct Positions {
    by_fingerprint: HashMap<Fingerprint, (u64, Vec<u8>)>,
}

impl Positions {
    /// From the rows the store returned.
    pub fn from_rows(rows: &[SourcePosition]) -> Self {
        let by_fingerprint = rows
            .iter()
            .filter_map(|row| {
                let bytes: [u8; 16] = row.fingerprint.as_slice().try_into().ok()?;
                Some((
                    Fingerprint(bytes),
                    (row.byte_offset, row.tail_marker.clone()),
                ))
            })
            .collect();
        Positions { by_fingerprint }
    }

    /// Where reading of `fingerprint` stopped, and the bytes before it.
    pub fn get(&self, fingerprint: &Fingerprint) -> Option<(u64, &[u8])> {
        self.by_fingerprint
            .get(fingerprint)
            .map(|(offset, marker)| (*offset, marker.as_slice()))
    }

    /// Records that reading of `fingerprint` got to `offset`.
    pub fn set(&mut self, fingerprint: Fingerprint, offset: u64, marker: &[u8]) {
        self.by_fingerprint
            .insert(fingerprint, (offset, marker.to_vec()));
    }
}

/// How reading one file ended.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReadSummary {
    /// Offset reading started from.
    pub resumed_at: u64,
    pub lines: u64,
    pub bytes: u64,
    pub truncated: u64,
    /// Bytes after the last newline, left for later (an incomplete line).
    pub pending_bytes: u64,
    /// Whether the file had no complete first line yet (nothing was read).
    pub no_first_line: bool,
}

/// Sends items to the writer, waiting while the channel is full (never
/// dropping). Fails once the writer has gone away.
pub trait ItemSink {
    /// Sends one item; `false` when the receiver is gone.
    fn send(&mut self, item: Item) -> bool;
}

impl ItemSink for mpsc::Sender<Item> {
    fn send(&mut self, item: Item) -> bool {
        self.blocking_send(item).is_ok()
    }
}

/// The identity of the file at `path` (its first line), or `None` while it
/// has no complete first line.
pub fn identify(path: &Path) -> std::io::Result<Option<Arc<SourceInfo>>> {
    let input = LogInput::open(path, 0)?;
    let Some(fingerprint) = Fingerprint::of_head(&mut input.into_reader())? else {
        return Ok(None);
    };
    let metadata = std::fs::metadata(path)?;
    Ok(Some(Arc::new(SourceInfo {
        fingerprint,
        path: path.display().to_string(),
        device: Some(metadata.dev()),
        inode: Some(metadata.ino()),
    })))
}

/// Reads `path` from its stored position to the end and sends every
/// complete line. With `finish`, an unterminated last line is sent too (the
/// file is finished: rotated and drained, or named to `ingest` explicitly as
/// complete); without it, it waits for a later run.
pub fn read_file(
    path: &Path,
    positions: &mut Positions,
    max_line_bytes: usize,
    finish: bool,
    sink: &mut dyn ItemSink,
) -> std::io::Result<ReadSummary> {
    let Some(mut source) = identify(path)? else {
        return Ok(ReadSummary {
            no_first_line: true,
            ..ReadSummary::default()
        });
    };
    let (offset, marker) = positions
        .get(&source.fingerprint)
        .map_or((0, Vec::new()), |(offset, marker)| {
            (offset, marker.to_vec())
        });
    let (input, check) = LogInput::open_checked(path, offset, &marker)?;
    let offset = match check {
        MarkerCheck::Matches => offset,
        MarkerCheck::TooShort | MarkerCheck::Differs => {
            // Same first line, other content: a different generation that
            // happens to start alike. Give it an identity of its own.
            tracing::warn!(
                path = %path.display(),
                stored_offset = offset,
                ?check,
                "the file no longer holds what was read before at its stored position; \
                 reading it from the start as a new generation"
            );
            let mut info = (*source).clone();
            info.fingerprint = info.fingerprint.rewritten(offset, &marker);
            source = Arc::new(info);
            0
        }
    };
    let mut reader = LineReader::new(input.into_reader(), offset, max_line_bytes)
        .with_tail_marker(if offset == 0 { &[] } else { &marker });
    let mut summary = ReadSummary {
        resumed_at: offset,
        ..ReadSummary::default()
    };
    loop {
        let line = match reader.next_line()? {
            Some(line) => line,
            None if finish => match reader.finish() {
                Some(line) => line,
                None => break,
            },
            None => break,
        };
        summary.lines += 1;
        summary.bytes += line.end - line.start;
        summary.truncated += u64::from(line.is_truncated());
        let item = line_item(&source, &line);
        if !sink.send(item) {
            break;
        }
    }
    summary.pending_bytes = reader.pending_bytes();
    positions.set(
        source.fingerprint,
        reader.committed_offset(),
        reader.tail_marker(),
    );
    Ok(summary)
}

/// A channel item for `line` of `source`.
pub fn line_item(source: &Arc<SourceInfo>, line: &Line<'_>) -> Item {
    Item::Line(LineItem {
        source: Arc::clone(source),
        start: line.start,
        end: line.end,
        length: line.length,
        bytes: line.bytes.to_vec(),
        tail_marker: TailMarker::of(line.tail_marker),
    })
}
