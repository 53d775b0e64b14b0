//! Lines per minute and kind (for `stats`), and the log's clock: the newest
//! line not dated ahead of the wall clock.

use deadpool_sqlite::rusqlite::Connection;

use super::{now_ms, write_rows};
use crate::store::error::{Context, ResultExt, StoreError};

/// `line_counts.minute_ms` of lines that have no time: below every real
/// minute, so a window's bounds never include it.
pub const NO_TIME_MINUTE: i64 = i64::MIN;

/// The `line_counts` minute of a line logged at `logged_ms`.
pub fn minute_of(logged_ms: Option<i64>) -> i64 {
    logged_ms.map_or(NO_TIME_MINUTE, |ms| ms - ms.rem_euclid(60_000))
}

/// The log's clock: the time of the newest stored line that is not dated
/// more than [`FUTURE_TOLERANCE_MS`] ahead of the wall clock. Retention
/// and relative windows count back from it, so one garbage line dated next
/// year (or a brief clock jump on the host) cannot make every real line
/// look old.
pub fn newest_line_ms(conn: &Connection) -> Result<Option<i64>, StoreError> {
    newest_line_ms_before(conn, now_ms().saturating_add(FUTURE_TOLERANCE_MS))
}

/// How far a line's time may be ahead of the wall clock and still count
/// as the log's "now": clocks of a host and its log drift, and time zones
/// are guessed, but a line dated further ahead is garbage or a clock jump.
pub const FUTURE_TOLERANCE_MS: i64 = 24 * 3600 * 1000;

/// The time of the newest stored line dated at or before `limit_ms`.
///
/// A chunk holding one far-future line has that line's time as its
/// `last_ms`; the per-minute counts still know the newest minute of the
/// plausible lines in it, so the answer is exact unless such a chunk
/// holds the newest plausible line (then it is that line's minute).
pub fn newest_line_ms_before(conn: &Connection, limit_ms: i64) -> Result<Option<i64>, StoreError> {
    let context = || Context::op("find the newest line").table("log_chunks");
    let chunk: Option<i64> = conn
        .prepare_cached("SELECT max(last_ms) FROM log_chunks WHERE last_ms <= ?1")
        .ctx(context)?
        .query_row([limit_ms], |row| row.get(0))
        .ctx(context)?;
    let minute: Option<i64> = conn
        .prepare_cached(
            "SELECT max(minute_ms) FROM line_counts WHERE minute_ms > ?1 AND minute_ms <= ?2",
        )
        .ctx(context)?
        .query_row([NO_TIME_MINUTE, limit_ms], |row| row.get(0))
        .ctx(context)?;
    Ok(chunk.max(minute))
}

/// Adds line counts: `lines` lines of `kind` in the minute `minute_ms`,
/// for each `((minute_ms, kind), lines)`.
pub fn add_line_counts(conn: &Connection, counts: &[((i64, &str), u64)]) -> Result<(), StoreError> {
    write_rows(
        conn,
        "line_counts",
        &["minute_ms", "kind", "lines"],
        "ON CONFLICT (minute_ms, kind) DO UPDATE SET lines = lines + excluded.lines",
        counts,
        |statement, first, ((minute_ms, kind), lines)| {
            statement.raw_bind_parameter(first, minute_ms)?;
            statement.raw_bind_parameter(first + 1, kind)?;
            statement.raw_bind_parameter(first + 2, i64::try_from(*lines).unwrap_or(i64::MAX))
        },
    )
}
