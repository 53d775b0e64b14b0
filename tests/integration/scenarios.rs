//! The tailing scenarios of shared/docs/tailing-reliability.md section 5
//! that the daemon and fault tests do not already cover, numbered as
//! there. Each line carries a unique token; the database must hold every
//! line exactly once, in order, at its exact offset.

use std::io::Write;
use std::time::Duration;

use deadpool_sqlite::rusqlite::Connection;
use tempfile::TempDir;

use crate::util::{
    Daemon, FAST_CONFIG, append_expected, append_lines, assert_exactly, numbered_lines,
    stored_lines, wait_for_lines,
};

const WAIT: Duration = Duration::from_secs(60);

/// Open file descriptors of `pid` that point at deleted files.
fn deleted_fds(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| std::fs::read_link(entry.path()).ok())
                .map(|target| target.display().to_string())
                .filter(|target| target.ends_with("(deleted)"))
                .collect()
        })
        .unwrap_or_default()
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(Iterator::count)
        .unwrap_or(0)
}

/// Every stored line sits at its offset in `log` (a file never rotated).
fn assert_offsets_exact(db: &std::path::Path, log: &std::path::Path) {
    let content = std::fs::read(log).unwrap();
    let conn = Connection::open(db).unwrap();
    let rows = exim_pilot::store::repo::all_lines(&conn).unwrap();
    let mut expected_offset = 0usize;
    for (_, stored) in rows {
        let (offset, length) = (stored.offset as usize, stored.length as usize);
        assert_eq!(offset, expected_offset, "lines are contiguous");
        let line = &content[offset..offset + length];
        assert!(
            line.starts_with(&stored.bytes)
                && (stored.is_truncated() || line == stored.bytes.as_slice())
        );
        expected_offset = offset + length + 1;
    }
    let checkpoint: i64 = conn
        .query_row("SELECT max(byte_offset) FROM ingest_checkpoints", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        checkpoint as usize,
        content.len(),
        "the stored position is the end of the last line"
    );
}

#[test]
fn scenario_15_oversized_lines_are_stored_truncated_and_offsets_stay_exact() {
    let dir = TempDir::new().unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        FAST_CONFIG.replace("[ingest]\n", "[ingest]\nmax_line_bytes = 65536\n"),
    )
    .unwrap();
    let log = dir.path().join("mainlog");
    let mut file = std::fs::File::create(&log).unwrap();
    writeln!(file, "2024-01-01 00:00:00 [1] Start queue run: pid=before").unwrap();
    let mut huge = b"2024-01-01 00:00:01 [2] Warning: ".to_vec();
    huge.resize(10 * 1024 * 1024, b'x');
    file.write_all(&huge).unwrap();
    file.write_all(b"\n").unwrap();
    let mut exact = b"2024-01-01 00:00:02 [3] Warning: ".to_vec();
    exact.resize(65536, b'y');
    file.write_all(&exact).unwrap();
    file.write_all(b"\n").unwrap();
    writeln!(file, "2024-01-01 00:00:03 [4] End queue run: pid=after").unwrap();
    drop(file);

    let db = crate::util::run_until_stored(dir.path(), 4);
    let conn = Connection::open(&db).unwrap();
    let flags: Vec<(u64, usize, bool)> = exim_pilot::store::repo::all_lines(&conn)
        .unwrap()
        .into_iter()
        .map(|(_, l)| (l.length, l.bytes.len(), l.is_truncated()))
        .collect();
    assert_eq!(flags[1], (10 * 1024 * 1024, 65536, true));
    assert_eq!(
        flags[2],
        (65536, 65536, false),
        "exactly at the cap is whole"
    );
    assert_offsets_exact(&db, &log);

    // A restart after the long line neither repeats nor skips anything.
    append_lines(&log, &numbered_lines("after", 0, 2));
    crate::util::run_until_stored(dir.path(), 6);
    assert_eq!(stored_lines(&db).len(), 6);
    assert_offsets_exact(&db, &log);
}

#[test]
fn scenario_16_malformed_bytes_are_stored_exactly() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    let lines: Vec<Vec<u8>> = vec![
        b"2024-01-01 00:00:00 [1] Start queue run: pid=\xff\xfe invalid".to_vec(),
        b"\0\0\0\0\x002024-01-01 00:00:01 [2] End queue run: pid=1".to_vec(),
        b"2024-01-01 00:00:02 [3] Warning: carriage return\r".to_vec(),
        Vec::new(),
        b"2024-01-01 00:00:03 [4] Warning: a\ttab and \x01 control".to_vec(),
    ];
    let mut content = Vec::new();
    for line in &lines {
        content.extend_from_slice(line);
        content.push(b'\n');
    }
    std::fs::write(&log, &content).unwrap();
    let daemon = Daemon::start(dir.path());
    let stored = wait_for_lines(&daemon.db, lines.len(), WAIT, Some(&daemon));
    let db = daemon.db.clone();
    assert!(daemon.stop().success());
    assert_eq!(stored, lines);
    assert_offsets_exact(&db, &log);
}

