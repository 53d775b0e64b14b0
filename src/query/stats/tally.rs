//! The report's arithmetic, apart from SQL: the shell in `mod.rs` reads
//! each table once and hands every row here; out come the totals, the
//! per-hour counts, the time buckets and the ranked lists.
//!
//! One pass per table replaced a query per figure: on a large database
//! each of those re-read the same rows, and SQLite sorted them again for
//! every `GROUP BY`. Every rule below restates the SQL it replaced, so the
//! answers stay the ones eximstats gives.

use std::collections::BTreeMap;

use super::{Row, TOP};

// A fast hash, seeded per process: senders, hosts and domains are chosen
// by whoever sends mail, and a report should not slow to a crawl on keys
// made to collide.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// A window's inclusive bounds, in the log's milliseconds.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bounds {
    pub since: i64,
    pub until: i64,
}

impl Bounds {
    /// `ms BETWEEN since AND until` (NULL is never inside).
    pub fn hold(self, ms: Option<i64>) -> bool {
        ms.is_some_and(|ms| self.since <= ms && ms <= self.until)
    }
}

/// The hour of the day as SQLite's `(ms / 3600000) % 24` gives it, made
/// non-negative.
pub(super) fn hour_of_day(ms: i64) -> usize {
    usize::try_from(((ms / 3_600_000) % 24).rem_euclid(24)).unwrap_or(0)
}

/// The duration buckets eximstats uses.
const BUCKETS: [(&str, i64); 9] = [
    ("under 1m", 60_000),
    ("1m-5m", 300_000),
    ("5m-15m", 900_000),
    ("15m-30m", 1_800_000),
    ("30m-1h", 3_600_000),
    ("1h-3h", 10_800_000),
    ("3h-6h", 21_600_000),
    ("6h-12h", 43_200_000),
    ("12h-1d", 86_400_000),
];

/// Counts per duration bucket, the last one "over 1d".
#[derive(Debug, Default)]
pub(super) struct Durations([u64; BUCKETS.len() + 1]);

impl Durations {
    pub fn add(&mut self, ms: i64) {
        let index = BUCKETS
            .iter()
            .position(|(_, limit)| ms < *limit)
            .unwrap_or(BUCKETS.len());
        self.0[index] += 1;
    }

    pub(super) fn merge(&mut self, other: &Durations) {
        for (count, more) in self.0.iter_mut().zip(other.0) {
            *count += more;
        }
    }

    pub fn rows(&self) -> Vec<Row> {
        BUCKETS
            .iter()
            .map(|(name, _)| *name)
            .chain(std::iter::once("over 1d"))
            .zip(self.0)
            .map(|(key, count)| Row {
                key: key.to_owned(),
                count,
                volume: None,
            })
            .collect()
    }
}

/// How many, and their bytes.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Volume {
    pub count: u64,
    pub bytes: u64,
}

impl Volume {
    pub(super) fn add(&mut self, size: Option<i64>) {
        self.count += 1;
        self.bytes += size.map_or(0, to_u64);
    }

    pub(super) fn merge(&mut self, other: Volume) {
        self.count += other.count;
        self.bytes += other.bytes;
    }
}

pub(super) fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// `ORDER BY count DESC, volume DESC, key LIMIT TOP`.
pub(super) fn ranked(mut rows: Vec<Row>) -> Vec<Row> {
    rows.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(b.volume.cmp(&a.volume))
            .then_with(|| a.key.cmp(&b.key))
    });
    rows.truncate(TOP);
    rows
}

/// The entries that can make a top list: the first `TOP` by count and
/// volume, and whatever ties with the last of them (the key, which only
/// the caller spells, decides among those). Spares making a row of every
/// sender or host.
pub(super) fn contenders<K>(entries: impl Iterator<Item = (K, Volume)>) -> Vec<(K, Volume)> {
    let mut entries: Vec<(K, Volume)> = entries.collect();
    entries.sort_unstable_by_key(|(_, v)| std::cmp::Reverse((v.count, v.bytes)));
    let cut = entries
        .get(TOP.saturating_sub(1))
        .map(|(_, v)| (v.count, v.bytes));
    let kept = entries
        .iter()
        .enumerate()
        .take_while(|(i, (_, v))| *i < TOP || Some((v.count, v.bytes)) == cut)
        .count();
    entries.truncate(kept);
    entries
}

