//! `exim-pilot trace <id | address | IP>`: like exigrep, every line of
//! every matching message, grouped by message, with the message's summary
//! and each recipient's status. Answered from indexes.

use std::net::IpAddr;

use deadpool_sqlite::rusqlite::{Connection, params};
use serde::Serialize;

mod read_back;

use super::{QueryError, Window, format_ms};
use crate::store::{Context, ResultExt};

/// Messages returned at most (an address can match many).
const MAX_MESSAGES: i64 = 1000;

/// What the query names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An Exim message id.
    MessageId(String),
    /// A sender or recipient address (any case).
    Address(String),
    /// A client or delivery host's IP address.
    Ip(String),
    /// A mail domain: messages from or to any address at it, within a
    /// window of at most [`MAX_DOMAIN_DAYS`] (the last week when open).
    Domain(String),
}

impl Target {
    /// Classifies the argument, or explains why it is none of the three.
    pub fn parse(text: &str) -> Result<Target, QueryError> {
        let text = text.trim();
        if crate::parse::parse_line(format!("2000-01-01 00:00:00 {text} x").as_bytes())
            .message_id()
            .is_some_and(|id| id.as_str() == text)
        {
            return Ok(Target::MessageId(text.to_owned()));
        }
        if let Ok(ip) = text
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            return Ok(Target::Ip(ip.to_string()));
        }
        if is_domain(text) {
            return Ok(Target::Domain(text.to_ascii_lowercase()));
        }
        if text.contains('@') && !text.contains(char::is_whitespace) {
            return Ok(Target::Address(
                text.trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_owned(),
            ));
        }
        Err(QueryError::BadArgument(format!(
            "{text:?} is not a message id (like 1smkL5-00000000e65-24eQ or 1jmFYj-00039V-QX), an address, a Message-ID header, an IP address or a domain"
        )))
    }
}

/// Whether `text` is a mail domain: labels of letters, digits and `-`,
/// at least two, the last not all digits (that is an IP address).
fn is_domain(text: &str) -> bool {
    let labels: Vec<&str> = text.split('.').collect();
    labels.len() >= 2
        && text.len() <= 253
        && labels.iter().all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && labels
            .last()
            .is_some_and(|tld| !tld.bytes().all(|b| b.is_ascii_digit()))
}

/// The longest window a domain is searched in: it reads every message
/// received in it.
pub const MAX_DOMAIN_DAYS: i64 = 31;

/// One message with its recipients and lines.
#[derive(Debug, Serialize)]
pub struct TracedMessage {
    /// The Exim id.
    pub id: String,
    /// Where it stands: received, deferred, frozen, completed, rejected.
    pub status: String,
    /// The envelope sender, if its reception was seen.
    pub sender: Option<String>,
    /// When it was received.
    pub received_at: Option<String>,
    /// When it completed, if it did.
    pub completed_at: Option<String>,
    /// Its size (`S=`).
    pub size: Option<i64>,
    /// The host it came from: `name (helo) [ip]`.
    pub host: Option<String>,
    /// Its subject (`T=`), when logged and its `<=` line is among the
    /// lines shown (read back from it).
    pub subject: Option<String>,
    /// The message it is a bounce of.
    pub parent: Option<String>,
    /// Whether it is frozen now.
    pub frozen: bool,
    /// The `Message-ID:` header (`id=` of its reception), when logged and
    /// its `<=` line is among the lines shown.
    pub header_message_id: Option<String>,
    /// Each recipient's state.
    pub recipients: Vec<TracedRecipient>,
    /// Every delivery attempt, in time order.
    pub attempts: Vec<TracedAttempt>,
    /// Its log lines, in order.
    pub lines: Vec<String>,
    /// Lines left out of `lines` because the answer's line budget was
    /// spent (`lines --grep ID` prints them all).
    #[serde(skip_serializing_if = "is_zero")]
    pub lines_left_out: u64,
}

