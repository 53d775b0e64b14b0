//! `exim-pilot stuck`: recipients with no final disposition (pending or
//! deferred) whose message has been waiting longer than an age, oldest
//! first, with the last error Exim gave (or, when no attempt said why, the
//! system filter's deferral of the whole message); and every message still
//! frozen,
//! with Exim's reason and since when (a frozen bounce has no pending
//! recipient, so the first list alone misses it).

use deadpool_sqlite::rusqlite::{Connection, params};
use serde::Serialize;

use super::{QueryError, format_ms};
use crate::parse::{Event, Problem};
use crate::store::chunk::StoredLine;
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
    /// The recipient waiting; `None` for a message whose recipients no
    /// line has named yet (its `<=` line lists none, and nothing was tried:
    /// held by the system filter, queued for a queue runner).
    pub address: Option<String>,
    /// `pending` or `deferred`.
    pub status: String,
    /// When delivery was last tried.
    pub last_attempt_at: Option<String>,
    /// The error of that try.
    pub last_error: Option<String>,
    /// Why the whole message waits, when no attempt said so: Exim's last
    /// `Delivery deferred by system filter` or `Message abandoned` line
    /// for it (a filter's deferral writes no `==` line).
    pub held: Option<String>,
}

/// One message still frozen.
#[derive(Debug, Serialize)]
pub struct Frozen {
    /// The message's Exim id.
    pub message: String,
    /// When it was received, if seen.
    pub received_at: Option<String>,
    /// When it was last frozen (the time of Exim's `Frozen` line), if that
    /// line is still stored.
    pub frozen_at: Option<String>,
    /// Why, in Exim's words (`(delivery error message)`, `by the system
    /// filter: ...`, `frozen by root`), when it said.
    pub reason: Option<String>,
    /// Its recipients still waiting.
    pub waiting_recipients: u64,
}

/// What `stuck` answers: the waiting recipients and the frozen messages.
#[derive(Debug, Serialize)]
pub struct StuckReport {
    /// Recipients waiting longer than the age asked, oldest first.
    pub waiting: Vec<Stuck>,
    /// Every message still frozen (at most [`LIMIT`]), oldest first.
    pub frozen: Vec<Frozen>,
}

/// Recipients waiting since before `older_than_ms` ago (in the log's
/// clock: measured back from the newest line), and the frozen messages.
pub fn find(conn: &Connection, older_than_ms: i64) -> Result<StuckReport, QueryError> {
    Ok(StuckReport {
        waiting: waiting(conn, older_than_ms)?,
        frozen: frozen(conn)?,
    })
}

/// The messages whose status is frozen, oldest first, each with its last
/// `Frozen` line's time and reason as the writer kept them (read back from
/// the message's lines for a message frozen before migration 0018).
fn frozen(conn: &Connection) -> Result<Vec<Frozen>, QueryError> {
    let context = || Context::op("find frozen messages").table("messages");
    type Row = (i64, String, Option<i64>, u64, Option<i64>, Option<String>);
    let messages: Vec<Row> = conn
        .prepare_cached(
            "SELECT m.id, m.exim_id, m.received_ms,
                    (SELECT count(*) FROM recipients r
                     WHERE r.message_id = m.id AND r.status IN ('pending', 'deferred')),
                    m.frozen_ms, (SELECT text FROM texts WHERE id = m.frozen_reason_id)
             FROM messages m WHERE m.status = 'frozen'
             ORDER BY coalesce(m.received_ms, m.last_event_ms), m.id LIMIT ?1",
        )
        .ctx(context)?
        .query_map([LIMIT], |row| {
            let waiting: i64 = row.get(3)?;
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                u64::try_from(waiting).unwrap_or(0),
                row.get(4)?,
                row.get(5)?,
            ))
        })
        .ctx(context)?
        .collect::<Result<_, _>>()
        .ctx(context)?;
    let mut frozen = Vec::with_capacity(messages.len());
    for (row, message, received_ms, waiting_recipients, frozen_ms, reason) in messages {
        let (frozen_ms, reason) = match frozen_ms {
            Some(at) => (Some(at), reason),
            None => last_frozen_line(conn, row)?,
        };
        frozen.push(Frozen {
            message,
            received_at: received_ms.map(format_ms),
            frozen_at: frozen_ms.map(format_ms),
            reason,
            waiting_recipients,
        });
    }
    Ok(frozen)
}

/// The time and reason of the message's last `Frozen` line, from its
/// stored lines.
fn last_frozen_line(
    conn: &Connection,
    message_row: i64,
) -> Result<(Option<i64>, Option<String>), QueryError> {
    let last = last_line_saying(
        conn,
        message_row,
        MESSAGE_BYTES,
        |line, event| match event {
            Event::Frozen { reason } => Some((
                line.logged_ms,
                reason.map(|r| String::from_utf8_lossy(r).into_owned()),
            )),
            _ => None,
        },
    )?;
    Ok(last.unwrap_or((None, None)))
}

