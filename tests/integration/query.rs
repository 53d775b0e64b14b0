//! `stats`, `trace` and `stuck` on the real Exim sample, in both output
//! forms, and against eximstats' own numbers for the same log.

use tempfile::TempDir;

use crate::util::{fixture, outcome, run};

/// A database holding the bundled sample, and its path as text.
fn sample_db() -> (TempDir, String) {
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("x.db").display().to_string();
    let (status, _, stderr) = outcome(&run(&[
        "ingest",
        "--db",
        &db,
        fixture("sample/mainlog").to_str().unwrap(),
    ]));
    assert_eq!(status, 0, "{stderr}");
    (dir, db)
}

fn json(args: &[&str]) -> serde_json::Value {
    let (status, stdout, stderr) = outcome(&run(args));
    assert_eq!(status, 0, "{args:?}: {stderr}");
    serde_json::from_str(&stdout).unwrap()
}

#[test]
fn stats_json_counts_every_event_of_the_sample() {
    let (_dir, db) = sample_db();
    let stats = json(&["stats", "--db", &db, "--json"]);
    for (key, expected) in [
        ("lines", 111),
        ("received", 10),
        ("delivered", 10),
        ("deferred", 8),
        ("bounced", 2),
        ("completed", 8),
        ("rejected", 3),
        ("frozen", 1),
        ("unrecognised", 0),
    ] {
        assert_eq!(stats[key], expected, "{key}");
    }
    assert_eq!(stats["totals"]["received_volume"], 5816);
    assert_eq!(stats["totals"]["delivered_volume"], 3953);
    assert_eq!(stats["message_status"]["completed"], 8);
    assert_eq!(stats["message_status"]["frozen"], 1);
    assert_eq!(stats["message_status"]["rejected"], 1);
    assert_eq!(stats["by_transport"][0]["key"], "local_maildir");
    assert_eq!(stats["received_per_hour"][13], 10);
}

#[test]
fn stats_match_eximstats_on_the_same_log() {
    let Some(expected) = crate::util::eximstats(&fixture("sample/mainlog")) else {
        return;
    };
    let (_dir, db) = sample_db();
    let stats = json(&["stats", "--db", &db, "--json"]);
    let totals = &stats["totals"];
    assert_eq!(totals["received_volume"], expected.received_volume);
    assert_eq!(stats["received"], expected.received);
    assert_eq!(totals["delivered_volume"], expected.delivered_volume);
    assert_eq!(totals["delivered_messages"], expected.delivered_messages);
    assert_eq!(stats["delivered"], expected.delivered_addresses);
    assert_eq!(stats["rejected"], expected.rejects);
    assert_eq!(totals["rejected_hosts"], expected.reject_hosts);
}

#[test]
fn stats_human_report_has_the_eximstats_sections() {
    let (_dir, db) = sample_db();
    let (status, stdout, _) = outcome(&run(&["stats", "--db", &db]));
    assert_eq!(status, 0);
    for section in [
        "Grand total summary",
        "Deliveries by transport",
        "Messages received per hour",
        "Top senders",
        "Top sending hosts",
        "Top recipient domains",
        "Rejections by reason",
        "Rejections by IP",
        "Deferral and failure errors",
        "Time spent on the queue",
        "Messages by status",
    ] {
        assert!(stdout.contains(section), "missing {section}:\n{stdout}");
    }
    assert!(
        stdout.contains("Received           5816        10"),
        "{stdout}"
    );
}

#[test]
fn stats_window_limits_what_is_counted() {
    let (_dir, db) = sample_db();
    let before = json(&[
        "stats",
        "--db",
        &db,
        "--json",
        "--until",
        "2026-11-26 13:58:22",
    ]);
    assert_eq!(before["received"], 2);
    let none = json(&["stats", "--db", &db, "--json", "--since", "2027-01-01"]);
    assert_eq!(none["lines"], 0);
    let last = json(&["stats", "--db", &db, "--json", "--since", "10s"]);
    assert_eq!(last["received"], 0);
    assert!(last["lines"].as_u64().unwrap() > 0);
}