#[test]
fn scenario_17_a_deleted_log_is_drained_through_its_descriptor_then_closed() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    append_lines(&log, &numbered_lines("a", 0, 10));
    let daemon = Daemon::start(dir.path());
    wait_for_lines(&daemon.db, 10, WAIT, Some(&daemon));
    // A big unread tail, then the file is deleted before it is read.
    let tail = numbered_lines("tail", 0, 200_000);
    append_lines(&log, &tail);
    std::fs::remove_file(&log).unwrap();
    let mut expected = numbered_lines("a", 0, 10);
    expected.extend(tail);
    wait_for_lines(&daemon.db, expected.len(), WAIT, Some(&daemon));
    // After the grace period the descriptor is closed.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !deleted_fds(daemon.child.id()).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "still open: {:?}",
            deleted_fds(daemon.child.id())
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let db = daemon.db.clone();
    assert!(daemon.stop().success());
    assert_exactly(&db, &expected);
}

#[test]
fn scenario_20_sighup_storm_during_ingest_and_rotation_leaks_nothing() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    let mut expected = numbered_lines("a", 0, 50_000);
    append_lines(&log, &expected);
    let daemon = Daemon::start(dir.path());
    wait_for_lines(&daemon.db, 50_000, WAIT, Some(&daemon));
    let fds_before = fd_count(daemon.child.id());
    for round in 0..200 {
        daemon.signal("HUP");
        let lines = numbered_lines(&format!("r{round}"), 0, 200);
        if round == 30 {
            std::fs::rename(&log, dir.path().join("mainlog.1")).unwrap();
        }
        append_lines(&log, &lines);
        expected.extend(lines);
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_for_lines(&daemon.db, expected.len(), WAIT, Some(&daemon));
    // The rotated generation's descriptor closes once it is drained.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let fds_after = fd_count(daemon.child.id());
        if fds_after <= fds_before + 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "file descriptors grew from {fds_before} to {fds_after}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let db = daemon.db.clone();
    assert!(daemon.stop().success());
    assert_exactly(&db, &expected);
}

#[test]
fn scenario_22_rapid_rotation_with_continuous_writes() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    append_lines(&log, &numbered_lines("start", 0, 10));
    let daemon = Daemon::start(dir.path());
    wait_for_lines(&daemon.db, 10, WAIT, Some(&daemon));
    let mut expected = numbered_lines("start", 0, 10);
    // A new generation every 100 ms for 5 s; old ones are kept (renamed
    // aside), as logrotate keeps them for days.
    for generation in 0..50 {
        append_expected(&log, &mut expected, &format!("g{generation}"), 0, 40);
        std::thread::sleep(Duration::from_millis(100));
        std::fs::rename(&log, dir.path().join(format!("kept.{generation}"))).unwrap();
    }
    append_expected(&log, &mut expected, "end", 0, 5);
    wait_for_lines(&daemon.db, expected.len(), WAIT, Some(&daemon));
    let db = daemon.db.clone();
    assert!(daemon.stop().success());
    assert_exactly(&db, &expected);
}

#[test]
fn scenario_10_truncated_and_regrown_while_stopped_is_read_from_the_start() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    append_lines(&log, &numbered_lines("old", 0, 20));
    let db = crate::util::run_until_stored(dir.path(), 20);
    // Rewritten in place with more bytes than were read: size alone would
    // say "grown", the stored marker says "different".
    let new = numbered_lines("new-content-longer-lines", 0, 40);
    let mut text = new.join("\n");
    text.push('\n');
    std::fs::write(&log, text).unwrap();
    crate::util::run_until_stored(dir.path(), 60);
    let mut expected = numbered_lines("old", 0, 20);
    expected.extend(new);
    assert_exactly(&db, &expected);
}

#[test]
fn scenario_12_a_recreated_file_on_a_reused_inode_is_read_from_the_start() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    append_lines(&log, &numbered_lines("first", 0, 15));
    let db = crate::util::run_until_stored(dir.path(), 15);
    let inode = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&log).unwrap().ino()
    };
    // A new generation on the same inode. Deleting and creating again only
    // usually reuses the inode (never on tmpfs), so the test forces it: the
    // file is emptied in place and written anew, so (device, inode) is the
    // same while the content is another generation's.
    {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&log)
            .unwrap();
        let lines = numbered_lines("second", 0, 5);
        file.write_all((lines.join("\n") + "\n").as_bytes())
            .unwrap();
    }
    let same_inode = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&log).unwrap().ino() == inode
    };
    assert!(same_inode, "the test must reuse the inode");
    crate::util::run_until_stored(dir.path(), 20);
    let mut expected = numbered_lines("first", 0, 15);
    expected.extend(numbered_lines("second", 0, 5));
    assert_exactly(&db, &expected);
}

