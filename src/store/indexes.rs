//! The non-unique indexes of the log data: the secondary ones, which
//! queries read and ingest only maintains, and the few the writer reads.
//!
//! A bulk `ingest` drops them first and builds them again at the end:
//! SQLite builds an index from sorted keys far faster than it keeps one up
//! to date under random inserts (on a million lines, the whole ingest took
//! about half the time). Every open creates any that are missing, so an
//! ingest killed half-way leaves a database that is whole again the next
//! time anything opens it.
//!
//! The list must match what the migrations create; a test checks it.

use deadpool_sqlite::rusqlite::Connection;

use super::error::{Context, ResultExt, StoreError};

/// One index: its name and what follows the name in `CREATE INDEX`.
pub struct Index {
    /// Its name in the schema.
    pub name: &'static str,
    /// `ON table (columns) [WHERE ...]`.
    pub definition: &'static str,
}

/// The non-unique indexes the writer itself reads (a recipient by its
/// message, a text by its hash, a family's rarest metric label set):
/// never dropped, or a bulk load would scan a table per line.
pub const WRITER: &[Index] = &[
    index("recipients_message", "ON recipients (message_id)"),
    index("texts_hash", "ON texts (hash)"),
    index(
        "metric_label_slots_by_hits",
        "ON metric_label_slots (family, kept, hits)",
    ),
];

/// The secondary (non-unique) indexes on the log data tables that only
/// queries read.
pub const SECONDARY: &[Index] = &[
    index("messages_received", "ON messages (received_ms)"),
    index(
        "messages_completed",
        "ON messages (completed_ms) WHERE completed_ms IS NOT NULL",
    ),
    index("messages_sender", "ON messages (sender COLLATE NOCASE)"),
    index("messages_host_ip", "ON messages (host_ip)"),
    index(
        "messages_parent",
        "ON messages (parent_exim_id) WHERE parent_exim_id IS NOT NULL",
    ),
    index(
        "messages_header_id_hash",
        "ON messages (header_id_hash) WHERE header_id_hash IS NOT NULL",
    ),
    index(
        "messages_open",
        "ON messages (status, last_event_ms) WHERE status <> 'completed'",
    ),
    index(
        "recipients_address",
        "ON recipients (address COLLATE NOCASE)",
    ),
    index(
        "recipients_final",
        "ON recipients (final_address COLLATE NOCASE) WHERE final_address IS NOT NULL",
    ),
    index(
        "recipients_open",
        "ON recipients (status, last_attempt_ms) WHERE status IN ('pending', 'deferred')",
    ),
    index("log_chunks_last", "ON log_chunks (last_ms)"),
    // The flag too: `stats` asks which messages had a deferral or failure.
    index(
        "attempts_message",
        "ON attempts (message_id, attempted_ms, flag)",
    ),
    index("attempts_time", "ON attempts (attempted_ms)"),
    index(
        "attempts_host_ip",
        "ON attempts (host_ip_id) WHERE host_ip_id IS NOT NULL",
    ),
    index(
        "recipients_attempt_time",
        "ON recipients (attempt_ms) WHERE attempt_ms IS NOT NULL",
    ),
    index(
        "recipients_attempt_host_ip",
        "ON recipients (attempt_host_ip_id) WHERE attempt_host_ip_id IS NOT NULL",
    ),
    index("rejections_time", "ON rejections (rejected_ms)"),
    index("rejections_host_ip", "ON rejections (host_ip)"),
    index(
        "rejections_recipient",
        "ON rejections (recipient) WHERE recipient IS NOT NULL",
    ),
];

const fn index(name: &'static str, definition: &'static str) -> Index {
    Index { name, definition }
}

/// Whether loading `input_bytes` of log into the database at `database`
/// is faster without the secondary indexes, built once at the end: when
/// the input is large beside the database (a new database above all).
/// Building an index costs time for every row in the table; maintaining
/// it costs more for each row added.
pub fn bulk_load_pays(database: &std::path::Path, input_bytes: u64) -> bool {
    let size = |path: &std::path::Path| std::fs::metadata(path).map_or(0, |m| m.len());
    let mut wal = database.as_os_str().to_owned();
    wal.push("-wal");
    let database_bytes = size(database) + size(std::path::Path::new(&wal));
    input_bytes.saturating_mul(2) >= database_bytes
}

/// Drops the secondary indexes, for a bulk load. Returns how many there were.
pub fn drop_secondary(conn: &Connection) -> Result<usize, StoreError> {
    let mut dropped = 0;
    for index in SECONDARY {
        let context = || Context::op("drop index").key(index.name);
        // Names come from the constant list above.
        dropped += usize::from(exists(conn, index.name)?);
        conn.execute_batch(&format!("DROP INDEX IF EXISTS {}", index.name))
            .ctx(context)?;
    }
    Ok(dropped)
}

/// Creates the secondary indexes that are missing. Returns how many it
/// created (none on a whole database, where this is a handful of lookups).
pub fn ensure_secondary(conn: &Connection) -> Result<usize, StoreError> {
    let mut created = 0;
    for index in SECONDARY {
        if exists(conn, index.name)? {
            continue;
        }
        let context = || Context::op("create index").key(index.name);
        conn.execute_batch(&format!(
            "CREATE INDEX IF NOT EXISTS {} {}",
            index.name, index.definition
        ))
        .ctx(context)?;
        created += 1;
    }
    Ok(created)
}

fn exists(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    conn.prepare_cached("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?1")
        .ctx(|| Context::op("look up index").key(name))?
        .query_row([name], |row| row.get::<_, i64>(0))
        .map(|count| count > 0)
        .ctx(|| Context::op("look up index").key(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The non-unique indexes the migrations created on the log tables,
    /// as (name, normalised SQL).
    fn created_by_migrations(conn: &Connection) -> Vec<(String, String)> {
        let mut statement = conn
            .prepare(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL
                   AND tbl_name NOT IN ('audit_log', 'ingest_gaps') ORDER BY name",
            )
            .unwrap();
        statement
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .unwrap()
            .map(|row| {
                let (name, sql) = row.unwrap();
                (name, sql.split_whitespace().collect::<Vec<_>>().join(" "))
            })
            .collect()
    }

    fn listed(lists: &[&[Index]]) -> Vec<(String, String)> {
        let mut listed: Vec<(String, String)> = lists
            .iter()
            .flat_map(|list| list.iter())
            .map(|i| {
                (
                    i.name.to_owned(),
                    format!("CREATE INDEX {} {}", i.name, i.definition),
                )
            })
            .collect();
        listed.sort();
        listed
    }

    #[test]
    fn the_list_is_exactly_what_the_migrations_create() {
        let conn = crate::store::migrated_in_memory();
        assert_eq!(created_by_migrations(&conn), listed(&[SECONDARY, WRITER]));
    }

    #[test]
    fn dropped_indexes_come_back_the_same() {
        let conn = crate::store::migrated_in_memory();
        assert_eq!(drop_secondary(&conn).unwrap(), SECONDARY.len());
        assert_eq!(created_by_migrations(&conn), listed(&[WRITER]));
        assert_eq!(drop_secondary(&conn).unwrap(), 0);
        assert_eq!(ensure_secondary(&conn).unwrap(), SECONDARY.len());
        assert_eq!(created_by_migrations(&conn), listed(&[SECONDARY, WRITER]));
        assert_eq!(ensure_secondary(&conn).unwrap(), 0);
    }
}
