//! Lines about SMTP sessions and the daemon: connections, rejections,
//! authentication failures, TLS and protocol errors, queue runs.

use super::entry::{Event, Host, Rejection, Session, Stage, Tls};
use super::fields::{after, bracketed, duration, find, host, quoted, smtp_code, token};

/// A host and the tags after it (`I= U= Ci= D= X= CV= DN= SNI= F= A= P=`),
/// up to the first word that is not one: the detail.
#[derive(Debug, Default, Clone, Copy)]
struct HostAndIdent<'a> {
    host: Option<Host<'a>>,
    user: Option<&'a [u8]>,
    interface: Option<&'a [u8]>,
    connection_id: Option<&'a [u8]>,
    duration: Option<&'a [u8]>,
    sender: Option<&'a [u8]>,
    tls: Tls<'a>,
    detail: &'a [u8],
}

impl<'a> HostAndIdent<'a> {
    fn session(&self) -> Session<'a> {
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
fn host_and_ident(input: &[u8]) -> HostAndIdent<'_> {
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

/// Lines that start with the remote host (`H=...`), a local user (`U=`),
/// the sender (`F=`), or `DS`: rejections, sender verification, incomplete
/// transactions, ACL warnings. `None` when the detail is none of these.
pub fn host_line(body: &[u8]) -> Option<Event<'_>> {
    let parsed = host_and_ident(body);
    let detail = parsed.detail;
    if let Some(rejection) = rejection(&parsed, detail) {
        return Some(Event::Rejection(rejection));
    }
    for (marker, failed) in [
        (&b"sender verify fail for "[..], true),
        (b"sender verify defer for ", false),
    ] {
        if let Some(rest) = after(detail, marker) {
            let (sender, reason) = bracketed(rest);
            let reason = reason.strip_prefix(b": ").unwrap_or(reason);
            return Some(Event::SenderVerify {
                failed,
                host: parsed.host,
                sender,
                reason,
            });
        }
    }
    if detail.starts_with(b"incomplete transaction") {
        return Some(Event::IncompleteTransaction(parsed.session()));
    }
    if detail.starts_with(b"Warning: ") {
        return Some(Event::AclWarning(parsed.session()));
    }
    if find(detail, b": discarded by ").is_some() {
        return Some(Event::Discarded(parsed.session()));
    }
    None
}

/// `[temporarily ]rejected WHAT[: reason]`, `rejected by local_scan()`,
/// `dropped by ... ACL`.
fn rejection<'a>(parsed: &HostAndIdent<'a>, detail: &'a [u8]) -> Option<Rejection<'a>> {
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

/// Lines that start with a fixed phrase. `None` when none matches.
///
/// Long because it is a table of phrases, one arm each, in
/// the order they must be tried (a phrase that is a prefix of another
/// comes after it).
pub fn phrase_line(body: &[u8]) -> Option<Event<'_>> {
    if let Some(rest) = after(body, b"SMTP connection lost after final dot ") {
        // receive.c: the host follows as ` H=... P=...`.
        return Some(Event::ConnectionLost(host_and_ident(rest).session()));
    }
    if let Some(rest) = after(body, b"SMTP connection ") {
        return Some(connection(rest));
    }
    if let Some(rest) = after(body, b"no MAIL in SMTP connection from ") {
        return Some(Event::NoMail(host_and_ident(rest).session()));
    }
    for marker in [
        &b"SMTP command timeout on connection from "[..],
        b"SMTP command timeout on TLS connection from ",
    ] {
        if let Some(rest) = after(body, marker) {
            return Some(Event::SmtpTimeout(host_and_ident(rest).session()));
        }
    }
    if let Some(rest) = after(
        body,
        b"SMTP data timeout (message abandoned) on connection from ",
    ) {
        return Some(Event::SmtpTimeout(host_and_ident(rest).session()));
    }
    if body.starts_with(b"SMTP protocol") || body.starts_with(b"SMTP syntax error") {
        return Some(Event::ProtocolError(session_at_host(body)));
    }
    if let Some(rest) = after(body, b"SMTP call from ") {
        return Some(Event::ProtocolError(host_and_ident(rest).session()));
    }
    if let Some(rest) = after(
        body,
        b"unexpected disconnection while reading SMTP command from ",
    ) {
        return Some(Event::ConnectionLost(host_and_ident(rest).session()));
    }
    if body.starts_with(b"TLS error")
        || body.starts_with(b"DANE attempt failed")
        || body.starts_with(b"TLS session: ")
    {
        return Some(Event::TlsError(session_at_host(body)));
    }
    if body.first() == Some(&b'[') && find(body, b"] SSL verify error").is_some() {
        return Some(Event::TlsError(host_and_ident(body).session()));
    }
    if let Some(rest) = after(body, b"Connection from ") {
        return Some(Event::ConnectionRefused(host_and_ident(rest).session()));
    }
    for marker in [
        &b"refused connection from "[..],
        b"temporarily refused connection from ",
    ] {
        if let Some(rest) = after(body, marker) {
            return Some(Event::ConnectionRefused(host_and_ident(rest).session()));
        }
    }
    if body.starts_with(b"no host name found for IP address ")
        || body.starts_with(b"no IP address found for host ")
        || body.starts_with(b"host lookup for ")
            && body.ends_with(b" did not complete (DNS timeout?)")
    {
        return Some(Event::HostLookupFailed { detail: body });
    }
    if let Some(event) = queue_run(body) {
        return Some(event);
    }
    if let Some(rest) = after(body, b"exim ") {
        let (version, rest) = token(rest);
        if let Some(detail) = after(rest, b"daemon started: ") {
            return Some(Event::DaemonStarted {
                version,
                pid: pid_value(detail),
                detail,
            });
        }
    }
    if let Some(rest) = after(body, b"pid ") {
        let (pid, rest) = token(rest);
        if rest.starts_with(b"SIGHUP received") {
            return Some(Event::Sighup {
                pid: pid.strip_suffix(b":"),
            });
        }
    }
    if PROCESS_NOTES.iter().any(|note| body.starts_with(note))
        || body.starts_with(b"exim ") && find(body, b" daemon terminating").is_some()
    {
        return Some(Event::Process { detail: body });
    }
    if let Some(text) = after(body, b"Warning: ") {
        return Some(Event::Warning { text });
    }
    if body.starts_with(b"rejected ") || body.starts_with(b"temporarily rejected ") {
        return local_rejection(body);
    }
    authenticator_failed(body)
}

