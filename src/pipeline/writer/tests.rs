//! A batch prepared ahead, on a real database file: written as prepared
//! when nothing changed, prepared again in its transaction when another
//! writer took its row ids or stored its lines meanwhile.

use std::sync::Arc;
use std::time::Duration;

use super::commit::{Ready, commit_ahead, commit_in_transaction};
use super::*;
use crate::pipeline::item::{LineItem, ResumeMarker, SourceInfo};
use crate::pipeline::source::{Fingerprint, TailMarker};

const LINES: [&str; 9] = [
    "2024-01-01 10:00:00 1smkL5-00000000e65-24eQ <= a@example.com H=(x) [192.0.2.1] P=esmtp S=100 for b@example.net",
    "2024-01-01 10:00:01 1smkL5-00000000e65-24eQ => b@example.net R=dnslookup T=remote_smtp H=mx [192.0.2.2] C=\"250 OK\"",
    "2024-01-01 10:00:02 1smkL5-00000000e65-24eQ Completed",
    "2024-01-01 10:00:03 1smkL6-00000000e65-24eQ <= c@example.com H=(y) [192.0.2.3] P=esmtps S=200 for d@example.net",
    "2024-01-01 10:00:04 1smkL6-00000000e65-24eQ == d@example.net R=dnslookup T=remote_smtp defer (-44): SMTP error from remote mail server after RCPT TO:<d@example.net>: 451 4.7.1 try later",
    "2024-01-01 10:00:05 1smkL7-00000000e65-24eQ <= e@example.com H=(z) [192.0.2.4] P=esmtp S=300 for f@example.net",
    // Lines about no message: a batch of them creates no row.
    "2024-01-01 10:00:06 SMTP connection from [192.0.2.9]:41000 (TCP/IP connection count = 1)",
    "2024-01-01 10:00:07 SMTP connection from [192.0.2.9]:41000 lost",
    "2024-01-01 10:00:08 Start queue run: pid=4242",
];

/// `LINES[range]` as the items a reader of source `tag` sends.
fn items(tag: u8, range: std::ops::Range<usize>) -> Vec<Item> {
    let source = Arc::new(SourceInfo {
        fingerprint: Fingerprint([tag; 16]),
        path: format!("mainlog-{tag}"),
        device: None,
        inode: None,
        kind: Default::default(),
    });
    let mut start = 0;
    let mut items = Vec::new();
    for (index, line) in LINES.iter().enumerate() {
        let bytes = line.as_bytes().to_vec();
        let end = start + bytes.len() as u64 + 1;
        if range.contains(&index) {
            items.push(Item::Line(LineItem {
                source: Arc::clone(&source),
                start,
                end,
                length: bytes.len() as u64,
                resume: ResumeMarker::Tail(TailMarker::of(&bytes)),
                bytes,
            }));
        }
        start = end;
    }
    items
}

fn settings() -> WriterSettings {
    WriterSettings {
        batch_size: 100,
        batch_bytes: 1 << 20,
        flush_interval: Duration::from_millis(10),
        backoff_min: Duration::from_millis(10),
        backoff_max: Duration::from_millis(10),
        max_attempts: Some(1),
        retention: None,
    }
}

async fn store(dir: &tempfile::TempDir) -> StoreHandle {
    let mut config = crate::config::Config::from_toml("", None, &Default::default())
        .unwrap()
        .database;
    config.path = dir.path().join("test.db");
    StoreHandle::new(crate::store::connect(&config).await.unwrap())
}

/// Another writer's whole batch, with states of its own.
async fn other_writer(store: &StoreHandle, batch: Vec<Item>) -> WriteTotals {
    commit_in_transaction(
        store,
        Arc::new(batch),
        &mut PrepareState::default(),
        &mut WriteState::default(),
        &settings(),
        &mut NoProgress,
    )
    .await
    .unwrap()
}

/// The rows left, as text: messages, recipients, attempts, texts, lines.
async fn rows(store: &StoreHandle) -> Vec<String> {
    store
        .current()
        .with_conn("dump", |conn| {
            let mut rows = Vec::new();
            for sql in [
                "SELECT id || ' ' || exim_id || ' ' || status FROM messages ORDER BY id",
                "SELECT id || ' ' || message_id || ' ' || address || ' ' || status || ' '
                        || coalesce(attempt_router_id, '-') FROM recipients ORDER BY id",
                "SELECT message_id || ' ' || recipient_id || ' ' || router_id FROM attempts ORDER BY id",
                "SELECT id || ' ' || text FROM texts ORDER BY id",
            ] {
                let mut statement = conn.prepare(sql).unwrap();
                rows.extend(
                    statement
                        .query_map([], |row| row.get::<_, String>(0))
                        .unwrap()
                        .map(Result::unwrap),
                );
            }
            Ok(rows)
        })
        .await
        .unwrap()
}

