//! The audit log (what exim-pilot did on its own authority, and who asked)
//! and the gaps: byte ranges of a log that could not be read.

use deadpool_sqlite::rusqlite::{Connection, params};

use super::now_ms;
use crate::store::error::{Context, ResultExt, StoreError};

/// A byte range of a log that was never read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap<'a> {
    /// The generation's row, when known.
    pub source_id: Option<i64>,
    /// The path it was read as.
    pub path: &'a str,
    /// The first unread byte.
    pub start_offset: u64,
    /// `None` when the end is unknown (the file is gone).
    pub end_offset: Option<u64>,
    /// Why it cannot be read.
    pub reason: &'a str,
}

/// Records a gap, unless the same range of the same file is recorded
/// already; returns whether it was new. Call it in the transaction that
/// commits the lines around it, so the record and the read position agree.
pub fn record_gap(conn: &Connection, gap: &Gap<'_>) -> Result<bool, StoreError> {
    let context = || Context::op("record gap").table("ingest_gaps").key(gap.path);
    let start = i64::try_from(gap.start_offset).unwrap_or(i64::MAX);
    let end = gap
        .end_offset
        .map(|end| i64::try_from(end).unwrap_or(i64::MAX));
    // The same range found again (a damaged .gz read on every start) is
    // one gap, not one per start.
    let inserted = conn
        .prepare_cached(
            "INSERT INTO ingest_gaps (source_id, path, start_offset, end_offset, reason, detected_ms)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6
             WHERE NOT EXISTS (SELECT 1 FROM ingest_gaps WHERE source_id IS ?1 AND path = ?2
                               AND start_offset = ?3 AND end_offset IS ?4)",
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
    Ok(inserted > 0)
}

/// One audit record: who did what, to which message, from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord<'a> {
    /// The user, or `exim-pilot` for what the program did on its own.
    pub actor: &'a str,
    /// What was done.
    pub action: &'a str,
    /// The Exim id of the message it was done to, if any.
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

/// The audit action that marks a source stalled.
pub const SOURCE_STALLED: &str = "source_stalled";
/// The audit action that marks a stalled source read again.
pub const SOURCE_RECOVERED: &str = "source_recovered";

/// A stall recorded and not yet followed by a recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenStall {
    /// When it was recorded (wall clock, ms).
    pub recorded_ms: i64,
    /// Its details: `{"source", "since_ms", "reason"}`.
    pub details: String,
}

/// The newest stall record, if no recovery came after it.
pub fn open_stall(conn: &Connection) -> Result<Option<OpenStall>, StoreError> {
    let context = || Context::op("read the newest stall").table("audit_log");
    let mut statement = conn
        .prepare_cached(
            "SELECT action, at_ms, detail FROM audit_log WHERE action IN (?1, ?2)
             ORDER BY id DESC LIMIT 1",
        )
        .ctx(context)?;
    let mut rows = statement
        .query(params![SOURCE_STALLED, SOURCE_RECOVERED])
        .ctx(context)?;
    let Some(row) = rows.next().ctx(context)? else {
        return Ok(None);
    };
    let action: String = row.get(0).ctx(context)?;
    if action != SOURCE_STALLED {
        return Ok(None);
    }
    Ok(Some(OpenStall {
        recorded_ms: row.get(1).ctx(context)?,
        details: row.get(2).ctx(context)?,
    }))
}
