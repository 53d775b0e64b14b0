//! What makes a queue action from the web view deliberate: a form token
//! bound to the signed-in user (a page of another site cannot know it), a
//! confirmation token bound to exactly what the confirmation page showed
//! (the action, the ids, the reason) and to an expiry, and per-user limits
//! on how many actions a minute.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::limits::Limiter;

/// Single actions a user may ask per minute.
const SINGLE_PER_MINUTE: u32 = 30;
/// Bulk actions (more than one message) a user may ask per minute.
const BULK_PER_MINUTE: u32 = 3;

/// The server's signing key (new each start, like its sessions) and the
/// action limits.
pub(crate) struct Tokens {
    key: [u8; 32],
    single: Limiter,
    bulk: Limiter,
}

impl Tokens {
    /// A new key.
    pub(crate) fn new() -> Self {
        let mut key = [0u8; 32];
        let generated = axum_extra::extract::cookie::Key::generate();
        key.copy_from_slice(&generated.signing()[..32]);
        Tokens {
            key,
            single: Limiter::new(Duration::from_secs(60), SINGLE_PER_MINUTE),
            bulk: Limiter::new(Duration::from_secs(60), BULK_PER_MINUTE),
        }
    }

    fn mac(&self, parts: &[&str]) -> Hmac<Sha256> {
        // A key of any length is taken: this cannot fail.
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable_key());
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac
    }

    /// The token of `parts` (each length-prefixed: no two lists share one).
    pub(crate) fn sign(&self, parts: &[&str]) -> String {
        self.mac(parts)
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Whether `token` is the token of `parts` (compared in constant time).
    pub(crate) fn verify(&self, parts: &[&str], token: &str) -> bool {
        let bytes: Option<Vec<u8>> = (0..token.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(token.get(at..at + 2)?, 16).ok())
            .collect();
        bytes.is_some_and(|bytes| self.mac(parts).verify_slice(&bytes).is_ok())
    }

    /// Whether `user` may ask one more action now.
    pub(crate) fn allow(&self, user: &str, bulk: bool) -> bool {
        if bulk {
            self.bulk.hit(user)
        } else {
            self.single.hit(user)
        }
    }
}

/// `Hmac::new_from_slice` takes keys of every length; this is never reached.
fn unreachable_key() -> Hmac<Sha256> {
    <Hmac<Sha256> as hmac::digest::KeyInit>::new(&Default::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_holds_for_exactly_its_parts() {
        let tokens = Tokens::new();
        let token = tokens.sign(&["confirm", "root", "freeze", "1rAAAA-000001-AB", "99"]);
        assert!(tokens.verify(
            &["confirm", "root", "freeze", "1rAAAA-000001-AB", "99"],
            &token
        ));
        assert!(!tokens.verify(
            &["confirm", "root", "remove", "1rAAAA-000001-AB", "99"],
            &token
        ));
        assert!(!tokens.verify(
            &["confirm", "eve", "freeze", "1rAAAA-000001-AB", "99"],
            &token
        ));
        // Parts are length-prefixed: moving a boundary changes the token.
        assert!(!tokens.verify(
            &["confirmroot", "", "freeze", "1rAAAA-000001-AB", "99"],
            &token
        ));
        assert!(!tokens.verify(
            &["confirm", "root", "freeze", "1rAAAA-000001-AB", "99"],
            "zz"
        ));
        assert!(!Tokens::new().verify(
            &["confirm", "root", "freeze", "1rAAAA-000001-AB", "99"],
            &token
        ));
    }

    #[test]
    fn bulk_actions_are_limited_harder_than_single_ones() {
        let tokens = Tokens::new();
        assert!((0..BULK_PER_MINUTE).all(|_| tokens.allow("root", true)));
        assert!(!tokens.allow("root", true));
        assert!(tokens.allow("root", false));
        assert!(tokens.allow("eve", true));
    }
}
