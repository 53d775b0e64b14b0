//! Mail flow over time: received, delivered, deferred, bounced and
//! rejected lines per hour (or per minute, for a window of a few hours),
//! from the per-minute line counts, and Exim's queue size at the end of
//! each bucket, from the daemon's counts (`queue_samples`). Read-only;
//! what the web view charts.

use deadpool_sqlite::rusqlite::{Connection, params};
use serde::Serialize;

use super::{QueryError, Window, format_ms};
use crate::queue::listing::QueueSize;
use crate::store::repo::newest_line_ms;
use crate::store::{Context, ResultExt};

/// Windows up to this long are counted per minute; longer ones per hour.
const MINUTES_UP_TO_MS: i64 = 6 * 3600 * 1000;

/// Buckets in one answer, at most (a year of hours): bounds the work and
/// the page.
pub const MAX_BUCKETS: i64 = 366 * 24;

/// The series of the chart, by the kinds counted in each.
pub const SERIES: [(&str, &[&str]); 5] = [
    ("received", &["reception"]),
    ("delivered", &["delivery", "delivery_more", "cutthrough"]),
    ("deferred", &["deferral"]),
    ("bounced", &["failure"]),
    ("rejected", &["rejection"]),
];

/// One bucket of time.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Bucket {
    /// When it starts, in the log's clock.
    pub start: String,
    /// Lines of each series, in [`SERIES`] order.
    pub counts: [u64; SERIES.len()],
    /// Exim's queue as last counted in the bucket; `None` when it was not
    /// counted then (no queue helper, or the daemon was not running).
    pub queue: Option<QueueSize>,
}

/// The flow over a window.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Flow {
    /// `minute` or `hour`.
    pub step: &'static str,
    /// The series' names, in the order of each bucket's counts.
    pub series: Vec<&'static str>,
    /// Every bucket from the window's start to its end, empty ones too.
    pub buckets: Vec<Bucket>,
}

/// Fills each bucket's queue size with the last count taken in it (SQLite
/// takes a bare column from the row of the `max()`).
fn queue_sizes(
    conn: &Connection,
    first: i64,
    until: i64,
    step_ms: i64,
    buckets: &mut [Bucket],
) -> Result<(), QueryError> {
    let context = || Context::op("read the queue sizes").table("queue_samples");
    let mut statement = conn
        .prepare_cached(
            "SELECT (at_ms - ?1) / ?3, max(at_ms), messages, frozen FROM queue_samples
             WHERE at_ms >= ?1 AND at_ms < ?2 + ?3 GROUP BY 1",
        )
        .ctx(context)?;
    let mut rows = statement
        .query(params![first, until, step_ms])
        .ctx(context)?;
    while let Some(row) = rows.next().ctx(context)? {
        let index: i64 = row.get(0).ctx(context)?;
        let messages: i64 = row.get(2).ctx(context)?;
        let frozen: i64 = row.get(3).ctx(context)?;
        if let Some(bucket) = usize::try_from(index).ok().and_then(|i| buckets.get_mut(i)) {
            bucket.queue = Some(QueueSize {
                messages: u64::try_from(messages).unwrap_or(0),
                frozen: u64::try_from(frozen).unwrap_or(0),
            });
        }
    }
    Ok(())
}

/// The flow over `window`; an open start is the window's end less a day,
/// an open end the newest line. Too many buckets is a bad argument.
pub fn compute(conn: &Connection, window: Window) -> Result<Flow, QueryError> {
    let newest = newest_line_ms(conn)?.unwrap_or(0);
    let until = window.until.unwrap_or(newest);
    let since = window.since.unwrap_or(until - 24 * 3600 * 1000);
    let step_ms: i64 = if until - since <= MINUTES_UP_TO_MS {
        60_000
    } else {
        3_600_000
    };
    let first = since.div_euclid(step_ms) * step_ms;
    let count = (until - first).div_euclid(step_ms) + 1;
    if count > MAX_BUCKETS {
        return Err(QueryError::BadArgument(format!(
            "a window of {} days is too long for the flow chart: at most {} days",
            (until - since) / 86_400_000,
            MAX_BUCKETS / 24
        )));
    }
    let mut buckets: Vec<Bucket> = (0..count.max(0))
        .map(|n| Bucket {
            start: format_ms(first + n * step_ms),
            counts: [0; SERIES.len()],
            queue: None,
        })
        .collect();
    let context = || Context::op("read the mail flow").table("line_counts");
    let mut statement = conn
        .prepare_cached(
            "SELECT minute_ms, kind, lines FROM line_counts WHERE minute_ms >= ?1 AND minute_ms <= ?2",
        )
        .ctx(context)?;
    let mut rows = statement.query(params![first, until]).ctx(context)?;
    while let Some(row) = rows.next().ctx(context)? {
        let minute: i64 = row.get(0).ctx(context)?;
        let kind: String = row.get(1).ctx(context)?;
        let lines: i64 = row.get(2).ctx(context)?;
        let Some(series) = SERIES
            .iter()
            .position(|(_, kinds)| kinds.contains(&kind.as_str()))
        else {
            continue;
        };
        let index = (minute - first).div_euclid(step_ms);
        if let Some(bucket) = usize::try_from(index).ok().and_then(|i| buckets.get_mut(i)) {
            bucket.counts[series] += u64::try_from(lines).unwrap_or(0);
        }
    }
    queue_sizes(conn, first, until, step_ms, &mut buckets)?;
    Ok(Flow {
        step: if step_ms == 60_000 { "minute" } else { "hour" },
        series: SERIES.iter().map(|(name, _)| *name).collect(),
        buckets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::repo::queue_samples;

    const MINUTE: i64 = 60_000;

    #[test]
    fn each_bucket_has_the_last_queue_count_taken_in_it() {
        let conn = crate::store::migrated_in_memory();
        let start = 1_795_000_000_000 / MINUTE * MINUTE;
        // Two counts in the first minute, none in the second, one in the
        // third; one before the window and one after it.
        for (at, messages, frozen) in [
            (start - MINUTE, 99, 9),
            (start + 1_000, 5, 1),
            (start + 50_000, 7, 2),
            (start + 2 * MINUTE + 5, 8, 0),
            (start + 5 * MINUTE, 99, 9),
        ] {
            queue_samples::record(&conn, at, messages, frozen).unwrap();
        }
        let window = Window {
            since: Some(start),
            until: Some(start + 2 * MINUTE + 30_000),
        };
        let flow = compute(&conn, window).unwrap();
        assert_eq!(flow.step, "minute");
        let queue: Vec<Option<(u64, u64)>> = flow
            .buckets
            .iter()
            .map(|b| b.queue.map(|q| (q.messages, q.frozen)))
            .collect();
        assert_eq!(queue, [Some((7, 2)), None, Some((8, 0))]);
    }

    #[test]
    fn counts_older_than_they_are_kept_are_dropped() {
        let conn = crate::store::migrated_in_memory();
        queue_samples::record(&conn, 1_000, 1, 0).unwrap();
        queue_samples::record(&conn, 1_000 + queue_samples::KEPT_MS, 2, 0).unwrap();
        queue_samples::record(&conn, 2_000 + queue_samples::KEPT_MS, 3, 0).unwrap();
        let kept: i64 = conn
            .query_row("SELECT count(*) FROM queue_samples", [], |row| row.get(0))
            .unwrap();
        assert_eq!(kept, 2);
    }
}
