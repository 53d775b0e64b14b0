//! Delivery attempts on their way to the store: a recipient's first in its
//! own row, the later ones a row of `attempts`, one per `=>`, `->`, `>>`,
//! `*>`, `==` or `**` line, its repeated texts as ids of `texts`, and
//! the error text without the recipient's own address (so one text serves
//! every recipient a remote host refused alike).

use deadpool_sqlite::rusqlite::types::Null;
use deadpool_sqlite::rusqlite::{Connection, Statement, ToSql};

use crate::parse::{Delivery, DeliveryFlag, Host};
use crate::store::repo::{HELD_ATTEMPT_COLUMNS, bind_all, insert_rows};
use crate::store::{StoreError, TextIds};

/// An attempt's own columns, in the order [`AttemptRow::bind_fields`]
/// binds them: in `attempts` (after the message and the recipient, before
/// the cutthrough and suppressed marks), and as [`HELD_ATTEMPT_COLUMNS`]
/// where a recipient's row holds its first attempt.
const ATTEMPT_FIELDS: [&str; HELD_ATTEMPT_COLUMNS.len()] = [
    "flag",
    "attempted_ms",
    "final_address",
    "router_id",
    "transport_id",
    "host_name_id",
    "host_ip_id",
    "host_port",
    "tls_cipher_id",
    "cert_verified",
    "smtp_code_id",
    "error_text_id",
    "error_address_at",
    "queue_time_ms",
    "delivery_time_ms",
    "shadow",
];

/// A delivery attempt as its row will be written: repeated texts already
/// ids of `texts` (a third of the size of the parsed line, which a batch
/// would otherwise keep for every attempt until its flush).
#[derive(Debug)]
pub(super) struct AttemptRow<'b> {
    message: i64,
    recipient: i64,
    flag: DeliveryFlag,
    at: i64,
    /// Only when a router rewrote the recipient's address.
    final_address: Option<&'b [u8]>,
    router: Option<i64>,
    transport: Option<i64>,
    host_name: Option<i64>,
    host_ip: Option<i64>,
    host_port: Option<u16>,
    tls_cipher: Option<i64>,
    cert_verified: Option<bool>,
    smtp_code: Option<i64>,
    error_text: Option<i64>,
    /// Where the recipient's address was cut out of the error text, in
    /// characters (see [`error_template`]).
    error_address_at: Option<i64>,
    queue_time_ms: Option<i64>,
    delivery_time_ms: Option<i64>,
    shadow: bool,
}

impl<'b> AttemptRow<'b> {
    /// The row of `d`, an attempt of recipient row `recipient` of message
    /// row `message` at `at`; looks up (or adds) its texts.
    pub(super) fn of(
        conn: &Connection,
        texts: &mut TextIds,
        (message, recipient, at): (i64, i64, Option<i64>),
        d: &Delivery<'b>,
    ) -> Result<Self, StoreError> {
        let host: Host<'_> = d.host.unwrap_or_default();
        let smtp_code = d.smtp_code.map(|c| c.to_text());
        let error = d
            .error
            .map(|error| error_template(error, d.address.final_address));
        Ok(AttemptRow {
            message,
            recipient,
            flag: d.flag,
            at: at.unwrap_or(0),
            // The recipient row holds the address; repeat it only when a
            // router rewrote it.
            final_address: (d.address.final_address != d.address.recipient())
                .then_some(d.address.final_address),
            router: texts.optional(conn, d.router)?,
            transport: texts.optional(conn, d.transport)?,
            host_name: texts.optional(conn, host.name)?,
            host_ip: texts.optional(conn, host.ip)?,
            host_port: host.port_number(),
            tls_cipher: texts.optional(conn, d.tls.cipher)?,
            cert_verified: d
                .tls
                .certificate_verified
                .map(|cv| cv == b"yes" || cv == b"dane"),
            smtp_code: texts.optional(conn, smtp_code.as_deref().map(str::as_bytes))?,
            error_text: texts.optional(
                conn,
                error.as_ref().map(|(template, _)| template.as_bytes()),
            )?,
            error_address_at: error.and_then(|(_, at)| at),
            queue_time_ms: d.queue_time.and_then(|t| t.millis),
            delivery_time_ms: d.delivery_time.and_then(|t| t.millis),
            shadow: d.shadow_transport.is_some(),
        })
    }
}