#[test]
fn scenario_1_steady_append_while_running() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    append_lines(&log, &numbered_lines("seed", 0, 1));
    let daemon = Daemon::start(dir.path());
    let mut expected = numbered_lines("seed", 0, 1);
    // 100,000 lines in bursts of 1,000, as fast as they can be written.
    for burst in 0..100 {
        append_expected(&log, &mut expected, &format!("b{burst}"), 0, 1000);
    }
    wait_for_lines(&daemon.db, expected.len(), WAIT, Some(&daemon));
    let db = daemon.db.clone();
    assert!(deleted_fds(daemon.child.id()).is_empty());
    assert!(daemon.stop().success());
    assert_exactly(&db, &expected);
    assert_offsets_exact(&db, &log);
}

/// Aborts at each named point of the commit path (the `failpoints`
/// feature), asserting that each round did abort there, then checks that
/// every line is stored exactly once.
#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs the failpoints feature: cargo test --all-features"
)]
fn scenario_2_crashes_at_named_points() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    let mut expected = numbered_lines("base", 0, 5000);
    append_lines(&log, &expected);
    let mut rng = fastrand::Rng::with_seed(2);
    let points = [
        "before_insert",
        "after_insert_before_commit",
        "after_commit",
    ];
    for round in 0..30 {
        // At least four batches of 200 new lines: the Nth pass (N <= 3)
        // always comes.
        append_expected(
            &log,
            &mut expected,
            &format!("c{round}"),
            0,
            rng.usize(800..1000),
        );
        let spec = format!("{}:{}", points[round % 3], 1 + rng.u32(0..3));
        let mut daemon = Daemon::start_with(dir.path(), &[("EXIM_PILOT_FAILPOINT", &spec)]);
        let status = daemon.wait(Duration::from_secs(20));
        let stderr = daemon.stderr_text();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGABRT),
            "round {round} ({spec}) did not abort: {status:?}\n{stderr}"
        );
        assert!(
            stderr.contains(&format!("failpoint {spec} reached; aborting")),
            "round {round}: {stderr}"
        );
    }
    let db = crate::util::run_until_stored(dir.path(), expected.len());
    assert_exactly(&db, &expected);
    assert_offsets_exact(&db, &log);
    assert_counted_once(&db, expected.len());
}

/// The metrics' counters counted every line once: none rolled back, none
/// replayed.
fn assert_counted_once(db: &std::path::Path, lines: usize) {
    let samples = crate::util::metrics_of(db);
    assert_eq!(
        crate::util::family_sum(&samples, "exim_pilot_lines_total"),
        lines as f64
    );
    assert_eq!(
        samples["exim_pilot_lines_total{kind=\"queue_run_start\"}"],
        lines as f64
    );
}

/// SIGKILL at random moments, 170 times: every line stored exactly once.
#[test]
fn scenario_2_crashes_at_random_moments() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    let mut expected = numbered_lines("base", 0, 5000);
    append_lines(&log, &expected);
    let mut rng = fastrand::Rng::with_seed(2);
    for round in 0..170 {
        append_expected(
            &log,
            &mut expected,
            &format!("c{round}"),
            0,
            rng.usize(1..300),
        );
        let daemon = Daemon::start(dir.path());
        std::thread::sleep(Duration::from_millis(rng.u64(20..300)));
        daemon.kill();
    }
    let db = crate::util::run_until_stored(dir.path(), expected.len());
    assert_exactly(&db, &expected);
    assert_offsets_exact(&db, &log);
    assert_counted_once(&db, expected.len());
}

#[test]
fn scenario_3_sigterm_mid_batch_then_restart() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    let expected = numbered_lines("a", 0, 40_000);
    append_lines(&log, &expected);
    for _ in 0..5 {
        let mut daemon = Daemon::start(dir.path());
        std::thread::sleep(Duration::from_millis(150));
        daemon.signal("TERM");
        let status = daemon.wait(Duration::from_secs(5));
        assert!(status.success(), "{}", daemon.stderr_text());
        // What was committed is a whole prefix: batches are all or nothing.
        let stored = stored_lines(daemon.db.as_path());
        let stored: Vec<String> = stored
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect();
        assert_eq!(stored[..], expected[..stored.len()]);
    }
    let db = crate::util::run_until_stored(dir.path(), expected.len());
    assert_exactly(&db, &expected);
    assert_offsets_exact(&db, &log);
}
