//! Which label sets of a counted family keep a series of their own.
//!
//! Label values that come from the log (transport names, SMTP codes) are
//! bounded per family ([`LABEL_SETS_PER_FAMILY`]). The slots go to the most
//! frequent sets, not to the first seen: every set's lines are counted in
//! `metric_label_slots`, and a set without a slot (a candidate) takes the
//! slot of the rarest kept set once it has counted more than twice as many
//! lines (the margin keeps two sets of like frequency from trading places
//! at every batch). The evicted set's counts are added to its family's
//! `(other)` series, so no counter goes down and the family's sum stays
//! the lines counted. Candidates are bounded too ([`CANDIDATES_PER_FAMILY`]):
//! a new one replaces the rarest and inherits its count, the Space-Saving
//! algorithm, which never under-counts a frequent set.

use deadpool_sqlite::rusqlite::{Connection, OptionalExtension, params};

use crate::store::{Context, ResultExt, StoreError};

/// Label sets from the log that one family keeps series of; the others are
/// counted as `(other)`.
pub const LABEL_SETS_PER_FAMILY: i64 = 100;

/// The label value of what fell outside the bounds.
pub const OVERFLOW: &str = "(other)";

/// Sets without a slot whose lines are counted, per family.
const CANDIDATES_PER_FAMILY: i64 = 1000;

/// Where `hits` more lines of `labels` are counted in `family`: `labels`
/// itself, or `overflow` (its `(other)` form). Call inside the batch's
/// transaction.
pub fn place(
    conn: &Connection,
    family: &str,
    labels: &str,
    overflow: &str,
    hits: f64,
) -> Result<String, StoreError> {
    let slots = Family { conn, family };
    let known = slots.known(labels)?;
    match known {
        Some((seen, true)) => {
            slots.set(labels, seen + hits, true)?;
            return Ok(labels.to_owned());
        }
        None if slots.count(true)? < LABEL_SETS_PER_FAMILY => {
            slots.set(labels, hits, true)?;
            return Ok(labels.to_owned());
        }
        _ => {}
    }
    let mut seen = known.map_or(0.0, |(seen, _)| seen) + hits;
    if known.is_none()
        && slots.count(false)? >= CANDIDATES_PER_FAMILY
        && let Some((replaced, its_hits)) = slots.rarest(false)?
    {
        slots.forget(&replaced)?;
        seen += its_hits;
    }
    let promoted = match slots.rarest(true)? {
        Some((evicted, its_hits)) if seen > 2.0 * its_hits => {
            slots.set(&evicted, its_hits, false)?;
            fold_into_other(conn, family, &evicted)?;
            true
        }
        _ => false,
    };
    slots.set(labels, seen, promoted)?;
    Ok(if promoted {
        labels.to_owned()
    } else {
        overflow.to_owned()
    })
}

/// One family's rows of `metric_label_slots`.
struct Family<'c> {
    conn: &'c Connection,
    family: &'c str,
}

impl Family<'_> {
    fn context() -> Context {
        Context::op("bound metric labels").table("metric_label_slots")
    }

    /// A set's lines counted, and whether it is kept.
    fn known(&self, labels: &str) -> Result<Option<(f64, bool)>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT hits, kept FROM metric_label_slots WHERE family = ?1 AND labels = ?2",
            )
            .ctx(Self::context)?
            .query_row(params![self.family, labels], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()
            .ctx(Self::context)
    }

    fn set(&self, labels: &str, hits: f64, kept: bool) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO metric_label_slots (family, labels, hits, kept) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (family, labels) DO UPDATE SET hits = excluded.hits, kept = excluded.kept",
            )
            .ctx(Self::context)?
            .execute(params![self.family, labels, hits, kept])
            .ctx(Self::context)?;
        Ok(())
    }

    fn forget(&self, labels: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM metric_label_slots WHERE family = ?1 AND labels = ?2")
            .ctx(Self::context)?
            .execute(params![self.family, labels])
            .ctx(Self::context)?;
        Ok(())
    }

    /// Sets kept (or candidates).
    fn count(&self, kept: bool) -> Result<i64, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT count(*) FROM metric_label_slots WHERE family = ?1 AND kept = ?2",
            )
            .ctx(Self::context)?
            .query_row(params![self.family, kept], |row| row.get(0))
            .ctx(Self::context)
    }

    /// The kept set (or candidate) with the fewest lines.
    fn rarest(&self, kept: bool) -> Result<Option<(String, f64)>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT labels, hits FROM metric_label_slots WHERE family = ?1 AND kept = ?2
                 ORDER BY hits, labels LIMIT 1",
            )
            .ctx(Self::context)?
            .query_row(params![self.family, kept], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()
            .ctx(Self::context)
    }
}

/// Moves an evicted set's counts into its `(other)` series.
fn fold_into_other(conn: &Connection, family: &str, labels: &str) -> Result<(), StoreError> {
    let context = || Context::op("fold metric labels into (other)").table("metric_counters");
    conn.prepare_cached(
        "INSERT INTO metric_counters (family, labels, bucket, value)
         SELECT family, ?3, bucket, value FROM metric_counters WHERE family = ?1 AND labels = ?2
         ON CONFLICT (family, labels, bucket) DO UPDATE SET value = value + excluded.value",
    )
    .ctx(context)?
    .execute(params![family, labels, overflow_of(labels)])
    .ctx(context)?;
    conn.prepare_cached("DELETE FROM metric_counters WHERE family = ?1 AND labels = ?2")
        .ctx(context)?
        .execute(params![family, labels])
        .ctx(context)?;
    Ok(())
}

/// The `(other)` form of a label set from the log, from its text: the
/// transport's value replaced (the outcome stays), or an SMTP code's
/// status and enhanced code.
pub(super) fn overflow_of(labels: &str) -> String {
    let other = OVERFLOW;
    if labels.starts_with("status=") {
        return format!("status=\"{other}\",enhanced=\"\"");
    }
    match labels
        .strip_prefix("transport=\"")
        .and_then(|rest| rest.split_once('"'))
    {
        Some((_, after)) => format!("transport=\"{other}\"{after}"),
        None => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::overflow_of;

    #[test]
    fn the_other_form_keeps_what_is_not_from_the_log() {
        assert_eq!(
            overflow_of("transport=\"junk_1\",outcome=\"delivered\""),
            "transport=\"(other)\",outcome=\"delivered\""
        );
        assert_eq!(overflow_of("transport=\"junk_1\""), "transport=\"(other)\"");
        assert_eq!(
            overflow_of("status=\"451\",enhanced=\"4.7.1\""),
            "status=\"(other)\",enhanced=\"\""
        );
    }
}
