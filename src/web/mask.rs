//! What a viewer may not see: mail addresses. `alice@example.com` becomes
//! `a***@example.com` (the first character of the local part and the
//! domain stay, so a viewer can still tell messages apart and see where
//! mail goes); a local delivery target (`alice`, `/var/mail/bobby`, a
//! pipe) keeps only its first character.
//!
//! Masked from the model, not from the text: a raw line is parsed and
//! every field the parser reads as an address (sender, recipients,
//! delivery targets, their parents and originals, return path, `A=`,
//! `U=`, a rejected sender or recipient) is masked where it stands; a
//! structured answer masks its address fields ([`Masked`]). Only free text
//! (error messages, subjects, confirmations) is masked by pattern, and
//! every viewer's answer passes that pattern once more as a net.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::config::WebRole;
use crate::parse::{Event, parse_line};

/// An address in free text: a local part (quoted, or a run of characters
/// an address may hold) and a domain (a literal in brackets, or a run of
/// characters a domain name may hold, IDN included).
const ADDRESS: &str = r#"(?x)
    (?P<local> "(?:[^"\\\r\n]|\\.)*" | &quot;[^&\r\n]*&quot; | [^\s"<>()\[\],;:@&/|]+ )
    @
    (?P<domain> \[[^\]\s]{1,80}\] | [\p{L}\p{N}](?:[\p{L}\p{N}-]*[\p{L}\p{N}])?(?:\.[\p{L}\p{N}](?:[\p{L}\p{N}-]*[\p{L}\p{N}])?)* )
"#;

/// `address` as a viewer sees it: the local part's first character and
/// `***`, then the domain; a local delivery target without a domain (a
/// user name, a file, a pipe) keeps only its first character. The null
/// sender `<>` and an empty field stay as they are: they name nobody.
pub(crate) fn mask_address(address: &str) -> String {
    if address.is_empty() || address == "<>" {
        return address.to_owned();
    }
    let (local, domain) = match address.rfind('@') {
        Some(at) => (&address[..at], Some(&address[at..])),
        None => (address, None),
    };
    let first = local
        .trim_start_matches('<')
        .trim_start_matches("&quot;")
        .trim_start_matches('"')
        .chars()
        .next()
        .map(String::from)
        .unwrap_or_default();
    // Angle brackets around the address stay, so the text around it reads
    // as before.
    let open = if local.starts_with('<') { "<" } else { "" };
    let close = if domain.is_none() && !open.is_empty() && local.ends_with('>') {
        ">"
    } else {
        ""
    };
    format!("{open}{first}***{}{close}", domain.unwrap_or_default())
}

/// Every address in `text` masked.
pub(crate) fn mask_addresses(text: &str) -> std::borrow::Cow<'_, str> {
    static PATTERN: std::sync::LazyLock<Option<regex::Regex>> =
        std::sync::LazyLock::new(|| regex::Regex::new(ADDRESS).ok());
    match PATTERN.as_ref() {
        Some(pattern) => pattern.replace_all(text, |found: &regex::Captures<'_>| {
            let local = found.name("local").map_or("", |m| m.as_str());
            let domain = found.name("domain").map_or("", |m| m.as_str());
            mask_address(&format!("{local}@{domain}"))
        }),
        // Never reached: the pattern is fixed. Mask everything rather than
        // show what a viewer may not see.
        None => std::borrow::Cow::Owned(String::new()),
    }
}

/// A whole answer's bytes, their addresses masked by pattern: the net
/// under the field masking, for any free text a field did not cover.
pub(crate) fn mask_body(body: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(body);
    mask_addresses(&text).into_owned().into_bytes()
}

/// One raw log line as a viewer sees it: each field the parser reads as
/// an address masked where it stands, then the free text around them by
/// pattern.
pub(crate) fn mask_line(line: &[u8]) -> String {
    let entry = parse_line(line);
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut add = |field: &[u8]| {
        if let Some(span) = span_in(line, field) {
            spans.push(span);
        }
    };
    for field in address_fields(&entry.event) {
        add(field);
    }
    spans.sort_unstable();
    let mut out = String::with_capacity(line.len());
    let mut at = 0;
    for (start, end) in spans {
        if start < at {
            // Overlapping fields (an original inside its parents): the
            // first one masked covers it.
            continue;
        }
        out.push_str(&mask_addresses(&String::from_utf8_lossy(&line[at..start])));
        out.push_str(&mask_list(&String::from_utf8_lossy(&line[start..end])));
        at = end;
    }
    out.push_str(&mask_addresses(&String::from_utf8_lossy(&line[at..])));
    out
}

