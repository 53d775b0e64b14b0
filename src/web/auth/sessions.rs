//! Signed-in sessions of `[web] auth = "users"`: what the signed cookie
//! holds (name, expiry, a random nonce, the user's session generation)
//! and how signing out revokes it whatever the count. A signed-out nonce
//! is remembered until its cookie expires, up to a bound; past the bound,
//! the user's generation goes up instead, which ends every session of
//! that user. Memory stays bounded and no revocation is ever dropped.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Signed-out nonces remembered at most.
pub(super) const REVOKED_NONCES: usize = 10_000;

/// What a session cookie says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Ticket {
    pub name: String,
    /// Seconds since the epoch.
    pub expires: u64,
    pub nonce: String,
    pub generation: u64,
}

impl Ticket {
    /// A new ticket for `name`, valid for `lifetime_seconds`.
    pub(super) fn issue(sessions: &Sessions, name: &str, lifetime_seconds: u64) -> Ticket {
        Ticket {
            name: name.to_owned(),
            expires: now_seconds() + lifetime_seconds,
            nonce: format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)),
            generation: sessions.generation(name),
        }
    }

    /// The cookie's value (signed by the cookie jar).
    pub(super) fn encode(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.name, self.expires, self.nonce, self.generation
        )
    }

    pub(super) fn decode(value: &str) -> Option<Ticket> {
        let mut parts = value.split('|');
        let ticket = Ticket {
            name: parts.next()?.to_owned(),
            expires: parts.next()?.parse().ok()?,
            nonce: parts.next()?.to_owned(),
            generation: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(ticket)
    }
}

/// The server's memory of signed-out sessions.
#[derive(Debug, Default)]
pub(super) struct Sessions {
    /// Per user name (configured users only): sessions of an older
    /// generation are over.
    generations: Mutex<HashMap<String, u64>>,
    /// Signed-out nonces → their cookie's expiry.
    revoked: Mutex<HashMap<String, u64>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Sessions {
    fn generation(&self, name: &str) -> u64 {
        lock(&self.generations).get(name).copied().unwrap_or(0)
    }

    /// Whether `ticket` is a live session: not expired, of its user's
    /// current generation, not signed out.
    pub(super) fn live(&self, ticket: &Ticket) -> bool {
        ticket.expires > now_seconds()
            && ticket.generation == self.generation(&ticket.name)
            && !lock(&self.revoked).contains_key(&ticket.nonce)
    }

    /// Signs `ticket` out. `known_user`: the name is configured (only those
    /// get a generation, so names from forged input take no memory).
    pub(super) fn revoke(&self, ticket: &Ticket, known_user: bool) {
        if !self.live(ticket) {
            return;
        }
        let now = now_seconds();
        let mut revoked = lock(&self.revoked);
        revoked.retain(|_, expires| *expires > now);
        if revoked.len() < REVOKED_NONCES {
            revoked.insert(ticket.nonce.clone(), ticket.expires);
        } else if known_user {
            drop(revoked);
            *lock(&self.generations)
                .entry(ticket.name.clone())
                .or_insert(0) += 1;
        }
    }
}

pub(super) fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_round_trips_and_junk_is_none() {
        let sessions = Sessions::default();
        let ticket = Ticket::issue(&sessions, "alice", 3600);
        assert_eq!(Ticket::decode(&ticket.encode()), Some(ticket));
        assert_eq!(Ticket::decode("alice|99|x"), None);
        assert_eq!(Ticket::decode("alice|x|y|0"), None);
        assert_eq!(Ticket::decode("alice|1|y|0|extra"), None);
    }

    #[test]
    fn signing_out_holds_past_any_count_of_sessions() {
        let sessions = Sessions::default();
        let first = Ticket::issue(&sessions, "bob", 3600);
        sessions.revoke(&first, true);
        assert!(!sessions.live(&first));
        // Far more sign-outs than nonces are remembered.
        let mut last = first.clone();
        for _ in 0..REVOKED_NONCES + 50 {
            let ticket = Ticket::issue(&sessions, "bob", 3600);
            assert!(sessions.live(&ticket));
            sessions.revoke(&ticket, true);
            assert!(!sessions.live(&ticket), "a signed-out session still live");
            last = ticket;
        }
        assert!(!sessions.live(&first) && !sessions.live(&last));
        assert!(lock(&sessions.revoked).len() <= REVOKED_NONCES);
        // A session signed in after them is live.
        assert!(sessions.live(&Ticket::issue(&sessions, "bob", 3600)));
    }

    #[test]
    fn an_expired_ticket_is_not_live() {
        let sessions = Sessions::default();
        let mut ticket = Ticket::issue(&sessions, "bob", 3600);
        ticket.expires = now_seconds() - 1;
        assert!(!sessions.live(&ticket));
    }
}
