//! The human form of the report, in eximstats' order and layout.

use super::{Row, Stats};

/// The human report, in eximstats' order.
pub fn render(stats: &Stats) -> String {
    let mut out = String::new();
    summary(&mut out, stats);
    section(&mut out, "Deliveries by transport", &stats.by_transport);
    hours(
        &mut out,
        "Messages received per hour",
        &stats.received_per_hour,
    );
    hours(&mut out, "Deliveries per hour", &stats.delivered_per_hour);
    section(&mut out, "Top senders by message count", &stats.top_senders);
    section(
        &mut out,
        "Top sending hosts by message count",
        &stats.top_sending_hosts,
    );
    section(
        &mut out,
        "Top recipient domains by delivery count",
        &stats.top_recipient_domains,
    );
    section(
        &mut out,
        "Rejections by reason",
        &stats.rejections_by_reason,
    );
    section(&mut out, "Rejections by IP", &stats.rejections_by_ip);
    section(&mut out, "Deferral and failure errors", &stats.errors);
    section(
        &mut out,
        "Time spent on the queue (completed messages)",
        &stats.queue_times,
    );
    section(&mut out, "Time spent delivering", &stats.delivery_times);
    let status: Vec<Row> = stats
        .message_status
        .iter()
        .map(|(key, count)| Row {
            key: key.clone(),
            count: *count,
            volume: None,
        })
        .collect();
    section(&mut out, "Messages by status", &status);
    let problems: Vec<Row> = crate::parse::Kind::HOST_PROBLEMS
        .iter()
        .filter_map(|kind| {
            let count = *stats.counts.kinds.get(kind.name())?;
            Some(Row {
                key: kind.name().to_owned(),
                count,
                volume: None,
            })
        })
        .collect();
    section(&mut out, "Host problems and DMARC results", &problems);
    out
}

/// The heading, eximstats' grand total summary and the log events.
fn summary(out: &mut String, stats: &Stats) {
    use std::fmt::Write as _;
    let percent = |part: u64, whole: u64| 100.0 * part as f64 / whole.max(1) as f64;
    let t = &stats.totals;
    let _ = writeln!(
        out,
        "exim-pilot statistics from {} to {}\n",
        stats.since.as_deref().unwrap_or("the first line"),
        stats.until.as_deref().unwrap_or("the last line")
    );
    let _ = writeln!(out, "Grand total summary\n-------------------");
    let _ = writeln!(
        out,
        "  {:<10} {:>12} {:>9} {:>10} {:>6} {:>14} {:>14}",
        "TOTAL", "Volume", "Messages", "Addresses", "Hosts", "Delayed", "Failed"
    );
    let _ = writeln!(
        out,
        "  {:<10} {:>12} {:>9} {:>10} {:>6} {:>7} {:>5.1}% {:>7} {:>5.1}%",
        "Received",
        t.received_volume,
        t.received_messages,
        "",
        t.received_hosts,
        t.delayed_messages,
        percent(t.delayed_messages, t.received_messages),
        t.failed_messages,
        percent(t.failed_messages, t.received_messages)
    );
    let _ = writeln!(
        out,
        "  {:<10} {:>12} {:>9} {:>10}",
        "Delivered", t.delivered_volume, t.delivered_messages, t.delivered_addresses
    );
    let _ = writeln!(
        out,
        "  {:<10} {:>12} {:>9} {:>10} {:>6}\n",
        "Rejects", "", t.rejected_messages, "", t.rejected_hosts
    );
    let _ = writeln!(
        out,
        "Log events: {} lines, {} received, {} delivered, {} deferred, {} bounced, {} completed, {} rejected ({} temporarily), {} frozen, {} unrecognised\n",
        stats.counts.lines,
        stats.counts.received,
        stats.counts.delivered,
        stats.counts.deferred,
        stats.counts.bounced,
        stats.counts.completed,
        stats.counts.rejected,
        stats.counts.temporarily_rejected,
        stats.counts.frozen,
        stats.counts.unrecognised
    );
}

fn section(out: &mut String, title: &str, rows: &[Row]) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "{title}\n{}", "-".repeat(title.len()));
    if rows.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for row in rows {
        match row.volume {
            Some(volume) => {
                let _ = writeln!(out, "  {:>8} {:>12}  {}", row.count, volume, row.key);
            }
            None => {
                let _ = writeln!(out, "  {:>8}  {}", row.count, row.key);
            }
        }
    }
    out.push('\n');
}

fn hours(out: &mut String, title: &str, counts: &[u64]) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "{title}\n{}", "-".repeat(title.len()));
    for (hour, count) in counts.iter().enumerate() {
        let _ = writeln!(out, "  {hour:02}-{:02} {count:>8}", hour + 1);
    }
    out.push('\n');
}