/// Where `field`, a slice of `line`, stands in it.
fn span_in(line: &[u8], field: &[u8]) -> Option<(usize, usize)> {
    let base = line.as_ptr() as usize;
    let start = (field.as_ptr() as usize).checked_sub(base)?;
    let end = start.checked_add(field.len())?;
    (!field.is_empty() && end <= line.len()).then_some((start, end))
}

/// A field holding one address or several (parents are comma-separated).
fn mask_list(field: &str) -> String {
    field
        .split(',')
        .map(|piece| {
            let trimmed = piece.trim_start();
            let lead = &piece[..piece.len() - trimmed.len()];
            format!("{lead}{}", mask_address(trimmed))
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The fields of an entry that name a person or a mailbox.
fn address_fields<'a>(event: &Event<'a>) -> Vec<&'a [u8]> {
    let mut fields: Vec<&'a [u8]> = Vec::new();
    match event {
        Event::Reception(r) => {
            fields.push(r.sender);
            fields.extend(r.received_sender);
            fields.extend(r.auth);
            fields.extend(r.user);
            fields.extend(r.recipient_list());
        }
        Event::Delivery(d) => {
            fields.push(d.address.final_address);
            fields.extend(d.address.parents);
            fields.extend(d.address.original);
            fields.extend(d.sender);
            fields.extend(d.return_path);
            fields.extend(d.auth);
        }
        Event::ErrorIgnored { address } => fields.push(address),
        Event::SenderVerify { sender, .. } => fields.push(sender),
        Event::Rejection(r) => {
            fields.extend(r.sender);
            fields.extend(r.recipient);
            fields.extend(r.user);
        }
        Event::AuthFailed {
            session, set_id, ..
        } => {
            fields.extend(*set_id);
            fields.extend(session.user);
        }
        other => fields.extend(other.session().and_then(|s| s.user)),
    }
    fields
}

/// Whom an answer is for: a viewer's answers are masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Masking {
    viewer: bool,
}

impl Masking {
    /// For `role`.
    pub(crate) fn of(role: WebRole) -> Masking {
        Masking {
            viewer: role == WebRole::Viewer,
        }
    }

    /// Whether anything is masked.
    pub(crate) fn masks(self) -> bool {
        self.viewer
    }

    /// `value` as its reader may see it.
    pub(crate) fn apply<T: Masked>(self, mut value: T) -> T {
        if self.viewer {
            value.mask();
        }
        value
    }

    /// A raw line as its reader may see it.
    pub(crate) fn line(self, bytes: &[u8]) -> String {
        if self.viewer {
            mask_line(bytes)
        } else {
            String::from_utf8_lossy(bytes).into_owned()
        }
    }
}

/// The request's masking, as the guard set it from the session; a request
/// without one is masked.
impl<S: Send + Sync> FromRequestParts<S> for Masking {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Masking>()
            .copied()
            .unwrap_or(Masking { viewer: true }))
    }
}

/// An answer whose address fields can be masked for a viewer.
pub(crate) trait Masked {
    /// Masks every address field, and free text by pattern.
    fn mask(&mut self);
}

impl<T: Masked> Masked for Vec<T> {
    fn mask(&mut self) {
        self.iter_mut().for_each(Masked::mask);
    }
}

/// Free text, masked by pattern in place.
fn mask_text(text: &mut String) {
    if let std::borrow::Cow::Owned(masked) = mask_addresses(text) {
        *text = masked;
    }
}

/// An address field, masked in place.
fn mask_field(address: &mut String) {
    *address = mask_address(address);
}

