//! Exim's queue size over time: one row per count the daemon's queue
//! gauge took, kept for [`KEPT_MS`], read by the flow chart.

use deadpool_sqlite::rusqlite::{Connection, params};

use crate::store::error::{Context, ResultExt, StoreError};

/// How long a count is kept: a season of history at one row a minute.
pub const KEPT_MS: i64 = 90 * 24 * 3600 * 1000;

/// Keeps the count of `messages` (`frozen` of them) taken at `at_ms`, in
/// the log's clock (a second count in the same millisecond replaces the
/// first), and drops those older than [`KEPT_MS`] before it.
pub fn record(conn: &Connection, at_ms: i64, messages: u64, frozen: u64) -> Result<(), StoreError> {
    let context = || Context::op("keep the queue size").table("queue_samples");
    conn.prepare_cached(
        "INSERT OR REPLACE INTO queue_samples (at_ms, messages, frozen) VALUES (?1, ?2, ?3)",
    )
    .ctx(context)?
    .execute(params![
        at_ms,
        i64::try_from(messages).unwrap_or(i64::MAX),
        i64::try_from(frozen).unwrap_or(i64::MAX)
    ])
    .ctx(context)?;
    conn.prepare_cached("DELETE FROM queue_samples WHERE at_ms < ?1")
        .ctx(context)?
        .execute(params![at_ms - KEPT_MS])
        .ctx(context)?;
    Ok(())
}