fn is_zero(count: &u64) -> bool {
    *count == 0
}

/// One delivery attempt (a `=>`, `->`, `>>`, `*>`, `==` or `**` line).
#[derive(Debug, Serialize)]
pub struct TracedAttempt {
    /// When it was logged.
    pub at: String,
    /// Its flag (`=>`, `==`, ...).
    pub flag: String,
    /// delivered, deferred or bounced.
    pub outcome: String,
    /// The address delivered to (or tried).
    pub address: Option<String>,
    /// `R=`
    pub router: Option<String>,
    /// `T=`
    pub transport: Option<String>,
    /// `H=`: `name [ip]:port`.
    pub host: Option<String>,
    /// `X=`: the TLS cipher.
    pub tls_cipher: Option<String>,
    /// `CV=`: whether the peer's certificate was verified.
    pub certificate_verified: Option<bool>,
    /// `C=`: the peer's confirmation.
    pub confirmation: Option<String>,
    /// The SMTP code of a failure or deferral.
    pub smtp_code: Option<String>,
    /// The error of a failure or deferral.
    pub error: Option<String>,
    /// `QT=`, in milliseconds.
    pub queue_time_ms: Option<i64>,
    /// `DT=`, in milliseconds.
    pub delivery_time_ms: Option<i64>,
}

/// A recipient's state.
#[derive(Debug, Serialize)]
pub struct TracedRecipient {
    /// The address as the sender gave it.
    pub address: String,
    /// Where it was delivered, when a router rewrote it.
    pub final_address: Option<String>,
    /// Where it stands: received, deferred, frozen, completed, rejected.
    pub status: String,
}

/// The ids of the messages `target` names: ?1 is its text, and ?5 its
/// hash (see [`crate::store::text_hash`]): an IP address's text, a
/// Message-ID header's.
fn target_sql(target: &Target) -> &'static str {
    match target {
        Target::MessageId(_) => "SELECT id FROM messages WHERE exim_id = ?1",
        Target::Address(_) => {
            // Whole addresses, without regard to case (mail domains are
            // case-insensitive; exigrep matches so too): the NOCASE
            // indexes answer. A Message-ID header looks like an address.
            "SELECT id FROM messages WHERE sender = ?1 COLLATE NOCASE
             UNION SELECT message_id FROM recipients WHERE address = ?1 COLLATE NOCASE
             UNION SELECT message_id FROM recipients WHERE final_address = ?1 COLLATE NOCASE
             UNION SELECT id FROM messages WHERE header_id_hash = ?5"
        }
        Target::Domain(_) => {
            // No index holds domains: the messages received in the
            // (bounded) window, through messages_received, are read.
            "SELECT id FROM messages
             WHERE received_ms BETWEEN ?2 AND ?3
               AND (sender LIKE '%@' || ?1
                    OR EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = messages.id
                               AND (r.address LIKE '%@' || ?1 OR r.final_address LIKE '%@' || ?1)))"
        }
        Target::Ip(_) => {
            // The peer's text found by its hash, from texts_hash.
            "SELECT id FROM messages WHERE host_ip = ?1
             UNION SELECT message_id FROM recipients
                   WHERE attempt_host_ip_id IN (SELECT id FROM texts WHERE hash = ?5 AND text = ?1)
             UNION SELECT message_id FROM attempts
                   WHERE host_ip_id IN (SELECT id FROM texts WHERE hash = ?5 AND text = ?1)"
        }
    }
}

