//! Lines about SMTP sessions and the daemon: connections, authentication
//! failures, TLS and protocol errors, queue runs; rejections are
//! `rejection.rs`'s, the host and tags before a line's detail
//! `host_ident.rs`'s.

use super::entry::{Event, Session};
use super::fields::{after, bracketed, find, smtp_code, token};
use super::host_ident::host_and_ident;
use super::rejection::{local_rejection, rejection, unqualified_or_too_many};

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
    if body.starts_with(b"unexpected ")
        && let Some(at) = find(body, b" while reading SMTP command from ")
    {
        // `unexpected EOF ...`, `unexpected disconnection ...`.
        let rest = &body[at + b" while reading SMTP command from ".len()..];
        return Some(Event::ConnectionLost(host_and_ident(rest).session()));
    }
    if let Some(rest) = after(body, b"Error or EOF on input from ") {
        // 4.99: a read that failed or hit EOF.
        return Some(Event::ConnectionLost(host_and_ident(rest).session()));
    }
    if body.ends_with(b" while reading local message") {
        // receive.c: a local message's input timed out or was signalled.
        return Some(Event::ConnectionLost(session_at_host(body)));
    }
    if let Some(event) = session_note(body) {
        return Some(event);
    }
    if body.first() == Some(&b'[')
        && find(body, b"] after QUIT, client reset TCP before SMTP response").is_some()
    {
        return Some(Event::ConnectionLost(host_and_ident(body).session()));
    }
    if body.starts_with(b"TLS error")
        || body.starts_with(b"DANE attempt failed")
        || body.starts_with(b"TLS ALPN (")
        || body.starts_with(b"Connection aborted; STARTTLS support by ")
        // Exim 4.8x, on a client hanging up after the handshake.
        || body.starts_with(b"TLS client disconnected cleanly")
        || body.starts_with(b"TLS session: ")
    {
        return Some(Event::TlsError(session_at_host(body)));
    }
    if body.starts_with(b"SSL verify denied") {
        // GnuTLS names no peer.
        let mut session = host_and_ident(b"").session();
        session.detail = body;
        return Some(Event::TlsError(session));
    }
    if body.first() == Some(&b'[') && find(body, b"] SSL verify ").is_some() {
        return Some(Event::TlsError(host_and_ident(body).session()));
    }
    if let Some(rest) = after(body, b"connection from ")
        && find(rest, b" refused (IP options)").is_some()
    {
        return Some(Event::ConnectionRefused(host_and_ident(rest).session()));
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
    if let Some(event) = unqualified_or_too_many(body) {
        return Some(event);
    }
    if body.starts_with(b"rejected ") || body.starts_with(b"temporarily rejected ") {
        return local_rejection(body);
    }
    authenticator_failed(body)
}

/// Lines about Exim's own processes rather than mail, and the hint-database
/// lock timeouts a loaded host produces (`Failed to get write lock for
/// .../retry.lockfile: timed out`). Failures to fork are problems
/// ([`super::problem`]).
const PROCESS_NOTES: [&[u8]; 6] = [
    b"exim user lost privilege",
    b"cwd=",
    b"daemon: ",
    b"Failed to get ",
    b"notify triggered queue run",
    b"listen backlog ",
];

/// Notes about a session: `ETRN x received from HOST`, `ATRN 'x'
/// received from HOST`, `ident connection to IP timed out`, `ignoring
/// AUTH=<x> from HOST (why)`, `VRFY failed for ADDR HOST`.
fn session_note(body: &[u8]) -> Option<Event<'_>> {
    let host_at = if body.starts_with(b"ETRN ") || body.starts_with(b"ATRN ") {
        find(body, b" received from ").map(|at| at + b" received from ".len())
    } else if body.starts_with(b"ignoring AUTH=") {
        find(body, b" from ").map(|at| at + b" from ".len())
    } else if let Some(rest) = after(body, b"VRFY failed for ") {
        Some(body.len() - rest.len() + token(rest).0.len() + 1)
    } else if body.starts_with(b"ident connection to ") {
        // An address alone, no host's tags.
        return Some(Event::SessionNote(session_at_host(body)));
    } else {
        return None;
    }?;
    let mut session = host_and_ident(body.get(host_at..)?).session();
    session.detail = body;
    Some(Event::SessionNote(session))
}

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
