//! `in_transaction` and pooled transactions: commit on Ok, roll back on an
//! error or a panic, and report a failed rollback with the original error.

use deadpool_sqlite::rusqlite::Connection;
use exim_pilot::store::{self, ConstraintKind, ErrorClass, StoreError, TxError, in_transaction};
use tempfile::TempDir;

use crate::util::append_audit;

use crate::store::{open, side_connection, test_audit_rows};

#[tokio::test]
async fn in_transaction_commits_on_ok() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir).await;
    store
        .transaction("write", |tx| {
            append_audit(tx, "test", "first", "")?;
            append_audit(tx, "test", "second", "")
        })
        .await
        .unwrap();
    let actions = test_audit_rows(&side_connection(&dir));
    assert_eq!(actions, 2);
}

#[tokio::test]
async fn in_transaction_rolls_back_on_error() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir).await;
    let err = store
        .transaction("write", |tx| -> Result<(), StoreError> {
            append_audit(tx, "test", "first", "")?;
            // Breaks the CHECK on messages.status: the whole body is undone.
            tx.execute(
                "INSERT INTO messages (exim_id, status) VALUES ('1abcde-000000-00', 'lost')",
                [],
            )
            .map_err(|e| StoreError::from_sqlite(store::Context::op("insert"), e))?;
            Ok(())
        })
        .await
        .unwrap_err();
    assert!(matches!(err, TxError::Body(_)), "{err}");
    assert_eq!(err.class(), ErrorClass::Constraint(ConstraintKind::Check));
    let actions = test_audit_rows(&side_connection(&dir));
    assert_eq!(actions, 0);
}

#[test]
fn in_transaction_rolls_back_on_panic_and_reraises_it() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("test.db");
    let mut conn = Connection::open(&path).unwrap();
    store::migrate(&mut conn).unwrap();
    let before: i64 = conn
        .query_row("SELECT count(*) FROM audit_log", [], |r| r.get(0))
        .unwrap();

    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = in_transaction(&mut conn, |tx| -> Result<(), StoreError> {
            append_audit(tx, "test", "partial", "")?;
            panic!("boom inside the transaction");
        });
    }));
    let panic = result.unwrap_err();
    assert_eq!(
        panic.downcast_ref::<&str>(),
        Some(&"boom inside the transaction")
    );
    assert!(conn.is_autocommit(), "no transaction is left open");
    let after: i64 = conn
        .query_row("SELECT count(*) FROM audit_log", [], |r| r.get(0))
        .unwrap();
    assert_eq!(after, before, "the partial row was rolled back");
    // The connection is still usable.
    in_transaction(&mut conn, |tx| append_audit(tx, "test", "after", "")).unwrap();
}

#[tokio::test]
async fn a_panic_in_a_pooled_transaction_reaches_the_caller_and_leaves_no_rows() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir).await;
    let task = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .transaction("write", |tx| -> Result<(), StoreError> {
                    append_audit(tx, "test", "partial", "")?;
                    panic!("boom");
                })
                .await
        })
    };
    assert!(task.await.unwrap_err().is_panic());
    let count = store
        .with_conn("count", |conn| Ok(test_audit_rows(conn)))
        .await
        .unwrap();
    assert_eq!(count, 0);
}

#[test]
fn a_failed_rollback_is_reported_with_the_original_error() {
    let dir = TempDir::new().unwrap();
    let mut conn = Connection::open(dir.path().join("test.db")).unwrap();
    store::migrate(&mut conn).unwrap();
    let err = in_transaction(&mut conn, |tx| -> Result<(), &str> {
        // Ending the transaction behind the helper's back makes its
        // rollback fail.
        tx.execute_batch("ROLLBACK").unwrap();
        Err("the body failed")
    })
    .unwrap_err();
    match &err {
        TxError::RollbackFailed { error, rollback } => {
            assert_eq!(*error, "the body failed");
            assert!(
                rollback.to_string().contains("no transaction is active"),
                "{rollback}"
            );
        }
        other => panic!("expected RollbackFailed, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("the body failed") && message.contains("rollback failed"),
        "{message}"
    );
}
