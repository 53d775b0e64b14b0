//! `[fleet]`: replicating to a central PostgreSQL, checked and printed.
//!
//! The connection is given as a libpq URL or key=value string without a
//! password: the password comes from `password_file`, so the configuration
//! file can stay world-readable and the URL can be logged.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::check::Checker;
#[cfg(feature = "fleet")]
use super::check::{Range, ms};

/// `[fleet]` as written.
#[derive(Debug, Default, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawFleet {
    pub postgres: Option<String>,
    pub password_file: Option<String>,
    pub host_name: Option<String>,
    pub tls: Option<String>,
    pub ca_file: Option<String>,
    pub raw_lines: Option<bool>,
    pub batch_lines: Option<i64>,
    pub timeout: Option<String>,
}

/// `[fleet]`, checked. `None` in [`super::Config::fleet`] when `postgres`
/// is not set: the host keeps to its own SQLite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetConfig {
    /// The connection, as written (no password in it).
    pub postgres: String,
    /// A file whose first line is the password.
    pub password_file: Option<PathBuf>,
    /// The name this host's rows carry.
    pub host_name: String,
    /// Whether and how the connection is encrypted.
    pub tls: FleetTls,
    /// The certificate authorities to trust (PEM); `None`: the system's.
    pub ca_file: Option<PathBuf>,
    /// Whether each line's bytes are shipped too (the rows always are).
    pub raw_lines: bool,
    /// Lines per replication transaction, at most.
    pub batch_lines: usize,
    /// How long connecting or one statement may take.
    pub timeout: Duration,
}

/// `[fleet] tls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FleetTls {
    /// Plain text: a Unix socket or loopback.
    Disable,
    /// TLS, the server's certificate checked against the CAs and its name.
    VerifyFull,
}

impl FleetTls {
    fn name(self) -> &'static str {
        match self {
            FleetTls::Disable => "disable",
            FleetTls::VerifyFull => "verify-full",
        }
    }
}

#[cfg(feature = "fleet")]
const BATCH_LINES: Range<i64> = Range {
    default: 5000,
    min: 1,
    max: 100_000,
};
#[cfg(feature = "fleet")]
const TIMEOUT: Range<Duration> = Range {
    default: ms(30_000),
    min: ms(100),
    max: ms(3_600_000),
};

/// The longest host name: what `hostname` allows.
#[cfg(feature = "fleet")]
const HOST_NAME_MAX: usize = 64;

/// Checks `[fleet]`; `None` when no `postgres` is configured.
pub(super) fn fleet(check: &mut Checker, fleet: RawFleet) -> Option<FleetConfig> {
    let postgres = fleet.postgres.clone().unwrap_or_default();
    let postgres = postgres.trim();
    if postgres.is_empty() {
        return None;
    }
    #[cfg(feature = "fleet")]
    return checked(check, fleet, postgres);
    #[cfg(not(feature = "fleet"))]
    {
        drop(fleet);
        check.problem(
            "[fleet] postgres",
            "is set, but this exim-pilot was built without the `fleet` feature".to_owned(),
        );
        None
    }
}

