//! `exim-pilot run`: wires the reader thread, the bounded channel, the
//! single writer task and the health task together, and handles signals
//! (SIGHUP reloads, SIGTERM/SIGINT drain and stop) and systemd
//! notifications.
//!
//! ```text
//! reader thread ──(bounded mpsc: channel_capacity lines)──► writer task ──► store
//!   (Follower)                                                 ▲
//!                                         health task ─ pings, rebuilds the pool
//! ```

mod health;
mod lock;
mod source_thread;
mod systemd;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use signal_hook::consts::{SIGALRM, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
use tokio::sync::{mpsc, watch};

use crate::config::{Config, Overrides};
use crate::exit::Failure;
use crate::logging::LogControl;
use crate::pipeline::channel::{LineSender, channel};
use crate::pipeline::writer::{self, Progress, WriteTotals, WriterSettings};
use crate::store::{self, StoreHandle};
use crate::tail::file_source::FileSource;
use crate::tail::follower::{FollowSettings, Follower, LastRead};
use crate::tail::identity::Fingerprint;
use crate::tail::positions::Positions;
use source_thread::ReaderControl;
use systemd::Notifier;

/// How long SIGTERM may take to commit what is in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(4000);
/// How long the reader thread may take to notice the stop after that:
/// together within systemd's expectation of 5 s.
const READER_JOIN_TIMEOUT: Duration = Duration::from_millis(500);

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(
    signals: CaughtSignals,
    config_path: Option<PathBuf>,
    overrides: Overrides,
    config: Config,
    log: LogControl,
) -> Result<()> {
    crate::logging::log_panics();
    let _lock = lock::acquire(&config.database.path)
        .map_err(|err| Failure::new(crate::exit::CONFIG, err.to_string()))?;
    let notifier = Arc::new(Mutex::new(Notifier::new()));
    let store = store::connect(&config.database).await?;
    let handle = StoreHandle::new(store);
    let rows = handle
        .current()
        .with_conn("load read positions", |conn| {
            store::repo::source_positions(conn)
        })
        .await?;
    let live_path = config.log.path.display().to_string();
    let latest = rows
        .iter()
        .find(|row| row.path == live_path)
        .and_then(|row| {
            let bytes: [u8; 16] = row.fingerprint.as_slice().try_into().ok()?;
            Some(LastRead {
                fingerprint: Fingerprint(bytes),
                offset: row.byte_offset,
                committed_ms: row.updated_ms,
            })
        });
    let positions = Positions::from_rows(&rows);

    let (item_tx, item_rx) = channel(
        config.ingest.channel_capacity,
        config.ingest.channel_capacity_bytes,
    );
    let (settings_tx, settings_rx) = watch::channel(writer_settings(&config));
    let (config_tx, config_rx) = watch::channel(Arc::new(config.clone()));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);

    let follow_settings = FollowSettings::new(config.ingest.max_line_bytes);
    let (poll_active, poll_idle) = (follow_settings.poll_active, follow_settings.poll_idle);
    let follower = Follower::new(config.log.path.clone(), follow_settings, positions);
    // The main task keeps a sender for its own audit records (reloads); it
    // is dropped at shutdown so the channel can close.
    let mut audit_tx = Some(item_tx.clone());
    let source = Box::new(FileSource::new(follower, latest));
    let (control, reader_thread) = source_thread::spawn(source, item_tx, poll_active, poll_idle);

    let mut progress = DaemonProgress::new(Arc::clone(&notifier), Arc::clone(&control));
    let mut writer = tokio::spawn({
        let handle = handle.clone();
        async move { writer::run(handle, item_rx, settings_rx, &mut progress).await }
    });
    let health = tokio::spawn(health::run(handle.clone(), config_rx, shutdown_rx));

    let mut signals = forward_signals(signals)?;
    lock(&notifier).ready(&format!("tailing {live_path}"));
    tracing::info!(
        log = %live_path,
        database = %config.database.path.display(),
        "exim-pilot is running: tailing {live_path} into {}",
        config.database.path.display()
    );

    let mut current = config;
    let writer_result = loop {
        tokio::select! {
            signal = signals.recv() => match signal {
                Some(SIGHUP) => {
                    let outcome = reload(&config_path, &overrides, &mut current, &log, &settings_tx, &config_tx, &handle, &control, &notifier).await;
                    if let Some(tx) = &audit_tx {
                        audit(tx, outcome);
                    }
                }
                Some(signal @ (SIGUSR1 | SIGUSR2 | SIGALRM)) => {
                    tracing::info!(signal, "received {}; it has no meaning for exim-pilot, ignoring it", signal_name(signal));
                }
                Some(signal) => {
                    tracing::info!(signal, "received {}; stopping: committing what has been read", signal_name(signal));
                    break None;
                }
                None => {
                    tracing::info!("stopping: committing what has been read");
                    break None;
                }
            },
            result = &mut writer => break Some(result),
        }
    };

