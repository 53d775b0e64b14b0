//! Exit statuses (sysexits.h values, which systemd names) and the mapping
//! from an error to the status the process ends with.

use crate::config::ConfigError;
use crate::store::{ErrorClass, StoreError};

/// Success.
pub const OK: u8 = 0;
/// Bad command-line usage (clap uses this too).
pub const USAGE: u8 = 2;
/// Internal error (EX_SOFTWARE).
pub const SOFTWARE: u8 = 70;
/// Temporary failure, such as the database being unavailable at start
/// (EX_TEMPFAIL): systemd may restart and succeed.
pub const TEMPFAIL: u8 = 75;
/// Bad configuration (EX_CONFIG): restarting will not help.
pub const CONFIG: u8 = 78;

/// A failure that already knows its exit status (bad arguments to a query,
/// a command that does not exist yet).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    /// The exit status.
    pub status: u8,
    /// The one line printed.
    pub message: String,
}

impl Failure {
    /// A failure ending the process with `status`.
    pub fn new(status: u8, message: impl Into<String>) -> Self {
        Failure {
            status,
            message: message.into(),
        }
    }
}

/// The exit status for an error that ended a command.
pub fn status_for(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(failure) = cause.downcast_ref::<Failure>() {
            return failure.status;
        }
        if cause.downcast_ref::<ConfigError>().is_some() {
            return CONFIG;
        }
        if let Some(store) = cause.downcast_ref::<StoreError>() {
            return match store.class() {
                ErrorClass::Connection
                | ErrorClass::Busy
                | ErrorClass::Timeout
                | ErrorClass::ReadOnly
                | ErrorClass::Full => TEMPFAIL,
                // Not a database, damaged, another application's or a
                // newer schema: restarting will not help, the operator must
                // point [database] path elsewhere or repair the file.
                ErrorClass::Corrupt | ErrorClass::Incompatible => CONFIG,
                ErrorClass::Constraint(_) | ErrorClass::Other => SOFTWARE,
            };
        }
    }
    SOFTWARE
}
