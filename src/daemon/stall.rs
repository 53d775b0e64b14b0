//! The stall watch: every few seconds it asks the reader whether it has
//! stalled (reads failing, or one hanging outside the channel, for
//! `[health] stall_after`), and records each start and end of a stall in
//! the audit log, so that the web view's health page, which sees only the
//! database, says so too. The status line and the metrics ask the reader
//! directly.

use std::sync::Arc;
use std::time::Duration;

use super::source_thread::{ReaderControl, Stall};
use crate::pipeline::item::{AuditItem, Item};
use crate::store::repo::{SOURCE_RECOVERED, SOURCE_STALLED};

/// How often the watch looks.
pub(super) const WATCH_EVERY: Duration = Duration::from_secs(5);

/// What the audit log says now.
pub(super) struct StallWatch {
    control: Arc<ReaderControl>,
    /// Whether the newest record says stalled.
    recorded: bool,
}

impl StallWatch {
    /// `recorded`: whether the database's newest stall record is still open
    /// (a daemon stopped while stalled records the recovery once it reads).
    pub(super) fn new(control: Arc<ReaderControl>, recorded: bool) -> Self {
        StallWatch { control, recorded }
    }

    /// The record to append when the reader's state differs from the
    /// newest one recorded.
    pub(super) fn check(&mut self) -> Option<Item> {
        match self.control.stall() {
            Some(stall) if !self.recorded => {
                self.recorded = true;
                Some(stalled(&self.control.describe(), &stall))
            }
            None if self.recorded => {
                self.recorded = false;
                let source = self.control.describe();
                tracing::info!(source = %source, "{source} is read again; the stall is over");
                Some(AuditItem::item(
                    SOURCE_RECOVERED,
                    "daemon",
                    serde_json::json!({ "source": source }),
                ))
            }
            _ => None,
        }
    }
}

fn stalled(source: &str, stall: &Stall) -> Item {
    tracing::error!(
        source = %source,
        since_ms = stall.since_ms,
        "the log source has stalled: {}; nothing new is stored until it reads again",
        stall.reason
    );
    AuditItem::item(
        SOURCE_STALLED,
        "daemon",
        serde_json::json!({
            "source": source, "since_ms": stall.since_ms, "reason": stall.reason,
        }),
    )
}
