//! Configuration: read the TOML file, apply command-line overrides, and turn
//! the result into a validated [`Config`] ("parse, don't validate").
//!
//! Every key is optional; with no file at all the defaults give a working
//! daemon. Every error names the file, the key and what is wrong, and all
//! problems in a file are reported together so an operator fixes them in one
//! pass.

mod raw;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use raw::RawConfig;
use raw::{RawDatabase, RawHealth, RawIngest, RawLog, RawLogging, RawRetention};

/// Where the packages install the configuration file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/exim-pilot/exim-pilot.toml";
/// Debian's and Ubuntu's Exim main log.
pub const DEBIAN_MAINLOG: &str = "/var/log/exim4/mainlog";
/// RHEL's and Fedora's Exim main log.
pub const RHEL_MAINLOG: &str = "/var/log/exim/main.log";
/// Where the packages keep the database.
pub const DEFAULT_DATABASE_PATH: &str = "/var/lib/exim-pilot/exim-pilot.db";

/// Upper bound for `max_line_bytes`: beyond this a "line" is not a log line,
/// and the reader must keep its buffers bounded.
const MAX_LINE_BYTES_LIMIT: i64 = 64 * 1024 * 1024;
/// Upper bound for the pool size; SQLite has one writer, so more connections
/// only add file descriptors.
const MAX_OPEN_CONNS_LIMIT: i64 = 1000;

/// The validated configuration. Construct it with [`Config::load`] or
/// [`Config::from_raw`]; every value in it has been checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file this came from, if any (for messages only).
    pub source: Option<PathBuf>,
    pub log: LogConfig,
    pub database: DatabaseConfig,
    pub ingest: IngestConfig,
    pub health: HealthConfig,
    pub logging: LoggingConfig,
    pub retention: RetentionConfig,
}

/// `[retention]`: days each kind of row is kept; 0 keeps it forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionConfig {
    pub log_lines_days: u32,
    pub delivery_attempts_days: u32,
    pub rejections_days: u32,
    pub messages_days: u32,
    pub audit_log_days: u32,
    /// How often the daemon prunes.
    pub interval: Duration,
}

/// `[log]`
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// The Exim main log to tail.
    pub path: PathBuf,
}

/// `[database]`
#[derive(Debug, Clone, PartialEq)]
pub struct DatabaseConfig {
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
}

/// `[diagnostics]`: the daemon's own log.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggingConfig {
    /// A `tracing` filter directive such as `info` or `info,exim_pilot=debug`.
    pub level: String,
    pub format: LogFormat,
}

/// Where and how the daemon writes its own log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// journald when stderr is connected to the journal, else text.
    Auto,
    Journald,
    Text,
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
    pub log_path: Option<PathBuf>,
    pub database_path: Option<PathBuf>,
}

