//! What the report takes from `attempts` (and, through them, from the
//! recipients and the messages' sizes): deliveries by transport, hour and
//! domain, delivery times, and errors spelled as the `delivery_attempts`
//! view spells them. Pure, like the rest of the tally.

use rustc_hash::FxHashMap as HashMap;

use super::Row;
use super::tally::{Bounds, Domains, Durations, Volume, contenders, hour_of_day, ranked, row};
use std::collections::BTreeMap;

/// Who an attempt was for, as far as the shell knows while reading it.
#[derive(Debug, Clone, Copy)]
pub(super) enum Recipient<'a> {
    /// No recipient row.
    None,
    /// Its address, read with the attempt.
    Address(&'a str),
    /// Its domain's number in the shared [`Domains`] (`None`: an address
    /// without `@`), for a delivery; an error is given the address.
    Numbered(Option<u32>),
}

/// One `attempts` row, as the report reads it.
#[derive(Debug, Clone, Copy)]
pub(super) struct AttemptRow<'a> {
    pub flag: &'a str,
    pub attempted_ms: i64,
    pub transport_id: Option<i64>,
    pub delivery_time_ms: Option<i64>,
    pub error_text_id: Option<i64>,
    pub error_address_at: Option<i64>,
    /// Set only when a router rewrote the recipient's address.
    pub final_address: Option<&'a str>,
    /// The message's size.
    pub size: Option<i64>,
    pub recipient: Recipient<'a>,
}

/// An error as the `delivery_attempts` view spells it: a text, with the
/// address put back at a character position.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ErrorKey {
    /// The text as stored (`None`: no text, or no address to put back).
    Text(Option<i64>),
    /// The text with `address` inserted after `at` characters.
    WithAddress(i64, i64, Box<str>),
}

/// What the report takes from `attempts` (and, through them, from the
/// recipients and the messages' sizes).
#[derive(Debug, Default)]
pub(super) struct Attempts {
    /// `=>` lines and their messages' bytes.
    pub delivered: Volume,
    /// `=>` per transport id.
    transports: HashMap<Option<i64>, Volume>,
    pub delivered_per_hour: [u64; 24],
    pub delivery_times: Durations,
    /// Deliveries per domain, by the domain's number in `domains`.
    domains: Domains,
    domain_volumes: Vec<Volume>,
    errors: HashMap<ErrorKey, u64>,
}

/// Every flag but a deferral's and a failure's is a delivery, as the
/// `outcome` column has it.
pub(super) fn is_delivered(flag: &str) -> bool {
    flag != "==" && flag != "**"
}

impl Attempts {
    /// For rows whose recipients are [`Recipient::Numbered`] in `domains`.
    pub fn numbered_by(domains: Domains) -> Attempts {
        Attempts {
            domains,
            ..Attempts::default()
        }
    }

    pub fn add(&mut self, row: &AttemptRow<'_>, bounds: Bounds) {
        if !bounds.hold(Some(row.attempted_ms)) {
            return;
        }
        if row.flag == "=>" {
            self.delivered.add(row.size);
            self.transports
                .entry(row.transport_id)
                .or_default()
                .add(row.size);
        }
        if row.flag == "=>" || row.flag == "->" {
            self.delivered_per_hour[hour_of_day(row.attempted_ms)] += 1;
        }
        if is_delivered(row.flag) {
            if let Some(ms) = row.delivery_time_ms {
                self.delivery_times.add(ms);
            }
            let domain = match row.recipient {
                Recipient::None => None,
                Recipient::Address(address) => self.domains.id_of(address),
                Recipient::Numbered(domain) => domain,
            };
            if let Some(index) = domain.and_then(|id| usize::try_from(id).ok()) {
                if self.domain_volumes.len() <= index {
                    self.domain_volumes.resize(index + 1, Volume::default());
                }
                self.domain_volumes[index].add(row.size);
            }
            return;
        }
        let key = match (row.error_text_id, row.error_address_at) {
            (text, None) => ErrorKey::Text(text),
            (Some(text), Some(at)) => match (row.final_address, row.recipient) {
                (Some(address), _) | (None, Recipient::Address(address)) => {
                    ErrorKey::WithAddress(text, at, address.into())
                }
                (None, Recipient::None | Recipient::Numbered(_)) => ErrorKey::Text(None),
            },
            (None, Some(_)) => ErrorKey::Text(None),
        };
        *self.errors.entry(key).or_default() += 1;
    }

