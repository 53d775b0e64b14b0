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
//!
//! A batch is prepared (parsed, placed, applied to the model: `prepare.rs`)
//! and then written (`batch.rs`). While batches come full, the next one is
//! prepared on a connection of its own while this one is written and
//! committed, from what this one left (`model::Carried`); its transaction
//! checks that nobody else changed what it read, and if anything did, or
//! the batch before it was not committed as prepared, it is prepared again
//! inside its transaction.

mod batch;
mod catch_up;
mod commit;
mod implausible;
mod prepare;
mod pruning;
mod queue_actions;

pub use catch_up::Indexes;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::channel::{LineReceiver, weight};
use super::item::Item;
use crate::store::chunk::Compressor;
use crate::store::{Context, RetentionPolicy, StoreError, StoreHandle};
use commit::{Ready, commit_ahead, commit_in_transaction};
use prepare::{PrepareState, PreparedBatch};
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

/// What writing carries from batch to batch (preparing carries its own,
/// [`PrepareState`]). An attempt takes it and gives it back when it
/// commits; a rolled-back attempt starts over ([`WriteState::fresh`]).
#[derive(Debug, Default)]
struct WriteState {
    compressor: Compressor,
    /// The store generation the cached ids belong to.
    store_generation: u64,
    /// Whether this database's counters were seeded (or needed no seed).
    counters_seeded: bool,
    /// The messages with a queue action awaiting Exim's line.
    awaiting: queue_actions::Awaiting,
}

impl WriteState {
    /// Nothing cached, for the store of `generation`.
    fn fresh(generation: u64) -> Self {
        WriteState {
            store_generation: generation,
            ..WriteState::default()
        }
    }
}

/// The writer's loop: the batch prepared and not yet committed, and the
/// states of preparing and writing.
struct Writer<'p> {
    store: StoreHandle,
    progress: &'p mut dyn Progress,
    preparing: PrepareState,
    writing: WriteState,
    ready: Option<Ready>,
    totals: WriteTotals,
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
    let mut writer = Writer {
        store,
        progress,
        preparing: PrepareState::default(),
        writing: WriteState::default(),
        ready: None,
        totals: WriteTotals::default(),
    };
    let mut pruning = Pruning::new();
    let mut open = true;
    while open {
        let current = *settings.borrow_and_update();
        // Not while catching up without indexes: a prune step would scan.
        if let Some((policy, interval)) = current.retention
            && indexes == Indexes::Kept
            && pruning.due()
        {
            // A prune step removes rows a prepared batch may have read.
            writer.commit_ready(&current).await?;
            pruning.step(&writer.store, &policy, interval).await;
            writer.preparing.forget_rows();
        }
        let (collected, received) = writer.step(&mut receiver, &current).await?;
        open = collected != Collected::Closed;
        if collected == Collected::Full {
            // More is waiting: the batch commits while the next is prepared.
            continue;
        }
        writer.commit_ready(&current).await?;
        if collected == Collected::RanDry && !received {
            writer.progress.alive(writer.store.is_healthy());
        }
        if indexes == Indexes::DroppedUntilCaughtUp
            && collected == Collected::RanDry
            && catch_up::build_indexes(&writer.store, writer.progress).await
        {
            indexes = Indexes::Kept;
        }
    }
    if indexes == Indexes::DroppedUntilCaughtUp {
        // Stopping: building them now could outlast the stop timeout; the
        // next open builds them.
        tracing::info!("stopping before the catch-up ended: the next start builds the indexes");
    }
    Ok(writer.totals)
}