#[test]
fn trace_by_id_address_and_ip_with_related_messages() {
    let (_dir, db) = sample_db();
    let (status, stdout, _) = outcome(&run(&["trace", "--db", &db, "1xWZzT-0001uj-1r"]));
    assert_eq!(status, 0);
    assert!(
        stdout.starts_with("== 1xWZzT-0001uj-1r completed from d@outside.example"),
        "{stdout}"
    );
    assert!(
        stdout.contains("bounced    nobody@remote.example"),
        "{stdout}"
    );
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.starts_with("2026-") && l.contains(" 1xWZzT-0001uj-1r "))
            .count(),
        3,
        "its three lines:\n{stdout}"
    );
    assert!(
        !stdout.contains("1xWZzT-0001un-20"),
        "the bounce only with --related"
    );

    let related = json(&[
        "trace",
        "--db",
        &db,
        "--related",
        "--json",
        "1xWZzT-0001uj-1r",
    ]);
    let ids: Vec<&str> = related
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["1xWZzT-0001uj-1r", "1xWZzT-0001un-20"]);
    assert_eq!(related[1]["parent"], "1xWZzT-0001uj-1r");
    assert_eq!(related[1]["status"], "frozen");

    let by_address = json(&["trace", "--db", &db, "--json", "alice@test.example"]);
    assert_eq!(
        by_address.as_array().unwrap().len(),
        3,
        "three messages went to alice"
    );
    let by_ip = json(&["trace", "--db", &db, "--json", "::1"]);
    assert_eq!(by_ip[0]["id"], "1xWZzU-0001v5-2o");
    assert_eq!(by_ip[0]["recipients"][0]["status"], "delivered");
    assert_eq!(by_ip[0]["recipients"][0]["final_address"], "bob");
}

/// An attempt's confirmation is read back from its line (the row no
/// longer holds it): each `=>`/`->` gets its own line's `C=`, unescaped.
#[test]
fn trace_shows_each_attempts_confirmation_from_its_line() {
    let (_dir, db) = sample_db();
    let traced = json(&["trace", "--db", &db, "--json", "1xWZzT-0001ud-14"]);
    let attempts = traced[0]["attempts"].as_array().unwrap();
    let confirmations: Vec<(&str, &str)> = attempts
        .iter()
        .map(|a| {
            (
                a["address"].as_str().unwrap(),
                a["confirmation"].as_str().unwrap_or("(none)"),
            )
        })
        .collect();
    let answer = "250- 445 byte chunk, total 445\\n250 OK id=1xWZzT-0001ug-18";
    assert_eq!(
        confirmations,
        [
            ("dave@remote.example", answer),
            ("erin@remote.example", answer)
        ],
        "{traced}"
    );
}

