//! The queue helper's actions log into the audit log: the daemon follows it
//! beside Exim's log, brings each record in exactly once (across kill -9),
//! an intent without its outcome stays `unknown`, and Exim's own line for
//! the message confirms the action. (The helper itself, against a real
//! Exim, is a system test: tests/system/queue.rs.)

use std::path::Path;
use std::time::{Duration, Instant};

use deadpool_sqlite::rusqlite::Connection;
use exim_pilot::queue::record::{Caller, Finished, Intent, Record};
use exim_pilot::queue::request::{Actor, Verb};
use tempfile::TempDir;

use crate::util::{Daemon, FAST_CONFIG, append_lines, wait_for_lines};

const WAIT: Duration = Duration::from_secs(60);

fn intent(request_id: &str, verb: Verb, ids: &[&str], user: &str) -> Record {
    Record::Intent(Intent {
        request_id: request_id.to_owned(),
        at_ms: 1_796_000_000_000,
        caller: Caller {
            peer_uid: 104,
            peer_user: "exim-pilot".to_owned(),
            peer_pid: 4242,
            actor: Actor {
                user: user.to_owned(),
                role: "admin".to_owned(),
                auth: "users".to_owned(),
                client_ip: "192.0.2.7".to_owned(),
            },
            origin: "web".to_owned(),
        },
        verb,
        ids: ids.iter().map(|id| (*id).to_owned()).collect(),
        selection: String::new(),
        dry_run: false,
        reason: "looping".to_owned(),
        argv: vec!["/usr/sbin/exim4".to_owned(), verb.exim_flag().to_owned()],
    })
}

fn outcome(request_id: &str, outcomes: &[&str]) -> Record {
    Record::Outcome(Finished {
        request_id: request_id.to_owned(),
        at_ms: 1_796_000_000_500,
        exit_status: Some(0),
        outcomes: outcomes.iter().map(|o| (*o).to_owned()).collect(),
        stdout: "Message 1xWZzS-0001uN-1x is now frozen\n".to_owned(),
        stderr: String::new(),
        error: String::new(),
    })
}

fn append(path: &Path, records: &[Record]) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    for record in records {
        file.write_all(record.to_line().as_bytes()).unwrap();
    }
}

/// (request, message, actor, action, outcome, confirmed, client ip) of
/// every queue action in the audit log.
type Row = (String, Option<String>, String, String, String, bool, String);

