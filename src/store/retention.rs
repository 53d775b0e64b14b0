//! Retention: deleting what is older than `[retention]` allows, in small
//! transactions, so pruning a large database never stalls ingest.
//!
//! Ages are measured in the log's clock (back from the newest stored
//! line), except the audit log, which uses wall-clock time.

use std::time::Duration;

use deadpool_sqlite::rusqlite::{Connection, params};

use super::error::{Context, ResultExt, StoreError};
use super::repo::now_ms;

/// Rows deleted per transaction.
pub const CHUNK_ROWS: i64 = 5000;

/// How long each kind of row is kept; `None` keeps it forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub log_entries: Option<Duration>,
    pub delivery_attempts: Option<Duration>,
    pub rejections: Option<Duration>,
    /// Finished messages (completed or rejected), with their recipients
    /// and attempts.
    pub messages: Option<Duration>,
    pub audit_log: Option<Duration>,
}

/// Rows deleted so far, per table.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Pruned {
    pub log_entries: u64,
    pub delivery_attempts: u64,
    pub rejections: u64,
    pub messages: u64,
    pub audit_log: u64,
}

impl Pruned {
    /// Rows deleted in all tables.
    pub fn total(&self) -> u64 {
        self.log_entries + self.delivery_attempts + self.rejections + self.messages + self.audit_log
    }
}

/// The tables in pruning order (dependent rows first).
const STEPS: [(&str, &str); 5] = [
    ("log_entries", "logged_ms < ?1"),
    ("delivery_attempts", "attempted_ms < ?1"),
    ("rejections", "rejected_ms < ?1"),
    (
        "messages",
        "status IN ('completed', 'rejected') AND coalesce(completed_ms, last_event_ms, received_ms) < ?1",
    ),
    ("audit_log", "at_ms < ?1"),
];

impl RetentionPolicy {
    /// Deletes at most [`CHUNK_ROWS`] rows from the first table that has
    /// rows past their age, in one transaction. Returns `false` when there
    /// was nothing left to delete.
    pub fn prune_chunk(
        &self,
        conn: &mut Connection,
        pruned: &mut Pruned,
    ) -> Result<bool, StoreError> {
        let newest: Option<i64> = conn
            .query_row("SELECT max(logged_ms) FROM log_entries", [], |row| {
                row.get(0)
            })
            .ctx(|| Context::op("prune").table("log_entries"))?;
        let log_now = newest.unwrap_or(i64::MIN);
        let ages = [
            self.log_entries,
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
            // Table and condition come from the constant list above.
            let deleted = tx
                .execute(
                    &format!(
                        "DELETE FROM {table} WHERE rowid IN
                             (SELECT rowid FROM {table} WHERE {condition} LIMIT ?2)"
                    ),
                    params![cutoff, CHUNK_ROWS],
                )
                .ctx(context)?;
            tx.commit().ctx(context)?;
            let deleted = deleted as u64;
            let slot = match index {
                0 => &mut pruned.log_entries,
                1 => &mut pruned.delivery_attempts,
                2 => &mut pruned.rejections,
                3 => &mut pruned.messages,
                _ => &mut pruned.audit_log,
            };
            *slot += deleted;
            if deleted > 0 {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Prunes everything due, chunk by chunk.
    pub fn prune_all(&self, conn: &mut Connection) -> Result<Pruned, StoreError> {
        let mut pruned = Pruned::default();
        while self.prune_chunk(conn, &mut pruned)? {}
        Ok(pruned)
    }
}
