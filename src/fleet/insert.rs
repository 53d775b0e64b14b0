//! Rows into the fleet's tables: one INSERT of unnested arrays per table,
//! a row whose key is there already skipped. Each table's columns are named
//! once, with their PostgreSQL type and their values ([`Shipped`]); the
//! statement is made from that list.

use tokio_postgres::types::ToSql;

use super::pg::FleetError;
use super::rows::{DeliveryRows, Keys, LineRows, MessageRows, RejectionRows, Rows};

/// A column after the keys: its name, its PostgreSQL type, its values.
type Column<'r> = (&'static str, &'static str, &'r (dyn ToSql + Sync));

/// Rows of one of the fleet's tables.
trait Shipped {
    /// The table.
    const TABLE: &'static str;
    /// The column the line's time goes in.
    const TIME: &'static str;
    /// Where each row's line is.
    fn keys(&self) -> &Keys;
    /// The columns after the keys.
    fn columns(&self) -> Vec<Column<'_>>;
}

/// The INSERT for `table`: `$1` the host, `$2`-`$4` the keys (source,
/// offset, time in milliseconds of the log's clock), then `columns`.
fn statement(table: &str, time: &str, columns: &[Column<'_>]) -> String {
    let names: Vec<&str> = columns.iter().map(|(name, _, _)| *name).collect();
    let aliases: Vec<String> = (0..columns.len()).map(|n| format!("c{n}")).collect();
    let arrays: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(n, (_, kind, _))| format!("${}::{kind}[]", n + 5))
        .collect();
    format!(
        "INSERT INTO exim_pilot.{table} (host, source, line_offset, {time}, {names})
         SELECT $1, s, o, 'epoch'::timestamp + t * interval '1 millisecond', {aliases}
         FROM unnest($2::bytea[], $3::bigint[], $4::bigint[], {arrays}) AS u(s, o, t, {aliases})
         ON CONFLICT DO NOTHING",
        names = names.join(", "),
        aliases = aliases.join(", "),
        arrays = arrays.join(", "),
    )
}

async fn insert_table<T: Shipped>(
    tx: &tokio_postgres::Transaction<'_>,
    host: &str,
    rows: &T,
) -> Result<u64, FleetError> {
    let keys = rows.keys();
    if keys.is_empty() {
        return Ok(0);
    }
    let columns = rows.columns();
    let mut values: Vec<&(dyn ToSql + Sync)> =
        vec![&host, &keys.source, &keys.offset, &keys.logged_ms];
    values.extend(columns.iter().map(|(_, _, values)| *values));
    Ok(tx
        .execute(&statement(T::TABLE, T::TIME, &columns), &values)
        .await?)
}

/// Inserts `rows`, each table in one statement. Returns the lines inserted.
pub(super) async fn insert(
    tx: &tokio_postgres::Transaction<'_>,
    host: &str,
    rows: &Rows,
) -> Result<u64, FleetError> {
    let inserted = insert_table(tx, host, &rows.lines).await?;
    insert_table(tx, host, &rows.messages).await?;
    insert_table(tx, host, &rows.deliveries).await?;
    insert_table(tx, host, &rows.rejections).await?;
    Ok(inserted)
}

impl Shipped for LineRows {
    const TABLE: &'static str = "lines";
    const TIME: &'static str = "logged_at";
    fn keys(&self) -> &Keys {
        &self.keys
    }
    fn columns(&self) -> Vec<Column<'_>> {
        vec![
            ("kind", "text", &self.kind),
            ("exim_id", "text", &self.exim_id),
            ("length", "bigint", &self.length),
            ("raw", "bytea", &self.raw),
        ]
    }
}

impl Shipped for MessageRows {
    const TABLE: &'static str = "messages";
    const TIME: &'static str = "received_at";
    fn keys(&self) -> &Keys {
        &self.keys
    }
    fn columns(&self) -> Vec<Column<'_>> {
        vec![
            ("exim_id", "text", &self.exim_id),
            ("sender", "text", &self.sender),
            ("size", "bigint", &self.size),
            ("peer_name", "text", &self.peer_name),
            ("peer_ip", "text", &self.peer_ip),
            ("protocol", "text", &self.protocol),
            ("auth_user", "text", &self.auth_user),
            ("header_message_id", "text", &self.header_message_id),
            ("parent_exim_id", "text", &self.parent_exim_id),
            ("subject", "text", &self.subject),
            ("recipients", "text", &self.recipients),
        ]
    }
}

impl Shipped for DeliveryRows {
    const TABLE: &'static str = "deliveries";
    const TIME: &'static str = "delivered_at";
    fn keys(&self) -> &Keys {
        &self.keys
    }
    fn columns(&self) -> Vec<Column<'_>> {
        vec![
            ("exim_id", "text", &self.exim_id),
            ("flag", "text", &self.flag),
            ("recipient", "text", &self.recipient),
            ("final_address", "text", &self.final_address),
            ("router", "text", &self.router),
            ("transport", "text", &self.transport),
            ("peer_name", "text", &self.peer_name),
            ("peer_ip", "text", &self.peer_ip),
            ("confirmation", "text", &self.confirmation),
            ("remote_id", "text", &self.remote_id),
            ("smtp_code", "text", &self.smtp_code),
            ("error", "text", &self.error),
            ("queue_time_ms", "bigint", &self.queue_time_ms),
            ("delivery_time_ms", "bigint", &self.delivery_time_ms),
        ]
    }
}

impl Shipped for RejectionRows {
    const TABLE: &'static str = "rejections";
    const TIME: &'static str = "rejected_at";
    fn keys(&self) -> &Keys {
        &self.keys
    }
    fn columns(&self) -> Vec<Column<'_>> {
        vec![
            ("exim_id", "text", &self.exim_id),
            ("stage", "text", &self.stage),
            ("temporary", "boolean", &self.temporary),
            ("peer_name", "text", &self.peer_name),
            ("peer_ip", "text", &self.peer_ip),
            ("sender", "text", &self.sender),
            ("recipient", "text", &self.recipient),
            ("reason", "text", &self.reason),
            ("smtp_code", "text", &self.smtp_code),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statement_names_each_column_once_in_the_order_bound() {
        let rows = RejectionRows::default();
        let sql = statement(RejectionRows::TABLE, RejectionRows::TIME, &rows.columns());
        assert!(sql.starts_with(
            "INSERT INTO exim_pilot.rejections (host, source, line_offset, rejected_at, exim_id, \
             stage, temporary, peer_name, peer_ip, sender, recipient, reason, smtp_code)"
        ));
        assert!(sql.contains("$7::boolean[]"), "{sql}");
        assert!(sql.contains("$13::text[]) AS u(s, o, t, c0,"), "{sql}");
        assert!(sql.ends_with("ON CONFLICT DO NOTHING"));
    }
}
