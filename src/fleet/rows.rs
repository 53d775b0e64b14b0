//! What a batch of stored lines becomes in the fleet's PostgreSQL (pure).
//!
//! The fleet's rows are derived from the committed raw lines, not copied
//! from this host's tables: lines are what the local store commits
//! atomically with its read position, chunk ids grow in commit order, and
//! every row is one line's event, so rows are only ever inserted. A row's
//! identity is where its line is: the host, the source's fingerprint and the
//! line's byte offset, the same whichever database or chunk holds it. The
//! rows are kept column by column, to be bound as arrays and unnested.
//!
//! These are rows of events (one per line, only ever inserted), where the
//! local model keeps states (one per message and recipient, updated): two
//! projections by design: a discard (`=> :blackhole:`) is a delivery row
//! here, flag `=>` as the line says, and a recipient's status there. What
//! a field of an entry becomes as a column
//! (a quoted text, an SMTP code) is said once, in `crate::parse`.

use std::collections::BTreeSet;

use crate::parse::{Event, Host, parse_line, quoted_text};
use crate::store::chunk::StoredLine;

/// The month a row's partition covers, as (year, month).
pub type Month = (i64, u32);

/// Where each row's line is, and when it was logged: the key columns every
/// table shares after `host`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Keys {
    pub source: Vec<Vec<u8>>,
    pub offset: Vec<i64>,
    pub logged_ms: Vec<i64>,
}

impl Keys {
    fn push(&mut self, at: &LineAt<'_>) {
        self.source.push(at.source.to_vec());
        self.offset.push(at.offset);
        self.logged_ms.push(at.logged_ms);
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.offset.len()
    }

    /// Whether it holds no rows.
    pub fn is_empty(&self) -> bool {
        self.offset.is_empty()
    }
}

/// `lines`: every line, its kind and message, and its bytes if shipped.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LineRows {
    pub keys: Keys,
    pub kind: Vec<String>,
    pub exim_id: Vec<Option<String>>,
    pub length: Vec<i64>,
    pub raw: Vec<Option<Vec<u8>>>,
}

/// `messages`: one row per reception (`<=`) line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MessageRows {
    pub keys: Keys,
    pub exim_id: Vec<String>,
    pub sender: Vec<String>,
    pub size: Vec<Option<i64>>,
    pub peer_name: Vec<Option<String>>,
    pub peer_ip: Vec<Option<String>>,
    pub protocol: Vec<Option<String>>,
    pub auth_user: Vec<Option<String>>,
    pub header_message_id: Vec<Option<String>>,
    pub parent_exim_id: Vec<Option<String>>,
    pub subject: Vec<Option<String>>,
    pub recipients: Vec<Option<String>>,
}

/// `deliveries`: one row per delivery line (`=> -> >> *> == **`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DeliveryRows {
    pub keys: Keys,
    pub exim_id: Vec<String>,
    pub flag: Vec<String>,
    pub recipient: Vec<String>,
    pub final_address: Vec<String>,
    pub router: Vec<Option<String>>,
    pub transport: Vec<Option<String>>,
    pub peer_name: Vec<Option<String>>,
    pub peer_ip: Vec<Option<String>>,
    pub confirmation: Vec<Option<String>>,
    pub remote_id: Vec<Option<String>>,
    pub smtp_code: Vec<Option<String>>,
    pub error: Vec<Option<String>>,
    pub queue_time_ms: Vec<Option<i64>>,
    pub delivery_time_ms: Vec<Option<i64>>,
}

/// `rejections`: one row per rejection line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RejectionRows {
    pub keys: Keys,
    pub exim_id: Vec<Option<String>>,
    pub stage: Vec<String>,
    pub temporary: Vec<bool>,
    pub peer_name: Vec<Option<String>>,
    pub peer_ip: Vec<Option<String>>,
    pub sender: Vec<Option<String>>,
    pub recipient: Vec<Option<String>>,
    pub reason: Vec<String>,
    pub smtp_code: Vec<Option<String>>,
}

/// The rows of some chunks, ready to insert.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rows {
    pub lines: LineRows,
    pub messages: MessageRows,
    pub deliveries: DeliveryRows,
    pub rejections: RejectionRows,
    /// The months the rows fall in: their partitions must exist.
    pub months: BTreeSet<Month>,
}

/// A line's place and time.
struct LineAt<'a> {
    source: &'a [u8],
    offset: i64,
    logged_ms: i64,
}

impl Rows {
    /// Adds the rows of one chunk's lines, read from the source whose
    /// fingerprint is `source`. A line without a time of its own or
    /// inherited takes the chunk's previous one, or the epoch: the time is
    /// part of the key, so it must be the same whenever the chunk is read.
    pub fn add_chunk(&mut self, source: &[u8], lines: &[StoredLine], raw_lines: bool) {
        let mut last_ms = 0;
        for line in lines {
            let logged_ms = line.logged_ms.unwrap_or(last_ms);
            last_ms = logged_ms;
            let at = LineAt {
                source,
                offset: i64::try_from(line.offset).unwrap_or(i64::MAX),
                logged_ms,
            };
            self.months.insert(month_of(logged_ms));
            self.add_line(&at, line, raw_lines);
        }
    }

