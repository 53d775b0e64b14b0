//! The reader → writer channel, bounded twice: by items (tokio's mpsc) and
//! by the bytes of the lines in flight, so that a log of megabyte lines
//! holds as little memory as a log of short ones. A reader blocks when
//! either bound is reached: the log file is the buffer, nothing is dropped.
//!
//! Items travel in chunks of up to [`CHUNK_ITEMS`] lines or
//! [`CHUNK_BYTES`] bytes: sent one by one, a full channel woke the blocked
//! reader for every line the writer took, three futex calls per line and a
//! third of an ingest's time in the kernel. The reader sends a partial
//! chunk whenever it has nothing more to read ([`ItemSink::flush`]).

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use tokio::sync::mpsc;

use super::item::Item;
use super::source::ItemSink;

/// The channel `[ingest]` bounds: `channel_capacity` items and
/// `channel_capacity_bytes` bytes of lines.
pub fn for_config(ingest: &crate::config::IngestConfig) -> (LineSender, LineReceiver) {
    channel(ingest.channel_capacity, ingest.channel_capacity_bytes)
}

/// Lines a reader gathers before it sends them, at most.
pub const CHUNK_ITEMS: usize = 128;
/// Bytes of lines a reader gathers before it sends them, at most (a
/// longer line travels alone; a quarter of the channel's bound when that is
/// smaller).
pub const CHUNK_BYTES: usize = 64 * 1024;

/// A channel holding at most `items` items and `bytes` bytes of lines (a
/// single larger line travels alone), plus what each sender has gathered
/// and not yet sent (a chunk at most).
pub fn channel(items: usize, bytes: usize) -> (LineSender, LineReceiver) {
    let items = items.max(1);
    let bytes = bytes.max(1);
    let chunk_items = CHUNK_ITEMS.min(items);
    let (tx, rx) = mpsc::channel((items / chunk_items).max(1));
    let budget = Arc::new(Budget {
        capacity: bytes,
        state: Mutex::new(BudgetState::default()),
        freed: Condvar::new(),
    });
    (
        LineSender {
            tx,
            budget: Arc::clone(&budget),
            chunk_items,
            // A quarter of the bound at most, so a chunk never holds most
            // of what the channel may.
            chunk_bytes: CHUNK_BYTES.min(bytes / 4).max(1),
            pending: Vec::new(),
            pending_weight: 0,
        },
        LineReceiver {
            rx,
            budget,
            taken: Vec::new().into_iter(),
        },
    )
}

/// The sending side; clone it for each reader (a clone starts with
/// nothing gathered).
pub struct LineSender {
    tx: mpsc::Sender<Vec<Item>>,
    budget: Arc<Budget>,
    chunk_items: usize,
    chunk_bytes: usize,
    /// Gathered, not sent yet.
    pending: Vec<Item>,
    pending_weight: usize,
}

impl Clone for LineSender {
    fn clone(&self) -> Self {
        LineSender {
            tx: self.tx.clone(),
            budget: Arc::clone(&self.budget),
            chunk_items: self.chunk_items,
            chunk_bytes: self.chunk_bytes,
            pending: Vec::new(),
            pending_weight: 0,
        }
    }
}

impl LineSender {
    /// Sends from async code, waiting for room among the items. Meant for
    /// records without line bytes (audit records), which the byte bound
    /// does not count. Returns `false` once the writer is gone.
    pub async fn send_record(&self, item: Item) -> bool {
        debug_assert_eq!(weight(&item), 0);
        self.tx.send(vec![item]).await.is_ok()
    }
}

impl ItemSink for LineSender {
    /// Gathers `item`; sends the chunk once it is full, blocking the
    /// calling (reader) thread until both bounds have room.
    fn send(&mut self, item: Item) -> bool {
        self.pending_weight += weight(&item);
        self.pending.push(item);
        if self.pending.len() >= self.chunk_items || self.pending_weight >= self.chunk_bytes {
            return self.flush();
        }
        // A gone receiver shows at the next flush, a chunk later at most.
        true
    }

    /// Sends what was gathered, blocking until both bounds have room.
    fn flush(&mut self) -> bool {
        if self.pending.is_empty() {
            return !self.budget.lock().closed;
        }
        let chunk = std::mem::take(&mut self.pending);
        let weight = std::mem::take(&mut self.pending_weight);
        if !self.budget.acquire(weight) {
            return false;
        }
        if self.tx.blocking_send(chunk).is_err() {
            self.budget.release(weight);
            return false;
        }
        true
    }
}

/// The receiving side, owned by the writer.
pub struct LineReceiver {
    rx: mpsc::Receiver<Vec<Item>>,
    budget: Arc<Budget>,
    /// The rest of the chunk taken last.
    taken: std::vec::IntoIter<Item>,
}

impl LineReceiver {
    /// The next item; `None` once every sender is gone and all is taken.
    pub async fn recv(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.taken.next() {
                return Some(item);
            }
            let chunk = self.rx.recv().await?;
            self.take(chunk);
        }
    }

    /// The next item if one is queued.
    pub fn try_recv(&mut self) -> Result<Item, mpsc::error::TryRecvError> {
        loop {
            if let Some(item) = self.taken.next() {
                return Ok(item);
            }
            let chunk = self.rx.try_recv()?;
            self.take(chunk);
        }
    }

    /// A chunk leaves the channel: its bytes no longer count against it
    /// (the writer's batch bounds them from here).
    fn take(&mut self, chunk: Vec<Item>) {
        self.budget.release(chunk.iter().map(weight).sum());
        self.taken = chunk.into_iter();
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
        Item::Gap(_) | Item::Audit(_) | Item::QueueSample(_) => 0,
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
    use crate::pipeline::item::ResumeMarker;
    use crate::pipeline::item::{LineItem, SourceInfo};
    use crate::pipeline::source::{Fingerprint, TailMarker};

    fn line(bytes: usize) -> Item {
        Item::Line(LineItem {
            source: Arc::new(SourceInfo {
                fingerprint: Fingerprint([0; 16]),
                path: "mainlog".to_owned(),
                device: None,
                inode: None,
                kind: Default::default(),
            }),
            start: 0,
            end: bytes as u64 + 1,
            length: bytes as u64,
            bytes: vec![b'x'; bytes],
            resume: ResumeMarker::Tail(TailMarker::default()),
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
    fn lines_travel_gathered_in_order_once_full_or_flushed() {
        let (mut sender, mut receiver) = channel(1000, 1 << 20);
        for _ in 0..3 {
            assert!(sender.send(line(10)));
        }
        assert!(receiver.try_recv().is_err(), "gathered, not sent yet");
        assert!(sender.flush());
        let lengths: Vec<u64> = std::iter::from_fn(|| receiver.try_recv().ok())
            .map(|item| match item {
                Item::Line(line) => line.length,
                _ => 0,
            })
            .collect();
        assert_eq!(lengths, [10, 10, 10]);
        for length in 0..CHUNK_ITEMS as u64 {
            assert!(sender.send(line(length as usize)));
        }
        let sent: Vec<u64> = std::iter::from_fn(|| receiver.try_recv().ok())
            .map(|item| match item {
                Item::Line(line) => line.length,
                _ => 0,
            })
            .collect();
        assert_eq!(
            sent,
            (0..CHUNK_ITEMS as u64).collect::<Vec<_>>(),
            "a full chunk goes"
        );
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
