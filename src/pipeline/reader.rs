//! Reading a finished log file (a rotated generation, or a file named to
//! `ingest`) from its stored read position to the end.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::item::{GapItem, Item, LineItem, SourceInfo};
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

    /// Which generation a file whose first line has fingerprint `head` is,
    /// and where reading of it stopped.
    ///
    /// A file rewritten in place (its first line unchanged) no longer holds
    /// at its stored position what was read there: it gets an identity
    /// derived from that position ([`Fingerprint::rewritten`]). Rewritten
    /// again, it no longer matches the first rewrite's position either, and
    /// gets an identity derived from that one, and so on: each rewrite is a
    /// generation of its own, found again on resume by the same walk.
    /// `check` compares the file's bytes before an offset with a marker.
    pub fn resolve(
        &self,
        head: Fingerprint,
        mut check: impl FnMut(u64, &[u8]) -> std::io::Result<MarkerCheck>,
    ) -> std::io::Result<Resolved> {
        let mut fingerprint = head;
        for _ in 0..MAX_REWRITES {
            let Some((offset, marker)) = self.get(&fingerprint) else {
                return Ok(Resolved {
                    fingerprint,
                    offset: 0,
                    marker: Vec::new(),
                });
            };
            match check(offset, marker)? {
                MarkerCheck::Matches => {
                    return Ok(Resolved {
                        fingerprint,
                        offset,
                        marker: marker.to_vec(),
                    });
                }
                MarkerCheck::TooShort | MarkerCheck::Differs => {
                    fingerprint = fingerprint.rewritten(offset, marker);
                }
            }
        }
        Err(std::io::Error::other(format!(
            "the file was rewritten in place more than {MAX_REWRITES} times"
        )))
    }

    /// Whether `fingerprint` is the generation of a file with first line
    /// `head`, or one of its rewrites, by the stored positions alone.
    pub fn is_generation_of(&self, head: Fingerprint, fingerprint: Fingerprint) -> bool {
        let mut current = head;
        for _ in 0..MAX_REWRITES {
            if current == fingerprint {
                return true;
            }
            let Some((offset, marker)) = self.get(&current) else {
                return false;
            };
            current = current.rewritten(offset, marker);
        }
        false
    }

    /// Records that reading of `fingerprint` got to `offset`.
    pub fn set(&mut self, fingerprint: Fingerprint, offset: u64, marker: &[u8]) {
        self.by_fingerprint
            .insert(fingerprint, (offset, marker.to_vec()));
    }
}

/// Rewrites in place of one file followed before giving up: each is a
/// stored position, so a longer chain means something rewrites the log
/// in a loop.
const MAX_REWRITES: usize = 64;

/// The generation a file was resolved to, and where to read it from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub fingerprint: Fingerprint,
    pub offset: u64,
    /// The bytes just before `offset` (empty at 0).
    pub marker: Vec<u8>,
}

/// How reading one file ended.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
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
    /// Why a compressed file could not be read to its end (truncated or
    /// corrupt): what was readable was sent, and the rest as a gap.
    pub unreadable_tail: Option<String>,
    /// Whether reading stopped early on a stop request.
    pub interrupted: bool,
}

/// Sends items to the writer, waiting while the channel is full (never
/// dropping). Fails once the writer has gone away.
pub trait ItemSink {
    /// Sends one item; `false` when the receiver is gone.
    fn send(&mut self, item: Item) -> bool;

    /// Whether the reader should stop at the next step (the daemon is
    /// shutting down): long reads look at it between bounded steps.
    fn stopping(&self) -> bool {
        false
    }

    /// A line longer than `max_line_bytes` is being sent truncated.
    fn truncated(&mut self, _path: &str, _offset: u64, _length: u64) {}
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
    let head = source.fingerprint;
    let resolved = positions.resolve(head, |offset, marker| {
        LogInput::open_checked(path, offset, marker).map(|(_, check)| check)
    })?;
    if resolved.fingerprint != head {
        // Same first line, other content at a stored position: a
        // generation of its own, rewritten in place.
        tracing::warn!(
            path = %path.display(),
            from = resolved.offset,
            "the file no longer holds what was read before at its stored position; \
             reading it as a rewritten generation"
        );
        let mut info = (*source).clone();
        info.fingerprint = resolved.fingerprint;
        source = Arc::new(info);
    }
    let (offset, marker) = (resolved.offset, resolved.marker);
    let input = LogInput::open(path, offset)?;
    let compressed = input.compressed;
    let mut reader = LineReader::new(input.into_reader(), offset, max_line_bytes)
        .with_tail_marker(if offset == 0 { &[] } else { &marker })
        .with_scan_limit(crate::tail::follower::SCAN_BYTES_PER_STEP);
    let mut summary = ReadSummary {
        resumed_at: offset,
        ..ReadSummary::default()
    };
    loop {
        let corrupt = match reader.next_line() {
            Ok(Some(line)) => {
                if !send_line(&source, &line, &mut summary, sink) {
                    break;
                }
                if sink.stopping() {
                    summary.interrupted = true;
                    break;
                }
                continue;
            }
            Ok(None) => None,
            Err(err) if compressed && is_corrupt_stream(&err) => Some(err),
            Err(err) => return Err(err),
        };
        if let Some(err) = corrupt {
            // A truncated or damaged .gz: what decompressed was sent; the
            // rest of the generation is a gap, named by this file.
            let start = reader.committed_offset();
            let reason = format!(
                "the compressed file is truncated or corrupt after {start} decompressed \
                 bytes ({err}); the rest of this generation cannot be read"
            );
            tracing::warn!(path = %path.display(), start, "{reason}");
            summary.unreadable_tail = Some(reason.clone());
            sink.send(Item::Gap(GapItem {
                source: Some(Arc::clone(&source)),
                path: path.display().to_string(),
                start,
                end: None,
                reason,
            }));
            break;
        }
        if reader.paused() {
            if sink.stopping() {
                summary.interrupted = true;
                break;
            }
            continue;
        }
        if finish && let Some(line) = reader.finish() {
            send_line(&source, &line, &mut summary, sink);
        }
        break;
    }
    summary.pending_bytes = reader.pending_bytes();
    positions.set(
        source.fingerprint,
        reader.committed_offset(),
        reader.tail_marker(),
    );
    Ok(summary)
}

/// Counts `line` into `summary` and sends it; `false` once the writer is
/// gone.
fn send_line(
    source: &Arc<SourceInfo>,
    line: &Line<'_>,
    summary: &mut ReadSummary,
    sink: &mut dyn ItemSink,
) -> bool {
    summary.lines += 1;
    summary.bytes += line.end - line.start;
    if line.is_truncated() {
        summary.truncated += 1;
        sink.truncated(&source.path, line.start, line.length);
    }
    sink.send(line_item(source, line))
}

/// Whether a read error means the compressed stream is damaged (cut
/// short, or bad data) rather than the file being unreadable.
fn is_corrupt_stream(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::InvalidData
            | std::io::ErrorKind::InvalidInput
    )
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
