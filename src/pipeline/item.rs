//! What travels from a reader to the writer: lines with the read position
//! just after them, and gaps.

use std::sync::Arc;

/// The file generation a line came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceInfo {
    /// Its identity: the fingerprint of its first line (or a derived one).
    pub fingerprint: Fingerprint,
    /// The path it was read as (the live log, or a file named to `ingest`).
    pub path: String,
    /// The device it was on when read.
    pub device: Option<u64>,
    /// Its inode then.
    pub inode: Option<u64>,
    /// What its lines are.
    pub kind: SourceKind,
}

/// What a source's lines are: Exim's log, or the queue helper's records
/// of the actions it ran (which go to the audit log, not among Exim's lines).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SourceKind {
    /// Exim's main log.
    #[default]
    EximLog,
    /// The queue helper's actions log (`crate::queue::record`).
    QueueActions,
}

/// One framed line, owned so it can cross the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineItem {
    /// The generation it came from.
    pub source: Arc<SourceInfo>,
    /// Offset of its first byte.
    pub start: u64,
    /// Offset just past the line (and its newline): the read position to
    /// store once this line is committed.
    pub end: u64,
    /// The real length without the newline (may exceed `bytes.len()`).
    pub length: u64,
    /// Its bytes, without the newline; at most `max_line_bytes`.
    pub bytes: Vec<u8>,
    /// What confirms `end` on resume, stored with it as the source's
    /// `store::repo::ReadPosition` once this line is committed.
    pub resume: ResumeMarker,
}

/// What confirms a read position on resume, as it travels with a line: the
/// in-flight form of `store::repo::ReadPosition::marker`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeMarker {
    /// A file's bytes just before the position (kept inline: one
    /// allocation per line fewer).
    Tail(TailMarker),
    /// The journal's cursor, and any split line still unfinished; the
    /// offset then counts the bytes of the lines read from the journal.
    Cursor(Arc<[u8]>),
}

impl ResumeMarker {
    /// The bytes stored.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            ResumeMarker::Tail(marker) => marker.as_slice(),
            ResumeMarker::Cursor(cursor) => cursor,
        }
    }
}

/// A byte range that can no longer be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GapItem {
    /// The generation the bytes belonged to, when known.
    pub source: Option<Arc<SourceInfo>>,
    /// The path it was read as.
    pub path: String,
    /// The first unread byte.
    pub start: u64,
    /// One past the last, when known (`None`: the file is gone).
    pub end: Option<u64>,
    /// Why they cannot be read.
    pub reason: String,
}

/// Something the program did on its own authority, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditItem {
    /// What was done: `gap`, `rotated`, `truncated`, `config_reloaded`...
    pub action: String,
    /// A JSON object.
    pub details: String,
    /// `daemon` or the command.
    pub origin: &'static str,
}

impl AuditItem {
    /// A channel item auditing `action`, with `details` serialised as JSON.
    pub fn item(action: &str, origin: &'static str, details: serde_json::Value) -> Item {
        Item::Audit(AuditItem {
            action: action.to_owned(),
            details: details.to_string(),
            origin,
        })
    }
}

/// One message on the reader → writer channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A line, with the read position after it.
    Line(LineItem),
    /// Bytes that can no longer be read.
    Gap(GapItem),
    /// A record for the audit log.
    Audit(AuditItem),
    /// Exim's queue size, as the queue helper counted it: kept over time
    /// for the flow page's chart.
    QueueSample(QueueSample),
}

/// Exim's queue size at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSample {
    /// When it was counted, in the log's clock (local time read as UTC, as
    /// Exim's lines are stored), so that it charts beside their counts.
    pub at_ms: i64,
    /// The count.
    pub size: crate::queue::listing::QueueSize,
}

/// A 128-bit fingerprint of a source generation's first line (how it is
/// computed is the source's business: `crate::source::file::identity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 16]);

impl Fingerprint {
    /// The fingerprint of exactly these bytes.
    pub fn of_bytes(bytes: &[u8]) -> Fingerprint {
        Fingerprint(xxhash_rust::xxh3::xxh3_128(bytes).to_be_bytes())
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

/// Bytes kept of the end of the last complete line.
pub const TAIL_MARKER_BYTES: usize = 16;

/// The last [`TAIL_MARKER_BYTES`] bytes before an offset: a cheap check that
/// a file still holds, at a stored offset, what was read there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TailMarker {
    bytes: [u8; TAIL_MARKER_BYTES],
    len: usize,
}

impl TailMarker {
    /// The marker of `bytes`: their last [`TAIL_MARKER_BYTES`] bytes.
    pub fn of(bytes: &[u8]) -> Self {
        let mut marker = TailMarker::default();
        marker.push(bytes);
        marker
    }

    /// Appends `data`, keeping only the last [`TAIL_MARKER_BYTES`].
    pub fn push(&mut self, data: &[u8]) {
        let keep = data.len().min(TAIL_MARKER_BYTES);
        let data = &data[data.len() - keep..];
        let retain = (TAIL_MARKER_BYTES - keep).min(self.len);
        self.bytes.copy_within(self.len - retain..self.len, 0);
        self.bytes[retain..retain + keep].copy_from_slice(data);
        self.len = retain + keep;
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}