    fn add_line(&mut self, at: &LineAt<'_>, line: &StoredLine, raw_lines: bool) {
        let entry = parse_line(&line.bytes);
        let exim_id = entry.message_id().map(|id| id.as_str().to_owned());
        self.lines.keys.push(at);
        self.lines.kind.push(entry.kind().name().to_owned());
        self.lines.exim_id.push(exim_id.clone());
        self.lines
            .length
            .push(i64::try_from(line.length).unwrap_or(i64::MAX));
        self.lines.raw.push(raw_lines.then(|| line.bytes.clone()));
        match (&entry.event, exim_id) {
            (Event::Reception(r), Some(exim_id)) => {
                let m = &mut self.messages;
                let host = r.host.unwrap_or_default();
                m.keys.push(at);
                m.exim_id.push(exim_id);
                m.sender.push(text(r.sender));
                m.size
                    .push(r.size_bytes().and_then(|s| i64::try_from(s).ok()));
                m.peer_name.push(host.name.map(text));
                m.peer_ip.push(host.ip.map(text));
                m.protocol.push(r.protocol.map(text));
                m.auth_user.push(r.auth.map(text));
                m.header_message_id.push(r.header_message_id.map(text));
                m.parent_exim_id
                    .push(r.bounce_of.map(|id| id.as_str().to_owned()));
                m.subject
                    .push(r.subject.map(|s| without_nul(quoted_text(s))));
                m.recipients.push(r.recipients.map(text));
            }
            (Event::Delivery(d), Some(exim_id)) => {
                let rows = &mut self.deliveries;
                let host = d.host.unwrap_or_default();
                let confirmation = d.confirmation.map(|c| without_nul(quoted_text(c)));
                rows.keys.push(at);
                rows.exim_id.push(exim_id);
                rows.flag.push(d.flag.symbol().to_owned());
                rows.recipient.push(text(d.address.recipient()));
                rows.final_address.push(text(d.address.final_address));
                rows.router.push(d.router.map(text));
                rows.transport.push(d.transport.map(text));
                rows.peer_name.push(host.name.map(text));
                rows.peer_ip.push(host.ip.map(text));
                rows.remote_id
                    .push(confirmation.as_deref().and_then(remote_queue_id));
                rows.confirmation.push(confirmation);
                rows.smtp_code
                    .push(d.smtp_code.map(|c| without_nul(c.to_text())));
                rows.error.push(d.error.map(text));
                rows.queue_time_ms.push(d.queue_time.and_then(|t| t.millis));
                rows.delivery_time_ms
                    .push(d.delivery_time.and_then(|t| t.millis));
            }
            (Event::Rejection(r), exim_id) => {
                let rows = &mut self.rejections;
                let host: Host<'_> = r.host.unwrap_or_default();
                rows.keys.push(at);
                rows.exim_id.push(exim_id);
                rows.stage.push(r.stage.name().to_owned());
                rows.temporary.push(r.temporary);
                rows.peer_name.push(host.name.map(text));
                rows.peer_ip.push(host.ip.map(text));
                rows.sender.push(r.sender.map(text));
                rows.recipient.push(r.recipient.map(text));
                rows.reason.push(text(r.reason));
                rows.smtp_code.push(r.smtp_code.map(|c| c.code.to_string()));
            }
            _ => {}
        }
    }
}

/// Bytes as PostgreSQL text: invalid UTF-8 and NUL (which `text` cannot
/// hold) become U+FFFD.
fn text(bytes: &[u8]) -> String {
    without_nul(String::from_utf8_lossy(bytes).into_owned())
}

/// Text for PostgreSQL: NUL, which `text` cannot hold, becomes U+FFFD.
fn without_nul(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text
    }
}

/// The queue id a receiving Exim gave, from its answer to the end of data
/// (`C="250 OK id=1rABCD-000123-4X"`, Exim's default `smtp_confirmation`):
/// the exact edge from this host's delivery to the next host's message.
pub fn remote_queue_id(confirmation: &str) -> Option<String> {
    let (_, after) = confirmation.split_once("id=")?;
    let id: String = after
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    let parts: Vec<&str> = id.split('-').collect();
    let exim_shaped = parts.len() == 3
        && matches!(
            (parts[0].len(), parts[1].len(), parts[2].len()),
            (6, 6, 2) | (6, 11, 4)
        );
    exim_shaped.then_some(id)
}

/// The calendar month of a time in the log's clock.
pub fn month_of(ms: i64) -> Month {
    let (year, month, _) = crate::parse::civil_from_days(ms.div_euclid(86_400_000));
    (year, month)
}

