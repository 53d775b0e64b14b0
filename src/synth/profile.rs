//! The shapes of generated traffic, each named for the command line and
//! the benchmark's rows.

/// The shape of the generated traffic. Numbers measured on one shape do not
/// transfer to another (a log with many distinct addresses, or mostly
/// rejections, stresses other parts), so the benchmark runs every profile
/// in [`PROFILES`] and reports the worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// Its name on the command line and in the benchmark's rows.
    pub name: &'static str,
    /// Percent of new activities that are hostile sessions (the rest are
    /// queue runs, 3 percent, and messages).
    pub hostile_sessions: u8,
    /// What the hostile sessions are.
    pub attacks: Attacks,
    /// For each recipient beyond the first, the percent chance of having it.
    pub extra_recipients: &'static [u8],
    /// Percent of messages for local mailboxes.
    pub local: u8,
    /// Distinct senders drawn from.
    pub senders: u32,
    /// Distinct remote recipients drawn from.
    pub remote_recipients: u32,
    /// Percent of remote messages greylisted, then delivered.
    pub greylisted: u8,
    /// Percent of remote messages bounced (unknown user).
    pub bounced: u8,
    /// Bytes added to subjects (`T=`) and SMTP responses (`C=`).
    pub long_text: usize,
    /// Whether each queue run reports every message still frozen
    /// (`Message is frozen`), as a host with frozen bounces left in its
    /// queue does on every run.
    pub frozen_reported: bool,
    /// Whether each message's texts are its own, as on real hosts: a
    /// subject of its own, the remote server's queue id and wording in
    /// every confirmation, a remote error text with its own token, sizes
    /// spread up to several MB.
    pub unique_texts: bool,
}

/// The hostile sessions a profile writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attacks {
    /// All relay attempts, each rejected at RCPT.
    Relay,
    /// Relay attempts, password guesses, lost connections and scans, in
    /// equal parts.
    Varied,
    /// Password guessing as the public logs show it: a failed reverse
    /// lookup, one to three failed logins, then a lost, timed-out, TLS
    /// failed or closed connection; a relay attempt now and then.
    BruteForce,
}

/// Today's mix: what the generator has always written.
const MIXED: Profile = Profile {
    name: "mixed",
    hostile_sessions: 10,
    attacks: Attacks::Relay,
    extra_recipients: &[25, 10],
    local: 50,
    senders: 500,
    remote_recipients: 1000,
    greylisted: 15,
    bounced: 15,
    long_text: 0,
    frozen_reported: false,
    unique_texts: false,
};

/// Every profile the benchmark runs; the first is the default. Each says
/// only how it differs from today's mix.
pub const PROFILES: [Profile; 8] = [
    MIXED,
    // At least 100,000 distinct recipients per million lines.
    Profile {
        name: "many-addresses",
        local: 5,
        senders: 100_000,
        remote_recipients: 300_000,
        ..MIXED
    },
    // `->` lines at least 10% of the log.
    Profile {
        name: "multi-recipient",
        extra_recipients: &[90, 85, 80, 70, 60, 50, 40, 30],
        local: 20,
        remote_recipients: 5000,
        greylisted: 10,
        bounced: 5,
        ..MIXED
    },
    // Over half the lines rejections, auth failures, lost connections and
    // scans.
    Profile {
        name: "attack",
        hostile_sessions: 85,
        attacks: Attacks::Varied,
        ..MIXED
    },
    Profile {
        name: "bounce-storm",
        local: 10,
        senders: 2000,
        remote_recipients: 20_000,
        greylisted: 10,
        bounced: 70,
        ..MIXED
    },
    Profile {
        name: "long-lines",
        long_text: 400,
        ..MIXED
    },
    REALISTIC,
    // The shape #32 found slow: nearly every line a message's, and every
    // message's texts its own.
    Profile {
        name: "unique-texts",
        hostile_sessions: 5,
        local: 10,
        senders: 20_000,
        remote_recipients: 100_000,
        unique_texts: true,
        ..MIXED
    },
];

/// The public logs' shape (`../shared/fixtures/public`, every origin but
/// Exim's test suites: 65 files, 146,001 lines, measured with
/// `examples/calibrate.rs`). Their lines: failed logins 36.3%, `Message is
/// frozen` 19.3%, failed reverse lookups 18.6%, connections opened 6.0%
/// and lost 4.8%, command timeouts 2.2%, TLS errors 2.1%, rejections 1.8%,
/// queue runs 3.0%, connections closed 1.5%; the messages' lines (`<=`,
/// `=>`, `**`, `==`, `Completed`, `Frozen`) about 2.5%. Of their 965
/// messages, 949 have one recipient and 12 two; 11 distinct senders, 15
/// recipients, 83 client IPs; sizes p50 839 bytes, p90 1,658, p99 8,656,
/// max 37,516; failures outnumber deliveries 5 to 1 (bounces of
/// undeliverable local mail, most then frozen); no subjects, 3
/// Message-IDs (their hosts log neither): those texts are
/// `unique-texts`' to stress. Lines p50 85 bytes, p99 194.
const REALISTIC: Profile = Profile {
    name: "realistic",
    hostile_sessions: 91,
    attacks: Attacks::BruteForce,
    extra_recipients: &[2],
    local: 40,
    senders: 50,
    remote_recipients: 100,
    greylisted: 5,
    bounced: 70,
    long_text: 0,
    frozen_reported: true,
    unique_texts: false,
};

impl Profile {
    /// The profile named `name`.
    pub fn named(name: &str) -> Option<Profile> {
        PROFILES.into_iter().find(|profile| profile.name == name)
    }
}