    /// Adds what `other` counted, both numbered by the same [`Domains`].
    pub fn merge(&mut self, other: Attempts) {
        self.delivered.merge(other.delivered);
        for (transport, volume) in other.transports {
            self.transports.entry(transport).or_default().merge(volume);
        }
        for (hour, count) in other.delivered_per_hour.iter().enumerate() {
            self.delivered_per_hour[hour] += count;
        }
        self.delivery_times.merge(&other.delivery_times);
        if self.domain_volumes.len() < other.domain_volumes.len() {
            self.domain_volumes
                .resize(other.domain_volumes.len(), Volume::default());
        }
        for (index, volume) in other.domain_volumes.into_iter().enumerate() {
            self.domain_volumes[index].merge(volume);
        }
        for (key, count) in other.errors {
            *self.errors.entry(key).or_default() += count;
        }
    }

    /// `=>` per transport: `coalesce(transport, '(none)')`, count, bytes.
    pub fn by_transport<E>(
        &self,
        mut text: impl FnMut(i64) -> Result<Option<String>, E>,
    ) -> Result<Vec<Row>, E> {
        let mut named: BTreeMap<String, Volume> = BTreeMap::new();
        for (id, volume) in &self.transports {
            let name = match id {
                Some(id) => text(*id)?,
                None => None,
            };
            named
                .entry(name.unwrap_or_else(|| "(none)".to_owned()))
                .or_default()
                .merge(*volume);
        }
        let mut rows: Vec<Row> = named
            .into_iter()
            .map(|(key, volume)| Row {
                key,
                count: volume.count,
                volume: Some(volume.bytes),
            })
            .collect();
        // `ORDER BY count DESC, key`: every transport, not a top list.
        rows.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
        Ok(rows)
    }

    pub fn top_recipient_domains(&self) -> Vec<Row> {
        let domains = self
            .domain_volumes
            .iter()
            .enumerate()
            .filter(|(_, volume)| volume.count > 0)
            .filter_map(|(index, volume)| Some((u32::try_from(index).ok()?, *volume)));
        ranked(
            contenders(domains)
                .into_iter()
                .map(|(id, volume)| row(self.domains.name(id).to_owned(), volume))
                .collect(),
        )
    }

    /// Deferral and failure texts, most frequent first.
    pub fn errors<E>(
        &mut self,
        mut text: impl FnMut(i64) -> Result<Option<String>, E>,
    ) -> Result<Vec<Row>, E> {
        let mut spelled: HashMap<String, u64> = HashMap::default();
        for (key, count) in &self.errors {
            let words = match key {
                ErrorKey::Text(None) => None,
                ErrorKey::Text(Some(id)) => text(*id)?,
                ErrorKey::WithAddress(id, at, address) => {
                    text(*id)?.map(|text| with_address(&text, *at, address))
                }
            };
            *spelled
                .entry(words.unwrap_or_else(|| "(no message)".to_owned()))
                .or_default() += count;
        }
        Ok(ranked(
            spelled
                .into_iter()
                .map(|(key, count)| Row {
                    key,
                    count,
                    volume: None,
                })
                .collect(),
        ))
    }
}

