//! Opening what the path names: the live file (after reading generations
//! rotated while no file was followed), positioned where reading of its
//! generation stopped, and holding a newer generation while the rotated one
//! is drained.

use std::fs::File;
use std::io::{BufReader, ErrorKind};
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::Instant;

use super::{Follower, Tracked, Waiting};
use crate::pipeline::item::SourceInfo;
use crate::pipeline::source::ItemSink;
use crate::source::file::framing::LineReader;
use crate::source::file::framing::SCAN_BYTES_PER_STEP;
use crate::source::file::positioned::{check_marker, head_fingerprint};
use crate::source::file::siblings::siblings_signature;

impl Follower {
    /// Opens the live path if possible. Returns whether a file is tracked.
    pub(super) fn open_live(&mut self, sink: &mut dyn ItemSink) -> std::io::Result<bool> {
        // A newer generation opened while the previous one was drained.
        if let Some(next) = self.pending.pop_front() {
            self.current = Some(next);
            return Ok(true);
        }
        // Generations rotated while no file was followed are read first,
        // from the newest one with a stored position on.
        let siblings = siblings_signature(&self.path);
        if self.siblings_signature_seen != Some(siblings) {
            self.siblings_signature_seen = Some(siblings);
            let identified = self.identified_generations();
            self.read_rotated_since_positions(&identified, sink)?;
            let known = self
                .siblings_known
                .replace(identified.iter().map(|(_, f)| *f).collect());
            if let Some(known) = known {
                // Generations that appeared since the last look and were
                // never read: they were at the live path in between.
                for (path, fingerprint) in &identified {
                    if !known.contains(fingerprint) && self.positions.get(fingerprint).is_none() {
                        self.read_finished(path, sink)?;
                    }
                }
            }
        }
        let Some(tracked) = self.open_path()? else {
            return Ok(false);
        };
        self.current = Some(tracked);
        Ok(true)
    }

    /// Opens the file the path names now, positioned where reading of that
    /// generation stopped (0 for a new one).
    pub(super) fn open_path(&mut self) -> std::io::Result<Option<Tracked>> {
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            return Ok(None);
        }
        let file = match crate::source::file::input::open_regular(&self.path) {
            Ok(file) => file,
            Err(err) if err.kind() == ErrorKind::NotFound => {
                self.wait(Waiting::Missing, false);
                return Ok(None);
            }
            Err(err) => {
                self.wait(Waiting::Unreadable(err.to_string()), true);
                return Ok(None);
            }
        };
        let Some(tracked) = self.track(file)? else {
            self.wait(Waiting::NoFirstLine, false);
            return Ok(None);
        };
        if let Some(Waiting::Unreadable(_)) = self.waiting.take() {
            tracing::info!(path = %self.path.display(), "{} can be read again", self.path.display());
        }
        self.retry.reset();
        self.retry_at = None;
        Ok(Some(tracked))
    }

    /// Starts reading `file` (the live log, or a file we hold) where
    /// reading of its generation stopped, 0 for a new one. `None` while it
    /// has no complete first line.
    pub(super) fn track(&mut self, file: File) -> std::io::Result<Option<Tracked>> {
        let metadata = file.metadata()?;
        let Some(fingerprint) = head_fingerprint(&file)? else {
            return Ok(None);
        };
        let mut source = SourceInfo {
            fingerprint,
            path: self.path.display().to_string(),
            device: Some(metadata.dev()),
            inode: Some(metadata.ino()),
            kind: self.settings.kind,
        };
        let resolved = self.positions.resolve(fingerprint, |offset, marker| {
            check_marker(&file, offset, marker)
        })?;
        if resolved.fingerprint != fingerprint {
            tracing::warn!(
                path = %self.path.display(),
                from = resolved.position.byte_offset,
                "{} no longer holds what was read before at its stored position (byte {}, \
                 rewritten in place); reading it as a rewritten generation",
                self.path.display(),
                resolved.position.byte_offset
            );
            source.fingerprint = resolved.fingerprint;
        }
        let (offset, marker) = (resolved.position.byte_offset, resolved.position.marker);
        let reader_handle = file.try_clone()?;
        let mut buffered = BufReader::with_capacity(256 * 1024, reader_handle);
        std::io::Seek::seek(&mut buffered, std::io::SeekFrom::Start(offset))?;
        Ok(Some(Tracked {
            file,
            reader: LineReader::new(buffered, offset, self.settings.max_line_bytes)
                .with_tail_marker(if offset == 0 { &[] } else { &marker })
                .with_scan_limit(SCAN_BYTES_PER_STEP),
            source: Arc::new(source),
            head: fingerprint,
            device: metadata.dev(),
            inode: metadata.ino(),
            last_size: metadata.len(),
            rotated_at: None,
        }))
    }

    /// While the rotated file is drained, holds on to the generation the
    /// path names now, so that it is read later even if it is rotated away
    /// (or deleted) before the drain ends.
    pub(super) fn hold_newer_generation(&mut self) -> std::io::Result<()> {
        let Ok(metadata) = std::fs::metadata(&self.path) else {
            return Ok(());
        };
        let known =
            |tracked: &Tracked| tracked.device == metadata.dev() && tracked.inode == metadata.ino();
        if self.current.as_ref().is_some_and(known) || self.pending.iter().any(known) {
            return Ok(());
        }
        if let Some(tracked) = self.open_path()? {
            tracing::debug!(path = %self.path.display(), "holding a newer generation until the rotated one is drained");
            // The generation before it was superseded now.
            let now = Instant::now();
            if let Some(previous) = self.pending.back_mut().or(self.current.as_mut()) {
                previous.rotated_at.get_or_insert(now);
            }
            self.pending.push_back(tracked);
        }
        Ok(())
    }
}
