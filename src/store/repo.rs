//! Repository functions: fixed SQL, bound parameters only.
//!
//! Each takes a `&Connection`, and a `rusqlite::Transaction` dereferences to
//! one, so the same function serves inside the writer's batch transaction and
//! on its own. Statements are prepared through the connection's cache.

use deadpool_sqlite::rusqlite::{Connection, OptionalExtension, Statement, ToSql, params};

use super::chunk::{self, ChunkBuilder, LineRecord, SealedChunk, StoredLine};
use super::error::{Context, ResultExt, StoreError};

/// Wall-clock time now, in milliseconds since 1970.
pub fn now_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

/// A log file generation as the reader identifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceIdentity<'a> {
    /// A fingerprint of the file's head; stable across rename and compression.
    pub fingerprint: &'a [u8],
    pub path: &'a str,
    pub device: Option<u64>,
    pub inode: Option<u64>,
}

/// Returns the id of the source with this fingerprint, creating it if new.
/// The path stays the one it was first seen under; device and inode are
/// updated to where it was last seen.
pub fn upsert_source(conn: &Connection, source: &SourceIdentity<'_>) -> Result<i64, StoreError> {
    let context = || {
        Context::op("record log source")
            .table("log_sources")
            .key(source.path)
    };
    let device = source.device.and_then(|d| i64::try_from(d).ok());
    let inode = source.inode.and_then(|i| i64::try_from(i).ok());
    conn.prepare_cached(
        "INSERT INTO log_sources (fingerprint, path, device, inode, first_seen_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (fingerprint) DO UPDATE
             SET device = excluded.device, inode = excluded.inode
         RETURNING id",
    )
    .ctx(context)?
    .query_row(
        params![source.fingerprint, source.path, device, inode, now_ms()],
        |row| row.get(0),
    )
    .ctx(context)
}

/// `line_counts.minute_ms` of lines that have no time: below every real
/// minute, so a window's bounds never include it.
pub const NO_TIME_MINUTE: i64 = i64::MIN;

/// The `line_counts` minute of a line logged at `logged_ms`.
pub fn minute_of(logged_ms: Option<i64>) -> i64 {
    logged_ms.map_or(NO_TIME_MINUTE, |ms| ms - ms.rem_euclid(60_000))
}

/// Rows written by one multi-row INSERT: SQLite runs one statement for
/// many rows far faster than one statement per row (binding, not B-tree
/// work, dominated appending rows).
pub const ROWS_PER_STATEMENT: usize = 32;

