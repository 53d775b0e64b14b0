//! The report's ways of reading agree: the whole database on two threads
//! or on one, and a window that holds every line.

use std::path::Path;

use deadpool_sqlite::rusqlite::Connection;

use super::tally::Bounds;
use super::{Stats, Window, made_from, whole, window};

/// The bundled sample's model rows, in a database file, a few lines to a
/// transaction.
fn sample_database(path: &Path) -> Connection {
    let mut conn = Connection::open(path).unwrap();
    crate::store::migrate(&mut conn).unwrap();
    let log = include_str!("../../../fixtures/sample/mainlog");
    let lines: Vec<&str> = log.lines().collect();
    crate::model::tests::apply_in_batches(&mut conn, &lines, 7, false);
    conn
}

/// The parts of a report that come from the model's tables (the line
/// counts are the writer's, not the model's).
fn model_figures(stats: &Stats) -> serde_json::Value {
    let mut json = serde_json::to_value(stats).unwrap();
    for key in ["since", "until", "lines", "kinds"] {
        json.as_object_mut().unwrap().remove(key);
    }
    json
}

#[test]
fn two_threads_one_thread_and_an_all_holding_window_give_the_same_report() {
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("x.db");
    let conn = sample_database(&path);
    let everything = Window::default();
    let (since, until) = everything.sql_bounds();
    let bounds = Bounds { since, until };

    let alone = whole::read_with(&conn, None, bounds).unwrap();
    let alone = made_from(&conn, everything, alone).unwrap();
    let second = crate::query::open(&path).unwrap();
    let shared = whole::read_with(&conn, Some(second), bounds).unwrap();
    let shared = made_from(&conn, everything, shared).unwrap();
    assert_eq!(model_figures(&alone), model_figures(&shared));

    let all_of_it = Window {
        since: Some(0),
        until: Some(i64::MAX),
    };
    let bounds = Bounds {
        since: 0,
        until: i64::MAX,
    };
    let windowed = made_from(&conn, all_of_it, window::read(&conn, bounds).unwrap()).unwrap();
    assert_eq!(model_figures(&windowed), model_figures(&shared));

    // And the sample is one that exercises them.
    assert_eq!(
        shared.totals.received_messages, 0,
        "line counts are not the model's"
    );
    assert!(shared.totals.received_volume > 0);
    assert!(shared.totals.delayed_messages > 0 && shared.totals.failed_messages > 0);
    assert!(
        shared
            .errors
            .iter()
            .any(|row| row.key.contains("<nobody@remote.example>"))
    );
    assert!(!shared.top_recipient_domains.is_empty() && !shared.by_transport.is_empty());
    assert!(!shared.rejections_by_reason.is_empty());
}
