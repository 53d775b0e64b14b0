//! What happened to a message: its reception and each delivery result.

use super::parse_decimal;
use super::{AddressPart, EximDuration, Host, MessageId, SmtpCode, Tls};

/// `<=` and `(=`: a message arrived.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reception<'a> {
    /// `(=`: accepted, but the client was told it was rejected.
    pub fake_reject: bool,
    /// The envelope sender; `<>` for bounces.
    pub sender: &'a [u8],
    /// `R=`: on a bounce, the message that bounced.
    pub bounce_of: Option<MessageId<'a>>,
    /// The sending host (`H=`), absent for local submissions.
    pub host: Option<Host<'a>>,
    /// `I=`: the local interface.
    pub interface: Option<&'a [u8]>,
    /// `U=`: ident or local login.
    pub user: Option<&'a [u8]>,
    /// `P=`: received protocol.
    pub protocol: Option<&'a [u8]>,
    /// `X=`, `CV=`, `DN=`: the TLS details, if any.
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
    /// `=>` to nothing: a recipient discarded (`:blackhole:`, a filter
    /// that generated no delivery), or all of a message's (`=> blackhole
    /// (DATA ACL discarded recipients)`, `=> discarded (system filter)`).
    /// Exim writes `=>`; nothing was delivered.
    Discarded,
}

impl DeliveryFlag {
    /// The flag as Exim writes it.
    pub fn symbol(self) -> &'static str {
        match self {
            DeliveryFlag::Delivered | DeliveryFlag::Discarded => "=>",
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
    /// Which result line this is.
    pub flag: DeliveryFlag,
    /// The recipient: final address, parent, original.
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
    /// The host delivered to or tried (`H=`).
    pub host: Option<Host<'a>>,
    /// `I=`: the local interface.
    pub interface: Option<&'a [u8]>,
    /// `ST=`: a shadow transport.
    pub shadow_transport: Option<&'a [u8]>,
    /// `X=`, `CV=`, `DN=`: the TLS details, if any.
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
    /// `PRDR`: per-recipient data response was used.
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
