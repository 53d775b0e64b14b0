//! The single writer: the only code that writes log data to the database.
//!
//! It collects items from the channel into a batch (up to `batch_size`
//! lines, or whatever arrived within `flush_interval` of the first), and
//! commits each batch in ONE transaction holding its lines, its gaps and
//! the read position of every source it touched. After any crash the stored
//! rows and the stored positions agree, and a line that starts before its
//! source's stored position is skipped, so a replayed batch stores nothing
//! twice. A failed commit keeps the batch and tries again with backoff while
//! the reader waits on the full channel.

mod batch;
mod catch_up;
mod commit;
mod pruning;
mod queue_actions;

pub use catch_up::Indexes;

// FxHash: keys are row ids and file fingerprints, none of them chosen by a
// sender.
use rustc_hash::FxHashMap as HashMap;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::channel::{LineReceiver, weight};
use super::item::Item;
use super::source::Fingerprint;
use crate::model::MessageIds;
use crate::store::chunk::Compressor;
use crate::store::{RetentionPolicy, StoreError, StoreHandle, TextIds};
use commit::commit_with_retry;
use pruning::Pruning;

/// Batching limits, changeable while running (SIGHUP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterSettings {
    /// Lines committed in one transaction, at most.
    pub batch_size: usize,
    /// Bytes of lines in one batch, at most (a larger line is a batch alone).
    pub batch_bytes: usize,
    /// A partial batch is committed after this long.
    pub flush_interval: Duration,
    /// The first retry delay.
    pub backoff_min: Duration,
    /// Retry delays never exceed this.
    pub backoff_max: Duration,
    /// Attempts per batch before giving up; `None` retries forever (the
    /// daemon), a number makes a one-shot command fail instead of hanging.
    pub max_attempts: Option<u32>,
    /// Prune by this policy every `interval` (the daemon only).
    pub retention: Option<(RetentionPolicy, Duration)>,
}

impl WriterSettings {
    /// The settings `config` gives: retrying for ever and pruning (the
    /// daemon), or giving up after `max_attempts` and never pruning (a
    /// one-shot command).
    pub fn from_config(config: &crate::config::Config, max_attempts: Option<u32>) -> Self {
        WriterSettings {
            batch_size: config.ingest.batch_size,
            batch_bytes: config.ingest.batch_size_bytes,
            flush_interval: config.ingest.flush_interval,
            backoff_min: config.health.backoff_min,
            backoff_max: config.health.backoff_max,
            max_attempts,
            retention: max_attempts
                .is_none()
                .then(|| (RetentionPolicy::of(config), config.retention.interval)),
        }
    }
}

/// A writer task, as the daemon and `ingest` start it.
pub struct Started {
    /// New batching settings (a reload).
    pub settings: watch::Sender<WriterSettings>,
    /// The writer; it ends when every sender is gone and all is committed.
    pub task: tokio::task::JoinHandle<Result<WriteTotals, StoreError>>,
}

/// Starts the writer on `store`, taking what arrives on `receiver` (made
/// with [`super::channel::channel`] as the configuration bounds it).
/// `indexes` says whether it builds the secondary indexes once caught up.
pub fn start(
    store: StoreHandle,
    receiver: LineReceiver,
    settings: WriterSettings,
    mut progress: Box<dyn Progress>,
    indexes: Indexes,
) -> Started {
    let (settings_tx, settings_rx) = watch::channel(settings);
    let task =
        tokio::spawn(
            async move { run(store, receiver, settings_rx, progress.as_mut(), indexes).await },
        );
    Started {
        settings: settings_tx,
        task,
    }
}

/// What the writer has stored so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteTotals {
    /// Batches committed.
    pub batches: u64,
    /// Lines newly stored.
    pub inserted: u64,
    /// Lines that were already stored (a replay), left unchanged.
    pub replayed: u64,
    /// Gaps recorded (new ones).
    pub gaps: u64,
}

impl WriteTotals {
    fn add(&mut self, other: WriteTotals) {
        self.batches += other.batches;
        self.inserted += other.inserted;
        self.replayed += other.replayed;
        self.gaps += other.gaps;
    }
}

/// Told after every commit and on every idle tick, so the caller can feed
/// the watchdog and status from real progress.
pub trait Progress: Send {
    /// A batch was committed.
    fn committed(&mut self, batch: WriteTotals, totals: WriteTotals);
    /// The writer is alive: waiting for lines, or retrying a commit.
    fn alive(&mut self, healthy: bool);
}

/// Does nothing: for one-shot commands.
pub struct NoProgress;

impl Progress for NoProgress {
    fn committed(&mut self, _: WriteTotals, _: WriteTotals) {}
    fn alive(&mut self, _: bool) {}
}

