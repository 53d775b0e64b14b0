//! `exim-pilot stats`: the eximstats report, from the database.
//!
//! Counting follows eximstats so the numbers can be compared: received
//! messages and volume are the `<=` lines and their `S=`; delivered
//! "messages" are `=>` lines, "addresses" are `=>` and `->` lines, and the
//! delivered volume is the received size of the message for each `=>`
//! line; delayed and failed count messages with at least one `==` or `**`.

use std::collections::{BTreeMap, HashMap};

use deadpool_sqlite::rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::{QueryError, Window};
use crate::store::repo::minute_of;
use crate::store::{Context, ResultExt};

/// Rows in each "top" list.
const TOP: usize = 10;

mod render;
mod tally;
pub use render::render;
use tally::{AttemptRow, Attempts, Bounds, MessageRow, Messages, Recipient, Rejections, to_u64};

/// The whole report; serialised as the `--json` output.
#[derive(Debug, Default, Serialize)]
pub struct Stats {
    /// The window's start, as given; `None`: from the first line.
    pub since: Option<String>,
    /// The window's end; `None`: to the last line.
    pub until: Option<String>,
    /// Log lines in the window.
    pub lines: u64,
    /// `<=` lines.
    pub received: u64,
    /// `=>` and `->` lines.
    pub delivered: u64,
    /// `==` lines.
    pub deferred: u64,
    /// `**` lines.
    pub bounced: u64,
    /// `Completed` lines.
    pub completed: u64,
    /// Permanent SMTP rejections.
    pub rejected: u64,
    /// Temporary (4xx) SMTP rejections.
    pub temporarily_rejected: u64,
    /// `Frozen` lines.
    pub frozen: u64,
    /// Lines the parser did not recognise.
    pub unrecognised: u64,
    /// Lines per entry kind.
    pub kinds: BTreeMap<String, u64>,
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

/// Computes the report for `window`: each table read once (see
/// [`tally`]), a window through its time indexes, the whole database in
/// plain scans.
pub fn compute(conn: &Connection, window: Window) -> Result<Stats, QueryError> {
    let (since, until) = window.sql_bounds();
    let bounds = Bounds { since, until };
    let whole = window.since.is_none() && window.until.is_none();
    let mut stats = Stats {
        since: window.since.map(super::format_ms),
        until: window.until.map(super::format_ms),
        ..Stats::default()
    };
    line_totals(conn, &mut stats, (!whole).then_some((since, until)))?;

    let rejections = read_rejections(conn, bounds, whole)?;
    stats.rejected = rejections.permanent;
    stats.temporarily_rejected = rejections.temporary;
    stats.totals.rejected_messages = rejections.permanent;
    stats.totals.rejected_hosts = rejections.rejected_hosts();
    stats.rejections_by_reason = rejections.by_reason();
    stats.rejections_by_ip = rejections.by_ip();

    let mut texts = Texts::new(conn)?;
    let (messages, mut attempts) = if whole {
        let mut sizes = Sizes::of(conn)?;
        let messages = read_messages(conn, bounds, true, Some(&mut sizes))?;
        let attempts = read_all_attempts(conn, bounds, &mut sizes)?;
        stats.totals.delayed_messages = sizes.received_with(DEFERRED);
        stats.totals.failed_messages = sizes.received_with(FAILED);
        (messages, attempts)
    } else {
        let mut messages = read_messages(conn, bounds, false, None)?;
        read_queue_times(conn, bounds, &mut messages)?;
        let (delayed, failed) = delayed_and_failed(conn, bounds)?;
        stats.totals.delayed_messages = delayed;
        stats.totals.failed_messages = failed;
        (messages, read_window_attempts(conn, bounds)?)
    };

    let totals = &mut stats.totals;
    totals.received_messages = stats.received;
    totals.received_volume = messages.received.bytes;
    totals.received_hosts = messages.received_hosts();
    totals.delivered_messages = stats.kinds.get("delivery").copied().unwrap_or(0);
    totals.delivered_addresses = stats.delivered;
    totals.delivered_volume = attempts.delivered.bytes;
    stats.received_per_hour = messages.received_per_hour.to_vec();
    stats.delivered_per_hour = attempts.delivered_per_hour.to_vec();
    stats.queue_times = messages.queue_times.rows();
    stats.delivery_times = attempts.delivery_times.rows();
    stats.top_senders = messages.top_senders();
    stats.top_sending_hosts = messages.top_sending_hosts(|id| texts.get(id))?;
    stats.by_transport = attempts.by_transport(|id| texts.get(id))?;
    stats.top_recipient_domains = attempts.top_recipient_domains();
    stats.errors = attempts.errors(|id| texts.get(id))?;
    stats.message_status = messages.status;
    Ok(stats)
}

/// Events counted from the per-minute line counts.
fn line_totals(
    conn: &Connection,
    stats: &mut Stats,
    window: Option<(i64, i64)>,
) -> Result<(), QueryError> {
    stats.kinds = kind_counts(conn, window)?;
    let kind = |name: &str| stats.kinds.get(name).copied().unwrap_or(0);
    stats.lines = stats.kinds.values().sum();
    stats.received = kind("reception") + kind("fake_reject");
    stats.delivered = kind("delivery") + kind("delivery_more");
    stats.deferred = kind("deferral");
    stats.bounced = kind("failure");
    stats.completed = kind("completed");
    stats.frozen = kind("frozen");
    stats.unrecognised = kind("unrecognised");
    Ok(())
}

fn read_rejections(
    conn: &Connection,
    bounds: Bounds,
    whole: bool,
) -> Result<Rejections, QueryError> {
    let sql = if whole {
        "SELECT temporary, reason, host_ip, rejected_ms FROM rejections"
    } else {
        "SELECT temporary, reason, host_ip, rejected_ms FROM rejections
         WHERE rejected_ms BETWEEN ?1 AND ?2"
    };
    let mut rejections = Rejections::default();
    each_row(conn, sql, bounds, whole, |row| {
        if bounds.hold(row.get(3)?) {
            rejections.add(
                row.get::<_, i64>(0)? != 0,
                row.get_ref(1)?.as_str_or_null()?,
                row.get_ref(2)?.as_str_or_null()?,
            );
        }
        Ok(())
    })?;
    Ok(rejections)
}

/// Per message of the whole database, by id: its size, whether it was
/// received, deferred or failed; for the volume of each delivery and the
/// delayed and failed totals without a join per attempt.
struct Sizes {
    first: i64,
    sizes: Vec<Option<i64>>,
    flags: Vec<u8>,
}

const RECEIVED: u8 = 1;
const DEFERRED: u8 = 2;
const FAILED: u8 = 4;

impl Sizes {
    fn of(conn: &Connection) -> Result<Sizes, QueryError> {
        let (first, last): (Option<i64>, Option<i64>) = conn
            .query_row(
                "SELECT (SELECT min(id) FROM messages), (SELECT max(id) FROM messages)",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .ctx(context)?;
        let (first, last) = (first.unwrap_or(0), last.unwrap_or(-1));
        let len = usize::try_from(last.saturating_sub(first).saturating_add(1)).unwrap_or(0);
        Ok(Sizes {
            first,
            sizes: vec![None; len],
            flags: vec![0; len],
        })
    }

    fn index(&self, id: i64) -> Option<usize> {
        usize::try_from(id.checked_sub(self.first)?)
            .ok()
            .filter(|index| *index < self.flags.len())
    }

    fn mark(&mut self, id: i64, flag: u8) {
        if let Some(index) = self.index(id) {
            self.flags[index] |= flag;
        }
    }

    fn size(&self, id: i64) -> Option<i64> {
        self.index(id).and_then(|index| self.sizes[index])
    }

    /// Received messages with `flag` set.
    fn received_with(&self, flag: u8) -> u64 {
        self.flags
            .iter()
            .filter(|flags| **flags & (RECEIVED | flag) == RECEIVED | flag)
            .count() as u64
    }
}

fn read_messages(
    conn: &Connection,
    bounds: Bounds,
    whole: bool,
    mut sizes: Option<&mut Sizes>,
) -> Result<Messages, QueryError> {
    const COLUMNS: &str = "SELECT id, received_ms, sender, size, host_ip,
        coalesce(host_name_id, helo_id), status, completed_ms, last_event_ms FROM messages";
    let sql = if whole {
        COLUMNS.to_owned()
    } else {
        // Both terms from messages_received (NULLs sort first in it).
        format!(
            "{COLUMNS} WHERE received_ms BETWEEN ?1 AND ?2
               OR (received_ms IS NULL AND last_event_ms BETWEEN ?1 AND ?2)"
        )
    };
    let mut messages = Messages::default();
    each_row(conn, &sql, bounds, whole, |row| {
        let message = MessageRow {
            id: row.get(0)?,
            received_ms: row.get(1)?,
            sender: row.get_ref(2)?.as_str_or_null()?,
            size: row.get(3)?,
            host_ip: row.get_ref(4)?.as_str_or_null()?,
            host_name_id: row.get(5)?,
            status: row.get_ref(6)?.as_str()?,
            completed_ms: row.get(7)?,
            last_event_ms: row.get(8)?,
        };
        messages.add(&message, bounds, whole);
        if let Some(sizes) = sizes.as_deref_mut()
            && let Some(index) = sizes.index(message.id)
        {
            sizes.sizes[index] = message.size;
            if bounds.hold(message.received_ms) {
                sizes.flags[index] |= RECEIVED;
            }
        }
        Ok(())
    })?;
    Ok(messages)
}

/// A window's queue times: messages completed in it, wherever received.
fn read_queue_times(
    conn: &Connection,
    bounds: Bounds,
    messages: &mut Messages,
) -> Result<(), QueryError> {
    each_row(
        conn,
        "SELECT completed_ms - received_ms FROM messages
         WHERE status = 'completed' AND received_ms IS NOT NULL AND completed_ms BETWEEN ?1 AND ?2",
        bounds,
        false,
        |row| {
            messages.queue_times.add(row.get(0)?);
            Ok(())
        },
    )
}

/// A window's messages with at least one deferral, and with at least one
/// failure (at any time): answered from `attempts_message`, which holds
/// the flags.
fn delayed_and_failed(conn: &Connection, bounds: Bounds) -> Result<(u64, u64), QueryError> {
    let (delayed, failed): (Option<i64>, Option<i64>) = conn
        .prepare_cached(
            "SELECT sum(EXISTS (SELECT 1 FROM attempts a WHERE a.message_id = m.id AND a.flag = '==')),
                    sum(EXISTS (SELECT 1 FROM attempts a WHERE a.message_id = m.id AND a.flag = '**'))
             FROM messages m WHERE m.received_ms BETWEEN ?1 AND ?2",
        )
        .ctx(context)?
        .query_row(params![bounds.since, bounds.until], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .ctx(context)?;
    Ok((delayed.map_or(0, to_u64), failed.map_or(0, to_u64)))
}

const ATTEMPT_COLUMNS: &str = "a.message_id, a.flag, a.attempted_ms, a.transport_id,
    a.delivery_time_ms, a.error_text_id, a.error_address_at, a.final_address";

fn attempt_row<'r>(
    row: &'r deadpool_sqlite::rusqlite::Row<'r>,
    size: Option<i64>,
    recipient: Recipient<'r>,
) -> deadpool_sqlite::rusqlite::Result<AttemptRow<'r>> {
    // Only the columns the tally reads for this flag: most rows are
    // deliveries, and a column read costs as much as the rest of the row.
    let flag = row.get_ref(1)?.as_str()?;
    let delivered = flag != "==" && flag != "**";
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

/// A window's attempts, with their messages' sizes and recipients'
/// addresses joined in (few rows: a join per row is cheap).
fn read_window_attempts(conn: &Connection, bounds: Bounds) -> Result<Attempts, QueryError> {
    let sql = format!(
        "SELECT {ATTEMPT_COLUMNS}, m.size, r.address FROM attempts a
         LEFT JOIN messages m ON m.id = a.message_id
         LEFT JOIN recipients r ON r.id = a.recipient_id
         WHERE a.attempted_ms BETWEEN ?1 AND ?2"
    );
    let mut attempts = Attempts::default();
    each_row(conn, &sql, bounds, false, |row| {
        let recipient = match row.get_ref(9)?.as_str_or_null()? {
            Some(address) => Recipient::Address(address),
            None => Recipient::None,
        };
        let attempt = attempt_row(row, row.get(8)?, recipient)?;
        attempts.add(&attempt, bounds);
        Ok(())
    })?;
    Ok(attempts)
}

/// Every attempt, sizes from `sizes`, then the recipients they wait for
/// in one more scan: joins would cost a lookup per row.
fn read_all_attempts(
    conn: &Connection,
    bounds: Bounds,
    sizes: &mut Sizes,
) -> Result<Attempts, QueryError> {
    let (first, last): (Option<i64>, Option<i64>) = conn
        .query_row(
            "SELECT (SELECT min(id) FROM recipients), (SELECT max(id) FROM recipients)",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .ctx(context)?;
    let (first, last) = (first.unwrap_or(0), last.unwrap_or(-1));
    let mut attempts = Attempts::with_recipients(first, last);
    let sql = format!("SELECT {ATTEMPT_COLUMNS}, a.recipient_id FROM attempts a");
    each_row(conn, &sql, bounds, true, |row| {
        let recipient = match row.get(8)? {
            Some(id) => Recipient::Later(id),
            None => Recipient::None,
        };
        let message_id: i64 = row.get(0)?;
        let attempt = attempt_row(row, sizes.size(message_id), recipient)?;
        match attempt.flag {
            "==" => sizes.mark(message_id, DEFERRED),
            "**" => sizes.mark(message_id, FAILED),
            _ => {}
        }
        attempts.add(&attempt, bounds);
        Ok(())
    })?;
    if attempts.waits_for_recipients() {
        each_row(
            conn,
            // In id order: a covering index on the addresses would do too,
            // and then each lookup above would miss its cache lines.
            "SELECT id, address FROM recipients ORDER BY id",
            bounds,
            true,
            |row| {
                attempts.recipient(row.get(0)?, row.get_ref(1)?.as_str()?);
                Ok(())
            },
        )?;
    }
    Ok(attempts)
}

/// Runs `sql` (with the window's bounds as ?1 and ?2 unless `whole`) and
/// hands each row to `each`.
fn each_row(
    conn: &Connection,
    sql: &str,
    bounds: Bounds,
    whole: bool,
    mut each: impl FnMut(&deadpool_sqlite::rusqlite::Row<'_>) -> Result<(), FromRowError>,
) -> Result<(), QueryError> {
    let mut statement = conn.prepare_cached(sql).ctx(context)?;
    let mut rows = if whole {
        statement.query([])
    } else {
        statement.query(params![bounds.since, bounds.until])
    }
    .ctx(context)?;
    while let Some(row) = rows.next().ctx(context)? {
        each(row).map_err(|error| error.0).ctx(context)?;
    }
    Ok(())
}

/// A column that could not be read as the report needs it.
struct FromRowError(deadpool_sqlite::rusqlite::Error);

impl From<deadpool_sqlite::rusqlite::Error> for FromRowError {
    fn from(error: deadpool_sqlite::rusqlite::Error) -> Self {
        FromRowError(error)
    }
}

impl From<deadpool_sqlite::rusqlite::types::FromSqlError> for FromRowError {
    fn from(error: deadpool_sqlite::rusqlite::types::FromSqlError) -> Self {
        FromRowError(error.into())
    }
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
