//! The mail model: what each parsed entry means for messages, recipients,
//! delivery attempts and rejections. Applied by the writer, inside the
//! batch transaction, once per newly stored line, so a delivery attempt,
//! the recipient's status and the message's status always change together.
//!
//! A line about a message whose reception has not been read (it arrived
//! before the oldest log read, or its `<=` comes later, as with cutthrough
//! `>>`) creates a placeholder message row; the reception fills it in.

use std::borrow::Cow;
use std::collections::HashMap;

use deadpool_sqlite::rusqlite::{Connection, OptionalExtension, ToSql, params};

use crate::parse::{
    Delivery, DeliveryFlag, Entry, Event, Host, Reception, Rejection, unescape_quoted,
};
use crate::store::{Context, ResultExt, StoreError};

/// Message row ids by Exim id, remembered between batches. Bounded: it is
/// a cache, and the database answers when it forgets.
#[derive(Debug, Default, Clone)]
pub struct MessageIds {
    ids: HashMap<String, i64>,
}

/// Entries kept before the cache starts over: enough for the messages in
/// flight on a busy host (a miss costs one indexed lookup), small enough to
/// keep the daemon's memory flat.
const MESSAGE_ID_CACHE: usize = 16_384;

impl MessageIds {
    /// Forgets everything (the database was replaced).
    pub fn clear(&mut self) {
        self.ids.clear();
    }

    /// The row of the message `entry` is about, if it names one (`at` is
    /// the entry's time). A reception creates or fills in the row with its
    /// fields in one statement; inserting a placeholder and then updating it
    /// would write each of the row's indexes twice. Any other line finds the
    /// row, creating a placeholder if needed.
    pub fn row_for(
        &mut self,
        conn: &Connection,
        entry: &Entry<'_>,
        at: Option<i64>,
    ) -> Result<Option<i64>, StoreError> {
        let Some(exim_id) = entry.message_id() else {
            return Ok(None);
        };
        let exim_id = exim_id.as_str();
        let cached = self.ids.get(exim_id).copied();
        let known = match cached {
            Some(id) => Some(id),
            None => find(conn, exim_id)?,
        };
        let id = match (&entry.event, known) {
            (Event::Reception(reception), _) => received(conn, exim_id, known, reception, at)?,
            (_, Some(id)) => id,
            (_, None) => create_placeholder(conn, exim_id)?,
        };
        if cached.is_none() {
            if self.ids.len() >= MESSAGE_ID_CACHE {
                self.ids.clear();
            }
            self.ids.insert(exim_id.to_owned(), id);
        }
        Ok(Some(id))
    }
}

// Rows are looked up, then inserted or updated, rather than upserted (an
// upsert rewrites a row that exists), and inserts read `last_insert_rowid`
// rather than use RETURNING: SQLite keeps a statement journal in a temporary
// file for a statement with RETURNING, which doubled the bytes an ingest
// wrote.

/// The row of message `exim_id`, if there is one.
fn find(conn: &Connection, exim_id: &str) -> Result<Option<i64>, StoreError> {
    let context = || Context::op("find message").table("messages").key(exim_id);
    conn.prepare_cached("SELECT id FROM messages WHERE exim_id = ?1")
        .ctx(context)?
        .query_row([exim_id], |row| row.get(0))
        .optional()
        .ctx(context)
}

/// A row for a message seen before its reception (or whose reception was
/// never read): the reception fills it in if it comes.
fn create_placeholder(conn: &Connection, exim_id: &str) -> Result<i64, StoreError> {
    let context = || Context::op("create message").table("messages").key(exim_id);
    conn.prepare_cached("INSERT INTO messages (exim_id) VALUES (?1)")
        .ctx(context)?
        .execute([exim_id])
        .ctx(context)?;
    Ok(conn.last_insert_rowid())
}

