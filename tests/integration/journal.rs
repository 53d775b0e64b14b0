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
    let mut assembler = exim_pilot::journal::Assembler::default();
    let mut lines = Vec::new();
    while let Some(entry) = exim_pilot::journal::read_entry(&mut reader).unwrap() {
        lines.extend(assembler.push(&entry));
    }
    lines
}

/// `dir/bin/journalctl`, printing `dir/export`; its pid goes to
/// `dir/journalctl.pid` and its arguments to `dir/args`.
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
awk -v cursor="$cursor" 'BEGIN {{ RS = ""; ORS = "\n\n" }}
  {{ entries[NR] = $0; if (cursor != "" && index($0, "__CURSOR=" cursor "\n") == 1) found = NR }}
  END {{ for (n = (found ? found : 1); n <= NR; n++) print entries[n] }}' "{dir}/export"
[ -z "$follow" ] || exec sleep 600
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
    std::thread::sleep(Duration::from_millis(300));
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
    std::thread::sleep(Duration::from_millis(300));
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status();
    assert!(daemon.wait().unwrap().success());
    assert_eq!(stored_lines(&db), expected);
}
