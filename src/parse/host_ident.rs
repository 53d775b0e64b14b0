//! `host_and_ident()`'s text as Exim writes it before a session line's
//! detail: `[H=]name (helo) [ip]:port`, or a local login, and the tags
//! after it (`I= U= Ci= D= X= CV= DN= SNI= F= A= P=`).

use super::entry::{Host, Session, Tls};
use super::fields::{after, bracketed, duration, host, quoted, token};

/// A host and the tags after it (`I= U= Ci= D= X= CV= DN= SNI= F= A= P=`),
/// up to the first word that is not one: the detail.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct HostAndIdent<'a> {
    pub(super) host: Option<Host<'a>>,
    pub(super) user: Option<&'a [u8]>,
    pub(super) interface: Option<&'a [u8]>,
    pub(super) connection_id: Option<&'a [u8]>,
    pub(super) duration: Option<&'a [u8]>,
    pub(super) sender: Option<&'a [u8]>,
    pub(super) tls: Tls<'a>,
    pub(super) detail: &'a [u8],
}

impl<'a> HostAndIdent<'a> {
    pub(super) fn session(&self) -> Session<'a> {
        Session {
            host: self.host,
            user: self.user,
            interface: self.interface,
            connection_id: self.connection_id,
            duration: self.duration.map(duration),
            detail: self.detail,
        }
    }
}

/// Reads `[H=]host` (or a local login) and the tags after it.
/// Long because it is one flat pass over the session tags, one arm each.
pub(super) fn host_and_ident(input: &[u8]) -> HostAndIdent<'_> {
    let mut parsed = HostAndIdent::default();
    let mut rest = input;
    if let Some(value) = after(rest, b"DS ") {
        rest = value;
    }
    let starts_with_tag = [&b"U="[..], b"F=", b"Ci=", b"I="]
        .iter()
        .any(|tag| rest.starts_with(tag));
    if !starts_with_tag {
        let with_prefix = after(rest, b"H=");
        if let Some((h, after_host)) = host(with_prefix.unwrap_or(rest)) {
            if h.ip.is_none() && h.helo.is_none() && with_prefix.is_none() {
                // `from root D=..`: a local caller, not a host.
                parsed.user = h.name;
            } else {
                parsed.host = Some(h);
            }
            rest = after_host;
        }
    }
    loop {
        rest = rest.strip_prefix(b" ").unwrap_or(rest);
        if rest.starts_with(b"DN=\"") {
            let (dn, after_dn) = quoted(&rest[3..]);
            parsed.tls.peer_dn = Some(dn);
            rest = after_dn;
            if let Some(detail) = after(rest, b": ") {
                rest = detail;
                break;
            }
            continue;
        }
        if rest.starts_with(b"F=<") {
            let (sender, after_sender) = bracketed(&rest[2..]);
            parsed.sender = Some(sender);
            rest = after_sender;
            continue;
        }
        if parsed.host.is_none()
            && parsed.user.is_none()
            && let Some(value) = after(rest, b"H=")
            && let Some((h, after_host)) = host(value)
        {
            parsed.host = Some(h);
            rest = after_host;
            continue;
        }
        let (word, next) = token(rest);
        let Some(eq) = memchr::memchr(b'=', word) else {
            if word == b"DS" {
                rest = next;
                continue;
            }
            break;
        };
        let (word, ends_tags) = match word.strip_suffix(b":") {
            Some(stripped) => (stripped, true),
            None => (word, false),
        };
        let (key, value) = (&word[..eq], &word[eq + 1..]);
        match key {
            b"I" => parsed.interface = Some(value),
            b"U" => parsed.user = Some(value),
            b"Ci" => parsed.connection_id = Some(value),
            b"D" => parsed.duration = Some(value),
            b"X" => parsed.tls.cipher = Some(value),
            b"CV" => parsed.tls.certificate_verified = Some(value),
            b"SNI" => parsed.tls.sni = Some(value),
            b"F" => parsed.sender = Some(value),
            b"A" | b"P" => {}
            _ => break,
        }
        rest = next;
        if ends_tags {
            break;
        }
    }
    parsed.detail = rest;
    parsed
}
