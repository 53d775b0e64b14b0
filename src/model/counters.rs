//! The metrics' counters: what each stored line adds to them, summed over a
//! batch and added to `metric_counters` in the batch's own transaction.
//!
//! So a counter counts exactly the lines committed: a batch rolled back
//! counts nothing, a line replayed after a crash is skipped before it is
//! counted, and retention, which deletes lines and rows, never touches the
//! table, so no counter goes down. Every counter is a function of single
//! lines; a database made before the table existed is counted once from
//! the lines it still holds (`counter_seed.rs`).
//!
//! Labels are bounded: their values come from fixed lists (flags, kinds,
//! stages, reason classes), or are checked for form (transport names, SMTP
//! codes), and a family keeps series for at most [`LABEL_SETS_PER_FAMILY`]
//! of those, the most frequent (`label_slots.rs`); the rest are counted
//! under `(other)`. No address, host or id is ever a label.

use rustc_hash::FxHashMap as HashMap;

use deadpool_sqlite::rusqlite::{Connection, params};

use super::label_slots;
pub use super::label_slots::{LABEL_SETS_PER_FAMILY, OVERFLOW};
use super::reasons::ReasonClass;
use super::reasons::classify;
use crate::parse::{Delivery, DeliveryFlag, Entry, Event, Kind};
use crate::store::{Context, ResultExt, StoreError};

/// The sample names of the counted families. The query side gives each
/// its HELP and TYPE (`query/metrics`).
pub mod family {
    /// exim_exporter's: lines by flag (`<=`, `=>`, `==`, ...).
    pub const MESSAGES: &str = "exim_messages_total";
    /// exim_exporter's: `**` and `==` lines by SMTP status and enhanced code.
    pub const MESSAGE_ERRORS: &str = "exim_message_errors_total";
    /// exim_exporter's: rejections (it counts rejectlog lines; this counts
    /// the main log's rejection lines).
    pub const REJECTS: &str = "exim_reject_total";
    /// Lines by kind.
    pub const LINES: &str = "exim_pilot_lines_total";
    /// Lines the parser did not recognise.
    pub const UNRECOGNISED: &str = "exim_pilot_lines_unrecognised_total";
    /// Lines cut to `max_line_bytes`.
    pub const TRUNCATED: &str = "exim_pilot_lines_truncated_total";
    /// Delivery results by transport and outcome.
    pub const DELIVERIES: &str = "exim_pilot_deliveries_total";
    /// `==` lines by reason class.
    pub const DEFERRALS: &str = "exim_pilot_deferrals_total";
    /// `**` lines by reason class.
    pub const BOUNCES: &str = "exim_pilot_bounces_total";
    /// Rejections by SMTP stage and class (permanent or temporary).
    pub const REJECTIONS: &str = "exim_pilot_rejections_total";
    /// `QT=` of delivery lines, by transport (a histogram).
    pub const QUEUE_TIME: &str = "exim_pilot_queue_time_seconds";
    /// `DT=` of delivery lines, by transport (a histogram).
    pub const DELIVERY_TIME: &str = "exim_pilot_delivery_time_seconds";
    /// Bytes received (`S=` of `<=` lines).
    pub const RECEIVED_BYTES: &str = "exim_pilot_received_bytes_total";
    /// Gaps recorded: log bytes that could not be read.
    pub const GAPS: &str = "exim_pilot_ingest_gaps_total";
    /// Batch commits retried after a database error.
    pub const WRITER_RETRIES: &str = "exim_pilot_writer_retries_total";
}

/// Upper bounds of the duration histograms' buckets, in seconds. They
/// include the bounds of `stats`' time bands (1m, 5m, 15m, 30m, 1h, 3h, 6h,
/// 12h, 1d). Stored counts are per bucket index: changing these needs a
/// migration that clears the histograms.
pub const DURATION_BUCKETS: [f64; 15] = [
    0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 10800.0, 21600.0, 43200.0,
    86400.0,
];

/// The `bucket` of a row that is not a histogram bucket: a counter's value
/// or a histogram's sum.
pub const NO_BUCKET: i64 = -1;

