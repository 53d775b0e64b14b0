//! Reading a whole log file from a stored offset into batches.

use std::path::Path;

use tokio::sync::mpsc;

use super::batch::{Batch, FramedLine};
use crate::store::repo::Checkpoint;
use crate::tail::framing::LineReader;
use crate::tail::input::LogInput;

/// How a file read ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadSummary {
    pub lines: u64,
    pub truncated: u64,
    /// Bytes after the last newline, not sent (an incomplete last line).
    pub pending_bytes: u64,
    /// Offset just past the last complete line.
    pub end_offset: u64,
}

/// Reads `path` from `offset`, sending batches of up to `batch_size` lines.
/// Blocks on a full channel (back-pressure: nothing is dropped). Runs on a
/// blocking thread. Stops early, without error, if the writer went away.
pub fn read_file(
    path: &Path,
    source_id: i64,
    offset: u64,
    batch_size: usize,
    max_line_bytes: usize,
    sender: &mpsc::Sender<Batch>,
) -> std::io::Result<ReadSummary> {
    let input = LogInput::open(path, offset)?;
    let mut reader = LineReader::new(input.into_reader(), offset, max_line_bytes);
    let mut summary = ReadSummary {
        lines: 0,
        truncated: 0,
        pending_bytes: 0,
        end_offset: offset,
    };
    let mut lines = Vec::with_capacity(batch_size);
    loop {
        let line = reader.next_line()?;
        let done = line.is_none();
        if let Some(line) = line {
            summary.lines += 1;
            summary.truncated += u64::from(line.is_truncated());
            lines.push(FramedLine {
                start: line.start,
                length: line.length,
                bytes: line.bytes.to_vec(),
            });
        }
        if lines.len() >= batch_size || (done && !lines.is_empty()) {
            let batch = Batch {
                lines: std::mem::replace(&mut lines, Vec::with_capacity(batch_size)),
                checkpoint: Checkpoint {
                    source_id,
                    byte_offset: reader.committed_offset(),
                    tail_marker: reader.tail_marker().to_vec(),
                },
            };
            if sender.blocking_send(batch).is_err() {
                break;
            }
        }
        if done {
            break;
        }
    }
    summary.pending_bytes = reader.pending_bytes();
    summary.end_offset = reader.committed_offset();
    Ok(summary)
}
