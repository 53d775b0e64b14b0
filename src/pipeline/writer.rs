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
use crate::store::repo::{NewLogEntry, insert_log_entry, save_checkpoint};
use crate::store::{Backoff, Store, StoreError, TxError};

/// The kind stored for lines until the parser classifies them.
pub const UNPARSED_KIND: &str = "unparsed";

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
pub fn write_batch(tx: &Transaction<'_>, batch: &Batch) -> Result<WriteTotals, StoreError> {
    let mut totals = WriteTotals {
        batches: 1,
        ..WriteTotals::default()
    };
    for line in &batch.lines {
        let inserted = insert_log_entry(
            tx,
            &NewLogEntry {
                source_id: batch.checkpoint.source_id,
                byte_offset: line.start,
                line_length: line.length,
                raw: &line.bytes,
                kind: UNPARSED_KIND,
                logged_ms: None,
                exim_id: None,
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
    while let Some(batch) = receiver.recv().await {
        let batch = Arc::new(batch);
        let written = crate::store::retry(&mut backoff, max_attempts, || {
            let batch = Arc::clone(&batch);
            async move {
                store
                    .transaction("commit batch", move |tx| write_batch(tx, &batch))
                    .await
                    .map_err(TxError::into_primary)
            }
        })
        .await?;
        totals.batches += written.batches;
        totals.inserted += written.inserted;
        totals.replayed += written.replayed;
    }
    Ok(totals)
}