/// One thing wrong with one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `[section] key`
    pub key: String,
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
        path: PathBuf,
        error: std::io::Error,
    },
    /// TOML syntax, a wrong type, or an unknown key (the message names it).
    #[error("{}: {message}", display_source(path.as_deref()))]
    Syntax {
        path: Option<PathBuf>,
        message: String,
    },
    #[error("{}", render_problems(path.as_deref(), problems))]
    Invalid {
        path: Option<PathBuf>,
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

    /// Checks every key of `raw` (after applying `overrides`) and collects
    /// all problems before failing.
    pub fn from_raw(
        raw: RawConfig,
        source: Option<PathBuf>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let mut check = Checker::default();

        let log = raw.log.unwrap_or_default();
        let log_path = match &overrides.log_path {
            Some(path) => Some(path.clone()),
            None => check.path("[log] path", log.path),
        }
        .unwrap_or_else(default_log_path);
        let log_key = if overrides.log_path.is_some() {
            "--log"
        } else {
            "[log] path"
        };
        check.log_file(log_key, &log_path);

        let db = raw.database.unwrap_or_default();
        let db_path = match &overrides.database_path {
            Some(path) => Some(path.clone()),
            None => check.path("[database] path", db.path),
        }
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATABASE_PATH));
        let db_key = if overrides.database_path.is_some() {
            "--db"
        } else {
            "[database] path"
        };
        check.database_file(db_key, &db_path);
        let max_open_conns = check.count(
            "[database] max_open_conns",
            db.max_open_conns,
            MAX_OPEN_CONNS,
        );
        let max_idle_conns = check.count(
            "[database] max_idle_conns",
            db.max_idle_conns,
            MAX_IDLE_CONNS,
        );
        if max_idle_conns > max_open_conns {
            check.problem(
                "[database] max_idle_conns",
                format!(
                    "must not exceed [database] max_open_conns ({max_open_conns}), got {max_idle_conns}"
                ),
            );
        }
        let database = DatabaseConfig {
            path: db_path,
            max_open_conns,
            max_idle_conns,
            conn_max_lifetime: check.duration(
                "[database] conn_max_lifetime",
                db.conn_max_lifetime,
                CONN_MAX_LIFETIME,
            ),
            busy_timeout: check.duration("[database] busy_timeout", db.busy_timeout, BUSY_TIMEOUT),
            pool_wait_timeout: check.duration(
                "[database] pool_wait_timeout",
                db.pool_wait_timeout,
                POOL_WAIT_TIMEOUT,
            ),
        };

        let ingest = raw.ingest.unwrap_or_default();
        let ingest = IngestConfig {
            batch_size: check.count("[ingest] batch_size", ingest.batch_size, BATCH_SIZE),
            flush_interval: check.duration(
                "[ingest] flush_interval",
                ingest.flush_interval,
                FLUSH_INTERVAL,
            ),
            channel_capacity: check.count(
                "[ingest] channel_capacity",
                ingest.channel_capacity,
                CHANNEL_CAPACITY,
            ),
            channel_capacity_bytes: check.count(
                "[ingest] channel_capacity_bytes",
                ingest.channel_capacity_bytes,
                FLIGHT_BYTES,
            ),
            batch_size_bytes: check.count(
                "[ingest] batch_size_bytes",
                ingest.batch_size_bytes,
                FLIGHT_BYTES,
            ),
            max_line_bytes: check.count(
                "[ingest] max_line_bytes",
                ingest.max_line_bytes,
                MAX_LINE_BYTES,
            ),
        };

        let health = raw.health.unwrap_or_default();
        let health = HealthConfig {
            interval: check.duration("[health] interval", health.interval, HEALTH_INTERVAL),
            timeout: check.duration("[health] timeout", health.timeout, HEALTH_TIMEOUT),
            backoff_min: check.duration("[health] backoff_min", health.backoff_min, BACKOFF_MIN),
            backoff_max: check.duration("[health] backoff_max", health.backoff_max, BACKOFF_MAX),
        };
        if health.backoff_min > health.backoff_max {
            check.problem(
                "[health] backoff_min",
                format!(
                    "must not exceed [health] backoff_max ({}), got {}",
                    humantime::format_duration(health.backoff_max),
                    humantime::format_duration(health.backoff_min)
                ),
            );
        }

        let logging = raw.logging.unwrap_or_default();
        let level = logging.level.unwrap_or_else(|| "info".to_owned());
        if let Err(err) = tracing_subscriber::EnvFilter::try_new(&level) {
            check.problem(
                "[diagnostics] level",
                format!("not a valid level or filter ({err}), got {level:?}"),
            );
        }
        let format = match logging.format {
            None => LogFormat::Auto,
            Some(name) => LogFormat::from_name(&name).unwrap_or_else(|| {
                check.problem(
                    "[diagnostics] format",
                    format!("must be one of auto, journald, text, json, got {name:?}"),
                );
                LogFormat::Auto
            }),
        };

        let retention = raw.retention.unwrap_or_default();
        let mut days = |key: &str, value: Option<i64>, default: i64| {
            u32::try_from(check.count(key, value, days_kept(default))).unwrap_or(0)
        };
        let retention = RetentionConfig {
            log_lines_days: days("[retention] log_lines_days", retention.log_lines_days, 90),
            delivery_attempts_days: days(
                "[retention] delivery_attempts_days",
                retention.delivery_attempts_days,
                180,
            ),
            rejections_days: days("[retention] rejections_days", retention.rejections_days, 90),
            messages_days: days("[retention] messages_days", retention.messages_days, 365),
            audit_log_days: days("[retention] audit_log_days", retention.audit_log_days, 730),
            interval: check.duration(
                "[retention] interval",
                retention.interval,
                RETENTION_INTERVAL,
            ),
        };

        if !check.problems.is_empty() {
            return Err(ConfigError::Invalid {
                path: source,
                problems: check.problems,
            });
        }
        Ok(Config {
            source,
            log: LogConfig { path: log_path },
            database,
            ingest,
            health,
            logging: LoggingConfig { level, format },
            retention,
        })
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

