//! Configuration: read the TOML file, apply command-line overrides, and turn
//! the result into a validated [`Config`] ("parse, don't validate").
//!
//! Every key is optional; with no file at all the defaults give a working
//! daemon. Every error names the file, the key and what is wrong, and all
//! problems in a file are reported together so an operator fixes them in one
//! pass.

mod build;
mod check;
mod file;
mod fleet;
mod queue;
mod raw;
mod web;

pub use fleet::{FleetConfig, FleetTls};
pub use queue::{MAX_BULK_LIMIT, QueueConfig};
pub use web::{WebAuth, WebConfig, WebRole, WebUser};

use file::{parse_toml, read_file};
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use raw::RawConfig;
use raw::{RawDatabase, RawHealth, RawIngest, RawLog, RawLogging, RawMetrics, RawRetention};

/// Where the packages install the configuration file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/exim-pilot/exim-pilot.toml";
/// Debian's and Ubuntu's Exim main log.
pub const DEBIAN_MAINLOG: &str = "/var/log/exim4/mainlog";
/// RHEL's and Fedora's Exim main log.
pub const RHEL_MAINLOG: &str = "/var/log/exim/main.log";
/// Where the packages keep the database.
pub const DEFAULT_DATABASE_PATH: &str = "/var/lib/exim-pilot/exim-pilot.db";

/// The validated configuration. Construct it with [`Config::load`] or
/// [`Config::from_raw`]; every value in it has been checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file this came from, if any (for messages only).
    pub source: Option<PathBuf>,
    /// `[log]`
    pub log: LogConfig,
    /// `[database]`
    pub database: DatabaseConfig,
    /// `[ingest]`
    pub ingest: IngestConfig,
    /// `[health]`
    pub health: HealthConfig,
    /// `[diagnostics]` (formerly `[logging]`)
    pub logging: LoggingConfig,
    /// `[retention]`
    pub retention: RetentionConfig,
    /// `[metrics]`
    pub metrics: MetricsConfig,
    /// `[web]`
    pub web: WebConfig,
    /// `[fleet]`: `None` unless it names a PostgreSQL.
    pub fleet: Option<FleetConfig>,
    /// `[queue]`: the queue helper's sockets, and whether actions may run.
    pub queue: QueueConfig,
}

/// `[metrics]`: where the daemon exposes its metrics, if anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// The address `/metrics` is served on; `None` (the default) serves
    /// nothing, so the hardened unit needs no network.
    pub listen: Option<std::net::SocketAddr>,
    /// The file for node_exporter's textfile collector, written anew
    /// every `interval`; `None` writes none.
    pub textfile: Option<PathBuf>,
    /// How often the textfile is written.
    pub interval: Duration,
    /// How long a recipient waits before it counts as stuck.
    pub stuck_after: Duration,
}

/// `[retention]`: days each kind of row is kept; 0 keeps it forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionConfig {
    /// Raw log lines (formerly `log_entries_days`).
    pub log_lines_days: u32,
    /// Delivery attempts.
    pub delivery_attempts_days: u32,
    /// Rejections.
    pub rejections_days: u32,
    /// Finished messages, with their recipients and attempts.
    pub messages_days: u32,
    /// The audit log (counted from the wall clock).
    pub audit_log_days: u32,
    /// How often the daemon prunes.
    pub interval: Duration,
}

/// `[log]`
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// The Exim main log to tail.
    pub path: PathBuf,
    /// Where Exim's main log is read from.
    pub source: LogSource,
    /// `SYSLOG_IDENTIFIER` of Exim's journal entries (its
    /// `syslog_processname`).
    pub journal_identifier: String,
    /// When set, the journal entries of this unit instead.
    pub journal_unit: Option<String>,
}

/// `[log] source`: where Exim's main log is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSource {
    /// A file (`[log] path`): Exim's default.
    File,
    /// The systemd journal: Exim with `log_file_path = syslog`.
    Journal,
}

/// `[database]`
#[derive(Debug, Clone, PartialEq)]
pub struct DatabaseConfig {
    /// The SQLite file; its directory must exist.
    pub path: PathBuf,
    /// Pool size: connections open at once, at most.
    pub max_open_conns: usize,
    /// Idle connections kept open for reuse; extra ones are closed.
    pub max_idle_conns: usize,
    /// A connection older than this is closed instead of being reused.
    pub conn_max_lifetime: Duration,
    /// How long SQLite waits on a lock before it reports "busy".
    pub busy_timeout: Duration,
    /// How long a caller waits for a free pool connection before failing.
    pub pool_wait_timeout: Duration,
}

