//! `run --journal` and `ingest --journal`, the real binary against a
//! stand-in journalctl on PATH. It prints a real Exim's exported journal
//! (fixtures/journal) from `--cursor` on, as journalctl does, and with
//! `--follow` then waits. (packaging/test-journal runs against a real
//! journald, as root.)

use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;

use crate::util::{Daemon, FAST_CONFIG};
use crate::util::{fixture, stored_lines, wait_for_lines};

/// The fixture's entries, whole.
fn entries() -> Vec<String> {
    std::fs::read_to_string(fixture("journal/exim-syslog.export"))
        .unwrap()
        .split("\n\n")
        .filter(|entry| !entry.is_empty())
        .map(|entry| format!("{entry}\n\n"))
        .collect()
}

/// The lines Exim wrote for `entries`, as the source joins them.
fn lines_of(entries: &[String]) -> Vec<Vec<u8>> {
    let export = entries.concat();
    let mut reader = std::io::Cursor::new(export.as_bytes());
    let mut assembler = exim_pilot::source::journal::Assembler::default();
    let mut lines = Vec::new();
    while let Some(entry) = exim_pilot::source::journal::read_entry(&mut reader).unwrap() {
        lines.extend(assembler.push(&entry));
    }
    lines
}

/// `dir/bin/journalctl`, printing `dir/export`; its pid goes to
/// `dir/journalctl.pid` and its arguments to `dir/args`. While `dir/fail`
/// exists it fails at once, saying what the file holds; while `dir/deaf`
/// exists, following, it ignores SIGTERM.
fn fake_journalctl(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("journalctl");
    std::fs::write(
        &script,
        format!(
            r#"#!/bin/sh
echo $$ >"{dir}/journalctl.pid"
printf '%s\n' "$@" >"{dir}/args"
cursor=
follow=
for argument in "$@"; do
  case $argument in
    --cursor=*) cursor=${{argument#--cursor=}} ;;
    --follow) follow=1 ;;
  esac
done
[ ! -e "{dir}/fail" ] || {{ echo "Failed to open journal: $(cat "{dir}/fail")" >&2; exit 1; }}
awk -v cursor="$cursor" 'BEGIN {{ RS = ""; ORS = "\n\n" }}
  {{ entries[NR] = $0; if (cursor != "" && index($0, "__CURSOR=" cursor "\n") == 1) found = NR }}
  END {{ for (n = (found ? found : 1); n <= NR; n++) print entries[n] }}' "{dir}/export"
[ -z "$follow" ] || [ -e "{dir}/deaf" ] || exec sleep 600
# With dir/deaf, it hangs as a stuck journalctl would: deaf to SIGTERM.
[ -z "$follow" ] || {{ trap '' TERM; exec sleep 600; }}
"#,
            dir = dir.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

fn path_with(bin: &Path) -> String {
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn alive(pid: &str) -> bool {
    Path::new(&format!("/proc/{}", pid.trim())).exists()
}

#[test]
fn run_journal_resumes_after_sigkill_and_leaves_no_journalctl_behind() {
    let dir = TempDir::new().unwrap();
    let all = entries();
    let bin = fake_journalctl(dir.path());
    std::fs::write(dir.path().join("export"), all[..30].concat()).unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!("{FAST_CONFIG}\n[log]\nsource = \"journal\"\n"),
    )
    .unwrap();
    let db = dir.path().join("x.db");
    let path = path_with(&bin);
    let start = || Daemon::launch(dir.path(), None, &db, &config, &[("PATH", &path)], &[]);

    let daemon = start();
    let first = lines_of(&all[..30]);
    wait_for_lines(&db, first.len(), Duration::from_secs(30), Some(&daemon));
    daemon.wait_for_log("tailing journal:SYSLOG_IDENTIFIER=exim");
    let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
    for expected in [
        "--follow",
        "--no-tail",
        "--merge",
        "--output=export",
        "PRIORITY=6",
    ] {
        assert!(args.lines().any(|a| a == expected), "{expected} in {args}");
    }
    let journalctl = std::fs::read_to_string(dir.path().join("journalctl.pid")).unwrap();
    assert!(alive(&journalctl));
    daemon.kill();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while alive(&journalctl) {
        assert!(
            std::time::Instant::now() < deadline,
            "journalctl outlived the daemon killed with SIGKILL"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // New entries while it was down; it resumes at its cursor.
    std::fs::write(dir.path().join("export"), all.concat()).unwrap();
    let daemon = start();
    let expected = lines_of(&all);
    let stored = wait_for_lines(&db, expected.len(), Duration::from_secs(30), Some(&daemon));
    assert!(
        std::fs::read_to_string(dir.path().join("args"))
            .unwrap()
            .lines()
            .any(|a| a.starts_with("--cursor=")),
        "the second run starts at the stored cursor"
    );
    assert!(daemon.stop().success());
    assert_eq!(stored_lines(&db), expected);
    assert_eq!(stored.len(), expected.len());
}

#[test]
fn ingest_journal_then_run_hands_over_with_no_gap_and_no_duplicate() {
    let dir = TempDir::new().unwrap();
    let all = entries();
    let bin = fake_journalctl(dir.path());
    std::fs::write(dir.path().join("export"), all[..45].concat()).unwrap();
    let db = dir.path().join("x.db");
    let db_text = db.to_str().unwrap();
    let path = path_with(&bin);
    let ingest = || {
        let output = std::process::Command::new(crate::util::binary())
            .args(["ingest", "--journal", "--db", db_text])
            .env("PATH", &path)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        output
    };
    let output = ingest();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("journal:SYSLOG_IDENTIFIER=exim: 45 entries read"),
        "{stdout}"
    );
    assert_eq!(stored_lines(&db), lines_of(&all[..45]));
    // Nothing new: a second ingest starts at the stored cursor, adds nothing.
    ingest();
    assert_eq!(stored_lines(&db), lines_of(&all[..45]));

    // The rest arrives; `run --journal` continues where ingest stopped.
    std::fs::write(dir.path().join("export"), all.concat()).unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, FAST_CONFIG).unwrap();
    let mut daemon = std::process::Command::new(crate::util::binary())
        .args([
            "run",
            "--journal",
            "--config",
            config.to_str().unwrap(),
            "--db",
            db_text,
        ])
        .env("PATH", &path)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let expected = lines_of(&all);
    wait_for_lines(&db, expected.len(), Duration::from_secs(30), None);
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status();
    assert!(daemon.wait().unwrap().success());
    assert_eq!(stored_lines(&db), expected);
}

/// An entry of Exim's identifier without MESSAGE, as `logger` or
/// `systemd-cat` can write one.
const EMPTY_ENTRY: &str = "__CURSOR=s=9d02c1a113ad4889a67914ad51533c67;i=ffff;\
b=f1c891455832462295c1a4c0ec703caa;m=5899c0f79;t=66193af9a62af;x=1
__REALTIME_TIMESTAMP=1796136794481327
_BOOT_ID=f1c891455832462295c1a4c0ec703caa
PRIORITY=6
SYSLOG_IDENTIFIER=exim
SYSLOG_PID=4242

";

/// Polls `done` until it holds, failing after 30 s naming `what`.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "waited 30 s for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn journal_config(dir: &Path, extra_health: &str, extra: &str) -> PathBuf {
    let config = dir.join("c.toml");
    let text = FAST_CONFIG.replace("[health]\n", &format!("[health]\n{extra_health}\n"));
    std::fs::write(
        &config,
        format!("{text}\n[log]\nsource = \"journal\"\n{extra}"),
    )
    .unwrap();
    config
}

fn gaps(db: &Path) -> Vec<String> {
    let conn = deadpool_sqlite::rusqlite::Connection::open(db).unwrap();
    crate::util::query_all(&conn, "SELECT reason FROM ingest_gaps ORDER BY id", |row| {
        row.get(0)
    })
}

#[test]
fn an_entry_without_message_is_skipped_and_counted_once_and_stops_nothing() {
    let dir = TempDir::new().unwrap();
    let all = entries();
    let bin = fake_journalctl(dir.path());
    let mut export = all[..20].to_vec();
    export.push(EMPTY_ENTRY.to_owned());
    export.extend_from_slice(&all[20..]);
    std::fs::write(dir.path().join("export"), export.concat()).unwrap();
    let config = journal_config(dir.path(), "", "");
    let db = dir.path().join("x.db");
    let path = path_with(&bin);
    let start = || Daemon::launch(dir.path(), None, &db, &config, &[("PATH", &path)], &[]);
    let expected = lines_of(&all);

    let daemon = start();
    wait_for_lines(&db, expected.len(), Duration::from_secs(30), Some(&daemon));
    // Killed (a restart that replays the entry is the worst case), then
    // started again: the entry is counted once.
    daemon.kill();
    let daemon = start();
    daemon.wait_for_log("tailing journal:SYSLOG_IDENTIFIER=exim");
    wait_for_lines(&db, expected.len(), Duration::from_secs(30), Some(&daemon));
    let stderr = daemon.stderr_text();
    assert!(daemon.stop().success(), "{stderr}");
    assert_eq!(stored_lines(&db), expected);
    let reasons = gaps(&db);
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(reasons[0].contains("without MESSAGE"), "{reasons:?}");
    assert!(!stderr.contains("still being written"), "{stderr}");
}

#[test]
fn sigterm_stops_the_daemon_within_systemds_five_seconds_while_journalctl_hangs() {
    let dir = TempDir::new().unwrap();
    let all = entries();
    let bin = fake_journalctl(dir.path());
    let mut export = all[..20].to_vec();
    export.push(EMPTY_ENTRY.to_owned());
    std::fs::write(dir.path().join("export"), export.concat()).unwrap();
    std::fs::write(dir.path().join("deaf"), "").unwrap();
    let config = journal_config(dir.path(), "", "");
    let db = dir.path().join("x.db");
    let path = path_with(&bin);
    let mut daemon = Daemon::launch(dir.path(), None, &db, &config, &[("PATH", &path)], &[]);
    wait_for_lines(
        &db,
        lines_of(&all[..20]).len(),
        Duration::from_secs(30),
        Some(&daemon),
    );
    // The empty entry read twice (a journalctl run of its own each time),
    // then journalctl hangs, deaf to SIGTERM.
    wait_until("the empty entry's gap", || !gaps(&db).is_empty());
    let stopping = std::time::Instant::now();
    daemon.signal("TERM");
    let status = daemon.wait(Duration::from_secs(10));
    let took = stopping.elapsed();
    assert!(status.success(), "{}", daemon.stderr_text());
    // systemd's TimeoutStopSec (the README's promise), not a speed figure.
    assert!(took < Duration::from_secs(5), "stopping took {took:?}");
}

#[test]
fn a_stalled_source_shows_in_the_metrics_the_audit_log_and_the_health_page_then_recovers() {
    let dir = TempDir::new().unwrap();
    let all = entries();
    let bin = fake_journalctl(dir.path());
    std::fs::write(dir.path().join("export"), all[..20].concat()).unwrap();
    std::fs::write(dir.path().join("fail"), "Permission denied").unwrap();
    let port = crate::util::free_port();
    let config = journal_config(
        dir.path(),
        "stall_after = \"2s\"",
        &format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let db = dir.path().join("x.db");
    let path = path_with(&bin);
    let daemon = Daemon::launch(dir.path(), None, &db, &config, &[("PATH", &path)], &[]);
    let stalled = |value: f64| {
        wait_until("exim_pilot_source_stalled", || {
            crate::util::http_get(port, "/metrics").is_ok_and(|(_, body)| {
                crate::util::parse_exposition(&body).get("exim_pilot_source_stalled")
                    == Some(&value)
            })
        });
    };
    stalled(1.0);
    let wait_for_action = |action: &str| {
        wait_until(action, || {
            crate::util::audit_actions(&db).iter().any(|a| a == action)
        });
    };
    wait_for_action("source_stalled");
    let server = crate::util::web::Server::start_with(&db, dir.path(), None);
    let health = server.json("/api/v1/health");
    assert!(
        health["stall"]["reason"]
            .as_str()
            .unwrap()
            .contains("Permission denied"),
        "{health}"
    );
    let page = server.page("/health", 200);
    assert!(page.contains("id=\"stalled\""), "{page}");

    std::fs::remove_file(dir.path().join("fail")).unwrap();
    stalled(0.0);
    wait_for_action("source_recovered");
    wait_for_lines(
        &db,
        lines_of(&all[..20]).len(),
        Duration::from_secs(30),
        Some(&daemon),
    );
    // Answers are kept a few seconds: asked until the recovery shows.
    wait_until("the health page's recovery", || {
        server.json("/api/v1/health")["stall"].is_null()
            && !server.page("/health", 200).contains("id=\"stalled\"")
    });
    assert!(daemon.stop().success());
}
