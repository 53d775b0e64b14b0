//! Database faults while the daemon runs: a lock held by another process,
//! the database directory moved away and back (those that need root, a
//! read-only directory and a full disk, are system tests: tests/system/root.rs).
//! In every case reading pauses at the back-pressure, the failure is logged
//! loudly but without a busy loop, and after recovery every line is stored
//! exactly once.

use std::time::{Duration, Instant};

use deadpool_sqlite::rusqlite::Connection;
use tempfile::TempDir;

use crate::util::{
    Daemon, FAST_CONFIG, append_expected, append_lines, assert_exactly, numbered_lines,
    retry_warnings, wait_for_lines,
};

const WAIT: Duration = Duration::from_secs(60);

#[test]
fn an_exclusive_lock_held_for_20_seconds_pauses_reading_and_loses_nothing() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    let mut expected = numbered_lines("a", 0, 50);
    append_lines(&log, &expected);
    let daemon = Daemon::start(dir.path());
    wait_for_lines(&daemon.db, 50, WAIT, Some(&daemon));

    let locker = Connection::open(&daemon.db).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let locked_at = Instant::now();
    append_expected(&log, &mut expected, "b", 0, 3000);
    std::thread::sleep(Duration::from_secs(20));
    locker.execute_batch("COMMIT").unwrap();
    let held = locked_at.elapsed();
    drop(locker);

    wait_for_lines(&daemon.db, expected.len(), WAIT, Some(&daemon));
    let warnings = retry_warnings(&daemon);
    let db = daemon.db.clone();
    assert!(
        warnings >= 1,
        "the lock was reported:\n{}",
        daemon.stderr_text()
    );
    // backoff_max is 400 ms: a busy loop would log thousands of times.
    let bound = (held.as_secs_f64() / 0.2) as usize + 10;
    assert!(
        warnings <= bound,
        "{warnings} retry warnings in {held:?}: a busy loop"
    );
    assert!(daemon.stop().success());
    assert_exactly(&db, &expected);
    // Each failed attempt was counted by the commit that finally took its
    // batch, and the lines once each.
    let samples = crate::util::metrics_of(&db);
    assert_eq!(samples["exim_pilot_writer_retries_total"], warnings as f64);
    assert_eq!(
        crate::util::family_sum(&samples, "exim_pilot_lines_total"),
        expected.len() as f64
    );
}

#[test]
fn a_database_directory_moved_away_is_reconnected_when_it_returns() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let log = dir.path().join("mainlog");
    append_lines(&log, &numbered_lines("a", 0, 10));
    let config = dir.path().join("c.toml");
    // Short-lived connections, so the pool must open new ones.
    std::fs::write(
        &config,
        FAST_CONFIG.replace("[database]\n", "[database]\nconn_max_lifetime = \"1s\"\n"),
    )
    .unwrap();
    let db = data.join("x.db");
    let mut daemon = Daemon::start_at(dir.path(), &log, &db, &config, &[]);
    wait_for_lines(&db, 10, WAIT, Some(&daemon));

    std::fs::rename(&data, dir.path().join("data.old")).unwrap();
    let deadline = Instant::now() + WAIT;
    while !daemon.stderr_text().contains("health check failed") {
        assert!(
            Instant::now() < deadline,
            "the lost database was not reported:\n{}",
            daemon.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    append_lines(&log, &numbered_lines("b", 0, 5));
    std::thread::sleep(Duration::from_secs(1));
    assert!(daemon.running(), "{}", daemon.stderr_text());

    // The directory comes back empty: a new database is created and the
    // lines read since are stored in it.
    std::fs::create_dir(&data).unwrap();
    wait_for_lines(&db, 5, WAIT, Some(&daemon));
    let text = daemon.stderr_text();
    assert!(text.contains("connection pool rebuilt"), "{text}");
    assert!(daemon.stop().success());
    assert_exactly(&db, &numbered_lines("b", 0, 5));
}