#[test]
fn stuck_lists_the_greylisted_recipient_and_the_frozen_bounce() {
    let (_dir, db) = sample_db();
    let report = json(&["stuck", "--db", &db, "--json", "--older-than", "10s"]);
    let rows = report["waiting"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["address"], "greyuser@remote.example");
    assert_eq!(rows[0]["status"], "deferred");
    assert!(
        rows[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("451 4.7.1")
    );
    // The bounce Exim froze has no waiting recipient (its one bounced),
    // and is listed all the same, with Exim's reason and since when.
    let frozen = report["frozen"].as_array().unwrap();
    assert_eq!(frozen.len(), 1, "{report}");
    assert_eq!(frozen[0]["message"], "1xWZzT-0001un-20");
    assert_eq!(frozen[0]["reason"], "(delivery error message)");
    assert_eq!(frozen[0]["frozen_at"], "2026-11-26 13:58:23");
    assert_eq!(frozen[0]["waiting_recipients"], 0);
    let none = json(&["stuck", "--db", &db, "--json", "--older-than", "1d"]);
    assert_eq!(none["waiting"].as_array().unwrap().len(), 0);
    assert_eq!(
        none["frozen"].as_array().unwrap().len(),
        1,
        "frozen whatever the age"
    );
    let (_, text, _) = outcome(&run(&["stuck", "--db", &db, "--older-than", "1d"]));
    assert!(
        text.contains("1xWZzT-0001un-20  frozen 2026-11-26 13:58:23: (delivery error message)"),
        "{text}"
    );
    // A message frozen before the writer kept why (migration 0018) is
    // read back from its lines, to the same answer.
    let kept = json(&["stuck", "--db", &db, "--json", "--older-than", "10s"]);
    deadpool_sqlite::rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("UPDATE messages SET frozen_ms = NULL, frozen_reason_id = NULL")
        .unwrap();
    assert_eq!(
        json(&["stuck", "--db", &db, "--json", "--older-than", "10s"]),
        kept
    );
}

/// The system filter's deferral writes no `==` line: the recipients wait
/// with no attempt, and `stuck` says why from the filter's last line.
#[test]
fn stuck_says_when_the_system_filter_holds_a_message() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    std::fs::write(
        &log,
        "2026-12-07 09:00:00 1xaUT1-0000Em-2M <= alice@example.com H=mail.example.com [192.0.2.1] P=esmtp S=2345\n\
         2026-12-07 09:00:01 1xaUT1-0000Em-2M Delivery deferred by system filter: held for review\n\
         2026-12-07 09:30:01 1xaUT1-0000Em-2M Delivery deferred by system filter: still held for bob@example.net\n\
         2026-12-07 10:00:00 1xaUT2-0000Em-2M <= carol@example.com H=mail.example.com [192.0.2.1] P=esmtp S=100\n\
         2026-12-07 10:00:01 1xaUT2-0000Em-2M == dave@example.net R=dnslookup T=remote_smtp defer (111): Connection refused\n",
    )
    .unwrap();
    let db = dir.path().join("x.db").display().to_string();
    let (status, _, stderr) = outcome(&run(&["ingest", "--db", &db, log.to_str().unwrap()]));
    assert_eq!(status, 0, "{stderr}");
    let report = json(&["stuck", "--db", &db, "--json", "--older-than", "1s"]);
    let rows = report["waiting"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{report}");
    // No line named its recipients: the message is listed all the same.
    let held = &rows[0];
    assert_eq!(held["message"], "1xaUT1-0000Em-2M");
    assert!(held["address"].is_null(), "{held}");
    assert!(held["last_error"].is_null(), "{held}");
    assert_eq!(
        held["held"],
        "Delivery deferred by system filter: still held for bob@example.net"
    );
    // An attempt's error explains the other: no hold read for it.
    assert_eq!(rows[1]["last_error"], "Connection refused");
    assert!(rows[1]["held"].is_null(), "{report}");
    let (_, text, _) = outcome(&run(&["stuck", "--db", &db, "--older-than", "1s"]));
    assert!(
        text.contains(
            "(recipients not logged yet)  held: Delivery deferred by system filter: still held"
        ),
        "{text}"
    );
}

#[test]
fn bad_arguments_get_one_clear_line_and_status_2() {
    let (_dir, db) = sample_db();
    for args in [
        vec!["trace", "--db", &db, "1xWZzT-0001uj-1X"],
        vec!["trace", "--db", &db, "not-an-id"],
        vec!["stats", "--db", &db, "--since", "last tuesday"],
        vec![
            "stats",
            "--db",
            &db,
            "--since",
            "2026-11-27",
            "--until",
            "2026-11-26",
        ],
        vec!["stuck", "--db", &db, "--older-than", "soon"],
        vec!["stats", "--db", "/nonexistent/x.db"],
    ] {
        let (status, stdout, stderr) = outcome(&run(&args));
        assert_eq!(status, 2, "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
    }
}

#[test]
fn queries_work_while_the_daemon_writes() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    std::fs::copy(fixture("sample/mainlog"), &log).unwrap();
    let daemon = crate::util::Daemon::start(dir.path());
    crate::util::wait_for_lines(
        &daemon.db,
        111,
        std::time::Duration::from_secs(30),
        Some(&daemon),
    );
    let db = daemon.db.display().to_string();
    let stats = json(&["stats", "--db", &db, "--json"]);
    assert_eq!(stats["received"], 10);
    assert!(daemon.stop().success());
}

#[test]
#[cfg(feature = "synth")]
fn stats_windows_count_lines_exactly_even_within_a_minute() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    let mut generator = exim_pilot::synth::Generator::new(5);
    let mut content = Vec::new();
    generator.write(4000, &mut content).unwrap();
    std::fs::write(&log, &content).unwrap();
    let db = dir.path().join("x.db").display().to_string();
    let (status, _, stderr) = outcome(&run(&["ingest", "--db", &db, log.to_str().unwrap()]));
    assert_eq!(status, 0, "{stderr}");
    let times: Vec<(i64, &'static str)> = content
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            let entry = exim_pilot::parse::parse_line(line);
            let at = entry.prefix.unwrap().timestamp.local_ms();
            (at, entry.kind().name())
        })
        .collect();
    let first = times[0].0;
    for (since, until) in [
        (first + 17_000, first + 3_600_000 + 41_000),
        (first + 61_000, first + 119_000),
        (first + 5_000, first + 9_000),
        (first, first + 60_000),
    ] {
        let expected = |kinds: &[&str]| {
            times
                .iter()
                .filter(|(at, kind)| (since..=until).contains(at) && kinds.contains(kind))
                .count()
        };
        let stats = json(&[
            "stats",
            "--db",
            &db,
            "--json",
            "--since",
            &exim_pilot::query::format_ms(since),
            "--until",
            &exim_pilot::query::format_ms(until),
        ]);
        let all: Vec<&str> = times.iter().map(|(_, kind)| *kind).collect();
        assert_eq!(stats["lines"], expected(&all), "{since}..{until}");
        assert_eq!(
            stats["delivered"],
            expected(&["delivery", "delivery_more"]),
            "{since}..{until}"
        );
    }
}

