//! `exim-pilot run` as a real process: rotation in every form, crashes,
//! partial lines, signals and systemd notifications. The oracle is always
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
    std::thread::sleep(Duration::from_millis(300));
    assert!(daemon.stop().success());
    assert_exactly(&db, &expected);
}

#[test]
fn sighup_applies_a_valid_configuration_and_keeps_running_on_an_invalid_one() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    append_lines(&log, &numbered_lines("a", 0, 5));
    let mut daemon = Daemon::start(dir.path());
    wait_for_lines(&daemon.db, 5, WAIT, Some(&daemon));

    std::fs::write(&daemon.config, "[ingest]\nbatch_size = 0\n").unwrap();
    daemon.signal("HUP");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        daemon.running(),
        "an invalid configuration does not stop the daemon"
    );
    append_lines(&log, &numbered_lines("a", 5, 5));
    wait_for_lines(&daemon.db, 10, WAIT, Some(&daemon));
    let text = daemon.stderr_text();
    assert!(
        text.contains("configuration reload failed") && text.contains("[ingest] batch_size"),
        "{text}"
    );

    // A valid one: the new level applies.
    let mut config = crate::util::FAST_CONFIG.replace("level = \"info\"", "level = \"debug\"");
    config.push('\n');
    std::fs::write(&daemon.config, config).unwrap();
    daemon.signal("HUP");
    std::thread::sleep(Duration::from_millis(500));
    append_lines(&log, &numbered_lines("a", 10, 5));
    wait_for_lines(&daemon.db, 15, WAIT, Some(&daemon));
    let db = daemon.db.clone();
    let text = daemon.stderr_text();
    assert!(daemon.stop().success());
    assert!(text.contains("configuration reloaded"), "{text}");
    assert!(text.contains("DEBUG"), "the new level applies: {text}");
    assert_exactly(&db, &numbered_lines("a", 0, 15));
    let actions = crate::util::audit_actions(&db);
    let reloads: Vec<&str> = actions
        .iter()
        .map(String::as_str)
        .filter(|a| a.starts_with("config_"))
        .collect();
    assert_eq!(
        reloads,
        ["config_rejected", "config_reloaded"],
        "{actions:?}"
    );
}

#[test]
fn sighup_switches_to_a_new_log_path_from_the_configuration() {
    let dir = TempDir::new().unwrap();
    let first = dir.path().join("first.log");
    let second = dir.path().join("second.log");
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[log]\npath = {:?}\n{}",
            first.display().to_string(),
            crate::util::FAST_CONFIG
        ),
    )
    .unwrap();
    append_lines(&first, &numbered_lines("one", 0, 5));
    append_lines(&second, &numbered_lines("two", 0, 5));
    let db = dir.path().join("x.db");
    // Without --log, so the file decides the path.
    let daemon = Daemon::launch(dir.path(), None, &db, &config, &[], &[]);
    wait_for_lines(&db, 5, WAIT, Some(&daemon));
    std::fs::write(
        &config,
        format!(
            "[log]\npath = {:?}\n{}",
            second.display().to_string(),
            crate::util::FAST_CONFIG
        ),
    )
    .unwrap();
    daemon.signal("HUP");
    wait_for_lines(&db, 10, WAIT, Some(&daemon));
    assert!(daemon.stop().success());
    let mut expected = numbered_lines("one", 0, 5);
    expected.extend(numbered_lines("two", 0, 5));
    assert_exactly(&db, &expected);
}

#[test]
fn sigterm_drains_and_exits_zero_quickly() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    let expected = numbered_lines("a", 0, 20_000);
    append_lines(&log, &expected);
    let mut daemon = Daemon::start(dir.path());
    wait_for_lines(&daemon.db, 1, WAIT, Some(&daemon));
    daemon.signal("TERM");
    let status = daemon.wait(Duration::from_secs(5));
    assert!(status.success(), "{}", daemon.stderr_text());
    // Whatever was committed is a prefix of the file, in order, once.
    let stored = crate::util::stored_lines(&daemon.db);
    let stored: Vec<String> = stored
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    assert_eq!(stored[..], expected[..stored.len()]);
}

