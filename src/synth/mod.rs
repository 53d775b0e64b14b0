//! Synthetic Exim main logs for benchmarks and tests: realistic, interleaved
//! traffic in the shapes a real Exim writes (checked against the parser's
//! expect tests and a real Exim's log), with the truth it encodes counted.
//!
//! Pure and deterministic: the same seed gives the same bytes.

mod message;
mod profile;
mod realistic;

pub use profile::{Attacks, PROFILES, Profile};

use std::io::{self, Write};

use crate::query::stats::LineCounts;

/// What a generated log contains, counted as it was written: from the
/// generator's own knowledge of each line, not by the parser (`kinds`
/// stays empty), so that tests compare two independent countings.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Truth {
    /// The lines and what they are, as `stats` names them.
    pub counts: LineCounts,
    /// Distinct recipient addresses.
    pub distinct_recipients: u64,
}

/// What the database should say about one generated message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The message's Exim id.
    pub id: String,
    /// Its final status.
    pub status: &'static str,
    /// Whether it ends frozen.
    pub frozen: bool,
    /// Envelope recipients and their final status.
    pub recipients: Vec<(String, &'static str)>,
}

/// A message in flight: the lines it still has to write.
struct Pending {
    lines: Vec<String>,
    next: usize,
}

/// Which message id format a generated log uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdFormat {
    /// Exim 4.97+'s 23-character ids, with one in five in the old format,
    /// as on a host upgraded mid-log.
    Mixed,
    /// Only the 16-character ids of Exim 4.96 and older, which Debian 12's
    /// eximstats counts correctly.
    Old,
    /// Only Exim 4.97+'s 23-character ids.
    New,
}

/// Writes interleaved traffic: sessions that end in receptions or
/// rejections, and deliveries, deferrals, bounces and queue runs.
pub struct Generator {
    ids: IdFormat,
    profile: Profile,
    /// Every recipient address written, to count the distinct ones.
    recipients_seen: std::collections::HashSet<String>,
    rng: fastrand::Rng,
    clock: i64,
    pid: u32,
    active: Vec<Pending>,
    truth: Truth,
    outcomes: Vec<Outcome>,
    /// The next catalogue row to write: taken in turn, so that every row
    /// appears once the generator has written as many as there are.
    next_catalogue_row: usize,
    /// Frozen messages still in the queue, reported by each queue run
    /// (`Profile::frozen_reported`).
    frozen: Vec<String>,
}

/// Frozen messages queue runs report at most: the public logs' host
/// reported about 23 a run; more here, as this shape runs the queue less often.
const FROZEN_REPORTED: usize = 34;

const LOCAL_USERS: [&str; 6] = ["alice", "bob", "carol", "dave", "erin", "frank"];
const REMOTE_DOMAINS: [&str; 5] = [
    "example.com",
    "example.net",
    "example.org",
    "mail.example",
    "lists.example",
];
const SUBJECTS: [&str; 5] = [
    "Quarterly report",
    "Re: lunch?",
    "Invoice 2024-0042",
    "Weekly \\\"status\\\" update",
    "Your order has shipped",
];
const CIPHER: &str = "TLS1.3:ECDHE_X25519__RSA_PSS_RSAE_SHA256__AES_256_GCM:256";

impl Generator {
    /// A generator starting at 2024-03-01 00:00:00 (log clock).
    pub fn new(seed: u64) -> Self {
        Generator {
            ids: IdFormat::Mixed,
            profile: PROFILES[0],
            recipients_seen: std::collections::HashSet::new(),
            rng: fastrand::Rng::with_seed(seed),
            clock: 1_709_251_200,
            pid: 1000,
            active: Vec::new(),
            truth: Truth::default(),
            outcomes: Vec::new(),
            next_catalogue_row: 0,
            frozen: Vec::new(),
        }
    }

    /// The same generator, writing traffic of `profile`'s shape.
    pub fn with_profile(self, profile: Profile) -> Self {
        Generator { profile, ..self }
    }

    /// The same generator, writing ids in `ids` format.
    pub fn with_ids(self, ids: IdFormat) -> Self {
        Generator { ids, ..self }
    }

    /// Writes `lines` lines (at least) to `out` and returns what they hold.
    pub fn write(&mut self, lines: u64, out: &mut impl Write) -> io::Result<Truth> {
        let start = self.truth.counts.lines;
        while self.truth.counts.lines - start < lines {
            if self.active.len() < 8 && (self.active.is_empty() || self.rng.u8(..100) < 30) {
                self.start_something();
            }
            self.write_next_line(out)?;
        }
        Ok(self.truth.clone())
    }

    /// Writes the rest of every message in flight, so that each generated
    /// message is whole and its [`Outcome`] holds.
    pub fn finish(&mut self, out: &mut impl Write) -> io::Result<Truth> {
        while !self.active.is_empty() {
            self.write_next_line(out)?;
        }
        Ok(self.truth.clone())
    }