/// Inserts `rows` into `table`, [`ROWS_PER_STATEMENT`] to a statement;
/// `bind` binds one row's `columns.len()` values from parameter `first`.
pub fn insert_rows<T>(
    conn: &Connection,
    table: &'static str,
    columns: &[&str],
    rows: &[T],
    bind: impl Fn(&mut Statement<'_>, usize, &T) -> deadpool_sqlite::rusqlite::Result<()>,
) -> Result<(), StoreError> {
    write_rows(conn, table, columns, "", rows, bind)
}

/// [`insert_rows`] with an `ON CONFLICT` clause (`on_conflict`).
fn write_rows<T>(
    conn: &Connection,
    table: &'static str,
    columns: &[&str],
    on_conflict: &str,
    rows: &[T],
    bind: impl Fn(&mut Statement<'_>, usize, &T) -> deadpool_sqlite::rusqlite::Result<()>,
) -> Result<(), StoreError> {
    let context = || Context::op("insert rows").table(table);
    let row_placeholders = format!("({})", vec!["?"; columns.len()].join(", "));
    let sql = |rows: usize| {
        format!(
            "INSERT INTO {table} ({}) VALUES {} {on_conflict}",
            columns.join(", "),
            vec![row_placeholders.as_str(); rows].join(", ")
        )
    };
    // Two statements per table, whatever the number of rows: a full group,
    // and a single row for the rest.
    let run = |sql: &str, rows: &[T]| -> Result<(), StoreError> {
        let mut statement = conn.prepare_cached(sql).ctx(context)?;
        for (index, row) in rows.iter().enumerate() {
            bind(&mut statement, index * columns.len() + 1, row).ctx(context)?;
        }
        statement.raw_execute().ctx(context).map(drop)
    };
    let (grouped, rest) = rows.split_at(rows.len() / ROWS_PER_STATEMENT * ROWS_PER_STATEMENT);
    let full = sql(ROWS_PER_STATEMENT);
    for group in grouped.chunks(ROWS_PER_STATEMENT) {
        run(&full, group)?;
    }
    let single = sql(1);
    for row in rest.chunks(1) {
        run(&single, row)?;
    }
    Ok(())
}

/// Stores a sealed chunk of `source_id`'s lines and links it to the messages
/// it has lines of. Returns the chunk's row.
pub fn insert_chunk(
    conn: &Connection,
    source_id: i64,
    chunk: &SealedChunk,
) -> Result<i64, StoreError> {
    let context = || {
        Context::op("store lines")
            .table("log_chunks")
            .key(format_args!("source {source_id} offset {}", chunk.start))
    };
    conn.prepare_cached(
        "INSERT INTO log_chunks (source_id, start_offset, end_offset, lines, first_ms, last_ms, data)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .ctx(context)?
    .execute(params![
        source_id,
        i64::try_from(chunk.start).unwrap_or(i64::MAX),
        i64::try_from(chunk.end).unwrap_or(i64::MAX),
        chunk.lines,
        chunk.first_ms,
        chunk.last_ms,
        chunk.data,
    ])
    .ctx(context)?;
    let chunk_id = conn.last_insert_rowid();
    insert_rows(
        conn,
        "message_chunks",
        &["message_id", "chunk_id"],
        &chunk.messages,
        |statement, first, message| {
            statement.raw_bind_parameter(first, message)?;
            statement.raw_bind_parameter(first + 1, chunk_id)
        },
    )?;
    Ok(chunk_id)
}

/// Lines on their way into `log_chunks`: consecutive lines of one source
/// fill a chunk, which closes when it is full or a line does not follow on.
/// One chunk is open at a time, so chunks are stored in the order their
/// lines came. Closed chunks wait, uncompressed, until they are stored
/// ([`store_closed`](Self::store_closed), [`finish`](Self::finish)) or
/// taken to be sealed elsewhere ([`take`](Self::take)), so the writer can
/// compress them on another thread and store them after the message rows
/// they link to.
#[derive(Debug, Default)]
pub struct ChunkedLines {
    open: Option<(i64, ChunkBuilder)>,
    closed: Vec<(i64, ChunkBuilder)>,
}

impl ChunkedLines {
    /// Adds a line of `source_id`, closing the open chunk first if the line
    /// cannot join it.
    pub fn push(&mut self, source_id: i64, line: &LineRecord<'_>) {
        let fits = matches!(&self.open, Some((source, chunk)) if *source == source_id && chunk.accepts(line));
        if !fits {
            self.closed.extend(self.open.take());
        }
        let (_, chunk) = self
            .open
            .get_or_insert_with(|| (source_id, ChunkBuilder::new(line.start)));
        chunk.push(line);
    }

    /// Seals and stores the closed chunks.
    pub fn store_closed(&mut self, conn: &Connection) -> Result<(), StoreError> {
        let sealed = seal_all(std::mem::take(&mut self.closed))?;
        store_sealed(conn, &sealed)
    }

    /// Closes the open chunk, then seals and stores every chunk.
    pub fn finish(&mut self, conn: &Connection) -> Result<(), StoreError> {
        self.closed.extend(self.open.take());
        self.store_closed(conn)
    }

    /// Closes the open chunk and hands over every chunk, in order.
    pub fn take(&mut self) -> Vec<(i64, ChunkBuilder)> {
        self.closed.extend(self.open.take());
        std::mem::take(&mut self.closed)
    }
}

/// Compresses chunks of lines (CPU only; any thread).
pub fn seal_all(chunks: Vec<(i64, ChunkBuilder)>) -> Result<Vec<(i64, SealedChunk)>, StoreError> {
    chunks
        .into_iter()
        .map(|(source_id, chunk)| {
            let sealed = chunk.seal().map_err(|err| {
                StoreError::other(
                    Context::op("store lines").key(format_args!("source {source_id}")),
                    err,
                )
            })?;
            Ok((source_id, sealed))
        })
        .collect()
}

/// Stores sealed chunks, in order.
pub fn store_sealed(conn: &Connection, chunks: &[(i64, SealedChunk)]) -> Result<(), StoreError> {
    for (source_id, chunk) in chunks {
        insert_chunk(conn, *source_id, chunk)?;
    }
    Ok(())
}

/// The lines of message row `message_id` (continuation lines included), in
/// the order they were logged, then stored.
pub fn message_lines(conn: &Connection, message_id: i64) -> Result<Vec<StoredLine>, StoreError> {
    let mut lines: Vec<StoredLine> = decoded_chunks(
        conn,
        // Joined, so a link to a pruned chunk is ignored.
        "SELECT c.source_id, c.start_offset, c.data
         FROM message_chunks mc JOIN log_chunks c ON c.id = mc.chunk_id
         WHERE mc.message_id = ?1 ORDER BY c.id",
        &[&message_id],
    )?
    .into_iter()
    .map(|(_, line)| line)
    .filter(|line| line.message == Some(message_id))
    .collect();
    // Stable: lines of one time keep their stored order.
    lines.sort_by_key(|line| line.logged_ms);
    Ok(lines)
}

/// Every stored line with its source row, in the order stored (tests and
/// diagnostics; this reads the whole table).
pub fn all_lines(conn: &Connection) -> Result<Vec<(i64, StoredLine)>, StoreError> {
    decoded_chunks(
        conn,
        "SELECT source_id, start_offset, data FROM log_chunks ORDER BY id",
        &[],
    )
}

/// The stored lines logged from `from_ms` to `to_ms` (inclusive), in the
/// order stored.
pub fn lines_between(
    conn: &Connection,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<StoredLine>, StoreError> {
    Ok(decoded_chunks(
        conn,
        "SELECT source_id, start_offset, data FROM log_chunks
         WHERE last_ms >= ?1 AND first_ms <= ?2 ORDER BY id",
        &[&from_ms, &to_ms],
    )?
    .into_iter()
    .map(|(_, line)| line)
    .filter(|line| {
        line.logged_ms
            .is_some_and(|ms| (from_ms..=to_ms).contains(&ms))
    })
    .collect())
}

/// The lines of the chunks `sql` selects, as (source_id, start_offset,
/// data) rows, decoded in the order returned, each with its source row.
fn decoded_chunks(
    conn: &Connection,
    sql: &str,
    params: &[&dyn ToSql],
) -> Result<Vec<(i64, StoredLine)>, StoreError> {
    let context = || Context::op("read lines").table("log_chunks");
    let mut statement = conn.prepare_cached(sql).ctx(context)?;
    let mut rows = statement.query(params).ctx(context)?;
    let mut lines = Vec::new();
    while let Some(row) = rows.next().ctx(context)? {
        let source_id: i64 = row.get(0).ctx(context)?;
        let start: i64 = row.get(1).ctx(context)?;
        let data: Vec<u8> = row.get(2).ctx(context)?;
        let decoded = chunk::decode(u64::try_from(start).unwrap_or(0), &data)
            .map_err(|err| StoreError::other(context(), err))?;
        lines.extend(decoded.into_iter().map(|line| (source_id, line)));
    }
    Ok(lines)
}

/// The log's clock: the time of the newest stored line that is not dated
/// more than [`FUTURE_TOLERANCE_MS`] ahead of the wall clock. Retention
/// and relative windows count back from it, so one garbage line dated next
/// year (or a brief clock jump on the host) cannot make every real line
/// look old.
pub fn newest_line_ms(conn: &Connection) -> Result<Option<i64>, StoreError> {
    newest_line_ms_before(conn, now_ms().saturating_add(FUTURE_TOLERANCE_MS))
}

/// How far a line's time may be ahead of the wall clock and still count
/// as the log's "now": clocks of a host and its log drift, and time zones
/// are guessed, but a line dated further ahead is garbage or a clock jump.
pub const FUTURE_TOLERANCE_MS: i64 = 24 * 3600 * 1000;

/// The time of the newest stored line dated at or before `limit_ms`.
///
/// A chunk holding one far-future line has that line's time as its
/// `last_ms`; the per-minute counts still know the newest minute of the
/// plausible lines in it, so the answer is exact unless such a chunk
/// holds the newest plausible line (then it is that line's minute).
pub fn newest_line_ms_before(conn: &Connection, limit_ms: i64) -> Result<Option<i64>, StoreError> {
    let context = || Context::op("find the newest line").table("log_chunks");
    let chunk: Option<i64> = conn
        .prepare_cached("SELECT max(last_ms) FROM log_chunks WHERE last_ms <= ?1")
        .ctx(context)?
        .query_row([limit_ms], |row| row.get(0))
        .ctx(context)?;
    let minute: Option<i64> = conn
        .prepare_cached(
            "SELECT max(minute_ms) FROM line_counts WHERE minute_ms > ?1 AND minute_ms <= ?2",
        )
        .ctx(context)?
        .query_row([NO_TIME_MINUTE, limit_ms], |row| row.get(0))
        .ctx(context)?;
    Ok(chunk.max(minute))
}

/// Adds line counts: `lines` lines of `kind` in the minute `minute_ms`,
/// for each `((minute_ms, kind), lines)`.
pub fn add_line_counts(conn: &Connection, counts: &[((i64, &str), u64)]) -> Result<(), StoreError> {
    write_rows(
        conn,
        "line_counts",
        &["minute_ms", "kind", "lines"],
        "ON CONFLICT (minute_ms, kind) DO UPDATE SET lines = lines + excluded.lines",
        counts,
        |statement, first, ((minute_ms, kind), lines)| {
            statement.raw_bind_parameter(first, minute_ms)?;
            statement.raw_bind_parameter(first + 1, kind)?;
            statement.raw_bind_parameter(first + 2, i64::try_from(*lines).unwrap_or(i64::MAX))
        },
    )
}

/// Where reading of one source stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub source_id: i64,
    pub byte_offset: u64,
    pub tail_marker: Vec<u8>,
}

/// Records that everything in `source_id` before `byte_offset` is stored.
/// Call it in the transaction that stores those lines.
pub fn save_checkpoint(conn: &Connection, checkpoint: &Checkpoint) -> Result<(), StoreError> {
    let context = || {
        Context::op("save read position")
            .table("ingest_checkpoints")
            .key(format_args!("source {}", checkpoint.source_id))
    };
    let offset = i64::try_from(checkpoint.byte_offset).unwrap_or(i64::MAX);
    conn.prepare_cached(
        "INSERT INTO ingest_checkpoints (source_id, byte_offset, tail_marker, updated_ms)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (source_id) DO UPDATE
             SET byte_offset = excluded.byte_offset,
                 tail_marker = excluded.tail_marker,
                 updated_ms = excluded.updated_ms",
    )
    .ctx(context)?
    .execute(params![
        checkpoint.source_id,
        offset,
        checkpoint.tail_marker,
        now_ms()
    ])
    .ctx(context)?;
    Ok(())
}

/// The stored read position of a source, if any.
pub fn load_checkpoint(
    conn: &Connection,
    source_id: i64,
) -> Result<Option<Checkpoint>, StoreError> {
    let context = || {
        Context::op("load read position")
            .table("ingest_checkpoints")
            .key(format_args!("source {source_id}"))
    };
    conn.prepare_cached(
        "SELECT byte_offset, tail_marker FROM ingest_checkpoints WHERE source_id = ?1",
    )
    .ctx(context)?
    .query_row([source_id], |row| {
        Ok(Checkpoint {
            source_id,
            byte_offset: u64::try_from(row.get::<_, i64>(0)?).unwrap_or(0),
            tail_marker: row.get(1)?,
        })
    })
    .optional()
    .ctx(context)
}

/// A byte range of a log that was never read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap<'a> {
    pub source_id: Option<i64>,
    pub path: &'a str,
    pub start_offset: u64,
    /// `None` when the end is unknown (the file is gone).
    pub end_offset: Option<u64>,
    pub reason: &'a str,
}

/// Records a gap, unless the same range of the same file is recorded
/// already; returns whether it was new. Call it in the transaction that
/// commits the lines around it, so the record and the read position agree.
pub fn record_gap(conn: &Connection, gap: &Gap<'_>) -> Result<bool, StoreError> {
    let context = || Context::op("record gap").table("ingest_gaps").key(gap.path);
    let start = i64::try_from(gap.start_offset).unwrap_or(i64::MAX);
    let end = gap
        .end_offset
        .map(|end| i64::try_from(end).unwrap_or(i64::MAX));
    // The same range found again (a damaged .gz read on every start) is
    // one gap, not one per start.
    let inserted = conn
        .prepare_cached(
            "INSERT INTO ingest_gaps (source_id, path, start_offset, end_offset, reason, detected_ms)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6
             WHERE NOT EXISTS (SELECT 1 FROM ingest_gaps WHERE source_id IS ?1 AND path = ?2
                               AND start_offset = ?3 AND end_offset IS ?4)",
        )
        .ctx(context)?
        .execute(params![
            gap.source_id,
            gap.path,
            start,
            end,
            gap.reason,
            now_ms()
        ])
        .ctx(context)?;
    Ok(inserted > 0)
}

/// A source with its read position, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePosition {
    pub source_id: i64,
    pub fingerprint: Vec<u8>,
    pub path: String,
    pub byte_offset: u64,
    pub tail_marker: Vec<u8>,
    pub updated_ms: i64,
}

/// Every source with a checkpoint, most recently advanced first.
pub fn source_positions(conn: &Connection) -> Result<Vec<SourcePosition>, StoreError> {
    let context = || Context::op("load read positions").table("ingest_checkpoints");
    let mut statement = conn
        .prepare_cached(
            "SELECT s.id, s.fingerprint, s.path, c.byte_offset, c.tail_marker, c.updated_ms
             FROM ingest_checkpoints c JOIN log_sources s ON s.id = c.source_id
             ORDER BY c.updated_ms DESC, c.rowid DESC",
        )
        .ctx(context)?;
    let rows = statement
        .query_map([], |row| {
            Ok(SourcePosition {
                source_id: row.get(0)?,
                fingerprint: row.get(1)?,
                path: row.get(2)?,
                byte_offset: u64::try_from(row.get::<_, i64>(3)?).unwrap_or(0),
                tail_marker: row.get(4)?,
                updated_ms: row.get(5)?,
            })
        })
        .ctx(context)?;
    rows.collect::<Result<_, _>>().ctx(context)
}

/// One audit record: who did what, to which message, from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord<'a> {
    /// The user, or `exim-pilot` for what the program did on its own.
    pub actor: &'a str,
    pub action: &'a str,
    pub message_id: Option<&'a str>,
    /// Details as a JSON object.
    pub details: &'a str,
    /// `daemon`, or the command (`ingest`, `prune`).
    pub origin: &'a str,
}

