//! The metrics for Prometheus, read from the database: the counters the
//! writer keeps (`metric_counters`, see `model/counters.rs`) and gauges
//! of the mail queue and the store, plus what only a running daemon knows
//! (`Live`). Read-only; `exim-pilot metrics`, the daemon's `/metrics` and
//! its textfile all encode what [`collect`] returns.
//!
//! The exim_exporter names keep its meaning where exim-pilot has the same
//! facts (lines by flag, errors by code, rejections); its gauges of the
//! spool and processes are not here, because the log does not hold them.

pub mod exposition;
mod live;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use deadpool_sqlite::rusqlite::Connection;

use crate::model::counters::{DURATION_BUCKETS, FLAGS, NO_BUCKET, family};
use crate::model::reasons::ReasonClass;
use crate::parse::{Kind, Stage};
use crate::store::{Context, ResultExt, StoreError, query_value};
pub use exposition::{Family, MetricType, Sample, encode};
use live::live_gauges;
pub use live::{Live, live_only};

/// The content type of the classic text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every family, in a fixed order: counters from the database, gauges
/// from the database and the files, and `live`'s.
pub fn collect(
    conn: &Connection,
    database: &Path,
    stuck_after: Duration,
    live: &Live,
) -> Result<Vec<Family>, StoreError> {
    let stored = stored_counters(conn)?;
    let mut families = counter_families(&stored);
    families.extend(queue_gauges(conn, stuck_after)?);
    families.extend(store_gauges(conn, database)?);
    families.extend(live_gauges(live));
    families.push(Family {
        name: "exim_pilot_build_info",
        kind: MetricType::Gauge,
        help: "The exim-pilot version answering, always 1",
        samples: vec![Sample {
            suffix: "",
            labels: format!("version=\"{}\"", env!("CARGO_PKG_VERSION")),
            value: 1.0,
        }],
    });
    Ok(families)
}

/// The rows of `metric_counters`: family → labels → bucket → value.
type Stored = BTreeMap<String, BTreeMap<String, BTreeMap<i64, f64>>>;

fn stored_counters(conn: &Connection) -> Result<Stored, StoreError> {
    let context = || Context::op("read the metric counters").table("metric_counters");
    let mut statement = conn
        .prepare_cached("SELECT family, labels, bucket, value FROM metric_counters")
        .ctx(context)?;
    let mut rows = statement.query([]).ctx(context)?;
    let mut stored = Stored::new();
    while let Some(row) = rows.next().ctx(context)? {
        let family: String = row.get(0).ctx(context)?;
        let labels: String = row.get(1).ctx(context)?;
        let bucket: i64 = row.get(2).ctx(context)?;
        let value: f64 = row.get(3).ctx(context)?;
        stored
            .entry(family)
            .or_default()
            .entry(labels)
            .or_default()
            .insert(bucket, value);
    }
    Ok(stored)
}

/// A counter family from its stored rows, every label set in `zeros`
/// present from zero.
fn counter(
    stored: &Stored,
    name: &'static str,
    help: &'static str,
    zeros: impl IntoIterator<Item = String>,
) -> Family {
    let mut values: BTreeMap<String, f64> = zeros.into_iter().map(|l| (l, 0.0)).collect();
    if let Some(rows) = stored.get(name) {
        for (labels, buckets) in rows {
            if let Some(value) = buckets.get(&NO_BUCKET) {
                values.insert(labels.clone(), *value);
            }
        }
    }
    Family {
        name,
        kind: MetricType::Counter,
        help,
        samples: values
            .into_iter()
            .map(|(labels, value)| Sample {
                suffix: "",
                labels,
                value,
            })
            .collect(),
    }
}

/// A histogram family from its stored per-bucket counts, made cumulative.
fn histogram(stored: &Stored, name: &'static str, help: &'static str) -> Family {
    let mut samples = Vec::new();
    for (labels, buckets) in stored.get(name).into_iter().flatten() {
        let with = |le: &str| {
            if labels.is_empty() {
                format!("le=\"{le}\"")
            } else {
                format!("{labels},le=\"{le}\"")
            }
        };
        let mut cumulative = 0.0;
        for (index, bound) in DURATION_BUCKETS.iter().enumerate() {
            cumulative += buckets.get(&(index as i64)).copied().unwrap_or(0.0);
            samples.push(Sample {
                suffix: "_bucket",
                labels: with(&bound.to_string()),
                value: cumulative,
            });
        }
        cumulative += buckets
            .get(&(DURATION_BUCKETS.len() as i64))
            .copied()
            .unwrap_or(0.0);
        samples.push(Sample {
            suffix: "_bucket",
            labels: with("+Inf"),
            value: cumulative,
        });
        samples.push(Sample {
            suffix: "_sum",
            labels: labels.clone(),
            value: buckets.get(&NO_BUCKET).copied().unwrap_or(0.0),
        });
        samples.push(Sample {
            suffix: "_count",
            labels: labels.clone(),
            value: cumulative,
        });
    }
    Family {
        name,
        kind: MetricType::Histogram,
        help,
        samples,
    }
}

