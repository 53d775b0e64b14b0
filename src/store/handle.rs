//! [`StoreHandle`]: the store the daemon's tasks share, which the health
//! task can replace with a freshly built pool while the others keep going.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use super::pool::Store;

/// A replaceable [`Store`] and whether it was healthy at the last check.
#[derive(Clone)]
pub struct StoreHandle {
    current: Arc<RwLock<Store>>,
    healthy: Arc<AtomicBool>,
    generation: Arc<AtomicU64>,
}

impl StoreHandle {
    /// A handle on a store that has just connected (healthy).
    pub fn new(store: Store) -> Self {
        StoreHandle {
            current: Arc::new(RwLock::new(store)),
            healthy: Arc::new(AtomicBool::new(true)),
            generation: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The store to use now. Cheap: a store is a handle on its pool.
    pub fn current(&self) -> Store {
        match self.current.read() {
            Ok(store) => store.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Puts a new store in place and closes the old pool (connections in
    /// use finish their work first).
    pub fn replace(&self, store: Store) {
        let old = match self.current.write() {
            Ok(mut current) => std::mem::replace(&mut *current, store),
            Err(poisoned) => std::mem::replace(&mut *poisoned.into_inner(), store),
        };
        old.close();
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.set_healthy(true);
    }

    /// Counts replacements: row ids cached from an older store may not
    /// exist in the new one (the file may have been replaced).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Whether the last health check passed.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Records the outcome of a health check.
    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
    }
}
