//! Finishing a rotated generation once it stopped growing, and catching up
//! with generations rotated between two polls.

use std::path::PathBuf;

use super::Follower;
use crate::pipeline::item::AuditItem;
use crate::pipeline::source::ItemSink;
use crate::source::file::finished::{identify, line_item};
use crate::source::file::identity::Fingerprint;
use crate::source::file::siblings::rotated_generations;

impl Follower {
    /// Finishes the rotated file: sends its unterminated last line, if any,
    /// and closes it. Returns false if the writer has gone away.
    pub(super) fn finish_current(&mut self, sink: &mut dyn ItemSink) -> bool {
        let Some(mut tracked) = self.current.take() else {
            return true;
        };
        let mut open = true;
        if let Some(line) = tracked.reader.finish() {
            tracing::info!(
                path = %self.path.display(),
                bytes = line.length,
                "the rotated log {} ended without a newline; storing its last line ({} bytes) as it is",
                self.path.display(),
                line.length
            );
            open = sink.send(line_item(&tracked.source, &line));
        }
        self.positions.set(
            tracked.source.fingerprint,
            tracked.reader.committed_offset(),
            tracked.reader.tail_marker(),
        );
        tracing::info!(
            path = %self.path.display(),
            bytes = tracked.reader.committed_offset(),
            "finished the rotated log ({} bytes); following the new {}",
            tracked.reader.committed_offset(),
            self.path.display()
        );
        open && sink.send(AuditItem::item(
            "rotated",
            "daemon",
            serde_json::json!({
                "path": tracked.source.path,
                "first_line": tracked.source.fingerprint.to_string(),
                "bytes": tracked.reader.committed_offset(),
            }),
        )) && self.catch_up(tracked.source.fingerprint, sink)
    }

    /// After finishing a rotated generation, reads the generations between
    /// it and the ones held or live: several rotations between two polls
    /// leave generations that were never at the path while we looked.
    /// Returns false if the writer has gone away.
    pub(super) fn catch_up(&mut self, finished: Fingerprint, sink: &mut dyn ItemSink) -> bool {
        let held: Vec<Fingerprint> = self.pending.iter().map(|t| t.source.fingerprint).collect();
        let live = identify(&self.path).ok().flatten().map(|s| s.fingerprint);
        let generations: Vec<(PathBuf, Fingerprint)> = rotated_generations(&self.path)
            .into_iter()
            .filter_map(|g| {
                let source = identify(&g.path).ok().flatten()?;
                Some((g.path, source.fingerprint))
            })
            .collect();
        let Some(start) = generations.iter().position(|(_, f)| *f == finished) else {
            return true;
        };
        let mut seen = std::collections::HashSet::from([finished]);
        for (path, fingerprint) in &generations[start + 1..] {
            // A held generation is read next, in its turn; what comes after
            // it is caught up when it is finished.
            if held.contains(fingerprint) || live == Some(*fingerprint) {
                break;
            }
            if !seen.insert(*fingerprint) {
                continue;
            }
            match self.read_finished(path, sink) {
                Ok(summary) if summary.lines > 0 => {
                    tracing::info!(
                        path = %path.display(),
                        lines = summary.lines,
                        "read {} lines of {}, rotated between two polls",
                        summary.lines,
                        path.display()
                    );
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(
                        path = %path.display(),
                        error = %err,
                        "cannot read the rotated generation {}: {err}",
                        path.display()
                    );
                }
            }
        }
        true
    }
}