fn one(label: &str, values: &[&str]) -> Vec<String> {
    values.iter().map(|v| format!("{label}=\"{v}\"")).collect()
}

/// Long because it is a table: the counted families, each with its HELP,
/// TYPE and label sets.
fn counter_families(stored: &Stored) -> Vec<Family> {
    let reasons: Vec<&str> = ReasonClass::ALL.iter().map(|c| c.name()).collect();
    let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
    let stages = [
        Stage::Connect,
        Stage::Helo,
        Stage::Auth,
        Stage::Mail,
        Stage::Rcpt,
        Stage::Data,
        Stage::AfterData,
        Stage::Other,
    ];
    let rejection_sets = stages.iter().flat_map(|stage| {
        ["permanent", "temporary"]
            .map(|class| format!("stage=\"{}\",class=\"{class}\"", stage.name()))
    });
    let none = || [String::new()];
    vec![
        counter(
            stored,
            family::MESSAGES,
            "Total number of logged messages broken down by flag (delivered, deferred, etc)",
            one("flag", &FLAGS),
        ),
        counter(
            stored,
            family::MESSAGE_ERRORS,
            "Number of logged messages broken down by error code (451, 550, etc)",
            [],
        ),
        counter(
            stored,
            family::REJECTS,
            "Total number of logged reject messages",
            none(),
        ),
        counter(
            stored,
            family::DELIVERIES,
            "Delivery results (=> -> >> *> == ** lines) by transport and outcome",
            [],
        ),
        counter(
            stored,
            family::DEFERRALS,
            "Deferred deliveries (== lines) by class of reason",
            one("reason", &reasons),
        ),
        counter(
            stored,
            family::BOUNCES,
            "Failed deliveries (** lines) by class of reason",
            one("reason", &reasons),
        ),
        counter(
            stored,
            family::REJECTIONS,
            "Rejected SMTP commands by stage and class (permanent 5xx, temporary 4xx)",
            rejection_sets,
        ),
        histogram(
            stored,
            family::QUEUE_TIME,
            "Time from reception to delivery (QT= of delivery lines), by transport",
        ),
        histogram(
            stored,
            family::DELIVERY_TIME,
            "Time the delivery itself took (DT= of delivery lines), by transport",
        ),
        counter(
            stored,
            family::RECEIVED_BYTES,
            "Bytes received (S= of <= lines)",
            none(),
        ),
        counter(
            stored,
            family::LINES,
            "Log lines stored, by kind",
            one("kind", &kinds),
        ),
        counter(
            stored,
            family::UNRECOGNISED,
            "Log lines stored that the parser did not recognise",
            none(),
        ),
        counter(
            stored,
            family::TRUNCATED,
            "Log lines longer than [ingest] max_line_bytes, stored cut",
            none(),
        ),
        counter(
            stored,
            family::GAPS,
            "Gaps recorded: log bytes that could not be read",
            none(),
        ),
        counter(
            stored,
            family::WRITER_RETRIES,
            "Batch commits retried after a database error",
            none(),
        ),
    ]
}

fn gauge(name: &'static str, help: &'static str, value: f64) -> Family {
    Family {
        name,
        kind: MetricType::Gauge,
        help,
        samples: vec![Sample {
            suffix: "",
            labels: String::new(),
            value,
        }],
    }
}

/// The condition that a message's `status` column is not yet dealt with.
/// The redundant `<> 'completed'` is the condition of the partial index
/// `messages_open`: SQLite uses a partial index only for queries that
/// repeat its condition, and without it every scrape scans `messages`.
fn not_yet_dealt_with(status: &str) -> String {
    format!("{status} IN ('received', 'deferred', 'frozen') AND {status} <> 'completed'")
}

fn queue_gauges(conn: &Connection, stuck_after: Duration) -> Result<Vec<Family>, StoreError> {
    let context = || Context::op("read the queue gauges").table("messages");
    let count = |sql: &str, cutoff: Option<i64>| -> Result<i64, StoreError> {
        match cutoff {
            Some(cutoff) => query_value(conn, sql, [cutoff], context),
            None => query_value(conn, sql, [], context),
        }
    };
    let frozen = count(
        "SELECT count(*) FROM messages WHERE status = 'frozen' AND status <> 'completed'",
        None,
    )?;
    let undelivered = count(
        &format!(
            "SELECT count(*) FROM messages WHERE {}",
            not_yet_dealt_with("status")
        ),
        None,
    )?;
    let newest = crate::store::repo::newest_line_ms(conn)?;
    let stuck_ms = i64::try_from(stuck_after.as_millis()).unwrap_or(i64::MAX);
    let cutoff = newest.unwrap_or(0).saturating_sub(stuck_ms);
    let stuck = count(
        &format!(
            "SELECT count(*) FROM recipients r JOIN messages m ON m.id = r.message_id
             WHERE r.status IN ('pending', 'deferred') AND {}
               AND coalesce(m.received_ms, m.last_event_ms) <= ?1",
            not_yet_dealt_with("m.status")
        ),
        Some(cutoff),
    )?;
    let oldest: Option<i64> = query_value(
        conn,
        &format!(
            "SELECT min(coalesce(received_ms, last_event_ms)) FROM messages
             WHERE {}",
            not_yet_dealt_with("status")
        ),
        [],
        context,
    )?;
    let oldest_age = match (newest, oldest) {
        (Some(newest), Some(oldest)) => newest.saturating_sub(oldest).max(0) as f64 / 1000.0,
        _ => 0.0,
    };
    Ok(vec![
        gauge(
            "exim_pilot_messages_frozen",
            "Messages frozen now (their last word in the log is a freeze)",
            frozen as f64,
        ),
        gauge(
            "exim_pilot_messages_undelivered",
            "Messages received and not yet completed (frozen and deferred included)",
            undelivered as f64,
        ),
        gauge(
            "exim_pilot_recipients_stuck",
            "Recipients pending or deferred whose message has waited longer than [metrics] stuck_after, as `exim-pilot stuck` lists them",
            stuck as f64,
        ),
        gauge(
            "exim_pilot_oldest_undelivered_age_seconds",
            "Age of the oldest message not yet completed, on the log's clock (the newest line's time)",
            oldest_age,
        ),
    ])
}

