//! `exim-pilot stats`: the eximstats report, from the database.
//!
//! Counting follows eximstats so the numbers can be compared: received
//! messages and volume are the `<=` lines and their `S=`; delivered
//! "messages" are `=>` lines, "addresses" are `=>` and `->` lines, and the
//! delivered volume is the received size of the message for each `=>`
//! line; delayed and failed count messages with at least one `==` or `**`.

use std::collections::{BTreeMap, HashMap};

use deadpool_sqlite::rusqlite::{Connection, OptionalExtension, Params, params};
use serde::Serialize;

use super::{QueryError, Window};
use crate::store::repo::minute_of;
use crate::store::{Context, ResultExt};

/// Rows in each "top" list.
const TOP: usize = 10;

mod attempt_tally;
mod counts;
mod reason;
mod render;
mod tally;
#[cfg(test)]
mod tests;
mod whole;
mod window;
use attempt_tally::{AttemptRow, Attempts, Recipient};
pub use counts::LineCounts;
pub use render::render;
use tally::{Bounds, MessageRow, Messages, Rejections, to_u64};

/// The whole report; serialised as the `--json` output.
#[derive(Debug, Default, Serialize)]
pub struct Stats {
    /// The window's start, as given; `None`: from the first line.
    pub since: Option<String>,
    /// The window's end; `None`: to the last line.
    pub until: Option<String>,
    /// Lines in the window by kind, and what they name.
    #[serde(flatten)]
    pub counts: LineCounts,
    /// eximstats' grand total summary.
    pub totals: Totals,
    /// Deliveries (`=>`) per transport, with their volume.
    pub by_transport: Vec<Row>,
    /// Messages received per hour of the day (0 to 23).
    pub received_per_hour: Vec<u64>,
    /// Deliveries (`=>` and `->`) per hour of the day.
    pub delivered_per_hour: Vec<u64>,
    /// Senders with the most messages.
    pub top_senders: Vec<Row>,
    /// Hosts that sent the most messages.
    pub top_sending_hosts: Vec<Row>,
    /// Domains that received the most deliveries.
    pub top_recipient_domains: Vec<Row>,
    /// Rejections, most frequent reason first.
    pub rejections_by_reason: Vec<Row>,
    /// Rejections, most rejected address first.
    pub rejections_by_ip: Vec<Row>,
    /// Deferral and failure errors, most frequent first.
    pub errors: Vec<Row>,
    /// Time from reception to completion, per bucket.
    pub queue_times: Vec<Row>,
    /// Time each delivery took, per bucket.
    pub delivery_times: Vec<Row>,
    /// Messages by current status.
    pub message_status: BTreeMap<String, u64>,
}

/// eximstats' grand totals.
#[derive(Debug, Default, Serialize)]
pub struct Totals {
    /// Messages received (`<=` lines).
    pub received_messages: u64,
    /// Bytes received (their `S=`).
    pub received_volume: u64,
    /// Distinct hosts that sent them.
    pub received_hosts: u64,
    /// Received messages with at least one deferral.
    pub delayed_messages: u64,
    /// Received messages with at least one failure.
    pub failed_messages: u64,
    /// `=>` lines.
    pub delivered_messages: u64,
    /// `=>` and `->` lines.
    pub delivered_addresses: u64,
    /// Bytes delivered: the message size for each `=>` line.
    pub delivered_volume: u64,
    /// Permanent rejections.
    pub rejected_messages: u64,
    /// Distinct hosts rejected.
    pub rejected_hosts: u64,
}

/// One line of a ranked list.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Row {
    /// What is counted: an address, a host, a reason...
    pub key: String,
    /// How often.
    pub count: u64,
    /// Bytes, where the list has a volume.
    pub volume: Option<u64>,
}

/// Lines per kind, all of them or those logged from `since` to `until`.
/// Whole minutes come from the per-minute counts; the part-minutes at a
/// window's ends are counted exactly by reading their lines.
fn kind_counts(
    conn: &Connection,
    window: Option<(i64, i64)>,
) -> Result<BTreeMap<String, u64>, QueryError> {
    let Some((since, until)) = window else {
        // Lines without a timestamp (continuations, foreign lines) too.
        return counts_by_kind(conn, i64::MIN, i64::MAX);
    };
    let first_whole = minute_of(Some(since.saturating_add(59_999)));
    let after_whole = minute_of(Some(until.saturating_add(1)));
    let (mut kinds, edges) = if first_whole < after_whole {
        let kinds = counts_by_kind(conn, first_whole, after_whole - 1)?;
        (kinds, [(since, first_whole - 1), (after_whole, until)])
    } else {
        (BTreeMap::new(), [(since, until), (1, 0)])
    };
    for (from, to) in edges.into_iter().filter(|(from, to)| from <= to) {
        for line in crate::store::repo::lines_between(conn, from, to)? {
            let kind = crate::parse::parse_line(&line.bytes).kind().name();
            *kinds.entry(kind.to_owned()).or_default() += 1;
        }
    }
    Ok(kinds)
}

