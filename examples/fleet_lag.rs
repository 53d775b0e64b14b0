//! Fleet benchmark: two hosts' logs grow at a fixed rate each while two
//! `exim-pilot run` daemons (default configuration, plus `[fleet]`) tail
//! them and replicate to one PostgreSQL; prints how long each line took
//! from its append to its row in PostgreSQL (the replication lag), per
//! host, with the daemons' CPU and peak memory.
//!
//!     benches/fleet-lag.sh [RATE] [SECONDS] [SHAPE_A] [SHAPE_B]
//!     target/release/examples/fleet_lag URL [RATE] [SECONDS] [SHAPE_A] [SHAPE_B] [BINARY]
//!
//! URL is a PostgreSQL connection string (the script makes a throwaway
//! cluster). Defaults: 2000 lines/s per host for 60 s, shapes "mixed" and
//! "multi-recipient" (src/synth: mixed, many-addresses, multi-recipient,
//! attack, bounce-storm, long-lines). A poller reads each host's shipped
//! line count (its high-water row) every 5 ms, so lags are measured to
//! within 5 ms; every 20 ms batch of appended lines is one sample.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use exim_pilot::synth::{Generator, Profile};

const TICK: Duration = Duration::from_millis(20);
const POLL: Duration = Duration::from_millis(5);

