//! The typed result of parsing one line. Everything borrows from the line:
//! no field is copied or decoded until a caller asks for it.

use std::fmt;

use super::kind::Kind;

mod mail;
mod session;
mod values;

pub use mail::{Delivery, DeliveryFlag, Reception};
pub use session::{Rejection, Session, Stage};
pub use values::{AddressPart, EximDuration, Host, SmtpCode, Tls, parse_decimal};

/// One parsed log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Timestamp, pid and message id; `None` when the line does not start
    /// with an Exim timestamp (continuations and foreign lines).
    pub prefix: Option<Prefix<'a>>,
    /// What the line says.
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
    /// When Exim wrote the line.
    pub timestamp: Timestamp,
    /// With `log_selector = +pid`.
    pub pid: Option<u32>,
    /// The message the line is about, if any.
    pub message_id: Option<MessageId<'a>>,
}

/// Wall-clock time as Exim wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    /// Year, as written.
    pub year: u16,
    /// Month, 1 to 12.
    pub month: u8,
    /// Day of the month, 1 to 31.
    pub day: u8,
    /// Hour, 0 to 23.
    pub hour: u8,
    /// Minute, 0 to 59.
    pub minute: u8,
    /// Second, 0 to 59.
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
        let days =
            crate::parse::calendar::days_from_civil(i64::from(self.year), self.month, self.day);
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

impl<'a> Event<'a> {
    /// The session of a line that is only about one (connections, SMTP
    /// errors, TLS errors, ACL warnings, discarded recipients).
    pub fn session(&self) -> Option<&Session<'a>> {
        match self {
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
            | Event::SessionNote(s) => Some(s),
            _ => None,
        }
    }
}