    lock(&notifier).stopping();
    audit_tx.take();
    control.stop();
    let _ = shutdown_tx.send(true);
    let result = match writer_result {
        // The writer ended on its own: a database error it cannot retry.
        Some(result) => result,
        None => match tokio::time::timeout(DRAIN_TIMEOUT, &mut writer).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(
                    "the database did not take the last lines in time; they will be read again on the next start"
                );
                writer.abort();
                Ok(Ok(WriteTotals::default()))
            }
        },
    };
    let _ = health.await;
    // The reader looks at the stop request between bounded steps; a read
    // stuck in the kernel (a hung network file system) must not hold up
    // the exit, and the thread ends with the process.
    let joined = tokio::time::timeout(
        READER_JOIN_TIMEOUT,
        tokio::task::spawn_blocking(move || reader_thread.join()),
    )
    .await;
    if joined.is_err() {
        tracing::warn!("the reader did not stop in time; exiting without it");
    }
    let totals = result.context("the writer task failed")??;
    let truncated = control
        .truncated_lines
        .load(std::sync::atomic::Ordering::Relaxed);
    tracing::info!(
        lines_stored = totals.inserted,
        lines_replayed = totals.replayed,
        lines_truncated = truncated,
        gaps = totals.gaps,
        "stopped; this run stored {} new lines ({} were already stored, {truncated} truncated, {} gaps)",
        totals.inserted,
        totals.replayed,
        totals.gaps
    );
    Ok(())
}

fn writer_settings(config: &Config) -> WriterSettings {
    WriterSettings {
        batch_size: config.ingest.batch_size,
        batch_bytes: config.ingest.batch_size_bytes,
        flush_interval: config.ingest.flush_interval,
        backoff_min: config.health.backoff_min,
        backoff_max: config.health.backoff_max,
        max_attempts: None,
        retention: Some((
            store::RetentionPolicy::from(&config.retention),
            config.retention.interval,
        )),
    }
}

/// Queues an audit record without waiting: the channel may be full while
/// the database is down, and signals must still be handled.
fn audit(tx: &LineSender, item: crate::pipeline::item::Item) {
    let tx = tx.clone();
    tokio::spawn(async move {
        tx.send_record(item).await;
    });
}

/// SIGHUP: re-reads the configuration. A bad one is logged and the running
/// configuration stays; a good one is applied piece by piece. Returns the
/// audit record of what happened.
#[allow(clippy::too_many_arguments)]
async fn reload(
    config_path: &Option<PathBuf>,
    overrides: &Overrides,
    current: &mut Config,
    log: &LogControl,
    settings: &watch::Sender<WriterSettings>,
    config_tx: &watch::Sender<Arc<Config>>,
    handle: &StoreHandle,
    control: &ReaderControl,
    notifier: &Mutex<Notifier>,
) -> crate::pipeline::item::Item {
    use crate::pipeline::item::AuditItem;
    lock(notifier).reloading();
    let source = config_path.as_deref().map_or_else(
        || crate::config::DEFAULT_CONFIG_PATH.to_owned(),
        |p| p.display().to_string(),
    );
    let loaded = Config::load(config_path.as_deref(), overrides)
        .map_err(|err| err.to_string())
        .and_then(|new| match restart_needed(current, &new) {
            Some(problem) => Err(problem),
            None => Ok(new),
        });
    let outcome = match loaded {
        Err(err) => {
            tracing::error!(error = %err, "configuration reload failed; keeping the running configuration: {err}");
            AuditItem::item(
                "config_rejected",
                "daemon",
                serde_json::json!({ "file": source, "error": err }),
            )
        }
        Ok(new) => {
            log.set_level(&new.logging.level);
            let _ = settings.send(writer_settings(&new));
            if new.database != current.database {
                match store::connect(&new.database).await {
                    Ok(store) => {
                        handle.replace(store);
                        tracing::info!("database settings changed; connection pool rebuilt");
                    }
                    Err(err) => {
                        tracing::error!(error = %err, "cannot apply the new database settings; keeping the running pool");
                    }
                }
            }
            if new.log.path != current.log.path {
                control.switch_path(new.log.path.clone());
            }
            let _ = config_tx.send(Arc::new(new.clone()));
            *current = new;
            tracing::info!("configuration reloaded");
            AuditItem::item(
                "config_reloaded",
                "daemon",
                serde_json::json!({ "file": source }),
            )
        }
    };
    lock(notifier).ready(&format!("tailing {}", current.log.path.display()));
    outcome
}

