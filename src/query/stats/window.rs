//! A windowed report: the rows of a time window, found through the time
//! indexes; few enough that a join per row costs little.

use deadpool_sqlite::rusqlite::Connection;

use super::attempt_tally::{Attempts, Recipient};
use super::tally::{Bounds, Messages};
use super::{
    ATTEMPT_COLUMNS, HELD_ATTEMPT_COLUMNS, MESSAGE_COLUMNS, QueryError, Read, attempt_row, context,
    each_row, message_row, to_u64,
};
use crate::store::ResultExt;

/// Reads what the report over `bounds` needs.
pub(super) fn read(conn: &Connection, bounds: Bounds) -> Result<Read, QueryError> {
    let kinds = super::kind_counts(conn, Some((bounds.since, bounds.until)))?;
    let rejections = super::read_rejections(conn, bounds, false)?;
    let mut messages = read_messages(conn, bounds)?;
    read_queue_times(conn, bounds, &mut messages)?;
    let (delayed, failed) = delayed_and_failed(conn, bounds)?;
    let attempts = read_attempts(conn, bounds)?;
    Ok(Read {
        kinds,
        rejections,
        messages,
        attempts,
        delayed,
        failed,
    })
}

/// Messages received in the window, and those never received whose last
/// event falls in it (for the status table). Both terms from
/// messages_received (NULLs sort first in it).
fn messages_sql() -> String {
    format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages
         WHERE received_ms BETWEEN ?1 AND ?2
            OR (received_ms IS NULL AND last_event_ms BETWEEN ?1 AND ?2)"
    )
}

/// Queue times of the messages completed in the window, from
/// messages_completed.
const QUEUE_TIMES_SQL: &str = "SELECT completed_ms - received_ms FROM messages
    WHERE status = 'completed' AND received_ms IS NOT NULL AND completed_ms BETWEEN ?1 AND ?2";

/// Per message received in the window: any deferral, any failure (from
/// attempts_message, which holds the flags, and recipients_message for
/// the first attempts the recipients' rows hold).
const DELAYED_AND_FAILED_SQL: &str = "SELECT
        sum(EXISTS (SELECT 1 FROM attempts a WHERE a.message_id = m.id AND a.flag = '==')
            OR EXISTS (SELECT 1 FROM recipients r
                       WHERE r.message_id = m.id AND r.attempt_flag = '==')),
        sum(EXISTS (SELECT 1 FROM attempts a WHERE a.message_id = m.id AND a.flag = '**')
            OR EXISTS (SELECT 1 FROM recipients r
                       WHERE r.message_id = m.id AND r.attempt_flag = '**'))
    FROM messages m WHERE m.received_ms BETWEEN ?1 AND ?2";

/// The window's attempts, from attempts_time and recipients_attempt_time,
/// with their messages' sizes and recipients' addresses joined in.
fn attempts_sql() -> String {
    format!(
        "SELECT {ATTEMPT_COLUMNS}, m.size, r.address FROM attempts a
         LEFT JOIN messages m ON m.id = a.message_id
         LEFT JOIN recipients r ON r.id = a.recipient_id
         WHERE a.attempted_ms BETWEEN ?1 AND ?2
         UNION ALL
         SELECT {HELD_ATTEMPT_COLUMNS}, m.size, r.address FROM recipients r
         LEFT JOIN messages m ON m.id = r.message_id
         WHERE r.attempt_ms BETWEEN ?1 AND ?2"
    )
}

fn read_messages(conn: &Connection, bounds: Bounds) -> Result<Messages, QueryError> {
    let mut messages = Messages::default();
    each_row(conn, &messages_sql(), [bounds.since, bounds.until], |row| {
        messages.add(&message_row(row)?, bounds, false);
        Ok(())
    })?;
    Ok(messages)
}

/// Queue times of the messages completed in the window, wherever received.
fn read_queue_times(
    conn: &Connection,
    bounds: Bounds,
    messages: &mut Messages,
) -> Result<(), QueryError> {
    each_row(conn, QUEUE_TIMES_SQL, [bounds.since, bounds.until], |row| {
        messages.queue_times.add(row.get(0)?);
        Ok(())
    })
}

/// The window's messages with at least one deferral, and with at least
/// one failure (at any time): answered from `attempts_message`, which
/// holds the flags.
fn delayed_and_failed(conn: &Connection, bounds: Bounds) -> Result<(u64, u64), QueryError> {
    let (delayed, failed): (Option<i64>, Option<i64>) = conn
        .prepare_cached(DELAYED_AND_FAILED_SQL)
        .ctx(context)?
        .query_row([bounds.since, bounds.until], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .ctx(context)?;
    Ok((delayed.map_or(0, to_u64), failed.map_or(0, to_u64)))
}

/// The window's attempts, with their messages' sizes and recipients'
/// addresses joined in.
fn read_attempts(conn: &Connection, bounds: Bounds) -> Result<Attempts, QueryError> {
    let mut attempts = Attempts::default();
    each_row(conn, &attempts_sql(), [bounds.since, bounds.until], |row| {
        let recipient = match row.get_ref(9)?.as_str_or_null()? {
            Some(address) => Recipient::Address(address),
            None => Recipient::None,
        };
        attempts.add(&attempt_row(row, row.get(8)?, recipient)?, bounds);
        Ok(())
    })?;
    Ok(attempts)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every table a window's statement reads is searched through an
    /// index, none scanned: a day's report must not grow with the
    /// database.
    #[test]
    fn a_window_is_read_through_indexes() {
        let conn = crate::store::migrated_in_memory();
        let (messages, attempts) = (messages_sql(), attempts_sql());
        for sql in [
            messages.as_str(),
            QUEUE_TIMES_SQL,
            DELAYED_AND_FAILED_SQL,
            attempts.as_str(),
            super::super::REJECTIONS_WINDOW_SQL,
        ] {
            let plan = crate::query::query_plan(&conn, sql);
            assert!(
                plan.iter().all(|step| !step.starts_with("SCAN ")),
                "{sql}\n{}",
                plan.join("\n")
            );
        }
    }
}
