//! Shared helpers for the integration and the system tests. Each of the
//! two test binaries uses a part of them.
#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use exim_pilot::config::{Config, DatabaseConfig, Overrides};
use exim_pilot::store::chunk::StoredLine;

mod daemon;
pub mod metrics;
mod postgres;
pub mod queue_helper;
pub mod web;
pub use daemon::{Daemon, FAST_CONFIG};
pub use postgres::{Postgres, Proxy};

/// A test that needs what this machine lacks (root, a program) stands down
/// with a line on stderr, except where `CI` is set (`.ci/run` sets it and
/// installs everything): there it fails, since a test that cannot fail
/// proves nothing.
pub fn stand_down(what: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{what}: required in CI (.ci/run installs it and runs as root)"
    );
    eprintln!("{what}: not exercised here");
}

/// Every table of the schema, in creation order.
pub const TABLES: [&str; 11] = [
    "log_sources",
    "ingest_checkpoints",
    "messages",
    "recipients",
    "log_chunks",
    "message_chunks",
    "line_counts",
    "delivery_attempts",
    "rejections",
    "audit_log",
    "ingest_gaps",
];

/// Rows in `table` (one of [`TABLES`]).
pub fn count_rows(
    conn: &deadpool_sqlite::rusqlite::Connection,
    table: &str,
) -> Result<u64, exim_pilot::store::StoreError> {
    use exim_pilot::store::{Context, ResultExt};
    assert!(TABLES.contains(&table), "not a table of ours: {table}");
    let count: i64 = conn
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
            row.get(0)
        })
        .ctx(|| Context::op("count rows"))?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// Appends an audit record with no message and no origin: the smallest
/// write the store tests make.
pub fn append_audit(
    conn: &deadpool_sqlite::rusqlite::Connection,
    actor: &str,
    action: &str,
    detail: &str,
) -> Result<i64, exim_pilot::store::StoreError> {
    exim_pilot::store::repo::record_audit(
        conn,
        &exim_pilot::store::repo::AuditRecord {
            actor,
            action,
            message_id: None,
            details: detail,
            origin: "",
        },
    )
}

/// The built `exim-pilot` binary.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_exim-pilot"))
}

/// Runs the binary with `args`, with no configuration file of the machine's
/// in play, and returns its output.
pub fn run(args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .output()
        .expect("run exim-pilot")
}

