//! Retention: `exim-pilot prune` and the daemon's own pruning delete what
//! is past its age, in chunks, and keep the rest.

use std::time::Duration;

use deadpool_sqlite::rusqlite::Connection;
use exim_pilot::store::chunk::MAX_CHUNK_LINES;
use tempfile::TempDir;

use crate::util::{Daemon, FAST_CONFIG, append_lines, audit_actions, outcome, run, wait_for_lines};

fn count(db: &std::path::Path, sql: &str) -> i64 {
    Connection::open(db)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

const LINES: &str = "SELECT coalesce(sum(lines), 0) FROM log_chunks";

/// The three lines of 2024-03-10 are stored, and so are their counts, while
/// the counts of 2024-03-01 are gone.
fn assert_new_lines_kept(db: &std::path::Path) {
    let stored = crate::util::stored_lines(db);
    let new: Vec<_> = stored
        .iter()
        .filter(|l| l.starts_with(b"2024-03-10"))
        .collect();
    assert_eq!(new.len(), 3);
    assert_eq!(count(db, "SELECT sum(lines) FROM line_counts"), 3);
}

/// Lines `days_ago` days before 2024-03-10 12:00, with a message each.
fn old_and_new_log(path: &std::path::Path, old: usize) {
    let mut lines = Vec::new();
    for i in 0..old {
        let id = format!("1aaaaa-{i:06}-00");
        lines.push(format!(
            "2024-03-01 10:{:02}:{:02} {id} <= a@example.com U=a P=local S=10 for b@example.net",
            i / 60 % 60,
            i % 60
        ));
        lines.push(format!(
            "2024-03-01 10:{:02}:{:02} {id} => b@example.net R=r T=old_transport",
            i / 60 % 60,
            i % 60
        ));
        lines.push(format!(
            "2024-03-01 10:{:02}:{:02} {id} Completed",
            i / 60 % 60,
            i % 60
        ));
    }
    lines.push(
        "2024-03-10 12:00:00 1bbbbb-000000-00 <= a@example.com U=a P=local S=10 for b@example.net"
            .to_owned(),
    );
    lines.push("2024-03-10 12:00:00 1bbbbb-000000-00 => b@example.net R=r T=t".to_owned());
    lines.push("2024-03-10 12:00:01 1bbbbb-000000-00 Completed".to_owned());
    append_lines(path, &lines);
}

/// Attempts kept for less time than their messages: the first attempt a
/// recipient's row holds is cleared from it (the recipient stays), and the
/// texts only those attempts used go.
#[test]
fn old_attempts_leave_the_recipient_rows_that_held_them() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    old_and_new_log(&log, 300);
    let db = dir.path().join("x.db");
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "[retention]\ndelivery_attempts_days = 5\n").unwrap();
    let db_text = db.display().to_string();
    let config_text = config.display().to_string();
    let args = ["--config", &config_text, "--db", &db_text];
    let (status, _, stderr) = outcome(&run(
        &[&["ingest"][..], &args, &[log.to_str().unwrap()]].concat()
    ));
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(count(&db, "SELECT count(*) FROM delivery_attempts"), 301);
    let (status, stdout, stderr) = outcome(&run(&[&["prune"][..], &args].concat()));
    assert_eq!(status, 0, "{stderr}");
    assert!(stdout.contains("300 delivery attempts"), "{stdout}");
    assert_eq!(count(&db, "SELECT count(*) FROM recipients"), 301);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM recipients WHERE attempt_flag IS NOT NULL"
        ),
        1
    );
    assert_eq!(count(&db, "SELECT count(*) FROM delivery_attempts"), 1);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM texts WHERE text = 'old_transport'"
        ),
        0
    );
}

#[test]
fn prune_deletes_old_rows_in_chunks_and_keeps_recent_ones() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    // 2,000 old messages make 6,000 old lines: more than one chunk.
    old_and_new_log(&log, 2000);
    let db = dir.path().join("x.db");
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        "[retention]\nlog_entries_days = 5\nmessages_days = 5\ndelivery_attempts_days = 5\n",
    )
    .unwrap();
    let db_text = db.display().to_string();
    let config_text = config.display().to_string();
    let (status, _, stderr) = outcome(&run(&[
        "ingest",
        "--config",
        &config_text,
        "--db",
        &db_text,
        log.to_str().unwrap(),
    ]));
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(count(&db, LINES), 6003);
    let counters = crate::util::counters_only(&crate::util::metrics_of(&db));
    assert_eq!(
        crate::util::family_sum(&counters, "exim_pilot_lines_total"),
        6003.0
    );

    let (status, stdout, stderr) =
        outcome(&run(&["prune", "--config", &config_text, "--db", &db_text]));
    assert_eq!(status, 0, "{stderr}");
    assert!(stdout.starts_with("pruned "), "{stdout}");
    // Lines go in whole chunks: the old lines that share a chunk with the
    // new ones stay until the chunk's newest line is old too.
    let kept = count(&db, LINES);
    assert!((3..3 + MAX_CHUNK_LINES as i64).contains(&kept), "{kept}");
    assert!(
        stdout.contains(&format!("{} log lines", 6003 - kept)) && stdout.contains("2000 messages"),
        "{stdout}"
    );
    assert_new_lines_kept(&db);
    // The metrics' counters count what was stored, not what is kept.
    assert_eq!(
        crate::util::counters_only(&crate::util::metrics_of(&db)),
        counters
    );
    assert_eq!(count(&db, "SELECT count(*) FROM messages"), 1);
    assert_eq!(
        count(&db, "SELECT count(*) FROM recipients"),
        1,
        "recipients go with their messages"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM delivery_attempts"), 1);
    assert!(audit_actions(&db).contains(&"pruned".to_owned()));
    // Texts only the pruned rows used go too; those still used stay.
    assert!(stdout.contains("1 unused texts"), "{stdout}");
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM texts WHERE text = 'old_transport'"
        ),
        0
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM delivery_attempts WHERE router = 'r' AND transport = 't'"
        ),
        1
    );
    assert_eq!(count(&db, "SELECT sweeps FROM texts_swept"), 1);

    // Nothing left to prune: a second run deletes nothing.
    let (_, stdout, _) = outcome(&run(&["prune", "--config", &config_text, "--db", &db_text]));
    assert!(stdout.starts_with("pruned 0 rows"), "{stdout}");
}

