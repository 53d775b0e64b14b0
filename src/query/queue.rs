//! What the database knows of queued messages' recipients (read-only):
//! each one's status, how many delivery attempts it had, when the last was
//! and its error, for the queue listing's "why is it still here". Exim's
//! listing says what is queued; this says what happened to it so far.

use std::collections::HashMap;

use deadpool_sqlite::rusqlite::{Connection, params};
use serde::Serialize;

use super::{QueryError, format_ms};
use crate::store::{Context, ResultExt};

/// One recipient as the log told it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RecipientHistory {
    /// `pending`, `deferred`, `delivered` or `bounced`.
    pub status: String,
    /// Delivery attempts logged for it.
    pub attempts: u64,
    /// When the last was, as the log says.
    pub last_attempt: Option<String>,
    /// Its error (a deferral's reason).
    pub last_error: Option<String>,
}

/// The history of every recipient of the messages `ids`, by (id, address).
/// Ids the database has not seen are simply absent.
pub fn recipient_histories(
    conn: &Connection,
    ids: &[&str],
) -> Result<HashMap<(String, String), RecipientHistory>, QueryError> {
    let context = || Context::op("read queued recipients' history").table("recipients");
    let mut statement = conn
        .prepare_cached(
            "SELECT r.address, r.status, r.last_attempt_ms,
                    (SELECT count(*) FROM attempts a
                     WHERE a.message_id = r.message_id AND a.recipient_id = r.id),
                    (SELECT a.error_text FROM delivery_attempts a
                     WHERE a.message_id = r.message_id AND a.recipient_id = r.id
                     ORDER BY a.attempted_ms DESC, a.id DESC LIMIT 1)
             FROM messages m JOIN recipients r ON r.message_id = m.id
             WHERE m.exim_id = ?1",
        )
        .ctx(context)?;
    let mut histories = HashMap::new();
    for id in ids {
        let rows = statement
            .query_map(params![id], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    RecipientHistory {
                        status: row.get(1)?,
                        last_attempt: row.get::<_, Option<i64>>(2)?.map(format_ms),
                        attempts: u64::try_from(row.get::<_, i64>(3)?).unwrap_or(0),
                        last_error: row.get(4)?,
                    },
                ))
            })
            .ctx(context)?;
        for row in rows {
            let (address, history) = row.ctx(context)?;
            histories.insert(((*id).to_owned(), address), history);
        }
    }
    Ok(histories)
}
