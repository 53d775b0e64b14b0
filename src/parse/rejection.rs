//! Rejection lines: `[temporarily ]rejected WHAT[: reason]` after a host
//! (`smtp_handle_acl_fail()`), the ones without a leading host (`rejected
//! EHLO from ...`, `rejected MAIL from ...`), and a cutthrough target's
//! refusal, read into a [`Rejection`] with its stage.

use super::entry::{Event, Rejection, Stage};
use super::fields::{after, bracketed, find, smtp_code, token};
use super::host_ident::{HostAndIdent, host_and_ident};

/// `[temporarily ]rejected WHAT[: reason]`, `rejected by local_scan()`,
/// `dropped by ... ACL`.
pub(super) fn rejection<'a>(parsed: &HostAndIdent<'a>, detail: &'a [u8]) -> Option<Rejection<'a>> {
    // dcc.c writes `H=... F=<...>: rejected by DCC`.
    let detail = detail.strip_prefix(b": ").unwrap_or(detail);
    let (temporary, what) = if let Some(what) = after(detail, b"temporarily rejected ") {
        (true, what)
    } else if let Some(what) = after(detail, b"rejected ") {
        (false, what)
    } else if detail.starts_with(b"dropped by ") {
        return Some(rejection_of(parsed, Stage::Connect, false, None, detail));
    } else {
        return cutthrough_refusal(parsed, detail);
    };
    let mut recipient = None;
    let mut sender = parsed.sender;
    let (stage, reason) = if let Some(rest) = after(what, b"RCPT ") {
        let (address, reason) = argument(rest);
        recipient = Some(address);
        (Stage::Rcpt, reason)
    } else if let Some(rest) = after(what, b"MAIL ") {
        let (address, reason) = argument(rest);
        sender = sender.or(Some(address));
        (Stage::Mail, reason)
    } else if let Some(rest) = after(what, b"after DATA") {
        (Stage::AfterData, reason_after(rest))
    } else if let Some(rest) = after(what, b"DATA") {
        (Stage::Data, reason_after(rest))
    } else if let Some(rest) = after(what, b"during MIME ACL checks") {
        (Stage::Data, reason_after(rest))
    } else if let Some(rest) = after(what, b"by local_scan()") {
        (Stage::AfterData, reason_after(rest))
    } else if let Some(rest) = after(what, b"by non-SMTP ACL") {
        (Stage::Data, reason_after(rest))
    } else if let Some(rest) = after(what, b"EHLO or HELO ") {
        (Stage::Helo, reason_or_argument(rest))
    } else if let Some(rest) = after(what, b"connection in ") {
        (Stage::Connect, reason_or_argument(rest))
    } else if let Some(rest) = after(what, b"AUTH ") {
        (Stage::Auth, reason_or_argument(rest))
    } else if what.starts_with(b"by DCC") {
        (Stage::AfterData, what)
    } else {
        (Stage::Other, reason_or_argument(what))
    };
    Some(rejection_of(parsed, stage, temporary, recipient, reason).with_sender(sender))
}

/// The target of a cutthrough delivery refusing the message while its
/// client waits, which is then refused with the target's answer
/// (verify.c, `delivery_log` with a message): `ADDRESS F=<sender>
/// [P=<...>] tmp-reject from cutthrough after DATA: R=.. T=.. H=target
/// C="answer"`, or `rejected after DATA:` for a permanent refusal. The
/// reason is the target's answer.
fn cutthrough_refusal<'a>(parsed: &HostAndIdent<'a>, detail: &'a [u8]) -> Option<Rejection<'a>> {
    // The address, then `F=<`: tested first, so that a host's other lines
    // (errors, warnings) are not searched.
    if !token(detail).1.starts_with(b"F=<") {
        return None;
    }
    let (temporary, at) = [
        (true, &b" tmp-reject from cutthrough after DATA:"[..]),
        (false, b" rejected after DATA:"),
    ]
    .into_iter()
    .find_map(|(temporary, marker)| find(detail, marker).map(|at| (temporary, at)))?;
    let (recipient, fields) = token(&detail[..at]);
    let sender = after(fields, b"F=")?;
    let (sender, _) = bracketed(sender);
    let outcome = &detail[at + 1..];
    let reason = match find(outcome, b" C=\"") {
        Some(c) => {
            let answer = &outcome[c + 4..];
            answer.strip_suffix(b"\"").unwrap_or(answer)
        }
        None => outcome,
    };
    Some(
        rejection_of(parsed, Stage::AfterData, temporary, Some(recipient), reason)
            .with_sender(Some(sender)),
    )
}

fn rejection_of<'a>(
    parsed: &HostAndIdent<'a>,
    stage: Stage,
    temporary: bool,
    recipient: Option<&'a [u8]>,
    reason: &'a [u8],
) -> Rejection<'a> {
    Rejection {
        stage,
        temporary,
        host: parsed.host,
        user: parsed.user,
        sender: parsed.sender,
        recipient,
        tls: parsed.tls,
        reason,
        smtp_code: smtp_code(reason),
    }
}

impl<'a> Rejection<'a> {
    fn with_sender(mut self, sender: Option<&'a [u8]>) -> Self {
        self.sender = sender;
        self
    }
}