impl Masked for crate::query::trace::TracedMessage {
    fn mask(&mut self) {
        self.sender.iter_mut().for_each(mask_field);
        self.subject.iter_mut().for_each(mask_text);
        self.header_message_id.iter_mut().for_each(mask_text);
        for recipient in &mut self.recipients {
            mask_field(&mut recipient.address);
            recipient.final_address.iter_mut().for_each(mask_field);
        }
        for attempt in &mut self.attempts {
            attempt.address.iter_mut().for_each(mask_field);
            attempt.error.iter_mut().for_each(mask_text);
            attempt.confirmation.iter_mut().for_each(mask_text);
        }
        for line in &mut self.lines {
            *line = mask_line(line.as_bytes());
        }
    }
}

impl Masked for crate::query::stuck::Stuck {
    fn mask(&mut self) {
        self.address.iter_mut().for_each(mask_field);
        self.last_error.iter_mut().for_each(mask_text);
        self.held.iter_mut().for_each(mask_text);
    }
}

impl Masked for crate::query::stuck::Frozen {
    fn mask(&mut self) {
        self.reason.iter_mut().for_each(mask_text);
    }
}

impl Masked for crate::query::stuck::StuckReport {
    fn mask(&mut self) {
        self.waiting.mask();
        self.frozen.mask();
    }
}

impl Masked for crate::query::queue::QueuedView {
    fn mask(&mut self) {
        mask_field(&mut self.sender);
        for recipient in &mut self.recipients {
            mask_field(&mut recipient.address);
            recipient.delay_reason.iter_mut().for_each(mask_text);
        }
    }
}

impl Masked for crate::query::stats::Stats {
    fn mask(&mut self) {
        for row in &mut self.top_senders {
            mask_field(&mut row.key);
        }
        for row in self.rejections_by_reason.iter_mut().chain(&mut self.errors) {
            mask_text(&mut row.key);
        }
    }
}

