//! Live benchmark: appends generated Exim lines to a log at a fixed rate
//! while `exim-pilot run` tails it, and prints how long each line took from
//! its append to its committed row, and the daemon's CPU use.
//!
//!     cargo build --release --features synth --bin exim-pilot --example live_latency
//!     target/release/examples/live_latency [RATE] [SECONDS] [BINARY] [SCRAPE_MS] [FLEET_URL]
//!
//! Defaults: 2000 lines/s for 60 s, target/release/exim-pilot, no scrapes.
//! A poller reads new rows every 2 ms, so delays are measured to within
//! 2 ms. With SCRAPE_MS, the daemon also serves `[metrics] listen` and a
//! thread scrapes `/metrics` every SCRAPE_MS ms, as Prometheus would, and
//! prints how long each scrape took (connect to the last byte). With
//! FLEET_URL (a PostgreSQL connection string), the daemon also replicates
//! to it (`[fleet]`), to measure what replication costs the local writer.
//! With `LIVE_LATENCY_LOG` and `LIVE_LATENCY_DATABASE` set, the daemon
//! tails that log into that database (say, a large one already ingested
//! from the same log, which `benches/web-under-ingest.sh` serves meanwhile)
//! instead of a new pair.

use std::collections::VecDeque;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use deadpool_sqlite::rusqlite::{Connection, OpenFlags};
use exim_pilot::synth::Generator;

const POLL: Duration = Duration::from_millis(2);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let rate: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2000);
    let seconds: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(60);
    let binary = args
        .next()
        .unwrap_or_else(|| "target/release/exim-pilot".to_owned());
    let scrape_ms: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(0);
    let fleet = args.next();

    let dir = tempfile::tempdir()?;
    let given = (
        std::env::var_os("LIVE_LATENCY_LOG"),
        std::env::var_os("LIVE_LATENCY_DATABASE"),
    );
    let (log, db) = match &given {
        (Some(log), Some(db)) => (Path::new(log).to_owned(), Path::new(db).to_owned()),
        _ => (dir.path().join("mainlog"), dir.path().join("exim-pilot.db")),
    };
    // Lines to append, made up front so generating them costs nothing later.
    let total = rate * seconds;
    let mut text = Vec::new();
    Generator::new(5).write(total + 1, &mut text)?;
    let mut lines = text.split_inclusive(|&b| b == b'\n');
    let first = lines.next().ok_or("the generator wrote nothing")?;
    if given.0.is_none() {
        std::fs::write(&log, first)?;
    }

    let config = dir.path().join("exim-pilot.toml");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    std::fs::write(
        &config,
        format!(
            "{}{}",
            if scrape_ms > 0 {
                format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n")
            } else {
                String::new()
            },
            fleet
                .map(|url| format!("[fleet]\npostgres = \"{url}\"\nhost_name = \"live-latency\"\n"))
                .unwrap_or_default()
        ),
    )?;
    let mut daemon = Command::new(&binary)
        .args(["run", "--config"])
        .arg(&config)
        .arg("--log")
        .arg(&log)
        .arg("--db")
        .arg(&db)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::inherit())
        .spawn()?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let scraper = (scrape_ms > 0).then(|| {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || scrape(port, Duration::from_millis(scrape_ms), &stop))
    });
    let result = measure(&mut daemon, &log, &db, lines.take(total as usize), rate);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(scraper) = scraper {
        let (mut times, failures) = scraper.join().map_err(|_| "the scraper panicked")?;
        times.sort();
        let percentile = |p: f64| percentile_ms(&times, p);
        println!(
            "scrapes of /metrics every {scrape_ms} ms: {} answered, {failures} failed; p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            times.len(),
            percentile(0.50),
            percentile(0.99),
            percentile(1.0)
        );
    }
    // SIGTERM: the daemon commits and stops.
    let _ = Command::new("kill").arg(daemon.id().to_string()).status();
    let _ = daemon.wait();
    result
}

