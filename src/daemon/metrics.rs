//! The daemon's metrics: `/metrics` served on `[metrics] listen`, and the
//! file for node_exporter's textfile collector written every `[metrics]
//! interval`. Both encode what `query::metrics::collect` reads through the
//! pool, plus what only the running daemon knows (database health, lag).
//! Read-only: a scrape never writes.
//!
//! A listener that cannot be bound or a textfile directory that cannot be
//! written is an error naming its key: at start the daemon exits with
//! status 78; on SIGHUP the reload is refused and the running settings
//! stay ([`Metrics::prepare`] runs before anything is applied).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::{Semaphore, watch};

use super::source_thread::ReaderControl;
use crate::config::MetricsConfig;
use crate::query::metrics::{CONTENT_TYPE, Live, collect, encode};
use crate::store::StoreHandle;

/// Scrapes answered at once; more get 503 at once instead of queueing
/// for the pool.
const CONCURRENT_SCRAPES: usize = 4;

/// What a scrape reads.
#[derive(Clone)]
struct Source {
    handle: StoreHandle,
    database: PathBuf,
    control: Arc<ReaderControl>,
    settings: watch::Receiver<MetricsConfig>,
    permits: Arc<Semaphore>,
    fleet: Option<Arc<crate::fleet::FleetProgress>>,
    queue: Arc<super::queue_gauge::QueueCounts>,
}

impl Source {
    /// The exposition now. When the database cannot answer, only the
    /// daemon's own gauges, with `exim_pilot_database_up 0`.
    async fn render(&self) -> String {
        let healthy = self.handle.is_healthy();
        let mut live = Live {
            database_up: Some(healthy),
            lag_bytes: Some(
                self.control
                    .lag_bytes
                    .load(std::sync::atomic::Ordering::Relaxed),
            ),
            lag_seconds: Some(self.control.lag_seconds()),
            source_stalled: Some(self.control.stall().is_some()),
            queue: self.queue.get(),
            ..Live::default()
        };
        if let Some(fleet) = &self.fleet {
            let status = fleet.status();
            live.fleet_up = Some(status.up);
            live.fleet_unshipped_lines = Some(status.unshipped_lines);
            live.fleet_lag_seconds = Some(status.lag_seconds);
        }
        let stuck_after = self.settings.borrow().stuck_after;
        let database = self.database.clone();
        let read = self
            .handle
            .current()
            .with_conn("read the metrics", move |conn| {
                collect(conn, &database, stuck_after, &live)
            })
            .await;
        match read {
            Ok(families) => encode(&families),
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the metrics from the database: {err}");
                live.database_up = Some(false);
                encode(&crate::query::metrics::live_only(&live))
            }
        }
    }
}

/// The metrics' listener and textfile writer while the daemon runs.
pub(super) struct Metrics {
    source: Source,
    settings: watch::Sender<MetricsConfig>,
    server: Option<Server>,
    textfile: tokio::task::JoinHandle<()>,
    shutdown: watch::Sender<bool>,
}

/// The listener bound and the textfile's directory tried, not yet
/// serving.
pub(super) struct Bound {
    config: MetricsConfig,
    listener: Option<std::net::TcpListener>,
}

impl Bound {
    /// Writes the textfile once and starts serving and writing.
    pub(super) async fn start(
        self,
        handle: StoreHandle,
        database: PathBuf,
        control: Arc<ReaderControl>,
        fleet: Option<Arc<crate::fleet::FleetProgress>>,
        queue: Arc<super::queue_gauge::QueueCounts>,
    ) -> Metrics {
        let Bound { config, listener } = self;
        let (settings, settings_rx) = watch::channel(config.clone());
        let source = Source {
            handle,
            database,
            control,
            settings: settings_rx,
            permits: Arc::new(Semaphore::new(CONCURRENT_SCRAPES)),
            fleet,
            queue,
        };
        if let Some(path) = &config.textfile {
            let text = source.render().await;
            if let Err(err) = write_textfile(path, &text) {
                tracing::warn!(error = %err, "cannot write the metrics textfile: {err}");
            }
        }
        let (shutdown, shutdown_rx) = watch::channel(false);
        let textfile = tokio::spawn(textfile_task(source.clone(), shutdown_rx));
        let mut metrics = Metrics {
            source,
            settings,
            server: None,
            textfile,
            shutdown,
        };
        metrics.start_server(listener);
        metrics
    }
}

/// A running `/metrics` listener.
struct Server {
    address: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// What a reload needs that may fail, made before anything is applied.
pub(super) struct Prepared {
    /// A new listener, when the address changed.
    listener: Option<Option<std::net::TcpListener>>,
}

impl Metrics {
    /// Binds the listener and tries the textfile's directory, or fails
    /// naming the key; before anything else starts, so a failure stops
    /// nothing half-started.
    pub(super) fn bind(config: &MetricsConfig) -> Result<Bound, String> {
        let listener = config.listen.map(bind).transpose()?;
        if let Some(path) = &config.textfile {
            probe_directory(path)?;
        }
        Ok(Bound {
            config: config.clone(),
            listener,
        })
    }

    /// Checks what a new configuration needs: binds a changed address,
    /// and tries a changed textfile's directory. The running settings are
    /// untouched.
    pub(super) fn prepare(&self, new: &MetricsConfig) -> Result<Prepared, String> {
        let current = self.settings.borrow().clone();
        let listener = if new.listen == current.listen {
            None
        } else {
            Some(new.listen.map(bind).transpose()?)
        };
        if new.textfile != current.textfile
            && let Some(path) = &new.textfile
        {
            probe_directory(path)?;
        }
        Ok(Prepared { listener })
    }

