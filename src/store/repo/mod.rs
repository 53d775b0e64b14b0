//! Repository functions: fixed SQL, bound parameters only.
//!
//! Each takes a `&Connection`, and a `rusqlite::Transaction` dereferences to
//! one, so the same function serves inside the writer's batch transaction and
//! on its own. Statements are prepared through the connection's cache.

use deadpool_sqlite::rusqlite::{Connection, Statement, ToSql};

use super::error::{Context, ResultExt, StoreError};

mod audit;
mod counts;
mod lines;
pub mod queue_actions;
pub mod queue_samples;
mod shipped;
mod sources;

pub use audit::{
    AuditRecord, Gap, OpenStall, SOURCE_RECOVERED, SOURCE_STALLED, open_stall, record_audit,
    record_gap,
};
pub use counts::{
    FUTURE_TOLERANCE_MS, NO_TIME_MINUTE, add_line_counts, minute_of, newest_line_ms,
    newest_line_ms_before,
};
pub use lines::{
    ChunkedLines, all_lines, insert_chunk, lines_between, lines_of_chunks_after, message_lines,
    seal_all, store_sealed,
};
pub use shipped::{
    ChunkToShip, chunks_after, chunks_beyond, load_shipped, save_shipped, store_name,
};
pub use sources::{
    Checkpoint, ReadPosition, SourceIdentity, SourcePosition, load_checkpoint, save_checkpoint,
    source_positions, upsert_source,
};

/// Wall-clock time now, in milliseconds since 1970.
pub fn now_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

/// The columns of `recipients` that hold the recipient's first delivery
/// attempt (migration 0020), NULL until it has one; in the order of the
/// same columns of `attempts` (`flag`, `attempted_ms`...).
pub const HELD_ATTEMPT_COLUMNS: [&str; 16] = [
    "attempt_flag",
    "attempt_ms",
    "attempt_final_address",
    "attempt_router_id",
    "attempt_transport_id",
    "attempt_host_name_id",
    "attempt_host_ip_id",
    "attempt_host_port",
    "attempt_tls_cipher_id",
    "attempt_cert_verified",
    "attempt_smtp_code_id",
    "attempt_error_text_id",
    "attempt_error_address_at",
    "attempt_queue_time_ms",
    "attempt_delivery_time_ms",
    "attempt_shadow",
];

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

/// Binds `values` to parameters `first`, `first + 1`... (a row of
/// [`insert_rows`], or an UPDATE's parameters in column order).
pub fn bind_all<const N: usize>(
    statement: &mut Statement<'_>,
    first: usize,
    values: [&dyn ToSql; N],
) -> deadpool_sqlite::rusqlite::Result<()> {
    for (offset, value) in values.into_iter().enumerate() {
        statement.raw_bind_parameter(first + offset, value)?;
    }
    Ok(())
}

/// [`insert_rows`] with an `ON CONFLICT` clause (`on_conflict`).
pub(super) fn write_rows<T>(
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
        let conn = crate::store::migrated_in_memory();
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