fn measure<'a>(
    daemon: &mut Child,
    log: &Path,
    db: &Path,
    lines: impl Iterator<Item = &'a [u8]>,
    rate: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let conn = wait_for_first_row(db)?;
    let mut file = std::fs::OpenOptions::new().append(true).open(log)?;
    let mut offset = file.metadata()?.len();
    let mut appended: VecDeque<(u64, Instant)> = VecDeque::new();
    let mut delays: Vec<Duration> = Vec::new();
    let cpu_before = cpu_seconds(daemon.id())?;
    let start = Instant::now();
    let mut sent = 0u64;
    let mut lines = lines.peekable();
    let mut next_poll = start;
    let mut done_at: Option<Instant> = None;
    loop {
        // Append whatever is due, one write per line.
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        while sent < due {
            let Some(line) = lines.next() else { break };
            file.write_all(line)?;
            appended.push_back((offset, Instant::now()));
            offset += line.len() as u64;
            sent += 1;
        }
        if lines.peek().is_none() && done_at.is_none() {
            done_at = Some(Instant::now());
        }
        if Instant::now() >= next_poll {
            next_poll += POLL;
            // The read position commits in the same transaction as the
            // lines before it: every line that starts before it is stored.
            let stored_to: i64 = conn
                .prepare_cached("SELECT coalesce(max(byte_offset), 0) FROM ingest_checkpoints")?
                .query_row([], |row| row.get(0))?;
            let now = Instant::now();
            while let Some(&(line_offset, at)) = appended.front() {
                if line_offset as i64 >= stored_to {
                    break;
                }
                appended.pop_front();
                delays.push(now - at);
            }
        }
        if let Some(done) = done_at
            && (appended.is_empty() || done.elapsed() > Duration::from_secs(10))
        {
            break;
        }
        std::thread::sleep(Duration::from_micros(250));
    }
    let elapsed = start.elapsed();
    let cpu = cpu_seconds(daemon.id())? - cpu_before;
    delays.sort();
    let percentile = |p: f64| percentile_ms(&delays, p);
    println!(
        "appended {sent} lines at {rate} lines/s over {:.1} s; committed and seen {} (missing {})",
        elapsed.as_secs_f64(),
        delays.len(),
        appended.len()
    );
    println!(
        "append to committed row: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms (poll every {} ms)",
        percentile(0.50),
        percentile(0.90),
        percentile(0.99),
        percentile(1.0),
        POLL.as_millis()
    );
    println!(
        "daemon CPU: {cpu:.2} s over {:.1} s = {:.1}% of one core",
        elapsed.as_secs_f64(),
        100.0 * cpu / elapsed.as_secs_f64()
    );
    Ok(())
}

/// The `p` quantile of `sorted`, in milliseconds (NaN when empty).
fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 - 1.0) * p).round() as usize)
        .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}

/// GETs `/metrics` every `every` until `stop`: each answered scrape's
/// time (connect to the last byte), and the failures.
fn scrape(
    port: u16,
    every: Duration,
    stop: &std::sync::atomic::AtomicBool,
) -> (Vec<Duration>, u64) {
    use std::io::Read as _;
    let mut times = Vec::new();
    let mut failures = 0;
    let mut next = Instant::now();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        next += every;
        let started = Instant::now();
        let answered = std::net::TcpStream::connect(("127.0.0.1", port)).and_then(|mut stream| {
            stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")?;
            let mut response = Vec::new();
            stream.read_to_end(&mut response)?;
            Ok(response.starts_with(b"HTTP/1.0 200") || response.starts_with(b"HTTP/1.1 200"))
        });
        match answered {
            Ok(true) => times.push(started.elapsed()),
            // Before the daemon listens, or a refusal.
            _ => failures += 1,
        }
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    (times, failures)
}

/// A read-only connection, once the daemon has stored the log's first line.
fn wait_for_first_row(db: &Path) -> Result<Connection, Box<dyn std::error::Error>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(conn) = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY) {
            let stored: Result<i64, _> =
                conn.query_row("SELECT count(*) FROM log_chunks", [], |row| row.get(0));
            if matches!(stored, Ok(n) if n > 0) {
                return Ok(conn);
            }
        }
        if Instant::now() > deadline {
            return Err("the daemon stored nothing within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// User plus system CPU seconds of process `pid`, from /proc.
fn cpu_seconds(pid: u32) -> Result<f64, Box<dyn std::error::Error>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .ok_or("odd /proc stat")?
        .1
        .split(' ')
        .collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    // /proc counts in USER_HZ, which Linux fixes at 100.
    Ok(ticks / 100.0)
}
