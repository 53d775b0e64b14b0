//! Lines dated before Exim existed or far ahead of the clock: stored like
//! any other line, and reported once per batch in the audit log.

use crate::pipeline::item::LineItem;
use crate::store::repo::now_ms;

/// The earliest time a line of Exim's can carry: its first release. An
/// earlier one (1970 above all) comes from a reset clock or garbage.
const EXIM_EPOCH_MS: i64 = 788_918_400_000; // 1995-01-01T00:00:00Z

/// Lines of a batch dated before Exim existed or beyond the wall clock's
/// tolerance: stored like any other line, and reported, because they are
/// garbage or a clock jump that an operator should know of.
#[derive(Debug, Default)]
pub(super) struct ImplausibleTimes<'b> {
    count: u64,
    /// The first such line: its path, offset and time.
    first: Option<(&'b str, u64, i64)>,
    /// The latest plausible time (the wall clock plus tolerance).
    latest_ms: i64,
}

impl<'b> ImplausibleTimes<'b> {
    pub(super) fn new() -> Self {
        ImplausibleTimes {
            latest_ms: now_ms().saturating_add(crate::store::repo::FUTURE_TOLERANCE_MS),
            ..ImplausibleTimes::default()
        }
    }

    pub(super) fn check(&mut self, line: &'b LineItem, logged_ms: i64) {
        if (EXIM_EPOCH_MS..=self.latest_ms).contains(&logged_ms) {
            return;
        }
        self.count += 1;
        self.first
            .get_or_insert((line.source.path.as_str(), line.start, logged_ms));
    }

    /// The audit record's details, if any line was implausible.
    pub(super) fn report(&self) -> Option<String> {
        let (path, offset, logged_ms) = self.first?;
        tracing::warn!(
            lines = self.count,
            path,
            offset,
            logged_ms,
            "stored {} line(s) dated before 1995 or more than a day ahead of the clock \
             (first in {path} at byte {offset}); they do not move the retention clock",
            self.count
        );
        Some(
            serde_json::json!({
                "lines": self.count, "path": path, "offset": offset, "logged_ms": logged_ms,
            })
            .to_string(),
        )
    }
}
