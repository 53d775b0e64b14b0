//! `exim-pilot run` and its signals: reloads (good, bad, refused), stops,
//! signals without a meaning, and what systemd is told.

use std::time::Duration;

use tempfile::TempDir;

use crate::util::{Daemon, append_lines, assert_exactly, numbered_lines, wait_for_lines};

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn sighup_applies_a_valid_configuration_and_keeps_running_on_an_invalid_one() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    append_lines(&log, &numbered_lines("a", 0, 5));
    let mut daemon = Daemon::start(dir.path());
    wait_for_lines(&daemon.db, 5, WAIT, Some(&daemon));

    std::fs::write(&daemon.config, "[ingest]\nbatch_size = 0\n").unwrap();
    daemon.signal("HUP");
    // The reload's outcome is logged once it is decided: wait for that,
    // however long a reload takes.
    daemon.wait_for_log("configuration reload failed");
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
    daemon.wait_for_log("configuration reloaded");
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
    let (socket_path, socket) = notify_socket(dir.path());
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
    crate::util::wait_until_read_to_end(&first, &log, &daemon);
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
    // Still reading: the lines after the refused reloads are stored.
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
    let (socket_path, socket) = notify_socket(dir.path());
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

/// A socket standing in for systemd's `NOTIFY_SOCKET` in `dir`, reads
/// failing after 10 s.
fn notify_socket(dir: &std::path::Path) -> (std::path::PathBuf, std::os::unix::net::UnixDatagram) {
    let path = dir.join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    (path, socket)
}