/// What a continuation line inherits from the entry before it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct EntryContext {
    logged_ms: Option<i64>,
    message_row: Option<i64>,
}

/// State that survives from batch to batch. An attempt takes it and gives
/// it back when it commits; a rolled-back attempt loses the caches (they
/// may name rows that were never committed, and the database answers
/// again) and restores the contexts from a copy (one entry per source), so
/// it leaves no trace. Copying the whole state per batch, caches included,
/// cost more than a tenth of a second per million lines.
#[derive(Debug, Default)]
struct WriterState {
    source_ids: HashMap<Fingerprint, i64>,
    contexts: HashMap<Fingerprint, EntryContext>,
    messages: MessageIds,
    texts: TextIds,
    compressor: Compressor,
    /// The store generation the cached ids belong to.
    store_generation: u64,
    /// Whether this database's counters were seeded (or needed no seed).
    counters_seeded: bool,
    /// The messages with a queue action awaiting Exim's line.
    awaiting: queue_actions::Awaiting,
}

/// Runs until the channel closes and everything received is committed.
/// With [`Indexes::DroppedUntilCaughtUp`], the first batch that comes in
/// short (the reader has caught up) is followed by building the indexes.
pub async fn run(
    store: StoreHandle,
    mut receiver: LineReceiver,
    mut settings: watch::Receiver<WriterSettings>,
    progress: &mut dyn Progress,
    mut indexes: Indexes,
) -> Result<WriteTotals, StoreError> {
    let mut totals = WriteTotals::default();
    let mut state = WriterState::default();
    let mut pruning = Pruning::new();
    let mut open = true;
    while open {
        let current = *settings.borrow_and_update();
        // Not while catching up without indexes: a prune step would scan.
        if let Some((policy, interval)) = current.retention
            && indexes == Indexes::Kept
        {
            pruning.step(&store, &policy, interval).await;
        }
        let mut batch = Vec::with_capacity(current.batch_size.min(65_536));
        let collected = collect(&mut receiver, &mut batch, &current, progress, &store).await;
        open = collected != Collected::Closed;
        if indexes == Indexes::DroppedUntilCaughtUp
            && collected == Collected::RanDry
            && catch_up::build_indexes(&store, progress).await
        {
            indexes = Indexes::Kept;
        }
        if batch.is_empty() {
            continue;
        }
        let written = commit_with_retry(&store, batch, &mut state, &current, progress).await?;
        tracing::debug!(
            inserted = written.inserted,
            replayed = written.replayed,
            gaps = written.gaps,
            "committed a batch"
        );
        totals.add(written);
        progress.committed(written, totals);
    }
    if indexes == Indexes::DroppedUntilCaughtUp {
        // Stopping: building them now could outlast the stop timeout; the
        // next open builds them.
        tracing::info!("stopping before the catch-up ended: the next start builds the indexes");
    }
    Ok(totals)
}

/// How [`collect`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Collected {
    /// The batch is full, by lines or bytes: more may be waiting.
    Full,
    /// The channel ran dry for the flush interval (or the idle tick): the
    /// reader has caught up with the log.
    RanDry,
    /// The channel is closed and empty.
    Closed,
}

/// Fills `batch` with up to `batch_size` lines and `batch_bytes` bytes of
/// them, waiting at most `flush_interval` after the first.
async fn collect(
    receiver: &mut LineReceiver,
    batch: &mut Vec<Item>,
    settings: &WriterSettings,
    progress: &mut dyn Progress,
    store: &StoreHandle,
) -> Collected {
    // Idle: wake up now and then to show the writer is alive (and let
    // the caller prune).
    let idle_tick = settings.flush_interval.max(Duration::from_millis(500));
    let first = match tokio::time::timeout(idle_tick, receiver.recv()).await {
        Ok(Some(item)) => item,
        Ok(None) => return Collected::Closed,
        Err(_) => {
            progress.alive(store.is_healthy());
            return Collected::RanDry;
        }
    };
    let mut bytes = weight(&first);
    batch.push(first);
    let deadline = tokio::time::Instant::now() + settings.flush_interval;
    while batch.len() < settings.batch_size && bytes < settings.batch_bytes {
        // Take what is already queued without waiting.
        let item = match receiver.try_recv() {
            Ok(item) => item,
            Err(mpsc::error::TryRecvError::Disconnected) => return Collected::Closed,
            Err(mpsc::error::TryRecvError::Empty) => {
                match tokio::time::timeout_at(deadline, receiver.recv()).await {
                    Ok(Some(item)) => item,
                    Ok(None) => return Collected::Closed,
                    Err(_) => return Collected::RanDry,
                }
            }
        };
        bytes += weight(&item);
        batch.push(item);
    }
    Collected::Full
}
