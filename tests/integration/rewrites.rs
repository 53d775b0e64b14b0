//! A log rewritten in place with its first line unchanged (`sed -i`, an
//! editor's save), live, across restarts and in `ingest`: each rewrite is a
//! generation of its own, and no line appended after it is lost.

use std::io::Write;
use std::time::Duration;

use tempfile::TempDir;

use crate::util::{Daemon, append_expected, assert_exactly, wait_for_lines};

const WAIT: Duration = Duration::from_secs(30);

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
    crate::util::wait_until_read_to_end(&daemon.db, &log, &daemon);
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
    crate::util::wait_until_read_to_end(&db, &log, &daemon);
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
