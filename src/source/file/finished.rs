//! Reading a finished log file (a rotated generation, or a file named to
//! `ingest`) from its stored read position to the end.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use super::framing::{Line, LineReader, TailMarker};
use super::identity::Fingerprint;
use super::input::{LogInput, MarkerCheck};
use super::positions::Positions;
use crate::pipeline::item::{GapItem, Item, LineItem, ResumeMarker, SourceInfo, SourceKind};
use crate::pipeline::source::ItemSink;

/// How reading one file ended.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReadSummary {
    /// Offset reading started from.
    pub resumed_at: u64,
    /// Lines sent.
    pub lines: u64,
    /// Their bytes, newlines included.
    pub bytes: u64,
    /// Lines longer than `max_line_bytes`, sent truncated.
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
        kind: SourceKind::EximLog,
    })))
}

/// Reads `path` (whose lines are `kind`) from its stored position to the
/// end and sends every complete line. With `finish`, an unterminated last line is sent too (the
/// file is finished: rotated and drained, or named to `ingest` explicitly as
/// complete); without it, it waits for a later run.
pub fn read_file(
    path: &Path,
    positions: &mut Positions,
    max_line_bytes: usize,
    finish: bool,
    kind: SourceKind,
    sink: &mut dyn ItemSink,
) -> std::io::Result<ReadSummary> {
    let Some(mut source) = identify(path)? else {
        return Ok(ReadSummary {
            no_first_line: true,
            ..ReadSummary::default()
        });
    };
    Arc::make_mut(&mut source).kind = kind;
    let (resolved, input) = resolve(path, positions, &mut source)?;
    let (offset, marker) = (resolved.position.byte_offset, resolved.position.marker);
    let compressed = input.compressed;
    let mut reader = LineReader::new(input.into_reader(), offset, max_line_bytes)
        .with_tail_marker(if offset == 0 { &[] } else { &marker })
        .with_scan_limit(super::framing::SCAN_BYTES_PER_STEP);
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
            let gap = unreadable_tail(path, &source, reader.committed_offset(), &err);
            if let Item::Gap(GapItem { reason, .. }) = &gap {
                summary.unreadable_tail = Some(reason.clone());
            }
            sink.send(gap);
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

/// Which generation the file at `path` is (see [`Positions::resolve`]),
/// and its content positioned where reading resumes; a rewrite in place
/// gives `source` the rewritten identity. The check that matched already
/// read up to the position, so the stream it left there is the one read
/// on: a `.gz` is decompressed to the position once, not twice.
fn resolve(
    path: &Path,
    positions: &Positions,
    source: &mut Arc<SourceInfo>,
) -> std::io::Result<(super::positions::Resolved, LogInput)> {
    let head = source.fingerprint;
    let mut positioned = None;
    let resolved = positions.resolve(head, |offset, marker| {
        let (input, check) = LogInput::open_checked(path, offset, marker)?;
        if check == MarkerCheck::Matches {
            positioned = Some(input);
        }
        Ok(check)
    })?;
    if resolved.fingerprint != head {
        // Same first line, other content at a stored position: a
        // generation of its own, rewritten in place.
        tracing::warn!(
            path = %path.display(),
            from = resolved.position.byte_offset,
            "{} no longer holds what was read before at its stored position (byte {}); \
             reading it as a rewritten generation",
            path.display(),
            resolved.position.byte_offset
        );
        let mut info = (**source).clone();
        info.fingerprint = resolved.fingerprint;
        *source = Arc::new(info);
    }
    // No stored position at all: nothing was checked, read from the start.
    let input = match positioned {
        Some(input) => input,
        None => LogInput::open(path, 0)?,
    };
    Ok((resolved, input))
}

/// The gap for the rest of a truncated or damaged .gz, from `start`
/// (decompressed bytes): what decompressed was sent already. It names the
/// .gz, not the live log.
fn unreadable_tail(
    path: &Path,
    source: &Arc<SourceInfo>,
    start: u64,
    err: &std::io::Error,
) -> Item {
    let reason = format!(
        "the compressed file is truncated or corrupt after {start} decompressed \
         bytes ({err}); the rest of this generation cannot be read"
    );
    tracing::warn!(path = %path.display(), start, "{}, from byte {start}: {reason}", path.display());
    Item::Gap(GapItem {
        source: Some(Arc::clone(source)),
        path: path.display().to_string(),
        start,
        end: None,
        reason,
    })
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
        resume: ResumeMarker::Tail(TailMarker::of(line.tail_marker)),
    })
}
