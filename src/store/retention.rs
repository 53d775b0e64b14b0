//! Retention: deleting what is older than `[retention]` allows, in small
//! transactions, so pruning a large database never stalls ingest.
//!
//! Ages are measured in the log's clock (back from the newest stored line
//! not dated ahead of the wall clock: [`super::repo::newest_line_ms`]), so
//! an archive ingested today keeps its lines, and a line dated in the
//! future moves nothing. The audit log uses wall-clock time.

use std::time::Duration;

use deadpool_sqlite::rusqlite::{Connection, params};

use super::error::{Context, ResultExt, StoreError};
use super::repo::{HELD_ATTEMPT_COLUMNS, now_ms};

/// Rows deleted per transaction (one prune step).
pub const ROWS_PER_PRUNE_STEP: i64 = 5000;

/// How long each kind of row is kept; `None` keeps it forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Raw lines (whole chunks whose newest line is older) and their counts.
    pub log_lines: Option<Duration>,
    /// Delivery attempts.
    pub delivery_attempts: Option<Duration>,
    /// Rejections.
    pub rejections: Option<Duration>,
    /// Finished messages (completed or rejected), with their recipients
    /// and attempts.
    pub messages: Option<Duration>,
    /// Audit records (by the wall clock).
    pub audit_log: Option<Duration>,
    /// Keep the chunks a fleet's PostgreSQL has not committed yet
    /// (`fleet_shipped`): set while `[fleet]` is configured.
    pub hold_unshipped: bool,
}

impl RetentionPolicy {
    /// The policy of `config`: its `[retention]`, holding unshipped chunks
    /// when it has a `[fleet]`.
    pub fn of(config: &crate::config::Config) -> Self {
        RetentionPolicy {
            hold_unshipped: config.fleet.is_some(),
            ..RetentionPolicy::from(&config.retention)
        }
    }
}

impl From<&crate::config::RetentionConfig> for RetentionPolicy {
    /// The configured days as durations, 0 as "forever".
    fn from(config: &crate::config::RetentionConfig) -> Self {
        let days = |n: u32| (n > 0).then(|| Duration::from_secs(u64::from(n) * 86_400));
        RetentionPolicy {
            log_lines: days(config.log_lines_days),
            delivery_attempts: days(config.delivery_attempts_days),
            rejections: days(config.rejections_days),
            messages: days(config.messages_days),
            audit_log: days(config.audit_log_days),
            hold_unshipped: false,
        }
    }
}

/// What was deleted so far: log lines (in whole chunks, with their
/// per-minute counts), and rows per table.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Pruned {
    /// Raw lines, in whole chunks.
    pub log_lines: u64,
    /// Delivery attempts.
    pub delivery_attempts: u64,
    /// Rejections.
    pub rejections: u64,
    /// Finished messages (their recipients went with them).
    pub messages: u64,
    /// Audit records.
    pub audit_log: u64,
    /// Texts no message or attempt refers to any more.
    pub texts: u64,
    /// Whether this run has removed unused texts already.
    #[serde(skip)]
    pub texts_swept: bool,
}

impl Pruned {
    /// Rows deleted in all tables.
    pub fn total(&self) -> u64 {
        self.log_lines
            + self.delivery_attempts
            + self.rejections
            + self.messages
            + self.audit_log
            + self.texts
    }
}

/// The tables in pruning order (dependent rows first). `log_chunks` is
/// pruned by [`prune_lines`] instead.
const STEPS: [(&str, &str); 6] = [
    ("log_chunks", ""),
    ("attempts", "attempted_ms < ?1"),
    // The first attempts the recipients' rows hold: cleared, not deleted
    // (by [`forget_first_attempts`]).
    ("recipients", "attempt_ms < ?1"),
    ("rejections", "rejected_ms < ?1"),
    (
        "messages",
        "status IN ('completed', 'rejected') AND coalesce(completed_ms, last_event_ms, received_ms) < ?1",
    ),
    ("audit_log", "at_ms < ?1"),
];

