//! The schema and the rows: migrations, repository functions inside and
//! outside transactions, odd paths, and the writer storing a replay once.

use std::sync::Arc;
use std::time::Duration;

use deadpool_sqlite::rusqlite::Connection;
use exim_pilot::pipeline::item::ResumeMarker;
use exim_pilot::pipeline::source::{ItemSink, TailMarker};
use exim_pilot::store::repo::{
    Checkpoint, ReadPosition, all_lines, insert_chunk, load_checkpoint, save_checkpoint,
};
use exim_pilot::store::{self, ConstraintKind, ErrorClass, StoreError, in_transaction};
use tempfile::TempDir;

use crate::util::{TABLES, append_audit, count_rows, database_config};

use crate::store::{chunk, open, pragma, schema, side_connection, source};

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
                position: ReadPosition {
                    byte_offset: 20,
                    marker: b"two \xff\0\n".to_vec(),
                },
            },
            store::repo::now_ms(),
        )
    })
    .unwrap();
    assert_eq!(count_rows(&conn, "log_chunks").unwrap(), 2);
    let checkpoint = load_checkpoint(&conn, source_id).unwrap().unwrap();
    assert_eq!(checkpoint.position.byte_offset, 20);
    assert_eq!(checkpoint.position.marker, b"two \xff\0\n");
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

    let dir = TempDir::new().unwrap();
    let handle = store::StoreHandle::new(open(&dir).await);
    let source = Arc::new(SourceInfo {
        fingerprint: Fingerprint([7; 16]),
        path: "mainlog".to_owned(),
        device: None,
        inode: None,
        kind: Default::default(),
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
                resume: ResumeMarker::Tail(TailMarker::of(&bytes)),
                bytes,
            })
        })
        .collect();
    let mut totals = Vec::new();
    // Lines 0-1, then 0-3 again (0 and 1 replayed), then all of them.
    for sent in [&lines[..2], &lines[..], &lines[..]] {
        let written = write_items(&handle, sent.to_vec(), 2).await;
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

/// One batch that finishes a log's generations and starts the next commits
/// their positions with one time, and the newest of them is the one read
/// last: a restart resumes there, whatever order the positions were saved
/// in and however the clock ticked meanwhile.
#[tokio::test]
async fn positions_committed_together_share_a_time_and_the_last_generation_is_newest() {
    use exim_pilot::pipeline::item::{Item, LineItem, SourceInfo};
    use exim_pilot::pipeline::source::Fingerprint;
    use exim_pilot::store::repo::source_positions;

    let dir = TempDir::new().unwrap();
    let handle = store::StoreHandle::new(open(&dir).await);
    // Enough generations that saving their positions takes milliseconds.
    const GENERATIONS: u16 = 3000;
    let lines: Vec<Item> = (0..GENERATIONS)
        .map(|generation| {
            let mut fingerprint = [0; 16];
            fingerprint[..2].copy_from_slice(&generation.to_be_bytes());
            let bytes = format!("2024-01-01 00:00:00 [1] generation {generation}").into_bytes();
            Item::Line(LineItem {
                source: Arc::new(SourceInfo {
                    fingerprint: Fingerprint(fingerprint),
                    path: "mainlog".to_owned(),
                    device: None,
                    inode: None,
                    kind: Default::default(),
                }),
                start: 0,
                end: bytes.len() as u64 + 1,
                length: bytes.len() as u64,
                resume: ResumeMarker::Tail(TailMarker::of(&bytes)),
                bytes,
            })
        })
        .collect();
    let expected_last = match lines.last() {
        Some(Item::Line(line)) => line.source.fingerprint.0.to_vec(),
        _ => unreachable!(),
    };
    let written = write_items(&handle, lines, usize::from(GENERATIONS)).await;
    assert_eq!(
        (written.inserted, written.batches),
        (u64::from(GENERATIONS), 1)
    );
    let positions = source_positions(&side_connection(&dir)).unwrap();
    assert_eq!(positions.len(), usize::from(GENERATIONS));
    let times: std::collections::BTreeSet<i64> = positions.iter().map(|p| p.updated_ms).collect();
    assert_eq!(times.len(), 1, "one commit, one time: {times:?}");
    assert_eq!(
        positions[0].fingerprint, expected_last,
        "the generation read last is the newest"
    );
}

/// Sends `items` to a writer of `handle`'s database in batches of
/// `batch_size` lines, and returns what it wrote once they are all stored.
async fn write_items(
    handle: &store::StoreHandle,
    items: Vec<exim_pilot::pipeline::item::Item>,
    batch_size: usize,
) -> exim_pilot::pipeline::writer::WriteTotals {
    use exim_pilot::pipeline::writer::{self, NoProgress, WriterSettings};
    let settings = WriterSettings {
        batch_size,
        batch_bytes: 1 << 24,
        flush_interval: Duration::from_secs(10),
        backoff_min: Duration::from_millis(10),
        backoff_max: Duration::from_millis(10),
        max_attempts: Some(1),
        retention: None,
    };
    // Room for every item: they are all sent before the writer starts.
    let (mut sender, receiver) = exim_pilot::pipeline::channel::channel(1 << 16, 1 << 24);
    let (_keep, settings) = tokio::sync::watch::channel(settings);
    tokio::task::spawn_blocking(move || {
        for item in items {
            assert!(ItemSink::send(&mut sender, item));
        }
        assert!(sender.flush());
    })
    .await
    .unwrap();
    writer::run(
        handle.clone(),
        receiver,
        settings,
        &mut NoProgress,
        writer::Indexes::Kept,
    )
    .await
    .unwrap()
}
