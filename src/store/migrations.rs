//! Schema migrations: an append-only list of SQL scripts, versioned by
//! SQLite's `PRAGMA user_version`.
//!
//! Migration N (1-based) brings a database from version N-1 to N. Each runs in
//! its own transaction together with the version bump, so a crash leaves the
//! database at a whole version. Released migrations are never edited; a
//! change is a new file at the end of [`MIGRATIONS`].

use deadpool_sqlite::rusqlite::{Connection, TransactionBehavior};

use super::chunk::LineRecord;
use super::error::{Context, ResultExt, StoreError};
use super::repo::ChunkedLines;

/// One schema step.
pub struct Migration {
    pub name: &'static str,
    pub sql: &'static str,
    /// Data the SQL cannot move itself, moved by code after the SQL, in the
    /// same transaction.
    pub then: Option<DataStep>,
}

/// Code that moves data for a migration, inside its transaction.
pub type DataStep = fn(&Connection) -> Result<(), StoreError>;

/// A migration named by its file in `migrations/`, so name and SQL cannot
/// drift apart, optionally with a code step.
macro_rules! migration {
    ($name:literal) => {
        migration!($name, None)
    };
    ($name:literal, $then:expr) => {
        Migration {
            name: $name,
            sql: include_str!(concat!("migrations/", $name, ".sql")),
            then: $then,
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
    migration!("0006_line_chunks", Some(move_lines_into_chunks)),
    migration!("0007_addresses_nocase"),
    migration!("0008_attempts_compact", Some(super::texts::fill_hashes)),
    migration!("0009_attempts_message_flag"),
    migration!("0010_metric_counters"),
    migration!("0011_messages_header_id"),
    migration!("0012_fleet_shipped"),
    migration!("0013_metric_label_slots"),
    migration!("0014_audit_queue_actions"),
    migration!("0015_queue_samples"),
    migration!("0016_messages_header_id_hash", Some(hash_header_ids)),
    migration!("0017_attempts_without_confirmation"),
    migration!("0018_messages_frozen_reason"),
    migration!("0019_messages_without_subject"),
    migration!("0020_recipients_hold_first_attempt"),
];

/// Migration 0016's data: each Message-ID header's hash, then the text
/// dropped.
fn hash_header_ids(conn: &Connection) -> Result<(), StoreError> {
    let context = || Context::op("hash Message-ID headers").table("messages");
    super::texts::hash_column(
        conn,
        "SELECT id, header_message_id FROM messages WHERE header_message_id IS NOT NULL",
        "UPDATE messages SET header_id_hash = ?2 WHERE id = ?1",
        context,
    )?;
    conn.execute_batch("ALTER TABLE messages DROP COLUMN header_message_id")
        .ctx(context)
}

/// The schema version this build writes.
pub fn latest_version() -> u32 {
    u32::try_from(MIGRATIONS.len()).unwrap_or(u32::MAX)
}

/// The database's schema version.
pub fn current_version(conn: &Connection) -> Result<u32, StoreError> {
    conn.query_row("PRAGMA user_version", [], |row| row.get::<_, u32>(0))
        .ctx(|| Context::op("read the schema version"))
}

/// What a database file holds, as far as exim-pilot is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaState {
    /// No tables at all: a new file.
    Empty,
    /// Tables, but no exim-pilot schema version: another application's.
    Foreign,
    /// An exim-pilot schema older than this build's: migrations upgrade it.
    Older(u32),
    /// This build's schema.
    Current,
    /// Written by a newer exim-pilot: this one must not touch it.
    Newer(u32),
}

/// Classifies the database behind `conn`; errors (a file that is not a
/// database at all) carry `context`, which names the file.
pub fn schema_state(
    conn: &Connection,
    context: impl Fn() -> Context,
) -> Result<SchemaState, StoreError> {
    let version: u32 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .ctx(&context)?;
    let latest = latest_version();
    Ok(match version {
        0 => {
            let tables: i64 = conn
                .query_row(
                    "SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'",
                    [],
                    |row| row.get(0),
                )
                .ctx(&context)?;
            if tables == 0 {
                SchemaState::Empty
            } else {
                SchemaState::Foreign
            }
        }
        v if v < latest => SchemaState::Older(v),
        v if v == latest => SchemaState::Current,
        v => SchemaState::Newer(v),
    })
}

/// The refusal for a database exim-pilot must not use, or `None`.
pub fn refusal(state: SchemaState) -> Option<String> {
    match state {
        SchemaState::Foreign => Some(
            "this SQLite file belongs to another application (it has tables but no exim-pilot \
             schema); refusing to add exim-pilot's tables to it: set [database] path to a file \
             of its own"
                .to_owned(),
        ),
        SchemaState::Newer(version) => Some(format!(
            "the database has schema version {version}, newer than the {} this exim-pilot \
             knows: it was written by a newer exim-pilot; use that version (or a newer one), \
             or another database file",
            latest_version()
        )),
        SchemaState::Empty | SchemaState::Older(_) | SchemaState::Current => None,
    }
}

/// Brings the database up to [`latest_version`]. Returns the migrations it
/// applied (none when the database is up to date, which changes nothing).
pub fn migrate(conn: &mut Connection) -> Result<Vec<&'static str>, StoreError> {
    if let Some(reason) = refusal(schema_state(conn, || {
        Context::op("read the schema version")
    })?) {
        return Err(StoreError::incompatible(
            Context::op("open database"),
            reason,
        ));
    }
    let current = current_version(conn)?;
    let mut applied = Vec::new();
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = index + 1;
        let context = || Context::op("apply migration").key(migration.name);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(context)?;
        tx.execute_batch(migration.sql).ctx(context)?;
        if let Some(then) = migration.then {
            then(&tx)?;
        }
        // PRAGMA takes no bound parameters; `version` is our own integer.
        tx.execute_batch(&format!("PRAGMA user_version = {version}"))
            .ctx(context)?;
        tx.execute(
            "INSERT INTO audit_log (at_ms, actor, action, detail) VALUES (?1, 'exim-pilot', 'migrate', ?2)",
            (super::repo::now_ms(), migration.name),
        )
        .ctx(context)?;
        tx.commit().ctx(context)?;
        // A new database is one event, said once by the caller; an upgrade
        // says each step.
        if current > 0 {
            tracing::info!(
                migration = migration.name,
                version,
                "applied schema migration {} (schema {version})",
                migration.name
            );
        }
        applied.push(migration.name);
    }
    Ok(applied)
}

