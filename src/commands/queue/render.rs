//! How `exim-pilot queue` prints messages: text like `exim -bp` with each
//! waiting recipient's history under it, JSON lines shaped like
//! `postqueue -j`, and a per-domain summary like exiqsumm.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use crate::query::queue::RecipientHistory;
use crate::queue::filter::queued_seconds;
use crate::queue::listing::QueuedMessage;

type Histories = HashMap<(String, String), RecipientHistory>;

fn text_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// One message as text.
pub fn text(message: &QueuedMessage, histories: &Histories) -> String {
    let mut out = String::new();
    let age = message.age.map_or_else(String::new, |age| {
        let unit = match age.unit {
            crate::queue::listing::AgeUnit::Minutes => "m",
            crate::queue::listing::AgeUnit::Hours => "h",
            crate::queue::listing::AgeUnit::Days => "d",
        };
        format!("{}{unit}", age.value)
    });
    let _ = write!(
        out,
        "{age:>4} {:>5} {} <{}>",
        message.size_text,
        message.id,
        text_of(&message.sender)
    );
    if message.frozen {
        out.push_str(" *** frozen ***");
    }
    out.push('\n');
    if let Some(error) = &message.spool_error {
        let _ = writeln!(out, "    *** {error} ***");
    }
    for recipient in &message.recipients {
        let address = text_of(&recipient.address);
        let mark = match (recipient.delivered, recipient.generated) {
            (true, true) => "+D",
            (true, false) => " D",
            _ => "  ",
        };
        let _ = writeln!(out, "       {mark} {address}");
        if recipient.delivered {
            continue;
        }
        if let Some(history) = histories.get(&(message.id.clone(), address))
            && history.attempts > 0
        {
            let _ = writeln!(
                out,
                "            {} attempts, the last {}: {}",
                history.attempts,
                history.last_attempt.as_deref().unwrap_or("?"),
                history.last_error.as_deref().unwrap_or("(no error logged)")
            );
        }
    }
    out.push('\n');
    out
}

/// One message as a JSON line (`postqueue -j`'s names, and the history).
pub fn json(message: &QueuedMessage, histories: &Histories) -> serde_json::Value {
    let views = crate::query::queue::views(std::slice::from_ref(message), histories);
    serde_json::to_value(&views[0]).unwrap_or_default()
}

/// Per domain of the waiting recipients: messages, bytes, the oldest and
/// the newest message's time on the queue (as exiqsumm sums it up), summed
/// a message at a time.
#[derive(Debug, Default)]
pub struct Summary {
    domains: BTreeMap<String, DomainSum>,
    messages: u64,
}

#[derive(Debug)]
struct DomainSum {
    messages: u64,
    bytes: u64,
    oldest: u64,
    newest: u64,
}

impl Summary {
    /// Counts `message` in, its age taken at `now`.
    pub fn add(&mut self, message: &QueuedMessage, now: i64) {
        self.messages += 1;
        let age = queued_seconds(message, now);
        let mut seen = std::collections::BTreeSet::new();
        for recipient in message.recipients.iter().filter(|r| !r.delivered) {
            let address = text_of(&recipient.address);
            let domain = address
                .rsplit_once('@')
                .map_or("(local)", |(_, domain)| domain)
                .to_ascii_lowercase();
            if !seen.insert(domain.clone()) {
                continue;
            }
            let entry = self.domains.entry(domain).or_insert(DomainSum {
                messages: 0,
                bytes: 0,
                oldest: 0,
                newest: u64::MAX,
            });
            entry.messages += 1;
            entry.bytes += message.size_bytes;
            entry.oldest = entry.oldest.max(age);
            entry.newest = entry.newest.min(age);
        }
    }

    /// The table, a line per domain and the total.
    pub fn render(&self) -> String {
        let mut out = format!(
            "{:>7} {:>9} {:>8} {:>8}  domain\n",
            "count", "volume", "oldest", "newest"
        );
        let ago = |seconds: u64| {
            humantime::format_duration(std::time::Duration::from_secs(seconds - seconds % 60))
                .to_string()
        };
        for (domain, d) in &self.domains {
            let _ = writeln!(
                out,
                "{:>7} {:>9} {:>8} {:>8}  {domain}",
                d.messages,
                d.bytes,
                ago(d.oldest),
                ago(d.newest)
            );
        }
        let _ = writeln!(out, "{:>7} messages in all", self.messages);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::listing::parse_listing;

    const LISTING: &[u8] = b" 5m   328 1xWZzS-0001uN-1x <alice@example.org>
          bob@example.net
        D carol@example.net

 3h  2.9K 1xWZzT-0001uO-1y <> *** frozen ***
          dave@Example.NET

";

    #[test]
    fn text_and_json_carry_the_listing_and_the_history() {
        let (messages, _) = parse_listing(LISTING);
        let mut histories = Histories::new();
        histories.insert(
            ("1xWZzS-0001uN-1x".into(), "bob@example.net".into()),
            RecipientHistory {
                status: "deferred".into(),
                attempts: 3,
                last_attempt: Some("2026-11-26 14:00:00".into()),
                last_error: Some("retry timeout exceeded".into()),
            },
        );
        let text = text(&messages[0], &histories);
        assert!(
            text.starts_with("  5m   328 1xWZzS-0001uN-1x <alice@example.org>\n"),
            "{text}"
        );
        assert!(
            text.contains("3 attempts, the last 2026-11-26 14:00:00: retry timeout exceeded"),
            "{text}"
        );
        assert!(text.contains("        D carol@example.net"), "{text}");
        let json = json(&messages[0], &histories);
        assert_eq!(json["queue_id"], "1xWZzS-0001uN-1x");
        assert_eq!(json["arrival_time"], 1_795_701_502);
        assert_eq!(json["message_size"], 328);
        assert_eq!(
            json["recipients"][0]["delay_reason"],
            "retry timeout exceeded"
        );
        assert_eq!(json["recipients"][0]["attempts"], 3);
        assert_eq!(json["recipients"][1]["delivered"], true);
        let bounce = super::json(&messages[1], &histories);
        assert_eq!(
            (bounce["sender"].as_str(), bounce["frozen"].as_bool()),
            (Some(""), Some(true))
        );
    }

    #[test]
    fn the_summary_counts_each_message_once_per_waiting_domain() {
        let (messages, _) = parse_listing(LISTING);
        let mut sum = Summary::default();
        let now = crate::store::repo::now_ms() / 1000;
        messages.iter().for_each(|m| sum.add(m, now));
        let summary = sum.render();
        let line = summary
            .lines()
            .find(|l| l.ends_with("example.net"))
            .unwrap();
        // Two messages wait for example.net (case folded); carol was delivered.
        assert!(line.trim_start().starts_with("2 "), "{summary}");
        assert!(line.contains(&(328 + 2970).to_string()), "{summary}");
        assert!(summary.ends_with("      2 messages in all\n"), "{summary}");
    }
}
