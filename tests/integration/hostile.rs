//! Hostile input and odd operations: files that are not logs, damaged
//! archives, lines of megabytes, holes of gigabytes. Nothing may be lost,
//! nothing may hang, and every refusal names what is wrong.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::util::{
    Daemon, FAST_CONFIG, append_lines, assert_exactly, numbered_lines, outcome, run,
    wait_for_lines, write_gzip,
};

const WAIT: Duration = Duration::from_secs(30);

fn mkfifo(path: &Path) {
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
}

/// `ingest` and `parse` refuse what is not a regular file with status 2
/// and a line that says what it is, without blocking on a FIFO or reading
/// `/dev/zero` for ever.
#[test]
fn ingest_and_parse_refuse_fifos_devices_directories_and_symlink_loops() {
    let dir = TempDir::new().unwrap();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let looped = dir.path().join("loop");
    std::os::unix::fs::symlink(&looped, &looped).unwrap();
    let db = dir.path().join("x.db");
    let db = db.to_str().unwrap();
    let cases = [
        (fifo.to_str().unwrap(), "a FIFO"),
        ("/dev/zero", "a character device"),
        (dir.path().to_str().unwrap(), "a directory"),
        (looped.to_str().unwrap(), "symbolic links"),
    ];
    for (path, what) in cases {
        for args in [
            vec!["ingest", "--db", db, path],
            vec!["parse", path],
            vec!["parse", "--json", path],
        ] {
            let started = Instant::now();
            let (status, _, stderr) = outcome(&run(&args));
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{args:?} took long"
            );
            assert_eq!(status, 2, "{args:?}: {stderr}");
            assert!(
                stderr.contains(path) && stderr.contains(what),
                "{args:?}: {stderr}"
            );
            assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        }
    }
}

/// A corrupt gzip named to `ingest` is an input problem (status 2); what
/// could be read is stored and the rest recorded as a gap naming the file.
#[test]
fn ingest_of_a_truncated_gzip_stores_what_is_readable_and_records_a_gap() {
    let dir = TempDir::new().unwrap();
    let lines = numbered_lines("z", 0, 3000);
    let gz = dir.path().join("mainlog.1.gz");
    write_gzip(&gz, (lines.join("\n") + "\n").as_bytes());
    let whole = std::fs::read(&gz).unwrap();
    std::fs::write(&gz, &whole[..whole.len() / 2]).unwrap();
    let db = dir.path().join("x.db");
    let (status, _, stderr) = outcome(&run(&[
        "ingest",
        "--db",
        db.to_str().unwrap(),
        gz.to_str().unwrap(),
    ]));
    assert_eq!(status, 2, "{stderr}");
    assert!(
        stderr.contains("mainlog.1.gz") && stderr.contains("truncated or corrupt"),
        "{stderr}"
    );
    let stored = crate::util::stored_lines(&db);
    assert!(
        !stored.is_empty() && stored.len() < lines.len(),
        "{}",
        stored.len()
    );
    let gaps = gaps(&db);
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert!(gaps[0].0.ends_with("mainlog.1.gz"), "{gaps:?}");
}

