//! The files named to `ingest` as one [`LineSource`]: each read in turn
//! from its stored read position to its end, one file per poll, so that
//! `ingest` drives them with the same loop as every other source.

use std::path::{Path, PathBuf};

use super::finished::{ReadSummary, read_file};
use super::positions::Positions;
use crate::pipeline::item::SourceKind;
use crate::pipeline::source::{ItemSink, LineSource, PollOutcome};

/// Files to read in order, and what reading each gave.
pub struct NamedFiles {
    files: Vec<PathBuf>,
    positions: Positions,
    max_line_bytes: usize,
    /// What each file read so far gave, in order.
    summaries: Vec<(PathBuf, ReadSummary)>,
}

impl NamedFiles {
    /// `files`, to be read after the stored `positions`.
    pub fn new(files: Vec<PathBuf>, positions: Positions, max_line_bytes: usize) -> Self {
        NamedFiles {
            files,
            positions,
            max_line_bytes,
            summaries: Vec::new(),
        }
    }

    /// The file the next poll reads (the one that failed, after an error).
    pub fn current(&self) -> Option<&Path> {
        self.files.get(self.summaries.len()).map(PathBuf::as_path)
    }

    /// What each file read gave, in order.
    pub fn summaries(&self) -> &[(PathBuf, ReadSummary)] {
        &self.summaries
    }
}

impl LineSource for NamedFiles {
    fn describe(&self) -> String {
        format!("{} files", self.files.len())
    }

    /// Reads the next file to its end. An unterminated last line waits for
    /// a later run (the file may still be written).
    fn poll(&mut self, sink: &mut dyn ItemSink) -> std::io::Result<PollOutcome> {
        let Some(path) = self.current().map(Path::to_path_buf) else {
            return Ok(PollOutcome::default());
        };
        let summary = read_file(
            &path,
            &mut self.positions,
            self.max_line_bytes,
            false,
            SourceKind::EximLog,
            sink,
        )?;
        let outcome = PollOutcome {
            lines: summary.lines,
            again: true,
            closed: summary.interrupted,
        };
        self.summaries.push((path, summary));
        Ok(outcome)
    }

    fn finished(&self) -> bool {
        self.summaries.len() >= self.files.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::drive::{ToTheEnd, drive};
    use crate::pipeline::source::Collected;

    #[test]
    fn files_are_read_in_turn_and_a_missing_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("mainlog.1");
        let second = dir.path().join("mainlog");
        std::fs::write(&first, "2024-01-01 00:00:00 one\n2024-01-01 00:00:01 two\n").unwrap();
        std::fs::write(&second, "2024-01-01 00:00:02 three\nunfinished").unwrap();
        let mut source = NamedFiles::new(
            vec![first.clone(), second.clone()],
            Positions::default(),
            1024,
        );
        let mut sink = Collected::default();
        assert_eq!(drive(&mut source, &mut sink, &mut ToTheEnd).unwrap(), 3);
        let read: Vec<(PathBuf, u64, u64)> = source
            .summaries()
            .iter()
            .map(|(path, s)| (path.clone(), s.lines, s.pending_bytes))
            .collect();
        assert_eq!(read, vec![(first.clone(), 2, 0), (second, 1, 10)]);

        let missing = dir.path().join("gone");
        let mut source = NamedFiles::new(vec![first, missing.clone()], Positions::default(), 1024);
        let err = drive(&mut source, &mut Collected::default(), &mut ToTheEnd).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
        assert_eq!(source.current(), Some(missing.as_path()));
        assert_eq!(source.summaries().len(), 1);
    }
}