#[test]
fn zero_days_keeps_rows_forever() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    old_and_new_log(&log, 10);
    let db = dir.path().join("x.db").display().to_string();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "[retention]\nlog_entries_days = 0\nmessages_days = 0\ndelivery_attempts_days = 0\nrejections_days = 0\n").unwrap();
    let config = config.display().to_string();
    assert_eq!(
        outcome(&run(&[
            "ingest",
            "--config",
            &config,
            "--db",
            &db,
            log.to_str().unwrap()
        ]))
        .0,
        0
    );
    let (_, stdout, _) = outcome(&run(&["prune", "--config", &config, "--db", &db]));
    assert!(stdout.starts_with("pruned 0 rows"), "{stdout}");
}

#[test]
fn the_daemon_prunes_on_its_own() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    old_and_new_log(&log, 50);
    std::fs::write(
        dir.path().join("c.toml"),
        format!("{FAST_CONFIG}\n[retention]\nlog_entries_days = 5\nmessages_days = 5\ninterval = \"1s\"\n"),
    )
    .unwrap();
    let daemon = Daemon::start(dir.path());
    wait_for_lines(&daemon.db, 3, Duration::from_secs(30), Some(&daemon));
    wait_for_pruning(&daemon);
    let db = daemon.db.clone();
    assert!(daemon.stop().success());
    assert!(count(&db, LINES) < 6003);
    assert_new_lines_kept(&db);
    assert_eq!(count(&db, "SELECT count(*) FROM messages"), 1);
}

/// A line dated next year and lines dated 1970 do not move the retention
/// clock: the daemon's own pruning, with the default ages, keeps every
/// line of the sample log, and the odd lines are stored and audited.
#[test]
fn lines_dated_next_year_or_in_1970_do_not_make_pruning_wipe_the_database() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    let sample = std::fs::read(crate::util::fixture("sample/mainlog")).unwrap();
    std::fs::write(&log, &sample).unwrap();
    let next_year =
        exim_pilot::query::format_ms(exim_pilot::store::repo::now_ms() + 365 * 86_400_000);
    append_lines(
        &log,
        &[
            format!("{next_year} x"),
            "1970-01-01 00:00:00 1aaaaa-000000-00 Completed".to_owned(),
            "1970-01-01 00:00:01 epoch".to_owned(),
        ],
    );
    let total = sample.iter().filter(|b| **b == b'\n').count() + 3;
    std::fs::write(
        dir.path().join("c.toml"),
        format!("{FAST_CONFIG}\n[retention]\ninterval = \"1s\"\n"),
    )
    .unwrap();
    let daemon = Daemon::start(dir.path());
    wait_for_lines(&daemon.db, total, Duration::from_secs(30), Some(&daemon));
    // The 1970 message is finished and 56 years old: retention may take
    // its row (its line stays); the real messages must stay.
    const REAL: &str = "SELECT count(*) FROM messages WHERE exim_id <> '1aaaaa-000000-00'";
    let messages = count(&daemon.db, REAL);
    let attempts = count(&daemon.db, "SELECT count(*) FROM delivery_attempts");
    let rejections = count(&daemon.db, "SELECT count(*) FROM rejections");
    wait_for_pruning(&daemon);
    let db = daemon.db.clone();
    let stderr = daemon.stderr_text();
    assert!(daemon.stop().success());
    assert_eq!(count(&db, LINES), total as i64, "lines were pruned");
    assert_eq!(count(&db, REAL), messages);
    assert!(messages > 0);
    assert_eq!(
        count(&db, "SELECT count(*) FROM delivery_attempts"),
        attempts
    );
    assert_eq!(count(&db, "SELECT count(*) FROM rejections"), rejections);
    assert!(audit_actions(&db).contains(&"implausible_time".to_owned()));
    assert!(
        stderr.contains("dated before 1995 or more than a day ahead"),
        "{stderr}"
    );
}

/// Waits until the daemon's own pruning has run once (fails after 30 s).
fn wait_for_pruning(daemon: &Daemon) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !audit_actions(&daemon.db).contains(&"pruned".to_owned()) {
        assert!(
            std::time::Instant::now() < deadline,
            "no pruning:\n{}",
            daemon.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
