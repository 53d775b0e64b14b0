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

// FxHash: keys are row ids, file fingerprints and (minute, kind) pairs,
// none of them chosen by a sender; hashing several per line was a few
// percent of ingest with the standard hasher.
use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_sqlite::rusqlite::Transaction;
use tokio::sync::{mpsc, watch};

use super::channel::{LineReceiver, weight};
use super::item::{AuditItem, GapItem, Item, LineItem, SourceInfo};
use super::source::Fingerprint;
use crate::backoff::Backoff;
use crate::model::{BatchModel, MessageIds};
use crate::parse::{Entry, Event, parse_line};
use crate::store::chunk::LineRecord;
use crate::store::repo::{
    AuditRecord, Checkpoint, ChunkedLines, Gap, SourceIdentity, add_line_counts, load_checkpoint,
    minute_of, record_audit, record_gap, save_checkpoint, seal_all, store_sealed, upsert_source,
};
use crate::store::{
    Context, Pruned, RetentionPolicy, StoreError, StoreHandle, TxError, retry_logged,
};

/// Batching limits, changeable while running (SIGHUP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterSettings {
    pub batch_size: usize,
    /// Bytes of lines in one batch, at most (a larger line is a batch alone).
    pub batch_bytes: usize,
    pub flush_interval: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Attempts per batch before giving up; `None` retries forever (the
    /// daemon), a number makes a one-shot command fail instead of hanging.
    pub max_attempts: Option<u32>,
    /// Prune by this policy every `interval` (the daemon only).
    pub retention: Option<(RetentionPolicy, Duration)>,
}

/// What the writer has stored so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteTotals {
    pub batches: u64,
    /// Lines newly stored.
    pub inserted: u64,
    /// Lines that were already stored (a replay), left unchanged.
    pub replayed: u64,
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
    /// The store generation the cached ids belong to.
    store_generation: u64,
}

