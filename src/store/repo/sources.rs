//! Sources (log file generations by fingerprint) and where reading of each
//! stopped: the read positions that commit with the lines they cover.

use deadpool_sqlite::rusqlite::{Connection, OptionalExtension, params};

use super::now_ms;
use crate::store::error::{Context, ResultExt, StoreError};

/// A log file generation as the reader identifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceIdentity<'a> {
    /// A fingerprint of the file's head; stable across rename and compression.
    pub fingerprint: &'a [u8],
    /// The path it was first seen under.
    pub path: &'a str,
    /// Its device when last seen.
    pub device: Option<u64>,
    /// Its inode when last seen.
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

/// Where reading of a source resumes, the one form every source stores:
/// everything before `byte_offset` is stored, and `marker` confirms it on
/// resume (a file's last bytes before the offset, or the journal's cursor
/// with any split line still unfinished; the source knows which).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadPosition {
    /// Everything before this offset is stored (for the journal: the bytes
    /// of the lines read from it).
    pub byte_offset: u64,
    /// What confirms the offset on resume.
    pub marker: Vec<u8>,
}

/// Where reading of one source stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The source's row.
    pub source_id: i64,
    /// Its read position.
    pub position: ReadPosition,
}

/// Records that everything in `source_id` before `byte_offset` is stored,
/// committed at `committed_ms`. Call it in the transaction that stores
/// those lines, with one time for every position it commits: the newest
/// position of a path is then decided by [`source_positions`]' tie-break
/// (the later source row), not by the clock ticking between two saves.
pub fn save_checkpoint(
    conn: &Connection,
    checkpoint: &Checkpoint,
    committed_ms: i64,
) -> Result<(), StoreError> {
    let context = || {
        Context::op("save read position")
            .table("ingest_checkpoints")
            .key(format_args!("source {}", checkpoint.source_id))
    };
    let offset = i64::try_from(checkpoint.position.byte_offset).unwrap_or(i64::MAX);
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
        checkpoint.position.marker,
        committed_ms
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
            position: ReadPosition {
                byte_offset: u64::try_from(row.get::<_, i64>(0)?).unwrap_or(0),
                marker: row.get(1)?,
            },
        })
    })
    .optional()
    .ctx(context)
}

/// A source with its read position, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePosition {
    /// The source's row.
    pub source_id: i64,
    /// Its identity (16 bytes).
    pub fingerprint: Vec<u8>,
    /// The path it was first seen under.
    pub path: String,
    /// Its read position.
    pub position: ReadPosition,
    /// When the position last advanced (wall clock).
    pub updated_ms: i64,
}

/// Every source with a checkpoint, most recently advanced first; among
/// positions committed together, the source created last first (a path's
/// generations get their rows in the order they are read, so a batch that
/// finishes one generation and starts the next makes the next the newest).
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
                position: ReadPosition {
                    byte_offset: u64::try_from(row.get::<_, i64>(3)?).unwrap_or(0),
                    marker: row.get(4)?,
                },
                updated_ms: row.get(5)?,
            })
        })
        .ctx(context)?;
    rows.collect::<Result<_, _>>().ctx(context)
}
