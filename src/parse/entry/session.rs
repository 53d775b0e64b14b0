//! What happened in an SMTP session: rejections and host-level events.

use super::{EximDuration, Host, SmtpCode, Tls};

/// When in the SMTP dialogue a rejection happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// At connection time (`connect` ACL, host checks).
    Connect,
    /// At `HELO`/`EHLO`.
    Helo,
    /// At `AUTH`.
    Auth,
    /// At `MAIL FROM`.
    Mail,
    /// At `RCPT TO`.
    Rcpt,
    /// At `DATA`, before the message is read.
    Data,
    /// After the message was read (`data` ACL, local_scan, size).
    AfterData,
    /// Anywhere else, or not said.
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
    /// When in the dialogue.
    pub stage: Stage,
    /// `temporarily rejected`: a 4xx.
    pub temporary: bool,
    /// The remote host.
    pub host: Option<Host<'a>>,
    /// `U=`: local user or ident.
    pub user: Option<&'a [u8]>,
    /// `F=<...>` (or `F=...` on some builds), or the MAIL argument.
    pub sender: Option<&'a [u8]>,
    /// The RCPT argument.
    pub recipient: Option<&'a [u8]>,
    /// The TLS details, if any.
    pub tls: Tls<'a>,
    /// What the ACL said (the log message), or the rejected command.
    pub reason: &'a [u8],
    /// The SMTP reply code sent, if logged.
    pub smtp_code: Option<SmtpCode<'a>>,
}

/// A session-level line about one remote host (connection, error, timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session<'a> {
    /// The remote host, when the line names one.
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
