//! The Exim main log parser: one line of bytes in, one typed [`Entry`] out.
//!
//! Pure: no I/O, no allocation on the way (fields borrow from the line),
//! and total: every input, however malformed, gives an entry; a line that
//! is not understood is [`Event::Unrecognised`] and keeps whatever prefix
//! could be read. The grammar follows Exim's own `log.c`, `receive.c` and
//! `deliver.c`; see `shared/docs/exim-log-format.md` for the reference.
//!
//! Strategy: [`prefix`] reads `timestamp [pid] [id]`; the body is then
//! dispatched on its first bytes: a two-character flag (`<=` `=>` `**` ...),
//! a message state line, a line led by the remote host (`H=...`), or a
//! fixed phrase (`SMTP connection`, `Start queue run` ...). Field tags are
//! recognised only from the known list, and tag reading stops where free
//! text (an error message) begins.

mod calendar;
mod entry;
mod fields;
mod host_ident;
mod internals;
mod kind;
mod message;
mod prefix;
mod problem;
mod rejection;
mod render;
mod session;
mod shape;
mod state;

pub use calendar::{civil_from_days, format_seconds};
pub use entry::{
    AddressPart, Delivery, DeliveryFlag, Entry, Event, EximDuration, Host, MessageId, Prefix,
    Problem, Reception, Rejection, Session, SmtpCode, Stage, Timestamp, Tls,
};
pub use fields::parse_decimal;
pub use fields::{quoted_text, unescape_quoted};
pub use kind::Kind;
pub use prefix::whole_message_id;
pub use render::render;
pub use shape::shape;

/// Parses one log line (without its newline). Never fails, never panics.
pub fn parse_line(line: &[u8]) -> Entry<'_> {
    // A crash can leave a run of NUL bytes before the next real line.
    let line = trim_leading_nuls(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match prefix::prefix(line) {
        Ok((body, prefix)) => match syslog_payload(body) {
            // rsyslog and syslog-ng templates that start with an ISO date:
            // `2019-10-22 03:39:17 host exim[29786]: body`.
            Some(inner) => wrapped(inner, Some(prefix)),
            None => Entry {
                event: body_event(body, prefix.message_id.is_some()),
                prefix: Some(prefix),
            },
        },
        Err(_) => without_prefix(line),
    }
}

fn trim_leading_nuls(line: &[u8]) -> &[u8] {
    let start = line.iter().position(|&b| b != 0).unwrap_or(line.len());
    &line[start..]
}

/// A line that does not start with an Exim timestamp: a continuation, a
/// syslog-wrapped Exim line, or something foreign.
fn without_prefix(line: &[u8]) -> Entry<'_> {
    match line.first() {
        None => {
            return Entry {
                prefix: None,
                event: Event::Blank,
            };
        }
        Some(b' ' | b'\t') => {
            return Entry {
                prefix: None,
                event: Event::Continuation { text: line },
            };
        }
        Some(b'#') => {
            return Entry {
                prefix: None,
                event: Event::Comment { text: line },
            };
        }
        Some(_) => {}
    }
    if let Some(inner) = syslog_payload(line) {
        return wrapped(inner, None);
    }
    if is_reject_log_header(line) {
        return Entry {
            prefix: None,
            event: Event::Continuation { text: line },
        };
    }
    Entry {
        prefix: None,
        event: Event::Unrecognised { body: line },
    }
}

/// The reject log's lines after a rejection (log.c, `rejected_header`):
/// `Envelope-from: <s>`, `Envelope-to: <r>`, then each header as Exim's
/// type letter (or `*` for a deleted one), a space and the header
/// (`P Received: from ...`, `F From: ...`).
fn is_reject_log_header(line: &[u8]) -> bool {
    if line.starts_with(b"Envelope-from: <") || line.starts_with(b"Envelope-to: <") {
        return true;
    }
    let [kind, b' ', rest @ ..] = line else {
        return false;
    };
    let name_len = rest
        .iter()
        .position(|&b| !(b.is_ascii_graphic() && b != b':'))
        .unwrap_or(rest.len());
    (kind.is_ascii_uppercase() || *kind == b'*')
        && name_len > 0
        && rest.get(name_len) == Some(&b':')
}

