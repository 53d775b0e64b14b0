//! The binary's command line: configuration checking and exit statuses.

use tempfile::TempDir;

use crate::util::{outcome, run};

#[test]
fn check_config_prints_the_effective_defaults_without_a_file() {
    let dir = TempDir::new().unwrap();
    let empty = dir.path().join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let (status, stdout, _) = outcome(&run(&["check-config", "--config", empty.to_str().unwrap()]));
    assert_eq!(status, 0);
    for expected in [
        "max_open_conns = 10",
        "max_idle_conns = 5",
        "conn_max_lifetime = \"30m\"",
        "busy_timeout = \"5s\"",
        "path = \"/var/lib/exim-pilot/exim-pilot.db\"",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in\n{stdout}"
        );
    }
}

#[test]
fn check_config_output_is_itself_a_valid_configuration() {
    let dir = TempDir::new().unwrap();
    let first = dir.path().join("first.toml");
    std::fs::write(
        &first,
        "[ingest]\nbatch_size = 77\n[health]\nbackoff_max = \"2m\"\n",
    )
    .unwrap();
    let (status, printed, _) =
        outcome(&run(&["check-config", "--config", first.to_str().unwrap()]));
    assert_eq!(status, 0);
    let second = dir.path().join("second.toml");
    std::fs::write(&second, &printed).unwrap();
    let (status, reprinted, _) = outcome(&run(&[
        "check-config",
        "--config",
        second.to_str().unwrap(),
    ]));
    assert_eq!(status, 0);
    let body = |text: &str| text.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(body(&printed), body(&reprinted));
    assert!(printed.contains("batch_size = 77") && printed.contains("backoff_max = \"2m\""));
}

#[test]
fn flags_override_the_file() {
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        "[database]\npath = \"/from/file.db\"\n[log]\npath = \"/from/file.log\"\n",
    )
    .unwrap();
    let (status, stdout, _) = outcome(&run(&[
        "check-config",
        "--config",
        config.to_str().unwrap(),
        "--db",
        "/from/flag.db",
        "--log",
        "/from/flag.log",
    ]));
    assert_eq!(status, 0);
    assert!(stdout.contains("path = \"/from/flag.db\""), "{stdout}");
    assert!(stdout.contains("path = \"/from/flag.log\""), "{stdout}");
}

#[test]
fn bad_configuration_exits_78_naming_file_and_key() {
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        "[database]\nmax_open_conns = 0\n[ingest]\nflush_interval = \"often\"\n",
    )
    .unwrap();
    let (status, _, stderr) = outcome(&run(&[
        "check-config",
        "--config",
        config.to_str().unwrap(),
    ]));
    assert_eq!(status, 78, "{stderr}");
    let file = config.display().to_string();
    assert!(
        stderr.contains(&format!(
            "{file}: [database] max_open_conns: must be at least 1, got 0"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{file}: [ingest] flush_interval: not a duration")),
        "{stderr}"
    );
}

#[test]
fn unknown_keys_and_syntax_errors_exit_78() {
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[logging]\nlevle = \"debug\"\n").unwrap();
    let (status, _, stderr) = outcome(&run(&[
        "check-config",
        "--config",
        config.to_str().unwrap(),
    ]));
    assert_eq!(status, 78);
    assert!(stderr.contains("levle"), "{stderr}");

    std::fs::write(&config, "[logging\n").unwrap();
    let (status, _, _) = outcome(&run(&[
        "check-config",
        "--config",
        config.to_str().unwrap(),
    ]));
    assert_eq!(status, 78);
}

#[test]
fn a_missing_configuration_file_exits_78() {
    let (status, _, stderr) = outcome(&run(&[
        "check-config",
        "--config",
        "/nonexistent/exim-pilot.toml",
    ]));
    assert_eq!(status, 78);
    assert!(stderr.contains("/nonexistent/exim-pilot.toml"), "{stderr}");
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(outcome(&run(&["no-such-command"])).0, 2);
    assert_eq!(outcome(&run(&["ingest"])).0, 2, "ingest needs a file");
    assert_eq!(outcome(&run(&["stats", "--bogus"])).0, 2);
}

