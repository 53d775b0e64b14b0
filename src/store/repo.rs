//! Repository functions: fixed SQL, bound parameters only.
//!
//! Each takes a `&Connection`, and a `rusqlite::Transaction` dereferences to
//! one, so the same function serves inside the writer's batch transaction and
//! on its own. Statements are prepared through the connection's cache.

use deadpool_sqlite::rusqlite::{Connection, OptionalExtension, params};

use super::error::{Context, ResultExt, StoreError};

/// Wall-clock time now, in milliseconds since 1970.
pub fn now_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

/// A log file generation as the reader identifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceIdentity<'a> {
    /// A fingerprint of the file's head; stable across rename and compression.
    pub fingerprint: &'a [u8],
    pub path: &'a str,
    pub device: Option<u64>,
    pub inode: Option<u64>,
}

/// Returns the id of the source with this fingerprint, creating it if new.
/// The path stays the one it was first seen under; device and inode are
/// updated to where it was last seen.
pub fn upsert_source(conn: &Connection, source: &SourceIdentity<'_>) -> Result<i64, StoreError> {
    let context = || {
        Context::op("record log source")
            .table("log_sources")
            .key(source.path)
    };
    let device = source.device.and_then(|d| i64::try_from(d).ok());
    let inode = source.inode.and_then(|i| i64::try_from(i).ok());
    conn.prepare_cached(
        "INSERT INTO log_sources (fingerprint, path, device, inode, first_seen_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (fingerprint) DO UPDATE
             SET device = excluded.device, inode = excluded.inode
         RETURNING id",
    )
    .ctx(context)?
    .query_row(
        params![source.fingerprint, source.path, device, inode, now_ms()],
        |row| row.get(0),
    )
    .ctx(context)
}

/// One raw line ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLogEntry<'a> {
    pub source_id: i64,
    /// Offset of the line's first byte in its source.
    pub byte_offset: u64,
    /// The line's real length in bytes, without the newline.
    pub line_length: u64,
    /// The stored bytes: the whole line, or its first `max_line_bytes`.
    pub raw: &'a [u8],
    pub kind: &'a str,
    pub logged_ms: Option<i64>,
    pub message_id: Option<i64>,
}

/// Stores a line. Returns `false`, changing nothing, when a line from the
/// same source at the same offset is already stored (a replay).
pub fn insert_log_entry(conn: &Connection, entry: &NewLogEntry<'_>) -> Result<bool, StoreError> {
    let context = || {
        Context::op("store log line")
            .table("log_entries")
            .key(format_args!(
                "source {} offset {}",
                entry.source_id, entry.byte_offset
            ))
    };
    let offset = i64::try_from(entry.byte_offset).unwrap_or(i64::MAX);
    let length = i64::try_from(entry.line_length).unwrap_or(i64::MAX);
    let truncated = entry.line_length > entry.raw.len() as u64;
    let inserted = conn
        .prepare_cached(
            "INSERT INTO log_entries
                 (source_id, byte_offset, line_length, truncated, raw, kind, logged_ms, message_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (source_id, byte_offset) DO NOTHING",
        )
        .ctx(context)?
        .execute(params![
            entry.source_id,
            offset,
            length,
            truncated,
            entry.raw,
            entry.kind,
            entry.logged_ms,
            entry.message_id,
        ])
        .ctx(context)?;
    Ok(inserted == 1)
}

/// Where reading of one source stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub source_id: i64,
    pub byte_offset: u64,
    pub tail_marker: Vec<u8>,
}

/// Records that everything in `source_id` before `byte_offset` is stored.
/// Call it in the transaction that stores those lines.
pub fn save_checkpoint(conn: &Connection, checkpoint: &Checkpoint) -> Result<(), StoreError> {
    let context = || {
        Context::op("save read position")
            .table("ingest_checkpoints")
            .key(format_args!("source {}", checkpoint.source_id))
    };
    let offset = i64::try_from(checkpoint.byte_offset).unwrap_or(i64::MAX);
    conn.prepare_cached(
        "INSERT INTO ingest_checkpoints (source_id, byte_offset, tail_marker, updated_ms)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (source_id) DO UPDATE
             SET byte_offset = excluded.byte_offset,
                 tail_marker = excluded.tail_marker,
                 updated_ms = excluded.updated_ms",
    )
    .ctx(context)?
    .execute(params![
        checkpoint.source_id,
        offset,
        checkpoint.tail_marker,
        now_ms()
    ])
    .ctx(context)?;
    Ok(())
}

/// The stored read position of a source, if any.
pub fn load_checkpoint(
    conn: &Connection,
    source_id: i64,
) -> Result<Option<Checkpoint>, StoreError> {
    let context = || {
        Context::op("load read position")
            .table("ingest_checkpoints")
            .key(format_args!("source {source_id}"))
    };
    conn.prepare_cached(
        "SELECT byte_offset, tail_marker FROM ingest_checkpoints WHERE source_id = ?1",
    )
    .ctx(context)?
    .query_row([source_id], |row| {
        Ok(Checkpoint {
            source_id,
            byte_offset: u64::try_from(row.get::<_, i64>(0)?).unwrap_or(0),
            tail_marker: row.get(1)?,
        })
    })
    .optional()
    .ctx(context)
}