impl RetentionPolicy {
    /// Deletes at most [`ROWS_PER_PRUNE_STEP`] rows from the first table that has
    /// rows past their age, in one transaction. Returns `false` when there
    /// was nothing left to delete.
    pub fn prune_step(
        &self,
        conn: &mut Connection,
        pruned: &mut Pruned,
    ) -> Result<bool, StoreError> {
        let log_now = super::repo::newest_line_ms(conn)?.unwrap_or(i64::MIN);
        let ages = [
            self.log_lines,
            self.delivery_attempts,
            self.delivery_attempts,
            self.rejections,
            self.messages,
            self.audit_log,
        ];
        for (index, ((table, condition), age)) in STEPS.iter().zip(ages).enumerate() {
            let Some(age) = age else { continue };
            let age = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
            let now = if *table == "audit_log" {
                now_ms()
            } else {
                log_now
            };
            let cutoff = now.saturating_sub(age);
            let context = || Context::op("prune").table(table);
            let tx = conn.transaction().ctx(context)?;
            let deleted = if index == 0 {
                prune_lines(&tx, cutoff, self.hold_unshipped)?
            } else if *table == "recipients" {
                forget_first_attempts(&tx, cutoff)?
            } else {
                // Table and condition come from the constant list above.
                tx.execute(
                    &format!(
                        "DELETE FROM {table} WHERE rowid IN
                             (SELECT rowid FROM {table} WHERE {condition} LIMIT ?2)"
                    ),
                    params![cutoff, ROWS_PER_PRUNE_STEP],
                )
                .ctx(context)? as u64
            };
            tx.commit().ctx(context)?;
            let slot = match index {
                0 => &mut pruned.log_lines,
                1 | 2 => &mut pruned.delivery_attempts,
                3 => &mut pruned.rejections,
                4 => &mut pruned.messages,
                _ => &mut pruned.audit_log,
            };
            *slot += deleted;
            if deleted > 0 {
                return Ok(true);
            }
        }
        if pruned.delivery_attempts + pruned.messages > 0 && !pruned.texts_swept {
            pruned.texts += sweep_texts(conn)?;
            pruned.texts_swept = true;
        }
        Ok(false)
    }

    /// Prunes everything due, step by step.
    pub fn prune_all(&self, conn: &mut Connection) -> Result<Pruned, StoreError> {
        let mut pruned = Pruned::default();
        while self.prune_step(conn, &mut pruned)? {}
        Ok(pruned)
    }
}

/// Clears up to [`ROWS_PER_PRUNE_STEP`] first attempts older than `cutoff`
/// from the recipients' rows that hold them (found by
/// recipients_attempt_time); returns how many.
fn forget_first_attempts(tx: &Connection, cutoff: i64) -> Result<u64, StoreError> {
    let context = || Context::op("prune").table("recipients");
    let cleared: Vec<String> = HELD_ATTEMPT_COLUMNS
        .iter()
        .map(|column| format!("{column} = NULL"))
        .collect();
    let sql = format!(
        "UPDATE recipients SET {} WHERE id IN
             (SELECT id FROM recipients WHERE attempt_ms < ?1 LIMIT ?2)",
        cleared.join(", ")
    );
    let cleared = tx
        .execute(&sql, params![cutoff, ROWS_PER_PRUNE_STEP])
        .ctx(context)?;
    Ok(cleared as u64)
}

