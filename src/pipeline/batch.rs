//! What travels from the reader to the writer.

use crate::store::repo::Checkpoint;

/// One framed line, owned so it can cross the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramedLine {
    pub start: u64,
    /// The real length without the newline (may exceed `bytes.len()`).
    pub length: u64,
    pub bytes: Vec<u8>,
}

/// Lines of one source and the read position just after the last of them.
/// The writer stores the lines and the checkpoint in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub lines: Vec<FramedLine>,
    pub checkpoint: Checkpoint,
}
