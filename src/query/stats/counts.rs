//! The figures of `stats` that add up: lines by kind and what those kinds
//! name (received, delivered, deferred...), with rejections by permanence.
//! One type for them, whether counted from the local database, summed
//! across the fleet's hosts, or checked by a test.

use std::collections::BTreeMap;

use serde::Serialize;

/// Lines by kind and the counts named from them.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct LineCounts {
    /// Log lines.
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
}

impl LineCounts {
    /// The names in [`LineCounts`]' JSON whose values add up across hosts:
    /// every field but `kinds`.
    pub const NAMES: [&'static str; 10] = [
        "lines",
        "received",
        "delivered",
        "deferred",
        "bounced",
        "completed",
        "rejected",
        "temporarily_rejected",
        "frozen",
        "unrecognised",
    ];

    /// The counts of lines by `kinds`, with rejections by permanence.
    pub fn from_kinds(kinds: BTreeMap<String, u64>, rejected: u64, temporarily: u64) -> Self {
        let kind = |name: &str| kinds.get(name).copied().unwrap_or(0);
        LineCounts {
            lines: kinds.values().sum(),
            received: kind("reception") + kind("fake_reject"),
            delivered: kind("delivery") + kind("delivery_more"),
            deferred: kind("deferral"),
            bounced: kind("failure"),
            completed: kind("completed"),
            rejected,
            temporarily_rejected: temporarily,
            frozen: kind("frozen"),
            unrecognised: kind("unrecognised"),
            kinds,
        }
    }

    /// `=>` lines (the first delivery of a message).
    pub fn delivered_messages(&self) -> u64 {
        self.kinds.get("delivery").copied().unwrap_or(0)
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &LineCounts) {
        let mut kinds = std::mem::take(&mut self.kinds);
        for (kind, n) in &other.kinds {
            *kinds.entry(kind.clone()).or_default() += n;
        }
        let rejected = self.rejected + other.rejected;
        let temporarily = self.temporarily_rejected + other.temporarily_rejected;
        *self = LineCounts::from_kinds(kinds, rejected, temporarily);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_named_from_kinds_and_add_up() {
        let kinds = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
            pairs.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
        };
        let mut one = LineCounts::from_kinds(
            kinds(&[("reception", 3), ("fake_reject", 1), ("delivery", 2)]),
            4,
            1,
        );
        assert_eq!((one.lines, one.received, one.delivered), (6, 4, 2));
        let two = LineCounts::from_kinds(
            kinds(&[("delivery_more", 5), ("deferral", 2), ("unrecognised", 1)]),
            0,
            2,
        );
        one.add(&two);
        assert_eq!(one.lines, 14);
        assert_eq!((one.delivered, one.delivered_messages()), (7, 2));
        assert_eq!((one.deferred, one.unrecognised), (2, 1));
        assert_eq!((one.rejected, one.temporarily_rejected), (4, 3));
        let json = serde_json::to_value(&one).unwrap();
        for name in LineCounts::NAMES {
            assert!(json[name].is_u64(), "{name} in {json}");
        }
    }
}
