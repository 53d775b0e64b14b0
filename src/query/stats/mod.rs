//! `exim-pilot stats`: the eximstats report, from the database.
//!
//! Counting follows eximstats so the numbers can be compared: received
//! messages and volume are the `<=` lines and their `S=`; delivered
//! "messages" are `=>` lines, "addresses" are `=>` and `->` lines, and the
//! delivered volume is the received size of the message for each `=>`
//! line; delayed and failed count messages with at least one `==` or `**`.

use std::collections::BTreeMap;

use deadpool_sqlite::rusqlite::{Connection, params};
use serde::Serialize;

use super::{QueryError, Window};
use crate::store::repo::minute_of;
use crate::store::{Context, ResultExt};

/// Rows in each "top" list.
const TOP: usize = 10;

mod render;
pub use render::render;

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

fn counts_by_kind(
    conn: &Connection,
    from_minute: i64,
    to_minute: i64,
) -> Result<BTreeMap<String, u64>, QueryError> {
    Ok(rows(
        conn,
        "SELECT kind, sum(lines) FROM line_counts WHERE minute_ms BETWEEN ?1 AND ?2 GROUP BY kind",
        from_minute,
        to_minute,
    )?
    .into_iter()
    .map(|row| (row.key, row.count))
    .collect())
}

/// Computes the report for `window`.
pub fn compute(conn: &Connection, window: Window) -> Result<Stats, QueryError> {
    let (since, until) = window.sql_bounds();
    let windowed = window.since.is_some() || window.until.is_some();
    let mut stats = Stats {
        since: window.since.map(super::format_ms),
        until: window.until.map(super::format_ms),
        ..Stats::default()
    };
    line_totals(conn, &mut stats, windowed, (since, until))?;
    grand_totals(conn, &mut stats, (since, until))?;
    lists(conn, &mut stats, (since, until))?;
    top_lists(conn, &mut stats, (since, until))?;
    message_status(conn, &mut stats, windowed, (since, until))?;
    Ok(stats)
}

/// Events counted from the lines themselves, and rejections.
fn line_totals(
    conn: &Connection,
    stats: &mut Stats,
    windowed: bool,
    (since, until): (i64, i64),
) -> Result<(), QueryError> {
    stats.kinds = kind_counts(conn, windowed.then_some((since, until)))?;
    let kind = |name: &str| stats.kinds.get(name).copied().unwrap_or(0);
    stats.lines = stats.kinds.values().sum();
    stats.received = kind("reception") + kind("fake_reject");
    stats.delivered = kind("delivery") + kind("delivery_more");
    stats.deferred = kind("deferral");
    stats.bounced = kind("failure");
    stats.completed = kind("completed");
    stats.frozen = kind("frozen");
    stats.unrecognised = kind("unrecognised");
    stats.rejected = scalar(
        conn,
        "SELECT count(*) FROM rejections WHERE temporary = 0 AND rejected_ms BETWEEN ?1 AND ?2",
        since,
        until,
    )?;
    stats.temporarily_rejected = scalar(
        conn,
        "SELECT count(*) FROM rejections WHERE temporary = 1 AND rejected_ms BETWEEN ?1 AND ?2",
        since,
        until,
    )?;

    Ok(())
}

/// eximstats' "Grand total summary".
fn grand_totals(
    conn: &Connection,
    stats: &mut Stats,
    (since, until): (i64, i64),
) -> Result<(), QueryError> {
    let totals = &mut stats.totals;
    totals.received_messages = stats.received;
    totals.received_volume = scalar(
        conn,
        "SELECT coalesce(sum(size), 0) FROM messages WHERE received_ms BETWEEN ?1 AND ?2",
        since,
        until,
    )?;
    totals.received_hosts = scalar(
        conn,
        "SELECT count(DISTINCT host_ip) FROM messages WHERE received_ms BETWEEN ?1 AND ?2",
        since,
        until,
    )?;
    totals.delayed_messages = scalar(
        conn,
        "SELECT count(*) FROM messages m WHERE m.received_ms BETWEEN ?1 AND ?2
           AND EXISTS (SELECT 1 FROM attempts a WHERE a.message_id = m.id AND a.outcome = 'deferred')",
        since,
        until,
    )?;
    totals.failed_messages = scalar(
        conn,
        "SELECT count(*) FROM messages m WHERE m.received_ms BETWEEN ?1 AND ?2
           AND EXISTS (SELECT 1 FROM attempts a WHERE a.message_id = m.id AND a.outcome = 'failed')",
        since,
        until,
    )?;
    totals.delivered_messages = stats.kinds.get("delivery").copied().unwrap_or(0);
    totals.delivered_addresses = stats.delivered;
    totals.delivered_volume = scalar(
        conn,
        "SELECT coalesce(sum(m.size), 0) FROM attempts a JOIN messages m ON m.id = a.message_id
         WHERE a.flag = '=>' AND a.attempted_ms BETWEEN ?1 AND ?2",
        since,
        until,
    )?;
    totals.rejected_messages = stats.rejected;
    totals.rejected_hosts = scalar(
        conn,
        "SELECT count(DISTINCT host_ip) FROM rejections WHERE temporary = 0 AND rejected_ms BETWEEN ?1 AND ?2",
        since,
        until,
    )?;

    Ok(())
}

