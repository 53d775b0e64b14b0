//! Opening the database file: the one place that decides how a connection is
//! configured.

use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use deadpool_sqlite::rusqlite::{Connection, OpenFlags};

use super::error::{Context, ResultExt, StoreError};
use super::migrations::SchemaState;

/// Mode of a database file we create. SQLite gives its -wal and -shm files
/// the same mode. The log holds addresses and subjects: not world-readable.
pub const DATABASE_FILE_MODE: u32 = 0o640;

/// Makes sure the database file can be created: its directory must exist
/// (a typo in the path should fail loudly, not create a tree), and a new file
/// gets [`DATABASE_FILE_MODE`].
pub fn prepare_file(path: &Path) -> Result<(), StoreError> {
    let context = || Context::op("open database").key(path.display());
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(StoreError::io(
            context(),
            std::io::Error::new(
                ErrorKind::NotFound,
                format!(
                    "directory {} does not exist; create it or set [database] path",
                    parent.display()
                ),
            ),
        ));
    }
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(DATABASE_FILE_MODE)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(StoreError::io(context(), err)),
    }
}

/// Applies the per-connection settings every connection gets: foreign keys
/// enforced, `busy_timeout`, WAL journal, `synchronous=NORMAL` (durable at
/// checkpoints, never corrupt; with WAL a power cut can lose only the last
/// commits, which the read position then replays).
pub fn configure(conn: &Connection, busy_timeout: Duration) -> Result<(), StoreError> {
    let context = || Context::op("configure connection");
    conn.busy_timeout(busy_timeout).ctx(context)?;
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")
        .ctx(context)?;
    let journal_mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .ctx(context)?;
    if !journal_mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(
            journal_mode,
            "SQLite refused WAL mode (journal_mode is {journal_mode}); readers will block the writer"
        );
    }
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Checks that a connection answers a trivial query.
pub fn ping(conn: &Connection) -> Result<(), StoreError> {
    conn.query_row("SELECT 1", [], |row| row.get::<_, i64>(0))
        .ctx(|| Context::op("ping"))
        .map(drop)
}

/// Opens one configured connection to `path`.
pub fn open_connection(path: &Path, busy_timeout: Duration) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).ctx(|| Context::op("open database").key(path.display()))?;
    configure(&conn, busy_timeout)?;
    Ok(conn)
}

/// A database as a reader finds it.
#[derive(Debug)]
pub enum ReadOnly {
    /// Open read-only, its schema the one this version reads.
    Ready(Connection),
    /// No file at the path.
    Missing,
    /// A file without exim-pilot's tables yet.
    Empty,
    /// An older schema, which a writer upgrades on its next open.
    Older(u32),
}

/// Opens `path` read-only for queries (they work while the daemon writes),
/// configured as every connection is, and checks its schema: a file of
/// another application or of a newer exim-pilot is an error.
pub fn open_read_only(path: &Path) -> Result<ReadOnly, StoreError> {
    if !path.is_file() {
        return Ok(ReadOnly::Missing);
    }
    let context = || Context::op("open database read-only").key(path.display());
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .ctx(context)?;
    conn.busy_timeout(BUSY_TIMEOUT_READ_ONLY).ctx(context)?;
    let state = super::migrations::schema_state(&conn, context)?;
    if let Some(reason) = super::migrations::refusal(state) {
        return Err(StoreError::incompatible(context(), reason));
    }
    Ok(match state {
        SchemaState::Empty => ReadOnly::Empty,
        SchemaState::Older(version) => ReadOnly::Older(version),
        SchemaState::Current | SchemaState::Foreign | SchemaState::Newer(_) => {
            ReadOnly::Ready(conn)
        }
    })
}

/// How long a read-only connection waits for a writer's lock.
const BUSY_TIMEOUT_READ_ONLY: Duration = Duration::from_secs(5);