/// What a file system object is, for messages.
fn file_kind(metadata: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let kind = metadata.file_type();
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

fn read_file(path: &Path) -> Result<RawConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    parse_toml(&text, Some(path))
}

fn parse_toml(text: &str, source: Option<&Path>) -> Result<RawConfig, ConfigError> {
    toml::from_str(text).map_err(|err| {
        // serde stops at the first wrong key; an operator fixing a file
        // wants them all. Valid TOML is checked again key by key; with one
        // problem, the parser's own message (line, column) is the better.
        let problems = text
            .parse::<toml::Table>()
            .map(|table| key_problems(&table))
            .unwrap_or_default();
        if problems.len() > 1 {
            ConfigError::Invalid {
                path: source.map(Path::to_path_buf),
                problems,
            }
        } else {
            ConfigError::Syntax {
                path: source.map(Path::to_path_buf),
                message: err.to_string().trim_end().to_owned(),
            }
        }
    })
}

/// The message of a TOML error without the "in `section.key`" line that
/// follows it (the problem names the key already).
fn first_line(err: &toml::de::Error) -> String {
    err.to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .trim_end()
        .to_owned()
}

/// Each key of a valid TOML document that [`RawConfig`] rejects (a wrong
/// type, an unknown key or section), checked alone.
fn key_problems(table: &toml::Table) -> Vec<Problem> {
    let check = |section: &str, value: toml::Value| {
        let alone = toml::Table::from_iter([(section.to_owned(), value)]);
        toml::Value::Table(alone).try_into::<RawConfig>().err()
    };
    let mut problems = Vec::new();
    for (section, value) in table {
        match value {
            toml::Value::Table(keys) => {
                for (key, value) in keys {
                    let one =
                        toml::Value::Table(toml::Table::from_iter([(key.clone(), value.clone())]));
                    if let Some(err) = check(section, one) {
                        problems.push(Problem {
                            key: format!("[{section}] {key}"),
                            message: first_line(&err),
                        });
                    }
                }
            }
            other => {
                if let Some(err) = check(section, other.clone()) {
                    problems.push(Problem {
                        key: section.clone(),
                        message: first_line(&err),
                    });
                }
            }
        }
    }
    problems
}

/// A key's default and the range its value must fall in (both ends
/// included). Every key has one, documented in the packaged configuration.
#[derive(Debug, Clone, Copy)]
struct Range<T> {
    default: T,
    min: T,
    max: T,
}

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