/// Addresses shorter than this are left in error texts: too likely to
/// match something else in the text.
const MIN_CUT_ADDRESS: usize = 3;

/// An error text as stored: with the first occurrence of the address it
/// was delivered to cut out, and where (in characters, as SQLite's
/// `substr` counts). Remote servers name the recipient in their replies
/// (`... after RCPT TO:<bob@example.org>: 550 5.1.1 User unknown`), so
/// without the address a host has a few distinct errors instead of one per
/// recipient. The view `delivery_attempts` puts the address back.
fn error_template(error: &[u8], address: &[u8]) -> (String, Option<i64>) {
    let text = String::from_utf8_lossy(error).into_owned();
    let address = String::from_utf8_lossy(address);
    if address.len() < MIN_CUT_ADDRESS {
        return (text, None);
    }
    match text.find(address.as_ref()) {
        Some(at) => {
            let chars = i64::try_from(text[..at].chars().count()).ok();
            let template = format!("{}{}", &text[..at], &text[at + address.len()..]);
            (template, chars)
        }
        None => (text, None),
    }
}

impl AttemptRow<'_> {
    /// Binds the attempt's own columns ([`ATTEMPT_FIELDS`]) to parameters
    /// `first`, `first + 1`...
    pub(super) fn bind_fields(
        &self,
        statement: &mut Statement<'_>,
        first: usize,
    ) -> deadpool_sqlite::rusqlite::Result<()> {
        let values: [&dyn ToSql; 16] = [
            &self.flag.symbol(),
            &self.at,
            &self.final_address.map(String::from_utf8_lossy),
            &self.router,
            &self.transport,
            &self.host_name,
            &self.host_ip,
            &self.host_port,
            &self.tls_cipher,
            &self.cert_verified,
            &self.smtp_code,
            &self.error_text,
            &self.error_address_at,
            &self.queue_time_ms,
            &self.delivery_time_ms,
            &self.shadow,
        ];
        bind_all(statement, first, values)
    }
}

/// Binds NULL to the 16 parameters from `first` on: a recipient row that
/// holds no attempt.
pub(super) fn bind_no_attempt(
    statement: &mut Statement<'_>,
    first: usize,
) -> deadpool_sqlite::rusqlite::Result<()> {
    bind_all(
        statement,
        first,
        [&Null as &dyn ToSql; HELD_ATTEMPT_COLUMNS.len()],
    )
}

/// Inserts the attempts after each recipient's first.
pub(super) fn attempts(conn: &Connection, attempts: &[AttemptRow<'_>]) -> Result<(), StoreError> {
    let columns: Vec<&str> = ["message_id", "recipient_id"]
        .into_iter()
        .chain(ATTEMPT_FIELDS)
        .chain(["cutthrough", "suppressed"])
        .collect();
    insert_rows(
        conn,
        "attempts",
        &columns,
        attempts,
        |statement, first, a| {
            bind_all(statement, first, [&a.message, &a.recipient])?;
            a.bind_fields(statement, first + 2)?;
            bind_all(
                statement,
                first + 2 + ATTEMPT_FIELDS.len(),
                [
                    &(a.flag == DeliveryFlag::Cutthrough),
                    &(a.flag == DeliveryFlag::Suppressed),
                ],
            )
        },
    )
}

#[cfg(test)]
mod tests {
    use super::error_template;

    #[test]
    fn an_error_text_loses_its_recipient_address_and_says_where() {
        let error = "SMTP error from remote mail server after RCPT TO:<bob@example.org>: 550 5.1.1 <bob@example.org> unknown";
        let (template, at) = error_template(error.as_bytes(), b"bob@example.org");
        assert_eq!(
            template,
            "SMTP error from remote mail server after RCPT TO:<>: 550 5.1.1 <bob@example.org> unknown"
        );
        assert_eq!(at, Some(50));
        // As the view puts it back: characters, not bytes.
        let (template, at) =
            error_template("réponse <ü@x.example>".as_bytes(), "ü@x.example".as_bytes());
        assert_eq!((template.as_str(), at), ("réponse <>", Some(9)));
        assert_eq!(
            error_template(b"retry timeout exceeded", b"bob@example.org"),
            ("retry timeout exceeded".to_owned(), None)
        );
        assert_eq!(error_template(b"a b c", b"b"), ("a b c".to_owned(), None));
    }
}
