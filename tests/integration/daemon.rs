//! `exim-pilot run` as a real process: rotation in every form, crashes,
//! partial lines, one daemon per database, truncated lines. The oracle is always
//! the same: the database holds every line written, exactly once, in order,
//! byte-exact.

use std::io::Write;
use std::time::Duration;

use tempfile::TempDir;

use crate::util::{
    Daemon, append_expected, append_lines, assert_exactly, numbered_lines, wait_for_lines,
};

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn rename_rotation_copytruncate_and_recreate_while_running() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    let mut expected = numbered_lines("a", 0, 100);
    append_lines(&log, &expected);
    let daemon = Daemon::start(dir.path());
    wait_for_lines(&daemon.db, 100, WAIT, Some(&daemon));

    // Rename rotation, with late writes to the renamed file (Exim's
    // stat/write race) before the new file appears.
    std::fs::rename(&log, dir.path().join("mainlog.1")).unwrap();
    append_expected(&dir.path().join("mainlog.1"), &mut expected, "late", 0, 5);
    append_expected(&log, &mut expected, "b", 0, 50);
    wait_for_lines(&daemon.db, expected.len(), WAIT, Some(&daemon));

    // copytruncate: the copy holds lines the daemon may not have read yet.
    append_expected(&log, &mut expected, "c", 0, 20);
    std::fs::copy(&log, dir.path().join("mainlog.1")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append_expected(&log, &mut expected, "d", 0, 30);
    wait_for_lines(&daemon.db, expected.len(), WAIT, Some(&daemon));

    // Delete and recreate.
    std::fs::remove_file(&log).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    append_expected(&log, &mut expected, "e", 0, 10);
    wait_for_lines(&daemon.db, expected.len(), WAIT, Some(&daemon));
    // The deleted file's descriptor is closed once it is finished.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::fs::read_dir(format!("/proc/{}/fd", daemon.child.id()))
        .unwrap()
        .filter_map(Result::ok)
        .any(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|t| t.display().to_string().ends_with("(deleted)"))
        })
    {
        assert!(
            std::time::Instant::now() < deadline,
            "a descriptor on a deleted file stayed open"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let db = daemon.db.clone();
    assert!(daemon.stop().success());
    assert_exactly(&db, &expected);
    let actions = crate::util::audit_actions(&db);
    assert!(
        actions.contains(&"rotated".to_owned()) && actions.contains(&"truncated".to_owned()),
        "{actions:?}"
    );
}

#[test]
fn rotation_while_stopped_into_gzip_resumes_without_gap_or_duplicate() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    let mut expected = numbered_lines("a", 0, 50);
    append_lines(&log, &expected);
    let db = crate::util::run_until_stored(dir.path(), 50);

    // While stopped: unread lines, then two rotations; the older
    // generation is compressed.
    append_expected(&log, &mut expected, "a", 50, 10);
    std::fs::rename(&log, dir.path().join("mainlog.1")).unwrap();
    append_expected(&log, &mut expected, "b", 0, 20);
    let generation = std::fs::read(dir.path().join("mainlog.1")).unwrap();
    crate::util::write_gzip(&dir.path().join("mainlog.2.gz"), &generation);
    std::fs::remove_file(dir.path().join("mainlog.1")).unwrap();
    std::fs::rename(&log, dir.path().join("mainlog.1")).unwrap();
    append_expected(&log, &mut expected, "c", 0, 5);

    crate::util::run_until_stored(dir.path(), expected.len());
    assert_exactly(&db, &expected);
}

#[test]
fn dateext_rotation_while_stopped_resumes_without_gap_or_duplicate() {
    // RHEL's logrotate names generations by date and compresses at once.
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    let mut expected = numbered_lines("a", 0, 30);
    append_lines(&log, &expected);
    let db = crate::util::run_until_stored(dir.path(), 30);

    append_expected(&log, &mut expected, "a", 30, 10);
    crate::util::write_gzip(
        &dir.path().join("mainlog-20261125.gz"),
        &std::fs::read(&log).unwrap(),
    );
    std::fs::remove_file(&log).unwrap();
    append_expected(&log, &mut expected, "b", 0, 15);
    std::fs::rename(&log, dir.path().join("mainlog-20261126")).unwrap();
    append_expected(&log, &mut expected, "c", 0, 5);

    crate::util::run_until_stored(dir.path(), expected.len());
    assert_exactly(&db, &expected);
}

