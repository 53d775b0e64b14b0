//! Database errors, classified so callers can decide what to do.
//!
//! SQLite reports failures as result codes; [`StoreError::from_sqlite`] maps
//! them to the classes the rest of the program branches on: retry with
//! backoff (connection, busy, read-only, full; a timeout fails its attempt
//! fast, then is retried the same way), tell the user (constraint), or stop
//! (corrupt, incompatible). Every error carries the operation,
//! table and key it happened on.

use std::fmt;

use deadpool_sqlite::rusqlite::{self, ErrorCode, ffi};

/// Where an error happened: what we were doing, to which table, for which key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// What was being done.
    pub operation: &'static str,
    /// The table it touched, if one.
    pub table: Option<&'static str>,
    /// The row or file it was about, if one.
    pub key: Option<String>,
}

impl Context {
    /// Context for `operation`, with no table or key.
    pub fn op(operation: &'static str) -> Self {
        Context {
            operation,
            table: None,
            key: None,
        }
    }

    /// The table the operation touched.
    pub fn table(mut self, table: &'static str) -> Self {
        self.table = Some(table);
        self
    }

    /// The key (row identity) the operation was about.
    pub fn key(mut self, key: impl fmt::Display) -> Self {
        self.key = Some(key.to_string());
        self
    }
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.operation)?;
        if let Some(table) = self.table {
            write!(f, " on {table}")?;
        }
        if let Some(key) = &self.key {
            write!(f, " ({key})")?;
        }
        Ok(())
    }
}

/// Which constraint a write broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConstraintKind {
    /// A unique index.
    Unique,
    /// A primary key.
    PrimaryKey,
    /// A foreign key.
    ForeignKey,
    /// A `CHECK` clause.
    Check,
    /// A `NOT NULL` column.
    NotNull,
    /// Another constraint.
    Other,
}

impl fmt::Display for ConstraintKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConstraintKind::Unique => "unique",
            ConstraintKind::PrimaryKey => "primary key",
            ConstraintKind::ForeignKey => "foreign key",
            ConstraintKind::Check => "check",
            ConstraintKind::NotNull => "not null",
            ConstraintKind::Other => "other",
        })
    }
}

/// The cause below a [`StoreError`]: SQLite's own error, or I/O around it.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A classified database error with its context. The message includes the
/// cause (SQLite's own words), so a log line or an error printed on its own
/// says everything.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file cannot be opened or reached (missing directory, I/O error,
    /// pool could not create a connection). Retry with backoff.
    #[error("{context}: cannot reach the database: {cause}")]
    Connection {
        /// Where it happened.
        context: Box<Context>,
        /// SQLite's own error.
        cause: Cause,
    },
    /// Another connection holds the lock longer than `busy_timeout`. Retry.
    #[error("{context}: the database is locked by another connection: {cause}")]
    Busy {
        /// Where it happened.
        context: Box<Context>,
        /// SQLite's own error.
        cause: Cause,
    },
    /// No pool connection became free in time, or a ping did not answer.
    /// The attempt fails fast; retrying it is [`StoreError::is_retryable`]'s
    /// call.
    #[error("{context}: timed out after {waited:?} ({what})")]
    Timeout {
        /// Where it happened.
        context: Box<Context>,
        /// What did not come in time.
        what: &'static str,
        /// How long it was waited for.
        waited: std::time::Duration,
    },
    /// A write broke a constraint: a bug or bad data, never retried.
    #[error("{context}: {kind} constraint failed: {cause}")]
    Constraint {
        /// Where it happened.
        context: Box<Context>,
        /// Which constraint.
        kind: ConstraintKind,
        /// SQLite's own error.
        cause: Cause,
    },
    /// The file or its directory is not writable. Retry: an operator can fix it.
    #[error("{context}: the database is read-only: {cause}")]
    ReadOnly {
        /// Where it happened.
        context: Box<Context>,
        /// SQLite's own error.
        cause: Cause,
    },
    /// The disk (or quota) is full. Retry: space can be freed.
    #[error("{context}: the disk holding the database is full: {cause}")]
    Full {
        /// Where it happened.
        context: Box<Context>,
        /// SQLite's own error.
        cause: Cause,
    },
    /// The file is damaged or not a database. Never retried.
    #[error("{context}: the database file is corrupt or not a database: {cause}")]
    Corrupt {
        /// Where it happened.
        context: Box<Context>,
        /// SQLite's own error.
        cause: Cause,
    },
    /// The file is a database exim-pilot must not use: another
    /// application's, or written by a newer exim-pilot. Never retried: the
    /// configuration or the binary must change.
    #[error("{context}: {reason}")]
    Incompatible {
        /// Where it happened.
        context: Box<Context>,
        /// Why it must not be used, and what to do.
        reason: String,
    },
    /// Anything else, wrapped with its context.
    #[error("{context}: {cause}")]
    Other {
        /// Where it happened.
        context: Box<Context>,
        /// SQLite's own error.
        cause: Cause,
    },
}