/// Addresses match without regard to case, from the same rows.
#[test]
fn trace_matches_addresses_without_regard_to_case() {
    let (_dir, db) = sample_db();
    let lower = json(&["trace", "--json", "--db", &db, "alice@test.example"]);
    let upper = json(&["trace", "--json", "--db", &db, "ALICE@Test.Example"]);
    assert!(!lower.as_array().unwrap().is_empty());
    assert_eq!(lower, upper);
}

/// On an empty database an age counts back from now, not from 1970.
#[test]
fn stats_on_an_empty_database_count_ages_from_now() {
    let dir = TempDir::new().unwrap();
    let empty = dir.path().join("empty.log");
    std::fs::write(&empty, "").unwrap();
    let db = dir.path().join("x.db").display().to_string();
    assert_eq!(
        outcome(&run(&["ingest", "--db", &db, empty.to_str().unwrap()])).0,
        0
    );
    let (status, stdout, stderr) = outcome(&run(&["stats", "--db", &db, "--since", "1d"]));
    assert_eq!(status, 0, "{stderr}");
    assert!(
        !stdout.contains("1969") && !stdout.contains("1970"),
        "{stdout}"
    );
    let (status, _, stderr) = outcome(&run(&["stats", "--db", &db, "--since", "2026-02-30"]));
    assert_eq!(status, 2, "{stderr}");
    assert!(stderr.contains("no such date"), "{stderr}");
}

/// On a terminal, escape sequences a sender put in a log line are shown,
/// not obeyed; through a pipe the line stays byte-exact.
#[test]
fn trace_on_a_terminal_makes_escape_sequences_visible() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    std::fs::write(
        &log,
        "2024-01-01 00:00:00 1aaaaa-000000-00 <= a@example.com H=(x) [192.0.2.1] P=esmtp S=10 T=\"\x1b]0;pwned\x07\x1b[2J\" for b@example.net\n",
    )
    .unwrap();
    let db = dir.path().join("x.db").display().to_string();
    assert_eq!(
        outcome(&run(&["ingest", "--db", &db, log.to_str().unwrap()])).0,
        0
    );
    let command = format!(
        "{} trace --db {db} 1aaaaa-000000-00",
        crate::util::binary().display()
    );
    // script(1) gives the command a pseudo-terminal and copies its output.
    let output = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .output()
        .unwrap();
    let (status, stdout, stderr) = outcome(&output);
    assert_eq!(status, 0, "{stderr}");
    assert!(stdout.contains("\\x1b]0;pwned\\x07\\x1b[2J"), "{stdout:?}");
    assert!(
        !stdout.contains('\x1b') && !stdout.contains('\x07'),
        "{stdout:?}"
    );
    let (_, piped, _) = outcome(&run(&["trace", "--db", &db, "1aaaaa-000000-00"]));
    assert!(piped.contains("T=\"\x1b]0;pwned\x07\x1b[2J\""), "{piped:?}");
}

