//! The reader → writer channel, bounded twice: by items (tokio's mpsc) and
//! by the bytes of the lines in flight, so that a log of megabyte lines
//! holds as little memory as a log of short ones. A reader blocks when
//! either bound is reached: the log file is the buffer, nothing is dropped.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use tokio::sync::mpsc;

use super::item::Item;
use super::source::ItemSink;

/// The channel `[ingest]` bounds: `channel_capacity` items and
/// `channel_capacity_bytes` bytes of lines.
pub fn for_config(ingest: &crate::config::IngestConfig) -> (LineSender, LineReceiver) {
    channel(ingest.channel_capacity, ingest.channel_capacity_bytes)
}

/// A channel holding at most `items` items and `bytes` bytes of lines (a
/// single larger line travels alone).
pub fn channel(items: usize, bytes: usize) -> (LineSender, LineReceiver) {
    let (tx, rx) = mpsc::channel(items.max(1));
    let budget = Arc::new(Budget {
        capacity: bytes.max(1),
        state: Mutex::new(BudgetState::default()),
        freed: Condvar::new(),
    });
    (
        LineSender {
            tx,
            budget: Arc::clone(&budget),
        },
        LineReceiver { rx, budget },
    )
}

/// The sending side; clone it for each reader.
#[derive(Clone)]
pub struct LineSender {
    tx: mpsc::Sender<Item>,
    budget: Arc<Budget>,
}

impl LineSender {
    /// Sends from async code, waiting for room among the items. Meant for
    /// records without line bytes (audit records), which the byte bound
    /// does not count. Returns `false` once the writer is gone.
    pub async fn send_record(&self, item: Item) -> bool {
        debug_assert_eq!(weight(&item), 0);
        self.tx.send(item).await.is_ok()
    }
}

impl ItemSink for LineSender {
    /// Blocks the calling (reader) thread until both bounds have room.
    fn send(&mut self, item: Item) -> bool {
        let weight = weight(&item);
        if !self.budget.acquire(weight) {
            return false;
        }
        if self.tx.blocking_send(item).is_err() {
            self.budget.release(weight);
            return false;
        }
        true
    }
}

/// The receiving side, owned by the writer.
pub struct LineReceiver {
    rx: mpsc::Receiver<Item>,
    budget: Arc<Budget>,
}

impl LineReceiver {
    /// The next item; `None` once every sender is gone and all is taken.
    pub async fn recv(&mut self) -> Option<Item> {
        let item = self.rx.recv().await?;
        self.budget.release(weight(&item));
        Some(item)
    }

    /// The next item if one is queued.
    pub fn try_recv(&mut self) -> Result<Item, mpsc::error::TryRecvError> {
        let item = self.rx.try_recv()?;
        self.budget.release(weight(&item));
        Ok(item)
    }
}

impl Drop for LineReceiver {
    fn drop(&mut self) {
        // A reader waiting for room would wait for ever.
        self.budget.close();
    }
}

/// What an item holds in memory beyond its fixed size: a line's bytes, and
/// the line's own bookkeeping. Records (gaps, audits) count as nothing.
pub fn weight(item: &Item) -> usize {
    match item {
        Item::Line(line) => line.bytes.len() + size_of::<super::item::LineItem>(),
        Item::Gap(_) | Item::Audit(_) => 0,
    }
}

#[derive(Debug, Default)]
struct BudgetState {
    in_flight: usize,
    closed: bool,
}

/// Bytes in flight, with a condition variable for readers waiting on room.
struct Budget {
    capacity: usize,
    state: Mutex<BudgetState>,
    freed: Condvar,
}

impl Budget {
    fn lock(&self) -> MutexGuard<'_, BudgetState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits until `weight` fits (or nothing is in flight); `false` once
    /// the receiver is gone.
    fn acquire(&self, weight: usize) -> bool {
        if weight == 0 {
            return !self.lock().closed;
        }
        let mut state = self.lock();
        while !state.closed && state.in_flight > 0 && state.in_flight + weight > self.capacity {
            state = self
                .freed
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        if state.closed {
            return false;
        }
        state.in_flight += weight;
        true
    }

    fn release(&self, weight: usize) {
        if weight == 0 {
            return;
        }
        let mut state = self.lock();
        state.in_flight = state.in_flight.saturating_sub(weight);
        drop(state);
        self.freed.notify_all();
    }

    fn close(&self) {
        self.lock().closed = true;
        self.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::item::{LineItem, SourceInfo};
    use crate::pipeline::source::{Fingerprint, TailMarker};

    fn line(bytes: usize) -> Item {
        Item::Line(LineItem {
            source: Arc::new(SourceInfo {
                fingerprint: Fingerprint([0; 16]),
                path: "mainlog".to_owned(),
                device: None,
                inode: None,
            }),
            start: 0,
            end: bytes as u64 + 1,
            length: bytes as u64,
            bytes: vec![b'x'; bytes],
            tail_marker: TailMarker::default(),
        })
    }

    #[test]
    fn the_byte_bound_blocks_the_sender_until_the_receiver_takes_lines() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (sender, mut receiver) = channel(1000, 10_000);
        let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let thread = std::thread::spawn({
            let sent = Arc::clone(&sent);
            let mut sender = sender.clone();
            move || {
                for _ in 0..20 {
                    assert!(sender.send(line(4000)));
                    sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
        });
        std::thread::sleep(std::time::Duration::from_millis(200));
        let waiting = sent.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            waiting <= 2,
            "{waiting} lines of 4000 bytes in a 10,000-byte channel"
        );
        for _ in 0..20 {
            assert!(runtime.block_on(receiver.recv()).is_some());
        }
        thread.join().unwrap();
        // A line larger than the whole bound still travels, alone.
        let mut sender = sender;
        assert!(sender.send(line(50_000)));
        assert!(runtime.block_on(receiver.recv()).is_some());
    }

    #[test]
    fn a_sender_waiting_for_room_gives_up_when_the_receiver_goes() {
        let (mut sender, receiver) = channel(1000, 10_000);
        assert!(sender.send(line(9000)));
        let thread = std::thread::spawn(move || sender.send(line(9000)));
        std::thread::sleep(std::time::Duration::from_millis(100));
        drop(receiver);
        assert!(!thread.join().unwrap());
    }
}
