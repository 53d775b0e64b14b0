//! The store layer against real SQLite files: opening, pragmas, pool limits,
//! transactions, error classes, migrations and repository functions.

use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Barrier, mpsc};
use std::time::Duration;

use deadpool_sqlite::rusqlite::{Connection, params};
use exim_pilot::backoff::Backoff;
use exim_pilot::pipeline::source::ItemSink;
use exim_pilot::store::chunk::{ChunkBuilder, LineRecord, SealedChunk};
use exim_pilot::store::repo::{
    Checkpoint, SourceIdentity, all_lines, insert_chunk, load_checkpoint, save_checkpoint,
    upsert_source,
};
use exim_pilot::store::{
    self, ConstraintKind, ErrorClass, Store, StoreError, TxError, in_transaction,
};
use tempfile::TempDir;

use crate::util::{TABLES, append_audit, count_rows, database_config};

async fn open(dir: &TempDir) -> Store {
    store::connect(&database_config(dir.path()))
        .await
        .expect("connect")
}

fn pragma<T: deadpool_sqlite::rusqlite::types::FromSql>(conn: &Connection, name: &str) -> T {
    conn.query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))
        .unwrap()
}

/// A second, independent connection, as another process would have.
fn side_connection(dir: &TempDir) -> Connection {
    Connection::open(dir.path().join("test.db")).unwrap()
}

/// Audit rows the tests wrote (actor 'test').
fn test_audit_rows(conn: &Connection) -> i64 {
    conn.query_row(
        "SELECT count(*) FROM audit_log WHERE actor = 'test'",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

fn source(conn: &Connection) -> i64 {
    upsert_source(
        conn,
        &SourceIdentity {
            fingerprint: b"fingerprint-1",
            path: "/var/log/exim4/mainlog",
            device: Some(1),
            inode: Some(2),
        },
    )
    .unwrap()
}

/// A sealed chunk of one line at `offset` whose real length is `length`.
fn chunk(offset: u64, raw: &[u8], length: u64) -> SealedChunk {
    let mut chunk = ChunkBuilder::new(offset);
    chunk.push(&LineRecord {
        start: offset,
        end: offset + length + 1,
        length,
        bytes: raw,
        logged_ms: None,
        message: None,
    });
    chunk.seal().unwrap()
}

#[tokio::test]
async fn connect_creates_the_file_with_mode_0640_and_configures_every_connection() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir).await;
    let mode = std::fs::metadata(dir.path().join("test.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);

    let settings = store
        .with_conn("read pragmas", |conn| {
            Ok((
                pragma::<i64>(conn, "foreign_keys"),
                pragma::<i64>(conn, "busy_timeout"),
                pragma::<String>(conn, "journal_mode"),
                pragma::<i64>(conn, "synchronous"),
            ))
        })
        .await
        .unwrap();
    assert_eq!(
        settings,
        (1, 5000, "wal".to_owned(), 1),
        "synchronous=1 is NORMAL"
    );
}

#[tokio::test]
async fn connect_reports_a_missing_directory_by_name_and_creates_nothing() {
    let dir = TempDir::new().unwrap();
    let mut config = database_config(dir.path());
    config.path = dir.path().join("missing").join("x.db");
    let err = store::connect(&config).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Connection);
    let message = err.to_string();
    assert!(
        message.contains(&config.path.display().to_string()),
        "{message}"
    );
    assert!(message.contains("does not exist"), "{message}");
    assert!(!dir.path().join("missing").exists());
}

#[tokio::test]
async fn connect_to_a_file_that_is_not_a_database_says_so_with_sqlites_words() {
    let dir = TempDir::new().unwrap();
    std::fs::write(dir.path().join("test.db"), vec![b'x'; 8192]).unwrap();
    let err = store::connect(&database_config(dir.path()))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Corrupt);
    assert!(err.to_string().contains("file is not a database"), "{err}");
}

