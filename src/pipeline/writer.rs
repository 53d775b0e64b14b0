//! The single writer: the only code that writes log data to the database.
//!
//! Each batch is one transaction holding its lines and the checkpoint that
//! covers them, so after any crash the stored rows and the stored read
//! position agree. Lines are keyed by (source, offset): a batch replayed
//! after a crash stores nothing twice.

use std::sync::Arc;

use deadpool_sqlite::rusqlite::Transaction;
use tokio::sync::mpsc;

use super::batch::Batch;
use crate::parse::{Event, parse_line};
use crate::store::repo::{NewLogEntry, insert_log_entry, save_checkpoint};
use crate::store::{Backoff, Store, StoreError, TxError};

/// What a continuation line inherits from the entry before it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EntryContext {
    pub exim_id: Option<String>,
    pub logged_ms: Option<i64>,
}

/// What the writer stored.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteTotals {
    pub batches: u64,
    /// Lines newly stored.
    pub inserted: u64,
    /// Lines that were already stored (a replay), left unchanged.
    pub replayed: u64,
}

/// Stores one batch and advances its source's checkpoint, inside `tx`.
/// `context` is the entry before the batch (for continuation lines); it is
/// updated to the batch's last entry.
pub fn write_batch(
    tx: &Transaction<'_>,
    batch: &Batch,
    context: &mut EntryContext,
) -> Result<WriteTotals, StoreError> {
    let mut totals = WriteTotals {
        batches: 1,
        ..WriteTotals::default()
    };
    for line in &batch.lines {
        let entry = parse_line(&line.bytes);
        if !matches!(entry.event, Event::Continuation { .. }) {
            context.exim_id = entry.message_id().map(|id| id.as_str().to_owned());
            context.logged_ms = entry.prefix.map(|prefix| prefix.timestamp.local_ms());
        }
        let inserted = insert_log_entry(
            tx,
            &NewLogEntry {
                source_id: batch.checkpoint.source_id,
                byte_offset: line.start,
                line_length: line.length,
                raw: &line.bytes,
                kind: entry.kind().name(),
                logged_ms: context.logged_ms,
                exim_id: context.exim_id.as_deref(),
                message_id: None,
            },
        )?;
        if inserted {
            totals.inserted += 1;
        } else {
            totals.replayed += 1;
        }
    }
    save_checkpoint(tx, &batch.checkpoint)?;
    Ok(totals)
}

/// Commits batches from `receiver` until the channel closes. A retryable
/// failure (lock, full disk, read-only, lost file) keeps the batch and tries
/// again with backoff, up to `max_attempts` times per batch; the reader
/// meanwhile waits on the full channel.
pub async fn run(
    store: &Store,
    mut receiver: mpsc::Receiver<Batch>,
    mut backoff: Backoff,
    max_attempts: u32,
) -> Result<WriteTotals, StoreError> {
    let mut totals = WriteTotals::default();
    let mut context = EntryContext::default();
    while let Some(batch) = receiver.recv().await {
        let batch = Arc::new(batch);
        let (written, next_context) = crate::store::retry(&mut backoff, max_attempts, || {
            let batch = Arc::clone(&batch);
            let mut context = context.clone();
            async move {
                store
                    .transaction("commit batch", move |tx| {
                        let written = write_batch(tx, &batch, &mut context)?;
                        Ok((written, context))
                    })
                    .await
                    .map_err(TxError::into_primary)
            }
        })
        .await?;
        context = next_context;
        totals.batches += written.batches;
        totals.inserted += written.inserted;
        totals.replayed += written.replayed;
    }
    Ok(totals)
}