/// The class of a [`StoreError`], for matching without the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// [`StoreError::Connection`]
    Connection,
    /// [`StoreError::Busy`]
    Busy,
    /// [`StoreError::Timeout`]
    Timeout,
    /// [`StoreError::Constraint`]
    Constraint(ConstraintKind),
    /// [`StoreError::ReadOnly`]
    ReadOnly,
    /// [`StoreError::Full`]
    Full,
    /// [`StoreError::Corrupt`]
    Corrupt,
    /// [`StoreError::Incompatible`]
    Incompatible,
    /// [`StoreError::Other`]
    Other,
}

impl StoreError {
    /// Classifies a rusqlite error by SQLite's (extended) result code.
    pub fn from_sqlite(context: Context, err: rusqlite::Error) -> StoreError {
        let context = Box::new(context);
        let (code, extended_code) = match &err {
            rusqlite::Error::SqliteFailure(ffi_err, _) => (ffi_err.code, ffi_err.extended_code),
            _ => {
                return StoreError::Other {
                    context,
                    cause: Box::new(err),
                };
            }
        };
        let cause: Cause = Box::new(err);
        match code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                StoreError::Busy { context, cause }
            }
            ErrorCode::ConstraintViolation => StoreError::Constraint {
                context,
                kind: constraint_kind(extended_code),
                cause,
            },
            ErrorCode::ReadOnly => StoreError::ReadOnly { context, cause },
            ErrorCode::DiskFull => StoreError::Full { context, cause },
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => {
                StoreError::Corrupt { context, cause }
            }
            ErrorCode::CannotOpen | ErrorCode::SystemIoFailure | ErrorCode::PermissionDenied => {
                StoreError::Connection { context, cause }
            }
            _ => StoreError::Other { context, cause },
        }
    }

    /// This error's class.
    pub fn class(&self) -> ErrorClass {
        match self {
            StoreError::Connection { .. } => ErrorClass::Connection,
            StoreError::Busy { .. } => ErrorClass::Busy,
            StoreError::Timeout { .. } => ErrorClass::Timeout,
            StoreError::Constraint { kind, .. } => ErrorClass::Constraint(*kind),
            StoreError::ReadOnly { .. } => ErrorClass::ReadOnly,
            StoreError::Full { .. } => ErrorClass::Full,
            StoreError::Corrupt { .. } => ErrorClass::Corrupt,
            StoreError::Incompatible { .. } => ErrorClass::Incompatible,
            StoreError::Other { .. } => ErrorClass::Other,
        }
    }

    /// The context the error happened in.
    pub fn context(&self) -> &Context {
        match self {
            StoreError::Connection { context, .. }
            | StoreError::Busy { context, .. }
            | StoreError::Timeout { context, .. }
            | StoreError::Constraint { context, .. }
            | StoreError::ReadOnly { context, .. }
            | StoreError::Full { context, .. }
            | StoreError::Corrupt { context, .. }
            | StoreError::Incompatible { context, .. }
            | StoreError::Other { context, .. } => context,
        }
    }

    /// Whether waiting and trying the same work again can help: the one
    /// retry policy, which [`super::retry()`] applies. The condition is
    /// outside the program: a lock, a full disk, permissions, a vanished
    /// file, or a timeout. A timeout fails its attempt fast (nobody waits
    /// past it) and is then retried like a lost connection: the database is
    /// slow, the work is not wrong. Constraint, corrupt, incompatible and
    /// other errors are never retried.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.class(),
            ErrorClass::Connection
                | ErrorClass::Busy
                | ErrorClass::ReadOnly
                | ErrorClass::Full
                | ErrorClass::Timeout
        )
    }

    /// Wraps an I/O error around the database file as a connection error.
    pub fn io(context: Context, err: std::io::Error) -> StoreError {
        StoreError::Connection {
            context: Box::new(context),
            cause: Box::new(err),
        }
    }

    /// A database this exim-pilot must not use, and why.
    pub fn incompatible(context: Context, reason: impl Into<String>) -> StoreError {
        StoreError::Incompatible {
            context: Box::new(context),
            reason: reason.into(),
        }
    }

    /// Wraps any other failure with its context.
    pub fn other(context: Context, cause: impl Into<Cause>) -> StoreError {
        StoreError::Other {
            context: Box::new(context),
            cause: cause.into(),
        }
    }
}

fn constraint_kind(extended_code: i32) -> ConstraintKind {
    match extended_code {
        ffi::SQLITE_CONSTRAINT_UNIQUE => ConstraintKind::Unique,
        ffi::SQLITE_CONSTRAINT_PRIMARYKEY | ffi::SQLITE_CONSTRAINT_ROWID => {
            ConstraintKind::PrimaryKey
        }
        ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ConstraintKind::ForeignKey,
        ffi::SQLITE_CONSTRAINT_CHECK => ConstraintKind::Check,
        ffi::SQLITE_CONSTRAINT_NOTNULL => ConstraintKind::NotNull,
        _ => ConstraintKind::Other,
    }
}

/// Attaches context to rusqlite results: `conn.execute(..).ctx(|| ..)?`.
pub trait ResultExt<T> {
    /// Classifies the error and attaches the context built by `context`.
    fn ctx(self, context: impl FnOnce() -> Context) -> Result<T, StoreError>;
}

impl<T> ResultExt<T> for Result<T, rusqlite::Error> {
    fn ctx(self, context: impl FnOnce() -> Context) -> Result<T, StoreError> {
        self.map_err(|err| StoreError::from_sqlite(context(), err))
    }
}
