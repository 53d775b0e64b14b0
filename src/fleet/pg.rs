//! The fleet's PostgreSQL: connecting (the password from its file, TLS),
//! the pool, classified errors, and the schema's migrations, all in one
//! place like the SQLite store's.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;

use crate::config::{FleetConfig, FleetTls};

/// Connections a process keeps: the replicator uses one, a query one.
const POOL_SIZE: usize = 2;

/// Why PostgreSQL did not do what was asked, classed by what the caller
/// should do about it.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// Not reachable, the connection broke, the server is starting or
    /// shutting down, or the transaction lost a race: retry with backoff.
    #[error("PostgreSQL is unavailable ({0}); retrying")]
    Connection(String),
    /// A constraint, a permission or the sign-in refused what this host
    /// did: the configuration or the grants need fixing (docs/fleet.md).
    #[error("PostgreSQL refused it: {0}")]
    Refused(String),
    /// An operation took longer than `[fleet] timeout`: failed fast, its
    /// transaction abandoned.
    #[error("PostgreSQL did not answer within {0:?}")]
    Timeout(Duration),
    /// Another database already replicates as this host name (two hosts
    /// configured with one `[fleet] host_name`).
    #[error("{0}")]
    Contended(String),
    /// The schema is not one this exim-pilot can use.
    #[error("{0}")]
    Schema(String),
    /// The settings could not be used (the password file, the CAs).
    #[error("{0}")]
    Setup(String),
    /// The question is wrong (a window, a target): one clear line.
    #[error("{0}")]
    Argument(String),
    /// Anything else, wrapped.
    #[error("PostgreSQL: {0}")]
    Other(String),
}

impl FleetError {
    /// Whether trying again later can help (everything but a schema this
    /// version cannot use, or unusable settings).
    pub fn is_retryable(&self) -> bool {
        !matches!(self, FleetError::Schema(_) | FleetError::Setup(_))
    }
}

impl From<tokio_postgres::Error> for FleetError {
    fn from(err: tokio_postgres::Error) -> Self {
        classify(&err)
    }
}

impl From<deadpool_postgres::PoolError> for FleetError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        match err {
            deadpool_postgres::PoolError::Backend(err) => classify(&err),
            deadpool_postgres::PoolError::Timeout(_) => {
                FleetError::Connection("no connection within the timeout".to_owned())
            }
            other => FleetError::Other(other.to_string()),
        }
    }
}

/// Classes an error by its SQLSTATE, or as a broken connection when the
/// server sent none.
pub fn classify(err: &tokio_postgres::Error) -> FleetError {
    let Some(db) = err.as_db_error() else {
        // No SQLSTATE: the link failed (an I/O error, a closed
        // connection), or this side did (a value that does not convert).
        let source = std::error::Error::source(err);
        let text = source
            .map(|source| format!("{err}: {source}"))
            .unwrap_or_else(|| err.to_string());
        let broken_link =
            err.is_closed() || source.is_some_and(<dyn std::error::Error>::is::<std::io::Error>);
        return if broken_link {
            FleetError::Connection(text)
        } else {
            FleetError::Other(text)
        };
    };
    let code = db.code().code();
    let text = format!("{} ({code})", db.message());
    if code.starts_with("08")
        || code.starts_with("53")
        || *db.code() == SqlState::ADMIN_SHUTDOWN
        || *db.code() == SqlState::CRASH_SHUTDOWN
        || *db.code() == SqlState::CANNOT_CONNECT_NOW
        || *db.code() == SqlState::T_R_SERIALIZATION_FAILURE
        || *db.code() == SqlState::T_R_DEADLOCK_DETECTED
    {
        FleetError::Connection(text)
    } else if *db.code() == SqlState::QUERY_CANCELED {
        FleetError::Timeout(Duration::ZERO)
    } else if code.starts_with("23")
        || code.starts_with("28")
        || code.starts_with("42501")
        || code.starts_with("3D")
    {
        FleetError::Refused(text)
    } else {
        FleetError::Other(text)
    }
}

/// A pool of connections to the fleet's PostgreSQL as `[fleet]` says.
/// Creating it connects to nothing: the first `get` does, and every
/// connection is checked with a query before reuse.
pub fn pool(config: &FleetConfig) -> Result<Pool, FleetError> {
    let mut pg = config
        .connection()
        .map_err(|err| FleetError::Setup(format!("[fleet] postgres: {err}")))?;
    if let Some(path) = &config.password_file {
        pg.password(read_password(path)?);
    }
    pg.connect_timeout(config.timeout);
    // The server ends a statement that runs too long; the client bounds
    // every call too (a cut network never answers at all).
    let millis = config.timeout.as_millis();
    let options = match pg.get_options() {
        Some(given) => format!("{given} -c statement_timeout={millis}"),
        None => format!("-c statement_timeout={millis}"),
    };
    pg.options(&options);
    if pg.get_application_name().is_none() {
        pg.application_name("exim-pilot");
    }
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Verified,
    };
    let manager = match config.tls {
        FleetTls::Disable => Manager::from_config(pg, tokio_postgres::NoTls, manager_config),
        FleetTls::VerifyFull => {
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(config)?);
            Manager::from_config(pg, tls, manager_config)
        }
    };
    Pool::builder(manager)
        .max_size(POOL_SIZE)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(config.timeout))
        .create_timeout(Some(config.timeout))
        .recycle_timeout(Some(config.timeout))
        .build()
        .map_err(|err| FleetError::Setup(format!("[fleet]: {err}")))
}