    /// Writes the next line of a random message in flight.
    fn write_next_line(&mut self, out: &mut impl Write) -> io::Result<()> {
        let index = self.rng.usize(..self.active.len());
        let pending = &mut self.active[index];
        let line = std::mem::take(&mut pending.lines[pending.next]);
        pending.next += 1;
        if pending.next == pending.lines.len() {
            self.active.swap_remove(index);
        }
        self.clock += i64::from(self.rng.u8(..3));
        writeln!(out, "{} {}", self.timestamp(), line)?;
        self.count(&line);
        self.truth.counts.lines += 1;
        Ok(())
    }

    /// The expected final state of every message started so far.
    pub fn outcomes(&self) -> &[Outcome] {
        &self.outcomes
    }

    fn count(&mut self, line: &str) {
        let body = line.split_once("] ").map_or(line, |(_, body)| body);
        let body = body.split_once(' ').map_or(body, |(first, rest)| {
            if first.len() == 16 || first.len() == 23 {
                rest
            } else {
                body
            }
        });
        let truth = &mut self.truth.counts;
        match body.get(..3) {
            Some("<= ") => truth.received += 1,
            Some("=> " | "-> ") => truth.delivered += 1,
            Some("== ") => truth.deferred += 1,
            Some("** ") => truth.bounced += 1,
            _ if body.starts_with("Completed") => truth.completed += 1,
            _ if body.starts_with("Frozen") => truth.frozen += 1,
            _ if body.contains(" rejected RCPT ") && !body.contains("temporarily") => {
                truth.rejected += 1;
            }
            _ => {}
        }
    }

    fn timestamp(&self) -> String {
        crate::parse::format_seconds(self.clock)
    }

    fn next_pid(&mut self) -> u32 {
        self.pid = if self.pid > 4_000_000 {
            1000
        } else {
            self.pid + 1 + self.rng.u32(..7)
        };
        self.pid
    }

    fn message_id(&mut self) -> String {
        const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let base62 = |mut value: u64, width: usize| {
            let mut out = vec![b'0'; width];
            for slot in out.iter_mut().rev() {
                *slot = ALPHABET[(value % 62) as usize];
                value /= 62;
            }
            String::from_utf8(out).unwrap_or_default()
        };
        let time = base62(self.clock.unsigned_abs(), 6);
        let pid = u64::from(self.pid);
        let fraction = self.rng.u64(..14_776_336);
        let new_format = match self.ids {
            IdFormat::Mixed => self.rng.u8(..100) < 80,
            IdFormat::Old => false,
            IdFormat::New => true,
        };
        if new_format {
            format!("{time}-{}-{}", base62(pid, 11), base62(fraction, 4))
        } else {
            format!("{time}-{}-{}", base62(pid, 6), base62(fraction % 3844, 2))
        }
    }

    fn client(&mut self) -> (String, String) {
        if self.rng.u8(..100) < 15 {
            let ip = format!("2001:db8::{:x}", self.rng.u16(1..));
            (
                format!(
                    "(client{}.example.net) [{ip}]:{}",
                    self.rng.u8(..50),
                    self.rng.u16(1024..)
                ),
                ip,
            )
        } else {
            let ip = format!("192.0.2.{}", self.rng.u8(1..255));
            let name = if self.rng.bool() {
                format!("mx{}.example.com ", self.rng.u8(..20))
            } else {
                String::new()
            };
            (
                format!(
                    "{name}(helo{}.example.com) [{ip}]:{}",
                    self.rng.u8(..50),
                    self.rng.u16(1024..)
                ),
                ip,
            )
        }
    }

    fn start_something(&mut self) {
        let roll = self.rng.u8(..100);
        let hostile = self.profile.hostile_sessions;
        let lines = if roll < hostile {
            match self.profile.attacks {
                Attacks::Relay => self.rejected_session(),
                Attacks::Varied => self.attack(),
                Attacks::BruteForce => self.brute_force(),
            }
        } else if roll < hostile.saturating_add(3) {
            self.queue_run()
        } else if roll < hostile.saturating_add(4) {
            vec![self.catalogue_line().to_owned()]
        } else {
            self.message()
        };
        self.active.push(Pending { lines, next: 0 });
    }

    fn rejected_session(&mut self) -> Vec<String> {
        let pid = self.next_pid();
        let (host, _) = self.client();
        let temporary = if self.rng.u8(..100) < 20 {
            "temporarily "
        } else {
            ""
        };
        vec![
            format!("[{pid}] SMTP connection from {host} (TCP/IP connection count = 1)"),
            format!(
                "[{pid}] H={host} F=<spam{}@example.biz> {temporary}rejected RCPT <nobody{}@example.org>: relay not permitted",
                self.rng.u16(..),
                self.rng.u8(..)
            ),
            format!(
                "[{pid}] SMTP connection from {host} D={}s closed by QUIT",
                self.rng.u8(1..30)
            ),
        ]
    }