/// Runs until the channel closes and everything received is committed.
pub async fn run(
    store: StoreHandle,
    mut receiver: LineReceiver,
    mut settings: watch::Receiver<WriterSettings>,
    progress: &mut dyn Progress,
) -> Result<WriteTotals, StoreError> {
    let mut totals = WriteTotals::default();
    let mut state = WriterState::default();
    let mut pruning = Pruning::new();
    let mut open = true;
    while open {
        let current = *settings.borrow_and_update();
        if let Some((policy, interval)) = current.retention {
            pruning.step(&store, &policy, interval).await;
        }
        let mut batch = Vec::with_capacity(current.batch_size.min(65_536));
        open = collect(&mut receiver, &mut batch, &current, progress, &store).await;
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
    Ok(totals)
}

/// Retention, one small transaction between batches, so pruning a large
/// database never holds up ingest for long.
struct Pruning {
    next: Option<tokio::time::Instant>,
    active: Option<Pruned>,
}

impl Pruning {
    fn new() -> Self {
        Pruning {
            next: None,
            active: None,
        }
    }

    async fn step(&mut self, store: &StoreHandle, policy: &RetentionPolicy, interval: Duration) {
        if self.active.is_none() {
            // The first run waits a little: start-up catch-up comes first.
            let next = *self.next.get_or_insert_with(|| {
                tokio::time::Instant::now() + interval.min(FIRST_PRUNE_DELAY)
            });
            if tokio::time::Instant::now() < next {
                return;
            }
            self.active = Some(Pruned::default());
        }
        let Some(mut pruned) = self.active.take() else {
            return;
        };
        let policy = *policy;
        let outcome = store
            .current()
            .with_conn("prune", move |conn| {
                let more = policy.prune_step(conn, &mut pruned)?;
                if !more {
                    record_audit(
                        conn,
                        &AuditRecord {
                            actor: "exim-pilot",
                            action: "pruned",
                            message_id: None,
                            details: &serde_json::to_string(&pruned).unwrap_or_default(),
                            origin: "daemon",
                        },
                    )?;
                }
                Ok((more, pruned))
            })
            .await;
        match outcome {
            Ok((true, pruned)) => self.active = Some(pruned),
            Ok((false, pruned)) => {
                if pruned.total() > 0 {
                    tracing::info!(
                        rows = pruned.total(),
                        ?pruned,
                        "pruned rows past their retention"
                    );
                }
                self.next = Some(tokio::time::Instant::now() + interval);
            }
            Err(err) => {
                tracing::warn!(error = %err, "pruning failed; trying again later");
                self.next =
                    Some(tokio::time::Instant::now() + interval.min(Duration::from_secs(3600)));
            }
        }
    }
}

/// The delay before the first prune of a run.
const FIRST_PRUNE_DELAY: Duration = Duration::from_secs(60);

/// Fills `batch` with up to `batch_size` lines and `batch_bytes` bytes of
/// them, waiting at most `flush_interval` after the first. Returns false
/// once the channel is closed and empty.
async fn collect(
    receiver: &mut LineReceiver,
    batch: &mut Vec<Item>,
    settings: &WriterSettings,
    progress: &mut dyn Progress,
    store: &StoreHandle,
) -> bool {
    // Idle: wake up now and then to show the writer is alive (and let
    // the caller prune).
    let idle_tick = settings.flush_interval.max(Duration::from_millis(500));
    let first = match tokio::time::timeout(idle_tick, receiver.recv()).await {
        Ok(Some(item)) => item,
        Ok(None) => return false,
        Err(_) => {
            progress.alive(store.is_healthy());
            return true;
        }
    };
    let mut bytes = weight(&first);
    batch.push(first);
    let deadline = tokio::time::Instant::now() + settings.flush_interval;
    while batch.len() < settings.batch_size && bytes < settings.batch_bytes {
        // Take what is already queued without waiting.
        let item = match receiver.try_recv() {
            Ok(item) => item,
            Err(mpsc::error::TryRecvError::Disconnected) => return false,
            Err(mpsc::error::TryRecvError::Empty) => {
                match tokio::time::timeout_at(deadline, receiver.recv()).await {
                    Ok(Some(item)) => item,
                    Ok(None) => return false,
                    Err(_) => break,
                }
            }
        };
        bytes += weight(&item);
        batch.push(item);
    }
    true
}

/// Commits `batch`, retrying with backoff what [`StoreError::is_retryable`]
/// says may pass (forever in the daemon, `max_attempts` in `ingest`).
/// Meanwhile the reader waits on the full channel.
async fn commit_with_retry(
    store: &StoreHandle,
    batch: Vec<Item>,
    state: &mut WriterState,
    settings: &WriterSettings,
    progress: &mut dyn Progress,
) -> Result<WriteTotals, StoreError> {
    let batch = Arc::new(batch);
    let lines = batch.len();
    let mut backoff = Backoff::new(settings.backoff_min, settings.backoff_max);
    let started = Instant::now();
    let on_retry = |err: &StoreError, attempt: u32, delay: Duration| {
        tracing::warn!(
            error = %err,
            lines,
            attempt,
            retry_in = ?delay,
            "cannot commit a batch; keeping it and retrying (reading is paused)"
        );
        progress.alive(false);
    };
    // Each attempt takes the state from the slot and puts back what it
    // leaves (see `commit_once`); the slot outlives the attempts' futures.
    let slot = Arc::new(std::sync::Mutex::new(std::mem::take(state)));
    let attempts = std::sync::atomic::AtomicU32::new(0);
    let result = retry_logged(&mut backoff, settings.max_attempts, on_retry, || {
        attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        commit_once(store, &batch, &slot)
    })
    .await;
    *state = std::mem::take(&mut *lock_state(&slot));
    let written = result?;
    let attempts = attempts.into_inner();
    if attempts > 1 {
        tracing::info!(
            after = ?started.elapsed(),
            attempts,
            "batch committed after the database recovered"
        );
    }
    Ok(written)
}

/// One attempt at committing `batch`. A rolled-back attempt leaves no
/// trace in `state`: the caches may name rows that were never committed,
/// so they are dropped, and the contexts are restored from a copy.
async fn commit_once(
    store: &StoreHandle,
    batch: &Arc<Vec<Item>>,
    slot: &Arc<std::sync::Mutex<WriterState>>,
) -> Result<WriteTotals, StoreError> {
    let attempt_batch = Arc::clone(batch);
    let (mut attempt_state, contexts_before) = {
        let mut state = lock_state(slot);
        let contexts = state.contexts.clone();
        (std::mem::take(&mut *state), contexts)
    };
    let generation = store.generation();
    if attempt_state.store_generation != generation {
        // A rebuilt pool may point at a new file: look ids up again.
        attempt_state.source_ids.clear();
        attempt_state.messages.clear();
        attempt_state.contexts.clear();
        attempt_state.store_generation = generation;
    }
    let outcome = store
        .current()
        .transaction("commit batch", move |tx| {
            super::failpoint::hit("before_insert");
            let written = write_batch(tx, &attempt_batch, &mut attempt_state)?;
            super::failpoint::hit("after_insert_before_commit");
            Ok((written, attempt_state))
        })
        .await
        .map_err(TxError::into_primary);
    let mut state = lock_state(slot);
    match outcome {
        Ok((written, next_state)) => {
            *state = next_state;
            super::failpoint::hit("after_commit");
            Ok(written)
        }
        Err(err) => {
            *state = WriterState {
                contexts: contexts_before,
                ..WriterState::default()
            };
            Err(err)
        }
    }
}

fn lock_state(slot: &std::sync::Mutex<WriterState>) -> std::sync::MutexGuard<'_, WriterState> {
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Lines parsed ahead per message between the parsing thread and the
/// writer (a slice of the batch; not a line chunk).
const PARSE_AHEAD: usize = 256;

/// Stores one batch inside `tx`: sources, lines, gaps, and the read
/// position after the last line of each source.
///
/// Uses both cores: a second thread parses the lines while this one applies
/// them, and then compresses the chunks of lines while this one writes the
/// model's rows.
fn write_batch(
    tx: &Transaction<'_>,
    batch: &[Item],
    state: &mut WriterState,
) -> Result<WriteTotals, StoreError> {
    let mut writing = BatchWriter {
        tx,
        state,
        model: BatchModel::begin(tx)?,
        chunks: ChunkedLines::default(),
        counts: HashMap::default(),
        stored_to: HashMap::default(),
        positions: HashMap::default(),
        implausible: ImplausibleTimes::new(),
        totals: WriteTotals {
            batches: 1,
            ..WriteTotals::default()
        },
    };
    std::thread::scope(|scope| -> Result<(), StoreError> {
        let (sender, receiver) = std::sync::mpsc::sync_channel::<Vec<Option<Entry<'_>>>>(4);
        scope.spawn(move || {
            for slice in batch.chunks(PARSE_AHEAD) {
                let entries = slice
                    .iter()
                    .map(|item| match item {
                        Item::Line(line) => Some(parse_line(&line.bytes)),
                        Item::Gap(_) | Item::Audit(_) => None,
                    })
                    .collect();
                if sender.send(entries).is_err() {
                    return;
                }
            }
        });
        let mut entries = receiver.into_iter().flatten();
        for item in batch {
            match (item, entries.next()) {
                (Item::Line(line), Some(Some(entry))) => writing.line(line, entry)?,
                (Item::Gap(gap), Some(None)) => writing.gap(gap)?,
                (Item::Audit(audit), Some(None)) => writing.audit(audit)?,
                _ => {
                    return Err(StoreError::other(
                        Context::op("parse lines"),
                        "the parsing thread stopped early",
                    ));
                }
            }
        }
        Ok(())
    })?;
    writing.finish()
}

/// One batch being written.
struct BatchWriter<'t, 'b> {
    tx: &'t Transaction<'t>,
    state: &'t mut WriterState,
    model: BatchModel<'b>,
    chunks: ChunkedLines,
    /// Lines per (minute, kind).
    counts: HashMap<(i64, &'static str), u64>,
    /// Per source, the offset before which every line is stored: lines
    /// before it (a replay) are skipped, so none is stored twice.
    stored_to: HashMap<i64, u64>,
    /// Where each source stands after this batch: its end offset and the
    /// bytes before it (borrowed, so a line costs no copy of them).
    positions: HashMap<i64, (u64, &'b [u8])>,
    /// Lines dated outside [`PlausibleTimes`], reported once per batch.
    implausible: ImplausibleTimes<'b>,
    totals: WriteTotals,
}

/// The earliest time a line of Exim's can carry: its first release. An
/// earlier one (1970 above all) comes from a reset clock or garbage.
const EXIM_EPOCH_MS: i64 = 788_918_400_000; // 1995-01-01T00:00:00Z

/// Lines of a batch dated before Exim existed or beyond the wall clock's
/// tolerance: stored like any other line, and reported, because they are
/// garbage or a clock jump that an operator should know of.
#[derive(Debug, Default)]
struct ImplausibleTimes<'b> {
    count: u64,
    /// The first such line: its path, offset and time.
    first: Option<(&'b str, u64, i64)>,
    /// The latest plausible time (the wall clock plus tolerance).
    latest_ms: i64,
}

impl<'b> ImplausibleTimes<'b> {
    fn new() -> Self {
        ImplausibleTimes {
            latest_ms: crate::store::repo::now_ms()
                .saturating_add(crate::store::repo::FUTURE_TOLERANCE_MS),
            ..ImplausibleTimes::default()
        }
    }

    fn check(&mut self, line: &'b LineItem, logged_ms: i64) {
        if (EXIM_EPOCH_MS..=self.latest_ms).contains(&logged_ms) {
            return;
        }
        self.count += 1;
        self.first
            .get_or_insert((line.source.path.as_str(), line.start, logged_ms));
    }

    /// The audit record's details, if any line was implausible.
    fn report(&self) -> Option<String> {
        let (path, offset, logged_ms) = self.first?;
        tracing::warn!(
            lines = self.count,
            path,
            offset,
            logged_ms,
            "stored {} line(s) dated before 1995 or more than a day ahead of the clock \
             (first in {path} at byte {offset}); they do not move the retention clock",
            self.count
        );
        Some(
            serde_json::json!({
                "lines": self.count, "path": path, "offset": offset, "logged_ms": logged_ms,
            })
            .to_string(),
        )
    }
}

impl<'b> BatchWriter<'_, 'b> {
    fn line(&mut self, line: &'b LineItem, entry: Entry<'b>) -> Result<(), StoreError> {
        let tx = self.tx;
        let source_id = source_id(tx, &line.source, self.state)?;
        let stored_to = match self.stored_to.get(&source_id) {
            Some(offset) => *offset,
            None => load_checkpoint(tx, source_id)?.map_or(0, |c| c.byte_offset),
        };
        if line.start < stored_to {
            // Before the stored read position: already stored.
            self.stored_to.insert(source_id, stored_to);
            self.totals.replayed += 1;
            return Ok(());
        }
        let at = entry.prefix.map(|prefix| prefix.timestamp.local_ms());
        if let Some(at) = at {
            self.implausible.check(line, at);
        }
        let message_row = self
            .model
            .message_row(tx, &mut self.state.messages, &entry)?;
        let context = self
            .state
            .contexts
            .entry(line.source.fingerprint)
            .or_default();
        if !matches!(entry.event, Event::Continuation { .. }) {
            context.logged_ms = at;
            context.message_row = message_row;
        }
        // What the line means for its message, in this same transaction as
        // the line itself.
        self.model
            .apply(tx, &entry, message_row, context.logged_ms)?;
        *self
            .counts
            .entry((minute_of(context.logged_ms), entry.kind().name()))
            .or_default() += 1;
        self.chunks.push(
            source_id,
            &LineRecord {
                start: line.start,
                end: line.end,
                length: line.length,
                bytes: &line.bytes,
                logged_ms: context.logged_ms,
                message: context.message_row,
            },
        );
        self.stored_to.insert(source_id, line.end);
        self.positions
            .insert(source_id, (line.end, line.tail_marker.as_slice()));
        self.totals.inserted += 1;
        Ok(())
    }

    fn gap(&mut self, gap: &GapItem) -> Result<(), StoreError> {
        let source_id = match &gap.source {
            Some(source) => Some(source_id(self.tx, source, self.state)?),
            None => None,
        };
        let recorded = record_gap(
            self.tx,
            &Gap {
                source_id,
                path: &gap.path,
                start_offset: gap.start,
                end_offset: gap.end,
                reason: &gap.reason,
            },
        )?;
        if !recorded {
            return Ok(());
        }
        record_audit(
            self.tx,
            &AuditRecord {
                actor: "exim-pilot",
                action: "gap",
                message_id: None,
                details: &serde_json::json!({
                    "path": gap.path, "start": gap.start, "end": gap.end, "reason": gap.reason,
                })
                .to_string(),
                origin: "daemon",
            },
        )?;
        tracing::warn!(
            path = %gap.path,
            start = gap.start,
            end = ?gap.end,
            reason = %gap.reason,
            "recorded a gap: these bytes of the log could not be read"
        );
        self.totals.gaps += 1;
        Ok(())
    }

    fn audit(&mut self, audit: &AuditItem) -> Result<(), StoreError> {
        record_audit(
            self.tx,
            &AuditRecord {
                actor: "exim-pilot",
                action: &audit.action,
                message_id: None,
                details: &audit.details,
                origin: audit.origin,
            },
        )
        .map(drop)
    }

    /// Writes the model's rows while another thread compresses the chunks,
    /// then the chunks (they link to the message rows), the line counts and
    /// the read positions.
    fn finish(mut self) -> Result<WriteTotals, StoreError> {
        let tx = self.tx;
        if let Some(details) = self.implausible.report() {
            record_audit(
                tx,
                &AuditRecord {
                    actor: "exim-pilot",
                    action: "implausible_time",
                    message_id: None,
                    details: &details,
                    origin: "daemon",
                },
            )?;
        }
        let chunks = self.chunks.take();
        let model = self.model;
        let sealed = std::thread::scope(|scope| {
            let sealing = scope.spawn(move || seal_all(chunks));
            model.flush(tx)?;
            sealing.join().map_err(|_| {
                StoreError::other(
                    Context::op("compress lines"),
                    "the compressing thread panicked",
                )
            })?
        })?;
        store_sealed(tx, &sealed)?;
        let counts: Vec<((i64, &str), u64)> = self.counts.into_iter().collect();
        add_line_counts(tx, &counts)?;
        for (source_id, (byte_offset, tail_marker)) in self.positions {
            let checkpoint = Checkpoint {
                source_id,
                byte_offset,
                tail_marker: tail_marker.to_vec(),
            };
            save_checkpoint(tx, &checkpoint)?;
        }
        Ok(self.totals)
    }
}

fn source_id(
    tx: &Transaction<'_>,
    source: &SourceInfo,
    state: &mut WriterState,
) -> Result<i64, StoreError> {
    if let Some(id) = state.source_ids.get(&source.fingerprint) {
        return Ok(*id);
    }
    let id = upsert_source(
        tx,
        &SourceIdentity {
            fingerprint: &source.fingerprint.0,
            path: &source.path,
            device: source.device,
            inode: source.inode,
        },
    )?;
    state.source_ids.insert(source.fingerprint, id);
    Ok(id)
}
