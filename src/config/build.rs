//! Turning the file as written ([`RawConfig`]) and the command line's
//! overrides into a validated [`Config`]: one function per section, every
//! problem collected before failing.

use std::path::PathBuf;

use super::check::{
    BACKOFF_MAX, BACKOFF_MIN, BATCH_BYTES, BATCH_SIZE, BUSY_TIMEOUT, CHANNEL_CAPACITY,
    CONN_MAX_LIFETIME, Checker, FLIGHT_BYTES, FLUSH_INTERVAL, HEALTH_INTERVAL, HEALTH_TIMEOUT,
    MAX_IDLE_CONNS, MAX_LINE_BYTES, MAX_OPEN_CONNS, METRICS_INTERVAL, POOL_WAIT_TIMEOUT,
    RETENTION_INTERVAL, SESSION_LIFETIME, STALL_AFTER, STUCK_AFTER, days_kept,
};
use super::raw::{
    RawConfig, RawDatabase, RawHealth, RawIngest, RawLog, RawLogging, RawMetrics, RawRetention,
    RawWeb,
};
use super::{
    Config, ConfigError, DEFAULT_DATABASE_PATH, DatabaseConfig, HealthConfig, IngestConfig,
    LogConfig, LogFormat, LogSource, LoggingConfig, MetricsConfig, Overrides, RetentionConfig,
    WebAuth, WebConfig, WebRole, WebUser, default_log_path,
};

impl Config {
    /// Checks every key of `raw` (after applying `overrides`) and collects
    /// all problems before failing.
    pub fn from_raw(
        raw: RawConfig,
        source: Option<PathBuf>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let mut check = Checker::default();
        let log = log(&mut check, raw.log.unwrap_or_default(), overrides);
        let database = database(&mut check, raw.database.unwrap_or_default(), overrides);
        let ingest = ingest(&mut check, raw.ingest.unwrap_or_default());
        let health = health(&mut check, raw.health.unwrap_or_default());
        let logging = diagnostics(&mut check, raw.logging.unwrap_or_default());
        let retention = retention(&mut check, raw.retention.unwrap_or_default());
        let metrics = metrics(&mut check, raw.metrics.unwrap_or_default());
        let web = web(&mut check, raw.web.unwrap_or_default(), overrides);
        let fleet = super::fleet::fleet(&mut check, raw.fleet.unwrap_or_default());
        let queue = super::QueueConfig::check(
            &mut check,
            raw.queue.unwrap_or_default(),
            matches!(web.auth, WebAuth::None),
        );
        if !check.problems.is_empty() {
            return Err(ConfigError::Invalid {
                path: source,
                problems: check.problems,
            });
        }
        Ok(Config {
            source,
            log,
            database,
            ingest,
            health,
            logging,
            retention,
            metrics,
            web,
            fleet,
            queue,
        })
    }
}

/// `[log]`, or `--log`.
fn log(check: &mut Checker, log: RawLog, overrides: &Overrides) -> LogConfig {
    let source = if overrides.journal {
        LogSource::Journal
    } else {
        match log.source.as_deref() {
            None | Some("file") => LogSource::File,
            Some("journal") => LogSource::Journal,
            Some(other) => {
                check.problem(
                    "[log] source",
                    format!("{other:?} is not a source: \"file\" or \"journal\""),
                );
                LogSource::File
            }
        }
    };
    let path = match &overrides.log_path {
        Some(path) => Some(path.clone()),
        None => check.path("[log] path", log.path),
    }
    .unwrap_or_else(default_log_path);
    let key = if overrides.log_path.is_some() {
        "--log"
    } else {
        "[log] path"
    };
    if source == LogSource::File {
        check.log_file(key, &path);
    }
    let journal_identifier = log.journal_identifier.unwrap_or_else(|| "exim".to_owned());
    if journal_identifier.is_empty() || journal_identifier.contains(['=', '\n']) {
        check.problem(
            "[log] journal_identifier",
            format!("{journal_identifier:?} is not a syslog identifier"),
        );
    }
    if let Some(unit) = &log.journal_unit
        && (unit.is_empty() || unit.contains(['=', '\n', ' ']))
    {
        check.problem("[log] journal_unit", format!("{unit:?} is not a unit name"));
    }
    LogConfig {
        path,
        source,
        journal_identifier,
        journal_unit: log.journal_unit,
    }
}

