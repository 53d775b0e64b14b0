//! The typed result of parsing one line. Everything borrows from the line:
//! no field is copied or decoded until a caller asks for it.

use std::fmt;

use super::fields::parse_decimal;
use super::kind::Kind;

/// One parsed log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Timestamp, pid and message id; `None` when the line does not start
    /// with an Exim timestamp (continuations and foreign lines).
    pub prefix: Option<Prefix<'a>>,
    pub event: Event<'a>,
}

impl<'a> Entry<'a> {
    /// The kind of line, as stored and counted.
    pub fn kind(&self) -> Kind {
        self.event.kind()
    }

    /// The Exim message id the line is about, if it has one.
    pub fn message_id(&self) -> Option<MessageId<'a>> {
        self.prefix.as_ref().and_then(|prefix| prefix.message_id)
    }
}

/// What precedes the body of every Exim line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix<'a> {
    pub timestamp: Timestamp,
    /// With `log_selector = +pid`.
    pub pid: Option<u32>,
    pub message_id: Option<MessageId<'a>>,
}

/// Wall-clock time as Exim wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    /// Sub-second part in microseconds (0 when the log has none).
    pub micros: u32,
    /// The zone offset when `log_timezone` is set.
    pub utc_offset_minutes: Option<i16>,
}

impl Timestamp {
    /// Milliseconds since 1970 of the wall-clock time as written, the zone
    /// ignored: the log's own clock, comparable within one host.
    pub fn local_ms(&self) -> i64 {
        let days = super::calendar::days_from_civil(i64::from(self.year), self.month, self.day);
        let seconds = days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second);
        seconds * 1000 + i64::from(self.micros / 1000)
    }

    /// Milliseconds since 1970 UTC, when the line carries its zone (only
    /// the parser's tests ask: stored times are the log's own clock).
    #[cfg(test)]
    fn utc_ms(&self) -> Option<i64> {
        self.utc_offset_minutes
            .map(|offset| self.local_ms() - i64::from(offset) * 60_000)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )?;
        if self.micros != 0 {
            write!(f, ".{:03}", self.micros / 1000)?;
        }
        if let Some(offset) = self.utc_offset_minutes {
            let sign = if offset < 0 { '-' } else { '+' };
            let offset = offset.unsigned_abs();
            write!(f, " {sign}{:02}{:02}", offset / 60, offset % 60)?;
        }
        Ok(())
    }
}

/// An Exim message id, in either format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId<'a>(pub &'a str);

impl<'a> MessageId<'a> {
    /// The id as text.
    pub fn as_str(&self) -> &'a str {
        self.0
    }

    /// Whether this is a 23-character id (Exim 4.97 and later).
    pub fn is_new_format(&self) -> bool {
        self.0.len() == 23
    }
}

impl fmt::Display for MessageId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// A remote host as Exim logs it: `name (helo) [ip]:port`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Host<'a> {
    /// The verified (or, outbound, configured) host name.
    pub name: Option<&'a [u8]>,
    /// What the client said in HELO/EHLO, unverified.
    pub helo: Option<&'a [u8]>,
    pub ip: Option<&'a [u8]>,
    /// As written: digits, or a test-suite placeholder.
    pub port: Option<&'a [u8]>,
    /// `*` after the address: a later message over the same connection.
    pub continued: bool,
    /// `DS`: DNSSEC-secured lookups.
    pub dnssec: bool,
}

impl Host<'_> {
    /// The port as a number, when it is one.
    pub fn port_number(&self) -> Option<u16> {
        self.port.and_then(parse_decimal)
    }
}

/// A time value in Exim's syntax (`1h2m3s`, `0.304s`), kept as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EximDuration<'a> {
    pub raw: &'a [u8],
    /// In milliseconds; `None` for test-suite placeholders such as `qqs`.
    pub millis: Option<i64>,
}

/// An SMTP reply code found in free text: `550` and maybe `5.1.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmtpCode<'a> {
    pub code: u16,
    pub enhanced: Option<&'a [u8]>,
}

impl SmtpCode<'_> {
    /// 4xx: a temporary failure.
    pub fn is_temporary(&self) -> bool {
        (400..500).contains(&self.code)
    }
}

/// The address part of a delivery line: `final (parent) <original>`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddressPart<'a> {
    /// Where the message went: an address, or a pipe, file or autoreply.
    pub final_address: &'a [u8],
    /// Intermediate parents for pipes, files and replies, comma-separated.
    pub parents: Option<&'a [u8]>,
    /// The envelope recipient, when it differs from `final_address`.
    pub original: Option<&'a [u8]>,
}

