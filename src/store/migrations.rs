//! Schema migrations: an append-only list of SQL scripts, versioned by
//! SQLite's `PRAGMA user_version`.
//!
//! Migration N (1-based) brings a database from version N-1 to N. Each runs in
//! its own transaction together with the version bump, so a crash leaves the
//! database at a whole version. Released migrations are never edited; a
//! change is a new file at the end of [`MIGRATIONS`].

use deadpool_sqlite::rusqlite::{Connection, TransactionBehavior};

use super::error::{Context, ResultExt, StoreError};

/// One schema step.
pub struct Migration {
    pub name: &'static str,
    pub sql: &'static str,
}

/// A migration named by its file in `migrations/`, so name and SQL cannot
/// drift apart.
macro_rules! migration {
    ($name:literal) => {
        Migration {
            name: $name,
            sql: include_str!(concat!("migrations/", $name, ".sql")),
        }
    };
}

/// Every migration, in order. Index 0 is version 1.
pub const MIGRATIONS: &[Migration] = &[
    migration!("0001_initial"),
    migration!("0002_ingest_gaps"),
    migration!("0003_audit_origin"),
    migration!("0004_log_entries_without_exim_id"),
    migration!("0005_log_entries_time_kind"),
];

/// The schema version this build writes.
pub fn latest_version() -> u32 {
    u32::try_from(MIGRATIONS.len()).unwrap_or(u32::MAX)
}

/// The database's schema version.
pub fn current_version(conn: &Connection) -> Result<u32, StoreError> {
    conn.query_row("PRAGMA user_version", [], |row| row.get::<_, u32>(0))
        .ctx(|| Context::op("read the schema version"))
}

/// Brings the database up to [`latest_version`]. Returns the migrations it
/// applied (none when the database is up to date, which changes nothing).
pub fn migrate(conn: &mut Connection) -> Result<Vec<&'static str>, StoreError> {
    let current = current_version(conn)?;
    let latest = latest_version();
    if current > latest {
        return Err(StoreError::other(
            Context::op("check the schema version"),
            format!(
                "the database has schema version {current}, newer than the {latest} this \
                 exim-pilot knows; use a newer exim-pilot or another database file"
            ),
        ));
    }
    let mut applied = Vec::new();
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = index + 1;
        let context = || Context::op("apply migration").key(migration.name);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(context)?;
        tx.execute_batch(migration.sql).ctx(context)?;
        // PRAGMA takes no bound parameters; `version` is our own integer.
        tx.execute_batch(&format!("PRAGMA user_version = {version}"))
            .ctx(context)?;
        tx.execute(
            "INSERT INTO audit_log (at_ms, actor, action, detail) VALUES (?1, 'exim-pilot', 'migrate', ?2)",
            (super::repo::now_ms(), migration.name),
        )
        .ctx(context)?;
        tx.commit().ctx(context)?;
        tracing::info!(
            migration = migration.name,
            version,
            "applied schema migration"
        );
        applied.push(migration.name);
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database as version `version` left it.
    fn database_at(version: usize) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        for migration in &MIGRATIONS[..version] {
            conn.execute_batch(migration.sql).unwrap();
        }
        conn.execute_batch(&format!("PRAGMA user_version = {version}"))
            .unwrap();
        conn
    }

    #[test]
    fn log_entries_keep_their_rows_and_links_through_0004_and_0005() {
        let mut conn = database_at(3);
        conn.execute_batch(
            "INSERT INTO log_sources (id, fingerprint, path, first_seen_ms) VALUES (1, x'01', 'mainlog', 0);
             INSERT INTO messages (id, exim_id) VALUES (7, '1smkL5-00000000e65-24eQ');
             INSERT INTO log_entries (source_id, byte_offset, line_length, raw, kind, logged_ms, exim_id, message_id)
                 VALUES (1, 0, 3, x'616263', 'reception', 5, '1smkL5-00000000e65-24eQ', 7);",
        )
        .unwrap();
        assert_eq!(
            migrate(&mut conn).unwrap(),
            [
                "0004_log_entries_without_exim_id",
                "0005_log_entries_time_kind"
            ]
        );
        let row: (Vec<u8>, String, i64, i64) = conn
            .query_row(
                "SELECT e.raw, e.kind, e.logged_ms, m.id FROM log_entries e JOIN messages m ON m.id = e.message_id",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(row, (b"abc".to_vec(), "reception".to_owned(), 5, 7));
        let columns: i64 = conn
            .query_row(
                "SELECT count(*) FROM pragma_table_info('log_entries') WHERE name = 'exim_id'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(columns, 0);
        let indexes: Vec<String> = conn
            .prepare("SELECT name FROM pragma_index_list('log_entries') WHERE origin = 'c' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(indexes, ["log_entries_message", "log_entries_time_kind"]);
    }
}