/// `[database]`, or `--db` for its path.
fn database(check: &mut Checker, db: RawDatabase, overrides: &Overrides) -> DatabaseConfig {
    let path = match &overrides.database_path {
        Some(path) => Some(path.clone()),
        None => check.path("[database] path", db.path),
    }
    .unwrap_or_else(|| PathBuf::from(DEFAULT_DATABASE_PATH));
    let key = if overrides.database_path.is_some() {
        "--db"
    } else {
        "[database] path"
    };
    check.database_file(key, &path);
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
    DatabaseConfig {
        path,
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
    }
}

/// `[ingest]`
fn ingest(check: &mut Checker, ingest: RawIngest) -> IngestConfig {
    IngestConfig {
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
            BATCH_BYTES,
        ),
        max_line_bytes: check.count(
            "[ingest] max_line_bytes",
            ingest.max_line_bytes,
            MAX_LINE_BYTES,
        ),
    }
}

/// `[health]`
fn health(check: &mut Checker, health: RawHealth) -> HealthConfig {
    let health = HealthConfig {
        interval: check.duration("[health] interval", health.interval, HEALTH_INTERVAL),
        timeout: check.duration("[health] timeout", health.timeout, HEALTH_TIMEOUT),
        backoff_min: check.duration("[health] backoff_min", health.backoff_min, BACKOFF_MIN),
        backoff_max: check.duration("[health] backoff_max", health.backoff_max, BACKOFF_MAX),
        stall_after: check.duration("[health] stall_after", health.stall_after, STALL_AFTER),
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
    health
}

/// `[diagnostics]` (formerly `[logging]`)
fn diagnostics(check: &mut Checker, logging: RawLogging) -> LoggingConfig {
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
    LoggingConfig { level, format }
}

/// `[retention]`
fn retention(check: &mut Checker, retention: RawRetention) -> RetentionConfig {
    let mut days = |key: &str, value: Option<i64>, default: i64| {
        u32::try_from(check.count(key, value, days_kept(default))).unwrap_or(0)
    };
    RetentionConfig {
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
    }
}

/// `[metrics]`. Only the forms are checked here: whether the address can
/// be bound and the textfile's directory written is for the daemon to
/// find out (other commands read this file too, without those rights).
fn metrics(check: &mut Checker, metrics: RawMetrics) -> MetricsConfig {
    let listen = match metrics.listen.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => match text.parse::<std::net::SocketAddr>() {
            Ok(address) if address.port() == 0 => {
                check.problem(
                    "[metrics] listen",
                    format!("{text:?} has port 0; give the port Prometheus scrapes, such as 9353"),
                );
                None
            }
            Ok(address) => Some(address),
            Err(_) => {
                check.problem(
                    "[metrics] listen",
                    format!(
                        "{text:?} is not an address and port such as \"127.0.0.1:9353\" or \"[::1]:9353\" \
                         (\"\" serves no metrics)"
                    ),
                );
                None
            }
        },
    };
    let textfile = match metrics.textfile.as_deref() {
        None | Some("") => None,
        Some(text) => {
            let path = PathBuf::from(text);
            if !check.nul_free("[metrics] textfile", &path) {
                None
            } else if !path.is_absolute() {
                check.problem(
                    "[metrics] textfile",
                    format!("must be an absolute path, got {text:?}"),
                );
                None
            } else if path.extension().is_none_or(|e| e != "prom") || path.file_name().is_none() {
                check.problem(
                    "[metrics] textfile",
                    format!(
                        "must name a file ending in .prom (node_exporter's textfile collector \
                         reads only those), got {text:?}"
                    ),
                );
                None
            } else {
                Some(path)
            }
        }
    };
    MetricsConfig {
        listen,
        textfile,
        interval: check.duration("[metrics] interval", metrics.interval, METRICS_INTERVAL),
        stuck_after: check.duration("[metrics] stuck_after", metrics.stuck_after, STUCK_AFTER),
    }
}

/// `[web] server_names`: host names (letters, digits, `-` and `.`), at
/// most 32 of them.
fn server_names(check: &mut Checker, names: Vec<String>) -> Vec<String> {
    if names.len() > 32 {
        check.problem(
            "[web] server_names",
            format!("at most 32 names, got {}", names.len()),
        );
        return Vec::new();
    }
    let mut kept = Vec::new();
    for name in names {
        let trimmed = name.trim().trim_end_matches('.').to_ascii_lowercase();
        let valid = !trimmed.is_empty()
            && trimmed.len() <= 253
            && trimmed.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if valid {
            kept.push(trimmed);
        } else {
            check.problem(
                "[web] server_names",
                format!("{name:?} is not a host name (letters, digits, '-' and '.'; an address needs no entry)"),
            );
        }
    }
    kept
}

