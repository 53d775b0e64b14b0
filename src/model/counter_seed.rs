//! The one-time count of a database made before the metrics' counters
//! existed: its stored lines and gaps, counted as if they had just been
//! read, in the transaction that clears the mark migration 0010 set.

use deadpool_sqlite::rusqlite::{Connection, OptionalExtension};

use super::counters::CounterTally;
use crate::parse::parse_line;
use crate::store::{Context, ResultExt, StoreError};

/// Chunks of lines read at a time when seeding: a bound on memory.
const SEED_CHUNKS: i64 = 64;

/// Counts the stored lines and gaps of a database made before the
/// counters existed, once (migration 0010 marks such a database). Call
/// inside a write transaction. Returns the lines counted, if it counted.
///
/// Lines retention already deleted are not counted: the counters of such a
/// database start from what it still holds.
pub fn seed_if_needed(conn: &Connection) -> Result<Option<u64>, StoreError> {
    let context = || Context::op("seed the metric counters").table("metric_state");
    let needed: Option<i64> = conn
        .prepare_cached("SELECT value FROM metric_state WHERE key = 'needs_seed'")
        .ctx(context)?
        .query_row([], |row| row.get(0))
        .optional()
        .ctx(context)?;
    if needed.is_none() {
        return Ok(None);
    }
    let mut after = 0i64;
    let mut lines = 0u64;
    loop {
        let (page, last) =
            crate::store::repo::lines_of_chunks_after(conn, after, SEED_CHUNKS, usize::MAX)?;
        let Some(last) = last else { break };
        after = last;
        let mut tally = CounterTally::default();
        for line in &page {
            tally.line(&parse_line(&line.bytes), line.is_truncated());
        }
        lines += page.len() as u64;
        tally.flush(conn)?;
    }
    let gaps: i64 = conn
        .query_row("SELECT count(*) FROM ingest_gaps", [], |row| row.get(0))
        .ctx(context)?;
    let mut tally = CounterTally::default();
    for _ in 0..gaps {
        tally.gap();
    }
    tally.flush(conn)?;
    conn.execute("DELETE FROM metric_state WHERE key = 'needs_seed'", [])
        .ctx(context)?;
    Ok(Some(lines))
}
