//! [`Store`]: the connection pool and the async entry points to it.
//!
//! deadpool-sqlite runs each closure on a blocking thread; a rusqlite
//! `Transaction` borrows its connection, so a whole transaction is one
//! closure ([`Store::transaction`]), never a statement at a time.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_sqlite::rusqlite::{Connection, Transaction};
use deadpool_sqlite::{
    Hook, HookError, InteractError, Metrics, Pool, PoolError, Runtime, TimeoutType,
};

use super::error::{Context, ResultExt, StoreError};
use super::migrations::{self, MIGRATIONS};
use super::open::{configure, open_connection, ping, prepare_file};
use super::tx::{TxError, in_transaction};
use crate::config::DatabaseConfig;

/// The database: a pool of configured connections to one SQLite file.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    path: PathBuf,
    settings: PoolSettings,
    created: Arc<AtomicU64>,
}

/// The pool limits from `[database]`.
#[derive(Debug, Clone)]
struct PoolSettings {
    max_idle: usize,
    wait_timeout: Duration,
}

/// A snapshot of the pool, for diagnostics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections open now (idle and in use).
    pub open: usize,
    /// Of those, idle in the pool.
    pub idle: usize,
    /// Connections opened since the pool was built (counts recycling).
    pub created_total: u64,
    /// `max_open_conns`.
    pub max_open: usize,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Opens the database: checks the path, creates the file (mode 0640) if
/// needed, applies the migrations once, builds the pool and pings through
/// it. Every failure says which file and what SQLite said.
pub async fn connect(config: &DatabaseConfig) -> Result<Store, StoreError> {
    let path = config.path.clone();
    let busy_timeout = config.busy_timeout;
    let setup_path = path.clone();
    tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
        prepare_file(&setup_path)?;
        refuse_foreign(&setup_path)?;
        let mut conn = open_connection(&setup_path, busy_timeout)?;
        let applied = migrations::migrate(&mut conn)?;
        if applied.len() == MIGRATIONS.len() {
            tracing::info!(
                database = %setup_path.display(),
                schema = migrations::latest_version(),
                "created database {}, schema {}",
                setup_path.display(),
                migrations::latest_version()
            );
        }
        let rebuilt = super::indexes::ensure_secondary(&conn)?;
        if rebuilt > 0 {
            tracing::info!(
                indexes = rebuilt,
                "created {rebuilt} indexes a bulk ingest had not rebuilt (it was interrupted)"
            );
        }
        ping(&conn)
    })
    .await
    .map_err(|join| StoreError::other(Context::op("open database"), join.to_string()))??;

    let store = Store::build_pool(config)?;
    store.ping(config.pool_wait_timeout).await?;
    Ok(store)
}

/// Refuses a file that is not ours before anything is written to it
/// (configuring a connection would switch its journal to WAL): another
/// application's database, or one a newer exim-pilot wrote.
fn refuse_foreign(path: &Path) -> Result<(), StoreError> {
    let context = || Context::op("open database").key(path.display());
    let conn = Connection::open(path).ctx(context)?;
    match migrations::refusal(migrations::schema_state(&conn, context)?) {
        Some(reason) => Err(StoreError::incompatible(context(), reason)),
        None => Ok(()),
    }
}

/// A SQLite URI that opens `path` read-write but never creates it.
fn existing_file_uri(path: &Path) -> PathBuf {
    let mut uri = String::from("file:");
    for ch in path.to_string_lossy().chars() {
        match ch {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            other => uri.push(other),
        }
    }
    uri.push_str("?mode=rw");
    PathBuf::from(uri)
}

/// A pooled connection must see the schema `connect` migrated; anything
/// else means the file was replaced behind our back.
fn require_current_schema(conn: &Connection) -> Result<(), StoreError> {
    let version = migrations::current_version(conn)?;
    if version == migrations::latest_version() {
        return Ok(());
    }
    Err(StoreError::Connection {
        context: Box::new(Context::op("check the schema")),
        cause: format!(
            "the database has schema version {version}, expected {}: the file was replaced",
            migrations::latest_version()
        )
        .into(),
    })
}

