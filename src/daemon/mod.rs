//! `exim-pilot run`: starts the source thread, the bounded channel, the
//! single writer task and the health task, serves signals (SIGHUP reloads,
//! SIGTERM, SIGINT and SIGQUIT drain and stop) and systemd notifications,
//! and stops within systemd's 5 s.
//!
//! ```text
//! source thread ──(channel: items and bytes bounded)──► writer task ──► store
//!   (a LineSource)                                         ▲
//!                                         health task ─ pings, rebuilds the pool
//! ```

mod health;
mod lock;
mod metrics;
mod progress;
mod queue_actions;
mod queue_gauge;
mod reload;
mod signals;
mod source_thread;
mod stall;
mod systemd;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result};
use signal_hook::consts::{SIGALRM, SIGHUP, SIGUSR1, SIGUSR2};
use tokio::sync::{mpsc, watch};

use crate::config::LogSource;
use crate::config::{Config, Overrides};
use crate::exit::Failure;
use crate::logging::LogControl;
use crate::pipeline::channel::{self, LineSender};
use crate::pipeline::item::Item;
use crate::pipeline::source::LineSource;
use crate::pipeline::writer::{self, WriteTotals, WriterSettings};
use crate::source::file::file_source::FileSource;
use crate::source::file::follower::{FollowSettings, Follower, LastRead};
use crate::source::file::identity::Fingerprint;
use crate::source::file::positions::Positions;
use crate::source::journal::{self, JournalSettings, JournalSource};
use crate::store::repo::SourcePosition;
use crate::store::{self, StoreError, StoreHandle};
use progress::{DaemonProgress, lock};
pub use signals::{CAUGHT_SIGNALS, CaughtSignals, catch_signals};
use source_thread::ReaderControl;
use systemd::Notifier;

/// How long SIGTERM may take to commit what is in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(4000);
/// How long the source thread may take to notice the stop after that:
/// together within systemd's expectation of 5 s.
const READER_JOIN_TIMEOUT: Duration = Duration::from_millis(500);

/// Runs the daemon until SIGTERM, SIGINT or SIGQUIT.
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
    let mut running = Running::start(config_path, overrides, config, log).await?;
    let mut signals = signals::forward_signals(signals)?;
    let ended = running.serve(&mut signals).await;
    running.stop(ended).await
}

/// The daemon's parts while it runs.
struct Running {
    config_path: Option<PathBuf>,
    overrides: Overrides,
    current: Config,
    log: LogControl,
    handle: StoreHandle,
    notifier: Arc<Mutex<Notifier>>,
    control: Arc<ReaderControl>,
    source_thread: std::thread::JoinHandle<()>,
    /// The queue helper's actions log, followed like Exim's when it exists.
    actions: Option<queue_actions::ActionsReader>,
    settings: watch::Sender<WriterSettings>,
    config_tx: watch::Sender<Arc<Config>>,
    shutdown: watch::Sender<bool>,
    /// A sender for the daemon's own audit records (reloads), dropped at
    /// shutdown so the channel can close.
    audit: Option<LineSender>,
    writer: tokio::task::JoinHandle<Result<WriteTotals, StoreError>>,
    health: tokio::task::JoinHandle<()>,
    metrics: metrics::Metrics,
    /// The fleet replicator, when `[fleet]` is configured, and its stop
    /// request (sent once the writer has committed its last batch).
    fleet: Option<(tokio::task::JoinHandle<()>, watch::Sender<bool>)>,
    /// Records the reader's stalls in the audit log.
    stall: stall::StallWatch,
}

/// How the writer task ended, if it ended before a stop was asked.
type WriterEnded = Option<Result<Result<WriteTotals, StoreError>, tokio::task::JoinError>>;