    /// Applies a new configuration checked by [`Metrics::prepare`].
    pub(super) fn apply(&mut self, prepared: Prepared, new: &MetricsConfig) {
        if let Some(listener) = prepared.listener {
            if let Some(old) = self.server.take() {
                let _ = old.stop.send(true);
                tracing::info!(address = %old.address, "stopped serving metrics on {}", old.address);
            }
            self.start_server(listener);
        }
        let _ = self.settings.send(new.clone());
    }

    fn start_server(&mut self, listener: Option<std::net::TcpListener>) {
        match listener.map(|l| serve(l, self.source.clone())).transpose() {
            Ok(server) => {
                if let Some(server) = &server {
                    tracing::info!(
                        address = %server.address,
                        "serving metrics on http://{}/metrics",
                        server.address
                    );
                }
                self.server = server;
            }
            Err(err) => tracing::error!(error = %err, "{err}"),
        }
    }

    /// Stops serving and writing.
    pub(super) async fn stop(self) {
        let _ = self.shutdown.send(true);
        if let Some(server) = self.server {
            let _ = server.stop.send(true);
            let _ = server.task.await;
        }
        let _ = self.textfile.await;
    }
}

/// Binds `address`, or says why not, naming the key.
fn bind(address: SocketAddr) -> Result<std::net::TcpListener, String> {
    let listener = std::net::TcpListener::bind(address)
        .map_err(|err| format!("[metrics] listen: cannot listen on {address}: {err}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|err| format!("[metrics] listen: cannot listen on {address}: {err}"))?;
    Ok(listener)
}

fn serve(listener: std::net::TcpListener, source: Source) -> Result<Server, String> {
    let address = listener
        .local_addr()
        .map_err(|err| format!("[metrics] listen: {err}"))?;
    let listener = tokio::net::TcpListener::from_std(listener)
        .map_err(|err| format!("[metrics] listen: cannot listen on {address}: {err}"))?;
    let app = Router::new()
        .route("/metrics", get(scrape))
        .route("/", get(index))
        .with_state(source);
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.changed().await;
            })
            .await;
        if let Err(err) = served {
            tracing::error!(error = %err, "serving metrics on {address} failed: {err}");
        }
    });
    Ok(Server {
        address,
        stop,
        task,
    })
}

async fn scrape(State(source): State<Source>) -> impl IntoResponse {
    let Ok(_permit) = source.permits.clone().try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "too many scrapes at once\n".to_owned(),
        );
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        source.render().await,
    )
}

async fn index() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "exim-pilot: metrics are at /metrics\n",
    )
}

/// Writes the textfile every interval until shutdown, following reloads.
async fn textfile_task(source: Source, mut shutdown: watch::Receiver<bool>) {
    let mut settings = source.settings.clone();
    loop {
        let interval = settings.borrow().interval;
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            changed = settings.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = shutdown.changed() => return,
        }
        let path = settings.borrow().textfile.clone();
        if let Some(path) = path {
            let text = source.render().await;
            let written = tokio::task::spawn_blocking(move || write_textfile(&path, &text)).await;
            if let Ok(Err(err)) = written {
                tracing::warn!(error = %err, "cannot write the metrics textfile: {err}");
            }
        }
    }
}

/// The temporary file beside `path`: hidden and not ending in `.prom`, so
/// the collector never reads it half written.
fn temporary_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Writes `text` to `path` atomically: a temporary file in the same
/// directory, flushed, then renamed over it. Readable by all (the
/// collector runs as another user); errors name the key.
pub fn write_textfile(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let temporary = temporary_beside(path);
    let failed = |err: std::io::Error| {
        let _ = std::fs::remove_file(&temporary);
        format!("[metrics] textfile: cannot write {}: {err}", path.display())
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&temporary)
        .map_err(failed)?;
    // Whatever the umask (the unit's is 0027): the collector runs as
    // another user.
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .map_err(failed)?;
    file.write_all(text.as_bytes()).map_err(failed)?;
    file.sync_all().map_err(failed)?;
    drop(file);
    std::fs::rename(&temporary, path).map_err(failed)
}

/// Whether a file can be made in `path`'s directory: created and removed.
fn probe_directory(path: &Path) -> Result<(), String> {
    let temporary = temporary_beside(path);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temporary)
        .and_then(|_| std::fs::remove_file(&temporary))
        .map_err(|err| {
            format!(
                "[metrics] textfile: cannot write in the directory of {}: {err}",
                path.display()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_textfile_is_replaced_whole_and_its_errors_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exim-pilot.prom");
        write_textfile(&path, "a 1\n").unwrap();
        write_textfile(&path, "a 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a 2\n");
        // Nothing else is left in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        let missing = dir.path().join("no/such/dir/x.prom");
        let err = write_textfile(&missing, "a 1\n").unwrap_err();
        assert!(
            err.starts_with("[metrics] textfile: cannot write "),
            "{err}"
        );
        let err = probe_directory(&missing).unwrap_err();
        assert!(err.starts_with("[metrics] textfile: "), "{err}");
        probe_directory(&path).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_port_in_use_is_an_error_naming_the_key() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let err = bind(taken.local_addr().unwrap()).unwrap_err();
        assert!(
            err.starts_with("[metrics] listen: cannot listen on 127.0.0.1:"),
            "{err}"
        );
    }
}
