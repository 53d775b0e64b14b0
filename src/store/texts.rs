//! The `texts` table: each repeated value of messages and delivery
//! attempts (routers, transports, peer names and addresses, HELO names,
//! protocols, TLS ciphers, SMTP codes, error texts) stored once and
//! referred to by id.
//!
//! A text is found by [`text_hash`] of its bytes through the index
//! `texts_hash`, then compared: an index on the text itself would store
//! every text twice. [`TextIds`] remembers ids between batches. It is a
//! cache: bounded, and dropped with the rest of the writer's state when a
//! transaction rolls back (the ids of texts added by that transaction never
//! existed) or when retention removed texts (`texts_swept` counts that).

// FxHash would do for router names, but error texts come from remote
// servers: the standard hasher, which crafted keys cannot make collide.
use std::collections::HashMap;

use deadpool_sqlite::rusqlite::{Connection, OptionalExtension};

use super::error::{Context, ResultExt, StoreError};
use super::value::query_value;

/// 64-bit FNV-1a of `text`'s bytes, as SQLite's signed integer. Stored in
/// the database, so it must never change.
pub fn text_hash(text: &str) -> i64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = text.bytes().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    });
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// Fills in the hash of every text (migration 0008 copies texts in SQL,
/// which has no such function).
pub(super) fn fill_hashes(conn: &Connection) -> Result<(), StoreError> {
    hash_column(
        conn,
        "SELECT id, text FROM texts",
        "UPDATE texts SET hash = ?2 WHERE id = ?1",
        || Context::op("hash texts").table("texts"),
    )
}

/// For each `(id, text)` row `select` reads, runs `update` with the id and
/// the text's [`text_hash`]: a migration's hashes, which SQL cannot make.
pub(super) fn hash_column(
    conn: &Connection,
    select: &str,
    update: &str,
    context: impl Fn() -> Context,
) -> Result<(), StoreError> {
    let texts: Vec<(i64, String)> = conn
        .prepare(select)
        .ctx(&context)?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .ctx(&context)?
        .collect::<Result<_, _>>()
        .ctx(&context)?;
    let mut update = conn.prepare(update).ctx(&context)?;
    for (id, text) in texts {
        update.execute((id, text_hash(&text))).ctx(&context)?;
    }
    Ok(())
}

/// Inserts `texts`, the new texts of a batch as [`TextIds::take_unwritten`]
/// gave them, in the transaction that writes the rows referring to them.
pub fn insert(conn: &Connection, texts: &[(i64, String)]) -> Result<(), StoreError> {
    super::repo::insert_rows(
        conn,
        "texts",
        &["id", "hash", "text"],
        texts,
        |statement, first, (id, text)| {
            statement.raw_bind_parameter(first, id)?;
            statement.raw_bind_parameter(first + 1, text_hash(text))?;
            statement.raw_bind_parameter(first + 2, text)
        },
    )
}

/// The id the next new text would get were nothing in flight: checked
/// against the first id a batch gave, in its transaction.
pub fn next_stored_id(conn: &Connection) -> Result<i64, StoreError> {
    let context = || Context::op("find text").table("texts");
    query_value(
        conn,
        "SELECT coalesce(max(id), 0) + 1 FROM texts",
        [],
        context,
    )
}

/// How many times retention has removed texts (`texts_swept`): cached ids
/// read before a change may name removed texts.
pub fn sweeps(conn: &Connection) -> Result<i64, StoreError> {
    let context = || Context::op("check texts").table("texts_swept");
    query_value(
        conn,
        "SELECT sweeps FROM texts_swept WHERE id = 1",
        [],
        context,
    )
}

/// Text ids by the bytes they were read from.
///
/// A new text gets its id here, in memory (one past the largest stored or
/// given), and waits in `unwritten` until [`take_unwritten`](Self::take_unwritten)
/// hands it to the transaction that writes the rows referring to it
/// ([`insert`]): finding a text's id reads the database but never writes
/// it, so the model can be applied apart from writing its rows.
#[derive(Debug, Default, Clone)]
pub struct TextIds {
    ids: HashMap<Box<[u8]>, i64>,
    /// The bytes of the texts in `ids`.
    cached_bytes: usize,
    /// `texts_swept.sweeps` when the cached ids were read.
    sweeps: i64,
    /// Texts given an id that no transaction has written yet, in id order.
    unwritten: Vec<(i64, String)>,
    /// The same texts by their bytes (the bounded cache may forget them
    /// before they are written; this never does).
    unwritten_ids: HashMap<Box<[u8]>, i64>,
    /// The new texts of the batch before, which may not be committed yet.
    in_flight_ids: HashMap<Box<[u8]>, i64>,
    /// The id the next new text gets; read from the table when unknown.
    next_id: Option<i64>,
}

/// Entries kept before the cache starts over: far more than the routers,
/// transports, peers and ciphers of a host; a miss costs one indexed
/// lookup.
const TEXT_ID_CACHE: usize = 8_192;
/// Bytes of text kept before the cache starts over: the values that
/// repeat are short, and long error texts, each a remote server's own,
/// rarely come again but would hold megabytes.
const TEXT_ID_CACHE_BYTES: usize = 256 * 1024;