/// The web view's default address: loopback only.
pub const DEFAULT_WEB_LISTEN: &str = "127.0.0.1:8025";

/// `[web]`, or `serve --listen`.
///
/// Long because it checks each key of the section in turn, and the keys
/// depend on each other (`users` and the proxy keys on `auth`, a listen
/// address beyond loopback on authentication): split, each check would
/// need the others' results passed in.
fn web(check: &mut Checker, web: RawWeb, overrides: &Overrides) -> WebConfig {
    let (key, text) = match &overrides.web_listen {
        Some(text) => ("--listen", Some(text.clone())),
        None => ("[web] listen", web.listen),
    };
    let text = text.unwrap_or_else(|| DEFAULT_WEB_LISTEN.to_owned());
    let default_listen = std::net::SocketAddr::from(([127, 0, 0, 1], 8025));
    let listen = match text.trim().parse::<std::net::SocketAddr>() {
        Ok(address) => address,
        Err(_) => {
            check.problem(
                key,
                format!(
                    "{text:?} is not an address and port such as \"127.0.0.1:8025\" or \"[::1]:8025\""
                ),
            );
            default_listen
        }
    };
    let role = |check: &mut Checker, key: &str, value: Option<&str>| match value {
        None | Some("viewer") => WebRole::Viewer,
        Some("admin") => WebRole::Admin,
        Some(other) => {
            check.problem(
                key,
                format!("{other:?} is not a role: \"viewer\" or \"admin\""),
            );
            WebRole::Viewer
        }
    };
    let auth = match web.auth.as_deref() {
        None | Some("none") => WebAuth::None,
        Some("users") => {
            let users: Vec<WebUser> = web
                .users
                .unwrap_or_default()
                .into_iter()
                .enumerate()
                .map(|(index, user)| {
                    let key = |field: &str| format!("[[web.users]] #{} {field}", index + 1);
                    let name = user.name.unwrap_or_default();
                    if name.is_empty() || name.contains(['|', '\n']) || name.len() > 64 {
                        check.problem(&key("name"), format!("{name:?} is not a user name (1 to 64 bytes, no | or newline)"));
                    }
                    let password_hash = user.password_hash.unwrap_or_default();
                    if !super::web::is_password_hash(&password_hash) {
                        check.problem(
                            &key("password_hash"),
                            "is not a password hash: make one with `exim-pilot serve --hash-password`".to_owned(),
                        );
                    }
                    WebUser {
                        name,
                        password_hash,
                        role: role(check, &key("role"), user.role.as_deref()),
                    }
                })
                .collect();
            if users.is_empty() {
                check.problem(
                    "[web] auth",
                    "\"users\" needs at least one [[web.users]]".to_owned(),
                );
            }
            WebAuth::Users(users)
        }
        Some("proxy") => {
            let header = web
                .proxy_user_header
                .unwrap_or_else(|| "X-Remote-User".to_owned());
            let token = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
            if header.is_empty() || !header.bytes().all(token) {
                check.problem(
                    "[web] proxy_user_header",
                    format!("{header:?} is not a header name"),
                );
            }
            let addresses: Vec<std::net::IpAddr> = web
                .proxy_addresses
                .unwrap_or_default()
                .iter()
                .filter_map(|text| match text.parse() {
                    Ok(address) => Some(address),
                    Err(_) => {
                        check.problem(
                            "[web] proxy_addresses",
                            format!("{text:?} is not an IP address"),
                        );
                        None
                    }
                })
                .collect();
            if addresses.is_empty() {
                check.problem(
                    "[web] proxy_addresses",
                    "\"proxy\" needs the addresses the proxy connects from: the user header of anyone else is not trusted".to_owned(),
                );
            }
            WebAuth::Proxy {
                header,
                addresses,
                role: role(check, "[web] proxy_role", web.proxy_role.as_deref()),
            }
        }
        Some(other) => {
            check.problem(
                "[web] auth",
                format!("{other:?} is not a way to sign in: \"none\", \"users\" or \"proxy\""),
            );
            WebAuth::None
        }
    };
    if auth == WebAuth::None && !listen.ip().is_loopback() {
        check.problem(
            key,
            format!("{listen} is not a loopback address: set [web] auth to \"users\" or \"proxy\" to serve other machines"),
        );
    }
    WebConfig {
        listen,
        auth,
        session_lifetime: check.duration(
            "[web] session_lifetime",
            web.session_lifetime,
            SESSION_LIFETIME,
        ),
        secure_cookies: web.secure_cookies.unwrap_or(false),
        server_names: server_names(check, web.server_names.unwrap_or_default()),
    }
}