/// Runs the binary and returns its raw stdout (bytes, not text).
fn raw_stdout(args: &[&str]) -> Vec<u8> {
    let output = run(args);
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// `lines` over everything gives the log back byte for byte, the final
/// line without a newline included; windows, kinds, a regex and a source
/// select what counts made from the file itself say.
#[test]
fn lines_reproduce_the_log_and_filter_like_counts_from_the_file() {
    let dir = TempDir::new().unwrap();
    let sample = std::fs::read(fixture("sample/mainlog")).unwrap();
    let log = dir.path().join("mainlog");
    let mut content = sample.clone();
    // Non-UTF-8 bytes must come back as they were.
    content.extend_from_slice(b"2026-11-26 13:59:00 [1] bytes \xff\xfe kept\n");
    content.extend_from_slice(b"2026-11-26 13:59:01 [1] last line, no newline");
    let sample = content[..content.len() - 45].to_vec();
    std::fs::write(&log, &content).unwrap();
    let db = dir.path().join("x.db").display().to_string();
    let log_text = log.to_str().unwrap();
    assert_eq!(outcome(&run(&["ingest", "--db", &db, log_text])).0, 0);
    // ingest leaves an unterminated last line for a later run (Exim may
    // be writing it): everything before it comes back byte for byte.
    let all = raw_stdout(&["lines", "--db", &db]);
    assert!(
        all == sample,
        "not byte-exact: {} bytes back, {} in the log",
        all.len(),
        sample.len()
    );
    let content = sample;

    // Each line with the time it counts at: its own, or (a continuation)
    // the one before it.
    let text = String::from_utf8_lossy(&content).into_owned();
    let mut at = String::new();
    let timed: Vec<(String, &str)> = text
        .split_inclusive('\n')
        .map(|line| {
            if line.as_bytes().first().is_some_and(u8::is_ascii_digit) {
                at = line[..19].to_owned();
            }
            (at.clone(), line)
        })
        .collect();
    let (since, until) = ("2026-11-26 13:58:30", "2026-11-26 13:58:45");
    let expected: String = timed
        .iter()
        .filter(|(at, _)| at.as_str() >= since && at.as_str() <= until)
        .map(|(_, line)| *line)
        .collect();
    assert!(!expected.is_empty());
    let windowed = raw_stdout(&["lines", "--db", &db, "--since", since, "--until", until]);
    assert!(
        String::from_utf8_lossy(&windowed) == expected,
        "window differs"
    );

    let count = |args: &[&str]| {
        let mut all = vec!["lines", "--db", &db];
        all.extend_from_slice(args);
        String::from_utf8_lossy(&raw_stdout(&all)).lines().count()
    };
    let deliveries = text.lines().filter(|l| l.contains(" => ")).count();
    assert_eq!(count(&["--kind", "delivery"]), deliveries);
    let alice = text.lines().filter(|l| l.contains("alice")).count();
    assert!(alice > 0);
    assert_eq!(count(&["--grep", "al[i]ce"]), alice);
    assert_eq!(count(&["--source", log_text]), text.lines().count());
    assert_eq!(count(&["--source", "/elsewhere/mainlog"]), 0);

    let json = String::from_utf8_lossy(&raw_stdout(&[
        "lines", "--db", &db, "--json", "--grep", "alice",
    ]))
    .into_owned();
    let rows: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), alice);
    for row in &rows {
        let offset = row["offset"].as_u64().unwrap() as usize;
        let line = row["line"].as_str().unwrap();
        assert_eq!(&text[offset..offset + line.len()], line);
        assert_eq!(row["source"], log_text);
        assert!(row["kind"].is_string() && row["time"].is_string());
    }
    assert!(rows.iter().any(|row| row["message_id"].is_string()));

    let (status, _, stderr) = outcome(&run(&["lines", "--db", &db, "--kind", "nonsense"]));
    assert_eq!(status, 2, "{stderr}");
    assert!(stderr.contains("--kind: one of"), "{stderr}");
    let (status, _, stderr) = outcome(&run(&["lines", "--db", &db, "--grep", "("]));
    assert_eq!(status, 2, "{stderr}");
}