#[cfg(feature = "fleet")]
impl Masked for crate::query::fleet::trace::Journey {
    fn mask(&mut self) {
        self.header_message_ids.iter_mut().for_each(mask_text);
        for line in &mut self.lines {
            line.text = mask_line(line.text.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_masked_for_viewers_wherever_they_stand() {
        assert_eq!(mask_addresses("alice@example.com"), "a***@example.com");
        assert_eq!(
            mask_addresses("F=&lt;bob.smith+tag@mail.example.org&gt; rejected"),
            "F=&lt;b***@mail.example.org&gt; rejected"
        );
        assert_eq!(
            mask_addresses("{\"sender\":\"x@y.example\",\"host\":\"[192.0.2.1]\"}"),
            "{\"sender\":\"x***@y.example\",\"host\":\"[192.0.2.1]\"}"
        );
        assert_eq!(mask_addresses("no address here"), "no address here");
    }

    #[test]
    fn the_shapes_a_regex_of_letters_missed_are_masked_whole() {
        for (text, masked) in [
            ("<\"john doe\"@example.com>", "<j***@example.com>"),
            ("root@localhost", "r***@localhost"),
            ("r\u{e9}mi@b\u{fc}cher.example", "r***@b\u{fc}cher.example"),
            ("carol@[192.0.2.77]", "c***@[192.0.2.77]"),
            ("o'brien@example.com", "o***@example.com"),
            (
                "&lt;&quot;john doe&quot;@example.com&gt;",
                "&lt;j***@example.com&gt;",
            ),
            ("<SRS0=ab=cd@example.com>", "<S***@example.com>"),
            ("=> <dave@example.com> R=x", "=> <d***@example.com> R=x"),
        ] {
            let out = mask_addresses(text);
            assert_eq!(out, masked, "{text}");
        }
        assert_eq!(mask_address("alice"), "a***");
        assert_eq!(mask_address("/var/mail/bobby"), "/***");
    }

    /// Lines whose addresses only the parser can find: local delivery
    /// targets, quoted local parts, dotless and literal domains.
    const LINES: [&str; 8] = [
        "2026-12-01 10:00:00 1vXyZa-000001-AB => alice <alice@mail.example> R=localuser T=local_delivery",
        "2026-12-01 10:00:00 1vXyZa-000001-AB => /var/mail/bobby <bobby@mail.example> R=userforward T=address_file",
        "2026-12-01 10:00:00 1vXyZa-000001-AB => |/usr/bin/procmail (carl@mail.example) <carl@mail.example> R=userforward T=address_pipe",
        "2026-12-01 10:00:00 1vXyZa-000001-AB <= \"john doe\"@sender.example H=mx.sender.example [192.0.2.1] P=esmtp S=1234 for carol@[192.0.2.77] root@localhost",
        "2026-12-01 10:00:00 1vXyZa-000001-AB ** root@localhost: Unrouteable address",
        "2026-12-01 10:00:00 H=mx.bad.example [192.0.2.9] F=<o'brien@b\u{fc}cher.example> rejected RCPT <dave@mail.example>: relay not permitted",
        "2026-12-01 10:00:00 1vXyZa-000001-AB <= frank@sender.example U=frank P=local S=300 A=plain:frank.smith for gina@mail.example",
        "2026-12-01 10:00:00 1vXyZa-000001-AB == hank@mail.example R=dnslookup T=remote_smtp defer (-44) H=mx.mail.example [192.0.2.3]: SMTP error from remote mail server after RCPT TO:<hank@mail.example>: 451 4.7.1 ivan@elsewhere.example greylisted",
    ];

    #[test]
    fn a_line_is_masked_from_the_parsers_fields_not_from_its_text() {
        let secrets = [
            "alice", "bobby", "carl", "john", "carol", "root", "brien", "dave", "frank", "gina",
            "hank", "ivan",
        ];
        for line in LINES {
            let masked = mask_line(line.as_bytes());
            for secret in secrets {
                assert!(!masked.contains(secret), "{secret} in {masked}");
            }
            // What is not an address stays: the prefix, routers, hosts.
            assert!(masked.starts_with("2026-12-01 10:00:00 "), "{masked}");
        }
        assert_eq!(
            mask_line(LINES[0].as_bytes()),
            "2026-12-01 10:00:00 1vXyZa-000001-AB => a*** <a***@mail.example> R=localuser T=local_delivery"
        );
        assert_eq!(
            mask_line(LINES[1].as_bytes()),
            "2026-12-01 10:00:00 1vXyZa-000001-AB => /*** <b***@mail.example> R=userforward T=address_file"
        );
        assert!(
            mask_line(LINES[5].as_bytes())
                .contains("F=<o***@b\u{fc}cher.example> rejected RCPT <d***@mail.example>")
        );
    }

    #[test]
    fn structured_answers_mask_their_address_fields() {
        use crate::query::stuck::Stuck;
        let masking = Masking::of(WebRole::Viewer);
        let stuck = masking.apply(vec![Stuck {
            message: "1vXyZa-000001-AB".to_owned(),
            received_at: None,
            address: Some("alice".to_owned()),
            status: "deferred".to_owned(),
            last_attempt_at: None,
            last_error: Some("mailbox of bob@example.com full".to_owned()),
            held: Some("Delivery deferred by system filter: hold for bob@example.com".to_owned()),
        }]);
        assert_eq!(stuck[0].address.as_deref(), Some("a***"));
        let report = masking.apply(crate::query::stuck::StuckReport {
            waiting: Vec::new(),
            frozen: vec![crate::query::stuck::Frozen {
                message: "1vXyZa-000001-AB".to_owned(),
                received_at: None,
                frozen_at: None,
                reason: Some(
                    "Process failed (1) when writing error message to bob@example.com".to_owned(),
                ),
                waiting_recipients: 0,
            }],
        });
        assert_eq!(
            report.frozen[0].reason.as_deref(),
            Some("Process failed (1) when writing error message to b***@example.com")
        );
        assert_eq!(
            stuck[0].last_error.as_deref(),
            Some("mailbox of b***@example.com full")
        );
        assert_eq!(
            stuck[0].held.as_deref(),
            Some("Delivery deferred by system filter: hold for b***@example.com")
        );
        let admin = Masking::of(WebRole::Admin);
        assert_eq!(admin.line(LINES[0].as_bytes()), LINES[0]);
        assert_eq!(mask_address("<>"), "<>");
    }
}