    /// A hostile session of one of the kinds a host under attack logs: a
    /// relay attempt, a password guess or a scan, each ending in a lost
    /// connection (connections are not logged, as by default).
    fn attack(&mut self) -> Vec<String> {
        let pid = self.next_pid();
        let (host, _) = self.client();
        let lost = format!(
            "[{pid}] SMTP connection from {host} lost D={}s",
            self.rng.u8(..20)
        );
        match self.rng.u8(..4) {
            0 => vec![
                format!(
                    "[{pid}] H={host} F=<spam{}@example.biz> rejected RCPT <nobody{}@example.org>: relay not permitted",
                    self.rng.u16(..),
                    self.rng.u8(..)
                ),
                lost,
            ],
            1 => vec![
                format!(
                    "[{pid}] dovecot_plain authenticator failed for {host}: 535 Incorrect authentication data (set_id=admin{}@example.org)",
                    self.rng.u16(..)
                ),
                lost,
            ],
            2 => vec![lost],
            _ => vec![format!(
                "[{pid}] no MAIL in SMTP connection from {host} D={}s C=EHLO,AUTH",
                self.rng.u8(1..30)
            )],
        }
    }

    /// A line of another of Exim's formats, from the parser's catalogue
    /// (`parse/catalogue.tsv`), so that every kind appears in generated
    /// logs: one without a message id, and of a kind that names no
    /// message count of the truth (the truth counts those itself).
    fn catalogue_line(&mut self) -> &'static str {
        let rows = catalogue_bodies();
        let row = rows.get(self.next_catalogue_row % rows.len().max(1));
        self.next_catalogue_row += 1;
        row.copied().unwrap_or("notify triggered queue run")
    }

    fn queue_run(&mut self) -> Vec<String> {
        let pid = self.next_pid();
        let mut lines = vec![format!("[{pid}] Start queue run: pid={pid}")];
        // A queue runner skips each frozen message, saying so.
        for id in &self.frozen {
            let runner = pid + 1;
            lines.push(format!("[{runner}] {id} Message is frozen"));
        }
        lines.push(format!("[{pid}] End queue run: pid={pid}"));
        lines
    }

    /// Keeps `id` among the frozen messages queue runs report, when the
    /// profile has them reported: the newest [`FROZEN_REPORTED`] (an
    /// operator removes the others).
    fn still_frozen(&mut self, id: &str) {
        if !self.profile.frozen_reported {
            return;
        }
        if self.frozen.len() == FROZEN_REPORTED {
            self.frozen.remove(0);
        }
        self.frozen.push(id.to_owned());
    }

    // Longer than 80 lines on purpose: the script of one message's life
    // (reception, each recipient's attempts, bounce, completion), told in
    // the order its log lines come.
    fn record(
        &mut self,
        id: &str,
        status: &'static str,
        frozen: bool,
        recipients: &[String],
        recipient_status: &'static str,
    ) {
        self.outcomes.push(Outcome {
            id: id.to_owned(),
            status,
            frozen,
            recipients: recipients
                .iter()
                .map(|r| (r.clone(), recipient_status))
                .collect(),
        });
    }

    fn pick<'a>(&mut self, choices: &[&'a str]) -> &'a str {
        choices[self.rng.usize(..choices.len())]
    }
}

#[cfg(test)]
mod tests;

/// The bodies (after the timestamp) of the catalogue's rows that carry no
/// message id and are of a kind the truth does not count, read once.
fn catalogue_bodies() -> &'static [&'static str] {
    static BODIES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    BODIES.get_or_init(|| {
        const COUNTED: [&str; 11] = [
            "reception",
            "fake_reject",
            "delivery",
            "delivery_more",
            "cutthrough",
            "suppressed",
            "failure",
            "deferral",
            "completed",
            "frozen",
            "rejection",
        ];
        include_str!("../parse/catalogue.tsv")
            .lines()
            .filter(|row| !row.starts_with('#') && !row.is_empty())
            .filter_map(|row| {
                let mut cells = row.splitn(4, '\t');
                let kind = cells.nth(1)?;
                let line = cells.nth(1)?;
                // A continuation row has no timestamp to cut.
                if !line.starts_with(|c: char| c.is_ascii_digit()) {
                    return None;
                }
                let body = line.get(20..)?;
                let first = body.split(' ').next()?;
                let has_id = (first.len() == 16 || first.len() == 23)
                    && first.bytes().filter(|&b| b == b'-').count() == 2;
                (!COUNTED.contains(&kind) && !has_id).then_some(body)
            })
            .collect()
    })
}
