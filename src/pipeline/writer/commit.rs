//! Committing a batch: one attempt in one transaction, retried with backoff
//! through the store's one retry loop. A batch prepared ahead is written
//! as prepared in its first attempt; if that fails for any reason (the
//! database changed since, an error), every later attempt prepares it
//! again inside its own transaction from the committed state, as a batch
//! that was not prepared ahead always is. A failed attempt leaves no trace
//! in the writer's state.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::batch::{check_assumed, store_sources, write_batch};
use super::prepare::{PrepareState, PreparedBatch, prepare};
use super::{Progress, WriteState, WriteTotals, WriterSettings};
use crate::backoff::Backoff;
use crate::pipeline::item::Item;
use crate::store::{StoreError, StoreHandle, TxError, retry_logged};

/// A batch ready to commit.
#[derive(Debug)]
pub(super) enum Ready {
    /// Prepared before its transaction, while the batch before committed.
    Ahead(PreparedBatch),
    /// To be prepared inside its transaction.
    InTransaction(Arc<Vec<Item>>),
}

impl Ready {
    /// The batch itself, its preparation dropped.
    pub(super) fn into_batch(self) -> Arc<Vec<Item>> {
        match self {
            Ready::Ahead(prepared) => prepared.into_owner(),
            Ready::InTransaction(batch) => batch,
        }
    }
}

/// Commits a batch prepared ahead. Returns what it wrote and, if it had to
/// be prepared again (so whatever was prepared after it is void), the
/// state preparing continues from.
pub(super) async fn commit_ahead(
    store: &StoreHandle,
    prepared: PreparedBatch,
    state: &mut WriteState,
    settings: &WriterSettings,
    progress: &mut dyn Progress,
) -> Result<(WriteTotals, Option<PrepareState>), StoreError> {
    let batch = Arc::clone(prepared.borrow_owner());
    let contexts_before = prepared.borrow_dependent().contexts_before.clone();
    let generation = store.generation();
    let mut attempt_state = std::mem::take(state);
    if attempt_state.store_generation != generation {
        attempt_state = WriteState::fresh(generation);
    }
    let outcome = store
        .current()
        .transaction("commit batch", move |tx| {
            crate::pipeline::failpoint::hit("before_insert");
            check_assumed(tx, &prepared.borrow_dependent().assumed, generation)?;
            let written = write_batch(
                tx,
                prepared.borrow_owner(),
                prepared.borrow_dependent(),
                &mut attempt_state,
                0,
            )?;
            crate::pipeline::failpoint::hit("after_insert_before_commit");
            Ok((written, attempt_state))
        })
        .await
        .map_err(TxError::into_primary);
    match outcome {
        Ok((written, next_state)) => {
            *state = next_state;
            crate::pipeline::failpoint::hit("after_commit");
            Ok((written, None))
        }
        Err(err) => {
            tracing::debug!(
                error = %err,
                "a batch prepared ahead could not be written as prepared ({err}); \
                 preparing it again in its transaction"
            );
            *state = WriteState::fresh(generation);
            let mut preparing = PrepareState::after(contexts_before, generation);
            let written =
                commit_in_transaction(store, batch, &mut preparing, state, settings, progress)
                    .await?;
            Ok((written, Some(preparing)))
        }
    }
}

/// Commits `batch`, prepared inside each attempt's transaction, retrying
/// with backoff what [`StoreError::is_retryable`] says may pass (forever in
/// the daemon, `max_attempts` in `ingest`). Meanwhile the reader waits on
/// the full channel.
pub(super) async fn commit_in_transaction(
    store: &StoreHandle,
    batch: Arc<Vec<Item>>,
    preparing: &mut PrepareState,
    state: &mut WriteState,
    settings: &WriterSettings,
    progress: &mut dyn Progress,
) -> Result<WriteTotals, StoreError> {
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
    // Each attempt takes the states from the slot and puts back what it
    // leaves (see `commit_once`); the slot outlives the attempts' futures.
    let slot = Arc::new(std::sync::Mutex::new((
        std::mem::take(preparing),
        std::mem::take(state),
    )));
    let mut attempts = 0u32;
    let result = retry_logged(&mut backoff, settings.max_attempts, on_retry, || {
        attempts += 1;
        commit_once(store, &batch, &slot, attempts - 1)
    })
    .await;
    (*preparing, *state) = std::mem::take(&mut *lock_states(&slot));
    let written = result?;
    // Committed, and nothing prepared after it: the database shows all
    // the batch left.
    preparing.settle();
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

type States = (PrepareState, WriteState);

/// One attempt at preparing and committing `batch` in one transaction,
/// after `retries` failed ones (which it counts for the metrics). A
/// rolled-back attempt leaves no trace in the states: the caches may name
/// rows that were never committed, so they are dropped, and the contexts
/// are restored from a copy.
async fn commit_once(
    store: &StoreHandle,
    batch: &Arc<Vec<Item>>,
    slot: &Arc<std::sync::Mutex<States>>,
    retries: u32,
) -> Result<WriteTotals, StoreError> {
    let attempt_batch = Arc::clone(batch);
    let generation = store.generation();
    let (mut preparing, mut writing) = std::mem::take(&mut *lock_states(slot));
    if preparing.store_generation != generation {
        // A rebuilt pool may point at a new file: look ids up again.
        preparing = PrepareState::after(Default::default(), generation);
    }
    if writing.store_generation != generation {
        writing = WriteState::fresh(generation);
    }
    let contexts_before = preparing.contexts.clone();
    let outcome = store
        .current()
        .transaction("commit batch", move |tx| {
            crate::pipeline::failpoint::hit("before_insert");
            store_sources(tx, &attempt_batch, &mut preparing.source_ids)?;
            // Every batch before this one is committed: the transaction
            // shows what they left.
            preparing.settle();
            let prepared = prepare(tx, &attempt_batch, &mut preparing)?;
            let written = write_batch(tx, &attempt_batch, &prepared, &mut writing, retries)?;
            drop(prepared);
            crate::pipeline::failpoint::hit("after_insert_before_commit");
            Ok((written, (preparing, writing)))
        })
        .await
        .map_err(TxError::into_primary);
    let mut states = lock_states(slot);
    match outcome {
        Ok((written, next_states)) => {
            *states = next_states;
            crate::pipeline::failpoint::hit("after_commit");
            Ok(written)
        }
        Err(err) => {
            *states = (
                PrepareState::after(contexts_before, generation),
                WriteState::fresh(generation),
            );
            Err(err)
        }
    }
}

fn lock_states(slot: &std::sync::Mutex<States>) -> std::sync::MutexGuard<'_, States> {
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