/// Every kind of line the parser tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// `<=` or `(=`: a message arrived.
    Reception(Reception<'a>),
    /// `=>`, `->`, `>>`, `*>`, `**` or `==`: a delivery result.
    Delivery(Delivery<'a>),
    /// `Completed [QT=...]`
    Completed {
        /// `QT=`: its whole time on the queue.
        queue_time: Option<EximDuration<'a>>,
    },
    /// `Frozen`, `Frozen (delivery error message)`, `frozen by <user>`.
    Frozen {
        /// Why, when Exim says.
        reason: Option<&'a [u8]>,
    },
    /// A queue run skipped a frozen message.
    MessageIsFrozen,
    /// `Unfrozen by ...`
    Unfrozen {
        /// Who unfroze it.
        by: &'a [u8],
    },
    /// `<id> H=host [ip]: error`: one host failed during a delivery.
    HostError {
        /// The host that failed.
        host: Host<'a>,
        /// Exim's words.
        error: &'a [u8],
        /// The SMTP reply code in them, if any.
        smtp_code: Option<SmtpCode<'a>>,
    },
    /// `<address>: error ignored`: a failure nobody will be told about.
    ErrorIgnored {
        /// The address whose failure is ignored.
        address: &'a [u8],
    },
    /// The message was removed or cancelled by an operator or a timer.
    Removed {
        /// By whom or what, as logged.
        detail: &'a [u8],
    },
    /// `Spool file ... is locked`: another process is delivering it.
    SpoolLocked,
    /// `no immediate delivery: ...`
    QueuedOnly {
        /// Why it was not delivered at once.
        reason: &'a [u8],
    },
    /// `DKIM: ...` verification or signing result.
    Dkim {
        /// The signature's or verification's details.
        detail: &'a [u8],
    },
    /// Other notes about a message: `original recipients ignored`,
    /// `sender address changed to ...`, `recipient ... added by ...`,
    /// spool errors such as `Spool file <id>-D not found`.
    MessageNote {
        /// The note, as logged.
        detail: &'a [u8],
    },
    /// `... RCPT <addr>: discarded by RCPT ACL`: accepted, then dropped.
    Discarded(Session<'a>),
    /// An ACL, local_scan or size rejection.
    Rejection(Rejection<'a>),
    /// `sender verify fail/defer for <addr>`
    SenderVerify {
        /// `fail` (true) or `defer` (false).
        failed: bool,
        /// The host the message came from.
        host: Option<Host<'a>>,
        /// The sender address that failed verification.
        sender: &'a [u8],
        /// Why, as logged.
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
        /// The authenticator's name.
        authenticator: &'a [u8],
        /// The host that tried.
        session: Session<'a>,
        /// `set_id=`: the user name it tried, if logged.
        set_id: Option<&'a [u8]>,
        /// The SMTP reply code, if any.
        smtp_code: Option<SmtpCode<'a>>,
    },
    /// `no host name found for IP address ...` and failed forward lookups.
    HostLookupFailed {
        /// The name or address, and the resolver's answer.
        detail: &'a [u8],
    },
    /// An ACL `warn` verb's log message, with the host it was about.
    AclWarning(Session<'a>),
    /// `Start queue run: pid=...`
    QueueRunStart {
        /// The queue runner's pid.
        pid: Option<&'a [u8]>,
        /// The rest of the line (queue run options).
        detail: &'a [u8],
    },
    /// `End queue run: pid=...`
    QueueRunEnd {
        /// The queue runner's pid.
        pid: Option<&'a [u8]>,
    },
    /// `exim 4.96 daemon started: pid=...`
    DaemonStarted {
        /// Exim's version.
        version: &'a [u8],
        /// The daemon's pid.
        pid: Option<&'a [u8]>,
        /// The rest: listening sockets, queue run interval.
        detail: &'a [u8],
    },
    /// `pid n: SIGHUP received: re-exec daemon`
    Sighup {
        /// The daemon's pid.
        pid: Option<&'a [u8]>,
    },
    /// A process's note about itself: `exim user lost privilege`, `cwd=...`
    /// argument lists, `socket bind() ... failed`.
    Process {
        /// The note, as logged.
        detail: &'a [u8],
    },
    /// A problem of the host rather than of one message or session (disk
    /// space, spool, sockets, TLS setup, crashed processes, DNS lists,
    /// content scanners), or a result worth counting (DMARC).
    Problem {
        /// Which.
        problem: Problem,
        /// The line, as logged.
        detail: &'a [u8],
    },
    /// A note about an SMTP session that is neither a failure nor a
    /// rejection: `ETRN`/`ATRN` received, an ident lookup timed out, an
    /// `AUTH=` ignored, a VRFY that failed.
    SessionNote(Session<'a>),
    /// `Warning: ...`
    Warning {
        /// The warning, as logged.
        text: &'a [u8],
    },
    /// More of the entry before it: a line without a timestamp that
    /// starts with white space, or the reject log's envelope and header
    /// lines after a rejection (`Envelope-to: <...>`, `P Received: ...`).
    Continuation {
        /// The line, leading white space included.
        text: &'a [u8],
    },
    /// An empty line.
    Blank,
    /// A line starting with `#`: a comment in a test or sample file.
    Comment {
        /// The line after the `#`.
        text: &'a [u8],
    },
    /// Anything else. The prefix, if any, is still in [`Entry::prefix`].
    Unrecognised {
        /// The body after what the prefix reader took.
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

/// The problems [`Event::Problem`] names, each its own kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Problem {
    /// `spool directory space check failed`, `log directory ...`: a
    /// message refused for want of disk space or inodes.
    SpaceCheck,
    /// A spool file that could not be written, closed, created, locked or
    /// moved, a delivery journal, a hints database.
    Spool,
    /// A listening or sending socket that could not be made.
    Socket,
    /// TLS set up wrong: a certificate that does not load, OCSP, DANE.
    TlsSetup,
    /// A delivery or transport process that crashed or vanished.
    ProcessCrashed,
    /// A process Exim could not start or run as it needed: fork, pipe and
    /// exec failures, ids it could not take, limits, memory, signals.
    ProcessFailure,
    /// A DNS list lookup that timed out (treated as not listed).
    DnslistDefer,
    /// A spam or malware scanner that could not be asked.
    ContentScan,
    /// `DMARC results: ...`
    Dmarc,
    /// A bounce that could not be sent (`Process failed (N) when writing
    /// error message`), or a message read with no sender to tell.
    BounceFailed,
    /// `Message abandoned`, or a header too long to take.
    MessageAbandoned,
    /// `Delivery deferred by system filter`.
    FilterDeferred,
    /// Routing that led back to this host (an MX pointing here).
    RoutedToSelf,
    /// DNS trouble that is not a host's: slow lookups, truncated answers,
    /// CNAME loops, DNSSEC failures.
    Dns,
    /// A configuration, expansion, module or lookup that failed at run
    /// time (DMARC's and ARC's libraries included), tainted data refused.
    Config,
}
