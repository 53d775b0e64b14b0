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
    /// Whether hostile sessions vary (auth failures, lost connections, no
    /// MAIL) or are all RCPT rejections.
    pub varied_attacks: bool,
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
}

/// Today's mix: what the generator has always written.
const MIXED: Profile = Profile {
    name: "mixed",
    hostile_sessions: 10,
    varied_attacks: false,
    extra_recipients: &[25, 10],
    local: 50,
    senders: 500,
    remote_recipients: 1000,
    greylisted: 15,
    bounced: 15,
    long_text: 0,
};

/// Every profile the benchmark runs; the first is the default. Each says
/// only how it differs from today's mix.
pub const PROFILES: [Profile; 6] = [
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
        varied_attacks: true,
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
];

impl Profile {
    /// The profile named `name`.
    pub fn named(name: &str) -> Option<Profile> {
        PROFILES.into_iter().find(|profile| profile.name == name)
    }
}