/// Whether `month` gets a partition of its own: from ten years before
/// `now`'s month to the month after it, as `exim_pilot.ensure_month`
/// (migration 0002) allows. Rows of other months go to the default
/// partitions.
pub fn has_partition(month: Month, now: Month) -> bool {
    let index = |(year, month): Month| year * 12 + i64::from(month) - 1;
    (index(now) - 120..=index(now) + 1).contains(&index(month))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_made_from_ten_years_back_to_next_month() {
        let now = (2026, 12);
        assert!(has_partition((2026, 12), now));
        assert!(has_partition((2027, 1), now));
        assert!(!has_partition((2027, 2), now));
        assert!(has_partition((2016, 12), now));
        assert!(!has_partition((2016, 11), now));
        assert!(!has_partition((9999, 12), now));
        assert!(!has_partition((1970, 1), now));
    }

    fn stored(offset: u64, logged_ms: Option<i64>, line: &str) -> StoredLine {
        StoredLine {
            offset,
            length: line.len() as u64,
            logged_ms,
            message: None,
            bytes: line.as_bytes().to_vec(),
        }
    }

    #[test]
    fn each_event_line_gives_its_row_and_every_line_a_line_row() {
        let lines = [
            stored(
                0,
                Some(1_000),
                "2024-03-01 10:00:00 1rAAAA-000001-AB <= alice@example.org H=mx.example.org [192.0.2.1] P=esmtp S=1234 id=abc@example.org T=\"Hi\\\"there\" for bob@example.net",
            ),
            stored(
                200,
                Some(2_000),
                "2024-03-01 10:00:01 1rAAAA-000001-AB => bob@example.net R=dnslookup T=remote_smtp H=mx.example.net [198.51.100.7] C=\"250 OK id=1rBBBB-000002-CD\" QT=1s DT=0.5s",
            ),
            stored(400, None, "  a continuation line"),
            stored(
                500,
                Some(3_000),
                "2024-03-01 10:00:02 H=bad.example [203.0.113.9] F=<spam@bad.example> rejected RCPT <x@example.org>: relay not permitted",
            ),
            stored(
                700,
                Some(4_000),
                "2024-03-01 10:00:03 1rAAAA-000001-AB Completed",
            ),
        ];
        let mut rows = Rows::default();
        rows.add_chunk(b"fp", &lines, true);
        assert_eq!(rows.lines.keys.len(), 5);
        assert_eq!(rows.lines.keys.offset, [0, 200, 400, 500, 700]);
        // The continuation takes the line before's time.
        assert_eq!(
            rows.lines.keys.logged_ms,
            [1_000, 2_000, 2_000, 3_000, 4_000]
        );
        assert_eq!(rows.lines.kind[4], "completed");
        assert_eq!(rows.messages.exim_id, ["1rAAAA-000001-AB"]);
        assert_eq!(rows.messages.sender, ["alice@example.org"]);
        assert_eq!(rows.messages.size, [Some(1234)]);
        assert_eq!(
            rows.messages.header_message_id,
            [Some("abc@example.org".to_owned())]
        );
        assert_eq!(rows.messages.subject, [Some("Hi\"there".to_owned())]);
        assert_eq!(rows.deliveries.flag, ["=>"]);
        assert_eq!(rows.deliveries.recipient, ["bob@example.net"]);
        assert_eq!(
            rows.deliveries.remote_id,
            [Some("1rBBBB-000002-CD".to_owned())]
        );
        assert_eq!(rows.deliveries.queue_time_ms, [Some(1000)]);
        assert_eq!(rows.rejections.stage, ["rcpt"]);
        assert_eq!(rows.rejections.peer_ip, [Some("203.0.113.9".to_owned())]);
        assert_eq!(rows.months, BTreeSet::from([(1970, 1)]));

        let mut without_raw = Rows::default();
        without_raw.add_chunk(b"fp", &lines, false);
        assert!(without_raw.lines.raw.iter().all(Option::is_none));
        assert_eq!(without_raw.messages, rows.messages);
    }

    #[test]
    fn remote_ids_are_only_exim_shaped_ones() {
        assert_eq!(
            remote_queue_id("250 OK id=1rBBBB-000002-CD"),
            Some("1rBBBB-000002-CD".into())
        );
        assert_eq!(
            remote_queue_id("250 OK id=1tQzAb-00000001eXy-0aBc"),
            Some("1tQzAb-00000001eXy-0aBc".into())
        );
        assert_eq!(remote_queue_id("250 2.0.0 Ok: queued as 4F5A12"), None);
        assert_eq!(remote_queue_id("250 OK id=abc"), None);
    }

    #[test]
    fn text_never_holds_nul_and_months_follow_the_calendar() {
        assert_eq!(text(b"a\0b\xff"), "a\u{FFFD}b\u{FFFD}");
        assert_eq!(month_of(0), (1970, 1));
        assert_eq!(month_of(-1), (1969, 12));
        // 2024-03-01 00:00:00 and the millisecond before it.
        assert_eq!(month_of(1_709_251_200_000), (2024, 3));
        assert_eq!(month_of(1_709_251_199_999), (2024, 2));
    }
}
