//! The model's SQL: reading the rows a batch changes, and writing each
//! changed row once when the batch is flushed.
//!
//! Rows are looked up, then inserted or updated, rather than upserted (an
//! upsert rewrites a row that exists), and new rows get their ids from the
//! batch (see [`next_rows`]) rather than from `RETURNING`: SQLite keeps a
//! statement journal in a temporary file for a statement with RETURNING,
//! which doubled the bytes an ingest wrote.

use std::borrow::Cow;
use std::sync::LazyLock;

use deadpool_sqlite::rusqlite::{Connection, OptionalExtension, Statement, ToSql, params};

use super::rules::{MessageState, RecipientState, Status};
use super::{PendingMessage, PendingRecipient, attempts};
use crate::parse::{Reception, Rejection};
use crate::store::repo::{HELD_ATTEMPT_COLUMNS, bind_all, insert_rows};
use crate::store::{Context, ResultExt, StoreError, TextIds, query_value};

/// The ids the next new message and recipient rows get: one past the
/// largest stored. The batch's transaction is IMMEDIATE, holding the write
/// lock from its start, so nobody else (a concurrent `ingest`, say) can take
/// these ids before it commits.
pub fn next_rows(conn: &Connection) -> Result<(i64, i64), StoreError> {
    let context = || Context::op("allocate row ids").table("messages");
    let next = |sql: &str| query_value(conn, sql, [], context);
    Ok((
        next("SELECT coalesce(max(id), 0) + 1 FROM messages")?,
        next("SELECT coalesce(max(id), 0) + 1 FROM recipients")?,
    ))
}

/// The row of message `exim_id`, if there is one.
pub(super) fn find_message(conn: &Connection, exim_id: &str) -> Result<Option<i64>, StoreError> {
    let context = || Context::op("find message").table("messages").key(exim_id);
    conn.prepare_cached("SELECT id FROM messages WHERE exim_id = ?1")
        .ctx(context)?
        .query_row([exim_id], |row| row.get(0))
        .optional()
        .ctx(context)
}

/// The tracked state of stored message `row`.
pub(super) fn load_message(conn: &Connection, row: i64) -> Result<MessageState, StoreError> {
    let context = || Context::op("read message").table("messages").key(row);
    conn.prepare_cached(
        "SELECT status, frozen, received_ms, completed_ms, last_event_ms, frozen_ms, frozen_reason_id,
                had_deferral, had_failure
         FROM messages WHERE id = ?1",
    )
    .ctx(context)?
    .query_row([row], |row| {
        Ok(MessageState {
            status: Status::from_name(&row.get::<_, String>(0)?),
            frozen: row.get(1)?,
            received_ms: row.get(2)?,
            completed_ms: row.get(3)?,
            last_event_ms: row.get(4)?,
            frozen_ms: row.get(5)?,
            frozen_reason_id: row.get(6)?,
            had_deferral: row.get(7)?,
            had_failure: row.get(8)?,
        })
    })
    .ctx(context)
}

/// The tracked state of recipient `address` of stored message `message`.
pub(super) fn load_recipient(
    conn: &Connection,
    message: i64,
    address: &str,
) -> Result<Option<RecipientState>, StoreError> {
    let context = || {
        Context::op("read recipient")
            .table("recipients")
            .key(address)
    };
    conn.prepare_cached(
        "SELECT id, status, final_address, parent_address, last_attempt_ms, delivered_ms,
                attempt_flag IS NOT NULL
         FROM recipients WHERE message_id = ?1 AND address = ?2",
    )
    .ctx(context)?
    .query_row(params![message, address], |row| {
        Ok(RecipientState {
            row: row.get(0)?,
            status: RecipientState::status_from_name(&row.get::<_, String>(1)?),
            final_address: row.get(2)?,
            parent_address: row.get(3)?,
            last_attempt_ms: row.get(4)?,
            delivered_ms: row.get(5)?,
            holds_attempt: row.get(6)?,
        })
    })
    .optional()
    .ctx(context)
}

/// A field as text for SQLite: borrowed when it is valid UTF-8 (nearly
/// always), so binding it allocates nothing.
fn text(bytes: Option<&[u8]>) -> Option<Cow<'_, str>> {
    bytes.map(String::from_utf8_lossy)
}