impl Running {
    /// Connects, loads the read positions, starts every task and says
    /// READY=1.
    ///
    /// Long because the tasks start in the order they depend on each other
    /// (store, metrics, fleet pool, writer, source thread, health, stall
    /// watch, replicator), each handing the next its channel or handle.
    async fn start(
        config_path: Option<PathBuf>,
        overrides: Overrides,
        config: Config,
        log: LogControl,
    ) -> Result<Running> {
        let notifier = Arc::new(Mutex::new(Notifier::new()));
        let handle = StoreHandle::new(store::connect(&config.database).await?);
        let metrics = metrics::Metrics::bind(&config.metrics)
            .map_err(|err| Failure::new(crate::exit::CONFIG, err))?;
        // Settings PostgreSQL is not needed to judge (the password file,
        // the CAs) stop the daemon here; PostgreSQL itself may be away.
        #[cfg(feature = "fleet")]
        let fleet_pool = config
            .fleet
            .as_ref()
            .map(crate::fleet::pg::pool)
            .transpose()
            .map_err(|err| Failure::new(crate::exit::CONFIG, err.to_string()))?;
        let follow_settings = FollowSettings::new(config.ingest.max_line_bytes);
        let (poll_active, poll_idle) = (follow_settings.poll_active, follow_settings.poll_idle);
        let stored = handle.current().source_positions().await?;
        let stall_open = handle
            .current()
            .with_conn("read the newest stall", |conn| {
                store::repo::open_stall(conn)
            })
            .await?
            .is_some();
        let (source, indexes): (Box<dyn LineSource>, _) = match config.log.source {
            LogSource::File => {
                let (positions, latest) = file_positions(&stored, &config.log.path);
                let indexes = catch_up_indexes(&handle, &config, latest.as_ref()).await?;
                let follower = Follower::new(config.log.path.clone(), follow_settings, positions);
                (Box::new(FileSource::new(follower, latest)), indexes)
            }
            LogSource::Journal => {
                let settings = JournalSettings::from_config(&config);
                let start = settings.stored_position(&stored);
                let source = JournalSource::new(settings, start, journal::Window::default(), true);
                (Box::new(source), writer::Indexes::Kept)
            }
        };
        let (sender, receiver) = channel::for_config(&config.ingest);
        let audit = Some(sender.clone());
        let sender_for_gauge = sender.clone();
        let actions = queue_actions::start(&config, &stored, sender.clone());
        let (control, source_thread) = source_thread::spawn(source, sender, poll_active, poll_idle);
        control.set_stall_after(config.health.stall_after);
        let fleet_progress = config
            .fleet
            .as_ref()
            .map(|fleet| Arc::new(crate::fleet::FleetProgress::new(&fleet.host_name)));
        let progress = DaemonProgress::new(
            Arc::clone(&notifier),
            Arc::clone(&control),
            fleet_progress.clone(),
        );
        let started = writer::start(
            handle.clone(),
            receiver,
            WriterSettings::from_config(&config, None),
            Box::new(progress),
            indexes,
        );
        let (config_tx, config_rx) = watch::channel(Arc::new(config.clone()));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let queue_counts = queue_gauge::start(&config.queue, sender_for_gauge, shutdown_rx.clone());
        let health = tokio::spawn(health::run(handle.clone(), config_rx, shutdown_rx));
        #[cfg(feature = "fleet")]
        let fleet = start_replicator(&config, fleet_progress.as_ref(), fleet_pool);
        #[cfg(not(feature = "fleet"))]
        let fleet: Option<(tokio::task::JoinHandle<()>, watch::Sender<bool>)> = None;
        let metrics = metrics
            .start(
                handle.clone(),
                config.database.path.clone(),
                Arc::clone(&control),
                fleet_progress,
                queue_counts,
            )
            .await;
        let stall = stall::StallWatch::new(Arc::clone(&control), stall_open);
        let live_path = source_name(&config);
        lock(&notifier).ready(&format!("tailing {live_path}"));
        tracing::info!(
            log = %live_path,
            database = %config.database.path.display(),
            "exim-pilot is running: tailing {live_path} into {}",
            config.database.path.display()
        );
        Ok(Running {
            config_path,
            overrides,
            current: config,
            log,
            handle,
            notifier,
            control,
            source_thread,
            actions,
            settings: started.settings,
            config_tx,
            shutdown,
            audit,
            writer: started.task,
            health,
            metrics,
            fleet,
            stall,
        })
    }

    /// Serves signals until one says stop or the writer ends on its own (a
    /// database error it cannot retry).
    async fn serve(&mut self, signals: &mut mpsc::Receiver<i32>) -> WriterEnded {
        let mut stall_watch = tokio::time::interval(stall::WATCH_EVERY);
        loop {
            tokio::select! {
                _ = stall_watch.tick() => {
                    if let (Some(item), Some(tx)) = (self.stall.check(), &self.audit) {
                        audit(tx, item);
                    }
                }
                signal = signals.recv() => match signal {
                    Some(SIGHUP) => {
                        let outcome = reload::reload(self).await;
                        if let Some(tx) = &self.audit {
                            audit(tx, outcome);
                        }
                    }
                    Some(signal @ (SIGUSR1 | SIGUSR2 | SIGALRM)) => {
                        tracing::info!(signal, "received {}; it has no meaning for exim-pilot, ignoring it", signals::signal_name(signal));
                    }
                    Some(signal) => {
                        tracing::info!(signal, "received {}; stopping: committing what has been read", signals::signal_name(signal));
                        return None;
                    }
                    None => {
                        tracing::info!("stopping: committing what has been read");
                        return None;
                    }
                },
                result = &mut self.writer => return Some(result),
            }
        }
    }

