//! A compact, stable text form of an [`Entry`], one `key=value` per field
//! that is present. Used by `exim-pilot parse --show` and by the
//! expect-style tests, where a reader must see at a glance what was parsed.

use std::fmt::Write as _;

use super::entry::{
    Delivery, Entry, Event, EximDuration, Host, Reception, Rejection, Session, SmtpCode, Tls,
};

/// Renders `entry` as `kind key=value ...`.
///
/// Long because it is one arm per event, each the list of its
/// fields; the expectation tests read it as the parser's specification.
pub fn render(entry: &Entry<'_>) -> String {
    let mut out = Fields(String::new());
    out.word(entry.kind().name());
    if let Some(prefix) = &entry.prefix {
        out.text("at", &prefix.timestamp.to_string());
        if let Some(pid) = prefix.pid {
            out.text("pid", &pid.to_string());
        }
        if let Some(id) = prefix.message_id {
            out.text("id", id.as_str());
        }
    }
    match &entry.event {
        Event::Reception(r) => reception(&mut out, r),
        Event::Delivery(d) => delivery(&mut out, d),
        Event::Completed { queue_time } => out.time("QT", queue_time.as_ref()),
        Event::Frozen { reason } => out.bytes("reason", *reason),
        Event::MessageIsFrozen | Event::SpoolLocked | Event::Blank => {}
        Event::Unfrozen { by } => out.bytes("by", Some(by)),
        Event::HostError {
            host,
            error,
            smtp_code,
        } => {
            out.host(Some(host));
            out.code(smtp_code.as_ref());
            out.bytes("error", Some(error));
        }
        Event::ErrorIgnored { address } => out.bytes("address", Some(address)),
        Event::Removed { detail }
        | Event::Dkim { detail }
        | Event::HostLookupFailed { detail }
        | Event::MessageNote { detail }
        | Event::Process { detail }
        | Event::Problem { detail, .. } => out.bytes("detail", Some(detail)),
        Event::QueuedOnly { reason } => out.bytes("reason", Some(reason)),
        Event::Rejection(r) => rejection(&mut out, r),
        Event::SenderVerify {
            failed,
            host,
            sender,
            reason,
        } => {
            out.text("failed", if *failed { "yes" } else { "no" });
            out.host(host.as_ref());
            out.bytes("sender", Some(sender));
            out.bytes("reason", Some(reason));
        }
        Event::ConnectionOpened(s)
        | Event::ConnectionClosed(s)
        | Event::ConnectionLost(s)
        | Event::ConnectionRefused(s)
        | Event::NoMail(s)
        | Event::SmtpTimeout(s)
        | Event::ProtocolError(s)
        | Event::IncompleteTransaction(s)
        | Event::TlsError(s)
        | Event::AclWarning(s)
        | Event::Discarded(s)
        | Event::SessionNote(s) => session(&mut out, s),
        Event::AuthFailed {
            authenticator,
            session: s,
            set_id,
            smtp_code,
        } => {
            out.bytes("authenticator", Some(authenticator));
            out.bytes("set_id", *set_id);
            out.code(smtp_code.as_ref());
            session(&mut out, s);
        }
        Event::QueueRunStart { pid, detail } => {
            out.bytes("run_pid", *pid);
            out.bytes("detail", Some(detail));
        }
        Event::QueueRunEnd { pid } => out.bytes("run_pid", *pid),
        Event::DaemonStarted {
            version,
            pid,
            detail,
        } => {
            out.bytes("version", Some(version));
            out.bytes("daemon_pid", *pid);
            out.bytes("detail", Some(detail));
        }
        Event::Sighup { pid } => out.bytes("daemon_pid", *pid),
        Event::Warning { text } | Event::Continuation { text } | Event::Comment { text } => {
            out.bytes("text", Some(text));
        }
        Event::Unrecognised { body } => out.bytes("body", Some(body)),
    }
    out.0
}