#[test]
fn the_packaged_configuration_is_valid_and_documents_every_key() {
    let packaged =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/exim-pilot.toml");
    let (status, stdout, stderr) = outcome(&run(&[
        "check-config",
        "--config",
        packaged.to_str().unwrap(),
    ]));
    assert_eq!(status, 0, "{stderr}");
    let documented = std::fs::read_to_string(&packaged).unwrap();
    // Every key the program prints must be documented (commented out) in the file.
    for line in stdout.lines().filter(|l| l.contains(" = ")) {
        let key = line.split(" = ").next().unwrap();
        assert!(
            documented.contains(&format!("#{key} = ")),
            "{key} is not documented"
        );
    }
    // And the documented defaults are the real ones.
    let uncommented: String = documented
        .lines()
        .map(|l| {
            l.strip_prefix('#')
                .filter(|rest| rest.contains(" = "))
                .unwrap_or(l)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let dir = TempDir::new().unwrap();
    let explicit = dir.path().join("explicit.toml");
    std::fs::write(&explicit, uncommented).unwrap();
    let (status, explicit_out, stderr) = outcome(&run(&[
        "check-config",
        "--config",
        explicit.to_str().unwrap(),
    ]));
    assert_eq!(status, 0, "{stderr}");
    let body = |text: &str| {
        text.lines()
            .skip(1)
            .filter(|l| !l.starts_with("path"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(body(&explicit_out), body(&stdout));
}

#[test]
fn logging_format_and_level_come_from_the_configuration() {
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("c.toml");
    let db = dir.path().join("x.db");
    let sample = crate::util::fixture("sample/mainlog");
    let ingest = |format: &str, level: &str| {
        std::fs::write(
            &config,
            format!("[logging]\nformat = \"{format}\"\nlevel = \"{level}\"\n"),
        )
        .unwrap();
        let _ = std::fs::remove_file(&db);
        outcome(&run(&[
            "ingest",
            "--config",
            config.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
            sample.to_str().unwrap(),
        ]))
    };
    // Creating the database is logged once, at info level.
    let (status, _, stderr) = ingest("json", "info");
    assert_eq!(status, 0, "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("created database"))
        .expect(&stderr);
    assert!(
        line.starts_with('{') && line.contains("\"level\":\"INFO\""),
        "{line}"
    );

    let (_, _, stderr) = ingest("text", "info");
    let line = stderr
        .lines()
        .find(|l| l.contains("created database"))
        .expect(&stderr);
    assert!(!line.starts_with('{') && line.contains("INFO"), "{line}");

    let (_, _, stderr) = ingest("text", "warn");
    assert!(!stderr.contains("created database"), "{stderr}");
}

#[test]
fn parse_reports_kinds_as_json_for_plain_and_gzip_files() {
    let dir = TempDir::new().unwrap();
    let sample = crate::util::fixture("sample/mainlog");
    let content = std::fs::read(&sample).unwrap();
    let gz = dir.path().join("mainlog.1.gz");
    crate::util::write_gzip(&gz, &content);

    let (status, stdout, stderr) = outcome(&run(&[
        "parse",
        "--json",
        sample.to_str().unwrap(),
        gz.to_str().unwrap(),
    ]));
    assert_eq!(status, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let lines = content.iter().filter(|&&b| b == b'\n').count() as u64;
    assert_eq!(report["lines"], 2 * lines);
    assert_eq!(report["unrecognised"], 0);
    let receptions = String::from_utf8_lossy(&content).matches(" <= ").count() as u64;
    assert_eq!(report["kinds"]["reception"], 2 * receptions);
    let total: u64 = report["kinds"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(
        total,
        2 * lines,
        "every line is counted under exactly one kind"
    );
}

#[test]
fn parse_shows_unrecognised_examples_and_counts_an_unterminated_last_line() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("odd.log");
    std::fs::write(&log, "2024-01-01 00:00:00 Start queue run: pid=1\nnonsense here\n2024-01-01 00:00:01 End queue run: pid=1").unwrap();
    let (status, stdout, _) = outcome(&run(&["parse", log.to_str().unwrap()]));
    assert_eq!(status, 0);
    assert!(stdout.starts_with("3 lines"), "{stdout}");
    assert!(
        stdout.contains("unrecognised: 1\n        1  nonsense here"),
        "{stdout}"
    );
}

/// `parse --unrecognised`: the lines not understood, counted by shape (what
/// varies masked), most frequent first, with an example each.
#[test]
fn parse_counts_the_lines_it_cannot_place_by_shape() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("new-exim.log");
    std::fs::write(
        &log,
        "2024-01-01 00:00:00 Start queue run: pid=1\n\
         2024-01-01 00:00:01 quantum flux at 1200 mW for bob@example.org\n\
         2024-01-01 00:00:02 quantum flux at 980 mW for eve@example.net\n\
         2024-01-01 00:00:03 something else entirely\n",
    )
    .unwrap();
    let (status, stdout, stderr) =
        outcome(&run(&["parse", "--unrecognised", log.to_str().unwrap()]));
    assert_eq!(status, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0], "        2  quantum flux at N mW for ADDR",
        "{stdout}"
    );
    assert!(
        lines[1].ends_with("quantum flux at 1200 mW for bob@example.org"),
        "{stdout}"
    );
    assert_eq!(lines[2], "        1  something else entirely", "{stdout}");
    assert_eq!(lines.len(), 4, "{stdout}");
    let (_, stdout, _) = outcome(&run(&["parse", "--json", log.to_str().unwrap()]));
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["unrecognised_shapes"][0]["lines"], 2);
}

#[test]
fn a_missing_input_file_is_a_usage_error_naming_it() {
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("x.db");
    let db = db.to_str().unwrap();
    for args in [
        vec!["parse", "/nonexistent/mainlog"],
        vec!["ingest", "--db", db, "/nonexistent/mainlog"],
    ] {
        let (status, _, stderr) = outcome(&run(&args));
        assert_eq!(status, 2, "{args:?}: {stderr}");
        assert!(
            stderr.contains("/nonexistent/mainlog: no such file"),
            "{stderr}"
        );
    }
}

/// Runs the binary with stdout or stderr a pipe nobody reads (its read end
/// closed before the start): the command ends without a panic or abort.
fn run_with_closed_pipe(args: &[&str], on_stderr: bool) -> std::process::ExitStatus {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut command = std::process::Command::new(crate::util::binary());
    command
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM");
    if on_stderr {
        command.stdout(std::process::Stdio::null()).stderr(writer);
    } else {
        command.stdout(writer).stderr(std::process::Stdio::null());
    }
    command.status().unwrap()
}

/// Every printing command exits quietly on a closed pipe: status 0 for
/// output cut short, and its usual status on stderr, never 134 (abort).
#[test]
fn printing_commands_end_quietly_when_stdout_or_stderr_is_a_closed_pipe() {
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("x.db");
    let db = db.to_str().unwrap();
    let sample = crate::util::fixture("sample/mainlog");
    let sample = sample.to_str().unwrap();
    assert_eq!(outcome(&run(&["ingest", "--db", db, sample])).0, 0);
    let commands: [&[&str]; 10] = [
        &["stats", "--db", db],
        &["stats", "--json", "--db", db],
        &["trace", "--db", db, "127.0.0.1"],
        &["stuck", "--db", db, "--older-than", "0s"],
        &["parse", sample],
        &["parse", "--show", sample],
        &["parse", "--json", sample],
        &["check-config", "--db", db],
        &["prune", "--db", db],
        &["ingest", "--db", db, sample],
    ];
    for args in commands {
        let status = run_with_closed_pipe(args, false);
        assert_eq!(
            status.code(),
            Some(0),
            "{args:?} with stdout closed: {status:?}"
        );
        let status = run_with_closed_pipe(args, true);
        assert_eq!(
            status.code(),
            Some(0),
            "{args:?} with stderr closed: {status:?}"
        );
    }
    // An error to report, with nowhere to report it: its status, no abort.
    let status = run_with_closed_pipe(&["trace", "--db", db, "nobody@nowhere.invalid"], true);
    assert_eq!(status.code(), Some(2), "{status:?}");
}

/// Files at `--db` that exim-pilot must not use: each command refuses with
/// status 78 and one line naming the file, and leaves the file as it was.
#[test]
fn a_database_of_random_bytes_another_application_or_a_newer_schema_is_refused() {
    let dir = TempDir::new().unwrap();
    let sample = crate::util::fixture("sample/mainlog");
    let sample = sample.to_str().unwrap();
    let random = dir.path().join("random.db");
    std::fs::write(
        &random,
        (0..8192u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let other = dir.path().join("other.db");
    let conn = deadpool_sqlite::rusqlite::Connection::open(&other).unwrap();
    conn.execute_batch("CREATE TABLE messages (x); INSERT INTO messages VALUES (1);")
        .unwrap();
    drop(conn);
    let newer = dir.path().join("newer.db");
    let conn = deadpool_sqlite::rusqlite::Connection::open(&newer).unwrap();
    conn.execute_batch("PRAGMA user_version = 99; CREATE TABLE future (x);")
        .unwrap();
    drop(conn);
    let cases = [
        (&random, "not a database"),
        (&other, "belongs to another application"),
        (&newer, "written by a newer exim-pilot"),
    ];
    for (db, reason) in cases {
        let before = std::fs::read(db).unwrap();
        let db_text = db.to_str().unwrap();
        for args in [
            vec!["ingest", "--db", db_text, sample],
            vec!["stats", "--db", db_text],
            vec!["trace", "--db", db_text, "x@example.com"],
            vec!["prune", "--db", db_text],
        ] {
            let (status, _, stderr) = outcome(&run(&args));
            assert_eq!(status, 78, "{args:?}: {stderr}");
            assert!(
                stderr.contains(reason) && stderr.contains(db_text),
                "{args:?}: {stderr}"
            );
            assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
            assert!(!stderr.contains("upgrade it"), "{args:?}: {stderr}");
        }
        assert_eq!(
            std::fs::read(db).unwrap(),
            before,
            "{} was changed",
            db.display()
        );
    }
}

/// A directory at `--db` is a configuration error (78), not a temporary
/// one that systemd would restart in a loop; an empty file is "no data".
#[test]
fn a_directory_or_an_empty_file_as_the_database() {
    let dir = TempDir::new().unwrap();
    let (status, _, stderr) = outcome(&run(&["stats", "--db", dir.path().to_str().unwrap()]));
    assert_eq!(status, 78, "{stderr}");
    assert!(
        stderr.contains("--db: must name the database file, not a directory"),
        "{stderr}"
    );
    let log = dir.path().join("mainlog");
    std::fs::write(&log, "2024-01-01 00:00:00 x\n").unwrap();
    let (status, _, stderr) = outcome(&run(&[
        "run",
        "--log",
        log.to_str().unwrap(),
        "--db",
        dir.path().to_str().unwrap(),
    ]));
    assert_eq!(status, 78, "{stderr}");
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, "").unwrap();
    let (status, _, stderr) = outcome(&run(&["stats", "--db", empty.to_str().unwrap()]));
    assert_eq!(status, 2, "{stderr}");
    assert!(stderr.contains("holds no exim-pilot data yet"), "{stderr}");
}

/// A configuration file that cannot be read: the OS's reason once, not
/// twice.
#[test]
fn an_unreadable_configuration_reports_the_os_error_once() {
    let dir = TempDir::new().unwrap();
    let (status, _, stderr) = outcome(&run(&[
        "check-config",
        "--config",
        dir.path().to_str().unwrap(),
    ]));
    assert_eq!(status, 78, "{stderr}");
    assert_eq!(stderr.matches("os error").count(), 1, "{stderr}");
}

/// `serve --hash-password` reads no configuration: its hashes go into one
/// that may not load until they are there (actions on, users not set yet).
#[test]
fn a_password_is_hashed_whatever_the_configuration_says() {
    use std::io::Write as _;
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "[queue]\nactions = true\n").unwrap();
    let (status, _, stderr) = outcome(&run(&[
        "check-config",
        "--config",
        config.to_str().unwrap(),
    ]));
    assert_eq!(status, 78, "the configuration is refused: {stderr}");
    let mut child = std::process::Command::new(crate::util::binary())
        .args(["serve", "--hash-password", "--config"])
        .arg(&config)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "a secret").unwrap();
    let output = child.wait_with_output().unwrap();
    let (status, stdout, stderr) = outcome(&output);
    assert_eq!(status, 0, "{stderr}");
    assert!(stdout.starts_with("$argon2id$"), "{stdout}");
}