/// The columns of `messages` in the order they are bound, so that in an
/// UPDATE `?N` is the Nth of them.
const MESSAGE_COLUMNS: [&str; 23] = [
    "id",
    "exim_id",
    "received_ms",
    "sender",
    "size",
    "host_name_id",
    "helo_id",
    "host_ip",
    "host_port",
    "protocol_id",
    "tls_cipher_id",
    "auth_user",
    "local_user",
    "header_id_hash",
    "parent_exim_id",
    "status",
    "frozen",
    "completed_ms",
    "last_event_ms",
    "frozen_ms",
    "frozen_reason_id",
    "had_deferral",
    "had_failure",
];

/// Writes the messages the batch changed as it leaves them: new rows whole,
/// and the reception and status of stored ones.
pub(super) fn messages(
    conn: &Connection,
    messages: &[(i64, &PendingMessage<'_>)],
) -> Result<(), StoreError> {
    let mut new = Vec::new();
    let mut known = Vec::new();
    for (row, pending) in messages {
        if pending.state.is_none() {
            continue;
        }
        let reception = pending
            .reception
            .as_ref()
            .map(|(reception, texts)| ReceptionFields::of(reception, texts));
        let message = (*row, *pending, reception);
        if pending.new {
            new.push(message);
        } else {
            known.push(message);
        }
    }
    insert_rows(
        conn,
        "messages",
        &MESSAGE_COLUMNS,
        &new,
        |statement, first, (row, pending, reception)| {
            bind_message(statement, first, *row, pending, reception.as_ref())
        },
    )?;
    for (row, pending, reception) in known {
        let context = || {
            Context::op("record message")
                .table("messages")
                .key(pending.exim_id)
        };
        // Parameters a statement does not use are bound and ignored.
        let sql = if reception.is_some() {
            "UPDATE messages SET
                 received_ms = ?3, sender = ?4, size = ?5, host_name_id = ?6, helo_id = ?7,
                 host_ip = ?8, host_port = ?9, protocol_id = ?10, tls_cipher_id = ?11,
                 auth_user = ?12, local_user = ?13, header_id_hash = ?14,
                 parent_exim_id = ?15, status = ?16, frozen = ?17, completed_ms = ?18,
                 last_event_ms = ?19, frozen_ms = ?20, frozen_reason_id = ?21,
                 had_deferral = ?22, had_failure = ?23
             WHERE id = ?1"
        } else {
            "UPDATE messages SET status = ?16, frozen = ?17, completed_ms = ?18, last_event_ms = ?19,
                 frozen_ms = ?20, frozen_reason_id = ?21, had_deferral = ?22, had_failure = ?23
             WHERE id = ?1"
        };
        let mut statement = conn.prepare_cached(sql).ctx(context)?;
        bind_message(&mut statement, 1, row, pending, reception.as_ref()).ctx(context)?;
        statement.raw_execute().ctx(context)?;
    }
    Ok(())
}

fn bind_message(
    statement: &mut Statement<'_>,
    first: usize,
    row: i64,
    pending: &PendingMessage<'_>,
    reception: Option<&ReceptionFields<'_>>,
) -> deadpool_sqlite::rusqlite::Result<()> {
    let state = pending.state.unwrap_or_default();
    let r = reception;
    let values: [&dyn ToSql; 23] = [
        &row,
        &pending.exim_id,
        &state.received_ms,
        &r.map(|r| &r.sender),
        &r.and_then(|r| r.size),
        &r.and_then(|r| r.host_name),
        &r.and_then(|r| r.helo),
        &r.and_then(|r| r.host_ip.as_ref()),
        &r.and_then(|r| r.host_port),
        &r.and_then(|r| r.protocol),
        &r.and_then(|r| r.tls_cipher),
        &r.and_then(|r| r.auth_user.as_ref()),
        &r.and_then(|r| r.local_user.as_ref()),
        &r.and_then(|r| r.header_id_hash),
        &r.and_then(|r| r.parent_exim_id),
        &state.status.name(),
        &state.frozen,
        &state.completed_ms,
        &state.last_event_ms,
        &state.frozen_ms,
        &state.frozen_reason_id,
        &state.had_deferral,
        &state.had_failure,
    ];
    bind_all(statement, first, values)
}

/// A reception's columns, as bound; repeated values as ids of `texts`.
struct ReceptionFields<'b> {
    sender: Cow<'b, str>,
    size: Option<i64>,
    host_name: Option<i64>,
    helo: Option<i64>,
    host_ip: Option<Cow<'b, str>>,
    host_port: Option<i64>,
    protocol: Option<i64>,
    tls_cipher: Option<i64>,
    auth_user: Option<Cow<'b, str>>,
    local_user: Option<Cow<'b, str>>,
    /// The Message-ID header's hash (`store::text_hash`): the text stays
    /// in the `<=` line.
    header_id_hash: Option<i64>,
    parent_exim_id: Option<&'b str>,
}

/// A reception's repeated values as ids of `texts`, found when the
/// reception is applied (ids are given before any row is written).
#[derive(Debug, Clone, Copy)]
pub(super) struct ReceptionTexts {
    host_name: Option<i64>,
    helo: Option<i64>,
    protocol: Option<i64>,
    tls_cipher: Option<i64>,
}

impl ReceptionTexts {
    pub(super) fn of(
        r: &Reception<'_>,
        conn: &Connection,
        texts: &mut TextIds,
    ) -> Result<Self, StoreError> {
        let host = r.host.unwrap_or_default();
        Ok(ReceptionTexts {
            host_name: texts.optional(conn, host.name)?,
            helo: texts.optional(conn, host.helo)?,
            protocol: texts.optional(conn, r.protocol)?,
            tls_cipher: texts.optional(conn, r.tls.cipher)?,
        })
    }
}

impl<'b> ReceptionFields<'b> {
    fn of(r: &Reception<'b>, texts: &ReceptionTexts) -> Self {
        let host = r.host.unwrap_or_default();
        // A login name is the local user when the message came from no
        // host; an authenticated sender is the auth user.
        let (auth_user, local_user) = match (r.auth, r.host) {
            (Some(auth), _) => (text(Some(auth)), None),
            (None, None) => (None, text(r.user)),
            (None, Some(_)) => (None, None),
        };
        ReceptionFields {
            sender: String::from_utf8_lossy(r.sender),
            size: r.size_bytes().and_then(|s| i64::try_from(s).ok()),
            host_name: texts.host_name,
            helo: texts.helo,
            host_ip: text(host.ip),
            host_port: host.port_number().map(i64::from),
            protocol: texts.protocol,
            tls_cipher: texts.tls_cipher,
            auth_user,
            local_user,
            header_id_hash: text(r.header_message_id).map(|id| crate::store::text_hash(&id)),
            parent_exim_id: r.bounce_of.map(|id| id.as_str()),
        }
    }
}

/// The columns of `recipients` in the order they are bound, before those
/// of the first attempt it holds ([`HELD_ATTEMPT_COLUMNS`]).
const RECIPIENT_COLUMNS: [&str; 8] = [
    "id",
    "message_id",
    "address",
    "status",
    "final_address",
    "parent_address",
    "last_attempt_ms",
    "delivered_ms",
];

/// An UPDATE of a stored recipient's state, bound as [`bind_recipient`]
/// binds a row.
static UPDATE_RECIPIENT: LazyLock<String> = LazyLock::new(|| update_recipient(&[]));

/// [`UPDATE_RECIPIENT`] with the first attempt it now holds, bound after
/// the recipient's columns ([`bind_first_attempt`]).
static UPDATE_WITH_FIRST_ATTEMPT: LazyLock<String> =
    LazyLock::new(|| update_recipient(&HELD_ATTEMPT_COLUMNS));

/// `UPDATE recipients` setting every column of [`RECIPIENT_COLUMNS`] but the
/// first three (the row, its message, its address), then `more`, each to
/// the parameter of its place in the row.
fn update_recipient(more: &[&str]) -> String {
    let sets: Vec<String> = RECIPIENT_COLUMNS
        .iter()
        .chain(more)
        .enumerate()
        .skip(3)
        .map(|(index, column)| format!("{column} = ?{}", index + 1))
        .collect();
    format!("UPDATE recipients SET {} WHERE id = ?1", sets.join(", "))
}

/// Writes the recipients the batch changed as it leaves them, with the
/// first attempt of those tried for the first time.
pub(super) fn recipients(
    conn: &Connection,
    recipients: &[PendingRecipient<'_>],
) -> Result<(), StoreError> {
    let (new, known): (Vec<&PendingRecipient<'_>>, Vec<&PendingRecipient<'_>>) = recipients
        .iter()
        .filter(|recipient| recipient.changed)
        .partition(|recipient| recipient.new);
    let columns: Vec<&str> = RECIPIENT_COLUMNS
        .into_iter()
        .chain(HELD_ATTEMPT_COLUMNS)
        .collect();
    insert_rows(
        conn,
        "recipients",
        &columns,
        &new,
        |statement, first, recipient| {
            bind_recipient(statement, first, recipient)?;
            bind_first_attempt(statement, first + RECIPIENT_COLUMNS.len(), recipient)
        },
    )?;
    for recipient in known {
        let context = || {
            Context::op("record recipient")
                .table("recipients")
                .key(&recipient.address)
        };
        // The attempt's columns are set only when it is new: setting one
        // an index covers rewrites the index entry, changed or not.
        let sql = if recipient.first_attempt.is_some() {
            UPDATE_WITH_FIRST_ATTEMPT.as_str()
        } else {
            UPDATE_RECIPIENT.as_str()
        };
        let mut statement = conn.prepare_cached(sql).ctx(context)?;
        bind_recipient(&mut statement, 1, recipient).ctx(context)?;
        if recipient.first_attempt.is_some() {
            bind_first_attempt(&mut statement, 1 + RECIPIENT_COLUMNS.len(), recipient)
                .ctx(context)?;
        }
        statement.raw_execute().ctx(context)?;
    }
    Ok(())
}

fn bind_recipient(
    statement: &mut Statement<'_>,
    first: usize,
    recipient: &PendingRecipient<'_>,
) -> deadpool_sqlite::rusqlite::Result<()> {
    let state = &recipient.state;
    bind_all(
        statement,
        first,
        [
            &state.row,
            &recipient.message,
            &recipient.address,
            &state.status,
            // Only when a router rewrote it (the address holds it otherwise).
            &state
                .final_address
                .as_ref()
                .filter(|final_address| **final_address != recipient.address),
            &state.parent_address,
            &state.last_attempt_ms,
            &state.delivered_ms,
        ],
    )
}

fn bind_first_attempt(
    statement: &mut Statement<'_>,
    first: usize,
    recipient: &PendingRecipient<'_>,
) -> deadpool_sqlite::rusqlite::Result<()> {
    match &recipient.first_attempt {
        Some(attempt) => attempt.bind_fields(statement, first),
        None => attempts::bind_no_attempt(statement, first),
    }
}

/// A rejection to insert: its message row, if any, the line and its time.
pub(super) type PendingRejection<'b> = (Option<i64>, Rejection<'b>, Option<i64>);

/// Inserts rejections.
pub(super) fn rejections(
    conn: &Connection,
    rejections: &[PendingRejection<'_>],
) -> Result<(), StoreError> {
    insert_rows(
        conn,
        "rejections",
        &[
            "message_id",
            "rejected_ms",
            "stage",
            "host_name",
            "helo",
            "host_ip",
            "sender",
            "recipient",
            "reason",
            "smtp_code",
            "temporary",
        ],
        rejections,
        |statement, first, (message, r, at)| {
            let host = r.host.unwrap_or_default();
            bind_all(
                statement,
                first,
                [
                    message,
                    &at.unwrap_or(0),
                    &r.stage.name(),
                    &text(host.name),
                    &text(host.helo),
                    &text(host.ip),
                    &text(r.sender),
                    &text(r.recipient),
                    &String::from_utf8_lossy(r.reason),
                    &r.smtp_code.map(|c| c.code.to_string()),
                    &r.temporary,
                ],
            )
        },
    )
}

/// Marks the waiting recipients of each of `messages` discarded (a message
/// whose recipients were all discarded at once, none named).
pub fn all_discarded(conn: &Connection, messages: &[i64]) -> Result<(), StoreError> {
    let context = || Context::op("mark discarded recipients").table("recipients");
    let mut statement = conn
        .prepare_cached(
            "UPDATE recipients SET status = 'discarded'
             WHERE message_id = ?1 AND status IN ('pending', 'deferred')",
        )
        .ctx(context)?;
    for message in messages {
        statement.execute([message]).ctx(context)?;
    }
    Ok(())
}