fn reception(out: &mut Fields, r: &Reception<'_>) {
    out.bytes("sender", Some(r.sender));
    if let Some(id) = r.bounce_of {
        out.text("bounce_of", id.as_str());
    }
    out.host(r.host.as_ref());
    out.bytes("I", r.interface);
    out.bytes("U", r.user);
    out.bytes("P", r.protocol);
    out.tls(&r.tls);
    out.bytes("A", r.auth);
    out.bytes("S", r.size);
    out.bytes("msgid", r.header_message_id);
    out.bytes("subject", r.subject);
    out.bytes("from", r.received_sender);
    out.bytes("for", r.recipients);
    out.bytes("Q", r.queue);
    out.time("RT", r.receive_time.as_ref());
    out.bytes("Ci", r.connection_id);
    out.bytes("DKIM", r.dkim);
    out.bytes("M8S", r.eight_bit);
    out.bytes("L", r.pipelining);
    out.flag("K", r.chunking);
    out.flag("PRDR", r.prdr);
}

fn delivery(out: &mut Fields, d: &Delivery<'_>) {
    out.bytes("final", Some(d.address.final_address));
    out.bytes("parents", d.address.parents);
    out.bytes("original", d.address.original);
    out.bytes("F", d.sender);
    out.bytes("return_path", d.return_path);
    out.bytes("R", d.router);
    out.bytes("T", d.transport);
    out.bytes("S", d.size);
    out.host(d.host.as_ref());
    out.bytes("I", d.interface);
    out.bytes("ST", d.shadow_transport);
    out.tls(&d.tls);
    out.bytes("A", d.auth);
    out.bytes("C", d.confirmation);
    out.bytes("Q", d.queue);
    out.bytes("L", d.pipelining);
    out.flag("K", d.chunking);
    out.flag("PRDR", d.prdr);
    out.flag("routing", d.routing_defer);
    out.bytes("errno", d.errno);
    out.time("QT", d.queue_time.as_ref());
    out.time("DT", d.delivery_time.as_ref());
    out.code(d.smtp_code.as_ref());
    out.bytes("error", d.error);
}

fn rejection(out: &mut Fields, r: &Rejection<'_>) {
    out.text("stage", r.stage.name());
    out.flag("temporary", r.temporary);
    out.host(r.host.as_ref());
    out.bytes("U", r.user);
    out.tls(&r.tls);
    out.bytes("sender", r.sender);
    out.bytes("recipient", r.recipient);
    out.code(r.smtp_code.as_ref());
    out.bytes("reason", Some(r.reason));
}

fn session(out: &mut Fields, s: &Session<'_>) {
    out.host(s.host.as_ref());
    out.bytes("U", s.user);
    out.bytes("I", s.interface);
    out.bytes("Ci", s.connection_id);
    out.time("D", s.duration.as_ref());
    out.bytes("detail", Some(s.detail));
}

struct Fields(String);

impl Fields {
    fn word(&mut self, word: &str) {
        self.0.push_str(word);
    }

    fn text(&mut self, key: &str, value: &str) {
        let _ = write!(self.0, " {key}={value:?}");
    }

    fn bytes(&mut self, key: &str, value: Option<&[u8]>) {
        if let Some(value) = value {
            self.text(key, &String::from_utf8_lossy(value));
        }
    }

    fn flag(&mut self, key: &str, set: bool) {
        if set {
            let _ = write!(self.0, " {key}");
        }
    }

    fn time(&mut self, key: &str, value: Option<&EximDuration<'_>>) {
        if let Some(value) = value {
            let millis = value
                .millis
                .map_or_else(|| "?".to_owned(), |ms| ms.to_string());
            let _ = write!(self.0, " {key}={millis}ms");
        }
    }

    fn code(&mut self, code: Option<&SmtpCode<'_>>) {
        if let Some(code) = code {
            let _ = write!(self.0, " code={}", code.code);
            if let Some(enhanced) = code.enhanced {
                let _ = write!(self.0, "/{}", String::from_utf8_lossy(enhanced));
            }
        }
    }

    fn host(&mut self, host: Option<&Host<'_>>) {
        let Some(host) = host else { return };
        self.bytes("host", host.name);
        self.bytes("helo", host.helo);
        self.bytes("ip", host.ip);
        self.bytes("port", host.port);
        self.flag("continued", host.continued);
        self.flag("DS", host.dnssec);
    }

    fn tls(&mut self, tls: &Tls<'_>) {
        self.bytes("X", tls.cipher);
        self.bytes("CV", tls.certificate_verified);
        self.bytes("DN", tls.peer_dn);
        self.bytes("SNI", tls.sni);
    }
}