/// What `pick` takes from the last of the message's stored lines (the
/// first `max_bytes` of them) it takes anything from.
fn last_line_saying<T>(
    conn: &Connection,
    message_row: i64,
    max_bytes: usize,
    pick: impl Fn(&StoredLine, Event<'_>) -> Option<T>,
) -> Result<Option<T>, QueryError> {
    let (lines, _) = crate::store::repo::message_lines(conn, message_row, max_bytes)?;
    Ok(lines
        .iter()
        .rev()
        .find_map(|line| pick(line, crate::parse::parse_line(&line.bytes).event)))
}

/// The most of one message's lines read back for its `Frozen` line: a
/// frozen message has few, and the read stays bounded per row.
const MESSAGE_BYTES: usize = 256 << 10;

/// The waiting recipients (?1: received before, ?2: how many), then the
/// waiting messages no line has named a recipient of, from the open
/// indexes.
const WAITING: &str = concat!(
    "SELECT m.exim_id, m.received_ms, r.address, r.status, r.last_attempt_ms,
        m.id, ",
    last_error_of_r!(),
    ",
        coalesce(m.received_ms, m.last_event_ms) AS since, r.id AS recipient_row
 FROM recipients r JOIN messages m ON m.id = r.message_id
 WHERE r.status IN ('pending', 'deferred')
   AND m.status NOT IN ('completed', 'rejected')
   AND coalesce(m.received_ms, m.last_event_ms) <= ?1
 UNION ALL
 SELECT m.exim_id, m.received_ms, NULL, 'pending', NULL, m.id, NULL,
        coalesce(m.received_ms, m.last_event_ms), NULL
 FROM messages m
 -- `<> 'completed'` repeats messages_open's condition: SQLite
 -- uses a partial index only then (a scan of every message).
 WHERE m.status IN ('received', 'deferred') AND m.status <> 'completed'
   AND coalesce(m.received_ms, m.last_event_ms) <= ?1
   AND NOT EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id)
 ORDER BY since, 6, recipient_row
 LIMIT ?2"
);

/// Recipients waiting since before `older_than_ms` ago.
fn waiting(conn: &Connection, older_than_ms: i64) -> Result<Vec<Stuck>, QueryError> {
    let context = || Context::op("find stuck recipients").table("recipients");
    let newest = crate::store::repo::newest_line_ms(conn)?;
    let cutoff = newest.unwrap_or(0).saturating_sub(older_than_ms);
    let rows = conn
        .prepare(WAITING)
        .ctx(context)?
        .query_map(params![cutoff, LIMIT], |row| {
            let stuck = Stuck {
                message: row.get(0)?,
                received_at: row.get::<_, Option<i64>>(1)?.map(format_ms),
                address: row.get(2)?,
                status: row.get(3)?,
                last_attempt_at: row.get::<_, Option<i64>>(4)?.map(format_ms),
                last_error: row.get(6)?,
                held: None,
            };
            Ok((row.get::<_, i64>(5)?, stuck))
        })
        .ctx(context)?
        .collect::<Result<Vec<_>, _>>()
        .ctx(context)?;
    // Each message's lines are read once, and only for recipients no
    // attempt explains.
    let mut held: std::collections::HashMap<i64, Option<String>> = std::collections::HashMap::new();
    let mut waiting = Vec::with_capacity(rows.len());
    for (message_row, mut stuck) in rows {
        if stuck.last_error.is_none() {
            stuck.held = match held.get(&message_row) {
                Some(known) => known.clone(),
                None => {
                    let found = last_hold(conn, message_row)?;
                    held.insert(message_row, found.clone());
                    found
                }
            };
        }
        waiting.push(stuck);
    }
    Ok(waiting)
}

/// The message's last line saying the whole message waits: the system
/// filter's deferral or `Message abandoned`.
fn last_hold(conn: &Connection, message_row: i64) -> Result<Option<String>, QueryError> {
    last_line_saying(conn, message_row, HOLD_BYTES, |_, event| match event {
        Event::Problem {
            problem: Problem::FilterDeferred | Problem::MessageAbandoned,
            detail,
        } => Some(String::from_utf8_lossy(detail).into_owned()),
        _ => None,
    })
}

/// The most of one message's lines read back for its hold: the filter
/// defers once per queue run, and the read stays bounded per message.
const HOLD_BYTES: usize = 64 << 10;

/// One line per waiting recipient, then one per frozen message.
pub fn render(report: &StuckReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if report.waiting.is_empty() {
        out.push_str("no recipient is waiting that long\n");
    }
    for row in &report.waiting {
        let _ = writeln!(
            out,
            "{}  {}  {:<8} {}{}",
            row.received_at.as_deref().unwrap_or("(reception not seen)"),
            row.message,
            row.status,
            row.address
                .as_deref()
                .unwrap_or("(recipients not logged yet)"),
            match (&row.last_error, &row.held) {
                (Some(error), _) => format!("  last error: {error}"),
                (None, Some(held)) => format!("  held: {held}"),
                (None, None) => String::new(),
            }
        );
    }
    if report.frozen.is_empty() {
        out.push_str("no message is frozen\n");
    } else {
        let _ = writeln!(out, "\nfrozen messages ({}):", report.frozen.len());
    }
    for row in &report.frozen {
        let _ = writeln!(
            out,
            "{}  {}  frozen {}: {}  ({} recipient(s) waiting)",
            row.received_at.as_deref().unwrap_or("(reception not seen)"),
            row.message,
            row.frozen_at.as_deref().unwrap_or("(when not stored)"),
            row.reason.as_deref().unwrap_or("(no reason given)"),
            row.waiting_recipients
        );
    }
    out
}

#[cfg(test)]
mod tests {
    /// A scan of every message took 375 ms on 5M lines.
    #[test]
    fn the_waiting_are_found_from_the_open_indexes() {
        let conn = crate::store::migrated_in_memory();
        let plan = crate::query::query_plan(&conn, super::WAITING).join("\n");
        for index in ["recipients_open", "messages_open"] {
            assert!(
                plan.contains(&format!("INDEX {index} ")),
                "{index}:\n{plan}"
            );
        }
        assert!(
            !plan.contains("SCAN m") && !plan.contains("SCAN r"),
            "{plan}"
        );
    }
}
