//! Raw lines: chunks of consecutive lines on their way in, compressed and
//! stored, and read back for `trace`, `lines` and the tests.

use deadpool_sqlite::rusqlite::{Connection, ToSql, params};

use super::insert_rows;
use crate::store::chunk::{self, ChunkBuilder, Compressor, LineRecord, SealedChunk, StoredLine};
use crate::store::error::{Context, ResultExt, StoreError};

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
        let sealed = seal_all(std::mem::take(&mut self.closed), &mut Compressor::default())?;
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
pub fn seal_all(
    chunks: Vec<(i64, ChunkBuilder)>,
    compressor: &mut Compressor,
) -> Result<Vec<(i64, SealedChunk)>, StoreError> {
    chunks
        .into_iter()
        .map(|(source_id, chunk)| {
            let sealed = chunk.seal_with(compressor).map_err(|err| {
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
/// the order they were logged, then stored: as many as fit in `max_bytes`
/// (the first whatever its length, unless the budget is spent), and how
/// many more there were. One chunk is decoded
/// at a time, so memory stays within the budget and a chunk.
pub fn message_lines(
    conn: &Connection,
    message_id: i64,
    max_bytes: usize,
) -> Result<(Vec<StoredLine>, u64), StoreError> {
    let context = || Context::op("read lines").table("log_chunks");
    // Joined, so a link to a pruned chunk is ignored.
    let mut statement = conn
        .prepare_cached(
            "SELECT c.start_offset, c.data
             FROM message_chunks mc JOIN log_chunks c ON c.id = mc.chunk_id
             WHERE mc.message_id = ?1 ORDER BY c.id",
        )
        .ctx(context)?;
    let mut rows = statement.query([message_id]).ctx(context)?;
    let mut lines: Vec<StoredLine> = Vec::new();
    let mut kept_bytes = 0usize;
    let mut left_out = 0u64;
    while let Some(row) = rows.next().ctx(context)? {
        let start: i64 = row.get(0).ctx(context)?;
        let data: Vec<u8> = row.get(1).ctx(context)?;
        let decoded = chunk::decode(u64::try_from(start).unwrap_or(0), &data)
            .map_err(|err| StoreError::other(context(), err))?;
        for line in decoded {
            if line.message != Some(message_id) {
                continue;
            }
            let fits = kept_bytes.saturating_add(line.bytes.len()) <= max_bytes
                || (lines.is_empty() && max_bytes > 0);
            if !fits {
                left_out += 1;
                continue;
            }
            kept_bytes += line.bytes.len();
            lines.push(line);
        }
    }
    // Stable: lines of one time keep their stored order.
    lines.sort_by_key(|line| line.logged_ms);
    Ok((lines, left_out))
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

/// The lines of at most `limit` chunks with ids after `after`, in the
/// order stored, and the last chunk's id (`None` when there were no more):
/// for reading every line with bounded memory. Reading stops after the
/// chunk whose lines pass `max_bytes` (the first is always read).
pub fn lines_of_chunks_after(
    conn: &Connection,
    after: i64,
    limit: i64,
    max_bytes: usize,
) -> Result<(Vec<StoredLine>, Option<i64>), StoreError> {
    let context = || Context::op("read lines").table("log_chunks");
    let mut statement = conn
        .prepare_cached(
            "SELECT id, start_offset, data FROM log_chunks WHERE id > ?1 ORDER BY id LIMIT ?2",
        )
        .ctx(context)?;
    let mut rows = statement.query(params![after, limit]).ctx(context)?;
    let mut lines: Vec<StoredLine> = Vec::new();
    let mut bytes = 0usize;
    let mut last = None;
    while let Some(row) = rows.next().ctx(context)? {
        let id: i64 = row.get(0).ctx(context)?;
        let start: i64 = row.get(1).ctx(context)?;
        let data: Vec<u8> = row.get(2).ctx(context)?;
        let decoded = chunk::decode(u64::try_from(start).unwrap_or(0), &data)
            .map_err(|err| StoreError::other(context(), err))?;
        bytes += decoded.iter().map(|line| line.bytes.len()).sum::<usize>();
        lines.extend(decoded);
        last = Some(id);
        if bytes > max_bytes {
            break;
        }
    }
    Ok((lines, last))
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
        // `+id`: sorting the few chunks found beats the full scan in id
        // order SQLite would otherwise choose to spare the sort.
        "SELECT source_id, start_offset, data FROM log_chunks
         WHERE last_ms >= ?1 AND first_ms <= ?2 ORDER BY +id",
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Three chunks of one 600-byte line each.
    fn three_chunks() -> Connection {
        let conn = crate::store::migrated_in_memory();
        conn.execute_batch(
            "INSERT INTO log_sources (id, fingerprint, path, first_seen_ms) VALUES (1, x'01', 'log', 0)",
        )
        .unwrap();
        let line = vec![b'x'; 600];
        for n in 0..3u64 {
            let mut chunk = ChunkBuilder::new(n * 601);
            chunk.push(&LineRecord {
                start: n * 601,
                end: n * 601 + 601,
                length: 600,
                bytes: &line,
                logged_ms: Some(0),
                message: None,
            });
            insert_chunk(&conn, 1, &chunk.seal().unwrap()).unwrap();
        }
        conn
    }

    #[test]
    fn chunks_after_an_id_stop_once_their_lines_pass_the_bytes_asked() {
        let conn = three_chunks();
        let (lines, last) = lines_of_chunks_after(&conn, 0, 16, usize::MAX).unwrap();
        assert_eq!((lines.len(), last), (3, Some(3)));
        // Past 1,000 bytes after the second chunk; the first always comes.
        let (lines, last) = lines_of_chunks_after(&conn, 0, 16, 1000).unwrap();
        assert_eq!((lines.len(), last), (2, Some(2)));
        let (lines, last) = lines_of_chunks_after(&conn, 1, 16, 0).unwrap();
        assert_eq!((lines.len(), last), (1, Some(2)));
        let (lines, last) = lines_of_chunks_after(&conn, 3, 16, 0).unwrap();
        assert_eq!((lines.len(), last), (0, None));
    }
}
