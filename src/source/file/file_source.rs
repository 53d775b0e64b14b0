//! The file follower as a [`LineSource`]: what the daemon's reader thread
//! drives when Exim logs to a file.

use std::path::PathBuf;

use super::follower::{Follower, LastRead};
use crate::pipeline::source::{ItemSink, LineSource, PollOutcome};

/// A [`Follower`] and the newest stored read position of its log, which
/// [`LineSource::resume`] starts from.
pub struct FileSource {
    follower: Follower,
    latest: Option<LastRead>,
}

impl FileSource {
    /// A source following `follower`'s path, resuming after `latest`.
    pub fn new(follower: Follower, latest: Option<LastRead>) -> Self {
        FileSource { follower, latest }
    }
}

impl LineSource for FileSource {
    fn describe(&self) -> String {
        self.follower.path().display().to_string()
    }

    fn resume(&mut self, sink: &mut dyn ItemSink) -> std::io::Result<u64> {
        self.follower.resume(self.latest.take(), sink)
    }

    fn poll(&mut self, sink: &mut dyn ItemSink) -> std::io::Result<PollOutcome> {
        self.follower.poll(sink)
    }

    fn lag_bytes(&self) -> u64 {
        self.follower.lag_bytes()
    }

    /// The log's directory: rotation creates and renames files there.
    fn wake_directory(&self) -> Option<PathBuf> {
        match self.follower.path().parent() {
            Some(dir) if !dir.as_os_str().is_empty() => Some(dir.to_path_buf()),
            _ => Some(PathBuf::from(".")),
        }
    }

    fn switch_path(&mut self, path: PathBuf, sink: &mut dyn ItemSink) -> std::io::Result<()> {
        self.follower.switch_path(path, sink)
    }
}