impl TextIds {
    /// Forgets the cached ids of stored texts (texts were pruned), not
    /// those given to texts still to be written.
    pub fn clear(&mut self) {
        self.ids.clear();
        self.cached_bytes = 0;
    }

    /// `texts_swept.sweeps` as last read: the writer checks that it is
    /// unchanged when it writes a batch whose ids were found before.
    pub fn sweeps(&self) -> i64 {
        self.sweeps
    }

    /// Drops the cache if retention removed texts since it was filled
    /// (another process may have). Call inside the transaction that will
    /// use the ids.
    pub fn revalidate(&mut self, conn: &Connection) -> Result<(), StoreError> {
        let sweeps = sweeps(conn)?;
        if sweeps != self.sweeps {
            self.clear();
            // Texts of the batch before may be among those removed; if that
            // batch is not committed yet, it fails its own check of the
            // sweeps and whatever was prepared after it is void anyway.
            self.in_flight_ids.clear();
            self.sweeps = sweeps;
        }
        // Another writer (an `ingest` beside the daemon) may have added
        // texts since: the next id is read again when a text is new,
        // unless the batch before gave ids the table may not show yet.
        if self.in_flight_ids.is_empty() {
            self.next_id = None;
        }
        Ok(())
    }

    /// The id of `bytes` (as text, invalid UTF-8 replaced); a new text is
    /// given one and kept for [`take_unwritten`](Self::take_unwritten).
    pub fn id(&mut self, conn: &Connection, bytes: &[u8]) -> Result<i64, StoreError> {
        if let Some(id) = self
            .ids
            .get(bytes)
            .or_else(|| self.unwritten_ids.get(bytes))
            .or_else(|| self.in_flight_ids.get(bytes))
        {
            return Ok(*id);
        }
        let text = String::from_utf8_lossy(bytes);
        let hash = text_hash(&text);
        let context = || Context::op("find text").table("texts");
        let found: Option<i64> = conn
            .prepare_cached("SELECT id FROM texts WHERE hash = ?1 AND text = ?2")
            .ctx(context)?
            .query_row((hash, &text), |row| row.get(0))
            .optional()
            .ctx(context)?;
        let Some(id) = found else {
            let id = match self.next_id {
                Some(id) => id,
                None => next_stored_id(conn)?,
            };
            self.next_id = Some(id + 1);
            self.unwritten.push((id, text.into_owned()));
            self.unwritten_ids.insert(bytes.into(), id);
            return Ok(id);
        };
        self.remember(bytes.into(), id);
        Ok(id)
    }

    /// Nothing is in flight any more (the batch before committed, or was
    /// dropped with everything prepared after it): the table answers.
    pub fn settle(&mut self) {
        for (bytes, id) in std::mem::take(&mut self.in_flight_ids) {
            self.remember(bytes, id);
        }
    }

    /// Keeps `id` of `bytes` in the bounded cache.
    fn remember(&mut self, bytes: Box<[u8]>, id: i64) {
        if self.ids.len() >= TEXT_ID_CACHE || self.cached_bytes >= TEXT_ID_CACHE_BYTES {
            self.ids.clear();
            self.cached_bytes = 0;
        }
        self.cached_bytes += bytes.len();
        self.ids.insert(bytes, id);
    }

    /// The texts given ids since the last call, in id order, for the
    /// transaction that writes the rows referring to them ([`insert`]).
    /// Until the next call they are still found here by their bytes: the
    /// next batch may look them up before this one commits.
    pub fn take_unwritten(&mut self) -> Vec<(i64, String)> {
        self.settle();
        self.in_flight_ids = std::mem::take(&mut self.unwritten_ids);
        std::mem::take(&mut self.unwritten)
    }

