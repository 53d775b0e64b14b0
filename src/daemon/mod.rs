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
mod notify;
mod reader;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use tokio::sync::{mpsc, watch};

use crate::config::{Config, Overrides};
use crate::logging::LogControl;
use crate::pipeline::reader::Positions;
use crate::pipeline::writer::{self, Progress, WriteTotals, WriterSettings};
use crate::store::{self, StoreHandle};
use crate::tail::follower::{FollowSettings, Follower, LastRead};
use crate::tail::identity::Fingerprint;
use notify::Notifier;
use reader::ReaderControl;

/// How long SIGTERM may take to commit what is in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(4500);

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(
    config_path: Option<PathBuf>,
    overrides: Overrides,
    config: Config,
    log: LogControl,
) -> Result<()> {
    crate::logging::log_panics();
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

    let (item_tx, item_rx) = mpsc::channel(config.ingest.channel_capacity);
    let (settings_tx, settings_rx) = watch::channel(writer_settings(&config));
    let (config_tx, config_rx) = watch::channel(Arc::new(config.clone()));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);

    let follow_settings = FollowSettings::new(config.ingest.max_line_bytes);
    let (poll_active, poll_idle) = (follow_settings.poll_active, follow_settings.poll_idle);
    let follower = Follower::new(config.log.path.clone(), follow_settings, positions);
    // The main task keeps a sender for its own audit records (reloads); it
    // is dropped at shutdown so the channel can close.
    let mut audit_tx = Some(item_tx.clone());
    let (control, reader_thread) = reader::spawn(follower, latest, item_tx, poll_active, poll_idle);

    let mut progress = DaemonProgress::new(
        Arc::clone(&notifier),
        Arc::clone(&control),
        live_path.clone(),
    );
    let mut writer = tokio::spawn({
        let handle = handle.clone();
        async move { writer::run(handle, item_rx, settings_rx, &mut progress).await }
    });
    let health = tokio::spawn(health::run(handle.clone(), config_rx, shutdown_rx));

    let mut signals = forward_signals()?;
    lock(&notifier).ready(&format!("tailing {live_path}"));
    tracing::info!(log = %live_path, database = %config.database.path.display(), "exim-pilot is running");

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
                _ => {
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
    let _ = tokio::task::spawn_blocking(move || reader_thread.join()).await;
    let totals = result.context("the writer task failed")??;
    tracing::info!(lines = totals.inserted, "stopped");
    Ok(())
}

fn writer_settings(config: &Config) -> WriterSettings {
    WriterSettings {
        batch_size: config.ingest.batch_size,
        flush_interval: config.ingest.flush_interval,
        backoff_min: config.health.backoff_min,
        backoff_max: config.health.backoff_max,
        max_attempts: None,
        retention: Some((config.retention.policy(), config.retention.interval)),
    }
}

/// Queues an audit record without waiting: the channel may be full while
/// the database is down, and signals must still be handled.
fn audit(tx: &mpsc::Sender<crate::pipeline::item::Item>, item: crate::pipeline::item::Item) {
    let tx = tx.clone();
    tokio::spawn(async move {
        let _ = tx.send(item).await;
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
    let outcome = match Config::load(config_path.as_deref(), overrides) {
        Err(err) => {
            tracing::error!(error = %err, "configuration reload failed; keeping the running configuration");
            AuditItem::item(
                "config_rejected",
                "daemon",
                serde_json::json!({ "file": source, "error": err.to_string() }),
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

/// Delivers SIGHUP, SIGTERM and SIGINT to async code.
fn forward_signals() -> Result<mpsc::Receiver<i32>> {
    let mut signals = signal_hook::iterator::Signals::new([SIGHUP, SIGTERM, SIGINT])
        .context("installing signal handlers")?;
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

fn lock(notifier: &Mutex<Notifier>) -> std::sync::MutexGuard<'_, Notifier> {
    notifier
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Feeds systemd's watchdog and status line from the writer's progress.
struct DaemonProgress {
    notifier: Arc<Mutex<Notifier>>,
    reader: Arc<ReaderControl>,
    path: String,
    rate_since: Instant,
    rate_lines: u64,
    lines_per_second: f64,
}

impl DaemonProgress {
    fn new(notifier: Arc<Mutex<Notifier>>, reader: Arc<ReaderControl>, path: String) -> Self {
        DaemonProgress {
            notifier,
            reader,
            path,
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
        let status = if healthy {
            format!(
                "tailing {}: {:.0} lines/s, {} bytes behind",
                self.path, self.lines_per_second, lag
            )
        } else {
            format!(
                "database unavailable, retrying; reading of {} paused",
                self.path
            )
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