#[test]
fn a_generation_deleted_while_stopped_is_recorded_as_a_gap() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    append_lines(&log, &numbered_lines("a", 0, 10));
    let db = crate::util::run_until_stored(dir.path(), 10);

    std::fs::remove_file(&log).unwrap();
    append_lines(&log, &numbered_lines("b", 0, 3));
    crate::util::run_until_stored(dir.path(), 13);
    let conn = deadpool_sqlite::rusqlite::Connection::open(&db).unwrap();
    let (gaps, start): (i64, i64) = conn
        .query_row(
            "SELECT count(*), max(start_offset) FROM ingest_gaps",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(gaps, 1);
    assert!(crate::util::audit_actions(&db).contains(&"gap".to_owned()));
    let ten_lines = numbered_lines("a", 0, 10)
        .iter()
        .map(|l| l.len() + 1)
        .sum::<usize>();
    assert_eq!(
        start as usize, ten_lines,
        "the gap starts where reading stopped"
    );
}

#[test]
fn a_partial_line_written_in_two_parts_across_a_restart_is_one_row() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    append_lines(&log, &numbered_lines("a", 0, 3));
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(b"2024-01-01 00:00:09 [9] Start queue")
        .unwrap();
    let daemon = Daemon::start(dir.path());
    wait_for_lines(&daemon.db, 3, WAIT, Some(&daemon));
    std::thread::sleep(Duration::from_millis(500));
    let db = daemon.db.clone();
    assert!(daemon.stop().success());
    assert_eq!(
        crate::util::stored_lines(&db).len(),
        3,
        "the half line waits"
    );

    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(b" run: pid=9\n")
        .unwrap();
    crate::util::run_until_stored(dir.path(), 4);
    let mut expected = numbered_lines("a", 0, 3);
    expected.push("2024-01-01 00:00:09 [9] Start queue run: pid=9".to_owned());
    assert_exactly(&db, &expected);
}

#[test]
fn twenty_sigkills_at_random_moments_lose_and_double_nothing() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    let mut expected = numbered_lines("bulk", 0, 60_000);
    append_lines(&log, &expected);
    let mut rng = fastrand::Rng::with_seed(0xE1);
    // EXIM_PILOT_CRASH_ROUNDS=200 for a longer local run.
    let rounds = std::env::var("EXIM_PILOT_CRASH_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    for round in 0..rounds {
        let daemon = Daemon::start(dir.path());
        // Appends while running, so kills also land mid-tail.
        append_expected(
            &log,
            &mut expected,
            &format!("r{round}"),
            0,
            rng.usize(0..500),
        );
        std::thread::sleep(Duration::from_millis(rng.u64(30..400)));
        daemon.kill();
    }
    let db = crate::util::run_until_stored(dir.path(), expected.len());
    assert_exactly(&db, &expected);
}

#[test]
fn ingest_of_rotated_files_then_run_continues_without_gap_or_duplicate() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    let mut expected = numbered_lines("old", 0, 40);
    append_lines(&dir.path().join("mainlog.1"), &expected);
    append_expected(&log, &mut expected, "new", 0, 25);
    let db = dir.path().join("x.db");
    let status = std::process::Command::new(crate::util::binary())
        .args(["ingest", "--db"])
        .arg(&db)
        .arg(dir.path().join("mainlog.1"))
        .arg(&log)
        .output()
        .unwrap();
    assert!(status.status.success());
    assert!(crate::util::audit_actions(&db).contains(&"backfill".to_owned()));
    append_expected(&log, &mut expected, "new", 25, 10);
    let daemon = Daemon::start(dir.path());
    wait_for_lines(&db, expected.len(), WAIT, Some(&daemon));
    crate::util::wait_until_read_to_end(&db, &log, &daemon);
    assert!(daemon.stop().success());
    assert_exactly(&db, &expected);
}

/// A second daemon on the same database is refused (78, naming the first
/// one's pid); after a kill -9 of the first, a new one starts at once.
#[test]
fn a_second_daemon_on_the_same_database_is_refused() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    append_lines(&log, &numbered_lines("a", 0, 3));
    let first = Daemon::start(dir.path());
    wait_for_lines(&first.db, 3, WAIT, Some(&first));
    let mut second = Daemon::start(dir.path());
    let status = second.wait(Duration::from_secs(10));
    let text = second.stderr_text();
    assert_eq!(status.code(), Some(78), "{text}");
    assert!(
        text.contains(&format!(
            "another exim-pilot daemon (pid {}) is already running",
            first.child.id()
        )),
        "{text}"
    );
    first.kill();
    append_lines(&log, &numbered_lines("a", 3, 3));
    let third = Daemon::start(dir.path());
    wait_for_lines(&third.db, 6, WAIT, Some(&third));
    crate::util::wait_until_read_to_end(&third.db, &log, &third);
    let db = third.db.clone();
    assert!(third.stop().success());
    assert_exactly(&db, &numbered_lines("a", 0, 6));
}

