//! The queue helper's fixed protocol (pure): one JSON request line of at
//! most [`MAX_REQUEST_BYTES`], decoded into a [`Request`] whose verb is on
//! the allow-list and whose ids fit Exim's id grammar, or refused with the
//! reason. Nothing from a request reaches Exim's command line but checked
//! ids; the flag for each verb is fixed here ([`Verb::exim_flag`]).

use serde::{Deserialize, Serialize};

/// The protocol's version; a request of another is refused.
pub const PROTOCOL_VERSION: u32 = 1;
/// The longest request line, newline included.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// The most ids one request may name (a bulk action's hard ceiling).
pub const MAX_IDS: usize = 1000;
/// The longest reason an operator may give.
pub const MAX_REASON_BYTES: usize = 1000;

/// What a caller may ask: the whole list. Anything else is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verb {
    /// The queue listing (`exim -bp`).
    List,
    /// The number of queued messages (`exim -bpc`).
    Count,
    /// One message's headers (`exim -Mvh`).
    ShowHeaders,
    /// One message's log (`exim -Mvl`).
    ShowLog,
    /// One message's body (`exim -Mvb`), audited.
    ShowBody,
    /// Freeze (`exim -Mf`).
    Freeze,
    /// Thaw (`exim -Mt`).
    Thaw,
    /// Remove (`exim -Mrm`).
    Remove,
    /// Deliver now (`exim -M`): the second tier.
    Deliver,
    /// Give up: bounce to the sender (`exim -Mg`): the second tier.
    GiveUp,
}

impl Verb {
    /// Every verb, for help texts and tests.
    pub const ALL: [Verb; 10] = [
        Verb::List,
        Verb::Count,
        Verb::ShowHeaders,
        Verb::ShowLog,
        Verb::ShowBody,
        Verb::Freeze,
        Verb::Thaw,
        Verb::Remove,
        Verb::Deliver,
        Verb::GiveUp,
    ];

    /// The verb's name on the wire and in the audit log.
    pub fn name(self) -> &'static str {
        match self {
            Verb::List => "list",
            Verb::Count => "count",
            Verb::ShowHeaders => "show_headers",
            Verb::ShowLog => "show_log",
            Verb::ShowBody => "show_body",
            Verb::Freeze => "freeze",
            Verb::Thaw => "thaw",
            Verb::Remove => "remove",
            Verb::Deliver => "deliver",
            Verb::GiveUp => "give_up",
        }
    }

    /// Exim's option for the verb: fixed, never from a request.
    pub fn exim_flag(self) -> &'static str {
        match self {
            Verb::List => "-bpr",
            Verb::Count => "-bpc",
            Verb::ShowHeaders => "-Mvh",
            Verb::ShowLog => "-Mvl",
            Verb::ShowBody => "-Mvb",
            Verb::Freeze => "-Mf",
            Verb::Thaw => "-Mt",
            Verb::Remove => "-Mrm",
            Verb::Deliver => "-M",
            Verb::GiveUp => "-Mg",
        }
    }

    /// Which helper runs it: 1, under NoNewPrivileges, for all but the two
    /// that need Exim's setuid root (a delivery's own privilege changes).
    pub fn tier(self) -> u8 {
        match self {
            Verb::Deliver | Verb::GiveUp => 2,
            _ => 1,
        }
    }

    /// Whether it changes the queue (and so needs actions switched on, the
    /// admin role, and an audit record written before it runs).
    pub fn acts(self) -> bool {
        matches!(
            self,
            Verb::Freeze | Verb::Thaw | Verb::Remove | Verb::Deliver | Verb::GiveUp
        )
    }

    /// Whether it is audited: every action, and reading a body.
    pub fn audited(self) -> bool {
        self.acts() || self == Verb::ShowBody
    }

    /// How many ids it takes: none (the whole queue), exactly one (Exim
    /// reads only the first id of `-Mv*`), or one or more.
    fn ids_wanted(self) -> std::ops::RangeInclusive<usize> {
        match self {
            Verb::List | Verb::Count => 0..=0,
            Verb::ShowHeaders | Verb::ShowLog | Verb::ShowBody => 1..=1,
            _ => 1..=MAX_IDS,
        }
    }
}

/// Who asks, as the caller says; the helper adds what it sees itself (the
/// peer's uid and pid), and trusts the claimed user only from the web
/// service's uid.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The signed-in user (web), or empty (the CLI: the peer uid names it).
    #[serde(default)]
    pub user: String,
    /// `admin` or `viewer`.
    #[serde(default)]
    pub role: String,
    /// How the user signed in: `users`, `proxy`, `none` or `cli`.
    #[serde(default)]
    pub auth: String,
    /// The client's address, as the web view judged it.
    #[serde(default)]
    pub client_ip: String,
}

