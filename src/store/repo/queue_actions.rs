//! The queue helper's actions in the audit log: an intent's rows (one per
//! message), its outcome per message, and the confirmation Exim's own log
//! line gives. Written only by the writer, in the transaction that stores
//! the actions log's read position (exactly once).

use std::collections::HashSet;

use deadpool_sqlite::rusqlite::{Connection, params};

use crate::store::error::{Context, ResultExt, StoreError};

/// An intent as the audit log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionIntent<'a> {
    /// The caller's request id.
    pub request_id: &'a str,
    /// When the helper recorded it (ms since 1970).
    pub at_ms: i64,
    /// Who.
    pub actor: &'a str,
    /// `queue_freeze`, `queue_show_body`...
    pub action: &'a str,
    /// The messages (none: one row without a message).
    pub message_ids: &'a [String],
    /// `web` or `cli`.
    pub origin: &'a str,
    /// The client's address (web), or empty.
    pub client_ip: &'a str,
    /// The rest, as a JSON object (role, peer, reason, selection, argv...).
    pub details: &'a str,
}

/// Records `intent`, a row per message, its outcome `unknown` until the
/// helper's outcome record says (a helper killed mid-action leaves it so),
/// or `dry_run`. Returns the messages that now await Exim's confirmation.
pub fn record_intent(
    conn: &Connection,
    intent: &ActionIntent<'_>,
    dry_run: bool,
) -> Result<Vec<String>, StoreError> {
    let context = || {
        Context::op("record a queue action")
            .table("audit_log")
            .key(intent.request_id)
    };
    let outcome = if dry_run { "dry_run" } else { "unknown" };
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO audit_log (at_ms, actor, action, detail, message_id, origin, request_id,
                                    client_ip, outcome)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .ctx(context)?;
    let ids: Vec<Option<&str>> = if intent.message_ids.is_empty() {
        vec![None]
    } else {
        intent
            .message_ids
            .iter()
            .map(|id| Some(id.as_str()))
            .collect()
    };
    for id in ids {
        insert
            .execute(params![
                intent.at_ms,
                intent.actor,
                intent.action,
                intent.details,
                id,
                intent.origin,
                intent.request_id,
                intent.client_ip,
                outcome
            ])
            .ctx(context)?;
    }
    Ok(if dry_run {
        Vec::new()
    } else {
        intent.message_ids.to_vec()
    })
}

/// Records the outcome of request `request_id`: `outcomes` in its rows'
/// order, and what Exim said (`details`, a JSON object merged into each
/// row's). Returns the messages that need no confirmation any more (Exim
/// did nothing to them).
pub fn record_outcome(
    conn: &Connection,
    request_id: &str,
    finished_ms: i64,
    outcomes: &[String],
    details: &str,
) -> Result<Vec<String>, StoreError> {
    let context = || {
        Context::op("record a queue action's outcome")
            .table("audit_log")
            .key(request_id)
    };
    let rows: Vec<(i64, Option<String>)> = conn
        .prepare_cached(
            "SELECT id, message_id FROM audit_log
             WHERE request_id = ?1 AND finished_ms IS NULL AND outcome <> 'dry_run'
             ORDER BY id",
        )
        .ctx(context)?
        .query_map([request_id], |row| Ok((row.get(0)?, row.get(1)?)))
        .ctx(context)?
        .collect::<Result<_, _>>()
        .ctx(context)?;
    let mut update = conn
        .prepare_cached(
            "UPDATE audit_log SET outcome = ?2, finished_ms = ?3, detail = json_patch(detail, ?4)
             WHERE id = ?1",
        )
        .ctx(context)?;
    let mut settled = Vec::new();
    for (index, (row, message)) in rows.into_iter().enumerate() {
        let outcome = outcomes.get(index).map_or("unknown", String::as_str);
        update
            .execute(params![row, outcome, finished_ms, details])
            .ctx(context)?;
        if !matches!(outcome, "done" | "started") {
            settled.extend(message);
        }
    }
    Ok(settled)
}

/// Marks the unconfirmed actions `actions` on message `exim_id` confirmed
/// at `at_ms` (the time of Exim's line). Returns how many rows changed.
pub fn confirm(
    conn: &Connection,
    exim_id: &str,
    actions: &[&str],
    at_ms: i64,
) -> Result<usize, StoreError> {
    let context = || {
        Context::op("confirm a queue action")
            .table("audit_log")
            .key(exim_id)
    };
    let mut changed = 0;
    let mut update = conn
        .prepare_cached(
            "UPDATE audit_log SET confirmed_ms = ?3
             WHERE message_id = ?1 AND action = ?2 AND request_id IS NOT NULL
               AND confirmed_ms IS NULL AND outcome IN ('unknown', 'done', 'started')",
        )
        .ctx(context)?;
    for action in actions {
        changed += update
            .execute(params![exim_id, action, at_ms])
            .ctx(context)?;
    }
    Ok(changed)
}

/// The messages with an action still waiting for Exim's line, so that the
/// writer looks only at their lines.
pub fn awaiting_confirmation(conn: &Connection) -> Result<HashSet<String>, StoreError> {
    let context = || Context::op("read unconfirmed queue actions").table("audit_log");
    conn.prepare_cached(
        "SELECT DISTINCT message_id FROM audit_log
         WHERE request_id IS NOT NULL AND message_id IS NOT NULL AND confirmed_ms IS NULL
           AND outcome IN ('unknown', 'done', 'started')",
    )
    .ctx(context)?
    .query_map([], |row| row.get(0))
    .ctx(context)?
    .collect::<Result<_, _>>()
    .ctx(context)
}