/// Applies one newly stored entry. `message` is the row of the entry's
/// message (when it has an id), `at` its time in the log's clock.
pub fn apply(
    conn: &Connection,
    entry: &Entry<'_>,
    message: Option<i64>,
    at: Option<i64>,
) -> Result<(), StoreError> {
    match (&entry.event, message) {
        (Event::Reception(reception), Some(message)) => {
            for address in reception.recipient_list() {
                recipient(conn, message, address)?;
            }
            Ok(())
        }
        (Event::Delivery(delivery), Some(message)) => attempted(conn, message, delivery, at),
        (Event::Completed { .. }, Some(message)) => set_status(
            conn,
            message,
            "UPDATE messages SET status = 'completed', completed_ms = ?2, frozen = 0,
                 last_event_ms = coalesce(?2, last_event_ms)
             WHERE id = ?1",
            at,
        ),
        (Event::Frozen { .. } | Event::MessageIsFrozen, Some(message)) => set_status(
            conn,
            message,
            "UPDATE messages SET frozen = 1,
                 status = CASE WHEN status = 'completed' THEN status ELSE 'frozen' END,
                 last_event_ms = coalesce(?2, last_event_ms)
             WHERE id = ?1",
            at,
        ),
        (Event::Unfrozen { .. }, Some(message)) => set_status(
            conn,
            message,
            "UPDATE messages SET frozen = 0,
                 status = CASE WHEN status = 'frozen' THEN 'deferred' ELSE status END,
                 last_event_ms = coalesce(?2, last_event_ms)
             WHERE id = ?1",
            at,
        ),
        (Event::Rejection(rejection), _) => rejected(conn, message, rejection, at),
        _ => Ok(()),
    }
}

fn set_status(
    conn: &Connection,
    message: i64,
    sql: &str,
    at: Option<i64>,
) -> Result<(), StoreError> {
    conn.prepare_cached(sql)
        .ctx(|| {
            Context::op("update message status")
                .table("messages")
                .key(message)
        })?
        .execute(params![message, at])
        .ctx(|| {
            Context::op("update message status")
                .table("messages")
                .key(message)
        })?;
    Ok(())
}

/// A field as text for SQLite: borrowed when it is valid UTF-8 (nearly
/// always), so binding it allocates nothing.
fn text(bytes: Option<&[u8]>) -> Option<Cow<'_, str>> {
    bytes.map(String::from_utf8_lossy)
}

/// Writes a reception's fields into the row of message `exim_id`: a new
/// row, or `known` (a placeholder, or the same line replayed). Returns the row.
fn received(
    conn: &Connection,
    exim_id: &str,
    known: Option<i64>,
    r: &Reception<'_>,
    at: Option<i64>,
) -> Result<i64, StoreError> {
    let context = || {
        Context::op("record reception")
            .table("messages")
            .key(exim_id)
    };
    let host = r.host.unwrap_or_default();
    let subject = r
        .subject
        .map(|s| String::from_utf8_lossy(&unescape_quoted(s)).into_owned());
    let (auth_user, local_user) = match (r.auth, r.host) {
        (Some(auth), _) => (text(Some(auth)), None),
        (None, None) => (None, text(r.user)),
        (None, Some(_)) => (None, None),
    };
    // ?1 is the exim id for a new row, the row id for a known one.
    let (sql, key): (&str, &dyn ToSql) = match &known {
        None => (
            "INSERT INTO messages
                 (exim_id, received_ms, sender, size, host_name, helo, host_ip, host_port,
                  protocol, tls_cipher, auth_user, local_user, subject, header_message_id,
                  parent_exim_id, last_event_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?2)",
            &exim_id,
        ),
        Some(id) => (
            "UPDATE messages SET
                 received_ms = ?2, sender = ?3, size = ?4, host_name = ?5, helo = ?6,
                 host_ip = ?7, host_port = ?8, protocol = ?9, tls_cipher = ?10,
                 auth_user = ?11, local_user = ?12, subject = ?13, header_message_id = ?14,
                 parent_exim_id = ?15,
                 last_event_ms = max(coalesce(last_event_ms, ?2), coalesce(?2, last_event_ms))
             WHERE id = ?1",
            id,
        ),
    };
    conn.prepare_cached(sql)
        .ctx(context)?
        .execute(params![
            key,
            at,
            String::from_utf8_lossy(r.sender),
            r.size_bytes().and_then(|s| i64::try_from(s).ok()),
            text(host.name),
            text(host.helo),
            text(host.ip),
            host.port_number(),
            text(r.protocol),
            text(r.tls.cipher),
            auth_user,
            local_user,
            subject,
            text(r.header_message_id),
            r.bounce_of.map(|id| id.as_str().to_owned()),
        ])
        .ctx(context)?;
    Ok(known.unwrap_or_else(|| conn.last_insert_rowid()))
}