/// `SELECT kind, sum(lines) ... GROUP BY kind`, summed here: SQLite
/// would sort every per-minute row first.
fn counts_by_kind(
    conn: &Connection,
    from_minute: i64,
    to_minute: i64,
) -> Result<BTreeMap<String, u64>, QueryError> {
    let mut statement = conn
        .prepare_cached("SELECT kind, lines FROM line_counts WHERE minute_ms BETWEEN ?1 AND ?2")
        .ctx(context)?;
    let mut rows = statement
        .query(params![from_minute, to_minute])
        .ctx(context)?;
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    while let Some(row) = rows.next().ctx(context)? {
        let kind = row.get_ref(0).and_then(|v| Ok(v.as_str()?)).ctx(context)?;
        let lines = to_u64(row.get(1).ctx(context)?);
        match kinds.get_mut(kind) {
            Some(count) => *count += lines,
            None => {
                kinds.insert(kind.to_owned(), lines);
            }
        }
    }
    Ok(kinds)
}

/// Computes the report for `window`: each table read once and its rows
/// counted by [`tally`]; a window through its time indexes
/// ([`window`]), the whole database in plain scans ([`whole`]).
pub fn compute(conn: &Connection, window: Window) -> Result<Stats, QueryError> {
    let (since, until) = window.sql_bounds();
    let bounds = Bounds { since, until };
    let read = if window.since.is_none() && window.until.is_none() {
        whole::read(conn, bounds)?
    } else {
        window::read(conn, bounds)?
    };
    made_from(conn, window, read)
}

/// What the report is made from: the lines per kind and the tallies of
/// the tables.
struct Read {
    kinds: BTreeMap<String, u64>,
    rejections: Rejections,
    messages: Messages,
    attempts: Attempts,
}

/// The report for `window` from what was read for it, naming texts
/// through `conn`.
fn made_from(conn: &Connection, window: Window, read: Read) -> Result<Stats, QueryError> {
    let Read {
        kinds,
        rejections,
        messages,
        mut attempts,
    } = read;
    let counts = LineCounts::from_kinds(kinds, rejections.permanent, rejections.temporary);
    let mut texts = Texts::new(conn)?;
    Ok(Stats {
        since: window.since.map(super::format_ms),
        until: window.until.map(super::format_ms),
        totals: Totals {
            received_messages: counts.received,
            received_volume: messages.received.bytes,
            received_hosts: messages.received_hosts(),
            delayed_messages: messages.delayed,
            failed_messages: messages.failed,
            delivered_messages: counts.delivered_messages(),
            delivered_addresses: counts.delivered,
            delivered_volume: attempts.delivered.bytes,
            rejected_messages: rejections.permanent,
            rejected_hosts: rejections.rejected_hosts(),
        },
        by_transport: attempts.by_transport(|id| texts.get(id))?,
        received_per_hour: messages.received_per_hour.to_vec(),
        delivered_per_hour: attempts.delivered_per_hour.to_vec(),
        top_senders: messages.top_senders(),
        top_sending_hosts: messages.top_sending_hosts(|id| texts.get(id))?,
        top_recipient_domains: attempts.top_recipient_domains(),
        rejections_by_reason: rejections.by_reason(),
        rejections_by_ip: rejections.by_ip(),
        errors: attempts.errors(|id| texts.get(id))?,
        queue_times: messages.queue_times.rows(),
        delivery_times: attempts.delivery_times.rows(),
        message_status: messages.status,
        counts,
    })
}

const REJECTIONS_SQL: &str = "SELECT temporary, reason, host_ip, rejected_ms FROM rejections";
/// From rejections_time.
const REJECTIONS_WINDOW_SQL: &str = "SELECT temporary, reason, host_ip, rejected_ms
    FROM rejections WHERE rejected_ms BETWEEN ?1 AND ?2";

/// The rejections in `bounds` (`whole`: all of them, in a plain scan).
fn read_rejections(
    conn: &Connection,
    bounds: Bounds,
    whole: bool,
) -> Result<Rejections, QueryError> {
    let mut rejections = Rejections::default();
    let mut add = |row: &deadpool_sqlite::rusqlite::Row<'_>| {
        if bounds.hold(row.get(3)?) {
            rejections.add(
                row.get::<_, i64>(0)? != 0,
                row.get_ref(1)?.as_str_or_null()?,
                row.get_ref(2)?.as_str_or_null()?,
            );
        }
        Ok(())
    };
    if whole {
        each_row(conn, REJECTIONS_SQL, [], &mut add)?;
    } else {
        each_row(
            conn,
            REJECTIONS_WINDOW_SQL,
            [bounds.since, bounds.until],
            &mut add,
        )?;
    }
    Ok(rejections)
}