/// Deletes the texts no message, recipient or attempt refers to, in one
/// transaction, and counts the sweep so writers drop their cached ids. It
/// reads every message, recipient and attempt (the id columns have no
/// index: one would cost a write per row on ingest), so it runs once per
/// prune, after rows went.
fn sweep_texts(conn: &mut Connection) -> Result<u64, StoreError> {
    let context = || Context::op("prune").table("texts");
    let tx = conn.transaction().ctx(context)?;
    let deleted = tx
        .execute(
            "DELETE FROM texts WHERE id NOT IN (
                 SELECT router_id FROM attempts WHERE router_id IS NOT NULL
                 UNION SELECT transport_id FROM attempts WHERE transport_id IS NOT NULL
                 UNION SELECT host_name_id FROM attempts WHERE host_name_id IS NOT NULL
                 UNION SELECT host_ip_id FROM attempts WHERE host_ip_id IS NOT NULL
                 UNION SELECT tls_cipher_id FROM attempts WHERE tls_cipher_id IS NOT NULL
                 UNION SELECT smtp_code_id FROM attempts WHERE smtp_code_id IS NOT NULL
                 UNION SELECT error_text_id FROM attempts WHERE error_text_id IS NOT NULL
                 UNION SELECT attempt_router_id FROM recipients WHERE attempt_router_id IS NOT NULL
                 UNION SELECT attempt_transport_id FROM recipients
                       WHERE attempt_transport_id IS NOT NULL
                 UNION SELECT attempt_host_name_id FROM recipients
                       WHERE attempt_host_name_id IS NOT NULL
                 UNION SELECT attempt_host_ip_id FROM recipients WHERE attempt_host_ip_id IS NOT NULL
                 UNION SELECT attempt_tls_cipher_id FROM recipients
                       WHERE attempt_tls_cipher_id IS NOT NULL
                 UNION SELECT attempt_smtp_code_id FROM recipients
                       WHERE attempt_smtp_code_id IS NOT NULL
                 UNION SELECT attempt_error_text_id FROM recipients
                       WHERE attempt_error_text_id IS NOT NULL
                 UNION SELECT host_name_id FROM messages WHERE host_name_id IS NOT NULL
                 UNION SELECT helo_id FROM messages WHERE helo_id IS NOT NULL
                 UNION SELECT protocol_id FROM messages WHERE protocol_id IS NOT NULL
                 UNION SELECT tls_cipher_id FROM messages WHERE tls_cipher_id IS NOT NULL
                 UNION SELECT frozen_reason_id FROM messages WHERE frozen_reason_id IS NOT NULL)",
            [],
        )
        .ctx(context)?;
    if deleted > 0 {
        tx.execute(
            "UPDATE texts_swept SET sweeps = sweeps + 1 WHERE id = 1",
            [],
        )
        .ctx(context)?;
    }
    tx.commit().ctx(context)?;
    Ok(deleted as u64)
}

/// Deletes up to [`ROWS_PER_PRUNE_STEP`] / 100 line chunks all older than
/// `cutoff`, their links to messages, and the line counts of the minutes
/// before `cutoff`. Returns the number of lines deleted.
///
/// The newest chunk always stays: without AUTOINCREMENT, SQLite gives the
/// next chunk the largest id plus one, and a fleet's high-water mark counts
/// on chunk ids never coming back. With `hold_unshipped`, chunks after the
/// one `fleet_shipped` names stay too (none, before anything shipped).
fn prune_lines(conn: &Connection, cutoff: i64, hold_unshipped: bool) -> Result<u64, StoreError> {
    let context = || Context::op("prune").table("log_chunks");
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS pruned_chunks (id INTEGER PRIMARY KEY, lines INTEGER)",
        [],
    )
    .ctx(context)?;
    conn.execute("DELETE FROM temp.pruned_chunks", [])
        .ctx(context)?;
    conn.execute(
        "INSERT INTO temp.pruned_chunks SELECT id, lines FROM log_chunks
         WHERE last_ms < ?1
           AND id < (SELECT max(id) FROM log_chunks)
           AND (NOT ?3 OR id <= (SELECT coalesce(max(chunk_id), 0) FROM fleet_shipped))
         LIMIT ?2",
        params![cutoff, ROWS_PER_PRUNE_STEP / 100, hold_unshipped],
    )
    .ctx(context)?;
    // message_chunks has no index on chunk_id (it would cost a write per
    // link on ingest): this scans it, once per step.
    conn.execute(
        "DELETE FROM message_chunks WHERE chunk_id IN (SELECT id FROM temp.pruned_chunks)",
        [],
    )
    .ctx(context)?;
    let lines: i64 = conn
        .query_row(
            "SELECT coalesce(sum(lines), 0) FROM temp.pruned_chunks",
            [],
            |row| row.get(0),
        )
        .ctx(context)?;
    conn.execute(
        "DELETE FROM log_chunks WHERE id IN (SELECT id FROM temp.pruned_chunks)",
        [],
    )
    .ctx(context)?;
    conn.execute(
        "DELETE FROM line_counts WHERE minute_ms > ?1 AND minute_ms + 60000 <= ?2",
        params![super::repo::NO_TIME_MINUTE, cutoff],
    )
    .ctx(context)?;
    Ok(u64::try_from(lines).unwrap_or(0))
}
