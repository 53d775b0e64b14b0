//! The daemon's second source: the queue helper's actions log, followed
//! like Exim's log (rotation, restarts, exactly once) and brought into the
//! audit log by the writer (`pipeline/writer/queue_actions.rs`). Followed
//! only where its directory exists (the queue helper is installed) and can
//! be read.

use std::sync::Arc;

use super::source_thread::{self, ReaderControl};
use crate::config::Config;
use crate::pipeline::channel::LineSender;
use crate::pipeline::item::SourceKind;
use crate::source::file::file_source::FileSource;
use crate::source::file::follower::{FollowSettings, Follower};
use crate::store::repo::SourcePosition;

/// The reader of the actions log.
pub struct ActionsReader {
    /// How to stop it.
    pub control: Arc<ReaderControl>,
    /// Its thread.
    pub thread: std::thread::JoinHandle<()>,
}

/// Starts following `[queue] actions_log` into `sender`, from its stored
/// position, when its directory exists.
pub fn start(
    config: &Config,
    stored: &[SourcePosition],
    sender: LineSender,
) -> Option<ActionsReader> {
    let path = config.queue.actions_log.clone();
    let directory = path.parent()?;
    if !directory.is_dir() {
        return None;
    }
    // The helper's directory is Exim's user's, readable by the group that
    // reads Exim's logs: a daemon outside it cannot follow the actions.
    if let Err(err) = std::fs::read_dir(directory) {
        tracing::warn!(
            directory = %directory.display(),
            error = %err,
            "cannot read the queue helper's actions log in {} ({err}): queue actions will not \
             reach the audit log; the service needs the group of Exim's logs",
            directory.display()
        );
        return None;
    }
    let settings = FollowSettings {
        kind: SourceKind::QueueActions,
        ..FollowSettings::new(config.ingest.max_line_bytes)
    };
    let (poll_active, poll_idle) = (settings.poll_active, settings.poll_idle);
    let (positions, latest) = super::file_positions(stored, &path);
    let follower = Follower::new(path, settings, positions);
    let source = Box::new(FileSource::new(follower, latest));
    let (control, thread) = source_thread::spawn(source, sender, poll_active, poll_idle);
    Some(ActionsReader { control, thread })
}