/// What a reload cannot change while running, as the reason to refuse it.
///
/// The read positions live in the database: switching files would leave
/// the new one with only the lines after the switch and positions that
/// claim the whole log, so nothing would ever fill in the start.
fn restart_needed(current: &Config, new: &Config) -> Option<String> {
    (new.database.path != current.database.path).then(|| {
        format!(
            "{}: [database] path: cannot change while running (from {} to {}); \
             restart exim-pilot to change [database] path",
            new.source
                .as_deref()
                .map_or_else(|| "configuration".to_owned(), |p| p.display().to_string()),
            current.database.path.display(),
            new.database.path.display()
        )
    })
}

/// Every signal the daemon gives a meaning to, caught from the first
/// moment of `main` (see [`catch_signals`]):
///
/// - SIGHUP: reload the configuration;
/// - SIGTERM, SIGINT, SIGQUIT: commit what has been read, then stop;
/// - SIGUSR1, SIGUSR2, SIGALRM: no meaning here; logged and ignored rather
///   than left to their default action, which kills without a drain.
pub const CAUGHT_SIGNALS: [i32; 7] = [SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM];

/// Signals caught before anything else runs; delivered once the daemon is
/// ready to act on them (one that arrives during start-up waits).
pub struct CaughtSignals(signal_hook::iterator::Signals);

/// Installs the handlers for [`CAUGHT_SIGNALS`]. Called first thing in
/// `main` for `run`, so that no signal finds its default action.
pub fn catch_signals() -> std::io::Result<CaughtSignals> {
    signal_hook::iterator::Signals::new(CAUGHT_SIGNALS).map(CaughtSignals)
}

/// Delivers the caught signals to async code.
fn forward_signals(signals: CaughtSignals) -> Result<mpsc::Receiver<i32>> {
    let mut signals = signals.0;
    let (tx, rx) = mpsc::channel(8);
    std::thread::Builder::new()
        .name("signals".to_owned())
        .spawn(move || {
            for signal in signals.forever() {
                if tx.blocking_send(signal).is_err() {
                    break;
                }
            }
        })
        .context("starting the signal thread")?;
    Ok(rx)
}

/// A signal's name, for log lines.
fn signal_name(signal: i32) -> &'static str {
    match signal {
        SIGHUP => "SIGHUP",
        SIGTERM => "SIGTERM",
        SIGINT => "SIGINT",
        SIGQUIT => "SIGQUIT",
        SIGUSR1 => "SIGUSR1",
        SIGUSR2 => "SIGUSR2",
        SIGALRM => "SIGALRM",
        _ => "a signal",
    }
}

fn lock(notifier: &Mutex<Notifier>) -> std::sync::MutexGuard<'_, Notifier> {
    notifier
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Feeds systemd's watchdog and status line from the writer's progress.
struct DaemonProgress {
    notifier: Arc<Mutex<Notifier>>,
    reader: Arc<ReaderControl>,
    rate_since: Instant,
    rate_lines: u64,
    lines_per_second: f64,
}

impl DaemonProgress {
    fn new(notifier: Arc<Mutex<Notifier>>, reader: Arc<ReaderControl>) -> Self {
        DaemonProgress {
            notifier,
            reader,
            rate_since: Instant::now(),
            rate_lines: 0,
            lines_per_second: 0.0,
        }
    }

    fn status(&mut self, totals: Option<WriteTotals>, healthy: bool) {
        let elapsed = self.rate_since.elapsed();
        if let Some(totals) = totals
            && elapsed >= Duration::from_secs(2)
        {
            let lines = totals.inserted + totals.replayed;
            self.lines_per_second = (lines - self.rate_lines) as f64 / elapsed.as_secs_f64();
            self.rate_lines = lines;
            self.rate_since = Instant::now();
        }
        let lag = self
            .reader
            .lag_bytes
            .load(std::sync::atomic::Ordering::Relaxed);
        // Asked each time: a reload may have switched the log path.
        let path = self.reader.describe();
        let status = if healthy {
            format!(
                "tailing {path}: {:.0} lines/s, {lag} bytes behind",
                self.lines_per_second
            )
        } else {
            format!("database unavailable, retrying; reading of {path} paused")
        };
        let mut notifier = lock(&self.notifier);
        notifier.watchdog();
        notifier.status(&status, !healthy);
    }
}

impl Progress for DaemonProgress {
    fn committed(&mut self, _batch: WriteTotals, totals: WriteTotals) {
        self.status(Some(totals), true);
    }

    fn alive(&mut self, healthy: bool) {
        if healthy
            && self.lines_per_second != 0.0
            && self.rate_since.elapsed() > Duration::from_secs(5)
        {
            self.lines_per_second = 0.0;
        }
        self.status(None, healthy);
    }
}