fn store_gauges(conn: &Connection, database: &Path) -> Result<Vec<Family>, StoreError> {
    let context = || Context::op("read the store gauges").table("ingest_checkpoints");
    let last_commit: Option<i64> = query_value(
        conn,
        "SELECT max(updated_ms) FROM ingest_checkpoints",
        [],
        context,
    )?;
    let size = |suffix: &str| {
        let mut path = database.as_os_str().to_owned();
        path.push(suffix);
        std::fs::metadata(path).map_or(0, |m| m.len())
    };
    let bytes = size("") + size("-wal");
    let counted_all: bool = query_value(
        conn,
        "SELECT NOT EXISTS (SELECT 1 FROM metric_state WHERE key = 'needs_seed')",
        [],
        context,
    )?;
    Ok(vec![
        gauge(
            "exim_pilot_last_commit_timestamp_seconds",
            "When a read position was last committed (Unix time), 0 if never",
            last_commit.unwrap_or(0) as f64 / 1000.0,
        ),
        gauge(
            "exim_pilot_database_bytes",
            "Size of the SQLite database and its write-ahead log",
            bytes as f64,
        ),
        gauge(
            "exim_pilot_counters_complete",
            "1 once the counters include every stored line (0 until the writer counts the lines of a database made before them)",
            if counted_all { 1.0 } else { 0.0 },
        ),
    ])
}

/// Every family name [`collect`] can export (with `live` all set): for
/// the dashboard test and the documentation.
pub fn family_names(families: &[Family]) -> Vec<String> {
    let mut names = Vec::new();
    for family in families {
        match family.kind {
            MetricType::Histogram => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.push(format!("{}{suffix}", family.name));
                }
            }
            _ => names.push(family.name.to_owned()),
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_end_in_their_count() {
        let mut stored = Stored::new();
        let rows = stored
            .entry(family::DELIVERY_TIME.to_owned())
            .or_default()
            .entry("transport=\"t\"".to_owned())
            .or_default();
        rows.insert(0, 2.0);
        rows.insert(7, 1.0);
        rows.insert(DURATION_BUCKETS.len() as i64, 1.0);
        rows.insert(NO_BUCKET, 100_000.5);
        let family = histogram(&stored, family::DELIVERY_TIME, "h");
        let text = encode(&[family]);
        assert!(
            text.contains(
                "exim_pilot_delivery_time_seconds_bucket{transport=\"t\",le=\"0.1\"} 2\n"
            )
        );
        assert!(
            text.contains("exim_pilot_delivery_time_seconds_bucket{transport=\"t\",le=\"60\"} 2\n")
        );
        assert!(
            text.contains(
                "exim_pilot_delivery_time_seconds_bucket{transport=\"t\",le=\"300\"} 3\n"
            )
        );
        assert!(
            text.contains(
                "exim_pilot_delivery_time_seconds_bucket{transport=\"t\",le=\"86400\"} 3\n"
            )
        );
        assert!(
            text.contains(
                "exim_pilot_delivery_time_seconds_bucket{transport=\"t\",le=\"+Inf\"} 4\n"
            )
        );
        assert!(text.contains("exim_pilot_delivery_time_seconds_sum{transport=\"t\"} 100000.5\n"));
        assert!(text.contains("exim_pilot_delivery_time_seconds_count{transport=\"t\"} 4\n"));
    }

    #[test]
    fn counters_with_fixed_labels_start_at_zero() {
        let family = counter_families(&Stored::new());
        let text = encode(&family);
        assert!(text.contains("exim_messages_total{flag=\"cutthrough\"} 0\n"));
        assert!(text.contains("exim_pilot_deferrals_total{reason=\"greylisted\"} 0\n"));
        assert!(text.contains("exim_reject_total 0\n"));
        assert!(text.contains("# TYPE exim_reject_total counter\n"));
        // No label set from the log yet: no sample, no family.
        assert!(!text.contains("exim_pilot_deliveries_total"));
    }
}
