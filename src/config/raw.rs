//! The configuration file exactly as written: every key optional, nothing
//! checked beyond TOML types and unknown keys.
//!
//! [`super::Config::from_raw`] turns this into a validated `Config`; the same
//! shape is also used to print the effective configuration, so what
//! `check-config` prints can be read back as a configuration file.

use serde::{Deserialize, Serialize};

/// The whole file. Sections may be absent.
#[derive(Debug, Default, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `[log]`
    pub log: Option<RawLog>,
    /// `[database]`
    pub database: Option<RawDatabase>,
    /// `[ingest]`
    pub ingest: Option<RawIngest>,
    /// `[health]`
    pub health: Option<RawHealth>,
    /// `[diagnostics]`, the daemon's own log; `[logging]`, its first
    /// name, is still accepted (it sat confusingly beside `[log]`, Exim's).
    #[serde(rename = "diagnostics", alias = "logging")]
    pub logging: Option<RawLogging>,
    /// `[retention]`
    pub retention: Option<RawRetention>,
    /// `[metrics]`
    pub metrics: Option<RawMetrics>,
    /// `[web]`
    pub web: Option<RawWeb>,
    /// `[fleet]`
    pub fleet: Option<super::fleet::RawFleet>,
    /// `[queue]`
    pub queue: Option<super::queue::RawQueue>,
}

/// `[log]`: which Exim main log to tail.
#[derive(Debug, Default, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub path: Option<String>,
    pub source: Option<String>,
    pub journal_identifier: Option<String>,
    pub journal_unit: Option<String>,
}

/// `[database]`: the SQLite file and its connection pool.
#[derive(Debug, Default, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatabase {
    pub path: Option<String>,
    pub max_open_conns: Option<i64>,
    pub max_idle_conns: Option<i64>,
    pub conn_max_lifetime: Option<String>,
    pub busy_timeout: Option<String>,
    pub pool_wait_timeout: Option<String>,
}

/// `[ingest]`: batching between the reader and the writer.
#[derive(Debug, Default, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawIngest {
    pub batch_size: Option<i64>,
    pub flush_interval: Option<String>,
    pub channel_capacity: Option<i64>,
    pub channel_capacity_bytes: Option<i64>,
    pub batch_size_bytes: Option<i64>,
    pub max_line_bytes: Option<i64>,
}

/// `[health]`: the database health check and reconnect backoff.
#[derive(Debug, Default, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub backoff_min: Option<String>,
    pub backoff_max: Option<String>,
    pub stall_after: Option<String>,
}

/// `[retention]`: days each kind of row is kept (0 keeps it forever).
#[derive(Debug, Default, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetention {
    /// Raw log lines. `log_entries_days`, its name before lines were kept
    /// in compressed chunks, is still accepted.
    #[serde(alias = "log_entries_days")]
    pub log_lines_days: Option<i64>,
    pub delivery_attempts_days: Option<i64>,
    pub rejections_days: Option<i64>,
    pub messages_days: Option<i64>,
    pub audit_log_days: Option<i64>,
    pub interval: Option<String>,
}

/// `[diagnostics]`: the daemon's own diagnostics.
#[derive(Debug, Default, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogging {
    pub level: Option<String>,
    pub format: Option<String>,
}

/// `[metrics]`: the Prometheus exposition.
#[derive(Debug, Default, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    pub listen: Option<String>,
    pub textfile: Option<String>,
    pub interval: Option<String>,
    pub stuck_after: Option<String>,
}

/// `[web]`: `exim-pilot serve`.
#[derive(Debug, Default, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawWeb {
    pub listen: Option<String>,
    pub auth: Option<String>,
    pub session_lifetime: Option<String>,
    pub secure_cookies: Option<bool>,
    pub server_names: Option<Vec<String>>,
    pub proxy_user_header: Option<String>,
    pub proxy_addresses: Option<Vec<String>>,
    pub proxy_role: Option<String>,
    pub users: Option<Vec<RawWebUser>>,
}

/// `[[web.users]]`: one who may sign in.
#[derive(Debug, Default, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebUser {
    pub name: Option<String>,
    pub password_hash: Option<String>,
    pub role: Option<String>,
}