/// Per transport, per hour, and the time distributions.
fn lists(
    conn: &Connection,
    stats: &mut Stats,
    (since, until): (i64, i64),
) -> Result<(), QueryError> {
    stats.by_transport = rows(
        conn,
        "SELECT coalesce(t.text, '(none)'), count(*), coalesce(sum(m.size), 0)
         FROM attempts a JOIN messages m ON m.id = a.message_id
         LEFT JOIN texts t ON t.id = a.transport_id
         WHERE a.flag = '=>' AND a.attempted_ms BETWEEN ?1 AND ?2
         GROUP BY 1 ORDER BY 2 DESC, 1",
        since,
        until,
    )?;
    stats.received_per_hour = per_hour(
        conn,
        "SELECT (received_ms / 3600000) % 24, count(*) FROM messages WHERE received_ms BETWEEN ?1 AND ?2 GROUP BY 1",
        since,
        until,
    )?;
    stats.delivered_per_hour = per_hour(
        conn,
        "SELECT (attempted_ms / 3600000) % 24, count(*) FROM attempts
         WHERE flag IN ('=>', '->') AND attempted_ms BETWEEN ?1 AND ?2 GROUP BY 1",
        since,
        until,
    )?;
    stats.queue_times = buckets(
        conn,
        "SELECT completed_ms - received_ms FROM messages WHERE status = 'completed' AND received_ms IS NOT NULL AND completed_ms BETWEEN ?1 AND ?2",
        since,
        until,
    )?;
    stats.delivery_times = buckets(
        conn,
        "SELECT delivery_time_ms FROM attempts WHERE outcome = 'delivered' AND delivery_time_ms IS NOT NULL AND attempted_ms BETWEEN ?1 AND ?2",
        since,
        until,
    )?;
    Ok(())
}

/// The top lists: senders, sending hosts, recipient domains, rejections
/// and errors.
fn top_lists(
    conn: &Connection,
    stats: &mut Stats,
    (since, until): (i64, i64),
) -> Result<(), QueryError> {
    stats.top_senders = top(
        conn,
        "SELECT sender, count(*), coalesce(sum(size), 0) FROM messages WHERE received_ms BETWEEN ?1 AND ?2 AND sender IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 3 DESC, 1 LIMIT ?3",
        since,
        until,
    )?;
    stats.top_sending_hosts = top(
        conn,
        "SELECT coalesce((SELECT text FROM texts WHERE id = coalesce(host_name_id, helo_id)), '')
                || ' [' || host_ip || ']', count(*), coalesce(sum(size), 0)
         FROM messages WHERE received_ms BETWEEN ?1 AND ?2 AND host_ip IS NOT NULL
         GROUP BY host_ip ORDER BY 2 DESC, 3 DESC, 1 LIMIT ?3",
        since,
        until,
    )?;
    stats.top_recipient_domains = top(
        conn,
        "SELECT lower(substr(r.address, instr(r.address, '@') + 1)), count(*), coalesce(sum(m.size), 0)
         FROM attempts a JOIN recipients r ON r.id = a.recipient_id JOIN messages m ON m.id = a.message_id
         WHERE a.outcome = 'delivered' AND instr(r.address, '@') > 0 AND a.attempted_ms BETWEEN ?1 AND ?2
         GROUP BY 1 ORDER BY 2 DESC, 3 DESC, 1 LIMIT ?3",
        since,
        until,
    )?;
    stats.rejections_by_reason = top(
        conn,
        "SELECT reason, count(*), NULL FROM rejections WHERE rejected_ms BETWEEN ?1 AND ?2 GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ?3",
        since,
        until,
    )?;
    stats.rejections_by_ip = top(
        conn,
        "SELECT coalesce(host_ip, '(local)'), count(*), NULL FROM rejections WHERE rejected_ms BETWEEN ?1 AND ?2 GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ?3",
        since,
        until,
    )?;
    stats.errors = top(
        conn,
        // The view puts each recipient's address back into its error.
        "SELECT coalesce(error_text, '(no message)'), count(*), NULL FROM delivery_attempts
         WHERE outcome IN ('deferred', 'failed') AND attempted_ms BETWEEN ?1 AND ?2
         GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ?3",
        since,
        until,
    )?;
    Ok(())
}

