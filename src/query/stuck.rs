//! `exim-pilot stuck`: recipients with no final disposition (pending or
//! deferred) whose message has been waiting longer than an age, oldest
//! first, with the last error Exim gave.

use deadpool_sqlite::rusqlite::{Connection, params};
use serde::Serialize;

use super::{QueryError, format_ms};
use crate::store::{Context, ResultExt};

/// Rows returned at most.
const LIMIT: i64 = 1000;

/// One waiting recipient.
#[derive(Debug, Serialize)]
pub struct Stuck {
    /// The message's Exim id.
    pub message: String,
    /// When it was received, if seen.
    pub received_at: Option<String>,
    /// The recipient waiting.
    pub address: String,
    /// `pending` or `deferred`.
    pub status: String,
    /// When delivery was last tried.
    pub last_attempt_at: Option<String>,
    /// The error of that try.
    pub last_error: Option<String>,
}

/// Recipients waiting since before `older_than_ms` ago (in the log's
/// clock: measured back from the newest line).
pub fn find(conn: &Connection, older_than_ms: i64) -> Result<Vec<Stuck>, QueryError> {
    let context = || Context::op("find stuck recipients").table("recipients");
    let newest = crate::store::repo::newest_line_ms(conn)?;
    let cutoff = newest.unwrap_or(0).saturating_sub(older_than_ms);
    let rows = conn
        .prepare(
            "SELECT m.exim_id, m.received_ms, r.address, r.status, r.last_attempt_ms,
                    (SELECT a.error_text FROM delivery_attempts a
                     WHERE a.message_id = r.message_id AND a.recipient_id = r.id
                     ORDER BY a.attempted_ms DESC, a.id DESC LIMIT 1)
             FROM recipients r JOIN messages m ON m.id = r.message_id
             WHERE r.status IN ('pending', 'deferred')
               AND m.status NOT IN ('completed', 'rejected')
               AND coalesce(m.received_ms, m.last_event_ms) <= ?1
             ORDER BY coalesce(m.received_ms, m.last_event_ms), m.id, r.id
             LIMIT ?2",
        )
        .ctx(context)?
        .query_map(params![cutoff, LIMIT], |row| {
            Ok(Stuck {
                message: row.get(0)?,
                received_at: row.get::<_, Option<i64>>(1)?.map(format_ms),
                address: row.get(2)?,
                status: row.get(3)?,
                last_attempt_at: row.get::<_, Option<i64>>(4)?.map(format_ms),
                last_error: row.get(5)?,
            })
        })
        .ctx(context)?
        .collect::<Result<_, _>>()
        .ctx(context)?;
    Ok(rows)
}

/// One line per waiting recipient.
pub fn render(rows: &[Stuck]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if rows.is_empty() {
        out.push_str("no recipient is waiting that long\n");
    }
    for row in rows {
        let _ = writeln!(
            out,
            "{}  {}  {:<8} {}{}",
            row.received_at.as_deref().unwrap_or("(reception not seen)"),
            row.message,
            row.status,
            row.address,
            row.last_error
                .as_deref()
                .map(|e| format!("  last error: {e}"))
                .unwrap_or_default()
        );
    }
    out
}