/// `substr(text, 1, at) || address || substr(text, at + 1)`, `at` in
/// characters.
fn with_address(text: &str, at: i64, address: &str) -> String {
    let chars = usize::try_from(at).unwrap_or(0);
    let split = text
        .char_indices()
        .nth(chars)
        .map_or(text.len(), |(i, _)| i);
    let mut spelled = String::with_capacity(text.len() + address.len());
    spelled.push_str(&text[..split]);
    spelled.push_str(address);
    spelled.push_str(&text[split..]);
    spelled
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: Bounds = Bounds {
        since: i64::MIN + 1,
        until: i64::MAX,
    };

    fn attempt(flag: &str) -> AttemptRow<'_> {
        AttemptRow {
            flag,
            attempted_ms: 0,
            transport_id: None,
            delivery_time_ms: None,
            error_text_id: None,
            error_address_at: None,
            final_address: None,
            size: Some(100),
            recipient: Recipient::None,
        }
    }

    #[test]
    fn deliveries_count_by_transport_hour_and_domain_read_or_numbered() {
        let mut domains = Domains::default();
        let org = domains.id_of("b@Example.Org");
        assert_eq!(domains.id_of("no-at-sign"), None);
        let mut attempts = Attempts::numbered_by(domains);
        let mut first = attempt("=>");
        first.transport_id = Some(1);
        first.recipient = Recipient::Address("A@EXAMPLE.org");
        first.delivery_time_ms = Some(1_000);
        attempts.add(&first, ALL);
        let mut second = attempt("->");
        second.recipient = Recipient::Numbered(org);
        attempts.add(&second, ALL);
        let mut third = attempt("=>");
        third.recipient = Recipient::Address("c@example.net");
        attempts.add(&third, ALL);
        let mut without_domain = attempt("->");
        without_domain.recipient = Recipient::Numbered(None);
        attempts.add(&without_domain, ALL);
        assert_eq!(attempts.delivered.count, 2);
        assert_eq!(attempts.delivered.bytes, 200);
        assert_eq!(attempts.delivered_per_hour[0], 4);
        let transports = attempts
            .by_transport(|id| Ok::<_, ()>(Some(format!("t{id}"))))
            .unwrap();
        let keys: Vec<(&str, u64)> = transports
            .iter()
            .map(|r| (r.key.as_str(), r.count))
            .collect();
        assert_eq!(keys, [("(none)", 1), ("t1", 1)]);
        let domains = attempts.top_recipient_domains();
        let domains: Vec<(&str, u64, Option<u64>)> = domains
            .iter()
            .map(|r| (r.key.as_str(), r.count, r.volume))
            .collect();
        assert_eq!(
            domains,
            [("example.org", 2, Some(200)), ("example.net", 1, Some(100))]
        );
        assert_eq!(attempts.delivery_times.rows()[0].count, 1);
    }

    #[test]
    fn halves_merged_count_as_one() {
        let mut domains = Domains::default();
        let org = domains.id_of("a@example.org");
        let mut first = Attempts::numbered_by(domains.clone());
        let mut second = Attempts::numbered_by(domains);
        let mut row = attempt("=>");
        row.recipient = Recipient::Numbered(org);
        row.transport_id = Some(4);
        first.add(&row, ALL);
        second.add(&row, ALL);
        let mut deferral = attempt("==");
        deferral.error_text_id = Some(1);
        second.add(&deferral, ALL);
        first.merge(second);
        assert_eq!(first.delivered.count, 2);
        assert_eq!(first.top_recipient_domains()[0].count, 2);
        let transports = first.by_transport(|_| Ok::<_, ()>(None)).unwrap();
        assert_eq!(transports[0].count, 2);
        let errors = first
            .errors(|_| Ok::<_, ()>(Some("greylisted".to_owned())))
            .unwrap();
        assert_eq!((errors[0].key.as_str(), errors[0].count), ("greylisted", 1));
    }

    #[test]
    fn errors_get_their_recipient_back_at_the_character_where_it_was_cut() {
        let mut attempts = Attempts::default();
        let texts = |id: i64| Ok::<_, ()>((id == 1).then(|| "ünknown user <>: no".to_owned()));
        let mut known = attempt("**");
        known.error_text_id = Some(1);
        known.error_address_at = Some(14);
        known.recipient = Recipient::Address("a@x");
        attempts.add(&known, ALL);
        let mut rewritten = known;
        rewritten.recipient = Recipient::Numbered(None);
        rewritten.final_address = Some("a@x");
        attempts.add(&rewritten, ALL);
        // No recipient row, or only its domain: no address to put back,
        // and the view shows no text.
        let mut lost = known;
        lost.recipient = Recipient::None;
        attempts.add(&lost, ALL);
        lost.recipient = Recipient::Numbered(None);
        attempts.add(&lost, ALL);
        attempts.add(&attempt("=="), ALL);
        let errors = attempts.errors(texts).unwrap();
        let rows: Vec<(&str, u64)> = errors.iter().map(|r| (r.key.as_str(), r.count)).collect();
        assert_eq!(rows, [("(no message)", 3), ("ünknown user <a@x>: no", 2)]);
    }

    #[test]
    fn attempts_outside_the_window_count_nowhere() {
        let mut attempts = Attempts::default();
        let window = Bounds {
            since: 10,
            until: 20,
        };
        attempts.add(&attempt("=>"), window);
        assert_eq!(attempts.delivered.count, 0);
        assert!(attempts.errors(|_| Ok::<_, ()>(None)).unwrap().is_empty());
    }
}