impl Writer<'_> {
    /// Collects the next batch and prepares it, meanwhile committing the
    /// batch ready before it, if any. Returns how collecting ended and
    /// whether anything was received.
    async fn step(
        &mut self,
        receiver: &mut LineReceiver,
        settings: &WriterSettings,
    ) -> Result<(Collected, bool), StoreError> {
        let Writer {
            store,
            progress,
            preparing,
            writing,
            ready,
            ..
        } = self;
        let (written, collected, received) = match ready.take() {
            Some(Ready::Ahead(prepared)) => {
                // This batch's rows are written while the next batch is
                // prepared from what this one left.
                let (committed, (collected, next)) = tokio::join!(
                    commit_ahead(store, prepared, writing, settings, *progress),
                    async {
                        let (collected, batch) = collect(receiver, settings).await;
                        (collected, prepare_next(store, batch, preparing).await)
                    }
                );
                let (written, restarted) = committed?;
                let received = next.is_some();
                *ready = match restarted {
                    // Prepared from what the batch before would have left:
                    // void, prepared again in its own transaction.
                    Some(state) => {
                        *preparing = state;
                        next.map(|next| Ready::InTransaction(next.into_batch()))
                    }
                    None => next,
                };
                (Some(written), collected, received)
            }
            Some(Ready::InTransaction(batch)) => {
                let (committed, (collected, next)) = tokio::join!(
                    commit_in_transaction(store, batch, preparing, writing, settings, *progress),
                    collect(receiver, settings)
                );
                let written = committed?;
                let received = !next.is_empty();
                *ready = prepare_next(store, next, preparing).await;
                (Some(written), collected, received)
            }
            None => {
                let (collected, batch) = collect(receiver, settings).await;
                let received = !batch.is_empty();
                *ready = prepare_next(store, batch, preparing).await;
                (None, collected, received)
            }
        };
        if let Some(written) = written {
            self.committed(written);
        }
        Ok((collected, received))
    }

    /// Commits the batch ready, if any, with nothing prepared after it.
    async fn commit_ready(&mut self, settings: &WriterSettings) -> Result<(), StoreError> {
        let written = match self.ready.take() {
            None => return Ok(()),
            Some(Ready::Ahead(prepared)) => {
                let (written, restarted) = commit_ahead(
                    &self.store,
                    prepared,
                    &mut self.writing,
                    settings,
                    self.progress,
                )
                .await?;
                if let Some(state) = restarted {
                    self.preparing = state;
                }
                // Nothing is prepared after it.
                self.preparing.settle();
                written
            }
            Some(Ready::InTransaction(batch)) => {
                commit_in_transaction(
                    &self.store,
                    batch,
                    &mut self.preparing,
                    &mut self.writing,
                    settings,
                    self.progress,
                )
                .await?
            }
        };
        self.committed(written);
        Ok(())
    }

    fn committed(&mut self, written: WriteTotals) {
        tracing::debug!(
            inserted = written.inserted,
            replayed = written.replayed,
            gaps = written.gaps,
            "committed a batch"
        );
        self.totals.add(written);
        self.progress.committed(written, self.totals);
    }
}

/// Makes `batch` ready to commit: prepared now, on a connection of its
/// own, when it can be (see [`PrepareState::can_prepare_ahead`]), else left
/// to be prepared inside its transaction.
async fn prepare_next(
    store: &StoreHandle,
    batch: Vec<Item>,
    preparing: &mut PrepareState,
) -> Option<Ready> {
    if batch.is_empty() {
        return None;
    }
    let batch = Arc::new(batch);
    let generation = store.generation();
    if preparing.store_generation != generation || !preparing.can_prepare_ahead(&batch) {
        return Some(Ready::InTransaction(batch));
    }
    let contexts = preparing.contexts.clone();
    let mut state = std::mem::take(preparing);
    let owner = Arc::clone(&batch);
    let path = store.current().path().to_owned();
    let outcome = tokio::task::spawn_blocking(move || {
        let prepared = PreparedBatch::try_new(owner, |batch| state.prepare_ahead(&path, batch));
        prepared.map(|prepared| (prepared, state))
    })
    .await
    .unwrap_or_else(|err| match err.try_into_panic() {
        Ok(panic) => std::panic::resume_unwind(panic),
        Err(err) => Err(StoreError::other(
            Context::op("prepare a batch"),
            err.to_string(),
        )),
    });
    match outcome {
        Ok((prepared, state)) => {
            *preparing = state;
            Some(Ready::Ahead(prepared))
        }
        Err(err) => {
            tracing::debug!(
                error = %err,
                "could not prepare a batch ahead ({err}); preparing it in its transaction"
            );
            *preparing = PrepareState::after(contexts, generation);
            Some(Ready::InTransaction(batch))
        }
    }
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
async fn collect(receiver: &mut LineReceiver, settings: &WriterSettings) -> (Collected, Vec<Item>) {
    let mut batch = Vec::with_capacity(settings.batch_size.min(65_536));
    let collected = collect_into(receiver, &mut batch, settings).await;
    (collected, batch)
}

/// Fills `batch` (see [`collect`]).
async fn collect_into(
    receiver: &mut LineReceiver,
    batch: &mut Vec<Item>,
    settings: &WriterSettings,
) -> Collected {
    // Idle: wake up now and then to show the writer is alive (and let
    // the caller prune).
    let idle_tick = settings.flush_interval.max(Duration::from_millis(500));
    let first = match tokio::time::timeout(idle_tick, receiver.recv()).await {
        Ok(Some(item)) => item,
        Ok(None) => return Collected::Closed,
        Err(_) => return Collected::RanDry,
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

#[cfg(test)]
mod tests;