impl<'a> AddressPart<'a> {
    /// The recipient as the sender addressed it.
    pub fn recipient(&self) -> &'a [u8] {
        self.original.unwrap_or(self.final_address)
    }

    /// Whether the delivery went to a pipe (`|cmd`).
    pub fn is_pipe(&self) -> bool {
        self.final_address.first() == Some(&b'|')
    }

    /// Whether the delivery went to a file (`/path`).
    pub fn is_file(&self) -> bool {
        self.final_address.first() == Some(&b'/')
    }
}

/// The TLS details Exim logs on receptions, deliveries and rejections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tls<'a> {
    /// `X=`: version, cipher and bits.
    pub cipher: Option<&'a [u8]>,
    /// `CV=`: yes, no or dane.
    pub certificate_verified: Option<&'a [u8]>,
    /// `DN=`: the peer's certificate subject.
    pub peer_dn: Option<&'a [u8]>,
    /// `SNI=`
    pub sni: Option<&'a [u8]>,
}

/// `<=` and `(=`: a message arrived.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reception<'a> {
    /// `(=`: accepted, but the client was told it was rejected.
    pub fake_reject: bool,
    /// The envelope sender; `<>` for bounces.
    pub sender: &'a [u8],
    /// `R=`: on a bounce, the message that bounced.
    pub bounce_of: Option<MessageId<'a>>,
    pub host: Option<Host<'a>>,
    /// `I=`: the local interface.
    pub interface: Option<&'a [u8]>,
    /// `U=`: ident or local login.
    pub user: Option<&'a [u8]>,
    /// `P=`: received protocol.
    pub protocol: Option<&'a [u8]>,
    pub tls: Tls<'a>,
    /// `A=`: authenticator, optionally `:id`.
    pub auth: Option<&'a [u8]>,
    /// `S=`, as written.
    pub size: Option<&'a [u8]>,
    /// `id=`: the Message-ID header.
    pub header_message_id: Option<&'a [u8]>,
    /// `T=`: the subject, still escaped (see [`super::unescape_quoted`]).
    pub subject: Option<&'a [u8]>,
    /// `from <...>`: the sender before rewriting.
    pub received_sender: Option<&'a [u8]>,
    /// `for a b c`: recipients, space-separated.
    pub recipients: Option<&'a [u8]>,
    /// `Q=`: named queue.
    pub queue: Option<&'a [u8]>,
    /// `RT=`: time taken to receive.
    pub receive_time: Option<EximDuration<'a>>,
    /// `Ci=`: connection id.
    pub connection_id: Option<&'a [u8]>,
    /// `K`: CHUNKING used.
    pub chunking: bool,
    /// `PRDR` requested.
    pub prdr: bool,
    /// `L`, `L-`, `L.`, `L*`...: what happened to PIPELINING.
    pub pipelining: Option<&'a [u8]>,
    /// `DKIM=`: first verified signing domain.
    pub dkim: Option<&'a [u8]>,
    /// `M8S=`: 8BITMIME state.
    pub eight_bit: Option<&'a [u8]>,
}

impl<'a> Reception<'a> {
    /// `S=` as a number.
    pub fn size_bytes(&self) -> Option<u64> {
        self.size.and_then(parse_decimal)
    }

    /// The `for` list, one address at a time. Quoted local parts may hold
    /// spaces (`"a b"@c`), so splitting respects quotes; a list cut short by
    /// Exim ends in `<trunc>`, which is left out.
    pub fn recipient_list(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let mut rest = self.recipients.unwrap_or_default();
        std::iter::from_fn(move || {
            while let Some(after) = rest.strip_prefix(b" ") {
                rest = after;
            }
            if rest.is_empty() {
                return None;
            }
            let mut in_quotes = false;
            let end = rest
                .iter()
                .position(|&b| {
                    if b == b'"' {
                        in_quotes = !in_quotes;
                    }
                    b == b' ' && !in_quotes
                })
                .unwrap_or(rest.len());
            let (address, after) = rest.split_at(end);
            rest = after;
            Some(address)
        })
        .filter(|address| *address != b"<trunc>")
    }

    /// Whether this is a bounce (null sender).
    pub fn is_bounce(&self) -> bool {
        self.sender == b"<>"
    }
}

/// Which delivery-result line this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryFlag {
    /// `=>`: delivered, first address of a delivery.
    Delivered,
    /// `->`: delivered, further address in the same delivery.
    DeliveredMore,
    /// `>>`: cutthrough delivery (logged before the `<=`).
    Cutthrough,
    /// `*>`: delivery suppressed by `-N`.
    Suppressed,
    /// `**`: failed permanently; the address bounced.
    Failed,
    /// `==`: deferred; a temporary problem.
    Deferred,
}

impl DeliveryFlag {
    /// The flag as Exim writes it.
    pub fn symbol(self) -> &'static str {
        match self {
            DeliveryFlag::Delivered => "=>",
            DeliveryFlag::DeliveredMore => "->",
            DeliveryFlag::Cutthrough => ">>",
            DeliveryFlag::Suppressed => "*>",
            DeliveryFlag::Failed => "**",
            DeliveryFlag::Deferred => "==",
        }
    }
}