/// The first line of the password file.
fn read_password(path: &std::path::Path) -> Result<String, FleetError> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        FleetError::Setup(format!(
            "[fleet] password_file: cannot read {}: {err}",
            path.display()
        ))
    })?;
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

/// rustls checking the server's certificate and name against `ca_file`, or
/// against the system's certificate authorities.
fn tls_config(config: &FleetConfig) -> Result<rustls::ClientConfig, FleetError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match &config.ca_file {
        Some(path) => {
            let certificates = CertificateDer::pem_file_iter(path)
                .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                .map_err(|err| {
                    FleetError::Setup(format!(
                        "[fleet] ca_file: cannot read certificates from {}: {err}",
                        path.display()
                    ))
                })?;
            let (added, _) = roots.add_parsable_certificates(certificates);
            if added == 0 {
                return Err(FleetError::Setup(format!(
                    "[fleet] ca_file: {} holds no usable certificate",
                    path.display()
                )));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| FleetError::Setup(format!("[fleet] tls: {err}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The schema's migrations, in order; append-only.
const MIGRATIONS: [(i32, &str, &str); 2] = [
    (1, "0001_fleet", include_str!("migrations/0001_fleet.sql")),
    (
        2,
        "0002_month_window",
        include_str!("migrations/0002_month_window.sql"),
    ),
];

/// The newest schema version this exim-pilot knows.
pub const SCHEMA_VERSION: i32 = 2;

/// Creates or upgrades the schema, in one transaction under an advisory
/// lock (hosts starting together migrate once). Refuses a schema newer
/// than this version. Returns the migrations applied.
pub async fn migrate(client: &mut tokio_postgres::Client) -> Result<Vec<&'static str>, FleetError> {
    // A current schema needs nothing, and a host's role may not create
    // schemas at all: look before asking for the lock.
    if schema_exists(client).await? && current_version(client).await? == SCHEMA_VERSION {
        return Ok(Vec::new());
    }
    let tx = client.transaction().await?;
    tx.batch_execute(
        "SET LOCAL client_min_messages = warning;
         SELECT pg_advisory_xact_lock(hashtext('exim_pilot.migrate'));
         CREATE SCHEMA IF NOT EXISTS exim_pilot;
         CREATE TABLE IF NOT EXISTS exim_pilot.schema_migrations (
             version    integer     PRIMARY KEY,
             name       text        NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         );",
    )
    .await?;
    let current = current_version(&tx).await?;
    if current > SCHEMA_VERSION {
        return Err(newer(current));
    }
    let mut applied = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        if version <= current {
            continue;
        }
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO exim_pilot.schema_migrations (version, name) VALUES ($1, $2)",
            &[&version, &name],
        )
        .await?;
        applied.push(name);
    }
    tx.commit().await?;
    Ok(applied)
}

/// Checks that the schema is the one this version reads, without
/// changing anything (queries and the web view).
pub async fn check_schema(client: &tokio_postgres::Client) -> Result<(), FleetError> {
    if !schema_exists(client).await? {
        return Err(FleetError::Schema(
            "the fleet database has no exim-pilot schema yet: start a daemon with [fleet] \
             configured, or run `exim-pilot fleet migrate`"
                .to_owned(),
        ));
    }
    let current = current_version(client).await?;
    match current.cmp(&SCHEMA_VERSION) {
        std::cmp::Ordering::Greater => Err(newer(current)),
        std::cmp::Ordering::Less => Err(FleetError::Schema(format!(
            "the fleet schema is at version {current}, older than the {SCHEMA_VERSION} this \
             exim-pilot reads: run `exim-pilot fleet migrate`"
        ))),
        std::cmp::Ordering::Equal => Ok(()),
    }
}

async fn schema_exists(client: &impl tokio_postgres::GenericClient) -> Result<bool, FleetError> {
    Ok(client
        .query_one(
            "SELECT to_regclass('exim_pilot.schema_migrations') IS NOT NULL",
            &[],
        )
        .await?
        .get(0))
}

async fn current_version(client: &impl tokio_postgres::GenericClient) -> Result<i32, FleetError> {
    Ok(client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM exim_pilot.schema_migrations",
            &[],
        )
        .await?
        .get(0))
}

fn newer(current: i32) -> FleetError {
    FleetError::Schema(format!(
        "the fleet schema is at version {current}, newer than the {SCHEMA_VERSION} this \
         exim-pilot knows: upgrade exim-pilot on this host"
    ))
}

/// Runs `operation`, failing with [`FleetError::Timeout`] after `limit`.
pub async fn bounded<T>(
    limit: Duration,
    operation: impl Future<Output = Result<T, FleetError>>,
) -> Result<T, FleetError> {
    tokio::time::timeout(limit, operation)
        .await
        .unwrap_or(Err(FleetError::Timeout(limit)))
}

/// Connects for a one-off question (the query commands, the web view):
/// checks the schema first.
pub async fn connect_for_queries(
    config: &FleetConfig,
) -> Result<deadpool_postgres::Object, FleetError> {
    let pool = pool(config)?;
    bounded(config.timeout, async {
        let client = pool.get().await?;
        check_schema(&client).await?;
        Ok(client)
    })
    .await
}
