//! `exim-pilot audit`: the audit log, newest first: what the program did on
//! its own (gaps, rotations, reloads) and what people did to Exim's queue
//! through the queue helper, with who, from where, what came of it and
//! whether Exim's own log confirmed it. Read-only, bounded.

use deadpool_sqlite::rusqlite::{Connection, params};
use serde::Serialize;

use super::QueryError;
use crate::store::{Context, ResultExt};

/// Rows returned at most.
const LIMIT: i64 = 1000;

/// One record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRow {
    /// When (UTC, RFC 3339).
    pub at: String,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// To which message.
    pub message_id: Option<String>,
    /// `web`, `cli`, `daemon`, or the command.
    pub origin: String,
    /// The client's address, for the web view's actions.
    pub client_ip: Option<String>,
    /// What came of a queue action (`done`, `noop`, `unknown`...).
    pub outcome: Option<String>,
    /// When Exim's own line confirmed it.
    pub confirmed_at: Option<String>,
    /// The request it belongs to.
    pub request_id: Option<String>,
    /// The rest, as the record has it (JSON).
    pub detail: serde_json::Value,
}

/// What to show.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter<'a> {
    /// Only records about this message.
    pub message_id: Option<&'a str>,
    /// Only records by this actor.
    pub actor: Option<&'a str>,
    /// Only records at or after this time (ms since 1970, UTC).
    pub since_ms: Option<i64>,
}

/// The records `filter` takes, newest first, at most [`LIMIT`].
pub fn find(conn: &Connection, filter: &AuditFilter<'_>) -> Result<Vec<AuditRow>, QueryError> {
    let context = || Context::op("read the audit log").table("audit_log");
    let utc = |ms: i64| {
        humantime::format_rfc3339_millis(
            std::time::UNIX_EPOCH
                + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0)),
        )
        .to_string()
    };
    let mut statement = conn
        .prepare(
            "SELECT at_ms, actor, action, message_id, origin, client_ip, outcome, confirmed_ms,
                    request_id, detail
             FROM audit_log
             WHERE (?1 IS NULL OR message_id = ?1) AND (?2 IS NULL OR actor = ?2)
               AND at_ms >= coalesce(?3, 0)
             ORDER BY at_ms DESC, id DESC LIMIT ?4",
        )
        .ctx(context)?;
    let rows = statement
        .query_map(
            params![filter.message_id, filter.actor, filter.since_ms, LIMIT],
            |row| {
                let detail: String = row.get(9)?;
                Ok(AuditRow {
                    at: utc(row.get(0)?),
                    actor: row.get(1)?,
                    action: row.get(2)?,
                    message_id: row.get(3)?,
                    origin: row.get(4)?,
                    client_ip: row.get(5)?,
                    outcome: row.get(6)?,
                    confirmed_at: row.get::<_, Option<i64>>(7)?.map(utc),
                    request_id: row.get(8)?,
                    detail: serde_json::from_str(&detail)
                        .unwrap_or(serde_json::Value::String(detail)),
                })
            },
        )
        .ctx(context)?;
    Ok(rows.collect::<Result<_, _>>().ctx(context)?)
}

/// The records as text, one line each.
pub fn render(rows: &[AuditRow]) -> String {
    let mut out = String::new();
    for row in rows {
        out.push_str(&format!(
            "{} {} {} {}",
            row.at, row.origin, row.actor, row.action
        ));
        if let Some(id) = &row.message_id {
            out.push_str(&format!(" {id}"));
        }
        if let Some(outcome) = &row.outcome {
            out.push_str(&format!(": {outcome}"));
        }
        if row.confirmed_at.is_some() {
            out.push_str(" (confirmed by Exim's log)");
        }
        if let Some(ip) = row.client_ip.as_deref().filter(|ip| !ip.is_empty()) {
            out.push_str(&format!(" from {ip}"));
        }
        if let Some(reason) = row
            .detail
            .get("reason")
            .and_then(|r| r.as_str())
            .filter(|r| !r.is_empty())
        {
            out.push_str(&format!(" ({reason})"));
        }
        out.push('\n');
    }
    out
}