    /// Stops: the source first, then the writer commits what is in flight
    /// (for at most [`DRAIN_TIMEOUT`]), then the rest; says what this run
    /// stored.
    async fn stop(mut self, ended: WriterEnded) -> Result<()> {
        lock(&self.notifier).stopping();
        self.audit.take();
        self.control.stop();
        if let Some(actions) = &self.actions {
            actions.control.stop();
        }
        let _ = self.shutdown.send(true);
        let result = match ended {
            Some(result) => result,
            None => match tokio::time::timeout(DRAIN_TIMEOUT, &mut self.writer).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::warn!(
                        "the database did not take the last lines in time; they will be read again on the next start"
                    );
                    self.writer.abort();
                    Ok(Ok(WriteTotals::default()))
                }
            },
        };
        let _ = self.health.await;
        if let Some((fleet, stop)) = self.fleet.take() {
            // Asked only now, so it ships the writer's last batch too; the
            // wait is bounded by [fleet] timeout, and a batch cut short is
            // sent again by the next start.
            let _ = stop.send(true);
            let limit = self
                .current
                .fleet
                .as_ref()
                .map_or(DRAIN_TIMEOUT, |f| f.timeout);
            if tokio::time::timeout(limit, fleet).await.is_err() {
                tracing::warn!(
                    "the fleet replicator did not stop in time; its batch will be sent again"
                );
            }
        }
        self.metrics.stop().await;
        // The source looks at the stop request between bounded steps; a
        // read stuck in the kernel (a hung network file system) must not
        // hold up the exit, and the thread ends with the process.
        let source_thread = self.source_thread;
        let joined = tokio::time::timeout(
            READER_JOIN_TIMEOUT,
            tokio::task::spawn_blocking(move || source_thread.join()),
        )
        .await;
        if joined.is_err() {
            tracing::warn!("the reader did not stop in time; exiting without it");
        }
        if let Some(actions) = self.actions.take() {
            let _ = tokio::time::timeout(
                READER_JOIN_TIMEOUT,
                tokio::task::spawn_blocking(move || actions.thread.join()),
            )
            .await;
        }
        let totals = result.context("the writer task failed")??;
        let truncated = self
            .control
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
}

/// What the daemon reads, as STATUS and the logs name it: the log's path,
/// or the journal match.
pub(crate) fn source_name(config: &Config) -> String {
    match config.log.source {
        LogSource::File => config.log.path.display().to_string(),
        LogSource::Journal => JournalSettings::from_config(config).describe(),
    }
}

/// Starts the replicator when `[fleet]` is set: its task, and how to stop it.
#[cfg(feature = "fleet")]
fn start_replicator(
    config: &Config,
    progress: Option<&Arc<crate::fleet::FleetProgress>>,
    pool: Option<deadpool_postgres::Pool>,
) -> Option<(tokio::task::JoinHandle<()>, watch::Sender<bool>)> {
    let (fleet, progress, pool) = (config.fleet.as_ref()?, progress?, pool?);
    let replicator = crate::fleet::Replicator {
        config: fleet.clone(),
        database: config.database.path.clone(),
        busy_timeout: config.database.busy_timeout,
        backoff_min: config.health.backoff_min,
        backoff_max: config.health.backoff_max,
        progress: Arc::clone(progress),
        pool,
    };
    let (stop, stop_rx) = watch::channel(false);
    Some((tokio::spawn(replicator.run(stop_rx)), stop))
}

/// The stored positions as the file follower keeps them, and the newest
/// one of the file at `path` (where a restart resumes).
pub(crate) fn file_positions(
    rows: &[SourcePosition],
    path: &std::path::Path,
) -> (Positions, Option<LastRead>) {
    let live_path = path.display().to_string();
    let latest = rows
        .iter()
        .find(|row| row.path == live_path)
        .and_then(|row| {
            let bytes: [u8; 16] = row.fingerprint.as_slice().try_into().ok()?;
            Some(LastRead {
                fingerprint: Fingerprint(bytes),
                offset: row.position.byte_offset,
                committed_ms: row.updated_ms,
            })
        });
    (Positions::from_rows(rows), latest)
}

/// A backlog this large at start, and large beside the database, is read
/// without the secondary indexes (see `pipeline/writer/catch_up.rs`);
/// a smaller one is not worth slowing queries for.
const CATCH_UP_MIN_BYTES: u64 = 1 << 20;

/// Drops the secondary indexes when the live log holds a backlog worth
/// catching up in bulk: the bytes after the stored read position (all of
/// it when it was never read), judged as `ingest` judges its files.
async fn catch_up_indexes(
    handle: &StoreHandle,
    config: &Config,
    latest: Option<&LastRead>,
) -> Result<writer::Indexes> {
    let size = std::fs::metadata(&config.log.path).map_or(0, |m| m.len());
    let read = latest.map_or(0, |last| last.offset);
    // Smaller than what was read: rotated or truncated, read from the start.
    let backlog = size.checked_sub(read).unwrap_or(size);
    if backlog < CATCH_UP_MIN_BYTES
        || !store::indexes::bulk_load_pays(&config.database.path, backlog)
    {
        return Ok(writer::Indexes::Kept);
    }
    let dropped = handle
        .current()
        .with_conn("drop indexes to catch up", |conn| {
            store::indexes::drop_secondary(conn)
        })
        .await?;
    tracing::info!(
        backlog_bytes = backlog,
        indexes = dropped,
        "catching up {} MiB of log without the secondary indexes; they are built when \
         caught up (queries scan meanwhile)",
        backlog >> 20
    );
    Ok(writer::Indexes::DroppedUntilCaughtUp)
}

/// Queues an audit record without waiting: the channel may be full while
/// the database is down, and signals must still be handled.
fn audit(tx: &LineSender, item: Item) {
    let tx = tx.clone();
    tokio::spawn(async move {
        tx.send_record(item).await;
    });
}