#[tokio::test]
async fn an_exhausted_pool_fails_after_pool_wait_timeout_instead_of_hanging() {
    let dir = TempDir::new().unwrap();
    let mut config = database_config(dir.path());
    config.max_open_conns = 1;
    config.pool_wait_timeout = Duration::from_millis(200);
    let store = store::connect(&config).await.unwrap();

    let (release, held) = mpsc::channel::<()>();
    let (taken_tx, taken) = tokio::sync::oneshot::channel();
    let holder = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .with_conn("hold", move |_| {
                    let _ = taken_tx.send(());
                    held.recv().ok();
                    Ok(())
                })
                .await
        })
    };
    taken.await.unwrap();
    let err = store.ping(Duration::from_secs(30)).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Timeout);
    assert!(err.to_string().contains("max_open_conns"), "{err}");
    release.send(()).unwrap();
    holder.await.unwrap().unwrap();
    store.ping(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_max_open_connections_and_max_idle_kept() {
    let dir = TempDir::new().unwrap();
    let mut config = database_config(dir.path());
    config.max_open_conns = 4;
    config.max_idle_conns = 1;
    let store = store::connect(&config).await.unwrap();

    // Four callers at once, each holding its connection until all four hold
    // one: the pool must open four, and no more.
    let barrier = Arc::new(Barrier::new(4));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let store = store.clone();
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            store
                .with_conn("hold", move |_| {
                    barrier.wait();
                    Ok(())
                })
                .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let stats = store.stats();
    assert_eq!(stats.max_open, 4);
    assert!(stats.created_total >= 4, "{stats:?}");
    assert_eq!(
        (stats.open, stats.idle),
        (1, 1),
        "extra idle connections are closed: {stats:?}"
    );
}

#[tokio::test]
async fn connections_older_than_max_lifetime_are_replaced_not_reused() {
    let dir = TempDir::new().unwrap();
    let mut config = database_config(dir.path());
    config.conn_max_lifetime = Duration::from_millis(300);
    let store = store::connect(&config).await.unwrap();
    store.ping(Duration::from_secs(5)).await.unwrap();
    let first = store.stats().created_total;
    store.ping(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        store.stats().created_total,
        first,
        "a young connection is reused"
    );

    tokio::time::sleep(Duration::from_millis(400)).await;
    store.ping(Duration::from_secs(5)).await.unwrap();
    let stats = store.stats();
    assert_eq!(
        stats.created_total,
        first + 1,
        "an old connection is replaced"
    );
    assert_eq!(stats.open, 1);
}

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

/// Runs one statement on a migrated database and returns its error.
fn failing(conn: &Connection, sql: &str) -> StoreError {
    let err = conn.execute(sql, []).unwrap_err();
    StoreError::from_sqlite(store::Context::op("test insert").table("t").key("k-1"), err)
}

#[test]
fn constraint_errors_are_classified_by_kind_and_carry_context() {
    let dir = TempDir::new().unwrap();
    let mut conn = Connection::open(dir.path().join("test.db")).unwrap();
    conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
    store::migrate(&mut conn).unwrap();
    conn.execute(
        "INSERT INTO messages (id, exim_id) VALUES (1, '1abcde-000000-00')",
        [],
    )
    .unwrap();

    let cases = [
        (
            "INSERT INTO messages (exim_id) VALUES ('1abcde-000000-00')",
            ConstraintKind::Unique,
        ),
        (
            "INSERT INTO messages (id, exim_id) VALUES (1, 'other')",
            ConstraintKind::PrimaryKey,
        ),
        (
            "INSERT INTO recipients (message_id, address) VALUES (99, 'a@b')",
            ConstraintKind::ForeignKey,
        ),
        (
            "INSERT INTO messages (exim_id, status) VALUES ('x', 'lost')",
            ConstraintKind::Check,
        ),
        (
            "INSERT INTO messages (exim_id) VALUES (NULL)",
            ConstraintKind::NotNull,
        ),
    ];
    for (sql, kind) in cases {
        let err = failing(&conn, sql);
        assert_eq!(err.class(), ErrorClass::Constraint(kind), "{sql}: {err}");
        assert!(!err.is_retryable(), "constraint errors are never retried");
        let message = err.to_string();
        assert!(message.starts_with("test insert on t (k-1): "), "{message}");
        assert!(message.contains(&kind.to_string()), "{message}");
    }
}

#[test]
fn busy_read_only_and_full_are_classified_and_retryable() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("test.db");
    let mut conn = Connection::open(&path).unwrap();
    store::migrate(&mut conn).unwrap();

    let locker = Connection::open(&path).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    conn.busy_timeout(Duration::from_millis(50)).unwrap();
    let err = failing(
        &conn,
        "INSERT INTO audit_log (at_ms, actor, action) VALUES (1, 'a', 'b')",
    );
    assert_eq!(err.class(), ErrorClass::Busy, "{err}");
    assert!(err.is_retryable());
    locker.execute_batch("ROLLBACK").unwrap();
    drop(locker);

    conn.execute_batch("PRAGMA query_only = ON").unwrap();
    let err = failing(
        &conn,
        "INSERT INTO audit_log (at_ms, actor, action) VALUES (1, 'a', 'b')",
    );
    assert_eq!(err.class(), ErrorClass::ReadOnly, "{err}");
    assert!(err.is_retryable());
    conn.execute_batch("PRAGMA query_only = OFF").unwrap();

    let pages: i64 = pragma(&conn, "page_count");
    conn.execute_batch(&format!("PRAGMA max_page_count = {}", pages + 2))
        .unwrap();
    let blob = vec![0u8; 64 * 1024];
    let err = conn
        .execute(
            "INSERT INTO audit_log (at_ms, actor, action, detail) VALUES (1, 'a', 'b', ?1)",
            params![String::from_utf8(blob).unwrap()],
        )
        .map_err(|e| StoreError::from_sqlite(store::Context::op("fill"), e))
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Full, "{err}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn retry_waits_out_a_lock_held_by_another_connection() {
    let dir = TempDir::new().unwrap();
    let mut config = database_config(dir.path());
    config.busy_timeout = Duration::from_millis(20);
    let store = store::connect(&config).await.unwrap();

    let (locked_tx, locked) = mpsc::channel();
    let path = config.path.clone();
    let locker = std::thread::spawn(move || {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
        locked_tx.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        conn.execute_batch("COMMIT").unwrap();
    });
    locked.recv().unwrap();

    let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(100));
    let mut attempts = 0;
    store::retry(&mut backoff, 100, || {
        attempts += 1;
        let store = store.clone();
        async move {
            store
                .transaction("write", |tx| append_audit(tx, "test", "after lock", ""))
                .await
                .map_err(TxError::into_primary)
        }
    })
    .await
    .unwrap();
    locker.join().unwrap();
    assert!(attempts > 1, "the first attempt met the lock");
}