/// Messages by their current status.
fn message_status(
    conn: &Connection,
    stats: &mut Stats,
    windowed: bool,
    (since, until): (i64, i64),
) -> Result<(), QueryError> {
    let status_sql = if windowed {
        // Both terms from messages_received (NULLs sort first in it).
        "SELECT status, count(*) FROM messages
         WHERE received_ms BETWEEN ?1 AND ?2
            OR (received_ms IS NULL AND last_event_ms BETWEEN ?1 AND ?2)
         GROUP BY 1"
    } else {
        "SELECT status, count(*) FROM messages WHERE ?1 <= ?2 GROUP BY 1"
    };
    for row in rows(conn, status_sql, since, until)? {
        stats.message_status.insert(row.key, row.count);
    }
    Ok(())
}

fn context() -> Context {
    Context::op("compute statistics")
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn scalar(conn: &Connection, sql: &str, since: i64, until: i64) -> Result<u64, QueryError> {
    let value: i64 = conn
        .prepare_cached(sql)
        .ctx(context)?
        .query_row(params![since, until], |row| row.get(0))
        .ctx(context)?;
    Ok(to_u64(value))
}

/// `(key, count[, volume])` rows.
fn rows(conn: &Connection, sql: &str, since: i64, until: i64) -> Result<Vec<Row>, QueryError> {
    query_rows(conn, sql, params![since, until])
}

fn top(conn: &Connection, sql: &str, since: i64, until: i64) -> Result<Vec<Row>, QueryError> {
    query_rows(conn, sql, params![since, until, TOP as i64])
}

fn query_rows(
    conn: &Connection,
    sql: &str,
    values: impl deadpool_sqlite::rusqlite::Params,
) -> Result<Vec<Row>, QueryError> {
    let mut statement = conn.prepare_cached(sql).ctx(context)?;
    let columns = statement.column_count();
    let rows = statement
        .query_map(values, |row| {
            let key: Option<String> = row.get(0)?;
            let volume: Option<i64> = if columns > 2 { row.get(2)? } else { None };
            Ok(Row {
                key: key.unwrap_or_default(),
                count: to_u64(row.get(1)?),
                volume: volume.map(to_u64),
            })
        })
        .ctx(context)?;
    Ok(rows.collect::<Result<_, _>>().ctx(context)?)
}

fn per_hour(conn: &Connection, sql: &str, since: i64, until: i64) -> Result<Vec<u64>, QueryError> {
    let mut hours = vec![0u64; 24];
    let mut statement = conn.prepare_cached(sql).ctx(context)?;
    let rows = statement
        .query_map(params![since, until], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
        })
        .ctx(context)?;
    for row in rows {
        let (hour, count) = row.ctx(context)?;
        if let Some(slot) = usize::try_from(hour.rem_euclid(24))
            .ok()
            .and_then(|h| hours.get_mut(h))
        {
            *slot += to_u64(count);
        }
    }
    Ok(hours)
}

/// The duration buckets eximstats uses.
const BUCKETS: [(&str, i64); 9] = [
    ("under 1m", 60_000),
    ("1m-5m", 300_000),
    ("5m-15m", 900_000),
    ("15m-30m", 1_800_000),
    ("30m-1h", 3_600_000),
    ("1h-3h", 10_800_000),
    ("3h-6h", 21_600_000),
    ("6h-12h", 43_200_000),
    ("12h-1d", 86_400_000),
];

fn buckets(conn: &Connection, sql: &str, since: i64, until: i64) -> Result<Vec<Row>, QueryError> {
    let mut counts = vec![0u64; BUCKETS.len() + 1];
    let mut statement = conn.prepare_cached(sql).ctx(context)?;
    let rows = statement
        .query_map(params![since, until], |row| row.get::<_, i64>(0))
        .ctx(context)?;
    for row in rows {
        let ms = row.ctx(context)?;
        let index = BUCKETS
            .iter()
            .position(|(_, limit)| ms < *limit)
            .unwrap_or(BUCKETS.len());
        counts[index] += 1;
    }
    Ok(BUCKETS
        .iter()
        .map(|(name, _)| *name)
        .chain(std::iter::once("over 1d"))
        .zip(counts)
        .map(|(key, count)| Row {
            key: key.to_owned(),
            count,
            volume: None,
        })
        .collect())
}