/// `trace` takes a Message-ID header and a mail domain too: the header's
/// id finds its message (its subject, like the header, read back from the
/// `<=` line); a domain finds every message from or to it within
/// a window of at most 31 days (the last week by default).
#[test]
fn trace_finds_by_message_id_header_and_by_domain() {
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("x.db");
    crate::util::ingest_into(&db, &fixture("sample/mainlog"));
    let db = db.to_str().unwrap();
    let by_header = json(&["trace", "--db", db, "--json", "20261126135823.007360@vm"]);
    assert_eq!(by_header.as_array().unwrap().len(), 1, "{by_header}");
    assert_eq!(by_header[0]["id"], "1xWZzT-0001uj-1r");
    // Kept as its hash, read back from the `<=` line.
    assert_eq!(
        by_header[0]["header_message_id"],
        "20261126135823.007360@vm"
    );
    // The subject too, from the same line: of a message never delivered
    // (only its `<=` line is read) and of one delivered.
    assert_eq!(by_header[0]["subject"], "will bounce");
    let delivered = json(&["trace", "--db", db, "--json", "1xWZzS-0001uR-2j"]);
    assert_eq!(delivered[0]["subject"], "team note", "{delivered}");
    assert!(
        delivered[0]["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["outcome"] == "delivered"),
        "{delivered}"
    );
    let bracketed = json(&["trace", "--db", db, "--json", "<20261126135823.007360@vm>"]);
    assert_eq!(bracketed, by_header);

    let by_domain = json(&["trace", "--db", db, "--json", "Remote.Example"]);
    let ids: Vec<&str> = by_domain
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    // Every message received from or for remote.example, as the log says.
    let log = std::fs::read_to_string(fixture("sample/mainlog")).unwrap();
    let mut expected: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" <= ") && l.to_ascii_lowercase().contains("@remote.example"))
        .map(|l| l.split_whitespace().nth(3).unwrap())
        .collect();
    expected.sort_unstable();
    let mut found = ids.clone();
    found.sort_unstable();
    assert_eq!(found, expected);
    for message in by_domain.as_array().unwrap() {
        let text = message.to_string().to_ascii_lowercase();
        assert!(text.contains("@remote.example"), "{message}");
    }
    let (status, _, stderr) = outcome(&run(&[
        "trace",
        "--db",
        db,
        "--since",
        "2026-01-01",
        "remote.example",
    ]));
    assert_eq!(status, 2, "{stderr}");
    assert!(stderr.contains("at most 31 days"), "{stderr}");
}