#[test]
fn sd_notify_ready_reloading_watchdog_and_stopping() {
    let dir = TempDir::new().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    append_lines(&dir.path().join("mainlog"), &numbered_lines("a", 0, 3));
    let daemon = Daemon::start_with(
        dir.path(),
        &[
            ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let mut received: Vec<String> = Vec::new();
    // Reads messages until one after position `from` contains `needle`;
    // returns its position.
    let receive_after = |from: usize, needle: &str, received: &mut Vec<String>| -> usize {
        let mut buffer = [0u8; 4096];
        loop {
            if let Some(at) = received.iter().skip(from).position(|m| m.contains(needle)) {
                return from + at;
            }
            let n = socket
                .recv(&mut buffer)
                .unwrap_or_else(|_| panic!("no {needle} in {received:?}"));
            received.push(String::from_utf8_lossy(&buffer[..n]).into_owned());
        }
    };
    let ready = receive_after(0, "READY=1", &mut received);
    wait_for_lines(&daemon.db, 3, WAIT, Some(&daemon));
    receive_after(ready, "WATCHDOG=1", &mut received);
    daemon.signal("HUP");
    let reloading = receive_after(ready + 1, "RELOADING=1", &mut received);
    assert!(
        received[reloading].contains("MONOTONIC_USEC="),
        "{}",
        received[reloading]
    );
    receive_after(reloading + 1, "READY=1", &mut received);
    assert!(
        received.iter().any(|m| m.contains("STATUS=tailing")),
        "{received:?}"
    );
    daemon.signal("TERM");
    receive_after(0, "STOPPING=1", &mut received);
}

/// Rewrites the log the way `sed -i` does (a new file renamed over it),
/// replacing `from` with `to` on every line but the first, so the first
/// line (the identity) stays and the rest changes.
fn redact(log: &std::path::Path, from: &str, to: &str) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for line in lines.iter_mut().skip(1) {
        *line = line.replace(from, to);
    }
    let tmp = log.with_extension("sed");
    std::fs::write(&tmp, lines.join("\n") + "\n").unwrap();
    std::fs::rename(&tmp, log).unwrap();
    lines
}

/// Overwrites the log in place (same inode, as an editor saving it does).
fn rewrite_in_place(log: &std::path::Path, lines: &[String]) {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(log)
        .unwrap();
    file.write_all((lines.join("\n") + "\n").as_bytes())
        .unwrap();
}

/// Each rewrite of a live log with its first line unchanged is a generation
/// of its own: after two rewrites, every line appended is stored once.
#[test]
fn a_log_rewritten_twice_with_its_first_line_unchanged_loses_no_new_line() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    let mut expected = Vec::new();
    append_expected(&log, &mut expected, "a", 0, 10);
    let daemon = Daemon::start(dir.path());
    wait_for_lines(&daemon.db, 10, WAIT, Some(&daemon));

    // sed -i: the whole redacted file is a new generation.
    let first = redact(&log, "pid=a", "pid=r");
    expected.extend(first);
    wait_for_lines(&daemon.db, expected.len(), WAIT, Some(&daemon));
    append_expected(&log, &mut expected, "b", 0, 5);
    wait_for_lines(&daemon.db, expected.len(), WAIT, Some(&daemon));

    // An editor's save in place: again a generation of its own.
    let text = std::fs::read_to_string(&log).unwrap();
    let second: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                l.to_owned()
            } else {
                l.replace("pid=", "pid=s")
            }
        })
        .collect();
    rewrite_in_place(&log, &second);
    expected.extend(second);
    wait_for_lines(&daemon.db, expected.len(), WAIT, Some(&daemon));
    append_expected(&log, &mut expected, "c", 0, 50);
    wait_for_lines(&daemon.db, expected.len(), WAIT, Some(&daemon));
    std::thread::sleep(Duration::from_millis(300));
    assert!(daemon.stop().success());
    assert_exactly(&dir.path().join("x.db"), &expected);
}

/// The same with the daemon stopped across each rewrite: no line lost, and
/// no gap claiming the generation is gone.
#[test]
fn a_log_rewritten_twice_while_stopped_loses_no_line_and_records_no_gap() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    let db = dir.path().join("x.db");
    let mut expected = Vec::new();
    append_expected(&log, &mut expected, "a", 0, 10);
    let daemon = Daemon::start(dir.path());
    wait_for_lines(&db, expected.len(), WAIT, Some(&daemon));
    assert!(daemon.stop().success());

    expected.extend(redact(&log, "pid=a", "pid=r"));
    append_expected(&log, &mut expected, "b", 0, 5);
    let daemon = Daemon::start(dir.path());
    wait_for_lines(&db, expected.len(), WAIT, Some(&daemon));
    assert!(daemon.stop().success());

    expected.extend(redact(&log, "pid=", "pid=s"));
    let daemon = Daemon::start(dir.path());
    wait_for_lines(&db, expected.len(), WAIT, Some(&daemon));
    append_expected(&log, &mut expected, "c", 0, 50);
    wait_for_lines(&db, expected.len(), WAIT, Some(&daemon));
    std::thread::sleep(Duration::from_millis(300));
    assert!(daemon.stop().success());
    assert_exactly(&db, &expected);
    assert!(
        !crate::util::audit_actions(&db).contains(&"gap".to_owned()),
        "a gap was recorded"
    );
}