const MAX_OPEN_CONNS: Range<i64> = Range {
    default: 10,
    min: 1,
    max: MAX_OPEN_CONNS_LIMIT,
};
const MAX_IDLE_CONNS: Range<i64> = Range {
    default: 5,
    min: 0,
    max: MAX_OPEN_CONNS_LIMIT,
};
const CONN_MAX_LIFETIME: Range<Duration> = Range {
    default: secs(30 * 60),
    min: secs(1),
    max: secs(7 * 86_400),
};
/// A writer waiting on a lock feeds no watchdog (`WatchdogSec=30s`).
const BUSY_TIMEOUT: Range<Duration> = Range {
    default: secs(5),
    min: ms(0),
    max: secs(20),
};
const POOL_WAIT_TIMEOUT: Range<Duration> = Range {
    default: secs(10),
    min: ms(1),
    max: secs(20),
};
const BATCH_SIZE: Range<i64> = Range {
    default: 5_000,
    min: 1,
    max: 1_000_000,
};
/// The idle writer feeds the watchdog once per flush interval at least.
const FLUSH_INTERVAL: Range<Duration> = Range {
    default: ms(100),
    min: ms(1),
    max: secs(10),
};
const CHANNEL_CAPACITY: Range<i64> = Range {
    default: 8192,
    min: 1,
    max: 1_000_000,
};
/// Bytes of lines in the channel, and in a batch: with both full, memory
/// stays in the tens of MiB whatever the lines' length.
const FLIGHT_BYTES: Range<i64> = Range {
    default: 4 * 1024 * 1024,
    min: 64 * 1024,
    max: 1024 * 1024 * 1024,
};
const MAX_LINE_BYTES: Range<i64> = Range {
    default: 1024 * 1024,
    min: 256,
    max: MAX_LINE_BYTES_LIMIT,
};
const HEALTH_INTERVAL: Range<Duration> = Range {
    default: secs(10),
    min: ms(10),
    max: secs(3600),
};
const HEALTH_TIMEOUT: Range<Duration> = Range {
    default: secs(5),
    min: ms(1),
    max: secs(60),
};
const BACKOFF_MIN: Range<Duration> = Range {
    default: ms(250),
    min: ms(1),
    max: secs(3600),
};
const BACKOFF_MAX: Range<Duration> = Range {
    default: secs(30),
    min: ms(1),
    max: secs(3600),
};
const RETENTION_INTERVAL: Range<Duration> = Range {
    default: secs(86_400),
    min: secs(1),
    max: secs(30 * 86_400),
};
/// Days kept: 0 keeps forever; a century is the most that means anything.
const fn days_kept(default: i64) -> Range<i64> {
    Range {
        default,
        min: 0,
        max: 36_500,
    }
}

