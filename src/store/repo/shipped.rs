//! What the fleet replicator reads and keeps here: the chunks after its
//! high-water mark, this database's name, and the last mark PostgreSQL
//! confirmed (for retention).

use deadpool_sqlite::rusqlite::{Connection, OptionalExtension, params};

use super::now_ms;
use crate::store::chunk::{self, StoredLine};
use crate::store::error::{Context, ResultExt, StoreError};
use crate::store::value::query_value;

/// One committed chunk to ship.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkToShip {
    /// Its id: ids grow in commit order and never come back.
    pub id: i64,
    /// The fingerprint of the source its lines were read from.
    pub fingerprint: Vec<u8>,
    /// Its lines.
    pub lines: Vec<StoredLine>,
}

/// The chunks with ids after `after`, in id order, until they hold
/// `max_lines` lines (always at least one chunk, when there is one).
pub fn chunks_after(
    conn: &Connection,
    after: i64,
    max_lines: usize,
) -> Result<Vec<ChunkToShip>, StoreError> {
    let context = || Context::op("read chunks to ship").table("log_chunks");
    let mut statement = conn
        .prepare_cached(
            "SELECT c.id, s.fingerprint, c.start_offset, c.data
             FROM log_chunks c JOIN log_sources s ON s.id = c.source_id
             WHERE c.id > ?1 ORDER BY c.id LIMIT 256",
        )
        .ctx(context)?;
    let mut rows = statement.query(params![after]).ctx(context)?;
    let mut chunks = Vec::new();
    let mut lines = 0;
    while let Some(row) = rows.next().ctx(context)? {
        let start: i64 = row.get(2).ctx(context)?;
        let data: Vec<u8> = row.get(3).ctx(context)?;
        let decoded = chunk::decode(u64::try_from(start).unwrap_or(0), &data)
            .map_err(|err| StoreError::other(context(), err))?;
        lines += decoded.len();
        chunks.push(ChunkToShip {
            id: row.get(0).ctx(context)?,
            fingerprint: row.get(1).ctx(context)?,
            lines: decoded,
        });
        if lines >= max_lines {
            break;
        }
    }
    Ok(chunks)
}

/// The newest chunk's id (0 when there is none) and the lines in chunks
/// after `after`.
pub fn chunks_beyond(conn: &Connection, after: i64) -> Result<(i64, u64), StoreError> {
    let context = || Context::op("count unshipped lines").table("log_chunks");
    let newest: i64 = query_value(
        conn,
        "SELECT coalesce(max(id), 0) FROM log_chunks",
        [],
        context,
    )?;
    let lines: i64 = query_value(
        conn,
        "SELECT coalesce(sum(lines), 0) FROM log_chunks WHERE id > ?1",
        [after],
        context,
    )?;
    Ok((newest, u64::try_from(lines).unwrap_or(0)))
}

/// This database's name (made when its schema was created).
pub fn store_name(conn: &Connection) -> Result<String, StoreError> {
    let context = || Context::op("read the database's name").table("store_identity");
    conn.query_row("SELECT name FROM store_identity", [], |row| row.get(0))
        .ctx(context)
}

/// The last chunk PostgreSQL confirmed, if it ever did.
pub fn load_shipped(conn: &Connection) -> Result<Option<i64>, StoreError> {
    let context = || Context::op("read the shipped mark").table("fleet_shipped");
    conn.query_row("SELECT chunk_id FROM fleet_shipped", [], |row| row.get(0))
        .optional()
        .ctx(context)
}

/// Records that PostgreSQL has committed every chunk up to `chunk_id`.
pub fn save_shipped(conn: &Connection, chunk_id: i64) -> Result<(), StoreError> {
    let context = || Context::op("record the shipped mark").table("fleet_shipped");
    conn.prepare_cached(
        "INSERT INTO fleet_shipped (only_row, chunk_id, shipped_ms) VALUES (1, ?1, ?2)
         ON CONFLICT (only_row) DO UPDATE SET chunk_id = excluded.chunk_id,
             shipped_ms = excluded.shipped_ms",
    )
    .ctx(context)?
    .execute(params![chunk_id, now_ms()])
    .ctx(context)?;
    Ok(())
}