/// `[ingest]`
#[derive(Debug, Clone, PartialEq)]
pub struct IngestConfig {
    /// Entries committed in one transaction, at most.
    pub batch_size: usize,
    /// A partial batch is committed after this long.
    pub flush_interval: Duration,
    /// Entries in flight between the reader and the writer, at most.
    pub channel_capacity: usize,
    /// Bytes of lines in flight between the reader and the writer, at most
    /// (a line larger than this travels alone).
    pub channel_capacity_bytes: usize,
    /// Bytes of lines in one batch, at most (beside `batch_size`).
    pub batch_size_bytes: usize,
    /// Longer lines are stored truncated, flagged, with their real length.
    pub max_line_bytes: usize,
}

/// `[health]`
#[derive(Debug, Clone, PartialEq)]
pub struct HealthConfig {
    /// How often the pool is pinged.
    pub interval: Duration,
    /// How long one ping may take before the store counts as unhealthy.
    pub timeout: Duration,
    /// First reconnect delay.
    pub backoff_min: Duration,
    /// Reconnect delays never exceed this.
    pub backoff_max: Duration,
    /// A source whose reads fail, or hang, this long is stalled: said in
    /// the status line, the metrics and the audit log (the health page).
    pub stall_after: Duration,
}

/// `[diagnostics]`: the daemon's own log.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggingConfig {
    /// A `tracing` filter directive such as `info` or `info,exim_pilot=debug`.
    pub level: String,
    /// Where the records go and in what form.
    pub format: LogFormat,
}

/// Where and how the daemon writes its own log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// journald when stderr is connected to the journal, else text.
    Auto,
    /// The systemd journal, with structured fields.
    Journald,
    /// Human-readable lines on stderr.
    Text,
    /// One JSON object per record on stderr.
    Json,
}

impl LogFormat {
    const NAMES: [(&'static str, LogFormat); 4] = [
        ("auto", LogFormat::Auto),
        ("journald", LogFormat::Journald),
        ("text", LogFormat::Text),
        ("json", LogFormat::Json),
    ];

    /// The name used in the configuration file.
    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, format)| *format == self)
            .map_or("auto", |(name, _)| name)
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, format)| *format)
    }
}

/// Values given on the command line; they win over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--log`
    pub log_path: Option<PathBuf>,
    /// `--journal`
    pub journal: bool,
    /// `--db`
    pub database_path: Option<PathBuf>,
    /// `serve --listen`
    pub web_listen: Option<String>,
}

/// One thing wrong with one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `[section] key`
    pub key: String,
    /// What is wrong, and what was given.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Why a configuration could not be loaded. Every variant maps to exit
/// status 78 (EX_CONFIG).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The message carries the I/O error's words itself; it is not also
    /// a `source`, which would print them twice in an error chain.
    #[error("cannot read configuration file {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        error: std::io::Error,
    },
    /// TOML syntax, a wrong type, or an unknown key (the message names it).
    #[error("{}: {message}", display_source(path.as_deref()))]
    Syntax {
        /// The file, or `None` for built-in text.
        path: Option<PathBuf>,
        /// The parser's words, naming the key.
        message: String,
    },
    #[error("{}", render_problems(path.as_deref(), problems))]
    /// Values out of range or of the wrong form, every one of them.
    Invalid {
        /// The file, or `None` for built-in text.
        path: Option<PathBuf>,
        /// Each bad key, in file order.
        problems: Vec<Problem>,
    },
}

fn display_source(path: Option<&Path>) -> String {
    path.map_or_else(
        || "built-in configuration".to_owned(),
        |p| p.display().to_string(),
    )
}