/// Host problems (disk space, sockets, TLS set-up, crashes, DNS lists,
/// scanners, DMARC) are counted by kind in `stats`, in the metrics'
/// `exim_pilot_lines_total`, and on the health page's API.
#[test]
fn host_problems_are_counted_in_stats_metrics_and_health() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    std::fs::write(
        &log,
        "2026-12-07 09:00:00 spool directory space check failed: space=1024 inodes=77\n\
         2026-12-07 09:00:01 spool directory space check failed: space=1000 inodes=70\n\
         2026-12-07 09:00:02 IPv6 socket creation failed: Address family not supported by protocol\n\
         2026-12-07 09:00:03 DNS list lookup defer (probably timeout) for 7.2.0.192.zen.spamhaus.org: assuming not listed\n\
         2026-12-07 09:00:04 1xaUT1-0000Em-2M DMARC results: spf_domain=example.org dmarc_domain=example.org spf_align=yes dkim_align=no enforcement='Accept'\n\
         2026-12-07 09:00:05 process 12345 crashed with signal 11 while delivering 1xaUT1-0000Em-2M\n",
    )
    .unwrap();
    let db = dir.path().join("x.db").display().to_string();
    crate::util::ingest_into(std::path::Path::new(&db), &log);
    let (status, stdout, _) = outcome(&run(&["stats", "--db", &db]));
    assert_eq!(status, 0);
    let section = stdout
        .split("Host problems and DMARC results")
        .nth(1)
        .unwrap_or_else(|| panic!("no section:\n{stdout}"));
    for row in [
        "2  space_check_failed",
        "1  socket_error",
        "1  dnslist_defer",
        "1  dmarc",
        "1  process_crashed",
    ] {
        assert!(section.contains(row), "{row}:\n{section}");
    }
    let (_, metrics, _) = outcome(&run(&["metrics", "--db", &db]));
    assert!(
        metrics.contains("exim_pilot_lines_total{kind=\"space_check_failed\"} 2"),
        "{metrics}"
    );
    let server = crate::util::web::Server::start(std::path::Path::new(&db), dir.path());
    let health = server.json("/api/v1/health");
    assert_eq!(health["host_problems"][0]["kind"], "space_check_failed");
    assert_eq!(health["host_problems"][0]["lines"], 2);
    assert_eq!(health["host_problems"].as_array().unwrap().len(), 5);
    let page = server.page("/health", 200);
    assert!(
        page.contains("href=\"/log?kind=space_check_failed\""),
        "{page}"
    );
}

/// Discarded recipients are not delivered: `=> blackhole (DATA ACL
/// discarded recipients)` discards all of a message's, `=> :blackhole:
/// <addr>` one; the recipients read `discarded`, no attempt is stored, and
/// stats and the metrics do not count them delivered.
#[test]
fn discarded_recipients_are_not_delivered() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    std::fs::write(
        &log,
        "2026-12-07 09:00:00 1xaUT1-0000Em-2M <= a@example.org H=mx.example.net [192.0.2.1] P=esmtp S=100 for b@example.com c@example.com\n\
         2026-12-07 09:00:00 1xaUT1-0000Em-2M => blackhole (DATA ACL discarded recipients)\n\
         2026-12-07 09:00:00 1xaUT1-0000Em-2M Completed\n\
         2026-12-07 09:00:01 1xaUT2-0000Em-2M <= a@example.org H=mx.example.net [192.0.2.1] P=esmtp S=100 for d@example.com e@example.com\n\
         2026-12-07 09:00:01 1xaUT2-0000Em-2M => :blackhole: <d@example.com> R=system_aliases\n\
         2026-12-07 09:00:01 1xaUT2-0000Em-2M => e <e@example.com> R=local_user T=mail_spool\n\
         2026-12-07 09:00:01 1xaUT2-0000Em-2M Completed\n",
    )
    .unwrap();
    let db = dir.path().join("x.db").display().to_string();
    crate::util::ingest_into(std::path::Path::new(&db), &log);
    let status_of = |id: &str| -> Vec<(String, String)> {
        let traced = json(&["trace", "--json", "--db", &db, id]);
        let message = &traced.as_array().unwrap()[0];
        message["recipients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["address"].as_str().unwrap().to_owned(),
                    r["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    assert_eq!(
        status_of("1xaUT1-0000Em-2M"),
        [
            ("b@example.com".to_owned(), "discarded".to_owned()),
            ("c@example.com".to_owned(), "discarded".to_owned())
        ]
    );
    assert_eq!(
        status_of("1xaUT2-0000Em-2M"),
        [
            ("d@example.com".to_owned(), "discarded".to_owned()),
            ("e@example.com".to_owned(), "delivered".to_owned())
        ]
    );
    let stats = json(&["stats", "--json", "--db", &db]);
    assert_eq!(stats["delivered"], 1, "{stats}");
    assert_eq!(stats["kinds"]["blackholed"], 2, "{stats}");
    let (_, metrics, _) = outcome(&run(&["metrics", "--db", &db]));
    assert!(
        metrics.contains("exim_messages_total{flag=\"delivered\"} 1"),
        "{metrics}"
    );
}