/// Collects problems while converting raw values, so that one run reports
/// every bad key.
#[derive(Default)]
struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn problem(&mut self, key: &str, message: String) {
        self.problems.push(Problem {
            key: key.to_owned(),
            message,
        });
    }

    fn count(&mut self, key: &str, value: Option<i64>, range: Range<i64>) -> usize {
        let default = usize::try_from(range.default).unwrap_or(0);
        let Some(value) = value else {
            return default;
        };
        if value < range.min {
            self.problem(key, format!("must be at least {}, got {value}", range.min));
            return default;
        }
        if value > range.max {
            self.problem(key, format!("must be at most {}, got {value}", range.max));
            return default;
        }
        usize::try_from(value).unwrap_or(default)
    }

    fn duration(&mut self, key: &str, value: Option<String>, range: Range<Duration>) -> Duration {
        let Some(text) = value else {
            return range.default;
        };
        let bound = |d: Duration| humantime::format_duration(d).to_string();
        match humantime::parse_duration(text.trim()) {
            Ok(duration) if duration < range.min => {
                self.problem(
                    key,
                    format!("must be at least {}, got {text:?}", bound(range.min)),
                );
                range.default
            }
            Ok(duration) if duration > range.max => {
                self.problem(
                    key,
                    format!("must be at most {}, got {text:?}", bound(range.max)),
                );
                range.default
            }
            Ok(duration) => duration,
            Err(err) => {
                self.problem(
                    key,
                    format!("not a duration such as \"5s\" or \"30m\" ({err}), got {text:?}"),
                );
                range.default
            }
        }
    }

    fn path(&mut self, key: &str, value: Option<String>) -> Option<PathBuf> {
        let text = value?;
        if text.trim().is_empty() {
            self.problem(key, "must not be empty".to_owned());
            return None;
        }
        Some(PathBuf::from(text))
    }

    /// The log may be missing (Exim creates it on its first write), but a
    /// path that names something else is a mistake that retrying will not
    /// mend.
    fn log_file(&mut self, key: &str, path: &Path) {
        if self.nul_free(key, path)
            && let Ok(metadata) = std::fs::metadata(path)
            && !metadata.is_file()
        {
            self.problem(
                key,
                format!(
                    "must name Exim's main log, a regular file; {} is {}",
                    path.display(),
                    file_kind(&metadata)
                ),
            );
        }
    }

    /// The database is created when missing; a directory there is a
    /// mistake.
    fn database_file(&mut self, key: &str, path: &Path) {
        if self.nul_free(key, path)
            && let Ok(metadata) = std::fs::metadata(path)
            && metadata.is_dir()
        {
            self.problem(
                key,
                format!(
                    "must name the database file, not a directory: {}",
                    path.display()
                ),
            );
        }
    }

    fn nul_free(&mut self, key: &str, path: &Path) -> bool {
        let clean = !path.as_os_str().as_encoded_bytes().contains(&0);
        if !clean {
            self.problem(key, "must not contain a NUL byte".to_owned());
        }
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Some(Path::new("test.toml")), &Overrides::default())
    }

    fn problems(text: &str) -> String {
        load(text)
            .expect_err("configuration should be rejected")
            .to_string()
    }

    #[test]
    fn empty_file_gives_the_documented_defaults() {
        let config = load("").unwrap();
        assert_eq!(config.database.path, PathBuf::from(DEFAULT_DATABASE_PATH));
        assert_eq!(config.database.max_open_conns, 10);
        assert_eq!(config.database.max_idle_conns, 5);
        assert_eq!(config.database.conn_max_lifetime, Duration::from_secs(1800));
        assert_eq!(config.database.busy_timeout, Duration::from_secs(5));
        assert_eq!(config.logging.format, LogFormat::Auto);
        assert_eq!(config.logging.level, "info");
        assert!(
            config.log.path == Path::new(DEBIAN_MAINLOG)
                || config.log.path == Path::new(RHEL_MAINLOG)
        );
    }

    #[test]
    fn every_key_is_read() {
        let config = load(
            r#"
            [log]
            path = "/srv/exim/mainlog"
            [database]
            path = "/tmp/x.db"
            max_open_conns = 4
            max_idle_conns = 2
            conn_max_lifetime = "1h 5m"
            busy_timeout = "250ms"
            pool_wait_timeout = "3s"
            [ingest]
            batch_size = 10
            flush_interval = "1s"
            channel_capacity = 20
            channel_capacity_bytes = 100000
            batch_size_bytes = 200000
            max_line_bytes = 4096
            [health]
            interval = "2s"
            timeout = "1s"
            backoff_min = "10ms"
            backoff_max = "1m"
            [diagnostics]
            level = "debug"
            format = "json"
            [retention]
            log_lines_days = 11
            delivery_attempts_days = 12
            rejections_days = 13
            messages_days = 14
            audit_log_days = 15
            interval = "2h"
            "#,
        )
        .unwrap();
        assert_eq!(config.log.path, PathBuf::from("/srv/exim/mainlog"));
        assert_eq!(config.database.max_open_conns, 4);
        assert_eq!(config.database.max_idle_conns, 2);
        assert_eq!(config.database.conn_max_lifetime, Duration::from_secs(3900));
        assert_eq!(config.database.busy_timeout, Duration::from_millis(250));
        assert_eq!(config.database.pool_wait_timeout, Duration::from_secs(3));
        assert_eq!(config.ingest.batch_size, 10);
        assert_eq!(config.ingest.flush_interval, Duration::from_secs(1));
        assert_eq!(config.ingest.channel_capacity, 20);
        assert_eq!(config.ingest.max_line_bytes, 4096);
        assert_eq!(config.health.interval, Duration::from_secs(2));
        assert_eq!(config.health.timeout, Duration::from_secs(1));
        assert_eq!(config.health.backoff_min, Duration::from_millis(10));
        assert_eq!(config.health.backoff_max, Duration::from_secs(60));
        assert_eq!(config.logging.level, "debug");
        assert_eq!(config.logging.format, LogFormat::Json);
        assert_eq!(config.ingest.channel_capacity_bytes, 100_000);
        assert_eq!(config.ingest.batch_size_bytes, 200_000);
        let retention = config.retention;
        assert_eq!(
            (
                retention.log_lines_days,
                retention.delivery_attempts_days,
                retention.rejections_days,
                retention.messages_days,
                retention.audit_log_days,
            ),
            (11, 12, 13, 14, 15)
        );
        assert_eq!(retention.interval, Duration::from_secs(7200));
    }

    #[test]
    fn the_old_name_of_diagnostics_is_still_accepted() {
        let config = load("[logging]\nlevel = \"debug\"\n").unwrap();
        assert_eq!(config.logging.level, "debug");
        assert!(config.to_toml().contains("[diagnostics]"));
    }

    #[test]
    fn the_old_name_of_log_lines_days_is_still_accepted() {
        let config = load("[retention]\nlog_entries_days = 7\n").unwrap();
        assert_eq!(config.retention.log_lines_days, 7);
        assert!(config.to_toml().contains("log_lines_days = 7"));
    }

    #[test]
    fn errors_name_the_file_the_key_and_the_value() {
        assert_eq!(
            problems("[database]\nmax_open_conns = 0\n"),
            "test.toml: [database] max_open_conns: must be at least 1, got 0"
        );
        let message = problems("[database]\nbusy_timeout = \"soon\"\n");
        assert!(
            message.starts_with("test.toml: [database] busy_timeout: not a duration"),
            "{message}"
        );
        assert!(message.ends_with("got \"soon\""), "{message}");
    }

    #[test]
    fn all_problems_are_reported_together() {
        let message = problems(
            "[database]\nmax_open_conns = 2\nmax_idle_conns = 3\n[ingest]\nbatch_size = -1\n[logging]\nformat = \"xml\"\n",
        );
        let lines: Vec<&str> = message.lines().collect();
        assert_eq!(lines.len(), 3, "{message}");
        assert!(lines[0].contains("[database] max_idle_conns: must not exceed"));
        assert!(lines[1].contains("[ingest] batch_size: must be at least 1, got -1"));
        assert!(
            lines[2].contains("[diagnostics] format: must be one of auto, journald, text, json")
        );
    }

    #[test]
    fn unknown_keys_and_sections_are_rejected_by_name() {
        let message = problems("[database]\nmax_open_connections = 3\n");
        assert!(message.starts_with("test.toml: "), "{message}");
        assert!(message.contains("max_open_connections"), "{message}");
        let message = problems("[datbase]\npath = \"x\"\n");
        assert!(message.contains("datbase"), "{message}");
    }

    #[test]
    fn every_wrong_type_and_unknown_key_is_reported_not_only_the_first() {
        let message = problems(
            "[ingest]\nbatch_size = \"many\"\nflush_interval = 5\n[database]\nmax_open_conns = \"ten\"\nsize = 3\n",
        );
        let lines: Vec<&str> = message.lines().collect();
        assert_eq!(lines.len(), 4, "{message}");
        for key in [
            "[ingest] batch_size",
            "[ingest] flush_interval",
            "[database] max_open_conns",
            "[database] size",
        ] {
            assert!(
                lines
                    .iter()
                    .any(|l| l.starts_with(&format!("test.toml: {key}: "))),
                "{key}: {message}"
            );
        }
    }

    #[test]
    fn wrong_types_name_the_key() {
        let message = problems("[ingest]\nbatch_size = \"many\"\n");
        assert!(message.contains("batch_size"), "{message}");
    }

    #[test]
    fn backoff_bounds_and_level_are_checked() {
        let message = problems("[health]\nbackoff_min = \"2m\"\nbackoff_max = \"1m\"\n");
        assert!(
            message.contains("[health] backoff_min: must not exceed"),
            "{message}"
        );
        let message = problems("[logging]\nlevel = \"loud=[\"\n");
        assert!(message.contains("[diagnostics] level"), "{message}");
    }

    #[test]
    fn every_duration_and_count_has_an_upper_bound() {
        let keys = [
            ("database", "conn_max_lifetime"),
            ("database", "busy_timeout"),
            ("database", "pool_wait_timeout"),
            ("ingest", "flush_interval"),
            ("health", "interval"),
            ("health", "timeout"),
            ("health", "backoff_min"),
            ("health", "backoff_max"),
            ("retention", "interval"),
        ];
        for (section, key) in keys {
            for value in ["400days", "1000years", "584542046090years"] {
                let message = problems(&format!("[{section}]\n{key} = {value:?}\n"));
                assert!(
                    message.contains(&format!("[{section}] {key}: ")),
                    "{section}.{key} = {value}: {message}"
                );
            }
        }
        let counts = [
            ("database", "max_open_conns"),
            ("database", "max_idle_conns"),
            ("ingest", "batch_size"),
            ("ingest", "channel_capacity"),
            ("ingest", "max_line_bytes"),
            ("retention", "log_lines_days"),
            ("retention", "log_entries_days"),
            ("retention", "messages_days"),
        ];
        for (section, key) in counts {
            let message = problems(&format!("[{section}]\n{key} = {}\n", i64::MAX));
            assert!(
                message.contains("must be at most"),
                "{section}.{key}: {message}"
            );
        }
    }

    #[test]
    fn log_and_database_paths_that_name_the_wrong_thing_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let dir_text = dir.path().display().to_string();
        let message = problems(&format!("[log]\npath = {dir_text:?}\n"));
        assert!(
            message.contains("[log] path: must name Exim's main log, a regular file")
                && message.contains("is a directory"),
            "{message}"
        );
        let message = problems("[log]\npath = \"/var/log/exim4/main\\u0000log\"\n");
        assert!(
            message.contains("[log] path: must not contain a NUL byte"),
            "{message}"
        );
        let message = problems(&format!("[database]\npath = {dir_text:?}\n"));
        assert!(
            message.contains("[database] path: must name the database file, not a directory"),
            "{message}"
        );
        let overrides = Overrides {
            log_path: Some(PathBuf::from("/dev/zero")),
            database_path: Some(dir.path().to_path_buf()),
        };
        let message = Config::from_toml("", None, &overrides)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("--log: must name Exim's main log") && message.contains("a device"),
            "{message}"
        );
        assert!(
            message.contains("--db: must name the database file"),
            "{message}"
        );
    }

    #[test]
    fn overrides_win_over_the_file() {
        let overrides = Overrides {
            log_path: Some(PathBuf::from("/override/mainlog")),
            database_path: Some(PathBuf::from("/override/db")),
        };
        let config = Config::from_toml(
            "[log]\npath = \"/file/mainlog\"\n[database]\npath = \"/file/db\"\n",
            None,
            &overrides,
        )
        .unwrap();
        assert_eq!(config.log.path, PathBuf::from("/override/mainlog"));
        assert_eq!(config.database.path, PathBuf::from("/override/db"));
    }

    #[test]
    fn printed_configuration_loads_back_unchanged() {
        let config = load(
            "[database]\nconn_max_lifetime = \"90m\"\nbusy_timeout = \"1500ms\"\n[logging]\nformat = \"text\"\n",
        )
        .unwrap();
        let printed = config.to_toml();
        let reloaded = load(&printed).unwrap();
        assert_eq!(
            Config {
                source: None,
                ..reloaded
            },
            Config {
                source: None,
                ..config
            }
        );
    }

    #[test]
    fn missing_explicit_file_is_an_error_naming_it() {
        let err = Config::load(
            Some(Path::new("/nonexistent/exim-pilot.toml")),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }));
        assert!(err.to_string().contains("/nonexistent/exim-pilot.toml"));
    }

    #[test]
    fn default_log_is_the_existing_file_else_the_existing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let debian = dir.path().join("exim4/mainlog");
        let rhel = dir.path().join("exim/main.log");
        let candidates = [debian.clone(), rhel.clone()];
        assert_eq!(first_present_log(&candidates), debian, "nothing exists");

        std::fs::create_dir(rhel.parent().unwrap()).unwrap();
        assert_eq!(
            first_present_log(&candidates),
            rhel,
            "Exim's log directory exists before its first line"
        );

        std::fs::create_dir(debian.parent().unwrap()).unwrap();
        std::fs::write(&rhel, "").unwrap();
        assert_eq!(
            first_present_log(&candidates),
            rhel,
            "a file beats a directory"
        );
    }
}
