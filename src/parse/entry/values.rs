//! The values inside entries: hosts, durations, SMTP codes, address parts
//! and TLS details, each borrowed from the line.

/// A remote host as Exim logs it: `name (helo) [ip]:port`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Host<'a> {
    /// The verified (or, outbound, configured) host name.
    pub name: Option<&'a [u8]>,
    /// What the client said in HELO/EHLO, unverified.
    pub helo: Option<&'a [u8]>,
    /// The IP address in brackets.
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
    /// As written.
    pub raw: &'a [u8],
    /// In milliseconds; `None` for test-suite placeholders such as `qqs`.
    pub millis: Option<i64>,
}

/// An SMTP reply code found in free text: `550` and maybe `5.1.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmtpCode<'a> {
    /// The basic code: 250, 451, 550...
    pub code: u16,
    /// The enhanced status code (`5.1.1`), if given.
    pub enhanced: Option<&'a [u8]>,
}

impl SmtpCode<'_> {
    /// 4xx: a temporary failure.
    pub fn is_temporary(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// The code as a store keeps it: `550 5.1.1`, or `550` without an
    /// enhanced code.
    pub fn to_text(&self) -> String {
        match self.enhanced {
            Some(enhanced) => format!("{} {}", self.code, String::from_utf8_lossy(enhanced)),
            None => self.code.to_string(),
        }
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

/// A decimal number without sign, as Exim prints sizes and ports.
pub fn parse_decimal<T: TryFrom<u64>>(digits: &[u8]) -> Option<T> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value = digits
        .iter()
        .fold(0u64, |acc, digit| acc * 10 + u64::from(digit - b'0'));
    T::try_from(value).ok()
}