/// The row of recipient `address` (the envelope recipient) of `message`,
/// created if needed. Looked up first: most calls are deliveries to a known
/// recipient, and an upsert would rewrite its row and indexes each time.
fn recipient(conn: &Connection, message: i64, address: &[u8]) -> Result<i64, StoreError> {
    let address = String::from_utf8_lossy(address);
    let context = || {
        Context::op("record recipient")
            .table("recipients")
            .key(&address)
    };
    let known = conn
        .prepare_cached("SELECT id FROM recipients WHERE message_id = ?1 AND address = ?2")
        .ctx(context)?
        .query_row(params![message, address.as_ref()], |row| row.get(0))
        .optional()
        .ctx(context)?;
    if let Some(id) = known {
        return Ok(id);
    }
    conn.prepare_cached("INSERT INTO recipients (message_id, address) VALUES (?1, ?2)")
        .ctx(context)?
        .execute(params![message, address.as_ref()])
        .ctx(context)?;
    Ok(conn.last_insert_rowid())
}

fn attempted(
    conn: &Connection,
    message: i64,
    d: &Delivery<'_>,
    at: Option<i64>,
) -> Result<(), StoreError> {
    let recipient = recipient(conn, message, d.address.recipient())?;
    let (outcome, recipient_status, message_status) = match d.flag {
        DeliveryFlag::Delivered
        | DeliveryFlag::DeliveredMore
        | DeliveryFlag::Cutthrough
        | DeliveryFlag::Suppressed => ("delivered", "delivered", None),
        DeliveryFlag::Deferred => ("deferred", "deferred", Some("deferred")),
        DeliveryFlag::Failed => ("failed", "bounced", None),
    };
    let host: Host<'_> = d.host.unwrap_or_default();
    let context = || {
        Context::op("record delivery attempt")
            .table("delivery_attempts")
            .key(message)
    };
    conn.prepare_cached(
        "INSERT INTO delivery_attempts
             (message_id, recipient_id, flag, attempted_ms, final_address, outcome, router,
              transport, host_name, host_ip, host_port, tls_cipher, cert_verified, confirmation,
              smtp_code, error_text, queue_time_ms, delivery_time_ms, shadow, cutthrough, suppressed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)",
    )
    .ctx(context)?
    .execute(params![
        message,
        recipient,
        d.flag.symbol(),
        at.unwrap_or(0),
        String::from_utf8_lossy(d.address.final_address),
        outcome,
        text(d.router),
        text(d.transport),
        text(host.name),
        text(host.ip),
        host.port_number(),
        text(d.tls.cipher),
        d.tls.certificate_verified.map(|cv| cv == b"yes" || cv == b"dane"),
        d.confirmation.map(|c| String::from_utf8_lossy(&unescape_quoted(c)).into_owned()),
        d.smtp_code.map(|c| match c.enhanced {
            Some(enhanced) => format!("{} {}", c.code, String::from_utf8_lossy(enhanced)),
            None => c.code.to_string(),
        }),
        text(d.error),
        d.queue_time.and_then(|t| t.millis),
        d.delivery_time.and_then(|t| t.millis),
        d.shadow_transport.is_some(),
        d.flag == DeliveryFlag::Cutthrough,
        d.flag == DeliveryFlag::Suppressed,
    ])
    .ctx(context)?;
    // A final disposition is never undone by a later deferral line.
    let context = || {
        Context::op("update recipient status")
            .table("recipients")
            .key(recipient)
    };
    conn.prepare_cached(
        "UPDATE recipients SET
             status = CASE WHEN status IN ('delivered', 'bounced') AND ?2 = 'deferred' THEN status ELSE ?2 END,
             final_address = ?3, parent_address = coalesce(?4, parent_address),
             last_attempt_ms = ?5,
             delivered_ms = CASE WHEN ?2 = 'delivered' THEN ?5 ELSE delivered_ms END
         WHERE id = ?1",
    )
    .ctx(context)?
    .execute(params![
        recipient,
        recipient_status,
        String::from_utf8_lossy(d.address.final_address),
        text(d.address.parents),
        at,
    ])
    .ctx(context)?;
    let context = || {
        Context::op("update message status")
            .table("messages")
            .key(message)
    };
    conn.prepare_cached(
        "UPDATE messages SET
             status = CASE WHEN ?2 IS NOT NULL AND status IN ('received', 'deferred') THEN ?2 ELSE status END,
             last_event_ms = coalesce(?3, last_event_ms)
         WHERE id = ?1",
    )
    .ctx(context)?
    .execute(params![message, message_status, at])
    .ctx(context)?;
    Ok(())
}