    /// [`id`](Self::id) of a value that may be absent.
    pub fn optional(
        &mut self,
        conn: &Connection,
        bytes: Option<&[u8]>,
    ) -> Result<Option<i64>, StoreError> {
        bytes.map(|bytes| self.id(conn, bytes)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_is_stored_once_and_found_again_after_the_cache_forgets_it() {
        let conn = crate::store::migrated_in_memory();
        let mut ids = TextIds::default();
        let first = ids.id(&conn, b"remote_smtp").unwrap();
        assert_eq!(ids.id(&conn, b"remote_smtp").unwrap(), first);
        let other = ids.id(&conn, b"dnslookup").unwrap();
        assert_ne!(other, first);
        insert(&conn, &ids.take_unwritten()).unwrap();
        ids.clear();
        assert_eq!(ids.id(&conn, b"remote_smtp").unwrap(), first);
        // Invalid UTF-8 is stored replaced, and the same bytes find it.
        let odd = ids.id(&conn, b"caf\xe9").unwrap();
        insert(&conn, &ids.take_unwritten()).unwrap();
        ids.clear();
        assert_eq!(ids.id(&conn, b"caf\xe9").unwrap(), odd);
        let count: i64 = conn
            .query_row("SELECT count(*) FROM texts", [], |row| row.get(0))
            .unwrap();
        assert_eq!(count, 3);
        assert_eq!(ids.optional(&conn, None).unwrap(), None);
    }

    #[test]
    fn the_hash_is_fnv_1a_and_texts_that_share_one_stay_apart() {
        // The published FNV-1a 64 test vectors: stored hashes must never
        // change.
        assert_eq!(text_hash(""), 0xcbf2_9ce4_8422_2325_u64 as i64);
        assert_eq!(text_hash("a"), 0xaf63_dc4c_8601_ec8c_u64 as i64);
        assert_eq!(text_hash("foobar"), 0x8594_4171_f739_67e8_u64 as i64);
        let conn = crate::store::migrated_in_memory();
        // A colliding text, made by storing another text under b's hash.
        conn.execute(
            "INSERT INTO texts (hash, text) VALUES (?1, 'a')",
            [text_hash("b")],
        )
        .unwrap();
        let mut ids = TextIds::default();
        let b = ids.id(&conn, b"b").unwrap();
        insert(&conn, &ids.take_unwritten()).unwrap();
        let text: String = conn
            .query_row("SELECT text FROM texts WHERE id = ?1", [b], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(text, "b");
    }

    #[test]
    fn the_cache_holds_a_bounded_number_of_bytes_and_ids_stay_right() {
        let conn = crate::store::migrated_in_memory();
        let mut ids = TextIds::default();
        let long = |i: usize| format!("{i:05} {}", "x".repeat(10_000)).into_bytes();
        let first: Vec<i64> = (0..100).map(|i| ids.id(&conn, &long(i)).unwrap()).collect();
        insert(&conn, &ids.take_unwritten()).unwrap();
        // Each text is 10 KB: the cache started over instead of holding 1 MB.
        assert!(
            ids.cached_bytes <= TEXT_ID_CACHE_BYTES + 10_006,
            "{}",
            ids.cached_bytes
        );
        assert!(ids.ids.len() < 100, "{}", ids.ids.len());
        let again: Vec<i64> = (0..100).map(|i| ids.id(&conn, &long(i)).unwrap()).collect();
        assert_eq!(again, first);
        let count: i64 = conn
            .query_row("SELECT count(*) FROM texts", [], |row| row.get(0))
            .unwrap();
        assert_eq!(count, 100);
    }

    #[test]
    fn a_sweep_elsewhere_empties_the_cache() {
        let conn = crate::store::migrated_in_memory();
        let mut ids = TextIds::default();
        ids.revalidate(&conn).unwrap();
        let first = ids.id(&conn, b"remote_smtp").unwrap();
        insert(&conn, &ids.take_unwritten()).unwrap();
        conn.execute_batch(
            "DELETE FROM texts; UPDATE texts_swept SET sweeps = sweeps + 1;
             INSERT INTO texts (hash, text) VALUES (0, 'x')",
        )
        .unwrap();
        ids.revalidate(&conn).unwrap();
        let again = ids.id(&conn, b"remote_smtp").unwrap();
        insert(&conn, &ids.take_unwritten()).unwrap();
        assert_ne!(again, first, "a cached id of a removed text was reused");
        let text: String = conn
            .query_row("SELECT text FROM texts WHERE id = ?1", [again], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(text, "remote_smtp");
    }

    #[test]
    fn a_new_text_gets_its_id_in_memory_and_is_written_once_with_its_rows() {
        let conn = crate::store::migrated_in_memory();
        let count = || -> i64 {
            conn.query_row("SELECT count(*) FROM texts", [], |row| row.get(0))
                .unwrap()
        };
        let mut ids = TextIds::default();
        ids.revalidate(&conn).unwrap();
        let first = ids.id(&conn, b"remote_smtp").unwrap();
        assert_eq!(ids.id(&conn, b"remote_smtp").unwrap(), first);
        assert_eq!(count(), 0, "finding an id wrote the table");
        insert(&conn, &ids.take_unwritten()).unwrap();
        insert(&conn, &ids.take_unwritten()).unwrap();
        assert_eq!(count(), 1);
        // Another writer adds a text between two batches: the next new
        // text's id follows it, and the cached one stays right.
        conn.execute("INSERT INTO texts (hash, text) VALUES (0, 'elsewhere')", [])
            .unwrap();
        ids.revalidate(&conn).unwrap();
        let second = ids.id(&conn, b"dnslookup").unwrap();
        assert_eq!(ids.id(&conn, b"remote_smtp").unwrap(), first);
        insert(&conn, &ids.take_unwritten()).unwrap();
        let stored: Vec<(i64, String)> = conn
            .prepare("SELECT id, text FROM texts ORDER BY id")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            stored,
            [
                (first, "remote_smtp".to_owned()),
                (first + 1, "elsewhere".to_owned()),
                (second, "dnslookup".to_owned())
            ]
        );
        assert_eq!(second, first + 2);
    }
}