/// An SMTP argument (`<a@b>` or a bare word) and the reason after `: `.
fn argument(rest: &[u8]) -> (&[u8], &[u8]) {
    if rest.first() == Some(&b'<') {
        let (address, reason) = bracketed(rest);
        return (address, reason.strip_prefix(b": ").unwrap_or(reason));
    }
    match find(rest, b": ") {
        Some(colon) => (&rest[..colon], &rest[colon + 2..]),
        None => (rest, &[]),
    }
}

fn reason_after(rest: &[u8]) -> &[u8] {
    rest.strip_prefix(b": ")
        .or_else(|| rest.strip_prefix(b" PRDR: "))
        .unwrap_or(rest)
}

/// The reason after `: ` if there is one, else the whole text.
fn reason_or_argument(rest: &[u8]) -> &[u8] {
    match find(rest, b": ") {
        Some(colon) => &rest[colon + 2..],
        None => rest,
    }
}

/// `rejected EHLO from ...`, `rejected from <sender> ...`, `rejected MAIL
/// FROM:<...> ...`: rejections without a leading host.
pub(super) fn local_rejection(body: &[u8]) -> Option<Event<'_>> {
    let (temporary, what) = match after(body, b"temporarily rejected ") {
        Some(what) => (true, what),
        None => (false, after(body, b"rejected ")?),
    };
    let (stage, rest) = if let Some(rest) = after(what, b"EHLO from ") {
        (Stage::Helo, rest)
    } else if let Some(rest) = after(what, b"HELO from ") {
        (Stage::Helo, rest)
    } else if let Some((command, rest)) = quoted_command(what) {
        // `rejected "EHLO name" from HOST` (helo_verify_hosts), 4.98's
        // `rejected "WELLKNOWN ..." from HOST`: the command is the reason.
        let helo = command.starts_with(b"EHLO") || command.starts_with(b"HELO");
        let parsed = host_and_ident(rest);
        let stage = if helo { Stage::Helo } else { Stage::Other };
        let rejection = rejection_of(&parsed, stage, temporary, None, command);
        return Some(Event::Rejection(rejection));
    } else if let Some(rest) = after(what, b"MAIL from ").or_else(|| after(what, b"MAIL command "))
    {
        // `rejected MAIL from HOST: no HELO/EHLO given`, `rejected MAIL
        // command HOST: too many messages in one connection`.
        (Stage::Mail, rest)
    } else if let Some(rest) = after(what, b"XCLIENT from ") {
        (Stage::Other, rest)
    } else if let Some(rest) = after(what, b"from ") {
        // receive.c: `rejected from <sender> ...: message too big`, `Too
        // many "Received" headers`: the data was read.
        (Stage::AfterData, rest)
    } else if let Some(rest) = after(what, b"MAIL FROM:") {
        (Stage::Mail, rest)
    } else {
        (Stage::Other, what)
    };
    let (sender, rest) =
        if matches!(stage, Stage::AfterData | Stage::Mail) && rest.first() == Some(&b'<') {
            let (sender, rest) = bracketed(rest);
            (Some(sender), rest)
        } else {
            (None, rest)
        };
    let parsed = host_and_ident(rest);
    let reason = parsed.detail.strip_prefix(b": ").unwrap_or(parsed.detail);
    let mut rejection = rejection_of(&parsed, stage, temporary, None, reason);
    rejection.sender = sender.or(parsed.sender);
    Some(Event::Rejection(rejection))
}

/// `"COMMAND ARGUMENT" from REST`: the quoted command and what follows
/// ` from `.
fn quoted_command(what: &[u8]) -> Option<(&[u8], &[u8])> {
    let quoted = what.strip_prefix(b"\"")?;
    let end = find(quoted, b"\" from ")?;
    Some((&quoted[..end], &quoted[end + b"\" from ".len()..]))
}

/// `unqualified sender rejected: <x> HOST`, `unqualified recipient
/// rejected: <x> HOST`, `too many recipients: message rejected:
/// sender=<x> HOST` (or `excess temporarily rejected`), `Too many
/// recipients: N`, and local_scan()'s temporary rejections.
pub(super) fn unqualified_or_too_many(body: &[u8]) -> Option<Event<'_>> {
    let (stage, temporary, rest) = if let Some(rest) = after(body, b"unqualified sender rejected: ")
    {
        (Stage::Mail, false, rest)
    } else if let Some(rest) = after(body, b"unqualified recipient rejected: ") {
        (Stage::Rcpt, false, rest)
    } else if let Some(rest) = after(body, b"too many recipients: message rejected: sender=") {
        (Stage::Rcpt, false, rest)
    } else if let Some(rest) = after(
        body,
        b"too many recipients: excess temporarily rejected: sender=",
    ) {
        (Stage::Rcpt, true, rest)
    } else if body.starts_with(b"Too many recipients: ") {
        (Stage::Rcpt, false, &b""[..])
    } else if body.starts_with(b"local_scan() function ") || body.starts_with(b"invalid return ") {
        (Stage::AfterData, true, &b""[..])
    } else {
        return None;
    };
    let (address, rest) = bracketed(rest);
    let parsed = host_and_ident(rest);
    let mut rejection = rejection_of(&parsed, stage, temporary, None, body);
    match stage {
        Stage::Mail => rejection.sender = Some(address).filter(|a| !a.is_empty()),
        Stage::Rcpt if body.starts_with(b"unqualified") => rejection.recipient = Some(address),
        Stage::Rcpt => rejection.sender = Some(address).filter(|a| !a.is_empty()),
        _ => {}
    }
    Some(Event::Rejection(rejection))
}
