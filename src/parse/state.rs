//! Message state lines: what carries a message id and no flag (`Completed`,
//! `Frozen`, `removed by`, spool notes, `no immediate delivery`, DKIM, a
//! host's error for the message), read into their events.

use super::entry::{Event, Host, Session};
use super::fields::{after, duration, find, host, smtp_code, token};

/// Lines that carry a message id and no flag. `None` when the body is none
/// of the known message state lines.
pub fn state(body: &[u8]) -> Option<Event<'_>> {
    if let Some(rest) = after(body, b"Completed") {
        let queue_time = after(rest, b" QT=").map(|value| duration(token(value).0));
        if rest.is_empty() || queue_time.is_some() {
            return Some(Event::Completed { queue_time });
        }
    }
    if body == b"Message is frozen" {
        return Some(Event::MessageIsFrozen);
    }
    if let Some(rest) = after(body, b"Frozen") {
        let reason = rest.strip_prefix(b" ").filter(|r| !r.is_empty());
        return Some(Event::Frozen { reason });
    }
    if body.starts_with(b"frozen by ") {
        return Some(Event::Frozen { reason: Some(body) });
    }
    if let Some(by) = after(body, b"Unfrozen by ").or_else(|| after(body, b"unfrozen by ")) {
        return Some(Event::Unfrozen { by });
    }
    if body.starts_with(b"removed by ")
        || body.starts_with(b"cancelled by ")
        || body.starts_with(b"Message removed because")
    {
        return Some(Event::Removed { detail: body });
    }
    if body.starts_with(b"Spool file ") && find(body, b"is locked").is_some() {
        return Some(Event::SpoolLocked);
    }
    // Every other spool line: `Spool file <id>-D not found` (a queue runner
    // raced a delivery that already finished the message), read, write and
    // format errors. They report, and change nothing about the message.
    if body.starts_with(b"Spool ") {
        return Some(Event::MessageNote { detail: body });
    }
    if let Some(reason) = after(body, b"no immediate delivery: ") {
        return Some(Event::QueuedOnly { reason });
    }
    if let Some(detail) = after(body, b"DKIM: ") {
        return Some(Event::Dkim { detail });
    }
    if body.ends_with(b": error ignored") {
        return Some(Event::ErrorIgnored {
            address: &body[..body.len() - b": error ignored".len()],
        });
    }
    if MESSAGE_NOTES.iter().any(|note| body.starts_with(note))
        || is_named_note(body)
        || find(body, b" added by ").is_some() && body.starts_with(b"recipient ")
        || find(body, b" marked delivered by ").is_some() && body.starts_with(b"address ")
    {
        return Some(Event::MessageNote { detail: body });
    }
    match after(body, b"H=") {
        Some(rest) => host_error(rest),
        // Up to 4.89 the per-host error had no `H=`: `name [ip] error`.
        None if body.first() != Some(&b'[') => host_error(body),
        None => None,
    }
}

/// Message state lines kept as notes.
const MESSAGE_NOTES: [&[u8]; 10] = [
    b"original recipients ignored",
    // sa-exim, the common SpamAssassin local_scan, reports its verdicts so.
    b"SA: ",
    b"sender address changed to ",
    b"moved from input",
    b"using queue ",
    b"PRDR ",
    b"rescind the above message-accept",
    b"Child mail process returned status",
    b"internal error: ",
    b"peer close after all rcpt responses",
];

/// Message notes that start with a name or an address: `bob@ found in
/// headers`, `<bob@x>: pipe transport output: ...`, `remote_smtp:
/// delivering unencrypted to H=...`, `...: callout unencrypted to ...`.
/// Each test is guarded so that the common lines (a host's error) pay at
/// most one search.
fn is_named_note(body: &[u8]) -> bool {
    if body.starts_with(b"H=") {
        return false;
    }
    body.ends_with(b" found in headers")
        || body.first() == Some(&b'<') && find(body, b" transport output: ").is_some()
        || find(body, b" unencrypted to ").is_some_and(|at| {
            body[..at].ends_with(b": delivering") || body[..at].ends_with(b": callout")
        })
}

/// `H=host [ip]: error` or `H=host [ip] error`.
fn host_error(rest: &[u8]) -> Option<Event<'_>> {
    let (h, after_host): (Host<'_>, &[u8]) = host(rest)?;
    h.ip?;
    let error = after_host.strip_prefix(b": ").unwrap_or(after_host);
    if error.starts_with(b"TLS error on connection") {
        // tls-gnu.c: the client side's I/O error, logged after the host.
        return Some(Event::TlsError(Session {
            host: Some(h),
            user: None,
            interface: None,
            connection_id: None,
            duration: None,
            detail: error,
        }));
    }
    Some(Event::HostError {
        host: h,
        error,
        smtp_code: smtp_code(error),
    })
}