/// A byte range of a log that was never read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap<'a> {
    pub source_id: Option<i64>,
    pub path: &'a str,
    pub start_offset: u64,
    /// `None` when the end is unknown (the file is gone).
    pub end_offset: Option<u64>,
    pub reason: &'a str,
}

/// Records a gap. Call it in the transaction that commits the lines around
/// it, so the record and the read position agree.
pub fn record_gap(conn: &Connection, gap: &Gap<'_>) -> Result<(), StoreError> {
    let context = || Context::op("record gap").table("ingest_gaps").key(gap.path);
    let start = i64::try_from(gap.start_offset).unwrap_or(i64::MAX);
    let end = gap
        .end_offset
        .map(|end| i64::try_from(end).unwrap_or(i64::MAX));
    conn.prepare_cached(
        "INSERT INTO ingest_gaps (source_id, path, start_offset, end_offset, reason, detected_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .ctx(context)?
    .execute(params![
        gap.source_id,
        gap.path,
        start,
        end,
        gap.reason,
        now_ms()
    ])
    .ctx(context)?;
    Ok(())
}

/// A source with its read position, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePosition {
    pub source_id: i64,
    pub fingerprint: Vec<u8>,
    pub path: String,
    pub byte_offset: u64,
    pub tail_marker: Vec<u8>,
    pub updated_ms: i64,
}

/// Every source with a checkpoint, most recently advanced first.
pub fn source_positions(conn: &Connection) -> Result<Vec<SourcePosition>, StoreError> {
    let context = || Context::op("load read positions").table("ingest_checkpoints");
    let mut statement = conn
        .prepare_cached(
            "SELECT s.id, s.fingerprint, s.path, c.byte_offset, c.tail_marker, c.updated_ms
             FROM ingest_checkpoints c JOIN log_sources s ON s.id = c.source_id
             ORDER BY c.updated_ms DESC, c.rowid DESC",
        )
        .ctx(context)?;
    let rows = statement
        .query_map([], |row| {
            Ok(SourcePosition {
                source_id: row.get(0)?,
                fingerprint: row.get(1)?,
                path: row.get(2)?,
                byte_offset: u64::try_from(row.get::<_, i64>(3)?).unwrap_or(0),
                tail_marker: row.get(4)?,
                updated_ms: row.get(5)?,
            })
        })
        .ctx(context)?;
    rows.collect::<Result<_, _>>().ctx(context)
}

/// One audit record: who did what, to which message, from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord<'a> {
    /// The user, or `exim-pilot` for what the program did on its own.
    pub actor: &'a str,
    pub action: &'a str,
    pub message_id: Option<&'a str>,
    /// Details as a JSON object.
    pub details: &'a str,
    /// `daemon`, or the command (`ingest`, `prune`).
    pub origin: &'a str,
}

/// Appends to the audit log.
pub fn record_audit(conn: &Connection, record: &AuditRecord<'_>) -> Result<i64, StoreError> {
    let context = || {
        Context::op("append audit record")
            .table("audit_log")
            .key(record.action)
    };
    conn.prepare_cached(
        "INSERT INTO audit_log (at_ms, actor, action, detail, message_id, origin)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
    )
    .ctx(context)?
    .query_row(
        params![
            now_ms(),
            record.actor,
            record.action,
            record.details,
            record.message_id,
            record.origin
        ],
        |row| row.get(0),
    )
    .ctx(context)
}

/// Appends a record with no message and no origin.
pub fn append_audit(
    conn: &Connection,
    actor: &str,
    action: &str,
    detail: &str,
) -> Result<i64, StoreError> {
    record_audit(
        conn,
        &AuditRecord {
            actor,
            action,
            message_id: None,
            details: detail,
            origin: "",
        },
    )
}

/// Number of rows in one of our tables (diagnostics and tests).
pub fn count_rows(conn: &Connection, table: Table) -> Result<u64, StoreError> {
    let context = || Context::op("count rows").table(table.name());
    // The table name comes from a closed enum, never from input.
    let sql = format!("SELECT count(*) FROM {}", table.name());
    let count: i64 = conn.query_row(&sql, [], |row| row.get(0)).ctx(context)?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// The tables of the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    LogSources,
    IngestCheckpoints,
    Messages,
    Recipients,
    LogEntries,
    DeliveryAttempts,
    Rejections,
    AuditLog,
    IngestGaps,
}

impl Table {
    /// Every table, in creation order.
    pub const ALL: [Table; 9] = [
        Table::LogSources,
        Table::IngestCheckpoints,
        Table::Messages,
        Table::Recipients,
        Table::LogEntries,
        Table::DeliveryAttempts,
        Table::Rejections,
        Table::AuditLog,
        Table::IngestGaps,
    ];

    /// The table's SQL name.
    pub fn name(self) -> &'static str {
        match self {
            Table::LogSources => "log_sources",
            Table::IngestCheckpoints => "ingest_checkpoints",
            Table::Messages => "messages",
            Table::Recipients => "recipients",
            Table::LogEntries => "log_entries",
            Table::DeliveryAttempts => "delivery_attempts",
            Table::Rejections => "rejections",
            Table::AuditLog => "audit_log",
            Table::IngestGaps => "ingest_gaps",
        }
    }
}