/// One host under test.
struct Host {
    name: String,
    dir: tempfile::TempDir,
    daemon: Child,
    /// (lines appended in all, when), one per tick.
    appended: Arc<Mutex<Vec<(u64, Instant)>>>,
    total: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or("give a PostgreSQL connection string")?;
    let rate: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2000);
    let seconds: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(60);
    let shapes = [
        args.next().unwrap_or_else(|| "mixed".to_owned()),
        args.next().unwrap_or_else(|| "multi-recipient".to_owned()),
    ];
    let binary = args
        .next()
        .unwrap_or_else(|| "target/release/exim-pilot".to_owned());

    let mut hosts = Vec::new();
    for (n, shape) in shapes.iter().enumerate() {
        let profile = Profile::named(shape).ok_or_else(|| format!("no shape {shape:?}"))?;
        hosts.push(start_host(
            &format!("bench-{n}-{shape}"),
            profile,
            &url,
            &binary,
            rate,
            seconds,
            n as u64,
        )?);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (client, connection) =
        runtime.block_on(tokio_postgres::connect(&url, tokio_postgres::NoTls))?;
    runtime.spawn(connection);

    // Append on one thread per host, at the rate, a tick at a time.
    let started = Instant::now();
    let writers: Vec<_> = hosts
        .iter()
        .map(|host| {
            let log = host.dir.path().join("mainlog");
            let appended = Arc::clone(&host.appended);
            let lines = std::fs::read(host.dir.path().join("lines"));
            std::thread::spawn(move || -> std::io::Result<()> {
                let lines = lines?;
                let mut file = std::fs::OpenOptions::new().append(true).open(&log)?;
                let per_tick = (rate * TICK.as_millis() as u64 / 1000) as usize;
                let mut rest: &[u8] = &lines;
                let mut written = 0u64;
                let mut tick = Instant::now();
                while !rest.is_empty() {
                    let mut end = 0;
                    let mut count = 0;
                    while count < per_tick && end < rest.len() {
                        end += rest[end..]
                            .iter()
                            .position(|&b| b == b'\n')
                            .map_or(rest.len() - end, |p| p + 1);
                        count += 1;
                    }
                    file.write_all(&rest[..end])?;
                    written += count as u64;
                    appended
                        .lock()
                        .map_err(|_| std::io::Error::other("poisoned"))?
                        .push((written, Instant::now()));
                    rest = &rest[end..];
                    tick += TICK;
                    std::thread::sleep(tick.saturating_duration_since(Instant::now()));
                }
                Ok(())
            })
        })
        .collect();

    // Poll the high-water rows; each tick's lag is from its append to the
    // first poll that finds its last line shipped.
    let mut lags: Vec<Vec<Duration>> = vec![Vec::new(); hosts.len()];
    let mut matched = vec![0usize; hosts.len()];
    let deadline = started + Duration::from_secs(seconds + 120);
    loop {
        let rows = runtime
            .block_on(client.query("SELECT host, lines FROM exim_pilot.replication", &[]))?;
        let now = Instant::now();
        let mut done = true;
        for (i, host) in hosts.iter().enumerate() {
            let shipped = rows
                .iter()
                .find(|row| row.get::<_, &str>(0) == host.name)
                .map_or(0, |row| row.get::<_, i64>(1) as u64);
            let appended = host.appended.lock().map_err(|_| "poisoned")?;
            while matched[i] < appended.len() && appended[matched[i]].0 <= shipped {
                lags[i].push(now - appended[matched[i]].1);
                matched[i] += 1;
            }
            done &= shipped >= host.total;
        }
        if done || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(POLL);
    }
    for writer in writers {
        writer.join().map_err(|_| "a writer panicked")??;
    }
    println!(
        "fleet replication: {rate} lines/s per host for {seconds} s, two hosts, one PostgreSQL"
    );
    for (i, host) in hosts.iter_mut().enumerate() {
        let pid = host.daemon.id();
        let cpu = cpu_seconds(pid).unwrap_or(0.0);
        let peak = peak_rss_kib(pid).unwrap_or(0);
        let _ = Command::new("kill").arg(pid.to_string()).status();
        let _ = host.daemon.wait();
        let lags = &mut lags[i];
        lags.sort();
        let at = |q: f64| {
            lags.get(((lags.len() as f64 * q) as usize).min(lags.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        println!(
            "{:<28} {:>7} lines  lag p50 {:>6.0} ms  p99 {:>6.0} ms  max {:>6.0} ms  ({} samples)  daemon CPU {:.1} s ({:.0}% of one core)  peak RSS {} MiB",
            host.name,
            host.total,
            at(0.50).as_secs_f64() * 1000.0,
            at(0.99).as_secs_f64() * 1000.0,
            lags.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
            lags.len(),
            cpu,
            cpu / started.elapsed().as_secs_f64() * 100.0,
            peak / 1024,
        );
        if matched[i] < host.appended.lock().map_err(|_| "poisoned")?.len() {
            println!("  (not caught up within the deadline)");
        }
    }
    Ok(())
}

fn start_host(
    name: &str,
    profile: Profile,
    url: &str,
    binary: &str,
    rate: u64,
    seconds: u64,
    seed: u64,
) -> Result<Host, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let total = rate * seconds;
    let mut text = Vec::new();
    Generator::new(100 + seed)
        .with_profile(profile)
        .write(total + 1, &mut text)?;
    let first_end = text.iter().position(|&b| b == b'\n').ok_or("no line")? + 1;
    std::fs::write(dir.path().join("mainlog"), &text[..first_end])?;
    let rest = &text[first_end..];
    let total = rest.iter().filter(|&&b| b == b'\n').count() as u64;
    std::fs::write(dir.path().join("lines"), rest)?;
    let config = dir.path().join("exim-pilot.toml");
    std::fs::write(
        &config,
        format!("[fleet]\npostgres = \"{url}\"\nhost_name = \"{name}\"\n"),
    )?;
    let daemon = Command::new(binary)
        .args(["run", "--config"])
        .arg(&config)
        .arg("--log")
        .arg(dir.path().join("mainlog"))
        .arg("--db")
        .arg(dir.path().join("exim-pilot.db"))
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(
            dir.path().join("stderr"),
        )?))
        .spawn()?;
    wait_for_first_line(&dir.path().join("stderr"))?;
    Ok(Host {
        name: name.to_owned(),
        dir,
        daemon,
        appended: Arc::default(),
        total: total + 1,
    })
}

/// Waits until the daemon says replication is connected.
fn wait_for_first_line(stderr: &PathBuf) -> Result<(), Box<dyn std::error::Error>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(stderr)?.contains("fleet replication connected") {
        if Instant::now() > deadline {
            return Err(format!(
                "the daemon did not connect: {}",
                std::fs::read_to_string(stderr)?
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// User and system CPU seconds of a process, from /proc.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat =
        std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// The peak resident set (VmHWM) of a process in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status =
        std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}