/// Checks the keys of a `[fleet]` whose `postgres` is set.
///
/// Long because it checks each key of the section in turn, and the TLS
/// keys depend on the connection string's `sslmode`.
#[cfg(feature = "fleet")]
fn checked(check: &mut Checker, fleet: RawFleet, postgres: &str) -> Option<FleetConfig> {
    let parsed = match postgres.parse::<tokio_postgres::Config>() {
        Ok(parsed) => Some(parsed),
        Err(err) => {
            check.problem(
                "[fleet] postgres",
                format!(
                    "is not a PostgreSQL connection string such as \
                     \"postgresql://exim_pilot@db.example/exim_pilot\" or \
                     \"host=/run/postgresql dbname=exim_pilot\": {err}"
                ),
            );
            None
        }
    };
    if let Some(parsed) = &parsed {
        if parsed.get_password().is_some() {
            check.problem(
                "[fleet] postgres",
                "holds a password; put it in the file named by [fleet] password_file instead"
                    .to_owned(),
            );
        }
        if parsed.get_hosts().is_empty() {
            check.problem(
                "[fleet] postgres",
                "names no host; give host= (a name, an address or a socket directory)".to_owned(),
            );
        }
        if parsed.get_user().is_none() {
            check.problem(
                "[fleet] postgres",
                "names no user; give the role exim-pilot signs in as".to_owned(),
            );
        }
    }
    let password_file = fleet
        .password_file
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .filter(|path| {
            if !check.nul_free("[fleet] password_file", path) {
                false
            } else if !path.is_absolute() {
                check.problem(
                    "[fleet] password_file",
                    format!("must be an absolute path, got {:?}", path.display()),
                );
                false
            } else {
                true
            }
        });
    let host_name = match fleet.host_name {
        Some(name) => name.trim().to_owned(),
        None => this_host_name(),
    };
    if !valid_host_name(&host_name) {
        check.problem(
            "[fleet] host_name",
            format!(
                "must be 1 to {HOST_NAME_MAX} letters, digits, '.', '-' or '_', got {host_name:?}"
            ),
        );
    }
    let only_local = parsed.as_ref().is_some_and(|parsed| {
        parsed.get_hosts().iter().all(|host| match host {
            tokio_postgres::config::Host::Unix(_) => true,
            tokio_postgres::config::Host::Tcp(name) => {
                name == "localhost"
                    || name
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
        })
    });
    let tls = match fleet.tls.as_deref() {
        None => {
            if only_local {
                FleetTls::Disable
            } else {
                FleetTls::VerifyFull
            }
        }
        Some("disable") => FleetTls::Disable,
        Some("verify-full") => FleetTls::VerifyFull,
        Some(other) => {
            check.problem(
                "[fleet] tls",
                format!(
                    "must be \"disable\" or \"verify-full\", got {other:?} (the default is \
                     \"disable\" for a Unix socket or loopback, \"verify-full\" otherwise)"
                ),
            );
            FleetTls::VerifyFull
        }
    };
    let ca_file = fleet
        .ca_file
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .filter(|path| check.nul_free("[fleet] ca_file", path));
    if ca_file.is_some() && tls == FleetTls::Disable {
        check.problem(
            "[fleet] ca_file",
            "is set while [fleet] tls is \"disable\"; set tls = \"verify-full\" or remove it"
                .to_owned(),
        );
    }
    Some(FleetConfig {
        postgres: postgres.to_owned(),
        password_file,
        host_name,
        tls,
        ca_file,
        raw_lines: fleet.raw_lines.unwrap_or(true),
        batch_lines: check.count("[fleet] batch_lines", fleet.batch_lines, BATCH_LINES),
        timeout: check.duration("[fleet] timeout", fleet.timeout, TIMEOUT),
    })
}

impl FleetConfig {
    /// The connection settings, as checked when the configuration was
    /// built.
    #[cfg(feature = "fleet")]
    pub fn connection(&self) -> Result<tokio_postgres::Config, tokio_postgres::Error> {
        self.postgres.parse()
    }

    pub(super) fn to_raw(this: Option<&FleetConfig>) -> RawFleet {
        let Some(fleet) = this else {
            return RawFleet {
                postgres: Some(String::new()),
                ..RawFleet::default()
            };
        };
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        RawFleet {
            postgres: Some(fleet.postgres.clone()),
            password_file: path(&fleet.password_file),
            host_name: Some(fleet.host_name.clone()),
            tls: Some(fleet.tls.name().to_owned()),
            ca_file: path(&fleet.ca_file),
            raw_lines: Some(fleet.raw_lines),
            batch_lines: i64::try_from(fleet.batch_lines).ok(),
            timeout: Some(humantime::format_duration(fleet.timeout).to_string()),
        }
    }
}

/// A name PostgreSQL rows can carry and an operator can type.
#[cfg(feature = "fleet")]
fn valid_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= HOST_NAME_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// The kernel's host name, as `hostname` prints it.
#[cfg(feature = "fleet")]
fn this_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(raw: RawFleet) -> (Option<FleetConfig>, Vec<String>) {
        let mut check = Checker::default();
        let fleet = fleet(&mut check, raw);
        (
            fleet,
            check
                .problems
                .iter()
                .map(|p| format!("{}: {}", p.key, p.message))
                .collect(),
        )
    }

    #[test]
    #[cfg(not(feature = "fleet"))]
    fn a_fleet_set_in_a_build_without_it_is_refused_naming_the_key() {
        let raw = RawFleet {
            postgres: Some("host=/run/postgresql dbname=fleet".into()),
            ..RawFleet::default()
        };
        let (fleet, problems) = checked(raw);
        assert!(fleet.is_none());
        assert_eq!(
            problems,
            ["[fleet] postgres: is set, but this exim-pilot was built without the `fleet` feature"]
        );
    }

    #[test]
    fn absent_or_empty_postgres_means_no_fleet() {
        assert_eq!(checked(RawFleet::default()), (None, vec![]));
        let raw = RawFleet {
            postgres: Some(" ".into()),
            ..RawFleet::default()
        };
        assert_eq!(checked(raw), (None, vec![]));
    }

    #[test]
    #[cfg(feature = "fleet")]
    fn a_socket_needs_no_tls_and_a_remote_host_gets_verified_tls() {
        let local = RawFleet {
            postgres: Some("host=/run/postgresql user=pilot dbname=fleet".into()),
            host_name: Some("mx1".into()),
            ..RawFleet::default()
        };
        let (fleet, problems) = checked(local);
        assert!(problems.is_empty(), "{problems:?}");
        let fleet = fleet.expect("configured");
        assert_eq!(fleet.tls, FleetTls::Disable);
        assert_eq!(fleet.batch_lines, 5000);
        assert!(fleet.raw_lines);
        let remote = RawFleet {
            postgres: Some("postgresql://pilot@db.example:5432/fleet".into()),
            host_name: Some("mx1".into()),
            ..RawFleet::default()
        };
        assert_eq!(checked(remote).0.expect("set").tls, FleetTls::VerifyFull);
    }

    #[test]
    #[cfg(feature = "fleet")]
    fn every_bad_key_is_named() {
        let raw = RawFleet {
            postgres: Some("postgresql://pilot:secret@db.example/fleet".into()),
            password_file: Some("relative/pw".into()),
            host_name: Some("mx 1".into()),
            tls: Some("prefer".into()),
            batch_lines: Some(0),
            timeout: Some("forever".into()),
            ..RawFleet::default()
        };
        let (_, problems) = checked(raw);
        let keys: Vec<&str> = problems
            .iter()
            .map(|p| p.split(':').next().unwrap_or_default())
            .collect();
        assert_eq!(
            keys,
            [
                "[fleet] postgres",
                "[fleet] password_file",
                "[fleet] host_name",
                "[fleet] tls",
                "[fleet] batch_lines",
                "[fleet] timeout"
            ],
            "{problems:?}"
        );
        assert!(problems[0].contains("password_file"), "{problems:?}");
        let (_, problems) = checked(RawFleet {
            postgres: Some("host=db dbname=x".into()),
            host_name: Some("mx1".into()),
            ..RawFleet::default()
        });
        assert!(problems[0].contains("names no user"), "{problems:?}");
    }

    #[test]
    #[cfg(feature = "fleet")]
    fn printed_configuration_reads_back_the_same() {
        let raw = RawFleet {
            postgres: Some("host=/tmp user=pilot dbname=fleet".into()),
            host_name: Some("relay-2.example".into()),
            raw_lines: Some(false),
            ..RawFleet::default()
        };
        let (fleet, _) = checked(raw);
        let printed = FleetConfig::to_raw(fleet.as_ref());
        assert_eq!(checked(printed).0, fleet);
    }
}