/// The rows, or none while the database is not there or not migrated yet.
fn rows(db: &Path) -> Vec<Row> {
    let conn = Connection::open(db).unwrap();
    let Ok(mut statement) = conn.prepare(
        "SELECT request_id, message_id, actor, action, outcome, confirmed_ms IS NOT NULL,
                client_ip
         FROM audit_log WHERE request_id IS NOT NULL ORDER BY id",
    ) else {
        return Vec::new();
    };
    statement
        .query_map([], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
                row.get(6)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn wait_until(db: &Path, what: &str, daemon: &Daemon, done: impl Fn(&[Row]) -> bool) -> Vec<Row> {
    let deadline = Instant::now() + WAIT;
    loop {
        let rows = if db.exists() { rows(db) } else { Vec::new() };
        if done(&rows) {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {rows:?}\n{}",
            daemon.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn actions_come_in_once_stay_unknown_without_an_outcome_and_exims_line_confirms_them() {
    let dir = TempDir::new().unwrap();
    let actions_dir = dir.path().join("actions");
    std::fs::create_dir(&actions_dir).unwrap();
    let actions = actions_dir.join("actions.log");
    std::fs::write(
        dir.path().join("c.toml"),
        format!(
            "{FAST_CONFIG}\n[queue]\nactions_log = \"{}\"\n",
            actions.display()
        ),
    )
    .unwrap();
    let log = dir.path().join("mainlog");
    append_lines(
        &log,
        &["2026-11-26 13:58:22 1xWZzS-0001uN-1x <= a@example.org S=300".to_owned()],
    );
    append(
        &actions,
        &[
            intent(
                "r1",
                Verb::Freeze,
                &["1xWZzS-0001uN-1x", "1xWZzT-0001uN-1x"],
                "alice",
            ),
            outcome("r1", &["done", "absent"]),
            // The helper was killed after this intent: no outcome.
            intent("r2", Verb::Remove, &["1xWZzU-0001uN-1x"], "bob"),
        ],
    );
    let daemon = Daemon::start(dir.path());
    let db = daemon.db.clone();
    let rows = wait_until(&db, "the three rows", &daemon, |rows| rows.len() == 3);
    /// Request, message, actor, action, outcome, confirmed.
    type Seen<'a> = (&'a str, Option<&'a str>, &'a str, &'a str, &'a str, bool);
    let summary: Vec<Seen<'_>> = rows
        .iter()
        .map(|r| {
            (
                r.0.as_str(),
                r.1.as_deref(),
                r.2.as_str(),
                r.3.as_str(),
                r.4.as_str(),
                r.5,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "r1",
                Some("1xWZzS-0001uN-1x"),
                "alice",
                "queue_freeze",
                "done",
                false
            ),
            (
                "r1",
                Some("1xWZzT-0001uN-1x"),
                "alice",
                "queue_freeze",
                "absent",
                false
            ),
            (
                "r2",
                Some("1xWZzU-0001uN-1x"),
                "bob",
                "queue_remove",
                "unknown",
                false
            ),
        ]
    );
    assert_eq!(rows[0].6, "192.0.2.7");

    // Exim's own line confirms the freeze that was done, and only it.
    append_lines(
        &log,
        &["2026-11-26 13:59:00 1xWZzS-0001uN-1x frozen by Debian-exim".to_owned()],
    );
    wait_for_lines(&db, 2, WAIT, Some(&daemon));
    let rows = wait_until(&db, "the confirmation", &daemon, |rows| {
        rows.iter().any(|r| r.5)
    });
    assert_eq!(rows.iter().filter(|r| r.5).count(), 1);
    assert!(rows[0].5);

    // Killed and started again, with a new action meanwhile: nothing twice.
    daemon.kill();
    append(
        &actions,
        &[
            intent("r3", Verb::Thaw, &["1xWZzS-0001uN-1x"], "carol"),
            outcome("r3", &["done"]),
        ],
    );
    let daemon = Daemon::start(dir.path());
    let rows = wait_until(&db, "the fourth row", &daemon, |rows| rows.len() >= 4);
    append_lines(
        &log,
        &["2026-11-26 14:00:00 1xWZzS-0001uN-1x unfrozen by Debian-exim".to_owned()],
    );
    let rows_after = wait_until(&db, "the thaw confirmed", &daemon, |rows| {
        rows.iter().any(|r| r.0 == "r3" && r.5)
    });
    assert_eq!(rows.len(), 4);
    assert_eq!(rows_after.len(), 4);
    let db = daemon.db.clone();
    assert!(daemon.stop().success());
    // The actions log's lines are not Exim's: none stored among them.
    let stored = crate::util::stored_lines(&db);
    assert_eq!(stored.len(), 3, "{stored:?}");

    // exim-pilot audit: newest first, by message, as JSON and as text.
    let db_arg = db.to_str().unwrap();
    let (status, stdout, stderr) = crate::util::outcome(&crate::util::run(&[
        "audit",
        "--db",
        db_arg,
        "--message",
        "1xWZzS-0001uN-1x",
        "--json",
    ]));
    assert_eq!(status, 0, "{stderr}");
    let rows: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let actions: Vec<(&str, &str, bool)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap(),
                r["actor"].as_str().unwrap(),
                r["confirmed_at"].is_string(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("queue_thaw", "carol", true),
            ("queue_freeze", "alice", true)
        ]
    );
    assert_eq!(rows[1]["detail"]["reason"], "looping");
    assert_eq!(
        rows[1]["detail"]["stdout"],
        "Message 1xWZzS-0001uN-1x is now frozen\n"
    );
    let (status, stdout, _) = crate::util::outcome(&crate::util::run(&[
        "audit", "--db", db_arg, "--actor", "bob",
    ]));
    assert_eq!(status, 0);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.contains("web bob queue_remove 1xWZzU-0001uN-1x: unknown from 192.0.2.7 (looping)"),
        "{stdout}"
    );
}

/// The daemon's `exim_queue` and `exim_queue_frozen`, from what the queue
/// helper lists (a stand-in here), and none while the helper is absent.
#[test]
fn the_daemon_exports_exims_queue_size_from_the_helper() {
    let dir = TempDir::new().unwrap();
    let socket = dir.path().join("queue.sock");
    let port = crate::util::free_port();
    std::fs::write(
        dir.path().join("c.toml"),
        format!(
            "{FAST_CONFIG}\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n[queue]\nsocket = \"{}\"\n",
            socket.display()
        ),
    )
    .unwrap();
    append_lines(
        &dir.path().join("mainlog"),
        &crate::util::numbered_lines("q", 0, 1),
    );
    let daemon = Daemon::start(dir.path());
    wait_for_lines(&daemon.db, 1, WAIT, Some(&daemon));
    // Empty while the daemon is not listening yet.
    let scrape = || {
        crate::util::http_get(port, "/metrics")
            .map(|(_, body)| crate::util::parse_exposition(&body))
            .unwrap_or_default()
    };
    let samples = scrape();
    assert!(samples.contains_key("exim_pilot_lag_bytes"), "{samples:?}");
    assert!(!samples.contains_key("exim_queue"), "{samples:?}");
    assert!(daemon.stop().success());

    let seen = crate::util::queue_helper::stand_in_helper(&socket);
    let daemon = Daemon::start(dir.path());
    let deadline = Instant::now() + WAIT;
    loop {
        let samples = scrape();
        if samples.get("exim_queue") == Some(&2.0) {
            assert_eq!(samples.get("exim_queue_frozen"), Some(&1.0));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{samples:?}\n{}",
            daemon.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let request = seen.lock().unwrap()[0].clone();
    assert_eq!(
        (request["verb"].as_str(), request["origin"].as_str()),
        (Some("list"), Some("daemon"))
    );
    // The count is kept for the flow page's chart, timed in the log's
    // clock (local time, as Exim writes it: this test's TZ is the host's).
    let kept = || {
        Connection::open(&daemon.db)
            .ok()?
            .query_row(
                "SELECT messages, frozen, at_ms FROM queue_samples",
                [],
                |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, i64>(2)?,
                    ))
                },
            )
            .ok()
    };
    let deadline = Instant::now() + WAIT;
    let (messages, frozen, at_ms) = loop {
        if let Some(row) = kept() {
            break row;
        }
        assert!(Instant::now() < deadline, "{}", daemon.stderr_text());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!((messages, frozen), (2, 1));
    let local_now = local_now_ms();
    assert!(
        (at_ms - local_now).abs() < 120_000,
        "{at_ms} vs {local_now}"
    );
    assert!(daemon.stop().success());
}

/// Now in the local wall clock read as UTC, from `date` (the test's own
/// reading of the clock Exim writes in).
fn local_now_ms() -> i64 {
    let out = std::process::Command::new("date")
        .arg("+%s %z")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (seconds, zone) = text.trim().split_once(' ').unwrap();
    let seconds: i64 = seconds.parse().unwrap();
    let sign = if zone.starts_with('-') { -1 } else { 1 };
    let hours: i64 = zone[1..3].parse().unwrap();
    let minutes: i64 = zone[3..5].parse().unwrap();
    (seconds + sign * (hours * 3600 + minutes * 60)) * 1000
}
