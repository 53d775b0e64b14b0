//! Fleet retention: whole monthly partitions dropped, never rows deleted
//! (no DELETE, no VACUUM after it). Run by an administrator with
//! `exim-pilot fleet prune`, as the tables' owner.

use tokio_postgres::Client;

use super::pg::FleetError;
use super::rows::Month;

/// The partitioned tables, each with monthly partitions `<table>_pYYYY_MM`.
const TABLES: [&str; 4] = ["lines", "messages", "deliveries", "rejections"];

/// The month of a partition's name, when it is one of ours.
fn month_of_partition(name: &str) -> Option<(&'static str, Month)> {
    TABLES.iter().find_map(|table| {
        let rest = name.strip_prefix(table)?.strip_prefix("_p")?;
        let (year, month) = rest.split_once('_')?;
        let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(year, 4) || !digits(month, 2) {
            return None;
        }
        Some((*table, (year.parse().ok()?, month.parse().ok()?)))
    })
}

/// Every partition of the fleet's tables with its month, oldest first.
pub async fn list(client: &Client) -> Result<Vec<(String, &'static str, Month)>, FleetError> {
    let rows = client
        .query(
            "SELECT c.relname FROM pg_inherits i
               JOIN pg_class c ON c.oid = i.inhrelid
               JOIN pg_class p ON p.oid = i.inhparent
               JOIN pg_namespace n ON n.oid = p.relnamespace
              WHERE n.nspname = 'exim_pilot' AND p.relname = ANY($1)",
            &[&TABLES.as_slice()],
        )
        .await?;
    let mut partitions: Vec<(String, &'static str, Month)> = rows
        .iter()
        .filter_map(|row| {
            let name: String = row.get(0);
            let (table, month) = month_of_partition(&name)?;
            Some((name, table, month))
        })
        .collect();
    partitions.sort_by(|a, b| (a.2, a.1).cmp(&(b.2, b.1)));
    Ok(partitions)
}

/// Detaches and drops every partition of a month before `keep_from`.
/// Returns the partitions dropped.
pub async fn drop_before(client: &Client, keep_from: Month) -> Result<Vec<String>, FleetError> {
    let mut dropped = Vec::new();
    for (name, table, month) in list(client).await? {
        if month >= keep_from {
            continue;
        }
        // Identifiers cannot be bound; these two were matched against our
        // own fixed table names and a digits-only month above. Not
        // CONCURRENTLY: PostgreSQL refuses that beside a default partition
        // (schema 2); the lock lasts as long as the detach, not the drop.
        client
            .batch_execute(&format!(
                "ALTER TABLE exim_pilot.{table} DETACH PARTITION exim_pilot.{name}"
            ))
            .await?;
        client
            .batch_execute(&format!("DROP TABLE exim_pilot.{name}"))
            .await?;
        dropped.push(name);
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_partition_names_are_recognised() {
        assert_eq!(
            month_of_partition("lines_p2026_09"),
            Some(("lines", (2026, 9)))
        );
        assert_eq!(
            month_of_partition("deliveries_p1970_01"),
            Some(("deliveries", (1970, 1)))
        );
        assert_eq!(month_of_partition("lines_p2026_9"), None);
        assert_eq!(month_of_partition("lines_p2026_09; DROP"), None);
        assert_eq!(month_of_partition("other_p2026_09"), None);
    }
}