fn schema(conn: &Connection) -> Vec<String> {
    crate::util::query_all(
        conn,
        "SELECT type || ' ' || name || ': ' || coalesce(sql, '') FROM sqlite_schema ORDER BY name",
        |row| row.get(0),
    )
}

#[tokio::test]
async fn migrations_create_every_table_once_and_reopening_changes_nothing() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir).await;
    store.close();
    drop(store);

    let mut conn = side_connection(&dir);
    assert_eq!(
        store::current_version(&conn).unwrap(),
        store::latest_version()
    );
    for table in TABLES {
        count_rows(&conn, table).unwrap();
    }
    let schema_before = schema(&conn);
    let audit_before = count_rows(&conn, "audit_log").unwrap();
    let schema_version: i64 = pragma(&conn, "schema_version");

    assert!(store::migrate(&mut conn).unwrap().is_empty());
    drop(conn);
    let store = open(&dir).await;
    store.close();
    drop(store);

    let conn = side_connection(&dir);
    assert_eq!(schema(&conn), schema_before);
    assert_eq!(count_rows(&conn, "audit_log").unwrap(), audit_before);
    assert_eq!(pragma::<i64>(&conn, "schema_version"), schema_version);
}

#[test]
fn a_database_from_a_newer_release_is_refused() {
    let dir = TempDir::new().unwrap();
    let mut conn = Connection::open(dir.path().join("test.db")).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA user_version = {}",
        store::latest_version() + 1
    ))
    .unwrap();
    let err = store::migrate(&mut conn).unwrap_err();
    assert!(err.to_string().contains("newer"), "{err}");
}

#[test]
fn repository_functions_work_inside_and_outside_a_transaction() {
    let dir = TempDir::new().unwrap();
    let mut conn = Connection::open(dir.path().join("test.db")).unwrap();
    conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
    store::migrate(&mut conn).unwrap();

    // Outside a transaction.
    let source_id = source(&conn);
    assert_eq!(
        source(&conn),
        source_id,
        "the same fingerprint is the same source"
    );
    insert_chunk(&conn, source_id, &chunk(0, b"line one", 8)).unwrap();
    let err = insert_chunk(&conn, source_id, &chunk(0, b"line one", 8)).unwrap_err();
    assert_eq!(
        err.class(),
        ErrorClass::Constraint(ConstraintKind::Unique),
        "a chunk is stored once"
    );

    // Inside one.
    in_transaction(&mut conn, |tx| {
        insert_chunk(tx, source_id, &chunk(9, b"line two \xff\0", 11))?;
        save_checkpoint(
            tx,
            &Checkpoint {
                source_id,
                byte_offset: 20,
                tail_marker: b"two \xff\0\n".to_vec(),
            },
        )
    })
    .unwrap();
    assert_eq!(count_rows(&conn, "log_chunks").unwrap(), 2);
    let checkpoint = load_checkpoint(&conn, source_id).unwrap().unwrap();
    assert_eq!(checkpoint.byte_offset, 20);
    assert_eq!(checkpoint.tail_marker, b"two \xff\0\n");
    assert_eq!(load_checkpoint(&conn, source_id + 1).unwrap(), None);

    let lines = all_lines(&conn).unwrap();
    assert_eq!(lines[1].1.offset, 9);
    assert_eq!(
        lines[1].1.bytes, b"line two \xff\0",
        "raw bytes are stored exactly"
    );

    // A line in a source that does not exist breaks the foreign key.
    let err = insert_chunk(&conn, source_id + 100, &chunk(0, b"x", 1)).unwrap_err();
    assert_eq!(
        err.class(),
        ErrorClass::Constraint(ConstraintKind::ForeignKey)
    );
    assert!(err.to_string().contains("log_chunks"), "{err}");
}

