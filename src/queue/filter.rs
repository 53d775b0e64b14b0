//! Which queued messages a listing or an action takes (pure): exiqgrep's
//! choices (frozen or not, bounces, sender and recipient patterns, older or
//! younger than an age) and a cap. Ages come from the message id (its
//! arrival, to the second), not from the listing's coarse age column.

use regex::bytes::Regex;

use super::listing::{ListingReader, QueuedMessage, arrival_seconds};

/// The choices; the default takes every message.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// `Some(true)`: frozen only; `Some(false)`: active (not frozen) only.
    pub frozen: Option<bool>,
    /// Bounces only (sender `<>`).
    pub bounces: bool,
    /// The sender matches (case-insensitive).
    pub sender: Option<Regex>,
    /// Some recipient matches (case-insensitive).
    pub recipient: Option<Regex>,
    /// Queued at least this many seconds.
    pub older_than: Option<u64>,
    /// Queued at most this many seconds.
    pub younger_than: Option<u64>,
}

impl Filter {
    /// A pattern as the filter takes it: case-insensitive, bounded in
    /// size (a pattern is an operator's input, and may come from the web).
    pub fn pattern(text: &str) -> Result<Regex, regex::Error> {
        regex::bytes::RegexBuilder::new(text)
            .case_insensitive(true)
            .size_limit(1 << 20)
            .build()
    }

    /// Whether `message` is taken, at `now` (seconds since 1970).
    pub fn takes(&self, message: &QueuedMessage, now: i64) -> bool {
        if self.frozen.is_some_and(|frozen| frozen != message.frozen) {
            return false;
        }
        if self.bounces && !message.sender.is_empty() {
            return false;
        }
        if let Some(sender) = &self.sender
            && !sender.is_match(&message.sender)
        {
            return false;
        }
        if let Some(recipient) = &self.recipient
            && !message
                .recipients
                .iter()
                .any(|r| recipient.is_match(&r.address))
        {
            return false;
        }
        if self.older_than.is_some() || self.younger_than.is_some() {
            let age = queued_seconds(message, now);
            if self.older_than.is_some_and(|older| age < older)
                || self.younger_than.is_some_and(|younger| age > younger)
            {
                return false;
            }
        }
        true
    }

    /// Whether it takes every message (no choice made).
    pub fn is_everything(&self) -> bool {
        self.frozen.is_none()
            && !self.bounces
            && self.sender.is_none()
            && self.recipient.is_none()
            && self.older_than.is_none()
            && self.younger_than.is_none()
    }

    /// Reads `listing` message by message and keeps the first `limit` that
    /// it takes at `now`: a long queue costs its listing's bytes and
    /// `limit` messages, not every message parsed at once.
    pub fn choose(&self, listing: &[u8], now: i64, limit: usize) -> Chosen {
        let mut chosen = Chosen::default();
        chosen.skipped = self.each_taken(listing, now, |message| {
            chosen.matching += 1;
            if chosen.messages.len() < limit {
                chosen.messages.push(message);
            }
        });
        chosen
    }

    /// Hands each message of `listing` that it takes at `now` to `visit`,
    /// in the listing's order, one at a time; returns the count of lines
    /// that fit no part of Exim's format.
    pub fn each_taken(
        &self,
        listing: &[u8],
        now: i64,
        mut visit: impl FnMut(QueuedMessage),
    ) -> usize {
        let mut reader = ListingReader::default();
        for line in listing.split(|&b| b == b'\n') {
            reader.line(line);
            reader
                .take()
                .into_iter()
                .filter(|m| self.takes(m, now))
                .for_each(&mut visit);
        }
        let skipped = reader.skipped;
        reader
            .finish()
            .into_iter()
            .filter(|m| self.takes(m, now))
            .for_each(&mut visit);
        skipped
    }

    /// The choices as JSON, for the audit record of an action taken on them.
    pub fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "frozen": self.frozen,
            "bounces": self.bounces,
            "sender": self.sender.as_ref().map(Regex::as_str),
            "recipient": self.recipient.as_ref().map(Regex::as_str),
            "older_than_seconds": self.older_than,
            "younger_than_seconds": self.younger_than,
        })
    }
}

