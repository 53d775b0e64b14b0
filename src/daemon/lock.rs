//! One daemon per database: an exclusive `flock` on a lock file beside the
//! database, held for the daemon's life. Two daemons on one database stay
//! correct (the writer's transactions see to that) but are always a
//! mistake: each re-reads what the other stored. The kernel drops the lock
//! when the process dies, kill -9 included, so a stale file never blocks a
//! start. `ingest` and the queries take no lock: they may run beside it.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The held lock; dropping it (or exiting) releases it.
#[derive(Debug)]
pub struct DaemonLock {
    _file: File,
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another exim-pilot daemon{} is already running on {}; refusing to start a second one \
         (lock file {})",
        holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default(),
        database.display(),
        lock.display()
    )]
    Held {
        database: PathBuf,
        lock: PathBuf,
        holder: Option<u32>,
    },
    #[error("cannot use the lock file {}: {error}", lock.display())]
    Io {
        lock: PathBuf,
        error: std::io::Error,
    },
}

/// The lock file of `database`: `<database>.lock`, in its directory (the
/// one directory the service may write).
pub fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the lock of `database` without waiting, and writes our pid in
/// the file for the message another daemon would print.
pub fn acquire(database: &Path) -> Result<DaemonLock, LockError> {
    let lock = lock_path(database);
    let io = |error| LockError::Io {
        lock: lock.clone(),
        error,
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o640)
        .open(&lock)
        .map_err(io)?;
    // `flock(2)` on Linux: released by the kernel when the process dies,
    // kill -9 included, so a stale file never blocks a restart.
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(LockError::Held {
                database: database.to_path_buf(),
                lock,
                holder: text.trim().parse().ok(),
            });
        }
        Err(std::fs::TryLockError::Error(error)) => return Err(io(error)),
    }
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    writeln!(file, "{}", std::process::id()).map_err(io)?;
    Ok(DaemonLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_database_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::TempDir::new().unwrap();
        let database = dir.path().join("x.db");
        let first = acquire(&database).unwrap();
        let err = acquire(&database).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(&format!("(pid {})", std::process::id())),
            "{message}"
        );
        assert!(message.contains("x.db"), "{message}");
        drop(first);
        acquire(&database).unwrap();
    }
}