/// `ingest` of a file rewritten twice stores each rewrite, and the lines
/// appended after it, instead of calling them "already stored".
#[test]
fn ingest_of_a_file_rewritten_twice_stores_every_new_line() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    let db = dir.path().join("x.db");
    let ingest = || {
        let output = crate::util::run(&[
            "ingest",
            "--db",
            db.to_str().unwrap(),
            log.to_str().unwrap(),
        ]);
        assert!(
            output.status.success(),
            "{:?}",
            crate::util::outcome(&output)
        );
    };
    let mut expected = Vec::new();
    append_expected(&log, &mut expected, "a", 0, 10);
    ingest();
    expected.extend(redact(&log, "pid=a", "pid=r"));
    ingest();
    expected.extend(redact(&log, "pid=", "pid=s"));
    append_expected(&log, &mut expected, "c", 0, 50);
    ingest();
    ingest();
    assert_exactly(&db, &expected);
}

/// A reload that changes `[database] path` is refused: the running
/// database keeps every line, and the other file gets none.
#[test]
fn sighup_refuses_to_change_the_database_path() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    let config = dir.path().join("c.toml");
    let (first, second) = (dir.path().join("first.db"), dir.path().join("second.db"));
    let write_config = |db: &std::path::Path| {
        let text = format!(
            "{}\n[log]\npath = {:?}\n",
            crate::util::FAST_CONFIG.replace(
                "[database]\n",
                &format!("[database]\npath = {:?}\n", db.display().to_string())
            ),
            log.display().to_string()
        );
        std::fs::write(&config, text).unwrap();
    };
    write_config(&first);
    append_lines(&log, &numbered_lines("a", 0, 5));
    let stderr = dir.path().join("stderr.log");
    let child = std::process::Command::new(crate::util::binary())
        .arg("run")
        .arg("--config")
        .arg(&config)
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .env_remove("NOTIFY_SOCKET")
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let mut daemon = Daemon {
        child,
        db: first.clone(),
        config: config.clone(),
        stderr,
    };
    wait_for_lines(&first, 5, WAIT, Some(&daemon));
    write_config(&second);
    daemon.signal("HUP");
    let deadline = std::time::Instant::now() + WAIT;
    while !daemon
        .stderr_text()
        .contains("restart exim-pilot to change [database] path")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            daemon.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(daemon.running());
    append_lines(&log, &numbered_lines("a", 5, 5));
    wait_for_lines(&first, 10, WAIT, Some(&daemon));
    std::thread::sleep(Duration::from_millis(300));
    assert!(daemon.stop().success());
    assert_exactly(&first, &numbered_lines("a", 0, 10));
    assert!(!second.exists(), "the other database was created");
    assert!(crate::util::audit_actions(&first).contains(&"config_rejected".to_owned()));
}

/// The signals a process catches, from `/proc` (`SigCgt`, a bit mask).
fn caught_signals(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let mask = status.lines().find_map(|l| l.strip_prefix("SigCgt:"))?;
            u64::from_str_radix(mask.trim(), 16).ok()
        })
        .unwrap_or(0)
}