/// The message columns [`message_row`] reads, for `SELECT ... FROM
/// messages`.
const MESSAGE_COLUMNS: &str = "id, received_ms, sender, size, host_ip,
    coalesce(host_name_id, helo_id), status, completed_ms, last_event_ms, had_deferral,
    had_failure";

fn message_row<'r>(
    row: &'r deadpool_sqlite::rusqlite::Row<'r>,
) -> deadpool_sqlite::rusqlite::Result<MessageRow<'r>> {
    // Only the columns the tally reads for this row (see attempt_row).
    let received_ms: Option<i64> = row.get(1)?;
    let host_ip = row.get_ref(4)?.as_str_or_null()?;
    let status = row.get_ref(6)?.as_str()?;
    Ok(MessageRow {
        id: row.get(0)?,
        received_ms,
        sender: row.get_ref(2)?.as_str_or_null()?,
        size: row.get(3)?,
        host_ip,
        host_name_id: if host_ip.is_some() { row.get(5)? } else { None },
        status,
        completed_ms: if status == "completed" {
            row.get(7)?
        } else {
            None
        },
        last_event_ms: if received_ms.is_none() {
            row.get(8)?
        } else {
            None
        },
        had_deferral: row.get(9)?,
        had_failure: row.get(10)?,
    })
}

/// The attempt columns [`attempt_row`] reads, as `a.*`; a query adds
/// what it knows of the message and recipient after them.
const ATTEMPT_COLUMNS: &str = "a.message_id, a.flag, a.attempted_ms, a.transport_id,
    a.delivery_time_ms, a.error_text_id, a.error_address_at, a.final_address";

/// [`ATTEMPT_COLUMNS`] of the first attempt a recipient's row holds.
const HELD_ATTEMPT_COLUMNS: &str = "r.message_id, r.attempt_flag, r.attempt_ms,
    r.attempt_transport_id, r.attempt_delivery_time_ms, r.attempt_error_text_id,
    r.attempt_error_address_at, r.attempt_final_address";

fn attempt_row<'r>(
    row: &'r deadpool_sqlite::rusqlite::Row<'r>,
    size: Option<i64>,
    recipient: Recipient<'r>,
) -> deadpool_sqlite::rusqlite::Result<AttemptRow<'r>> {
    // Only the columns the tally reads for this flag: most rows are
    // deliveries, and a column read costs as much as the rest of the row.
    let flag = row.get_ref(1)?.as_str()?;
    let delivered = attempt_tally::is_delivered(flag);
    let error_address_at = if delivered { None } else { row.get(6)? };
    Ok(AttemptRow {
        flag,
        attempted_ms: row.get(2)?,
        transport_id: if flag == "=>" { row.get(3)? } else { None },
        delivery_time_ms: if delivered { row.get(4)? } else { None },
        error_text_id: if delivered { None } else { row.get(5)? },
        error_address_at,
        final_address: match error_address_at {
            Some(_) => row.get_ref(7)?.as_str_or_null()?,
            None => None,
        },
        size,
        recipient,
    })
}

/// Runs `sql` with `params` and hands each row to `each`.
fn each_row(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    mut each: impl FnMut(&deadpool_sqlite::rusqlite::Row<'_>) -> deadpool_sqlite::rusqlite::Result<()>,
) -> Result<(), QueryError> {
    let mut statement = conn.prepare_cached(sql).ctx(context)?;
    let mut rows = statement.query(params).ctx(context)?;
    while let Some(row) = rows.next().ctx(context)? {
        each(row).ctx(context)?;
    }
    Ok(())
}

/// The texts the report names (transports, errors, host names), each
/// looked up once.
struct Texts<'c> {
    statement: deadpool_sqlite::rusqlite::CachedStatement<'c>,
    known: HashMap<i64, Option<String>>,
}

impl<'c> Texts<'c> {
    fn new(conn: &'c Connection) -> Result<Self, QueryError> {
        Ok(Texts {
            statement: conn
                .prepare_cached("SELECT text FROM texts WHERE id = ?1")
                .ctx(context)?,
            known: HashMap::new(),
        })
    }

    fn get(&mut self, id: i64) -> Result<Option<String>, QueryError> {
        if let Some(text) = self.known.get(&id) {
            return Ok(text.clone());
        }
        let text: Option<String> = self
            .statement
            .query_row([id], |row| row.get(0))
            .optional()
            .ctx(context)?;
        self.known.insert(id, text.clone());
        Ok(text)
    }
}

fn context() -> Context {
    Context::op("compute statistics")
}