fn rejected(
    conn: &Connection,
    message: Option<i64>,
    r: &Rejection<'_>,
    at: Option<i64>,
) -> Result<(), StoreError> {
    let host = r.host.unwrap_or_default();
    let context = || Context::op("record rejection").table("rejections");
    conn.prepare_cached(
        "INSERT INTO rejections
             (message_id, rejected_ms, stage, host_name, helo, host_ip, sender,
              recipient, reason, smtp_code, temporary)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )
    .ctx(context)?
    .execute(params![
        message,
        at.unwrap_or(0),
        r.stage.name(),
        text(host.name),
        text(host.helo),
        text(host.ip),
        text(r.sender),
        text(r.recipient),
        String::from_utf8_lossy(r.reason),
        r.smtp_code.map(|c| c.code.to_string()),
        r.temporary,
    ])
    .ctx(context)?;
    if let Some(message) = message {
        // Refused after DATA: the message never entered the queue.
        set_status(
            conn,
            message,
            "UPDATE messages SET status = 'rejected', last_event_ms = coalesce(?2, last_event_ms)
             WHERE id = ?1 AND status = 'received' AND received_ms IS NULL",
            at,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_line;

    /// Applies lines as the writer would.
    fn apply_lines(lines: &[&str]) -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::store::migrate(&mut conn).unwrap();
        conn.execute_batch(
            "PRAGMA foreign_keys = ON;
             INSERT INTO log_sources (id, fingerprint, path, first_seen_ms) VALUES (1, x'00', 'test', 0);",
        )
        .unwrap();
        let mut ids = MessageIds::default();
        for line in lines {
            let entry = parse_line(line.as_bytes());
            let at = entry.prefix.map(|p| p.timestamp.local_ms());
            let message = ids.row_for(&conn, &entry, at).unwrap();
            apply(&conn, &entry, message, at).unwrap();
        }
        conn
    }

    fn message(conn: &Connection, exim_id: &str) -> (String, i64, Option<i64>) {
        conn.query_row(
            "SELECT status, frozen, received_ms FROM messages WHERE exim_id = ?1",
            [exim_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
    }

    fn recipients(conn: &Connection, exim_id: &str) -> Vec<(String, Option<String>, String)> {
        conn.prepare(
            "SELECT r.address, r.final_address, r.status FROM recipients r
             JOIN messages m ON m.id = r.message_id WHERE m.exim_id = ?1 ORDER BY r.id",
        )
        .unwrap()
        .query_map([exim_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    const ID: &str = "1smkL5-00000000e65-24eQ";

    #[test]
    fn received_deferred_then_delivered_then_completed() {
        let conn = apply_lines(&[
            "2024-01-01 10:00:00 1smkL5-00000000e65-24eQ <= a@example.com H=(x) [192.0.2.1] P=esmtp S=100 for b@example.net c@example.net",
            "2024-01-01 10:00:01 1smkL5-00000000e65-24eQ == b@example.net R=dnslookup T=remote_smtp defer (-44): 451 4.7.1 later",
        ]);
        assert_eq!(message(&conn, ID).0, "deferred");
        assert_eq!(recipients(&conn, ID)[0].2, "deferred");
        assert_eq!(recipients(&conn, ID)[1].2, "pending");
        let conn2 = apply_lines(&[
            "2024-01-01 10:00:00 1smkL5-00000000e65-24eQ <= a@example.com H=(x) [192.0.2.1] P=esmtp S=100 for b@example.net c@example.net",
            "2024-01-01 10:00:01 1smkL5-00000000e65-24eQ == b@example.net R=dnslookup T=remote_smtp defer (-44): 451 4.7.1 later",
            "2024-01-01 10:05:00 1smkL5-00000000e65-24eQ => b@example.net R=dnslookup T=remote_smtp H=mx [192.0.2.2] C=\"250 OK\"",
            "2024-01-01 10:05:00 1smkL5-00000000e65-24eQ -> c@example.net R=dnslookup T=remote_smtp H=mx [192.0.2.2] C=\"250 OK\"",
            "2024-01-01 10:05:01 1smkL5-00000000e65-24eQ == b@example.net R=dnslookup T=remote_smtp defer (-44): a stale deferral",
            "2024-01-01 10:05:02 1smkL5-00000000e65-24eQ Completed",
        ]);
        assert_eq!(message(&conn2, ID).0, "completed");
        let statuses: Vec<String> = recipients(&conn2, ID).into_iter().map(|r| r.2).collect();
        assert_eq!(
            statuses,
            ["delivered", "delivered"],
            "a deferral never undoes a delivery"
        );
        let attempts: i64 = conn2
            .query_row("SELECT count(*) FROM delivery_attempts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(attempts, 4);
    }

    #[test]
    fn bounce_creates_a_linked_bounce_message_that_freezes() {
        let conn = apply_lines(&[
            "2024-01-01 10:00:00 1WQstC-0000qD-Vl <= a@example.com U=a P=local S=10 for x@example.org",
            "2024-01-01 10:00:01 1WQstC-0000qD-Vl ** x@example.org R=dnslookup T=remote_smtp: 550 5.1.1 unknown",
            "2024-01-01 10:00:01 1WQstD-0000qH-EP <= <> R=1WQstC-0000qD-Vl U=Debian-exim P=local S=1579 for a@example.com",
            "2024-01-01 10:00:01 1WQstC-0000qD-Vl Completed",
            "2024-01-01 10:00:02 1WQstD-0000qH-EP ** a@example.com: Unrouteable address",
            "2024-01-01 10:00:02 1WQstD-0000qH-EP Frozen (delivery error message)",
        ]);
        assert_eq!(message(&conn, "1WQstC-0000qD-Vl").0, "completed");
        assert_eq!(recipients(&conn, "1WQstC-0000qD-Vl")[0].2, "bounced");
        let (status, frozen, _) = message(&conn, "1WQstD-0000qH-EP");
        assert_eq!((status.as_str(), frozen), ("frozen", 1));
        let parent: String = conn
            .query_row(
                "SELECT parent_exim_id FROM messages WHERE exim_id = '1WQstD-0000qH-EP'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(parent, "1WQstC-0000qD-Vl");
        let sender: String = conn
            .query_row(
                "SELECT sender FROM messages WHERE exim_id = '1WQstD-0000qH-EP'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(sender, "<>");
    }

    #[test]
    fn lines_before_the_reception_make_a_placeholder_it_fills_in() {
        let conn = apply_lines(&[
            "2024-01-01 10:00:00 1smkL5-00000000e65-24eQ >> b@example.net R=all T=smtp H=mx [192.0.2.2] C=\"250 OK\"",
        ]);
        let (status, _, received) = message(&conn, ID);
        assert_eq!(
            (status.as_str(), received),
            ("received", None),
            "a placeholder"
        );
        let conn = apply_lines(&[
            "2024-01-01 10:00:00 1smkL5-00000000e65-24eQ >> b@example.net R=all T=smtp H=mx [192.0.2.2] C=\"250 OK\"",
            "2024-01-01 10:00:00 1smkL5-00000000e65-24eQ <= a@example.com H=(x) [192.0.2.1] P=esmtp S=100 for b@example.net",
        ]);
        let (_, _, received) = message(&conn, ID);
        assert!(received.is_some());
        assert_eq!(
            recipients(&conn, ID),
            [(
                "b@example.net".to_owned(),
                Some("b@example.net".to_owned()),
                "delivered".to_owned()
            )]
        );
    }

    #[test]
    fn frozen_then_thawed_and_rejected_after_data() {
        let conn = apply_lines(&[
            "2024-01-01 10:00:00 1smkL5-00000000e65-24eQ <= a@example.com U=a P=local S=10 for b@example.net",
            "2024-01-01 10:00:01 1smkL5-00000000e65-24eQ Message is frozen",
        ]);
        assert_eq!(
            message(&conn, ID),
            ("frozen".to_owned(), 1, Some(1_704_103_200_000))
        );
        let conn = apply_lines(&[
            "2024-01-01 10:00:00 1smkL5-00000000e65-24eQ <= a@example.com U=a P=local S=10 for b@example.net",
            "2024-01-01 10:00:01 1smkL5-00000000e65-24eQ Message is frozen",
            "2024-01-01 10:00:02 1smkL5-00000000e65-24eQ Unfrozen by forced delivery",
        ]);
        assert_eq!(
            (message(&conn, ID).0.as_str(), message(&conn, ID).1),
            ("deferred", 0)
        );
        let conn = apply_lines(&[
            "2024-01-01 10:00:00 1xWZzU-0001uz-1g H=(vm) [127.0.0.1]:46076 F=<g@outside.example> rejected after DATA: content rejected",
        ]);
        assert_eq!(message(&conn, "1xWZzU-0001uz-1g").0, "rejected");
        let (stage, sender, temporary): (String, String, i64) = conn
            .query_row("SELECT stage, sender, temporary FROM rejections", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!(
            (stage.as_str(), sender.as_str(), temporary),
            ("after_data", "g@outside.example", 0)
        );
    }

    #[test]
    fn an_alias_delivered_to_two_final_addresses_is_one_recipient_with_two_attempts() {
        let conn = apply_lines(&[
            "2024-01-01 10:00:00 1smkL5-00000000e65-24eQ <= a@example.com U=a P=local S=10 for list@example.org",
            "2024-01-01 10:00:01 1smkL5-00000000e65-24eQ => bob <list@example.org> R=aliases T=local_delivery",
            "2024-01-01 10:00:01 1smkL5-00000000e65-24eQ -> carol <list@example.org> R=aliases T=local_delivery",
        ]);
        assert_eq!(
            recipients(&conn, ID),
            [(
                "list@example.org".to_owned(),
                Some("carol".to_owned()),
                "delivered".to_owned()
            )]
        );
        let finals: Vec<String> = conn
            .prepare("SELECT final_address FROM delivery_attempts ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(finals, ["bob", "carol"]);
    }
}
