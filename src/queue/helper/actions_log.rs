//! The helper's actions log: one JSON record per line, appended and
//! flushed to disk before the helper goes on, so that an intent is durable
//! before Exim runs. Readable by the daemon's group (0640, in a directory
//! systemd makes: `LogsDirectory=`).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::queue::record::Record;

/// Appends `record` to the log at `path` and waits until it is on disk.
pub fn append(path: &Path, record: &Record) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)?;
    // One write of the whole line: appends of one line never interleave.
    file.write_all(record.to_line().as_bytes())?;
    file.sync_data()
}