/// Each signal has a meaning from the daemon's first moment: a SIGTERM
/// during start-up drains and exits 0; SIGUSR1, SIGUSR2 and SIGALRM are
/// logged and ignored; SIGQUIT stops like SIGTERM.
#[test]
fn every_signal_is_handled_from_the_start() {
    let bit = |signal: i32| 1u64 << (signal - 1);
    let all = [
        libc::SIGHUP,
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGALRM,
    ]
    .into_iter()
    .fold(0, |mask, signal| mask | bit(signal));

    // SIGTERM as soon as the handlers are in place, long before ready.
    let dir = TempDir::new().unwrap();
    append_lines(&dir.path().join("mainlog"), &numbered_lines("a", 0, 3));
    let mut daemon = Daemon::start(dir.path());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while caught_signals(daemon.child.id()) & all != all {
        assert!(
            std::time::Instant::now() < deadline,
            "handlers not installed"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
    daemon.signal("TERM");
    let status = daemon.wait(Duration::from_secs(10));
    assert!(status.success(), "{status:?}: {}", daemon.stderr_text());
    assert!(
        daemon.stderr_text().contains("received SIGTERM"),
        "{}",
        daemon.stderr_text()
    );

    // Running: the three without meaning change nothing; SIGQUIT stops.
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    append_lines(&log, &numbered_lines("b", 0, 3));
    let mut daemon = Daemon::start(dir.path());
    wait_for_lines(&daemon.db, 3, WAIT, Some(&daemon));
    for name in ["USR1", "USR2", "ALRM"] {
        daemon.signal(name);
    }
    append_lines(&log, &numbered_lines("b", 3, 3));
    wait_for_lines(&daemon.db, 6, WAIT, Some(&daemon));
    assert!(daemon.running());
    daemon.signal("QUIT");
    let status = daemon.wait(Duration::from_secs(10));
    let text = daemon.stderr_text();
    assert!(status.success(), "{status:?}: {text}");
    for name in ["SIGUSR1", "SIGUSR2", "SIGALRM"] {
        assert!(
            text.contains(&format!("received {name}; it has no meaning")),
            "{text}"
        );
    }
    assert!(text.contains("received SIGQUIT; stopping"), "{text}");
    assert_exactly(&daemon.db, &numbered_lines("b", 0, 6));
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
    std::thread::sleep(Duration::from_millis(300));
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
    std::thread::sleep(Duration::from_millis(200));
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

/// A reload with a duration past its range (which used to abort the
/// daemon) is refused naming the key; the daemon keeps running.
#[test]
fn sighup_with_an_out_of_range_duration_keeps_the_running_configuration() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    append_lines(&log, &numbered_lines("a", 0, 3));
    let mut daemon = Daemon::start(dir.path());
    wait_for_lines(&daemon.db, 3, WAIT, Some(&daemon));
    let cases = [
        (
            "busy_timeout = \"100ms\"",
            "busy_timeout = \"25days\"",
            "[database] busy_timeout",
        ),
        (
            "pool_wait_timeout = \"2s\"",
            "pool_wait_timeout = \"1000years\"",
            "[database] pool_wait_timeout",
        ),
        (
            "flush_interval = \"20ms\"",
            "flush_interval = \"584542046090years\"",
            "[ingest] flush_interval",
        ),
    ];
    for (good, bad, key) in cases {
        std::fs::write(&daemon.config, crate::util::FAST_CONFIG.replace(good, bad)).unwrap();
        daemon.signal("HUP");
        let deadline = std::time::Instant::now() + WAIT;
        while !daemon
            .stderr_text()
            .contains("keeping the running configuration: ")
            || !daemon.stderr_text().contains(key)
        {
            assert!(
                std::time::Instant::now() < deadline,
                "{key}: {}",
                daemon.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(daemon.running(), "{}", daemon.stderr_text());
    append_lines(&log, &numbered_lines("a", 3, 3));
    wait_for_lines(&daemon.db, 6, WAIT, Some(&daemon));
    assert!(daemon.stop().success());
}

/// After a reload switches `[log] path`, systemd's status line names the
/// new path, not the one the daemon started with.
#[test]
fn the_status_line_follows_a_switch_of_the_log_path() {
    let dir = TempDir::new().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (first, second) = (dir.path().join("first.log"), dir.path().join("second.log"));
    let config = dir.path().join("c.toml");
    let write_config = |log: &std::path::Path| {
        let text = format!(
            "[log]\npath = {:?}\n{}",
            log.display().to_string(),
            crate::util::FAST_CONFIG
        );
        std::fs::write(&config, text).unwrap();
    };
    write_config(&first);
    append_lines(&first, &numbered_lines("one", 0, 3));
    append_lines(&second, &numbered_lines("two", 0, 3));
    let db = dir.path().join("x.db");
    let daemon = Daemon::launch(
        dir.path(),
        None,
        &db,
        &config,
        &[("NOTIFY_SOCKET", socket_path.to_str().unwrap())],
        &[],
    );
    wait_for_lines(&db, 3, WAIT, Some(&daemon));
    write_config(&second);
    daemon.signal("HUP");
    wait_for_lines(&db, 6, WAIT, Some(&daemon));
    append_lines(&second, &numbered_lines("two", 3, 3));
    let wanted = format!("STATUS=tailing {}: ", second.display());
    let mut buffer = [0u8; 4096];
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let n = socket.recv(&mut buffer).expect("a status message");
        if String::from_utf8_lossy(&buffer[..n]).contains(&wanted) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no {wanted:?}");
    }
    assert!(daemon.stop().success());
}
