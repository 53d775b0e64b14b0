//! The writer's part of the queue actions: the queue helper's actions log,
//! line by line, into the audit log (an intent's rows, then their outcome),
//! and Exim's own lines confirming them (`frozen by`, `unfrozen by`,
//! `removed by`, `cancelled by`, a delivery), in the batch's transaction.

use std::collections::HashSet;

use deadpool_sqlite::rusqlite::Connection;

use crate::parse::{Entry, Event};
use crate::queue::record::Record;
use crate::store::StoreError;
use crate::store::repo::queue_actions::{self, ActionIntent};

/// The messages with an action awaiting Exim's line: read once from the
/// database, then kept; `None` until then (or after a rollback).
pub(super) type Awaiting = Option<HashSet<String>>;

/// Brings one line of the actions log into the audit log. A line that is
/// not a record (a torn write, a hand edit) is skipped and said.
pub(super) fn ingest(
    conn: &Connection,
    bytes: &[u8],
    awaiting: &mut Awaiting,
) -> Result<(), StoreError> {
    let Some(record) = Record::from_line(bytes) else {
        tracing::warn!(
            "a line of the queue helper's actions log is not a record; skipped: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        );
        return Ok(());
    };
    let awaiting = loaded(conn, awaiting)?;
    match record {
        Record::Intent(intent) => {
            let action = format!("queue_{}", intent.verb.name());
            let details = serde_json::json!({
                "role": intent.caller.actor.role,
                "auth": intent.caller.actor.auth,
                "peer_uid": intent.caller.peer_uid,
                "peer_user": intent.caller.peer_user,
                "peer_pid": intent.caller.peer_pid,
                "dry_run": intent.dry_run,
                "reason": intent.reason,
                "selection": intent.selection,
                "argv": intent.argv,
            })
            .to_string();
            let waiting = queue_actions::record_intent(
                conn,
                &ActionIntent {
                    request_id: &intent.request_id,
                    at_ms: intent.at_ms,
                    actor: &intent.caller.actor.user,
                    action: &action,
                    message_ids: &intent.ids,
                    origin: &intent.caller.origin,
                    client_ip: &intent.caller.actor.client_ip,
                    details: &details,
                },
                intent.dry_run,
            )?;
            if intent.verb.acts() {
                awaiting.extend(waiting);
            }
        }
        Record::Outcome(finished) => {
            let details = serde_json::json!({
                "exit_status": finished.exit_status,
                "stdout": finished.stdout,
                "stderr": finished.stderr,
                "error": finished.error,
            })
            .to_string();
            let settled = queue_actions::record_outcome(
                conn,
                &finished.request_id,
                finished.at_ms,
                &finished.outcomes,
                &details,
            )?;
            for id in settled {
                awaiting.remove(&id);
            }
        }
    }
    Ok(())
}

/// The message and the actions Exim's line `entry` would confirm, if any:
/// found when the batch is prepared, so the entry need not be kept.
pub(super) fn confirmable<'b>(entry: &Entry<'b>) -> Option<Confirmable<'b>> {
    let id = entry.message_id()?;
    let actions = confirmed_actions(&entry.event);
    (!actions.is_empty()).then_some((id.as_str(), actions))
}

/// A message's Exim id and the queue actions a line of it confirms.
pub(super) type Confirmable<'b> = (&'b str, &'static [&'static str]);

/// Marks the actions a line (logged at `at_ms`) confirms, as
/// [`confirmable`] found them. Looks at the database only for messages
/// with an action awaiting.
pub(super) fn confirm(
    conn: &Connection,
    confirmable: Option<Confirmable<'_>>,
    at_ms: Option<i64>,
    awaiting: &mut Awaiting,
) -> Result<(), StoreError> {
    let Some((id, actions)) = confirmable else {
        return Ok(());
    };
    let awaiting = loaded(conn, awaiting)?;
    if !awaiting.contains(id) {
        return Ok(());
    }
    let at = at_ms.unwrap_or_else(crate::store::repo::now_ms);
    queue_actions::confirm(conn, id, actions, at)?;
    Ok(())
}

/// Which action a line of Exim's confirms: the words Exim logs for an
/// admin's freeze, thaw, removal and give-up, and a delivery (any result)
/// for a forced delivery.
fn confirmed_actions(event: &Event<'_>) -> &'static [&'static str] {
    match event {
        Event::Frozen { reason } if reason.is_some_and(|r| r.starts_with(b"frozen by ")) => {
            &["queue_freeze"]
        }
        Event::Unfrozen { by } if *by == b"forced delivery" => &["queue_deliver"],
        // Exim's own thaws (auto_thaw, the error-message timer) are not an
        // admin's.
        Event::Unfrozen { by } if *by != b"auto-thaw" && *by != b"errmsg timer" => &["queue_thaw"],
        Event::Removed { detail } if detail.starts_with(b"removed by ") => &["queue_remove"],
        Event::Removed { detail } if detail.starts_with(b"cancelled by ") => &["queue_give_up"],
        Event::Delivery(_) => &["queue_deliver"],
        _ => &[],
    }
}

fn loaded<'a>(
    conn: &Connection,
    awaiting: &'a mut Awaiting,
) -> Result<&'a mut HashSet<String>, StoreError> {
    if awaiting.is_none() {
        *awaiting = Some(queue_actions::awaiting_confirmation(conn)?);
    }
    Ok(awaiting.get_or_insert_with(HashSet::new))
}
