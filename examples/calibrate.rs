//! The statistics a generated log's shape is calibrated to, measured on
//! real logs with the project's parser: the share of each line kind,
//! recipients per message, distinct senders, recipients and client hosts,
//! message sizes, and how often subjects, Message-IDs, confirmations and
//! error texts repeat. `synth::profile`'s `realistic` profile quotes
//! its output.
//!
//! `cargo run --release --example calibrate -- FILE...`

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::Write as _;

use exim_pilot::parse::{Event, Kind, parse_line};

/// Distinct values and how many were seen: how often a text repeats.
#[derive(Default)]
struct Repeats {
    seen: u64,
    distinct: HashSet<Vec<u8>>,
    bytes: u64,
}

impl Repeats {
    fn add(&mut self, value: &[u8]) {
        self.seen += 1;
        self.bytes += value.len() as u64;
        self.distinct.insert(value.to_vec());
    }

    fn row(&self, out: &mut String, name: &str, of: u64) {
        let share = |n: u64, d: u64| {
            if d == 0 {
                0.0
            } else {
                100.0 * n as f64 / d as f64
            }
        };
        let _ = writeln!(
            out,
            "| {name} | {} | {:.1}% of {of} | {:.1}% distinct | {:.0} bytes |",
            self.seen,
            share(self.seen, of),
            share(self.distinct.len() as u64, self.seen),
            if self.seen == 0 {
                0.0
            } else {
                self.bytes as f64 / self.seen as f64
            },
        );
    }
}

#[derive(Default)]
struct Tally {
    lines: u64,
    kinds: HashMap<&'static str, u64>,
    line_lengths: Vec<u32>,
    sizes: Vec<u64>,
    recipients_per_message: HashMap<Vec<u8>, HashSet<Vec<u8>>>,
    senders: HashSet<Vec<u8>>,
    recipients: HashSet<Vec<u8>>,
    client_ips: HashSet<Vec<u8>>,
    subjects: Repeats,
    message_ids: Repeats,
    confirmations: Repeats,
    errors: Repeats,
    rejection_reasons: Repeats,
    receptions: u64,
    deliveries: u64,
}

impl Tally {
    fn line(&mut self, line: &[u8]) {
        self.lines += 1;
        self.line_lengths
            .push(u32::try_from(line.len()).unwrap_or(u32::MAX));
        let entry = parse_line(line);
        *self.kinds.entry(entry.kind().name()).or_default() += 1;
        let id = entry
            .prefix
            .and_then(|prefix| prefix.message_id)
            .map(|id| id.as_str().as_bytes().to_vec());
        match &entry.event {
            Event::Reception(reception) => {
                self.receptions += 1;
                self.senders.insert(reception.sender.to_vec());
                if let Some(ip) = reception.host.and_then(|host| host.ip) {
                    self.client_ips.insert(ip.to_vec());
                }
                if let Some(size) = reception.size_bytes() {
                    self.sizes.push(size);
                }
                if let Some(subject) = reception.subject {
                    self.subjects.add(subject);
                }
                if let Some(message_id) = reception.header_message_id {
                    self.message_ids.add(message_id);
                }
                if let Some(id) = id {
                    let known = self.recipients_per_message.entry(id).or_default();
                    for address in reception.recipient_list() {
                        known.insert(address.to_vec());
                    }
                }
            }
            Event::Delivery(delivery) => {
                let address = delivery.address.recipient().to_vec();
                self.recipients.insert(address.clone());
                if matches!(entry.kind(), Kind::Delivery | Kind::DeliveryMore) {
                    self.deliveries += 1;
                    if let Some(confirmation) = delivery.confirmation {
                        self.confirmations.add(confirmation);
                    }
                }
                if let Some(error) = delivery.error {
                    self.errors.add(error);
                }
                if let Some(id) = id {
                    self.recipients_per_message
                        .entry(id)
                        .or_default()
                        .insert(address);
                }
            }
            Event::Rejection(rejection) => {
                self.rejection_reasons.add(rejection.reason);
                if let Some(ip) = rejection.host.and_then(|host| host.ip) {
                    self.client_ips.insert(ip.to_vec());
                }
            }
            _ => {}
        }
    }

    fn report(mut self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} lines, {} receptions, {} deliveries\n",
            self.lines, self.receptions, self.deliveries
        );
        let _ = writeln!(out, "| kind | lines | share |\n| --- | --- | --- |");
        let mut kinds: Vec<_> = self.kinds.iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (kind, count) in kinds {
            let _ = writeln!(
                out,
                "| {kind} | {count} | {:.2}% |",
                100.0 * *count as f64 / self.lines as f64
            );
        }
        let _ = writeln!(
            out,
            "\n| text | seen | of | distinct | mean length |\n| --- | --- | --- | --- | --- |"
        );
        self.subjects
            .row(&mut out, "subject (`T=`)", self.receptions);
        self.message_ids
            .row(&mut out, "Message-ID (`id=`)", self.receptions);
        self.confirmations
            .row(&mut out, "confirmation (`C=`)", self.deliveries);
        self.errors.row(&mut out, "delivery error", self.lines);
        self.rejection_reasons
            .row(&mut out, "rejection reason", self.lines);
        let messages = self.recipients_per_message.len().max(1) as f64;
        let mut per_message: HashMap<usize, u64> = HashMap::new();
        for recipients in self.recipients_per_message.values() {
            *per_message.entry(recipients.len()).or_default() += 1;
        }
        let mut per_message: Vec<_> = per_message.into_iter().collect();
        per_message.sort();
        let _ = writeln!(
            out,
            "\nrecipients per message (messages with an id seen: {messages}):"
        );
        for (count, messages_with) in per_message {
            let _ = writeln!(out, "  {count}: {messages_with}");
        }
        let _ = writeln!(
            out,
            "\ndistinct senders {}, recipients {}, client IPs {} (per 1,000 receptions: {:.0}, {:.0}, {:.0})",
            self.senders.len(),
            self.recipients.len(),
            self.client_ips.len(),
            per_thousand(self.senders.len(), self.receptions),
            per_thousand(self.recipients.len(), self.receptions),
            per_thousand(self.client_ips.len(), self.receptions),
        );
        self.sizes.sort_unstable();
        let _ = writeln!(out, "message sizes (S=): {}", percentiles(&self.sizes));
        self.line_lengths.sort_unstable();
        let lengths: Vec<u64> = self.line_lengths.iter().map(|&n| u64::from(n)).collect();
        let _ = writeln!(out, "line lengths: {}", percentiles(&lengths));
        out
    }
}

fn per_thousand(count: usize, of: u64) -> f64 {
    if of == 0 {
        0.0
    } else {
        1000.0 * count as f64 / of as f64
    }
}

/// p10, p50, p90, p99 and max of sorted `values`.
fn percentiles(values: &[u64]) -> String {
    let at = |p: usize| {
        values
            .get(values.len().saturating_sub(1) * p / 100)
            .copied()
            .unwrap_or(0)
    };
    format!(
        "p10 {} p50 {} p90 {} p99 {} max {} ({} values)",
        at(10),
        at(50),
        at(90),
        at(99),
        values.last().copied().unwrap_or(0),
        values.len()
    )
}

fn main() -> std::io::Result<()> {
    let mut tally = Tally::default();
    for path in std::env::args().skip(1) {
        let bytes = std::fs::read(&path)?;
        for line in bytes.split(|&b| b == b'\n').filter(|line| !line.is_empty()) {
            tally.line(line);
        }
    }
    // Quiet on a closed pipe (`| head`), like any filter.
    match std::io::stdout().write_all(tally.report().as_bytes()) {
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}
