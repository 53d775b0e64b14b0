//! The store layer against real SQLite files: opening, pragmas, pool limits,
//! transactions, error classes, migrations and repository functions.

use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Barrier, mpsc};
use std::time::Duration;

use deadpool_sqlite::rusqlite::{Connection, params};
use exim_pilot::backoff::Backoff;
use exim_pilot::store::chunk::{ChunkBuilder, LineRecord, SealedChunk};
use exim_pilot::store::repo::{SourceIdentity, upsert_source};
use exim_pilot::store::{self, ConstraintKind, ErrorClass, Store, StoreError, TxError};
use tempfile::TempDir;

use crate::util::{append_audit, database_config};

pub(crate) async fn open(dir: &TempDir) -> Store {
    store::connect(&database_config(dir.path()))
        .await
        .expect("connect")
}

pub(crate) fn pragma<T: deadpool_sqlite::rusqlite::types::FromSql>(
    conn: &Connection,
    name: &str,
) -> T {
    conn.query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))
        .unwrap()
}

/// A second, independent connection, as another process would have.
pub(crate) fn side_connection(dir: &TempDir) -> Connection {
    Connection::open(dir.path().join("test.db")).unwrap()
}

/// Audit rows the tests wrote (actor 'test').
pub(crate) fn test_audit_rows(conn: &Connection) -> i64 {
    conn.query_row(
        "SELECT count(*) FROM audit_log WHERE actor = 'test'",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

pub(crate) fn source(conn: &Connection) -> i64 {
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
pub(crate) fn chunk(offset: u64, raw: &[u8], length: u64) -> SealedChunk {
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

/// Runs one statement on a migrated database and returns its error.
pub(crate) fn failing(conn: &Connection, sql: &str) -> StoreError {
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

pub(crate) fn schema(conn: &Connection) -> Vec<String> {
    crate::util::query_all(
        conn,
        "SELECT type || ' ' || name || ': ' || coalesce(sql, '') FROM sqlite_schema ORDER BY name",
        |row| row.get(0),
    )
}