/// Exit status, stdout and stderr of a run, as text.
pub fn outcome(output: &Output) -> (i32, String, String) {
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The defaults, with the database at `dir/test.db` and short timeouts so
/// failing tests fail quickly.
pub fn database_config(dir: &Path) -> DatabaseConfig {
    let mut config = Config::from_toml("", None, &Overrides::default())
        .expect("defaults are valid")
        .database;
    config.path = dir.join("test.db");
    config.pool_wait_timeout = Duration::from_secs(5);
    config
}

/// A bundled fixture.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// Every stored raw line, in the order it was committed.
pub fn stored_lines(db: &Path) -> Vec<Vec<u8>> {
    let Ok(conn) = deadpool_sqlite::rusqlite::Connection::open_with_flags(
        db,
        deadpool_sqlite::rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    ) else {
        return Vec::new();
    };
    let _ = conn.busy_timeout(Duration::from_secs(5));
    exim_pilot::store::repo::all_lines(&conn)
        .map(|lines| lines.into_iter().map(|(_, line)| line.bytes).collect())
        .unwrap_or_default()
}

/// Every stored line in storage order, with the Exim id of the message it
/// is linked to.
pub fn lines_with_messages(db: &Path) -> Vec<(StoredLine, Option<String>)> {
    let conn = deadpool_sqlite::rusqlite::Connection::open(db).unwrap();
    let ids: std::collections::HashMap<i64, String> =
        query_all(&conn, "SELECT id, exim_id FROM messages", |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .into_iter()
        .collect();
    exim_pilot::store::repo::all_lines(&conn)
        .unwrap()
        .into_iter()
        .map(|(_, line)| {
            let id = line.message.and_then(|row| ids.get(&row).cloned());
            (line, id)
        })
        .collect()
}

/// Lines stored per kind, from the per-minute counts.
pub fn lines_of_kind(db: &Path, kind: &str) -> i64 {
    deadpool_sqlite::rusqlite::Connection::open(db)
        .unwrap()
        .query_row(
            "SELECT coalesce(sum(lines), 0) FROM line_counts WHERE kind = ?1",
            [kind],
            |r| r.get(0),
        )
        .unwrap()
}

/// Waits until `db` holds `count` lines (fails after `limit`).
pub fn wait_for_lines(
    db: &Path,
    count: usize,
    limit: Duration,
    daemon: Option<&Daemon>,
) -> Vec<Vec<u8>> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let lines = stored_lines(db);
        if lines.len() >= count {
            return lines;
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "expected {count} lines, found {} after {limit:?}; stderr:\n{}",
                lines.len(),
                daemon.map(Daemon::stderr_text).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Times the daemon logged that a batch failed and will be retried.
pub fn retry_warnings(daemon: &Daemon) -> usize {
    daemon
        .stderr_text()
        .matches("cannot commit a batch")
        .count()
}

/// Waits until the daemon has read `log` to its end and committed the read
/// position there (the newest stored position of that path equals the
/// file's length): nothing more will be stored from it. Fails after a
/// minute, showing the daemon's stderr.
pub fn wait_until_read_to_end(db: &Path, log: &Path, daemon: &Daemon) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let path = log.display().to_string();
    loop {
        let length = std::fs::metadata(log).map_or(0, |m| m.len());
        let position: Option<i64> = deadpool_sqlite::rusqlite::Connection::open(db)
            .ok()
            .and_then(|conn| {
                conn.query_row(
                    "SELECT c.byte_offset FROM ingest_checkpoints c
                 JOIN log_sources s ON s.id = c.source_id
                 WHERE s.path = ?1 ORDER BY c.updated_ms DESC, c.rowid DESC LIMIT 1",
                    [&path],
                    |row| row.get::<_, i64>(0),
                )
                .ok()
            });
        if position.and_then(|p| u64::try_from(p).ok()) == Some(length) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{path} read to {position:?} of {length} bytes after a minute; stderr:\n{}",
            daemon.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Exim-shaped lines with a unique token each: `tag` and a sequence.
pub fn numbered_lines(tag: &str, from: usize, count: usize) -> Vec<String> {
    (from..from + count)
        .map(|seq| {
            format!(
                "2024-01-01 00:{:02}:{:02} [{seq}] Start queue run: pid={tag}-{seq}",
                seq / 60 % 60,
                seq % 60
            )
        })
        .collect()
}

/// Appends lines (each with its newline) to `path`, creating it.
pub fn append_lines(path: &Path, lines: &[String]) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let mut text = lines.join("\n");
    text.push('\n');
    file.write_all(text.as_bytes()).unwrap();
}

/// Appends `count` numbered lines tagged `tag`, from `from` on, to `path`,
/// and adds them to `expected`.
pub fn append_expected(
    path: &Path,
    expected: &mut Vec<String>,
    tag: &str,
    from: usize,
    count: usize,
) {
    let lines = numbered_lines(tag, from, count);
    append_lines(path, &lines);
    expected.extend(lines);
}

/// Asserts that the database holds exactly `expected`, in order.
pub fn assert_exactly(db: &Path, expected: &[String]) {
    let stored = stored_lines(db);
    let stored: Vec<String> = stored
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    if stored != expected {
        let first_difference = stored.iter().zip(expected).position(|(a, b)| a != b);
        panic!(
            "stored {} lines, expected {}; first difference at {:?}: stored {:?}, expected {:?}",
            stored.len(),
            expected.len(),
            first_difference,
            first_difference.and_then(|i| stored.get(i)),
            first_difference.and_then(|i| expected.get(i)),
        );
    }
}

/// The actions in the audit log, oldest first.
pub fn audit_actions(db: &Path) -> Vec<String> {
    let conn = deadpool_sqlite::rusqlite::Connection::open(db).unwrap();
    query_all(&conn, "SELECT action FROM audit_log ORDER BY id", |row| {
        row.get(0)
    })
}

/// Every row of a query, each read by `row`; panics on any SQLite error.
pub fn query_all<T>(
    conn: &deadpool_sqlite::rusqlite::Connection,
    sql: &str,
    row: impl FnMut(&deadpool_sqlite::rusqlite::Row<'_>) -> deadpool_sqlite::rusqlite::Result<T>,
) -> Vec<T> {
    conn.prepare(sql)
        .unwrap()
        .query_map([], row)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A system program by name, or in /usr/sbin when PATH lacks it; `None`
/// when it is not installed.
pub fn system_program(name: &str) -> Option<String> {
    [name.to_owned(), format!("/usr/sbin/{name}")]
        .into_iter()
        .find(|program| Command::new(program).arg("--version").output().is_ok())
}

/// The grand totals eximstats prints for `log`.
#[derive(Debug)]
pub struct EximstatsTotals {
    pub received_volume: u64,
    pub received: u64,
    pub delivered_volume: u64,
    pub delivered_messages: u64,
    pub delivered_addresses: u64,
    pub rejects: u64,
    pub reject_hosts: u64,
}

/// Runs eximstats on `log`; `None` when it is not installed (which CI
/// does not allow).
pub fn eximstats(log: &Path) -> Option<EximstatsTotals> {
    let Some(program) = system_program("eximstats") else {
        stand_down("eximstats is not installed: comparison");
        return None;
    };
    // On standard input: eximstats takes any path containing ".Z" or ".gz"
    // (unanchored) for a compressed file, and a checkout under a directory
    // such as /tmp/tmp.ZMT3... made it read nothing.
    let output = Command::new(program)
        .stdin(std::fs::File::open(log).unwrap())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    let numbers = |label: &str| -> Vec<u64> {
        report
            .lines()
            .find(|line| line.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("no {label} line in eximstats output:\n{report}"))
            .split_whitespace()
            .skip(1)
            .filter_map(|word| word.parse().ok())
            .collect()
    };
    // Received <volume> <messages> <hosts> ...; Delivered <volume>
    // <messages> <addresses> ...; Rejects <messages> <hosts>.
    let (received, delivered, rejects) = (
        numbers("Received"),
        numbers("Delivered"),
        numbers("Rejects"),
    );
    Some(EximstatsTotals {
        received_volume: received[0],
        received: received[1],
        delivered_volume: delivered[0],
        delivered_messages: delivered[1],
        delivered_addresses: delivered[2],
        rejects: rejects[0],
        reject_hosts: rejects[1],
    })
}

/// Runs the daemon on `dir` until `count` lines are stored, stops it
/// (SIGTERM, exit 0) and returns the database path.
pub fn run_until_stored(dir: &Path, count: usize) -> PathBuf {
    let daemon = Daemon::start(dir);
    wait_for_lines(&daemon.db, count, Duration::from_secs(120), Some(&daemon));
    let db = daemon.db.clone();
    assert!(daemon.stop().success());
    db
}

/// Writes `content` to `path` gzip-compressed, as logrotate's `compress` does.
pub fn write_gzip(path: &Path, content: &[u8]) {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(content).unwrap();
    std::fs::write(path, encoder.finish().unwrap()).unwrap();
}

/// Samples of an exposition in the text format: `name{labels}` → value.
pub fn parse_exposition(text: &str) -> std::collections::BTreeMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (key, value) = line.rsplit_once(' ').expect("a sample line");
            let value = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                value => value.parse().expect("a sample value"),
            };
            (key.to_owned(), value)
        })
        .collect()
}

/// `exim-pilot metrics --db db`, parsed.
pub fn metrics_of(db: &Path) -> std::collections::BTreeMap<String, f64> {
    let (status, stdout, stderr) = outcome(&run(&["metrics", "--db", db.to_str().unwrap()]));
    assert_eq!(status, 0, "{stderr}");
    parse_exposition(&stdout)
}

/// Only the counters' samples (histograms included): what must never go
/// down.
pub fn counters_only(
    samples: &std::collections::BTreeMap<String, f64>,
) -> std::collections::BTreeMap<String, f64> {
    samples
        .iter()
        .filter(|(key, _)| {
            let name = key.split('{').next().unwrap_or_default();
            ["_total", "_bucket", "_sum", "_count"]
                .iter()
                .any(|suffix| name.ends_with(suffix))
        })
        .map(|(key, value)| (key.clone(), *value))
        .collect()
}

/// The sum of the samples of `family` (every label set).
pub fn family_sum(samples: &std::collections::BTreeMap<String, f64>, family: &str) -> f64 {
    samples
        .iter()
        .filter(|(key, _)| key.split('{').next() == Some(family))
        .map(|(_, value)| value)
        .sum()
}

/// A loopback port free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` over HTTP/1.0 (so no chunked body): the status line and
/// headers, and the body.
pub fn http_get(port: u16, path: &str) -> std::io::Result<(String, String)> {
    http(port, "GET", path, &[], "")
}

/// A request over HTTP/1.0 with extra header lines and a body (a form,
/// when there is one): the status line and headers, and the body.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> std::io::Result<(String, String)> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n");
    for line in headers {
        request.push_str(line);
        request.push_str("\r\n");
    }
    if !body.is_empty() {
        request.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body);
    std::io::Write::write_all(&mut stream, request.as_bytes())?;
    let mut response = String::new();
    std::io::Read::read_to_string(&mut stream, &mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or((response.as_str(), ""));
    Ok((head.to_owned(), body.to_owned()))
}

/// Whether a response's status line says `code`.
pub fn status_is(head: &str, code: u16) -> bool {
    head.split_whitespace().nth(1) == Some(code.to_string().as_str())
}

/// `exim-pilot ingest --db db log`, which must succeed.
pub fn ingest_into(db: &Path, log: &Path) {
    let (status, _, stderr) = outcome(&run(&[
        "ingest",
        "--db",
        db.to_str().unwrap(),
        log.to_str().unwrap(),
    ]));
    assert_eq!(status, 0, "{stderr}");
}