/// A ranked row with a volume.
pub(super) fn row(key: String, volume: Volume) -> Row {
    Row {
        key,
        count: volume.count,
        volume: Some(volume.bytes),
    }
}

/// One `messages` row, as the report reads it.
#[derive(Debug, Clone, Copy)]
pub(super) struct MessageRow<'a> {
    pub id: i64,
    pub received_ms: Option<i64>,
    pub sender: Option<&'a str>,
    pub size: Option<i64>,
    pub host_ip: Option<&'a str>,
    /// `coalesce(host_name_id, helo_id)`: the text naming the peer.
    pub host_name_id: Option<i64>,
    pub status: &'a str,
    pub completed_ms: Option<i64>,
    pub last_event_ms: Option<i64>,
    /// Any of its attempts deferred (`==`), failed (`**`).
    pub had_deferral: bool,
    pub had_failure: bool,
}

/// A sending host: its messages and the name its newest message gave.
#[derive(Debug, Default, Clone, Copy)]
struct Host {
    volume: Volume,
    named_by: i64,
    name_id: Option<i64>,
}

/// What the report takes from `messages`.
#[derive(Debug, Default)]
pub(super) struct Messages {
    /// Messages received in the window, and their bytes.
    pub received: Volume,
    pub received_per_hour: [u64; 24],
    senders: HashMap<Box<str>, Volume>,
    hosts: HashMap<Box<str>, Host>,
    pub status: BTreeMap<String, u64>,
    /// Filled here only for the whole database (see [`Messages::add`]).
    pub queue_times: Durations,
    /// Messages received in the window with at least one deferral, and
    /// with at least one failure (at any time).
    pub delayed: u64,
    pub failed: u64,
}

impl Messages {
    /// Counts one message. `whole`: the report covers the whole database,
    /// so every message counts in the status table and the queue times
    /// come from this pass; a window selects those by other columns, and
    /// the shell reads them apart.
    pub fn add(&mut self, row: &MessageRow<'_>, bounds: Bounds, whole: bool) {
        let received = bounds.hold(row.received_ms);
        if received {
            self.received.add(row.size);
            self.delayed += u64::from(row.had_deferral);
            self.failed += u64::from(row.had_failure);
            if let Some(ms) = row.received_ms {
                self.received_per_hour[hour_of_day(ms)] += 1;
            }
            if let Some(sender) = row.sender {
                bump(&mut self.senders, sender, row.size);
            }
            if let Some(ip) = row.host_ip {
                let host = match self.hosts.get_mut(ip) {
                    Some(host) => host,
                    None => self.hosts.entry(ip.into()).or_default(),
                };
                host.volume.add(row.size);
                if host.volume.count == 1 || row.id > host.named_by {
                    host.named_by = row.id;
                    host.name_id = row.host_name_id;
                }
            }
        }
        let in_status =
            whole || received || (row.received_ms.is_none() && bounds.hold(row.last_event_ms));
        if in_status {
            match self.status.get_mut(row.status) {
                Some(count) => *count += 1,
                None => {
                    self.status.insert(row.status.to_owned(), 1);
                }
            }
        }
        if whole
            && row.status == "completed"
            && let (Some(received_ms), Some(completed_ms)) = (row.received_ms, row.completed_ms)
            && bounds.hold(Some(completed_ms))
        {
            self.queue_times.add(completed_ms - received_ms);
        }
    }

