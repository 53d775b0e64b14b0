//! How much one client may ask: requests per key in fixed windows
//! ([`Limiter`]), and failed sign-ins with a growing pause
//! ([`FailureBackoff`]). Both are bounded in memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys a limiter remembers at most: its memory is bounded.
pub(super) const LIMITER_KEYS: usize = 10_000;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Counts per key in fixed windows.
pub(super) struct Limiter {
    window: Duration,
    max: u32,
    counts: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Limiter {
    pub(super) fn new(window: Duration, max: u32) -> Self {
        Limiter {
            window,
            max,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one for `key`; false when it is over the limit.
    pub(super) fn hit(&self, key: &str) -> bool {
        let now = Instant::now();
        let mut counts = lock(&self.counts);
        if counts.len() >= LIMITER_KEYS && !counts.contains_key(key) {
            let window = self.window;
            counts.retain(|_, (start, _)| now.duration_since(*start) < window);
            if counts.len() >= LIMITER_KEYS {
                // Full of live keys (a flood from many addresses): start
                // over rather than grow or refuse everyone.
                counts.clear();
            }
        }
        let entry = counts.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 <= self.max
    }
}

/// Failed sign-ins per key, with a pause that doubles after the first
/// `free` ones (1 s, 2 s, 4 s... up to `longest`) rather than a lockout: a
/// stranger's five guesses cost the owner of the name seconds, not
/// minutes, and only from the stranger's address.
///
/// An attempt is counted when it begins, before the password is checked,
/// so concurrent attempts cannot pass the limit together; a success takes
/// its own count back.
pub(super) struct FailureBackoff {
    free: u32,
    longest: Duration,
    /// Forgotten after this long without an attempt.
    forget_after: Duration,
    attempts: Mutex<HashMap<String, (Instant, u32)>>,
}

impl FailureBackoff {
    pub(super) fn new(free: u32, longest: Duration, forget_after: Duration) -> Self {
        FailureBackoff {
            free,
            longest,
            forget_after,
            attempts: Mutex::new(HashMap::new()),
        }
    }

    /// The pause owed after `count` failures.
    fn pause(&self, count: u32) -> Duration {
        match count.checked_sub(self.free) {
            None => Duration::ZERO,
            Some(over) => Duration::from_secs(1u64 << over.min(20)).min(self.longest),
        }
    }

    /// Begins an attempt for `key`, counting it; `Err(wait)` when it must
    /// wait that long first (nothing counted).
    pub(super) fn begin(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut attempts = lock(&self.attempts);
        if let Some((last, count)) = attempts.get(key).copied() {
            let since = now.duration_since(last);
            if since >= self.forget_after {
                attempts.remove(key);
            } else {
                let pause = self.pause(count);
                if since < pause {
                    return Err(pause - since);
                }
            }
        }
        if attempts.len() >= LIMITER_KEYS && !attempts.contains_key(key) {
            let forget_after = self.forget_after;
            attempts.retain(|_, (last, _)| now.duration_since(*last) < forget_after);
            // Still full: the least recently tried key goes.
            if attempts.len() >= LIMITER_KEYS
                && let Some(oldest) = attempts
                    .iter()
                    .min_by_key(|(_, (last, _))| *last)
                    .map(|(k, _)| k.clone())
            {
                attempts.remove(&oldest);
            }
        }
        let entry = attempts.entry(key.to_owned()).or_insert((now, 0));
        *entry = (now, entry.1 + 1);
        Ok(())
    }

    /// The attempt begun for `key` succeeded: its count is taken back.
    pub(super) fn succeeded(&self, key: &str, forget: bool) {
        let mut attempts = lock(&self.attempts);
        if forget {
            attempts.remove(key);
        } else if let Some(entry) = attempts.get_mut(key) {
            entry.1 = entry.1.saturating_sub(1);
        }
    }

    #[cfg(test)]
    fn keys(&self) -> usize {
        lock(&self.attempts).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limiter_counts_per_key_in_its_window_and_stays_bounded() {
        let limiter = Limiter::new(Duration::from_secs(60), 3);
        assert!(limiter.hit("a") && limiter.hit("a") && limiter.hit("a"));
        assert!(!limiter.hit("a"));
        assert!(limiter.hit("b"));
        for n in 0..LIMITER_KEYS + 10 {
            limiter.hit(&n.to_string());
        }
        assert!(lock(&limiter.counts).len() <= LIMITER_KEYS);
    }

    #[test]
    fn concurrent_attempts_are_counted_before_they_are_checked() {
        let backoff = std::sync::Arc::new(FailureBackoff::new(
            5,
            Duration::from_secs(300),
            Duration::from_secs(600),
        ));
        let passed: usize = (0..100)
            .map(|_| {
                let backoff = std::sync::Arc::clone(&backoff);
                std::thread::spawn(move || backoff.begin("alice 192.0.2.1").is_ok())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| usize::from(t.join().unwrap()))
            .sum();
        assert_eq!(passed, 5, "only the free attempts reach the password check");
        let wait = backoff.begin("alice 192.0.2.1").unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        // Another key is not held up.
        assert!(backoff.begin("alice 198.51.100.7").is_ok());
    }

    #[test]
    fn the_pause_doubles_to_its_longest_and_a_success_takes_its_count_back() {
        let backoff = FailureBackoff::new(2, Duration::from_secs(300), Duration::from_secs(600));
        assert_eq!(backoff.pause(1), Duration::ZERO);
        assert_eq!(backoff.pause(2), Duration::from_secs(1));
        assert_eq!(backoff.pause(3), Duration::from_secs(2));
        assert_eq!(backoff.pause(6), Duration::from_secs(16));
        assert_eq!(backoff.pause(40), Duration::from_secs(300));
        assert!(backoff.begin("k").is_ok());
        backoff.succeeded("k", false);
        assert!(backoff.begin("k").is_ok() && backoff.begin("k").is_ok());
        assert!(backoff.begin("k").is_err());
        backoff.succeeded("k", true);
        assert!(backoff.begin("k").is_ok());
    }

    #[test]
    fn a_flood_of_keys_stays_bounded() {
        let backoff = FailureBackoff::new(5, Duration::from_secs(300), Duration::from_secs(600));
        for n in 0..LIMITER_KEYS + 10 {
            let _ = backoff.begin(&n.to_string());
        }
        assert!(backoff.keys() <= LIMITER_KEYS);
    }
}