/// (path, start, reason) of every recorded gap.
fn gaps(db: &Path) -> Vec<(String, i64, String)> {
    let conn = deadpool_sqlite::rusqlite::Connection::open(db).unwrap();
    crate::util::query_all(
        &conn,
        "SELECT path, start_offset, reason FROM ingest_gaps ORDER BY id",
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
}

/// The generation last read was rotated and compressed while stopped, and
/// its .gz is cut short: on resume its readable part is stored, the rest
/// is a gap naming the .gz (once, however often the daemon restarts), and
/// the live file follows.
#[test]
fn a_truncated_gzip_generation_on_resume_is_stored_up_to_the_damage_and_a_gap() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    let first = numbered_lines("g", 0, 10);
    append_lines(&log, &first);
    let daemon = Daemon::start(dir.path());
    wait_for_lines(&daemon.db, first.len(), WAIT, Some(&daemon));
    let db = daemon.db.clone();
    assert!(daemon.stop().success());

    // While stopped: 3,000 more lines, rotation into a .gz cut in half.
    let more = numbered_lines("g", 10, 3000);
    append_lines(&log, &more);
    let gz = dir.path().join("mainlog.1.gz");
    write_gzip(&gz, &std::fs::read(&log).unwrap());
    let whole = std::fs::read(&gz).unwrap();
    std::fs::write(&gz, &whole[..whole.len() / 2]).unwrap();
    std::fs::remove_file(&log).unwrap();
    let live = numbered_lines("h", 0, 5);
    append_lines(&log, &live);

    for _ in 0..2 {
        let daemon = Daemon::start(dir.path());
        let deadline = Instant::now() + WAIT;
        while !daemon.stderr_text().contains("exim-pilot is running")
            || !crate::util::stored_lines(&db)
                .iter()
                .any(|l| l.ends_with(b"pid=h-4"))
        {
            assert!(Instant::now() < deadline, "{}", daemon.stderr_text());
            std::thread::sleep(Duration::from_millis(50));
        }
        crate::util::wait_until_read_to_end(&db, &log, &daemon);
        let stderr_path = daemon.stderr.clone();
        let status = daemon.stop();
        let stderr = std::fs::read_to_string(stderr_path).unwrap();
        assert!(status.success(), "{status:?}: {stderr}");
        assert!(!stderr.contains("error reading the log"), "{stderr}");
    }
    let stored: Vec<String> = crate::util::stored_lines(&db)
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    let readable = stored.len() - first.len() - live.len();
    assert!(readable > 0 && readable < more.len(), "{readable}");
    let mut expected = first.clone();
    expected.extend_from_slice(&more[..readable]);
    expected.extend(live);
    assert_exactly(&db, &expected);
    let gaps = gaps(&db);
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert!(gaps[0].0.ends_with("mainlog.1.gz"), "{gaps:?}");
    assert!(gaps[0].2.contains("truncated or corrupt"), "{gaps:?}");
}

/// A FIFO at the log path: refused at start with status 78 naming the key,
/// and the FIFO's writer keeps its data (we never open it).
#[test]
fn a_fifo_as_the_log_is_a_configuration_error_and_is_never_opened() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    mkfifo(&log);
    std::fs::write(dir.path().join("c.toml"), FAST_CONFIG).unwrap();
    let mut daemon = Daemon::start(dir.path());
    let status = daemon.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(78), "{}", daemon.stderr_text());
    let stderr = daemon.stderr_text();
    assert!(
        stderr.contains("--log: must name Exim's main log") && stderr.contains("FIFO"),
        "{stderr}"
    );
    let (status, _, stderr) = outcome(&run(&["check-config", "--log", log.to_str().unwrap()]));
    assert_eq!(status, 78, "{stderr}");
}

/// A FIFO that replaces the log while running is refused with a warning
/// and never read; the daemon goes on and stops promptly.
#[test]
fn a_fifo_swapped_in_for_the_live_log_is_not_read_and_stop_stays_prompt() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    append_lines(&log, &numbered_lines("f", 0, 3));
    let daemon = Daemon::start(dir.path());
    wait_for_lines(&daemon.db, 3, WAIT, Some(&daemon));
    std::fs::rename(&log, dir.path().join("mainlog.1")).unwrap();
    mkfifo(&log);
    daemon.wait_for_log("not a regular file");
    let started = Instant::now();
    assert!(daemon.stop().success());
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// SIGTERM while the reader is inside a hole of 8 GiB with no newline
/// (a sparse file) is answered within the 5 s systemd expects.
#[test]
fn sigterm_inside_an_8_gib_sparse_hole_stops_within_5_seconds() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    append_lines(&log, &numbered_lines("s", 0, 1));
    let file = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
    file.set_len(8 << 30).unwrap();
    drop(file);
    let daemon = Daemon::start(dir.path());
    wait_for_lines(&daemon.db, 1, WAIT, Some(&daemon));
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let status = daemon.stop();
    let took = started.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