/// Finds the messages `target` names within `window`; with `related`,
/// bounces of them and the messages they bounced too. Their lines fill
/// at most `max_line_bytes` between them (a message's first line always
/// fits while any budget is left); the rest are counted as left out.
pub fn find(
    conn: &Connection,
    target: &Target,
    window: Window,
    related: bool,
    max_line_bytes: usize,
) -> Result<Vec<TracedMessage>, QueryError> {
    let window = match target {
        Target::Domain(_) => domain_window(conn, window)?,
        _ => window,
    };
    let (since, until) = window.sql_bounds();
    let sql = target_sql(target);
    let value = match target {
        Target::MessageId(v) | Target::Address(v) | Target::Ip(v) | Target::Domain(v) => v.as_str(),
    };
    let context = || Context::op("trace").table("messages").key(value);
    let windowed = format!(
        "SELECT m.id FROM messages m WHERE m.id IN ({sql})
           AND coalesce(m.received_ms, m.last_event_ms, 0) BETWEEN ?2 AND ?3
         ORDER BY coalesce(m.received_ms, m.last_event_ms), m.id LIMIT ?4"
    );
    let mut statement = conn.prepare(&windowed).ctx(context)?;
    let id = |row: &deadpool_sqlite::rusqlite::Row<'_>| row.get::<_, i64>(0);
    let found = match target {
        Target::Ip(text) | Target::Address(text) => statement.query_map(
            params![
                value,
                since,
                until,
                MAX_MESSAGES,
                crate::store::text_hash(text)
            ],
            id,
        ),
        Target::MessageId(_) | Target::Domain(_) => {
            statement.query_map(params![value, since, until, MAX_MESSAGES], id)
        }
    };
    let mut ids: Vec<i64> = found.ctx(context)?.collect::<Result<_, _>>().ctx(context)?;
    if related {
        let mut extra: Vec<i64> = Vec::new();
        for id in &ids {
            let mut statement = conn
                .prepare_cached(
                    "SELECT p.id FROM messages m JOIN messages p ON p.exim_id = m.parent_exim_id WHERE m.id = ?1
                     UNION SELECT c.id FROM messages m JOIN messages c ON c.parent_exim_id = m.exim_id WHERE m.id = ?1",
                )
                .ctx(context)?;
            let found = statement
                .query_map([id], |row| row.get::<_, i64>(0))
                .ctx(context)?
                .collect::<Result<Vec<_>, _>>()
                .ctx(context)?;
            extra.extend(found);
        }
        for id in extra {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    let mut line_bytes = max_line_bytes;
    ids.iter()
        .map(|id| load(conn, *id, &mut line_bytes))
        .collect()
}

/// A domain's window: the last week before its end when it has no start;
/// refused when longer than [`MAX_DOMAIN_DAYS`].
fn domain_window(conn: &Connection, window: Window) -> Result<Window, QueryError> {
    const DAY_MS: i64 = 86_400_000;
    let until = match window.until {
        Some(until) => until,
        None => crate::store::repo::newest_line_ms(conn)?.unwrap_or(0),
    };
    let since = window.since.unwrap_or(until - 7 * DAY_MS);
    if until - since > MAX_DOMAIN_DAYS * DAY_MS {
        return Err(QueryError::BadArgument(format!(
            "a domain is searched in every message of the window: give a window of at most \
             {MAX_DOMAIN_DAYS} days (--since, --until), not {}",
            (until - since) / DAY_MS
        )));
    }
    Ok(Window {
        since: Some(since),
        until: window.until,
    })
}

fn load(conn: &Connection, id: i64, line_bytes: &mut usize) -> Result<TracedMessage, QueryError> {
    let context = || Context::op("trace").table("messages").key(id);
    let (mut message, header_id_hash) = conn
        .prepare_cached(
            "SELECT exim_id, status, sender, received_ms, completed_ms, size,
                    CASE WHEN host_ip IS NULL THEN NULL
                         ELSE trim(coalesce((SELECT text FROM texts WHERE id = host_name_id), '')
                                   || ' (' || coalesce((SELECT text FROM texts WHERE id = helo_id), '')
                                   || ') [' || host_ip || ']') END,
                    parent_exim_id, frozen, header_id_hash
             FROM messages WHERE id = ?1",
        )
        .ctx(context)?
        .query_row([id], |row| {
            let message = TracedMessage {
                id: row.get(0)?,
                status: row.get(1)?,
                sender: row.get(2)?,
                received_at: row.get::<_, Option<i64>>(3)?.map(format_ms),
                completed_at: row.get::<_, Option<i64>>(4)?.map(format_ms),
                size: row.get(5)?,
                host: row.get(6)?,
                subject: None,
                parent: row.get(7)?,
                frozen: row.get::<_, i64>(8)? != 0,
                header_message_id: None,
                recipients: Vec::new(),
                attempts: Vec::new(),
                lines: Vec::new(),
                lines_left_out: 0,
            };
            Ok((message, row.get::<_, Option<i64>>(9)?))
        })
        .ctx(context)?;
    message.recipients = recipients(conn, id)?;
    message.attempts = attempts(conn, id)?;
    let (lines, left_out) = crate::store::repo::message_lines(conn, id, *line_bytes)?;
    let used: usize = lines.iter().map(|line| line.bytes.len()).sum();
    *line_bytes = line_bytes.saturating_sub(used);
    read_back::fill(&mut message, &lines, header_id_hash);
    message.lines = lines
        .into_iter()
        .map(|line| String::from_utf8_lossy(&line.bytes).into_owned())
        .collect();
    message.lines_left_out = left_out;
    Ok(message)
}

/// A message row's recipients, in the order they were added.
fn recipients(conn: &Connection, id: i64) -> Result<Vec<TracedRecipient>, QueryError> {
    let context = || Context::op("trace").table("recipients").key(id);
    conn
        .prepare_cached("SELECT address,
                    -- Stored only when a router rewrote it; once tried, it is known.
                    CASE status WHEN 'pending' THEN final_address ELSE coalesce(final_address, address) END,
                    status
             FROM recipients WHERE message_id = ?1 ORDER BY id")
        .ctx(context)?
        .query_map([id], |row| {
            Ok(TracedRecipient {
                address: row.get(0)?,
                final_address: row.get(1)?,
                status: row.get(2)?,
            })
        })
        .ctx(context)?
        .collect::<Result<Vec<_>, _>>()
        .ctx(context)
        .map_err(Into::into)
}

/// A message row's delivery attempts, in time order.
fn attempts(conn: &Connection, id: i64) -> Result<Vec<TracedAttempt>, QueryError> {
    let context = || Context::op("trace").table("attempts").key(id);
    conn.prepare_cached(
        "SELECT attempted_ms, flag, outcome, final_address, router, transport,
                    CASE WHEN host_name IS NULL AND host_ip IS NULL THEN NULL
                         ELSE trim(coalesce(host_name, '') || coalesce(' [' || host_ip || ']', '')
                                   || coalesce(':' || host_port, '')) END,
                    tls_cipher, cert_verified, smtp_code, error_text,
                    queue_time_ms, delivery_time_ms
             FROM delivery_attempts WHERE message_id = ?1
             -- A recipient's first attempt (id NULL) before its later ones.
             ORDER BY attempted_ms, id NULLS FIRST, recipient_id",
    )
    .ctx(context)?
    .query_map([id], |row| {
        Ok(TracedAttempt {
            at: format_ms(row.get(0)?),
            flag: row.get(1)?,
            outcome: row.get(2)?,
            address: row.get(3)?,
            router: row.get(4)?,
            transport: row.get(5)?,
            host: row.get(6)?,
            tls_cipher: row.get(7)?,
            certificate_verified: row.get::<_, Option<i64>>(8)?.map(|v| v != 0),
            confirmation: None,
            smtp_code: row.get(9)?,
            error: row.get(10)?,
            queue_time_ms: row.get(11)?,
            delivery_time_ms: row.get(12)?,
        })
    })
    .ctx(context)?
    .collect::<Result<Vec<_>, _>>()
    .ctx(context)
    .map_err(Into::into)
}

/// The human form: a summary per message, then its lines, like exigrep.
pub fn render(messages: &[TracedMessage]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for message in messages {
        let _ = writeln!(
            out,
            "== {} {} from {}{}",
            message.id,
            message.status,
            message.sender.as_deref().unwrap_or("(reception not seen)"),
            message
                .received_at
                .as_deref()
                .map(|at| format!(", received {at}"))
                .unwrap_or_default()
        );
        if let Some(subject) = &message.subject {
            let _ = writeln!(out, "   subject: {subject}");
        }
        if let Some(host) = &message.host {
            let _ = writeln!(out, "   from host: {host}");
        }
        if let Some(parent) = &message.parent {
            let _ = writeln!(out, "   bounce of: {parent}");
        }
        for recipient in &message.recipients {
            let delivered_as = match &recipient.final_address {
                Some(final_address) if *final_address != recipient.address => {
                    format!(" (as {final_address})")
                }
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "   {:<10} {}{delivered_as}",
                recipient.status, recipient.address
            );
        }
        for line in &message.lines {
            let _ = writeln!(out, "{line}");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use deadpool_sqlite::rusqlite::Connection;

    use super::{Target, find, target_sql};
    use crate::query::Window;

    /// What SQLite's plan for `sql` says it reads.
    fn plan(conn: &Connection, sql: &str) -> String {
        crate::query::query_plan(conn, sql).join("\n")
    }

    #[test]
    fn addresses_and_peers_are_found_from_indexes() {
        let conn = crate::store::migrated_in_memory();
        let address = plan(&conn, target_sql(&Target::Address("a@b".to_owned())));
        for index in [
            "messages_sender",
            "recipients_address",
            "recipients_final",
            "messages_header_id_hash",
        ] {
            assert!(
                address.contains(&format!("INDEX {index} ")),
                "{index}:\n{address}"
            );
        }
        let ip = plan(&conn, target_sql(&Target::Ip("192.0.2.1".to_owned())));
        for index in [
            "messages_host_ip",
            "recipients_attempt_host_ip",
            "attempts_host_ip",
            "texts_hash",
        ] {
            assert!(ip.contains(&format!("INDEX {index} ")), "{index}:\n{ip}");
        }
        assert!(
            !address.contains("SCAN") && !ip.contains("SCAN"),
            "{address}\n{ip}"
        );
    }

    #[test]
    fn a_peer_is_found_by_the_attempts_that_went_to_it() {
        let conn = crate::store::migrated_in_memory();
        let peer = "198.51.100.9";
        conn.execute(
            "INSERT INTO texts (id, hash, text) VALUES (7, ?1, ?2)",
            deadpool_sqlite::rusqlite::params![crate::store::text_hash(peer), peer],
        )
        .unwrap();
        conn.execute_batch(
            "INSERT INTO messages (id, exim_id, received_ms, host_ip, status)
                 VALUES (1, '1aaaaa-000000-01', 1000, '192.0.2.1', 'completed'),
                        (2, '1aaaaa-000000-02', 2000, '192.0.2.1', 'completed'),
                        (3, '1aaaaa-000000-03', 3000, '192.0.2.1', 'completed');
             INSERT INTO attempts (message_id, flag, attempted_ms, host_ip_id)
                 VALUES (2, '=>', 2500, 7);
             INSERT INTO recipients (message_id, address, status, attempt_flag, attempt_ms,
                                     attempt_host_ip_id)
                 VALUES (3, 'r@x', 'delivered', '=>', 3500, 7);",
        )
        .unwrap();
        let found = find(
            &conn,
            &Target::Ip(peer.to_owned()),
            Window::default(),
            false,
            usize::MAX,
        )
        .unwrap();
        let ids: Vec<&str> = found.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["1aaaaa-000000-02", "1aaaaa-000000-03"]);
    }
}