/// `run` counts and logs the lines it stores truncated (as `ingest`
/// reports them), and says how many when it stops.
#[test]
fn run_logs_and_counts_truncated_lines() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    let long = format!("2024-01-01 00:00:00 [1] {}", "x".repeat(1000));
    append_lines(&log, &[numbered_lines("t", 0, 1)[0].clone(), long]);
    std::fs::write(
        dir.path().join("c.toml"),
        format!(
            "{}\n",
            crate::util::FAST_CONFIG.replace(
                "channel_capacity = 1000",
                "channel_capacity = 1000\nmax_line_bytes = 256"
            )
        ),
    )
    .unwrap();
    let daemon = Daemon::start(dir.path());
    wait_for_lines(&daemon.db, 2, WAIT, Some(&daemon));
    let stderr = daemon.stderr.clone();
    assert!(daemon.stop().success());
    let text = std::fs::read_to_string(stderr).unwrap();
    assert!(
        text.contains("a line of 1024 bytes at byte")
            && text.contains("longer than [ingest] max_line_bytes"),
        "{text}"
    );
    assert!(text.contains("1 truncated"), "{text}");
    assert!(text.contains("this run stored 2 new lines"), "{text}");
}

/// The model's rows as text, in id order, to compare two databases.
#[cfg(feature = "synth")]
fn model_rows(db: &std::path::Path) -> Vec<String> {
    let conn = deadpool_sqlite::rusqlite::Connection::open(db).unwrap();
    let mut rows = Vec::new();
    for sql in [
        "SELECT id, exim_id, status, received_ms, completed_ms, last_event_ms, sender FROM messages ORDER BY id",
        "SELECT id, message_id, address, final_address, status, last_attempt_ms FROM recipients ORDER BY id",
        "SELECT * FROM delivery_attempts ORDER BY id",
        "SELECT * FROM rejections ORDER BY id",
        "SELECT * FROM line_counts ORDER BY minute_ms, kind",
    ] {
        let mut statement = conn.prepare(sql).unwrap();
        let columns = statement.column_count();
        let found = statement
            .query_map([], |row| {
                Ok((0..columns)
                    .map(|i| format!("{:?}", row.get_ref(i).unwrap()))
                    .collect::<Vec<_>>()
                    .join("|"))
            })
            .unwrap()
            .map(Result::unwrap);
        rows.extend(found);
    }
    rows
}

/// A daemon started on a backlog large beside its database reads it
/// without the secondary indexes and builds them once caught up: the same
/// rows as `ingest`, every index there, and lines appended afterwards
/// committed live. A kill -9 in the middle loses and doubles nothing, and
/// the next start has the indexes again.
#[test]
#[cfg(feature = "synth")]
fn a_backlog_is_caught_up_without_indexes_which_are_built_once_caught_up() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    let mut generator = exim_pilot::synth::Generator::new(17);
    let mut content = Vec::new();
    generator.write(12_000, &mut content).unwrap();
    std::fs::write(&log, &content).unwrap();
    assert!(content.len() > 1 << 20, "over the catch-up threshold");

    let reference = dir.path().join("ingested.db");
    let (status, _, stderr) = crate::util::outcome(&crate::util::run(&[
        "ingest",
        "--db",
        reference.to_str().unwrap(),
        log.to_str().unwrap(),
    ]));
    assert_eq!(status, 0, "{stderr}");

    // Killed while catching up, then started again on the same backlog.
    let daemon = Daemon::start(dir.path());
    daemon.wait_for_log("without the secondary indexes");
    daemon.kill();
    let daemon = Daemon::start(dir.path());
    daemon.wait_for_log("built the indexes dropped for the catch-up");
    let lines = content.iter().filter(|&&b| b == b'\n').count();
    wait_for_lines(&daemon.db, lines, WAIT, Some(&daemon));
    let missing: i64 = deadpool_sqlite::rusqlite::Connection::open(&daemon.db)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name LIKE 'attempts_%'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(missing, 3, "the attempts' indexes are back");
    let db = daemon.db.clone();
    assert!(daemon.stop().success());
    assert_eq!(model_rows(&db), model_rows(&reference));
    let indexes = |db: &std::path::Path| -> Vec<String> {
        deadpool_sqlite::rusqlite::Connection::open(db)
            .unwrap()
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' ORDER BY name")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(indexes(&db), indexes(&reference));

    // Live from here: an appended line is committed with the indexes kept.
    let tail = numbered_lines("live", 0, 3);
    append_lines(&log, &tail);
    let daemon = Daemon::start(dir.path());
    wait_for_lines(&daemon.db, lines + 3, WAIT, Some(&daemon));
    let said = daemon.stderr_text();
    assert!(daemon.stop().success());
    assert!(!said.contains("without the secondary indexes"), "{said}");
}
