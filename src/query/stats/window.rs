//! A windowed report: the rows of a time window, found through the time
//! indexes; few enough that a join per row costs little.

use deadpool_sqlite::rusqlite::Connection;

use super::attempt_tally::{Attempts, Recipient};
use super::tally::{Bounds, Messages};
use super::{
    ATTEMPT_COLUMNS, HELD_ATTEMPT_COLUMNS, MESSAGE_COLUMNS, QueryError, Read, attempt_row,
    each_row, message_row,
};

/// Reads what the report over `bounds` needs.
pub(super) fn read(conn: &Connection, bounds: Bounds) -> Result<Read, QueryError> {
    let kinds = super::kind_counts(conn, Some((bounds.since, bounds.until)))?;
    let rejections = super::read_rejections(conn, bounds, false)?;
    let mut messages = read_messages(conn, bounds)?;
    read_queue_times(conn, bounds, &mut messages)?;
    let attempts = read_attempts(conn, bounds)?;
    Ok(Read {
        kinds,
        rejections,
        messages,
        attempts,
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