    /// Adds what `other` counted (other messages).
    pub fn merge(&mut self, other: Messages) {
        self.received.merge(other.received);
        for (hour, count) in other.received_per_hour.iter().enumerate() {
            self.received_per_hour[hour] += count;
        }
        for (sender, volume) in other.senders {
            self.senders.entry(sender).or_default().merge(volume);
        }
        for (ip, host) in other.hosts {
            let mine = self.hosts.entry(ip).or_insert(Host {
                volume: Volume::default(),
                named_by: host.named_by,
                name_id: host.name_id,
            });
            mine.volume.merge(host.volume);
            if host.named_by > mine.named_by {
                mine.named_by = host.named_by;
                mine.name_id = host.name_id;
            }
        }
        for (status, count) in other.status {
            *self.status.entry(status).or_default() += count;
        }
        self.queue_times.merge(&other.queue_times);
        self.delayed += other.delayed;
        self.failed += other.failed;
    }

    /// Distinct hosts that sent the window's messages.
    pub fn received_hosts(&self) -> u64 {
        self.hosts.len() as u64
    }

    /// `ORDER BY count DESC, volume DESC, sender`.
    pub fn top_senders(&self) -> Vec<Row> {
        let senders = self.senders.iter().map(|(sender, v)| (sender, *v));
        ranked(
            contenders(senders)
                .into_iter()
                .map(|(sender, volume)| row(sender.to_string(), volume))
                .collect(),
        )
    }

    /// `name [ip]`, the name from the host's newest message; `name` looks
    /// a text up by id, asked only for the hosts that can make the list.
    pub fn top_sending_hosts<E>(
        &self,
        mut name: impl FnMut(i64) -> Result<Option<String>, E>,
    ) -> Result<Vec<Row>, E> {
        let hosts = self
            .hosts
            .iter()
            .map(|(ip, host)| ((ip, host.name_id), host.volume));
        let mut rows = Vec::new();
        for ((ip, name_id), volume) in contenders(hosts) {
            let name = match name_id {
                Some(id) => name(id)?,
                None => None,
            };
            rows.push(row(format!("{} [{ip}]", name.unwrap_or_default()), volume));
        }
        Ok(ranked(rows))
    }
}

/// Adds a message of `size` to `key`'s volume.
fn bump(map: &mut HashMap<Box<str>, Volume>, key: &str, size: Option<i64>) {
    // Look up by `&str` first: most keys repeat, and a `Box` per row costs.
    match map.get_mut(key) {
        Some(volume) => volume.add(size),
        None => {
            let mut volume = Volume::default();
            volume.add(size);
            map.insert(key.into(), volume);
        }
    }
}

/// Recipient domains, each given a small number: a whole-database report
/// numbers every recipient's domain before it reads the attempts, so an
/// attempt row carries a number instead of an address.
#[derive(Debug, Default, Clone)]
pub(super) struct Domains {
    ids: HashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
    /// A domain being lower-cased, kept to spare an allocation per row.
    scratch: String,
}

impl Domains {
    /// The number of `address`'s domain, as the report counts it:
    /// `lower(substr(address, instr(address, '@') + 1))` for addresses
    /// with an `@` (SQLite's `lower` folds ASCII only); `None` without.
    pub fn id_of(&mut self, address: &str) -> Option<u32> {
        let at = address.find('@')?;
        self.scratch.clear();
        self.scratch.push_str(&address[at + 1..]);
        self.scratch.make_ascii_lowercase();
        if let Some(id) = self.ids.get(self.scratch.as_str()) {
            return Some(*id);
        }
        let id = u32::try_from(self.names.len()).ok()?;
        self.ids.insert(self.scratch.as_str().into(), id);
        self.names.push(self.scratch.as_str().into());
        Some(id)
    }

    pub(super) fn name(&self, id: u32) -> &str {
        usize::try_from(id)
            .ok()
            .and_then(|index| self.names.get(index))
            .map_or("", |name| name)
    }
}

/// What the report takes from `rejections`.
#[derive(Debug, Default)]
pub(super) struct Rejections {
    pub permanent: u64,
    pub temporary: u64,
    permanent_hosts: HashSet<Box<str>>,
    reasons: HashMap<Box<str>, u64>,
    ips: HashMap<Box<str>, u64>,
}