/// 0006: moves every `log_entries` row into `log_chunks`, linking chunks to
/// their messages, then drops `log_entries`. Rows are read in file order;
/// a line's end is where the next line of its source starts (the old table
/// kept no end), or its length plus the newline for the last line.
fn move_lines_into_chunks(conn: &Connection) -> Result<(), StoreError> {
    struct Row {
        source_id: i64,
        offset: u64,
        length: u64,
        raw: Vec<u8>,
        logged_ms: Option<i64>,
        message: Option<i64>,
    }
    let context = || Context::op("move lines into chunks").table("log_entries");
    let mut select = conn
        .prepare(
            "SELECT source_id, byte_offset, line_length, raw, logged_ms, message_id
             FROM log_entries ORDER BY source_id, byte_offset",
        )
        .ctx(context)?;
    let mut rows = select
        .query_map([], |row| {
            Ok(Row {
                source_id: row.get(0)?,
                offset: u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0),
                length: u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
                raw: row.get(3)?,
                logged_ms: row.get(4)?,
                message: row.get(5)?,
            })
        })
        .ctx(context)?
        .peekable();
    let mut chunks = ChunkedLines::default();
    while let Some(row) = rows.next() {
        let row = row.ctx(context)?;
        let end = match rows.peek() {
            Some(Ok(next)) if next.source_id == row.source_id && next.offset > row.offset => {
                next.offset
            }
            _ => row.offset + row.length + 1,
        };
        let line = LineRecord {
            start: row.offset,
            end,
            length: row.length,
            bytes: &row.raw,
            logged_ms: row.logged_ms,
            message: row.message,
        };
        chunks.push(row.source_id, &line);
        chunks.store_closed(conn)?;
    }
    chunks.finish(conn)?;
    conn.execute_batch("DROP TABLE log_entries").ctx(context)
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

    /// The names of the columns of `messages`.
    fn message_columns(conn: &Connection) -> Vec<String> {
        conn.prepare("SELECT name FROM pragma_table_info('messages')")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// Every row `sql` returns, each column as text.
    fn rows_as_text(conn: &Connection, sql: &str) -> Vec<Vec<Option<String>>> {
        let mut statement = conn.prepare(sql).unwrap();
        let columns = statement.column_count();
        statement
            .query_map([], |row| {
                (0..columns)
                    .map(|i| {
                        Ok(match row.get_ref(i)? {
                            deadpool_sqlite::rusqlite::types::ValueRef::Null => None,
                            value => Some(format!("{value:?}")),
                        })
                    })
                    .collect()
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn messages_recipients_and_attempts_read_the_same_after_0008() {
        let mut conn = database_at(7);
        conn.execute_batch(
            "INSERT INTO messages (id, exim_id, received_ms, sender, host_name, helo, host_ip,
                                   protocol, tls_cipher, subject, status)
                 VALUES (1, 'a', 5, 's@x', 'mx.example', 'helo.example', '192.0.2.1', 'esmtps',
                         'TLS1.3:X', 'Hi', 'completed'),
                        (2, 'b', 6, '<>', NULL, NULL, NULL, 'local', NULL, NULL, 'deferred');
             INSERT INTO recipients (id, message_id, address, final_address, status)
                 VALUES (1, 1, 'r@y', 'r@y', 'delivered'), (2, 1, 'alias@y', 'bob', 'delivered'),
                        (3, 2, 'q@z', 'q@z', 'deferred'), (4, 2, 'p@z', NULL, 'pending');
             INSERT INTO delivery_attempts (id, message_id, recipient_id, flag, attempted_ms,
                     final_address, outcome, router, transport, host_name, host_ip, host_port,
                     tls_cipher, cert_verified, confirmation, smtp_code, error_text)
                 VALUES (1, 1, 1, '=>', 7, 'r@y', 'delivered', 'dnslookup', 'remote_smtp',
                         'mx.example', '192.0.2.9', 25, 'TLS1.3:X', 1, '250 OK', '250 2.0.0', NULL),
                        (2, 1, 2, '->', 7, 'bob', 'delivered', 'localuser', 'local_delivery',
                         NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
                        (3, 2, 3, '==', 8, 'q@z', 'deferred', 'dnslookup', 'remote_smtp',
                         'mx.example', '192.0.2.9', 25, NULL, NULL, NULL, '451 4.7.1', 'greylisted'),
                        (4, 2, NULL, '**', 9, 'gone@z', 'failed', NULL, NULL, NULL, NULL, NULL,
                         NULL, NULL, NULL, NULL, 'unrouteable');",
        )
        .unwrap();
        // Every column but the confirmation, which 0017 leaves to the lines.
        // Not the ids, which 0020 gives only to a recipient's later
        // attempts; the times are distinct.
        let attempts = "SELECT message_id, recipient_id, flag, attempted_ms, final_address,
                               outcome, router, transport, host_name, host_ip, host_port,
                               tls_cipher, cert_verified, smtp_code, error_text
                        FROM delivery_attempts ORDER BY attempted_ms";
        let before_attempts = rows_as_text(&conn, attempts);
        let before_messages = rows_as_text(
            &conn,
            "SELECT id, host_name, helo, protocol, tls_cipher, host_ip FROM messages ORDER BY id",
        );
        let before_recipients = rows_as_text(
            &conn,
            "SELECT id, address, final_address, status FROM recipients ORDER BY id",
        );
        assert_eq!(
            migrate(&mut conn).unwrap(),
            [
                "0008_attempts_compact",
                "0009_attempts_message_flag",
                "0010_metric_counters",
                "0011_messages_header_id",
                "0012_fleet_shipped",
                "0013_metric_label_slots",
                "0014_audit_queue_actions",
                "0015_queue_samples",
                "0016_messages_header_id_hash",
                "0017_attempts_without_confirmation",
                "0018_messages_frozen_reason",
                "0019_messages_without_subject",
                "0020_recipients_hold_first_attempt"
            ]
        );
        assert_eq!(rows_as_text(&conn, attempts), before_attempts);
        let text = |column: &str| format!("(SELECT text FROM texts WHERE id = {column})");
        assert_eq!(
            rows_as_text(
                &conn,
                &format!(
                    "SELECT id, {}, {}, {}, {}, host_ip FROM messages ORDER BY id",
                    text("host_name_id"),
                    text("helo_id"),
                    text("protocol_id"),
                    text("tls_cipher_id")
                )
            ),
            before_messages
        );
        assert_eq!(
            rows_as_text(
                &conn,
                "SELECT id, address,
                        CASE status WHEN 'pending' THEN final_address
                                    ELSE coalesce(final_address, address) END,
                        status
                 FROM recipients ORDER BY id"
            ),
            before_recipients
        );
        // Each value once, every hash filled in, unchanged addresses not
        // repeated.
        let duplicated: i64 = conn
            .query_row(
                "SELECT count(*) - count(DISTINCT text) FROM texts",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(duplicated, 0);
        let unhashed: Vec<String> = conn
            .prepare("SELECT text FROM texts")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .filter(|text: &String| {
                let hash: i64 = conn
                    .query_row("SELECT hash FROM texts WHERE text = ?1", [text], |r| {
                        r.get(0)
                    })
                    .unwrap();
                hash != crate::store::text_hash(text)
            })
            .collect();
        assert!(unhashed.is_empty(), "{unhashed:?}");
        let repeated: i64 = conn
            .query_row(
                "SELECT (SELECT count(*) FROM recipients WHERE final_address IS NOT NULL)
                      + (SELECT count(*) FROM recipients WHERE attempt_final_address IS NOT NULL)
                      + (SELECT count(*) FROM attempts WHERE final_address IS NOT NULL)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            repeated, 3,
            "bob twice, and the attempt without a recipient"
        );
    }

    // Longer than 80 lines: a schema-3 database written by hand, then each
    // table checked after the upgrade.
    #[test]
    fn lines_attempts_and_rejections_keep_their_data_through_0004_to_0006() {
        let mut conn = database_at(3);
        conn.execute_batch(
            "INSERT INTO log_sources (id, fingerprint, path, first_seen_ms)
                 VALUES (1, x'01', 'mainlog', 0), (2, x'02', 'mainlog.1', 0);
             INSERT INTO messages (id, exim_id) VALUES (7, '1smkL5-00000000e65-24eQ');
             INSERT INTO log_entries (id, source_id, byte_offset, line_length, raw, kind, logged_ms, exim_id, message_id)
                 VALUES (1, 1, 0, 3, x'616263', 'delivery', 90000, '1smkL5-00000000e65-24eQ', 7),
                        (2, 1, 4, 2, x'6465', 'delivery_more', 91000, '1smkL5-00000000e65-24eQ', 7),
                        (3, 1, 7, 9, x'6768', 'rejection', NULL, NULL, NULL),
                        (4, 2, 0, 1, x'69', 'unrecognised', 5, NULL, NULL);
             INSERT INTO delivery_attempts (message_id, log_entry_id, attempted_ms, outcome)
                 VALUES (7, 1, 90000, 'delivered'), (7, 2, 91000, 'delivered');
             INSERT INTO rejections (log_entry_id, rejected_ms, stage, reason) VALUES (3, 0, 'rcpt', 'no');",
        )
        .unwrap();
        assert_eq!(
            migrate(&mut conn).unwrap(),
            [
                "0004_log_entries_without_exim_id",
                "0005_log_entries_time_kind",
                "0006_line_chunks",
                "0007_addresses_nocase",
                "0008_attempts_compact",
                "0009_attempts_message_flag",
                "0010_metric_counters",
                "0011_messages_header_id",
                "0012_fleet_shipped",
                "0013_metric_label_slots",
                "0014_audit_queue_actions",
                "0015_queue_samples",
                "0016_messages_header_id_hash",
                "0017_attempts_without_confirmation",
                "0018_messages_frozen_reason",
                "0019_messages_without_subject",
                "0020_recipients_hold_first_attempt"
            ]
        );
        let lines: Vec<String> = crate::store::repo::all_lines(&conn)
            .unwrap()
            .into_iter()
            .map(|(source, l)| {
                let text = String::from_utf8_lossy(&l.bytes).into_owned();
                format!(
                    "{source} {} {} {text} {:?} {:?}",
                    l.offset, l.length, l.logged_ms, l.message
                )
            })
            .collect();
        assert_eq!(
            lines,
            [
                "1 0 3 abc Some(90000) Some(7)",
                "1 4 2 de Some(91000) Some(7)",
                "1 7 9 gh None None",
                "2 0 1 i Some(5) None",
            ]
        );
        let traced: Vec<Vec<u8>> = crate::store::repo::message_lines(&conn, 7, usize::MAX)
            .unwrap()
            .0
            .into_iter()
            .map(|l| l.bytes)
            .collect();
        assert_eq!(traced, [b"abc".to_vec(), b"de".to_vec()]);
        let counts: Vec<(i64, String, i64)> = conn
            .prepare("SELECT minute_ms, kind, lines FROM line_counts ORDER BY minute_ms, kind")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            counts,
            [
                (i64::MIN, "rejection".to_owned(), 1),
                (0, "unrecognised".to_owned(), 1),
                (60000, "delivery".to_owned(), 1),
                (60000, "delivery_more".to_owned(), 1),
            ]
        );
        let flags: Vec<String> = conn
            .prepare("SELECT flag FROM delivery_attempts ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(flags, ["=>", "->"]);
        let gone: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'log_entries'
                    OR sql LIKE '%log_entry_id%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(gone, 0);
        let rejections: i64 = conn
            .query_row("SELECT count(*) FROM rejections", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rejections, 1);
    }

    /// 0019: the subject leaves the message rows (it stays in the `<=`
    /// line); every other column keeps its values.
    #[test]
    fn subjects_leave_the_message_rows_in_0019_and_nothing_else_changes() {
        let mut conn = database_at(18);
        conn.execute_batch(
            "INSERT INTO messages (id, exim_id, received_ms, sender, size, subject, status,
                                   header_id_hash, frozen_ms)
                 VALUES (1, 'a', 5, 's@x', 10, 'Hi there', 'completed', 77, NULL),
                        (2, 'b', 6, '<>', NULL, NULL, 'frozen', NULL, 9);",
        )
        .unwrap();
        let others = "SELECT id, exim_id, received_ms, sender, size, status, header_id_hash,
                             frozen_ms FROM messages ORDER BY id";
        let before = rows_as_text(&conn, others);
        assert_eq!(
            migrate(&mut conn).unwrap(),
            [
                "0019_messages_without_subject",
                "0020_recipients_hold_first_attempt"
            ]
        );
        assert_eq!(rows_as_text(&conn, others), before);
        let columns = message_columns(&conn);
        assert!(!columns.iter().any(|c| c == "subject"), "{columns:?}");
    }

    /// 0020: each recipient's first attempt moves into its row, the later
    /// ones (and those of no recipient) stay in `attempts`; every attempt
    /// reads the same through `delivery_attempts`; each message says
    /// whether it had a deferral or a failure.
    #[test]
    fn first_attempts_move_into_the_recipient_rows_in_0020_and_read_the_same() {
        let mut conn = database_at(19);
        conn.execute_batch(
            "INSERT INTO texts (id, hash, text)
                 VALUES (1, 0, 'dnslookup'), (2, 0, 'remote_smtp'), (3, 0, '192.0.2.9'),
                        (4, 0, 'SMTP error after RCPT TO:<>: 451 later'), (5, 0, '451');
             INSERT INTO messages (id, exim_id, received_ms, status)
                 VALUES (1, 'a', 1, 'completed'), (2, 'b', 2, 'deferred');
             INSERT INTO recipients (id, message_id, address, status, last_attempt_ms,
                                     delivered_ms)
                 VALUES (1, 1, 'r@y', 'delivered', 7, 7),
                        (2, 2, 'q@z', 'delivered', 9, 9),
                        (3, 2, 'never@z', 'pending', NULL, NULL);
             INSERT INTO attempts (id, message_id, recipient_id, flag, attempted_ms,
                                   final_address, router_id, transport_id, host_ip_id,
                                   host_port, smtp_code_id, error_text_id, error_address_at,
                                   queue_time_ms, delivery_time_ms, shadow, cutthrough)
                 VALUES (1, 1, 1, '>>', 7, NULL, 1, 2, 3, 25, NULL, NULL, NULL, 5, 1, 0, 1),
                        (2, 2, 2, '==', 8, NULL, 1, 2, 3, 25, 5, 4, 26, 6, NULL, 0, 0),
                        (3, 2, 2, '=>', 9, 'Q@z', 1, 2, 3, 25, NULL, NULL, NULL, 7, 2, 1, 0),
                        (4, 2, NULL, '**', 9, 'gone@z', NULL, NULL, NULL, NULL, NULL, NULL,
                         NULL, NULL, NULL, 0, 0);",
        )
        .unwrap();
        let every = "SELECT message_id, recipient_id, flag, attempted_ms, final_address, outcome,
                            router, transport, host_name, host_ip, host_port, tls_cipher,
                            cert_verified, smtp_code, error_text, queue_time_ms,
                            delivery_time_ms, shadow, cutthrough, suppressed
                     FROM delivery_attempts ORDER BY attempted_ms, recipient_id";
        let before = rows_as_text(&conn, every);
        assert_eq!(
            migrate(&mut conn).unwrap(),
            ["0020_recipients_hold_first_attempt"]
        );
        assert_eq!(rows_as_text(&conn, every), before);
        let in_rows = rows_as_text(
            &conn,
            "SELECT id, attempt_flag, attempt_ms FROM recipients ORDER BY id",
        );
        let expected = |values: &[Option<&str>]| -> Vec<Option<String>> {
            values.iter().map(|v| v.map(str::to_owned)).collect()
        };
        assert_eq!(
            in_rows,
            [
                expected(&[
                    Some("Integer(1)"),
                    Some("Text([62, 62])"),
                    Some("Integer(7)")
                ]),
                expected(&[
                    Some("Integer(2)"),
                    Some("Text([61, 61])"),
                    Some("Integer(8)")
                ]),
                expected(&[Some("Integer(3)"), None, None]),
            ]
        );
        let left: Vec<i64> = conn
            .prepare("SELECT id FROM attempts ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            left,
            [3, 4],
            "the second attempt, and the one of no recipient"
        );
        let error: String = conn
            .query_row(
                "SELECT error_text FROM first_attempts WHERE recipient_id = 2",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(error, "SMTP error after RCPT TO:<q@z>: 451 later");
        let flags = rows_as_text(
            &conn,
            "SELECT had_deferral, had_failure FROM messages ORDER BY id",
        );
        let flag = |value: i64| Some(format!("Integer({value})"));
        assert_eq!(flags, [[flag(0), flag(0)], [flag(1), flag(1)]]);
    }

    /// 0016: a Message-ID header is kept as its hash, found as before.
    #[test]
    fn message_ids_are_found_by_their_hash_after_0016() {
        let mut conn = database_at(15);
        conn.execute_batch(
            "INSERT INTO messages (id, exim_id, received_ms, sender, header_message_id, status)
                 VALUES (1, 'a', 5, 's@x', 'abc.123@example.com', 'completed'),
                        (2, 'b', 6, 't@x', NULL, 'completed');",
        )
        .unwrap();
        assert_eq!(
            migrate(&mut conn).unwrap(),
            [
                "0016_messages_header_id_hash",
                "0017_attempts_without_confirmation",
                "0018_messages_frozen_reason",
                "0019_messages_without_subject",
                "0020_recipients_hold_first_attempt"
            ]
        );
        let hashes = rows_as_text(&conn, "SELECT id, header_id_hash FROM messages ORDER BY id");
        assert_eq!(
            hashes,
            [
                vec![
                    Some("Integer(1)".to_owned()),
                    Some(format!(
                        "Integer({})",
                        super::super::texts::text_hash("abc.123@example.com")
                    ))
                ],
                vec![Some("Integer(2)".to_owned()), None],
            ]
        );
        let columns = message_columns(&conn);
        assert!(
            !columns.iter().any(|c| c == "header_message_id"),
            "{columns:?}"
        );
        let plan: String = conn
            .query_row(
                "EXPLAIN QUERY PLAN SELECT id FROM messages WHERE header_id_hash = 1",
                [],
                |row| row.get(3),
            )
            .unwrap();
        assert!(plan.contains("messages_header_id_hash"), "{plan}");
    }
}
