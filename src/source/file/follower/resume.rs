//! Resuming after a stop: the generation the newest stored position belongs
//! to is found among the rotated files by its first line and finished, then
//! every newer one, before the live file is followed; a position whose file
//! is gone becomes a gap.

use std::path::{Path, PathBuf};

use super::{Follower, LastRead};
use crate::pipeline::item::{GapItem, Item};
use crate::pipeline::source::ItemSink;
use crate::source::file::finished::{ReadSummary, identify, read_file};
use crate::source::file::identity::Fingerprint;
use crate::source::file::siblings::{rotated_generations, siblings_signature};

impl Follower {
    /// Handles rotation while stopped: finishes the generation the newest
    /// read position of this log belongs to, then every newer one, before
    /// the live file is followed. A position whose file is gone becomes a
    /// gap. Returns the lines sent.
    pub fn resume(
        &mut self,
        latest: Option<LastRead>,
        sink: &mut dyn ItemSink,
    ) -> std::io::Result<u64> {
        // Taken before they are read: the first poll reads the rotated
        // generations again only if they change after this (reading a
        // compressed one from a position decompresses it from its start).
        self.siblings_signature_seen = Some(siblings_signature(&self.path));
        let identified = self.identified_generations();
        // What is rotated now is history; only what appears later is new.
        self.siblings_known = Some(identified.iter().map(|(_, f)| *f).collect());
        let live = identify(&self.path).ok().flatten();
        if let Some(LastRead {
            fingerprint,
            offset,
            ..
        }) = latest
        {
            // The generation, or a rewrite in place of it.
            let found = identified
                .iter()
                .map(|(_, head)| *head)
                .chain(live.as_ref().map(|s| s.fingerprint))
                .any(|head| self.positions.is_generation_of(head, fingerprint));
            if !found {
                let gap = Item::Gap(GapItem {
                    source: None,
                    path: self.path.display().to_string(),
                    start: offset,
                    end: None,
                    reason: format!(
                        "the log generation last read (first line {fingerprint}) is gone: \
                         rotated away or deleted while exim-pilot was stopped"
                    ),
                });
                if !sink.send(gap) {
                    return Ok(0);
                }
            }
        }
        let live_known = live
            .as_ref()
            .is_some_and(|source| self.positions.get(&source.fingerprint).is_some());
        let mut lines = 0;
        if !live_known {
            lines += self.read_rotated_since_positions(&identified, sink)?;
        }
        // Generations never read but written after the last commit were
        // created and rotated away while exim-pilot was down.
        if let Some(last) = latest {
            for (path, fingerprint) in &identified {
                let modified_ms = std::fs::metadata(path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                if self.positions.get(fingerprint).is_none() && modified_ms >= last.committed_ms {
                    let summary = self.read_finished(path, sink)?;
                    lines += summary.lines;
                }
            }
        }
        Ok(lines)
    }

    /// Reads a rotated (finished) generation from its stored position to
    /// its end, unterminated last line included.
    pub(super) fn read_finished(
        &mut self,
        path: &Path,
        sink: &mut dyn ItemSink,
    ) -> std::io::Result<ReadSummary> {
        read_file(
            path,
            &mut self.positions,
            self.settings.max_line_bytes,
            true,
            self.settings.kind,
            sink,
        )
    }

    /// The rotated generations that have a first line, oldest first.
    pub(super) fn identified_generations(&self) -> Vec<(PathBuf, Fingerprint)> {
        rotated_generations(&self.path)
            .into_iter()
            .filter_map(|generation| match identify(&generation.path) {
                Ok(source) => source.map(|s| (generation.path, s.fingerprint)),
                Err(err) => {
                    tracing::warn!(
                        path = %generation.path.display(),
                        error = %err,
                        "cannot read the rotated log {}: {err}",
                        generation.path.display()
                    );
                    None
                }
            })
            .collect()
    }

    /// Reads, oldest first, the newest rotated generation with a stored
    /// position and every generation after it: what was rotated away
    /// before it could be read from the live path.
    pub(super) fn read_rotated_since_positions(
        &mut self,
        identified: &[(PathBuf, Fingerprint)],
        sink: &mut dyn ItemSink,
    ) -> std::io::Result<u64> {
        let Some(start) = identified
            .iter()
            .rposition(|(_, fingerprint)| self.positions.get(fingerprint).is_some())
        else {
            return Ok(0);
        };
        let mut lines = 0;
        let mut seen = std::collections::HashSet::new();
        for (path, fingerprint) in &identified[start..] {
            // A generation listed twice (plain and .gz) is read once.
            if !seen.insert(*fingerprint) {
                continue;
            }
            let summary = self.read_finished(path, sink)?;
            if summary.lines > 0 {
                tracing::info!(
                    path = %path.display(),
                    lines = summary.lines,
                    from = summary.resumed_at,
                    "read {} lines of the rotated generation {}, from byte {}",
                    summary.lines,
                    path.display(),
                    summary.resumed_at
                );
            }
            lines += summary.lines;
        }
        Ok(lines)
    }
}