/// `=>`, `->`, `>>`, `*>`, `**` and `==` lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery<'a> {
    pub flag: DeliveryFlag,
    pub address: AddressPart<'a>,
    /// `F=<...>`: the envelope sender.
    pub sender: Option<&'a [u8]>,
    /// `P=<...>`: the return path.
    pub return_path: Option<&'a [u8]>,
    /// `R=`
    pub router: Option<&'a [u8]>,
    /// `T=`
    pub transport: Option<&'a [u8]>,
    /// `S=`, as written.
    pub size: Option<&'a [u8]>,
    pub host: Option<Host<'a>>,
    /// `I=`: the local interface.
    pub interface: Option<&'a [u8]>,
    /// `ST=`: a shadow transport.
    pub shadow_transport: Option<&'a [u8]>,
    pub tls: Tls<'a>,
    /// `A=`: client authenticator.
    pub auth: Option<&'a [u8]>,
    /// `C="..."`: the server's reply to the final dot, still escaped.
    pub confirmation: Option<&'a [u8]>,
    /// `QT=`
    pub queue_time: Option<EximDuration<'a>>,
    /// `DT=`
    pub delivery_time: Option<EximDuration<'a>>,
    /// `Q=`: named queue.
    pub queue: Option<&'a [u8]>,
    /// `K`: CHUNKING used.
    pub chunking: bool,
    pub prdr: bool,
    /// `L` or `L*`: PIPELINING (or early pipelining) used.
    pub pipelining: Option<&'a [u8]>,
    /// `defer (n)` or `routing defer (n)`: the errno as written.
    pub errno: Option<&'a [u8]>,
    /// `routing defer`: the whole routing was deferred.
    pub routing_defer: bool,
    /// The error message, for `**` and `==` (and the odd `=>`).
    pub error: Option<&'a [u8]>,
    /// The first SMTP reply code in the error message.
    pub smtp_code: Option<SmtpCode<'a>>,
}

impl Delivery<'_> {
    /// `S=` as a number.
    pub fn size_bytes(&self) -> Option<u64> {
        self.size.and_then(parse_decimal)
    }
}

/// When in the SMTP dialogue a rejection happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Connect,
    Helo,
    Auth,
    Mail,
    Rcpt,
    Data,
    AfterData,
    Other,
}

impl Stage {
    /// The stage's stored name.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Connect => "connect",
            Stage::Helo => "helo",
            Stage::Auth => "auth",
            Stage::Mail => "mail",
            Stage::Rcpt => "rcpt",
            Stage::Data => "data",
            Stage::AfterData => "after_data",
            Stage::Other => "other",
        }
    }
}

/// An ACL, local_scan or size rejection, at any stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection<'a> {
    pub stage: Stage,
    /// `temporarily rejected`: a 4xx.
    pub temporary: bool,
    pub host: Option<Host<'a>>,
    /// `U=`: local user or ident.
    pub user: Option<&'a [u8]>,
    /// `F=<...>` (or `F=...` on some builds), or the MAIL argument.
    pub sender: Option<&'a [u8]>,
    /// The RCPT argument.
    pub recipient: Option<&'a [u8]>,
    pub tls: Tls<'a>,
    /// What the ACL said (the log message), or the rejected command.
    pub reason: &'a [u8],
    pub smtp_code: Option<SmtpCode<'a>>,
}

/// A session-level line about one remote host (connection, error, timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session<'a> {
    pub host: Option<Host<'a>>,
    /// A local caller's login, when there is no host.
    pub user: Option<&'a [u8]>,
    /// `I=`: the local interface.
    pub interface: Option<&'a [u8]>,
    /// `Ci=`: connection id.
    pub connection_id: Option<&'a [u8]>,
    /// `D=`: how long the session lasted.
    pub duration: Option<EximDuration<'a>>,
    /// The rest: how it closed, the error, the commands used.
    pub detail: &'a [u8],
}