/// The index in [`FLAGS`] of exim_exporter's `flag` for the line `event`
/// is, if it counts one.
fn flag_of(event: &Event<'_>) -> Option<usize> {
    Some(match event {
        Event::Reception(reception) if reception.fake_reject => 1,
        Event::Reception(_) => 0,
        Event::Delivery(delivery) => match delivery.flag {
            DeliveryFlag::Delivered => 2,
            DeliveryFlag::DeliveredMore => 3,
            DeliveryFlag::Cutthrough => 4,
            DeliveryFlag::Suppressed => 5,
            DeliveryFlag::Failed => 6,
            DeliveryFlag::Deferred => 7,
            // exim_exporter counts these `=>` lines as delivered; nothing was.
            DeliveryFlag::Discarded => return None,
        },
        Event::Completed { .. } => 8,
        _ => return None,
    })
}

/// exim_exporter's `flag` values, each exported from zero: `<=`, `(=`,
/// `=>`, `->`, `>>`, `*>`, `**`, `==` and `Completed` lines.
pub const FLAGS: [&str; 9] = [
    "arrived",
    "fakereject",
    "delivered",
    "additional",
    "cutthrough",
    "suppressed",
    "failed",
    "deferred",
    "completed",
];

/// Every delivery `outcome` value.
pub const OUTCOMES: [&str; 4] = ["delivered", "suppressed", "deferred", "failed"];

/// A label set, borrowed from the batch's lines until it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Labels<'b> {
    None,
    One(&'static str, &'static str),
    Rejection {
        stage: &'static str,
        temporary: bool,
    },
    Error {
        status: u16,
        enhanced: &'b [u8],
    },
    Delivery {
        transport: &'b [u8],
        outcome: &'static str,
    },
    Transport(&'b [u8]),
}

impl Labels<'_> {
    /// Whether its values come from the log, not from a fixed list: only
    /// those need the per-family bound.
    fn comes_from_the_log(&self) -> bool {
        matches!(
            self,
            Labels::Error { .. } | Labels::Delivery { .. } | Labels::Transport(_)
        )
    }

    /// The label set in the exposition's form (`a="x",b="y"`); its
    /// `(other)` form is [`label_slots::overflow_of`] this.
    fn render(&self) -> String {
        match *self {
            Labels::None => String::new(),
            Labels::One(name, value) => format!("{name}=\"{value}\""),
            Labels::Rejection { stage, temporary } => format!(
                "stage=\"{stage}\",class=\"{}\"",
                if temporary { "temporary" } else { "permanent" }
            ),
            Labels::Error { status, enhanced } => format!(
                "status=\"{status}\",enhanced=\"{}\"",
                enhanced_label(enhanced)
            ),
            Labels::Delivery { transport, outcome } => format!(
                "transport=\"{}\",outcome=\"{outcome}\"",
                transport_label(transport)
            ),
            Labels::Transport(transport) => {
                format!("transport=\"{}\"", transport_label(transport))
            }
        }
    }
}

/// A transport's name as a label: Exim's driver names are letters, digits,
/// `_`, `-` and `.`; anything else is not a name Exim's configuration
/// gave, and is counted as `(other)`. An absent transport is `""`.
fn transport_label(name: &[u8]) -> &str {
    let plausible = name.len() <= 64
        && name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    match std::str::from_utf8(name) {
        Ok(name) if plausible => name,
        _ => OVERFLOW,
    }
}

/// An enhanced status code as a label (`5.1.1`), or `""` when it is not
/// of RFC 3463's form.
fn enhanced_label(code: &[u8]) -> &str {
    let mut parts = code.split(|&b| b == b'.');
    let class_ok = matches!(parts.next(), Some(b"2" | b"4" | b"5"));
    let digits = |part: Option<&[u8]>| {
        part.is_some_and(|p| (1..=3).contains(&p.len()) && p.iter().all(u8::is_ascii_digit))
    };
    if class_ok && digits(parts.next()) && digits(parts.next()) && parts.next().is_none() {
        std::str::from_utf8(code).unwrap_or_default()
    } else {
        ""
    }
}

/// The two duration histograms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Durations {
    Queue,
    Delivery,
}

/// One label set's observations: per-bucket counts (the last is +Inf)
/// and their sum.
#[derive(Debug, Clone, Copy, Default)]
struct Observed {
    buckets: [u64; DURATION_BUCKETS.len() + 1],
    sum: f64,
}