/// A request as it travels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// [`PROTOCOL_VERSION`].
    pub v: u32,
    /// The caller's id for this request, echoed in the audit log.
    pub request_id: String,
    /// What to do.
    pub verb: Verb,
    /// The messages, when the verb takes any.
    #[serde(default)]
    pub ids: Vec<String>,
    /// Only say what would be done.
    #[serde(default)]
    pub dry_run: bool,
    /// Why, in the operator's words.
    #[serde(default)]
    pub reason: String,
    /// How the ids were chosen (a filter, for the audit), as JSON text.
    #[serde(default)]
    pub selection: String,
    /// `web` or `cli`.
    #[serde(default)]
    pub origin: String,
    /// Who asks.
    #[serde(default)]
    pub actor: Actor,
}

/// Why a request is refused before anything runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Longer than [`MAX_REQUEST_BYTES`].
    #[error("the request is longer than {MAX_REQUEST_BYTES} bytes")]
    TooLong,
    /// Not a request.
    #[error("the request is not valid: {0}")]
    Malformed(String),
    /// Another protocol version.
    #[error("protocol version {0} is not {PROTOCOL_VERSION}")]
    Version(u32),
    /// An id that is not an Exim id.
    #[error("{0:?} is not an Exim message id")]
    BadId(String),
    /// Too few or too many ids for the verb.
    #[error("{verb} takes {wanted} ids, not {given}")]
    IdCount {
        /// The verb.
        verb: &'static str,
        /// What it takes.
        wanted: String,
        /// What was given.
        given: usize,
    },
    /// A field over its bound.
    #[error("{0} is too long")]
    FieldTooLong(&'static str),
    /// The verb runs in the other tier.
    #[error("{verb} runs in tier {tier} of the helper, not this one")]
    WrongTier {
        /// The verb.
        verb: &'static str,
        /// Its tier.
        tier: u8,
    },
}

impl Request {
    /// Decodes and checks one request line for the helper of `tier`.
    pub fn decode(line: &[u8], tier: u8) -> Result<Request, Refusal> {
        if line.len() > MAX_REQUEST_BYTES {
            return Err(Refusal::TooLong);
        }
        let request: Request =
            serde_json::from_slice(line).map_err(|err| Refusal::Malformed(err.to_string()))?;
        request.check(tier)?;
        Ok(request)
    }

    /// The checks [`Request::decode`] makes, on a request built in memory
    /// (the client checks before it sends, the helper again after).
    pub fn check(&self, tier: u8) -> Result<(), Refusal> {
        if self.v != PROTOCOL_VERSION {
            return Err(Refusal::Version(self.v));
        }
        if self.verb.tier() != tier {
            return Err(Refusal::WrongTier {
                verb: self.verb.name(),
                tier: self.verb.tier(),
            });
        }
        let wanted = self.verb.ids_wanted();
        if !wanted.contains(&self.ids.len()) {
            return Err(Refusal::IdCount {
                verb: self.verb.name(),
                wanted: match (wanted.start(), wanted.end()) {
                    (a, b) if a == b => a.to_string(),
                    (a, b) => format!("{a} to {b}"),
                },
                given: self.ids.len(),
            });
        }
        for id in &self.ids {
            if crate::parse::whole_message_id(id.as_bytes()).is_none() {
                return Err(Refusal::BadId(id.chars().take(40).collect()));
            }
        }
        let bounded = [
            ("request_id", &self.request_id, 100),
            ("reason", &self.reason, MAX_REASON_BYTES),
            ("selection", &self.selection, 4096),
            ("origin", &self.origin, 16),
            ("actor.user", &self.actor.user, 256),
            ("actor.role", &self.actor.role, 16),
            ("actor.auth", &self.actor.auth, 16),
            ("actor.client_ip", &self.actor.client_ip, 64),
        ];
        for (name, value, limit) in bounded {
            if value.len() > limit {
                return Err(Refusal::FieldTooLong(name));
            }
        }
        Ok(())
    }

    /// Exim's command line for this request on `ids` (its own ids, or
    /// those of them still on the queue): the fixed flag, then the ids
    /// (none for the listing and the count).
    pub fn exim_args(&self, ids: &[String]) -> Vec<String> {
        std::iter::once(self.verb.exim_flag().to_owned())
            .chain(ids.iter().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests;
