//! Committing a batch: one attempt in one transaction, retried with backoff
//! through the store's one retry loop; a failed attempt leaves no trace in
//! the writer's state.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::batch::write_batch;
use super::{Progress, WriteTotals, WriterSettings, WriterState};
use crate::backoff::Backoff;
use crate::pipeline::item::Item;
use crate::store::{StoreError, StoreHandle, TxError, retry_logged};

/// Commits `batch`, retrying with backoff what [`StoreError::is_retryable`]
/// says may pass (forever in the daemon, `max_attempts` in `ingest`).
/// Meanwhile the reader waits on the full channel.
pub(super) async fn commit_with_retry(
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
            "cannot commit a batch of {lines} lines (attempt {attempt}): {err}; keeping it and \
             retrying in {delay:?} (reading is paused)"
        );
        progress.alive(false);
    };
    // Each attempt takes the state from the slot and puts back what it
    // leaves (see `commit_once`); the slot outlives the attempts' futures.
    let slot = Arc::new(std::sync::Mutex::new(std::mem::take(state)));
    let mut attempts = 0u32;
    let result = retry_logged(&mut backoff, settings.max_attempts, on_retry, || {
        attempts += 1;
        commit_once(store, &batch, &slot, attempts - 1)
    })
    .await;
    *state = std::mem::take(&mut *lock_state(&slot));
    let written = result?;
    if attempts > 1 {
        tracing::info!(
            after = ?started.elapsed(),
            attempts,
            "batch committed after the database recovered ({attempts} attempts, {:?})",
            started.elapsed()
        );
    }
    Ok(written)
}

/// One attempt at committing `batch`, after `retries` failed ones (which
/// it counts for the metrics). A rolled-back attempt leaves no
/// trace in `state`: the caches may name rows that were never committed,
/// so they are dropped, and the contexts are restored from a copy.
async fn commit_once(
    store: &StoreHandle,
    batch: &Arc<Vec<Item>>,
    slot: &Arc<std::sync::Mutex<WriterState>>,
    retries: u32,
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
        attempt_state.texts.clear();
        attempt_state.contexts.clear();
        attempt_state.counters_seeded = false;
        attempt_state.awaiting = None;
        attempt_state.store_generation = generation;
    }
    let outcome = store
        .current()
        .transaction("commit batch", move |tx| {
            crate::pipeline::failpoint::hit("before_insert");
            let written = write_batch(tx, &attempt_batch, &mut attempt_state, retries)?;
            crate::pipeline::failpoint::hit("after_insert_before_commit");
            Ok((written, attempt_state))
        })
        .await
        .map_err(TxError::into_primary);
    let mut state = lock_state(slot);
    match outcome {
        Ok((written, next_state)) => {
            *state = next_state;
            crate::pipeline::failpoint::hit("after_commit");
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