/// An Exim line inside a syslog record: with its own timestamp, or (with
/// `syslog_timestamp = false`) the body alone, maybe after `[pid] `.
fn wrapped<'a>(inner: &'a [u8], outer: Option<Prefix<'a>>) -> Entry<'a> {
    if let Ok((body, prefix)) = prefix::prefix(inner) {
        return Entry {
            event: body_event(body, prefix.message_id.is_some()),
            prefix: Some(prefix),
        };
    }
    let body = strip_pid(inner);
    let (body, message_id) = match prefix::message_id(body) {
        Ok((rest, id)) if rest.first() == Some(&b' ') => (&rest[1..], Some(id)),
        _ => (body, None),
    };
    let prefix = outer.map(|outer| Prefix {
        message_id: message_id.or(outer.message_id),
        ..outer
    });
    Entry {
        event: body_event(body, message_id.is_some()),
        prefix,
    }
}

/// Finds ` exim[`: built once, as `memmem::find` builds a searcher on every
/// call, and this search runs on every line (2% of ingest on a log of
/// short lines).
static SYSLOG_TAG: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b" exim["));

/// The text after `exim[pid]: ` in a line written by a syslog daemon.
fn syslog_payload(line: &[u8]) -> Option<&[u8]> {
    let head = &line[..line.len().min(128)];
    let at = SYSLOG_TAG.find(head)?;
    let rest = &line[at + 6..];
    let close = memchr::memchr(b']', rest)?;
    if close == 0 || !rest[..close].iter().all(u8::is_ascii_digit) {
        return None;
    }
    rest[close + 1..].strip_prefix(b": ")
}

fn strip_pid(body: &[u8]) -> &[u8] {
    if body.first() == Some(&b'[')
        && let Some(close) = memchr::memchr(b']', body)
        && close > 1
        && body[1..close].iter().all(u8::is_ascii_digit)
    {
        return body.get(close + 2..).unwrap_or_default();
    }
    body
}

/// Classifies the body after the prefix.
fn body_event(body: &[u8], has_id: bool) -> Event<'_> {
    if body.len() >= 3 && body[2] == b' ' {
        let rest = &body[3..];
        let event = match &body[..2] {
            b"<=" => Some(message::reception(rest, false)),
            b"(=" => Some(message::reception(rest, true)),
            b"=>" => Some(message::delivery(rest, DeliveryFlag::Delivered)),
            b"->" => Some(message::delivery(rest, DeliveryFlag::DeliveredMore)),
            b">>" => Some(message::delivery(rest, DeliveryFlag::Cutthrough)),
            b"*>" => Some(message::delivery(rest, DeliveryFlag::Suppressed)),
            // mua_wrapper's whole-message failure names no address.
            b"**" if rest.starts_with(b"mua_wrapper is set") => {
                Some(Event::MessageNote { detail: body })
            }
            b"**" => Some(message::delivery(rest, DeliveryFlag::Failed)),
            b"==" => Some(message::delivery(rest, DeliveryFlag::Deferred)),
            _ => None,
        };
        if let Some(event) = event {
            return event;
        }
    }
    if starts_with_host_or_ident(body)
        && let Some(event) = session::host_line(body)
    {
        return event;
    }
    if let Some(event) = problem::problem_start(body) {
        return event;
    }
    if has_id && let Some(event) = state::state(body) {
        return event;
    }
    session::phrase_line(body)
        .or_else(|| problem::problem_phrase(body))
        .or_else(|| internals::internal(body))
        .unwrap_or(Event::Unrecognised { body })
}

fn starts_with_host_or_ident(body: &[u8]) -> bool {
    [&b"H="[..], b"U=", b"F=", b"DS H="]
        .iter()
        .any(|lead| body.starts_with(lead))
}

#[cfg(test)]
mod tests;