impl Store {
    fn build_pool(config: &DatabaseConfig) -> Result<Store, StoreError> {
        let created = Arc::new(AtomicU64::new(0));
        let busy_timeout = config.busy_timeout;
        let max_lifetime = config.conn_max_lifetime;
        let created_counter = Arc::clone(&created);
        // Pooled connections never create the file: if it vanished, they
        // fail (and are retried) until `connect` has made and migrated a
        // new one with the right mode.
        let pool = deadpool_sqlite::Config::new(existing_file_uri(&config.path))
            .builder(Runtime::Tokio1)
            .map_err(|err| StoreError::other(Context::op("build connection pool"), err))?
            .max_size(config.max_open_conns)
            .wait_timeout(Some(config.pool_wait_timeout))
            .create_timeout(Some(config.pool_wait_timeout.max(busy_timeout)))
            .recycle_timeout(Some(config.pool_wait_timeout))
            .post_create(Hook::async_fn(move |conn, _| {
                created_counter.fetch_add(1, Ordering::Relaxed);
                Box::pin(async move {
                    conn.interact(move |conn| {
                        configure(conn, busy_timeout)?;
                        require_current_schema(conn)
                    })
                    .await
                    .map_err(|err| HookError::message(err.to_string()))?
                    .map_err(|err| HookError::message(err.to_string()))
                })
            }))
            .pre_recycle(Hook::sync_fn(move |_, metrics: &Metrics| {
                if metrics.age() > max_lifetime {
                    Err(HookError::message("connection reached conn_max_lifetime"))
                } else {
                    Ok(())
                }
            }))
            .build()
            .map_err(|err| StoreError::other(Context::op("build connection pool"), err))?;
        Ok(Store {
            pool,
            path: config.path.clone(),
            settings: PoolSettings {
                max_idle: config.max_idle_conns,
                wait_timeout: config.pool_wait_timeout,
            },
            created,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored read position of every source, newest first.
    pub async fn source_positions(&self) -> Result<Vec<super::repo::SourcePosition>, StoreError> {
        self.with_conn("load read positions", |conn| {
            super::repo::source_positions(conn)
        })
        .await
    }

    /// Runs `f` on a pooled connection on a blocking thread. A panic in `f`
    /// is re-raised here.
    pub async fn with_conn<T, F>(&self, operation: &'static str, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let conn = self
            .pool
            .get()
            .await
            .map_err(|err| self.pool_error(operation, err))?;
        let outcome = conn.interact(f).await;
        drop(conn);
        self.trim_idle();
        match outcome {
            Ok(result) => result,
            Err(InteractError::Panic(panic)) => std::panic::resume_unwind(panic),
            Err(InteractError::Cancelled) => Err(StoreError::Connection {
                context: Box::new(Context::op(operation)),
                cause: "the connection was closed while in use".into(),
            }),
        }
    }

    /// Runs `body` in one transaction on a pooled connection (see
    /// [`in_transaction`]): committed on `Ok`, rolled back on `Err` or panic.
    pub async fn transaction<T, F>(
        &self,
        operation: &'static str,
        body: F,
    ) -> Result<T, TxError<StoreError>>
    where
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        self.with_conn(operation, |conn| Ok(in_transaction(conn, body)))
            .await
            .unwrap_or_else(|err| Err(TxError::Store(err)))
    }

    /// Checks that a pooled connection answers within `timeout`.
    pub async fn ping(&self, timeout: Duration) -> Result<(), StoreError> {
        match tokio::time::timeout(timeout, self.with_conn("ping", |conn| ping(conn))).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Timeout {
                context: Box::new(Context::op("ping")),
                what: "the database did not answer",
                waited: timeout,
            }),
        }
    }

    /// Closes idle connections beyond `max_idle_conns`, the least recently
    /// returned first kept.
    pub fn trim_idle(&self) {
        let mut kept = 0;
        let max_idle = self.settings.max_idle;
        let _ = self.pool.retain(|_, _| {
            kept += 1;
            kept <= max_idle
        });
    }

    /// Closes the pool: waiting and future callers get an error.
    pub fn close(&self) {
        self.pool.close();
    }

    /// The pool's current numbers.
    pub fn stats(&self) -> PoolStats {
        let status = self.pool.status();
        PoolStats {
            open: status.size,
            idle: status.available,
            created_total: self.created.load(Ordering::Relaxed),
            max_open: status.max_size,
        }
    }

    fn pool_error(&self, operation: &'static str, err: PoolError) -> StoreError {
        let context = Context::op(operation).key(self.path.display());
        let boxed = || Box::new(context.clone());
        match err {
            PoolError::Timeout(TimeoutType::Wait) => StoreError::Timeout {
                context: boxed(),
                what: "no pool connection became free; raise [database] max_open_conns or \
                       pool_wait_timeout",
                waited: self.settings.wait_timeout,
            },
            PoolError::Timeout(TimeoutType::Create | TimeoutType::Recycle) => StoreError::Timeout {
                context: boxed(),
                what: "opening a database connection took too long",
                waited: self.settings.wait_timeout,
            },
            PoolError::Backend(err) => StoreError::from_sqlite(context, err),
            PoolError::PostCreateHook(HookError::Backend(err)) => {
                StoreError::from_sqlite(context, err)
            }
            PoolError::PostCreateHook(HookError::Message(message)) => StoreError::Connection {
                context: boxed(),
                cause: message.into_owned().into(),
            },
            PoolError::Closed => StoreError::Connection {
                context: boxed(),
                cause: "the connection pool is closed".into(),
            },
            PoolError::NoRuntimeSpecified => StoreError::other(context, "no async runtime"),
        }
    }
}