impl Rejections {
    pub fn add(&mut self, temporary: bool, reason: Option<&str>, host_ip: Option<&str>) {
        if temporary {
            self.temporary += 1;
        } else {
            self.permanent += 1;
            if let Some(ip) = host_ip
                && !self.permanent_hosts.contains(ip)
            {
                self.permanent_hosts.insert(ip.into());
            }
        }
        count(
            &mut self.reasons,
            &super::reason::group(reason.unwrap_or("")),
        );
        count(&mut self.ips, host_ip.unwrap_or("(local)"));
    }

    /// Distinct hosts permanently rejected.
    pub fn rejected_hosts(&self) -> u64 {
        self.permanent_hosts.len() as u64
    }

    pub fn by_reason(&self) -> Vec<Row> {
        counted_rows(&self.reasons)
    }

    pub fn by_ip(&self) -> Vec<Row> {
        counted_rows(&self.ips)
    }
}

fn count(map: &mut HashMap<Box<str>, u64>, key: &str) {
    match map.get_mut(key) {
        Some(count) => *count += 1,
        None => {
            map.insert(key.into(), 1);
        }
    }
}

/// `ORDER BY count DESC, key`, for lists without a volume.
fn counted_rows(map: &HashMap<Box<str>, u64>) -> Vec<Row> {
    let counts = map.iter().map(|(key, count)| {
        let volume = Volume {
            count: *count,
            bytes: 0,
        };
        (key, volume)
    });
    ranked(
        contenders(counts)
            .into_iter()
            .map(|(key, volume)| Row {
                key: key.to_string(),
                count: volume.count,
                volume: None,
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: Bounds = Bounds {
        since: i64::MIN + 1,
        until: i64::MAX,
    };

    fn message<'a>(
        id: i64,
        sender: &'a str,
        size: i64,
        ip: &'a str,
        name: Option<i64>,
    ) -> MessageRow<'a> {
        MessageRow {
            id,
            received_ms: Some(id * 3_600_000),
            sender: Some(sender),
            size: Some(size),
            host_ip: Some(ip),
            host_name_id: name,
            status: "completed",
            completed_ms: Some(id * 3_600_000 + 90_000),
            last_event_ms: None,
            had_deferral: id % 2 == 0,
            had_failure: false,
        }
    }

    #[test]
    fn senders_rank_by_count_then_bytes_then_name_and_ties_at_the_cut_are_decided_by_name() {
        let mut messages = Messages::default();
        // Twelve senders of one message each, same size: the key decides.
        let senders: Vec<String> = (0..12).rev().map(|n| format!("s{n:02}@x")).collect();
        for (id, sender) in senders.iter().enumerate() {
            messages.add(
                &message(id as i64, sender, 10, "192.0.2.1", None),
                ALL,
                true,
            );
        }
        messages.add(&message(20, "big@x", 5, "192.0.2.2", None), ALL, true);
        messages.add(&message(21, "big@x", 5, "192.0.2.2", None), ALL, true);
        let top = messages.top_senders();
        assert_eq!(top.len(), TOP);
        assert_eq!(top[0].key, "big@x");
        assert_eq!(top[1].key, "s00@x");
        assert_eq!(top[9].key, "s08@x");
        assert_eq!(messages.received.count, 14);
        assert_eq!(messages.received_hosts(), 2);
        assert_eq!(messages.status["completed"], 14);
        // 90 s on the queue each: the 1m-5m bucket.
        assert_eq!(messages.queue_times.rows()[1].count, 14);
    }

    #[test]
    fn messages_counted_in_two_parts_merge_into_the_same_report() {
        let rows = [
            message(1, "a@x", 10, "192.0.2.1", Some(1)),
            message(2, "b@x", 20, "192.0.2.1", Some(2)),
            message(3, "a@x", 30, "192.0.2.2", None),
            message(4, "a@x", 40, "192.0.2.1", Some(3)),
        ];
        let mut whole = Messages::default();
        let (mut low, mut high) = (Messages::default(), Messages::default());
        for (index, row) in rows.iter().enumerate() {
            whole.add(row, ALL, true);
            // The parts need not be contiguous: pieces go to either thread.
            if index % 2 == 0 { &mut high } else { &mut low }.add(row, ALL, true);
        }
        low.merge(high);
        let names = |id: i64| Ok::<_, ()>(Some(format!("name{id}")));
        assert_eq!(low.top_senders(), whole.top_senders());
        assert_eq!(
            low.top_sending_hosts(names).unwrap(),
            whole.top_sending_hosts(names).unwrap()
        );
        assert_eq!(
            low.top_sending_hosts(names).unwrap()[0].key,
            "name3 [192.0.2.1]"
        );
        assert_eq!(low.received.bytes, 100);
        assert_eq!(low.received_per_hour, whole.received_per_hour);
        assert_eq!(low.status, whole.status);
        assert_eq!(low.queue_times.rows(), whole.queue_times.rows());
        assert_eq!(low.received_hosts(), 2);
    }

    #[test]
    fn a_host_is_named_by_its_newest_message() {
        let mut messages = Messages::default();
        messages.add(&message(2, "a@x", 1, "192.0.2.1", Some(7)), ALL, true);
        messages.add(&message(1, "a@x", 1, "192.0.2.1", Some(6)), ALL, true);
        messages.add(&message(3, "a@x", 1, "192.0.2.9", None), ALL, true);
        let names = |id: i64| Ok::<_, ()>(Some(format!("name{id}")));
        let top = messages.top_sending_hosts(names).unwrap();
        assert_eq!(top[0].key, "name7 [192.0.2.1]");
        assert_eq!(top[0].count, 2);
        assert_eq!(top[1].key, " [192.0.2.9]");
    }

    #[test]
    fn a_window_counts_status_by_reception_or_last_event_and_leaves_queue_times_to_the_shell() {
        let mut messages = Messages::default();
        let window = Bounds {
            since: 0,
            until: 10 * 3_600_000,
        };
        messages.add(&message(5, "a@x", 1, "192.0.2.1", None), window, false);
        messages.add(&message(50, "a@x", 1, "192.0.2.1", None), window, false);
        let unreceived = MessageRow {
            received_ms: None,
            last_event_ms: Some(1),
            status: "deferred",
            ..message(6, "a@x", 1, "192.0.2.1", None)
        };
        messages.add(&unreceived, window, false);
        assert_eq!(messages.received.count, 1);
        assert_eq!(
            (messages.delayed, messages.failed),
            (0, 0),
            "5 was not deferred"
        );
        assert_eq!(messages.status["completed"], 1);
        assert_eq!(messages.status["deferred"], 1);
        assert_eq!(
            messages
                .queue_times
                .rows()
                .iter()
                .map(|r| r.count)
                .sum::<u64>(),
            0
        );
    }

    #[test]
    fn rejections_count_hosts_reasons_and_local_ones() {
        let mut rejections = Rejections::default();
        rejections.add(false, Some("relay not permitted"), Some("192.0.2.1"));
        rejections.add(false, Some("relay not permitted"), Some("192.0.2.1"));
        rejections.add(true, Some("greylisted"), Some("192.0.2.2"));
        rejections.add(false, None, None);
        assert_eq!((rejections.permanent, rejections.temporary), (3, 1));
        assert_eq!(rejections.rejected_hosts(), 1);
        let reasons = rejections.by_reason();
        let reasons: Vec<(&str, u64)> = reasons.iter().map(|r| (r.key.as_str(), r.count)).collect();
        assert_eq!(
            reasons,
            [("relay not permitted", 2), ("", 1), ("greylisted", 1)]
        );
        let ips = rejections.by_ip();
        assert_eq!(ips[2].key, "192.0.2.2");
        assert_eq!(ips[1].key, "(local)");
        assert!(ips.iter().all(|row| row.volume.is_none()));
    }

    #[test]
    fn hours_follow_sqlite_integer_division() {
        assert_eq!(hour_of_day(0), 0);
        assert_eq!(hour_of_day(25 * 3_600_000), 1);
        assert_eq!(hour_of_day(-1), 0);
        assert_eq!(hour_of_day(-3_600_000), 23);
    }
}