/// Lines about Exim's own processes rather than mail. The failures are the
/// ones a loaded host produces: fork failures and hint-database lock
/// timeouts (`Failed to get write lock for .../retry.lockfile: timed out`).
const PROCESS_NOTES: [&[u8]; 6] = [
    b"exim user lost privilege",
    b"cwd=",
    b"socket bind() to port",
    b"daemon: ",
    b"fork() failed",
    b"Failed to get ",
];

/// `SMTP connection ...` after those words: opened, closed or lost.
fn connection(rest: &[u8]) -> Event<'_> {
    // 4.97+ puts `Ci=` before `from` on close lines.
    let (connection_id, rest) = match after(rest, b"Ci=") {
        Some(value) => {
            let (id, rest) = token(value);
            (Some(id), rest)
        }
        None => (None, rest),
    };
    let rest = after(rest, b"from ").unwrap_or(rest);
    let mut parsed = host_and_ident(rest);
    parsed.connection_id = parsed.connection_id.or(connection_id);
    if parsed.duration.is_none() {
        // `... lost D=2s`: the duration after the outcome.
        parsed.duration = find(parsed.detail, b" D=").map(|at| token(&parsed.detail[at + 3..]).0);
    }
    let session = parsed.session();
    let detail = parsed.detail;
    // A bare `SMTP connection from root` opens a local (-bs, inetd)
    // session; its close says `closed by ...` or carries `D=`.
    let opened_locally = detail.is_empty() && parsed.duration.is_none();
    if detail.starts_with(b"(TCP/IP connection count") || opened_locally {
        Event::ConnectionOpened(session)
    } else if detail.starts_with(b"lost") || rest.starts_with(b"lost") {
        Event::ConnectionLost(session)
    } else {
        Event::ConnectionClosed(session)
    }
}

/// A session line whose host is introduced by ` H=`, `from H=` or `from `
/// somewhere in the text; the whole line is the detail.
fn session_at_host(body: &[u8]) -> Session<'_> {
    let start = find(body, b" H=")
        .map(|at| at + 1)
        .or_else(|| find(body, b" from ").map(|at| at + 6))
        .or_else(|| find(body, b" U=").map(|at| at + 1));
    let mut session = match start {
        Some(at) => host_and_ident(&body[at..]).session(),
        None => Session {
            host: None,
            user: None,
            interface: None,
            connection_id: None,
            duration: None,
            detail: body,
        },
    };
    session.detail = body;
    session
}

fn queue_run(body: &[u8]) -> Option<Event<'_>> {
    let (is_start, rest) = if let Some(rest) = after(body, b"Start ") {
        (true, rest)
    } else if let Some(rest) = after(body, b"End ") {
        (false, rest)
    } else if body.starts_with(b"Abandon queue run") {
        return Some(Event::QueueRunEnd { pid: None });
    } else {
        return None;
    };
    let run = find(rest, b"queue run")?;
    if run > 64 {
        return None;
    }
    let detail = &rest[run + b"queue run".len()..];
    let detail = detail.strip_prefix(b": ").unwrap_or(detail);
    let pid = pid_value(detail);
    Some(if is_start {
        Event::QueueRunStart { pid, detail }
    } else {
        Event::QueueRunEnd { pid }
    })
}

/// The value of `pid=` up to a comma or space.
fn pid_value(text: &[u8]) -> Option<&[u8]> {
    let at = find(text, b"pid=")?;
    let value = &text[at + 4..];
    let end = value
        .iter()
        .position(|&b| b == b',' || b == b' ')
        .unwrap_or(value.len());
    Some(&value[..end])
}

/// `rejected EHLO from ...`, `rejected from <sender> ...`, `rejected MAIL
/// FROM:<...> ...`: rejections without a leading host.
fn local_rejection(body: &[u8]) -> Option<Event<'_>> {
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
        (Stage::Data, rest)
    } else if let Some(rest) = after(what, b"MAIL FROM:") {
        (Stage::Mail, rest)
    } else {
        (Stage::Other, what)
    };
    let (sender, rest) =
        if matches!(stage, Stage::Data | Stage::Mail) && rest.first() == Some(&b'<') {
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

/// `<name> authenticator failed for <host>: 535 ... (set_id=...)`, and the
/// client side `<name> authenticator failed H=...`.
fn authenticator_failed(body: &[u8]) -> Option<Event<'_>> {
    let (authenticator, rest) = token(body);
    let rest = after(rest, b"authenticator failed ")?;
    let rest = after(rest, b"for ").unwrap_or(rest);
    let parsed = host_and_ident(rest);
    let detail = parsed.detail.strip_prefix(b": ").unwrap_or(parsed.detail);
    let set_id = find(detail, b"(set_id=").map(|at| {
        let value = &detail[at + 8..];
        &value[..memchr::memchr(b')', value).unwrap_or(value.len())]
    });
    let mut session = parsed.session();
    session.detail = detail;
    Some(Event::AuthFailed {
        authenticator,
        session,
        set_id,
        smtp_code: smtp_code(detail),
    })
}