/// Every kind of line the parser tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    Reception(Reception<'a>),
    Delivery(Delivery<'a>),
    /// `Completed [QT=...]`
    Completed {
        queue_time: Option<EximDuration<'a>>,
    },
    /// `Frozen`, `Frozen (delivery error message)`, `frozen by <user>`.
    Frozen {
        reason: Option<&'a [u8]>,
    },
    /// A queue run skipped a frozen message.
    MessageIsFrozen,
    /// `Unfrozen by ...`
    Unfrozen {
        by: &'a [u8],
    },
    /// `<id> H=host [ip]: error`: one host failed during a delivery.
    HostError {
        host: Host<'a>,
        error: &'a [u8],
        smtp_code: Option<SmtpCode<'a>>,
    },
    /// `<address>: error ignored`: a failure nobody will be told about.
    ErrorIgnored {
        address: &'a [u8],
    },
    /// The message was removed or cancelled by an operator or a timer.
    Removed {
        detail: &'a [u8],
    },
    /// `Spool file ... is locked`: another process is delivering it.
    SpoolLocked,
    /// `no immediate delivery: ...`
    QueuedOnly {
        reason: &'a [u8],
    },
    /// `DKIM: ...` verification or signing result.
    Dkim {
        detail: &'a [u8],
    },
    /// Other notes about a message: `original recipients ignored`,
    /// `sender address changed to ...`, `recipient ... added by ...`,
    /// spool errors such as `Spool file <id>-D not found`.
    MessageNote {
        detail: &'a [u8],
    },
    /// `... RCPT <addr>: discarded by RCPT ACL`: accepted, then dropped.
    Discarded(Session<'a>),
    Rejection(Rejection<'a>),
    /// `sender verify fail/defer for <addr>`
    SenderVerify {
        failed: bool,
        host: Option<Host<'a>>,
        sender: &'a [u8],
        reason: &'a [u8],
    },
    /// `SMTP connection from ... (TCP/IP connection count = n)`
    ConnectionOpened(Session<'a>),
    /// `SMTP connection from ... closed by QUIT` and the like.
    ConnectionClosed(Session<'a>),
    /// `SMTP connection from ... lost`, `unexpected disconnection ...`
    ConnectionLost(Session<'a>),
    /// `Connection from ... refused` and `refused connection from ...`
    ConnectionRefused(Session<'a>),
    /// `no MAIL in SMTP connection from ...`
    NoMail(Session<'a>),
    /// `SMTP command timeout` and `SMTP data timeout`.
    SmtpTimeout(Session<'a>),
    /// `SMTP protocol error`, `SMTP syntax error`, synchronization errors,
    /// and `SMTP call from ... dropped`.
    ProtocolError(Session<'a>),
    /// `incomplete transaction (...)`
    IncompleteTransaction(Session<'a>),
    /// `TLS error on connection ...` and other TLS failures.
    TlsError(Session<'a>),
    /// `<name> authenticator failed for ...`
    AuthFailed {
        authenticator: &'a [u8],
        session: Session<'a>,
        set_id: Option<&'a [u8]>,
        smtp_code: Option<SmtpCode<'a>>,
    },
    /// `no host name found for IP address ...` and failed forward lookups.
    HostLookupFailed {
        detail: &'a [u8],
    },
    /// An ACL `warn` verb's log message, with the host it was about.
    AclWarning(Session<'a>),
    /// `Start queue run: pid=...`
    QueueRunStart {
        pid: Option<&'a [u8]>,
        detail: &'a [u8],
    },
    /// `End queue run: pid=...`
    QueueRunEnd {
        pid: Option<&'a [u8]>,
    },
    /// `exim 4.96 daemon started: pid=...`
    DaemonStarted {
        version: &'a [u8],
        pid: Option<&'a [u8]>,
        detail: &'a [u8],
    },
    /// `pid n: SIGHUP received: re-exec daemon`
    Sighup {
        pid: Option<&'a [u8]>,
    },
    /// A process's note about itself: `exim user lost privilege`, `cwd=...`
    /// argument lists, `socket bind() ... failed`.
    Process {
        detail: &'a [u8],
    },
    /// `Warning: ...`
    Warning {
        text: &'a [u8],
    },
    /// A line without a timestamp that starts with white space: more of
    /// the entry before it.
    Continuation {
        text: &'a [u8],
    },
    /// An empty line.
    Blank,
    /// A line starting with `#`: a comment in a test or sample file.
    Comment {
        text: &'a [u8],
    },
    /// Anything else. The prefix, if any, is still in [`Entry::prefix`].
    Unrecognised {
        body: &'a [u8],
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_ms_matches_known_instants() {
        let ts = Timestamp {
            year: 2024,
            month: 9,
            day: 7,
            hour: 1,
            minute: 34,
            second: 11,
            micros: 345_000,
            utc_offset_minutes: Some(120),
        };
        // 2024-09-07T01:34:11.345 as if UTC.
        assert_eq!(ts.local_ms(), 1_725_672_851_345);
        assert_eq!(ts.utc_ms(), Some(1_725_672_851_345 - 7_200_000));
        let epoch = Timestamp {
            year: 1970,
            month: 1,
            day: 1,
            hour: 0,
            minute: 0,
            second: 0,
            micros: 0,
            utc_offset_minutes: None,
        };
        assert_eq!(epoch.local_ms(), 0);
        let leap = Timestamp {
            year: 2000,
            month: 3,
            day: 1,
            ..epoch
        };
        assert_eq!(leap.local_ms(), 951_868_800_000);
    }
}