#[tokio::test]
async fn a_truncated_line_keeps_its_real_length_and_flag() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir).await;
    let (truncated, length) = store
        .transaction("write", |tx| {
            let source_id = source(tx);
            insert_chunk(tx, source_id, &chunk(0, b"first bytes", 10_000))?;
            let lines = all_lines(tx)?;
            Ok::<_, StoreError>((lines[0].1.is_truncated(), lines[0].1.length))
        })
        .await
        .unwrap();
    assert_eq!((truncated, length), (true, 10_000));
}

#[tokio::test]
async fn paths_with_uri_special_characters_work() {
    let dir = TempDir::new().unwrap();
    let odd = dir.path().join("a dir%20with ?odd#chars");
    std::fs::create_dir(&odd).unwrap();
    let mut config = database_config(&odd);
    config.path = odd.join("x%41.db");
    let store = store::connect(&config).await.unwrap();
    store
        .transaction("write", |tx| append_audit(tx, "test", "odd path", ""))
        .await
        .unwrap();
    assert!(config.path.exists());
    assert_eq!(
        std::fs::read_dir(&odd)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name() == "x%41.db")
            .count(),
        1
    );
}

#[tokio::test]
async fn pooled_connections_never_create_a_missing_database() {
    let dir = TempDir::new().unwrap();
    let mut config = database_config(dir.path());
    config.conn_max_lifetime = Duration::from_millis(1);
    let store = store::connect(&config).await.unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", config.path.display()));
    }
    std::thread::sleep(Duration::from_millis(5));
    let err = store.ping(Duration::from_secs(5)).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(
        !config.path.exists(),
        "the pool did not create an empty database"
    );
}

/// The writer skips lines that start before their source's stored read
/// position (a replay: two readers, or a reader restarted from an older
/// position), so a line is stored once whatever a reader sends.
#[tokio::test]
async fn the_writer_stores_a_replayed_line_once() {
    use exim_pilot::pipeline::item::{Item, LineItem, SourceInfo};
    use exim_pilot::pipeline::source::Fingerprint;
    use exim_pilot::pipeline::writer::{self, NoProgress, WriterSettings};

    let dir = TempDir::new().unwrap();
    let handle = store::StoreHandle::new(open(&dir).await);
    let source = Arc::new(SourceInfo {
        fingerprint: Fingerprint([7; 16]),
        path: "mainlog".to_owned(),
        device: None,
        inode: None,
    });
    let lines: Vec<Item> = (0..4u64)
        .map(|i| {
            let bytes = format!("2024-01-01 00:00:0{i} [1] line {i}").into_bytes();
            let start = i * 32;
            Item::Line(LineItem {
                source: Arc::clone(&source),
                start,
                end: start + 32,
                length: bytes.len() as u64,
                tail_marker: exim_pilot::pipeline::source::TailMarker::of(&bytes),
                bytes,
            })
        })
        .collect();
    let settings = WriterSettings {
        batch_size: 2,
        batch_bytes: 1 << 20,
        flush_interval: Duration::from_millis(10),
        backoff_min: Duration::from_millis(10),
        backoff_max: Duration::from_millis(10),
        max_attempts: Some(1),
        retention: None,
    };
    let mut totals = Vec::new();
    // Lines 0-1, then 0-3 again (0 and 1 replayed), then all of them.
    for sent in [&lines[..2], &lines[..], &lines[..]] {
        let (mut sender, receiver) = exim_pilot::pipeline::channel::channel(8, 1 << 20);
        let (_keep, settings) = tokio::sync::watch::channel(settings);
        let sent = sent.to_vec();
        tokio::task::spawn_blocking(move || {
            for item in sent {
                assert!(ItemSink::send(&mut sender, item));
            }
        })
        .await
        .unwrap();
        let written = writer::run(handle.clone(), receiver, settings, &mut NoProgress)
            .await
            .unwrap();
        totals.push((written.inserted, written.replayed));
    }
    assert_eq!(totals, [(2, 0), (2, 2), (0, 4)]);
    let conn = side_connection(&dir);
    let stored: Vec<Vec<u8>> = all_lines(&conn)
        .unwrap()
        .into_iter()
        .map(|(_, line)| line.bytes)
        .collect();
    let sent: Vec<Vec<u8>> = lines
        .iter()
        .map(|item| match item {
            Item::Line(line) => line.bytes.clone(),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(stored, sent);
}