fn render_problems(path: Option<&Path>, problems: &[Problem]) -> String {
    let source = display_source(path);
    problems
        .iter()
        .map(|problem| format!("{source}: {problem}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Config {
    /// Loads the configuration the way every subcommand does.
    ///
    /// `explicit` is the `--config` argument: that file must exist. Without
    /// it the default path is read when present, and the built-in defaults
    /// apply when it is not.
    pub fn load(explicit: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let (raw, source) = match explicit {
            Some(path) => (read_file(path)?, Some(path.to_path_buf())),
            None => {
                let default = Path::new(DEFAULT_CONFIG_PATH);
                match std::fs::read_to_string(default) {
                    Ok(text) => (
                        parse_toml(&text, Some(default))?,
                        Some(default.to_path_buf()),
                    ),
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                        (RawConfig::default(), None)
                    }
                    Err(error) => {
                        return Err(ConfigError::Read {
                            path: default.to_path_buf(),
                            error,
                        });
                    }
                }
            }
        };
        Config::from_raw(raw, source, overrides)
    }

    /// Parses TOML text (from `source`, for messages) into a Config.
    pub fn from_toml(
        text: &str,
        source: Option<&Path>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let raw = parse_toml(text, source)?;
        Config::from_raw(raw, source.map(Path::to_path_buf), overrides)
    }

    /// The effective configuration in the file's own shape, every key
    /// filled in. Printing it as TOML gives a file that loads back to `self`.
    pub fn to_raw(&self) -> RawConfig {
        let duration = |d: Duration| Some(humantime::format_duration(d).to_string());
        let count = |n: usize| Some(i64::try_from(n).unwrap_or(i64::MAX));
        let path = |p: &Path| Some(p.display().to_string());
        RawConfig {
            log: Some(RawLog {
                path: path(&self.log.path),
                source: Some(
                    match self.log.source {
                        LogSource::File => "file",
                        LogSource::Journal => "journal",
                    }
                    .to_owned(),
                ),
                journal_identifier: Some(self.log.journal_identifier.clone()),
                journal_unit: self.log.journal_unit.clone(),
            }),
            database: Some(RawDatabase {
                path: path(&self.database.path),
                max_open_conns: count(self.database.max_open_conns),
                max_idle_conns: count(self.database.max_idle_conns),
                conn_max_lifetime: duration(self.database.conn_max_lifetime),
                busy_timeout: duration(self.database.busy_timeout),
                pool_wait_timeout: duration(self.database.pool_wait_timeout),
            }),
            ingest: Some(RawIngest {
                batch_size: count(self.ingest.batch_size),
                flush_interval: duration(self.ingest.flush_interval),
                channel_capacity: count(self.ingest.channel_capacity),
                channel_capacity_bytes: count(self.ingest.channel_capacity_bytes),
                batch_size_bytes: count(self.ingest.batch_size_bytes),
                max_line_bytes: count(self.ingest.max_line_bytes),
            }),
            health: Some(RawHealth {
                interval: duration(self.health.interval),
                timeout: duration(self.health.timeout),
                backoff_min: duration(self.health.backoff_min),
                backoff_max: duration(self.health.backoff_max),
                stall_after: duration(self.health.stall_after),
            }),
            logging: Some(RawLogging {
                level: Some(self.logging.level.clone()),
                format: Some(self.logging.format.name().to_owned()),
            }),
            retention: Some(RawRetention {
                log_lines_days: Some(i64::from(self.retention.log_lines_days)),
                delivery_attempts_days: Some(i64::from(self.retention.delivery_attempts_days)),
                rejections_days: Some(i64::from(self.retention.rejections_days)),
                messages_days: Some(i64::from(self.retention.messages_days)),
                audit_log_days: Some(i64::from(self.retention.audit_log_days)),
                interval: duration(self.retention.interval),
            }),
            metrics: Some(RawMetrics {
                listen: Some(
                    self.metrics
                        .listen
                        .map(|address| address.to_string())
                        .unwrap_or_default(),
                ),
                textfile: Some(
                    self.metrics
                        .textfile
                        .as_deref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                ),
                interval: duration(self.metrics.interval),
                stuck_after: duration(self.metrics.stuck_after),
            }),
            web: Some(self.web.to_raw()),
            fleet: Some(FleetConfig::to_raw(self.fleet.as_ref())),
            queue: Some(self.queue.to_raw()),
        }
    }

    /// The effective configuration as TOML text.
    pub fn to_toml(&self) -> String {
        // Serialising plain strings and integers into TOML cannot fail.
        toml::to_string(&self.to_raw()).unwrap_or_default()
    }
}

/// The Exim main log of this host: see [`first_present_log`].
fn default_log_path() -> PathBuf {
    first_present_log(&[DEBIAN_MAINLOG, RHEL_MAINLOG].map(PathBuf::from))
}

/// The first candidate log that exists; else the first whose directory
/// exists, because Exim creates its log only on its first write (and again
/// after each rotation); else the first candidate.
fn first_present_log(candidates: &[PathBuf]) -> PathBuf {
    let directory_exists = |path: &&PathBuf| path.parent().is_some_and(Path::is_dir);
    candidates
        .iter()
        .find(|path| path.exists())
        .or_else(|| candidates.iter().find(directory_exists))
        .or_else(|| candidates.first())
        .cloned()
        .unwrap_or_default()
}