/// Appends to the audit log.
pub fn record_audit(conn: &Connection, record: &AuditRecord<'_>) -> Result<i64, StoreError> {
    let context = || {
        Context::op("append audit record")
            .table("audit_log")
            .key(record.action)
    };
    conn.prepare_cached(
        "INSERT INTO audit_log (at_ms, actor, action, detail, message_id, origin)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
    )
    .ctx(context)?
    .query_row(
        params![
            now_ms(),
            record.actor,
            record.action,
            record.details,
            record.message_id,
            record.origin
        ],
        |row| row.get(0),
    )
    .ctx(context)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_rows_writes_every_row_in_order_whatever_the_count() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (a INTEGER, b TEXT)")
            .unwrap();
        for count in [
            0,
            1,
            ROWS_PER_STATEMENT - 1,
            ROWS_PER_STATEMENT,
            2 * ROWS_PER_STATEMENT + 5,
        ] {
            conn.execute("DELETE FROM t", []).unwrap();
            let rows: Vec<(i64, String)> =
                (0..count as i64).map(|i| (i, format!("row {i}"))).collect();
            insert_rows(
                &conn,
                "t",
                &["a", "b"],
                &rows,
                |statement, first, (a, b)| {
                    statement.raw_bind_parameter(first, a)?;
                    statement.raw_bind_parameter(first + 1, b)
                },
            )
            .unwrap();
            let stored: Vec<(i64, String)> = conn
                .prepare("SELECT a, b FROM t ORDER BY rowid")
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(stored, rows, "{count} rows");
        }
    }

    #[test]
    fn line_counts_add_up_across_calls() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::store::migrate(&mut conn).unwrap();
        let many: Vec<((i64, &str), u64)> =
            (0..40).map(|m| ((m * 60_000, "delivery"), 2)).collect();
        add_line_counts(&conn, &many).unwrap();
        add_line_counts(&conn, &[((0, "delivery"), 3), ((0, "reception"), 1)]).unwrap();
        let total = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(total("SELECT sum(lines) FROM line_counts"), 84);
        assert_eq!(
            total("SELECT lines FROM line_counts WHERE minute_ms = 0 AND kind = 'delivery'"),
            5
        );
    }
}
