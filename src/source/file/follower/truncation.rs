//! Truncation of the followed file (copytruncate, or truncated and
//! rewritten between polls): unread bytes come from the rotated copy with
//! the same first line, or are recorded as a gap.

use std::sync::Arc;

use super::{Follower, Tracked};
use crate::pipeline::item::{AuditItem, GapItem, Item};
use crate::pipeline::source::ItemSink;
use crate::source::file::finished::identify;
use crate::source::file::input::MarkerCheck;
use crate::source::file::positioned::{check_marker, head_fingerprint};
use crate::source::file::siblings::rotated_generations;

impl Follower {
    /// The tracked file was truncated. Bytes not yet read are taken from a
    /// rotated copy with the same first line (copytruncate) or recorded as
    /// a gap. Returns false if the writer has gone away.
    pub(super) fn handle_truncation(
        &mut self,
        tracked: Tracked,
        sink: &mut dyn ItemSink,
    ) -> std::io::Result<bool> {
        let committed = tracked.reader.committed_offset();
        let fingerprint = tracked.source.fingerprint;
        self.positions
            .set(fingerprint, committed, tracked.reader.tail_marker());
        tracing::info!(
            path = %self.path.display(),
            read_up_to = committed,
            "{} was truncated (copytruncate?) after byte {committed} had been read",
            self.path.display()
        );
        if !sink.send(AuditItem::item(
            "truncated",
            "daemon",
            serde_json::json!({ "path": tracked.source.path, "read_up_to": committed }),
        )) {
            return Ok(false);
        }
        let copy = rotated_generations(&self.path)
            .into_iter()
            .rev()
            .find(|generation| {
                identify(&generation.path)
                    .ok()
                    .flatten()
                    .is_some_and(|source| source.fingerprint == fingerprint)
            });
        let open = if let Some(copy) = copy {
            let summary = self.read_finished(&copy.path, sink)?;
            tracing::info!(
                path = %copy.path.display(),
                lines = summary.lines,
                "read the rest of the log from its rotated copy {}: {} lines",
                copy.path.display(),
                summary.lines
            );
            self.catch_up(fingerprint, sink)
        } else if tracked.last_size > committed {
            let gap = Item::Gap(GapItem {
                source: Some(Arc::clone(&tracked.source)),
                path: tracked.source.path.clone(),
                start: committed,
                end: Some(tracked.last_size),
                reason: "the log was truncated before these bytes were read, and no rotated copy holds them"
                    .to_owned(),
            });
            sink.send(gap)
        } else {
            true
        };
        // What the file holds now is a new generation: read it from the
        // descriptor we hold (the path may name another file by now).
        let rotated_at = tracked.rotated_at;
        if let Some(mut next) = self.track(tracked.file)? {
            next.rotated_at = rotated_at;
            self.current = Some(next);
        }
        Ok(open)
    }
}

/// Whether the tracked file was truncated: it shrank, or (truncated and
/// rewritten between two polls, maybe to the same size) the bytes before
/// the read position changed. One 16-byte read per poll.
pub(super) fn truncated(tracked: &Tracked, size: u64) -> bool {
    // Shorter than what was read, or than it was when last seen (a held
    // generation may be truncated before any of it was read).
    if size < tracked.read_position() || size < tracked.last_size {
        return true;
    }
    let committed = tracked.reader.committed_offset();
    if committed == 0 {
        // Nothing read yet, so no marker: the first line must still be the
        // one the file had when it was opened (it may have been held, then
        // copied and truncated before a line of it was read).
        return head_fingerprint(&tracked.file)
            .is_ok_and(|head| head.is_some_and(|h| h != tracked.head));
    }
    let marker = tracked.reader.tail_marker();
    matches!(
        check_marker(&tracked.file, committed, marker),
        Ok(MarkerCheck::Differs | MarkerCheck::TooShort)
    )
}