/// What [`Filter::choose`] took from a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chosen {
    /// The first messages taken, in the listing's order, at most the limit.
    pub messages: Vec<QueuedMessage>,
    /// How many the filter takes in all.
    pub matching: usize,
    /// Lines of the listing that fit no part of Exim's format.
    pub skipped: usize,
}

/// How long `message` has been queued at `now`: from its id, or from the
/// listing's age when the id does not tell.
pub fn queued_seconds(message: &QueuedMessage, now: i64) -> u64 {
    match arrival_seconds(&message.id) {
        Some(arrived) => u64::try_from(now - arrived).unwrap_or(0),
        None => message.age.map_or(0, super::listing::Age::seconds),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::listing::parse_listing;

    const LISTING: &str = " 5m   328 1xWZzS-0001uN-1x <alice@example.org>
          bob@example.net

 3h  2.9K 1xWZzT-0001uO-1y <> *** frozen ***
          carol@example.com

 4d   12K 1xWZzU-0001uP-1z <Dave@Example.ORG>
        D erin@example.net
          frank@other.example
";

    fn taken(filter: &Filter) -> Vec<String> {
        let (messages, _) = parse_listing(LISTING.as_bytes());
        // The second after the first message arrived: its id says when.
        let now = arrival_seconds("1xWZzS-0001uN-1x").unwrap() + 100;
        messages
            .into_iter()
            .filter(|m| filter.takes(m, now))
            .map(|m| m.id)
            .collect()
    }

    #[test]
    fn each_choice_narrows_and_together_they_all_hold() {
        assert_eq!(taken(&Filter::default()).len(), 3);
        assert!(Filter::default().is_everything());
        let frozen = Filter {
            frozen: Some(true),
            ..Filter::default()
        };
        assert_eq!(taken(&frozen), ["1xWZzT-0001uO-1y"]);
        let active = Filter {
            frozen: Some(false),
            ..Filter::default()
        };
        assert_eq!(taken(&active).len(), 2);
        let bounces = Filter {
            bounces: true,
            ..Filter::default()
        };
        assert_eq!(taken(&bounces), ["1xWZzT-0001uO-1y"]);
        let sender = Filter {
            sender: Some(Filter::pattern("dave@example\\.org").unwrap()),
            ..Filter::default()
        };
        assert_eq!(taken(&sender), ["1xWZzU-0001uP-1z"]);
        let recipient = Filter {
            recipient: Some(Filter::pattern("@other\\.").unwrap()),
            ..Filter::default()
        };
        assert_eq!(taken(&recipient), ["1xWZzU-0001uP-1z"]);
        // Ages from the ids, to the second (the listing says 5m, 3h, 4d):
        // they arrived 100, 99 and 98 s before "now".
        let young = Filter {
            younger_than: Some(98),
            ..Filter::default()
        };
        assert_eq!(taken(&young), ["1xWZzU-0001uP-1z"]);
        let old = Filter {
            older_than: Some(100),
            younger_than: Some(101),
            ..Filter::default()
        };
        assert_eq!(taken(&old), ["1xWZzS-0001uN-1x"]);
        let none = Filter {
            bounces: true,
            frozen: Some(false),
            ..Filter::default()
        };
        assert!(taken(&none).is_empty());
        assert_eq!(sender.describe()["sender"], "dave@example\\.org");
    }

    #[test]
    fn a_pattern_too_large_is_refused() {
        assert!(Filter::pattern("(a+)+{1000}{1000}").is_err());
    }

    #[test]
    fn choosing_keeps_the_first_taken_and_counts_them_all() {
        let now = arrival_seconds("1xWZzS-0001uN-1x").unwrap() + 100;
        let listing = format!("{LISTING}a line of no known shape\n");
        let active = Filter {
            frozen: Some(false),
            ..Filter::default()
        };
        let chosen = active.choose(listing.as_bytes(), now, 1);
        let ids: Vec<&str> = chosen.messages.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["1xWZzS-0001uN-1x"]);
        assert_eq!((chosen.matching, chosen.skipped), (2, 1));
        let all = Filter::default().choose(LISTING.as_bytes(), now, usize::MAX);
        assert_eq!(all.messages, parse_listing(LISTING.as_bytes()).0);
    }
}