/// The high-water mark of a process's resident memory, in KiB (`VmHWM`
/// belongs to the process's own address space: `wait4`'s `ru_maxrss`
/// would count the test process's image from before the exec).
pub(crate) fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Runs a command to its end, sampling its memory high-water mark; returns
/// its exit code and the last mark seen, in KiB.
fn run_measured(command: &mut Command) -> (i32, u64) {
    let mut child = command.spawn().unwrap();
    let mut peak = 0;
    loop {
        if let Some(kib) = peak_rss_kib(child.id()) {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().unwrap() {
            return (status.code().unwrap_or(-1), peak);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Lines of a megabyte each: memory is bounded by the bytes in flight, not
/// by the number of lines (`run` and `ingest` both stay under 64 MiB).
#[test]
fn megabyte_lines_keep_memory_bounded_in_run_and_ingest() {
    const LINES: usize = 300;
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    {
        use std::io::Write;
        let mut out = std::io::BufWriter::new(std::fs::File::create(&log).unwrap());
        for i in 0..LINES {
            write!(out, "2024-01-01 00:00:00 [{i}] ").unwrap();
            let body: Vec<u8> = (0..1_000_000u32)
                .map(|j| b'a' + ((i as u32 * 7 + j) % 26) as u8)
                .collect();
            out.write_all(&body).unwrap();
            out.write_all(b"\n").unwrap();
        }
    }
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        FAST_CONFIG.replace("channel_capacity = 1000", "channel_capacity = 8192"),
    )
    .unwrap();
    let ingest_db = dir.path().join("ingest.db");
    let (status, peak) = run_measured(
        Command::new(crate::util::binary())
            .args(["ingest", "--config"])
            .arg(&config)
            .arg("--db")
            .arg(&ingest_db)
            .arg(&log)
            .stdout(std::process::Stdio::null()),
    );
    assert_eq!(status, 0);
    assert_eq!(crate::util::stored_lines(&ingest_db).len(), LINES);
    assert!(
        peak > 0 && peak < 64 << 10,
        "ingest peaked at {} MiB",
        peak >> 10
    );

    let daemon = Daemon::start(dir.path());
    wait_for_lines(&daemon.db, LINES, Duration::from_secs(120), Some(&daemon));
    let peak_kib = peak_rss_kib(daemon.child.id()).unwrap();
    assert!(daemon.stop().success());
    assert!(peak_kib < 64 << 10, "run peaked at {} MiB", peak_kib >> 10);
}

/// The WAL deleted under a running daemon: noticed by the health check,
/// every connection closed (SQLite folds the unlinked WAL into the database
/// through the descriptors it holds) and reopened; nothing is lost.
#[test]
fn a_wal_deleted_while_running_is_noticed_and_nothing_is_lost() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    let mut expected = numbered_lines("w", 0, 20);
    append_lines(&log, &expected);
    let daemon = Daemon::start(dir.path());
    wait_for_lines(&daemon.db, 20, WAIT, Some(&daemon));
    std::fs::remove_file(dir.path().join("x.db-wal")).unwrap();
    daemon.wait_for_log("database files deleted while open");
    daemon.wait_for_log("database connection pool rebuilt");
    crate::util::append_expected(&log, &mut expected, "w", 20, 20);
    wait_for_lines(&daemon.db, 40, WAIT, Some(&daemon));
    crate::util::wait_until_read_to_end(&daemon.db, &log, &daemon);
    let db = daemon.db.clone();
    assert!(daemon.stop().success());
    assert_exactly(&db, &expected);
}

/// The database deleted under a running daemon: logged, reopened as a new
/// file at its path, and the lines that follow are stored there.
#[test]
fn a_database_deleted_while_running_is_noticed_and_reopened() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    append_lines(&log, &numbered_lines("d", 0, 10));
    let daemon = Daemon::start(dir.path());
    wait_for_lines(&daemon.db, 10, WAIT, Some(&daemon));
    for name in ["x.db", "x.db-wal", "x.db-shm"] {
        let _ = std::fs::remove_file(dir.path().join(name));
    }
    daemon.wait_for_log("database files deleted while open");
    daemon.wait_for_log("database connection pool rebuilt");
    append_lines(&log, &numbered_lines("d", 10, 10));
    wait_for_lines(&daemon.db, 10, WAIT, Some(&daemon));
    crate::util::wait_until_read_to_end(&daemon.db, &log, &daemon);
    let db = daemon.db.clone();
    assert!(daemon.stop().success());
    assert_exactly(&db, &numbered_lines("d", 10, 10));
}
