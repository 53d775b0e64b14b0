//! Checking raw values: each key's default and range ([`Range`], one
//! constant per key), and a [`Checker`] that converts values and collects
//! every problem with the key it belongs to.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Problem;

/// Upper bound for `max_line_bytes`: beyond this a "line" is not a log line,
/// and the reader must keep its buffers bounded.
const MAX_LINE_BYTES_LIMIT: i64 = 64 * 1024 * 1024;
/// Upper bound for the pool size; SQLite has one writer, so more connections
/// only add file descriptors.
const MAX_OPEN_CONNS_LIMIT: i64 = 1000;

/// A key's default and the range its value must fall in (both ends
/// included). Every key has one, documented in the packaged configuration.
#[derive(Debug, Clone, Copy)]
pub(super) struct Range<T> {
    pub(super) default: T,
    pub(super) min: T,
    pub(super) max: T,
}

pub(super) const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
pub(super) const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub(super) const MAX_OPEN_CONNS: Range<i64> = Range {
    default: 10,
    min: 1,
    max: MAX_OPEN_CONNS_LIMIT,
};
pub(super) const MAX_IDLE_CONNS: Range<i64> = Range {
    default: 5,
    min: 0,
    max: MAX_OPEN_CONNS_LIMIT,
};
pub(super) const CONN_MAX_LIFETIME: Range<Duration> = Range {
    default: secs(30 * 60),
    min: secs(1),
    max: secs(7 * 86_400),
};
/// A writer waiting on a lock feeds no watchdog (`WatchdogSec=30s`).
pub(super) const BUSY_TIMEOUT: Range<Duration> = Range {
    default: secs(5),
    min: ms(0),
    max: secs(20),
};
pub(super) const POOL_WAIT_TIMEOUT: Range<Duration> = Range {
    default: secs(10),
    min: ms(1),
    max: secs(20),
};
pub(super) const BATCH_SIZE: Range<i64> = Range {
    default: 5_000,
    min: 1,
    max: 1_000_000,
};
/// The idle writer feeds the watchdog once per flush interval at least.
/// A live line waits up to this long for company before it is committed:
/// at 100 ms the 99th percentile from append to commit was above 100 ms.
pub(super) const FLUSH_INTERVAL: Range<Duration> = Range {
    default: ms(50),
    min: ms(1),
    max: secs(10),
};
/// The reader runs far ahead of the writer while catching up, so the
/// channel is full then: more lines in it cost memory and gain nothing.
pub(super) const CHANNEL_CAPACITY: Range<i64> = Range {
    default: 4096,
    min: 1,
    max: 1_000_000,
};
/// Bytes of lines in the channel: with it and a batch full, memory stays
/// within a few tens of MiB whatever the lines' length.
pub(super) const FLIGHT_BYTES: Range<i64> = Range {
    default: 2 * 1024 * 1024,
    min: 64 * 1024,
    max: 1024 * 1024 * 1024,
};
/// Bytes of lines in one batch. The writer holds a batch twice (its lines,
/// and their copy in the chunks being compressed) while the channel fills:
/// at 2 MiB, `ingest`'s peak RSS passed 24 MiB on long lines and unique
/// texts; at 1 MiB it stayed below, and ingest was no slower
/// (benches/README.md, #32).
pub(super) const BATCH_BYTES: Range<i64> = Range {
    default: 1024 * 1024,
    ..FLIGHT_BYTES
};
pub(super) const MAX_LINE_BYTES: Range<i64> = Range {
    default: 1024 * 1024,
    min: 256,
    max: MAX_LINE_BYTES_LIMIT,
};
pub(super) const HEALTH_INTERVAL: Range<Duration> = Range {
    default: secs(10),
    min: ms(10),
    max: secs(3600),
};
pub(super) const HEALTH_TIMEOUT: Range<Duration> = Range {
    default: secs(5),
    min: ms(1),
    max: secs(60),
};
pub(super) const STALL_AFTER: Range<Duration> = Range {
    default: secs(30),
    min: secs(1),
    max: secs(3600),
};
pub(super) const BACKOFF_MIN: Range<Duration> = Range {
    default: ms(250),
    min: ms(1),
    max: secs(3600),
};
pub(super) const BACKOFF_MAX: Range<Duration> = Range {
    default: secs(30),
    min: ms(1),
    max: secs(3600),
};
pub(super) const RETENTION_INTERVAL: Range<Duration> = Range {
    default: secs(86_400),
    min: secs(1),
    max: secs(30 * 86_400),
};
pub(super) const METRICS_INTERVAL: Range<Duration> = Range {
    default: secs(15),
    min: secs(1),
    max: secs(3600),
};
/// The same default as `exim-pilot stuck --older-than`.
pub(super) const STUCK_AFTER: Range<Duration> = Range {
    default: secs(4 * 3600),
    min: secs(60),
    max: secs(365 * 86_400),
};
pub(super) const SESSION_LIFETIME: Range<Duration> = Range {
    default: secs(12 * 3600),
    min: secs(60),
    max: secs(30 * 86_400),
};
/// Days kept: 0 keeps forever; a century is the most that means anything.
pub(super) const fn days_kept(default: i64) -> Range<i64> {
    Range {
        default,
        min: 0,
        max: 36_500,
    }
}

/// Collects problems while converting raw values, so that one run reports
/// every bad key.
#[derive(Default)]
pub(super) struct Checker {
    pub(super) problems: Vec<Problem>,
}

impl Checker {
    pub(super) fn problem(&mut self, key: &str, message: String) {
        self.problems.push(Problem {
            key: key.to_owned(),
            message,
        });
    }

    pub(super) fn count(&mut self, key: &str, value: Option<i64>, range: Range<i64>) -> usize {
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

    pub(super) fn duration(
        &mut self,
        key: &str,
        value: Option<String>,
        range: Range<Duration>,
    ) -> Duration {
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

    pub(super) fn path(&mut self, key: &str, value: Option<String>) -> Option<PathBuf> {
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
    pub(super) fn log_file(&mut self, key: &str, path: &Path) {
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
    pub(super) fn database_file(&mut self, key: &str, path: &Path) {
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

    pub(super) fn nul_free(&mut self, key: &str, path: &Path) -> bool {
        let clean = !path.as_os_str().as_encoded_bytes().contains(&0);
        if !clean {
            self.problem(key, "must not contain a NUL byte".to_owned());
        }
        clean
    }
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
