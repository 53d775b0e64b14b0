//! What a journal source reads: which entries are Exim's main log (by
//! syslog identifier or unit), where a source stands (its stored
//! read position), and the window `ingest --journal` reads.

use std::sync::Arc;

use crate::pipeline::item::SourceInfo;
use crate::pipeline::source::Fingerprint;
use crate::store::repo::ReadPosition;

/// Which entries are Exim's main log, and how to read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalSettings {
    /// `SYSLOG_IDENTIFIER` of Exim's entries (`syslog_processname`).
    pub identifier: String,
    /// When set, entries of this unit (`_SYSTEMD_UNIT`) instead.
    pub unit: Option<String>,
    /// Lines longer than this are stored cut, with their real length.
    pub max_line_bytes: usize,
    /// The journalctl to run (tests give a stand-in).
    pub program: std::path::PathBuf,
}

impl JournalSettings {
    /// The settings `[log]` and `[ingest]` give.
    pub fn from_config(config: &crate::config::Config) -> Self {
        JournalSettings {
            identifier: config.log.journal_identifier.clone(),
            unit: config.log.journal_unit.clone(),
            max_line_bytes: config.ingest.max_line_bytes,
            program: std::path::PathBuf::from("journalctl"),
        }
    }

    /// Which of the journal's entries are Exim's, as a journalctl match.
    pub(super) fn exim_match(&self) -> String {
        match &self.unit {
            Some(unit) => format!("_SYSTEMD_UNIT={unit}"),
            None => format!("SYSLOG_IDENTIFIER={}", self.identifier),
        }
    }

    /// The name the source is stored under (its `log_sources` path).
    pub fn describe(&self) -> String {
        format!("journal:{}", self.exim_match())
    }

    /// The stored read position of this source among `stored` (`None`: it
    /// was never read, reading starts at the beginning).
    pub fn stored_position(
        &self,
        stored: &[crate::store::repo::SourcePosition],
    ) -> Option<ReadPosition> {
        let name = self.describe();
        stored
            .iter()
            .find(|row| row.path == name)
            .map(|row| row.position.clone())
    }

    /// The source's identity: its description (one journal source per
    /// match; its read position is a cursor, not a first line).
    pub fn source_info(&self) -> Arc<SourceInfo> {
        let path = self.describe();
        Arc::new(SourceInfo {
            fingerprint: Fingerprint::of_bytes(path.as_bytes()),
            path,
            device: None,
            inode: None,
            kind: crate::pipeline::item::SourceKind::EximLog,
        })
    }
}

/// What one read of the journal is bounded by, for `ingest`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Window {
    /// journalctl's `--since`.
    pub since: Option<String>,
    /// journalctl's `--until`.
    pub until: Option<String>,
}