/// What one batch adds to the counters, until [`CounterTally::flush`].
///
/// Counted in arrays where the labels are a fixed list and in small maps
/// keyed by borrowed bytes otherwise: this runs for every line, and
/// hashing names and label sets per line cost several percent of ingest.
#[derive(Debug, Clone)]
pub struct CounterTally<'b> {
    lines: [u64; Kind::ALL.len()],
    flags: [u64; FLAGS.len()],
    deferrals: [u64; ReasonClass::ALL.len()],
    bounces: [u64; ReasonClass::ALL.len()],
    unrecognised: u64,
    truncated: u64,
    rejects: u64,
    received_bytes: u64,
    gaps: u64,
    retries: u64,
    rejections: HashMap<(&'static str, bool), u64>,
    errors: HashMap<(u16, &'b [u8]), u64>,
    deliveries: HashMap<(&'b [u8], &'static str), u64>,
    durations: HashMap<(Durations, &'b [u8]), Observed>,
}

impl Default for CounterTally<'_> {
    fn default() -> Self {
        CounterTally {
            lines: [0; Kind::ALL.len()],
            flags: [0; FLAGS.len()],
            deferrals: [0; ReasonClass::ALL.len()],
            bounces: [0; ReasonClass::ALL.len()],
            unrecognised: 0,
            truncated: 0,
            rejects: 0,
            received_bytes: 0,
            gaps: 0,
            retries: 0,
            rejections: HashMap::default(),
            errors: HashMap::default(),
            deliveries: HashMap::default(),
            durations: HashMap::default(),
        }
    }
}

impl<'b> CounterTally<'b> {
    fn observe(&mut self, durations: Durations, transport: &'b [u8], millis: i64) {
        let seconds = millis as f64 / 1000.0;
        let bucket = DURATION_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(DURATION_BUCKETS.len());
        let observed = self.durations.entry((durations, transport)).or_default();
        observed.buckets[bucket] += 1;
        observed.sum += seconds;
    }

    /// Counts one stored line; `truncated` when only its start was kept.
    pub fn line(&mut self, entry: &Entry<'b>, truncated: bool) {
        self.lines[entry.kind() as usize] += 1;
        if truncated {
            self.truncated += 1;
        }
        if let Some(flag) = flag_of(&entry.event) {
            self.flags[flag] += 1;
        }
        match &entry.event {
            Event::Reception(reception) if !reception.fake_reject => {
                self.received_bytes += reception.size_bytes().unwrap_or(0);
            }
            Event::Delivery(delivery) => self.delivery(delivery),
            Event::Rejection(rejection) => {
                self.rejects += 1;
                *self
                    .rejections
                    .entry((rejection.stage.name(), rejection.temporary))
                    .or_default() += 1;
            }
            Event::Unrecognised { .. } => self.unrecognised += 1,
            _ => {}
        }
    }

    fn delivery(&mut self, delivery: &Delivery<'b>) {
        if delivery.flag == DeliveryFlag::Discarded {
            return;
        }
        let transport = delivery.transport.unwrap_or_default();
        let outcome = match delivery.flag {
            DeliveryFlag::Delivered | DeliveryFlag::DeliveredMore | DeliveryFlag::Cutthrough => {
                "delivered"
            }
            DeliveryFlag::Suppressed => "suppressed",
            DeliveryFlag::Deferred => "deferred",
            DeliveryFlag::Failed | DeliveryFlag::Discarded => "failed",
        };
        *self.deliveries.entry((transport, outcome)).or_default() += 1;
        match delivery.flag {
            DeliveryFlag::Deferred | DeliveryFlag::Failed => {
                let class = classify(
                    delivery.smtp_code.as_ref(),
                    delivery.error.unwrap_or_default(),
                );
                let index = ReasonClass::ALL
                    .iter()
                    .position(|c| *c == class)
                    .unwrap_or(0);
                if delivery.flag == DeliveryFlag::Deferred {
                    self.deferrals[index] += 1;
                } else {
                    self.bounces[index] += 1;
                }
                if let Some(code) = &delivery.smtp_code
                    && (200..600).contains(&code.code)
                {
                    *self
                        .errors
                        .entry((code.code, code.enhanced.unwrap_or_default()))
                        .or_default() += 1;
                }
            }
            _ => {
                if let Some(millis) = delivery.queue_time.and_then(|qt| qt.millis) {
                    self.observe(Durations::Queue, transport, millis);
                }
                if let Some(millis) = delivery.delivery_time.and_then(|dt| dt.millis) {
                    self.observe(Durations::Delivery, transport, millis);
                }
            }
        }
    }

    /// Counts a gap recorded.
    pub fn gap(&mut self) {
        self.gaps += 1;
    }

    /// Counts the failed attempts before the one that commits this batch.
    pub fn writer_retries(&mut self, retries: u32) {
        self.retries += u64::from(retries);
    }

    /// Every non-zero count as a row: family, labels, bucket, value.
    fn rows(self) -> Vec<(&'static str, Labels<'b>, i64, f64)> {
        let mut rows = Vec::new();
        let mut counter = |family: &'static str, labels: Labels<'b>, value: u64| {
            if value > 0 {
                rows.push((family, labels, NO_BUCKET, value as f64));
            }
        };
        for (kind, count) in Kind::ALL.iter().zip(self.lines) {
            counter(family::LINES, Labels::One("kind", kind.name()), count);
        }
        for (flag, count) in FLAGS.iter().zip(self.flags) {
            counter(family::MESSAGES, Labels::One("flag", flag), count);
        }
        for (class, count) in ReasonClass::ALL.iter().zip(self.deferrals) {
            counter(
                family::DEFERRALS,
                Labels::One("reason", class.name()),
                count,
            );
        }
        for (class, count) in ReasonClass::ALL.iter().zip(self.bounces) {
            counter(family::BOUNCES, Labels::One("reason", class.name()), count);
        }
        counter(family::UNRECOGNISED, Labels::None, self.unrecognised);
        counter(family::TRUNCATED, Labels::None, self.truncated);
        counter(family::REJECTS, Labels::None, self.rejects);
        counter(family::RECEIVED_BYTES, Labels::None, self.received_bytes);
        counter(family::GAPS, Labels::None, self.gaps);
        counter(family::WRITER_RETRIES, Labels::None, self.retries);
        for ((stage, temporary), count) in self.rejections {
            counter(
                family::REJECTIONS,
                Labels::Rejection { stage, temporary },
                count,
            );
        }
        for ((status, enhanced), count) in self.errors {
            counter(
                family::MESSAGE_ERRORS,
                Labels::Error { status, enhanced },
                count,
            );
        }
        for ((transport, outcome), count) in self.deliveries {
            counter(
                family::DELIVERIES,
                Labels::Delivery { transport, outcome },
                count,
            );
        }
        for ((durations, transport), observed) in self.durations {
            let family = match durations {
                Durations::Queue => family::QUEUE_TIME,
                Durations::Delivery => family::DELIVERY_TIME,
            };
            let labels = Labels::Transport(transport);
            for (bucket, count) in observed.buckets.iter().enumerate() {
                if *count > 0 {
                    rows.push((family, labels, bucket as i64, *count as f64));
                }
            }
            rows.push((family, labels, NO_BUCKET, observed.sum));
        }
        rows
    }

    /// Adds the batch's counts to `metric_counters`; call inside the
    /// batch's transaction.
    pub fn flush(self, conn: &Connection) -> Result<(), StoreError> {
        let context = || Context::op("count lines for the metrics").table("metric_counters");
        let mut add = conn
            .prepare_cached(
                "INSERT INTO metric_counters (family, labels, bucket, value) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (family, labels, bucket) DO UPDATE SET value = value + excluded.value",
            )
            .ctx(context)?;
        // Decided once per label set, so a histogram's buckets and sum
        // stay together; in a fixed order, so which label set overflows
        // does not depend on hashing.
        let mut entries: Vec<(&'static str, String, i64, bool, f64)> = self
            .rows()
            .into_iter()
            .map(|(family, labels, bucket, value)| {
                (
                    family,
                    labels.render(),
                    bucket,
                    labels.comes_from_the_log(),
                    value,
                )
            })
            .collect();
        entries.sort_by(|a, b| (a.0, &a.1, a.2).cmp(&(b.0, &b.1, b.2)));
        for set in entries.chunk_by(|a, b| (a.0, &a.1) == (b.0, &b.1)) {
            let (family, text, _, from_log, _) = &set[0];
            let stored = if *from_log {
                // The set's lines in this batch: a histogram's buckets'
                // sum, a counter's value.
                let buckets: f64 = set.iter().filter(|e| e.2 != NO_BUCKET).map(|e| e.4).sum();
                let lines = if buckets > 0.0 { buckets } else { set[0].4 };
                let overflow = label_slots::overflow_of(text);
                if *text == overflow {
                    overflow
                } else {
                    label_slots::place(conn, family, text, &overflow, lines)?
                }
            } else {
                text.clone()
            };
            for (_, _, bucket, _, value) in set {
                add.execute(params![family, stored, bucket, value])
                    .ctx(context)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use deadpool_sqlite::rusqlite::OptionalExtension;

    use super::*;
    use crate::parse::parse_line;

    fn tally_of(lines: &[&'static str]) -> Vec<(String, f64)> {
        let mut tally = CounterTally::default();
        for line in lines {
            tally.line(&parse_line(line.as_bytes()), false);
        }
        let mut rows: Vec<(String, f64)> = tally
            .rows()
            .into_iter()
            .map(|(family, labels, bucket, value)| {
                (format!("{family}{{{}}}[{bucket}]", labels.render()), value)
            })
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows
    }

    fn value(rows: &[(String, f64)], key: &str) -> f64 {
        rows.iter().find(|(k, _)| k == key).map_or(0.0, |(_, v)| *v)
    }

    #[test]
    fn lines_count_by_flag_kind_transport_and_reason() {
        let rows = tally_of(&[
            "2026-11-26 13:58:22 [7340] 1xWZzS-0001uN-1x <= a@outside.example H=vm [127.0.0.1] P=esmtp S=435",
            "2026-11-26 13:58:22 [7340] 1xWZzS-0001uN-1x => alice <alice@test.example> R=local_user T=local_maildir S=435 QT=2s DT=0s",
            "2026-11-26 13:58:22 [7340] 1xWZzS-0001uN-1x -> bob <bob@test.example> R=local_user T=local_maildir S=435 QT=70s DT=1s",
            "2026-11-26 13:58:22 [7341] 1xWZzS-0001uN-1y == g@remote.example R=dnslookup T=remote_smtp defer (-44) H=mx.remote.example [192.0.2.1]: SMTP error from remote mail server after RCPT TO:<g@remote.example>: 451 4.7.1 Greylisted, try later",
            "2026-11-26 13:58:22 [7341] 1xWZzS-0001uN-1y ** n@remote.example R=dnslookup T=remote_smtp H=mx.remote.example [192.0.2.1]: SMTP error from remote mail server after RCPT TO:<n@remote.example>: 550 5.1.1 User unknown",
            "2026-11-26 13:58:22 [7340] 1xWZzS-0001uN-1x Completed QT=2s",
            "2026-11-26 13:58:23 [7350] H=(spammer) [127.0.0.1] F=<s@spam.example> rejected RCPT <x@test.example>: relay not permitted",
            "garbage that is not a log line",
        ]);
        for (key, expected) in [
            ("exim_messages_total{flag=\"arrived\"}[-1]", 1.0),
            ("exim_messages_total{flag=\"delivered\"}[-1]", 1.0),
            ("exim_messages_total{flag=\"additional\"}[-1]", 1.0),
            ("exim_messages_total{flag=\"deferred\"}[-1]", 1.0),
            ("exim_messages_total{flag=\"failed\"}[-1]", 1.0),
            ("exim_messages_total{flag=\"completed\"}[-1]", 1.0),
            ("exim_reject_total{}[-1]", 1.0),
            (
                "exim_pilot_rejections_total{stage=\"rcpt\",class=\"permanent\"}[-1]",
                1.0,
            ),
            (
                "exim_message_errors_total{status=\"451\",enhanced=\"4.7.1\"}[-1]",
                1.0,
            ),
            (
                "exim_message_errors_total{status=\"550\",enhanced=\"5.1.1\"}[-1]",
                1.0,
            ),
            ("exim_pilot_deferrals_total{reason=\"greylisted\"}[-1]", 1.0),
            (
                "exim_pilot_bounces_total{reason=\"unknown_recipient\"}[-1]",
                1.0,
            ),
            (
                "exim_pilot_deliveries_total{transport=\"local_maildir\",outcome=\"delivered\"}[-1]",
                2.0,
            ),
            (
                "exim_pilot_deliveries_total{transport=\"remote_smtp\",outcome=\"failed\"}[-1]",
                1.0,
            ),
        ] {
            assert_eq!(value(&rows, key), expected, "{key}");
        }
        // QT=2s in the 5 s bucket (index 3), QT=70s in the 300 s one (7).
        let qt = "exim_pilot_queue_time_seconds{transport=\"local_maildir\"}";
        assert_eq!(value(&rows, &format!("{qt}[3]")), 1.0);
        assert_eq!(value(&rows, &format!("{qt}[7]")), 1.0);
        assert_eq!(value(&rows, &format!("{qt}[-1]")), 72.0);
        let dt = "exim_pilot_delivery_time_seconds{transport=\"local_maildir\"}";
        assert_eq!(value(&rows, &format!("{dt}[0]")), 1.0);
        assert_eq!(value(&rows, &format!("{dt}[2]")), 1.0);
        assert_eq!(value(&rows, "exim_pilot_received_bytes_total{}[-1]"), 435.0);
        assert_eq!(
            value(&rows, "exim_pilot_lines_unrecognised_total{}[-1]"),
            1.0
        );
        assert_eq!(
            value(&rows, "exim_pilot_lines_total{kind=\"unrecognised\"}[-1]"),
            1.0
        );
        assert_eq!(
            value(&rows, "exim_pilot_lines_total{kind=\"reception\"}[-1]"),
            1.0
        );
    }

    #[test]
    fn label_values_from_the_log_are_checked_for_form() {
        assert_eq!(transport_label(b"remote_smtp"), "remote_smtp");
        assert_eq!(transport_label(b""), "");
        assert_eq!(transport_label(b"a\"b"), OVERFLOW);
        assert_eq!(transport_label(b"x\ny"), OVERFLOW);
        assert_eq!(transport_label(&[b'a'; 65]), OVERFLOW);
        assert_eq!(enhanced_label(b"5.1.1"), "5.1.1");
        assert_eq!(enhanced_label(b"4.7.28"), "4.7.28");
        assert_eq!(enhanced_label(b"5.1.1.1"), "");
        assert_eq!(enhanced_label(b"9.1.1"), "");
        assert_eq!(enhanced_label(b"5.1234.1"), "");
        assert_eq!(enhanced_label(b"5.\"1.1"), "");
    }

    /// A database of the counters' tables alone.
    fn counters_only() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE log_chunks (id INTEGER PRIMARY KEY);")
            .unwrap();
        conn.execute_batch(include_str!("../store/migrations/0010_metric_counters.sql"))
            .unwrap();
        conn.execute_batch(include_str!(
            "../store/migrations/0013_metric_label_slots.sql"
        ))
        .unwrap();
        conn
    }

    #[test]
    fn a_family_takes_at_most_its_bound_of_label_sets_then_counts_the_rest_as_other() {
        let conn = counters_only();
        let lines: Vec<String> = (0..LABEL_SETS_PER_FAMILY + 20)
            .map(|n| {
                format!(
                    "2026-11-26 13:58:22 [1] 1xWZzS-0001uN-1x => a@b.example R=r T=t{n:03} QT=1s DT=1s"
                )
            })
            .collect();
        // Two batches: the bound holds across them, and a known label set
        // keeps counting under its own name.
        for batch in [&lines[..50], &lines[..]] {
            let mut tally = CounterTally::default();
            for line in batch {
                tally.line(&parse_line(line.as_bytes()), false);
            }
            tally.flush(&conn).unwrap();
        }
        let sets: i64 = conn
            .query_row(
                "SELECT count(DISTINCT labels) FROM metric_counters WHERE family = ?1",
                [family::DELIVERY_TIME],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(sets, LABEL_SETS_PER_FAMILY + 1);
        let value = |labels: &str| -> f64 {
            conn.query_row(
                "SELECT value FROM metric_counters WHERE family = ?1 AND labels = ?2 AND bucket = ?3",
                params![family::DELIVERIES, labels, NO_BUCKET],
                |row| row.get(0),
            )
            .unwrap()
        };
        assert_eq!(value("transport=\"t000\",outcome=\"delivered\""), 2.0);
        // The first 100 transports in order have their own; 20 overflow.
        assert_eq!(value("transport=\"(other)\",outcome=\"delivered\""), 20.0);
        let total: f64 = conn
            .query_row(
                "SELECT sum(value) FROM metric_counters WHERE family = ?1",
                [family::DELIVERIES],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(total, (50 + lines.len()) as f64);
    }

    /// Junk transports took every slot first; `remote_smtp`, far more
    /// frequent, takes the rarest one's, whose counts move to `(other)`:
    /// no counter goes down and the family still sums to its lines.
    #[test]
    fn a_frequent_label_takes_the_slot_of_a_rare_one_that_came_first() {
        let conn = counters_only();
        let delivery = |transport: &str| {
            format!(
                "2026-11-26 13:58:22 [1] 1xWZzS-0001uN-1x => a@b.example R=r T={transport} QT=1s DT=1s"
            )
        };
        let flush = |lines: &[String]| {
            let mut tally = CounterTally::default();
            for line in lines {
                tally.line(&parse_line(line.as_bytes()), false);
            }
            tally.flush(&conn).unwrap();
        };
        let junk: Vec<String> = (0..LABEL_SETS_PER_FAMILY)
            .map(|n| delivery(&format!("junk{n:03}")))
            .collect();
        flush(&junk);
        let value = |labels: &str| -> Option<f64> {
            conn.query_row(
                "SELECT value FROM metric_counters WHERE family = ?1 AND labels = ?2 AND bucket = ?3",
                params![family::DELIVERIES, labels, NO_BUCKET],
                |row| row.get(0),
            )
            .optional()
            .unwrap()
        };
        let remote = "transport=\"remote_smtp\",outcome=\"delivered\"";
        let other = "transport=\"(other)\",outcome=\"delivered\"";
        // One line is not yet clearly more frequent than a junk set.
        flush(&[delivery("remote_smtp")]);
        assert_eq!(value(remote), None);
        assert_eq!(value(other), Some(1.0));
        // Two more, in a later batch: three lines beat one, twice over.
        flush(&[delivery("remote_smtp"), delivery("remote_smtp")]);
        assert_eq!(value(remote), Some(2.0), "counted from its promotion on");
        assert_eq!(
            value(other),
            Some(2.0),
            "its first line and the evicted set's"
        );
        assert_eq!(value("transport=\"junk000\",outcome=\"delivered\""), None);
        let (sets, total): (i64, f64) = conn
            .query_row(
                "SELECT count(DISTINCT labels), sum(value) FROM metric_counters WHERE family = ?1",
                [family::DELIVERIES],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        assert_eq!(sets, LABEL_SETS_PER_FAMILY + 1);
        assert_eq!(total, (LABEL_SETS_PER_FAMILY + 3) as f64);
        // Kept from then on, and the histograms moved with it.
        flush(&[delivery("remote_smtp")]);
        assert_eq!(value(remote), Some(3.0));
        let histogram: i64 = conn
            .query_row(
                "SELECT count(*) FROM metric_counters WHERE family = ?1 AND labels = 'transport=\"remote_smtp\"'",
                [family::QUEUE_TIME],
                |row| row.get(0),
            )
            .unwrap();
        assert!(histogram > 0);
    }

    #[test]
    fn kinds_index_their_array_in_declaration_order() {
        for (index, kind) in Kind::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, index, "{}", kind.name());
        }
    }

    #[test]
    fn bucket_bounds_ascend_and_hold_the_stats_bands() {
        assert!(DURATION_BUCKETS.windows(2).all(|w| w[0] < w[1]));
        for band in [
            60.0, 300.0, 900.0, 1800.0, 3600.0, 10800.0, 21600.0, 43200.0, 86400.0,
        ] {
            assert!(DURATION_BUCKETS.contains(&band), "{band}");
        }
    }
}