/// Writes `first`, prepares `second` ahead, lets `meanwhile` happen, then
/// commits `second`; returns what it wrote and whether it was prepared again.
async fn ahead_after<F: Future<Output = ()>>(
    store: &StoreHandle,
    first: Vec<Item>,
    second: Vec<Item>,
    meanwhile: impl FnOnce() -> F,
) -> (WriteTotals, bool) {
    let mut preparing = PrepareState::default();
    let mut writing = WriteState::default();
    commit_in_transaction(
        store,
        Arc::new(first),
        &mut preparing,
        &mut writing,
        &settings(),
        &mut NoProgress,
    )
    .await
    .unwrap();
    let Some(Ready::Ahead(prepared)) = prepare_next(store, second, &mut preparing).await else {
        panic!("the batch was not prepared ahead");
    };
    meanwhile().await;
    let (written, restarted) =
        commit_ahead(store, prepared, &mut writing, &settings(), &mut NoProgress)
            .await
            .unwrap();
    (written, restarted.is_some())
}

#[tokio::test]
async fn a_batch_prepared_ahead_is_written_as_prepared_when_nothing_changed() {
    let dir = tempfile::TempDir::new().unwrap();
    let store = store(&dir).await;
    let (written, again) = ahead_after(&store, items(1, 0..3), items(1, 3..6), || async {}).await;
    assert!(!again, "prepared again though nothing changed");
    assert_eq!((written.inserted, written.replayed), (3, 0));
    // The same lines in one batch leave the same rows.
    let whole = tempfile::TempDir::new().unwrap();
    let whole_store = self::store(&whole).await;
    other_writer(&whole_store, items(1, 0..6)).await;
    assert_eq!(rows(&store).await, rows(&whole_store).await);
}

#[tokio::test]
async fn a_batch_prepared_ahead_is_prepared_again_when_another_writer_took_its_ids() {
    let dir = tempfile::TempDir::new().unwrap();
    let store = store(&dir).await;
    let (written, again) = ahead_after(&store, items(1, 0..3), items(1, 3..6), || {
        // Another log's messages, texts and lines, committed meanwhile:
        // the same Exim ids, as two hosts' logs in one database may have.
        async {
            other_writer(&store, items(2, 3..6)).await;
        }
    })
    .await;
    assert!(again, "written as prepared over another writer's rows");
    assert_eq!((written.inserted, written.replayed), (3, 0));
    let rows = rows(&store).await;
    let count = |prefix: &str| rows.iter().filter(|r| r.contains(prefix)).count();
    // Messages 1-3 of the first log, and the other writer's lines of two
    // of them joined those rows, as lines of one Exim id do.
    assert_eq!(count("-24eQ "), 3, "{rows:#?}");
    assert_eq!(count(" dnslookup"), 1, "a text stored twice: {rows:#?}");
    assert_eq!(count("@example.net "), 3, "{rows:#?}");
}

#[tokio::test]
async fn lines_another_reader_stored_meanwhile_are_not_stored_twice() {
    let dir = tempfile::TempDir::new().unwrap();
    let store = store(&dir).await;
    // Lines that create no row, in a chunk of their own: only the read
    // position tells that they were stored meanwhile.
    let (written, again) = ahead_after(&store, items(1, 0..6), items(1, 6..9), || {
        // A second reader of the same log, a line further on, stores the
        // last two first.
        async {
            other_writer(&store, items(1, 7..9)).await;
        }
    })
    .await;
    assert!(again, "written as prepared past a moved read position");
    assert_eq!((written.inserted, written.replayed), (0, 3));
    let lines = |store: StoreHandle| async move {
        store
            .current()
            .with_conn("count lines", |conn| {
                Ok(crate::store::repo::all_lines(conn)?
                    .into_iter()
                    .map(|(_, line)| line.bytes)
                    .collect::<Vec<_>>())
            })
            .await
            .unwrap()
    };
    let stored = lines(store.clone()).await;
    let distinct: std::collections::BTreeSet<&Vec<u8>> = stored.iter().collect();
    assert_eq!(stored.len(), distinct.len(), "a line stored twice");
    assert_eq!(stored.len(), 8);
}

#[tokio::test]
async fn a_batch_touching_a_message_the_batch_in_flight_completed_is_prepared_after_it() {
    let dir = tempfile::TempDir::new().unwrap();
    let store = store(&dir).await;
    let mut preparing = PrepareState::default();
    let mut writing = WriteState::default();
    // The first batch, committed in its transaction: nothing in flight,
    // so the next one, touching the message it completed, is prepared
    // ahead from the database.
    commit_in_transaction(
        &store,
        Arc::new(items(1, 0..3)),
        &mut preparing,
        &mut writing,
        &settings(),
        &mut NoProgress,
    )
    .await
    .unwrap();
    let again = |range, further: u64| {
        let mut batch = items(1, range);
        // The same lines once more, further on in the log.
        for item in &mut batch {
            if let Item::Line(line) = item {
                line.start += further;
                line.end += further;
            }
        }
        batch
    };
    let Some(Ready::Ahead(second)) =
        prepare_next(&store, again(1..3, 10_000), &mut preparing).await
    else {
        panic!("not prepared ahead though nothing was in flight");
    };
    // Still in flight, it completed the message again: a batch touching
    // it waits for it, and is prepared in its own transaction.
    let third = prepare_next(&store, again(1..2, 20_000), &mut preparing).await;
    assert!(
        matches!(third, Some(Ready::InTransaction(_))),
        "prepared ahead over a message the batch in flight completed"
    );
    let (written, restarted) =
        commit_ahead(&store, second, &mut writing, &settings(), &mut NoProgress)
            .await
            .unwrap();
    assert_eq!((written.inserted, restarted.is_some()), (2, false));
}
