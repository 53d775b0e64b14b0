//! Counted slots per key (a client address, a user), taken for as long as
//! a connection or a stream lasts and given back when its guard drops: so
//! that one client cannot hold every connection or every live stream.
//! Memory is bounded by what is held: a key with no slot taken is gone.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

/// At most `per_key` slots per key.
pub(crate) struct Slots<K: Eq + Hash + Clone> {
    per_key: usize,
    held: Mutex<HashMap<K, usize>>,
}

/// One slot taken; given back on drop.
pub(crate) struct Slot<K: Eq + Hash + Clone> {
    slots: Arc<Slots<K>>,
    key: K,
}

impl<K: Eq + Hash + Clone> Slots<K> {
    pub(crate) fn new(per_key: usize) -> Arc<Self> {
        Arc::new(Slots {
            per_key,
            held: Mutex::new(HashMap::new()),
        })
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<K, usize>> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A slot for `key`, unless it holds `per_key` already.
    pub(crate) fn take(self: &Arc<Self>, key: K) -> Option<Slot<K>> {
        let mut held = self.held();
        let count = held.entry(key.clone()).or_insert(0);
        if *count >= self.per_key {
            return None;
        }
        *count += 1;
        Some(Slot {
            slots: Arc::clone(self),
            key,
        })
    }
}

impl<K: Eq + Hash + Clone> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut held = self.slots.held();
        if let Some(count) = held.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_holds_at_most_its_slots_and_gets_them_back() {
        let slots = Slots::new(2);
        let a1 = slots.take("a").unwrap();
        let _a2 = slots.take("a").unwrap();
        assert!(slots.take("a").is_none());
        assert!(slots.take("b").is_some());
        drop(a1);
        assert!(slots.take("a").is_some());
        drop(_a2);
        assert!(slots.held().is_empty(), "keys with nothing held are gone");
    }
}
