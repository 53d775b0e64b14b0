//! `in_transaction`: the one way this program groups writes.
//!
//! Begin (IMMEDIATE, so a writer takes the write lock up front instead of
//! failing to upgrade a read lock halfway), run the body, commit on `Ok`,
//! roll back on `Err` and on panic. A failed rollback is reported together
//! with the error that caused it. A panic is re-raised after the rollback.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use deadpool_sqlite::rusqlite::{Connection, Transaction, TransactionBehavior};

use super::error::{Context, ErrorClass, ResultExt, StoreError};

/// Why a transaction did not commit.
#[derive(Debug, thiserror::Error)]
pub enum TxError<E> {
    /// BEGIN or COMMIT failed; nothing was written.
    #[error(transparent)]
    Store(StoreError),
    /// The body returned an error; the transaction was rolled back.
    #[error(transparent)]
    Body(E),
    /// The body returned an error and the rollback failed too. SQLite rolls
    /// back an unfinished transaction when the connection closes, so the
    /// connection must not be reused.
    #[error("{error} (and the rollback failed: {rollback})")]
    RollbackFailed {
        /// The body's error.
        error: E,
        /// Why the rollback failed.
        rollback: StoreError,
    },
}

impl TxError<StoreError> {
    /// The class of the error that stopped the transaction.
    pub fn class(&self) -> ErrorClass {
        self.primary().class()
    }

    /// Whether trying the whole transaction again can help.
    pub fn is_retryable(&self) -> bool {
        self.primary().is_retryable()
    }

    /// The error that stopped the transaction. A failed rollback is logged
    /// here: SQLite discards the unfinished transaction when the connection
    /// closes, so the primary error is the one the caller acts on.
    pub fn into_primary(self) -> StoreError {
        match self {
            TxError::Store(err) | TxError::Body(err) => err,
            TxError::RollbackFailed { error, rollback } => {
                tracing::error!(%error, %rollback, "rollback after a failed transaction ({error}) failed: {rollback}");
                error
            }
        }
    }

    /// The error that stopped the transaction (not the rollback's).
    pub fn primary(&self) -> &StoreError {
        match self {
            TxError::Store(err) | TxError::Body(err) => err,
            TxError::RollbackFailed { error, .. } => error,
        }
    }
}

/// Runs `body` in one IMMEDIATE transaction on `conn`.
pub fn in_transaction<T, E>(
    conn: &mut Connection,
    body: impl FnOnce(&Transaction<'_>) -> Result<T, E>,
) -> Result<T, TxError<E>> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .ctx(|| Context::op("begin transaction"))
        .map_err(TxError::Store)?;
    match catch_unwind(AssertUnwindSafe(|| body(&tx))) {
        Ok(Ok(value)) => {
            tx.commit()
                .ctx(|| Context::op("commit transaction"))
                .map_err(TxError::Store)?;
            Ok(value)
        }
        Ok(Err(error)) => match tx.rollback().ctx(|| Context::op("roll back transaction")) {
            Ok(()) => Err(TxError::Body(error)),
            Err(rollback) => Err(TxError::RollbackFailed { error, rollback }),
        },
        Err(panic) => {
            if let Err(rollback) = tx.rollback() {
                tracing::error!(%rollback, "rollback after a panic in a transaction failed: {rollback}");
            }
            resume_unwind(panic)
        }
    }
}
