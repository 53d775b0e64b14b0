//! Why a delivery was deferred or bounced, as one of a few classes: from
//! the enhanced status code where the remote server gave one, else from
//! the words of the error. Pure; the classes label the metrics, so there
//! are few of them and they never come from the text itself.

use crate::parse::SmtpCode;

/// The classes, each with the name the metrics use.
macro_rules! reason_classes {
    ($($variant:ident => $name:literal,)*) => {
        /// A class of deferral or bounce reason.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ReasonClass {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )*
        }

        impl ReasonClass {
            /// Every class, in declaration order.
            pub const ALL: [ReasonClass; [$(ReasonClass::$variant),*].len()] =
                [$(ReasonClass::$variant),*];

            /// The label value.
            pub fn name(self) -> &'static str {
                match self {
                    $(ReasonClass::$variant => $name,)*
                }
            }
        }
    };
}

reason_classes! {
    RetryTime => "retry_time",
    UnknownRecipient => "unknown_recipient",
    MailboxFull => "mailbox_full",
    Greylisted => "greylisted",
    RateLimited => "rate_limited",
    Policy => "policy",
    Tls => "tls",
    Dns => "dns",
    Routing => "routing",
    Connection => "connection",
    Other => "other",
}

/// Words of error texts, lower case, and the class each means; the first
/// that occurs wins, so the more specific come first.
const WORDS: &[(&str, ReasonClass)] = &[
    ("retry time not reached", ReasonClass::RetryTime),
    ("greylist", ReasonClass::Greylisted),
    ("graylist", ReasonClass::Greylisted),
    ("quota", ReasonClass::MailboxFull),
    ("mailbox full", ReasonClass::MailboxFull),
    ("mailbox is full", ReasonClass::MailboxFull),
    ("insufficient storage", ReasonClass::MailboxFull),
    ("user unknown", ReasonClass::UnknownRecipient),
    ("unknown user", ReasonClass::UnknownRecipient),
    ("no such user", ReasonClass::UnknownRecipient),
    ("does not exist", ReasonClass::UnknownRecipient),
    ("mailbox unavailable", ReasonClass::UnknownRecipient),
    ("invalid recipient", ReasonClass::UnknownRecipient),
    ("unknown recipient", ReasonClass::UnknownRecipient),
    ("rate limit", ReasonClass::RateLimited),
    ("ratelimit", ReasonClass::RateLimited),
    ("too many", ReasonClass::RateLimited),
    ("host lookup did not complete", ReasonClass::Dns),
    ("point to non-existent hosts", ReasonClass::Dns),
    ("dns error", ReasonClass::Dns),
    ("dns lookup", ReasonClass::Dns),
    ("no such domain", ReasonClass::Dns),
    ("unrouteable address", ReasonClass::Routing),
    ("unroutable address", ReasonClass::Routing),
    ("spam", ReasonClass::Policy),
    ("blocked", ReasonClass::Policy),
    ("blacklist", ReasonClass::Policy),
    ("blocklist", ReasonClass::Policy),
    ("policy", ReasonClass::Policy),
    ("dmarc", ReasonClass::Policy),
    ("spf", ReasonClass::Policy),
    ("connection refused", ReasonClass::Connection),
    ("timed out", ReasonClass::Connection),
    ("timeout", ReasonClass::Connection),
    ("network is unreachable", ReasonClass::Connection),
    ("no route to host", ReasonClass::Connection),
    ("connection reset", ReasonClass::Connection),
    ("lost connection", ReasonClass::Connection),
    ("connection closed", ReasonClass::Connection),
    // After the connection words: a TLS failure that ends in "connection
    // reset" is a lost connection to the operator too.
    ("tls", ReasonClass::Tls),
    ("certificate", ReasonClass::Tls),
];

/// The class of a deferral or bounce with this SMTP reply and error text.
///
/// Exim's own words decide first (retry times, its lookup and routing
/// failures, greylisting and quota words, which servers send with vague
/// codes); then the enhanced code's subject (RFC 3463: `x.1` addressing,
/// `x.2` mailbox, `x.4` network, `x.7` policy); then the rest of the words.
pub fn classify(code: Option<&SmtpCode<'_>>, error: &[u8]) -> ReasonClass {
    let word = first_word(error);
    if let Some(
        class @ (ReasonClass::RetryTime
        | ReasonClass::Greylisted
        | ReasonClass::MailboxFull
        | ReasonClass::Dns
        | ReasonClass::Routing
        | ReasonClass::RateLimited),
    ) = word
    {
        return class;
    }
    if let Some(class) = code
        .and_then(|code| code.enhanced)
        .and_then(enhanced_subject)
    {
        return class;
    }
    word.unwrap_or(ReasonClass::Other)
}

/// The class of the first of [`WORDS`] (in their order, not the text's)
/// that occurs in `error`, ignoring ASCII case. One pass over the text
/// for all the words: this runs for every deferral and bounce.
fn first_word(error: &[u8]) -> Option<ReasonClass> {
    static SEARCH: std::sync::LazyLock<Option<aho_corasick::AhoCorasick>> =
        std::sync::LazyLock::new(|| {
            aho_corasick::AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build(WORDS.iter().map(|(word, _)| word))
                .ok()
        });
    let search = SEARCH.as_ref()?;
    search
        .find_overlapping_iter(error)
        .map(|found| found.pattern().as_usize())
        .min()
        .map(|index| WORDS[index].1)
}

/// The class an enhanced status code's subject and detail mean, if they
/// mean one.
fn enhanced_subject(enhanced: &[u8]) -> Option<ReasonClass> {
    let mut parts = enhanced.split(|&b| b == b'.').skip(1);
    let subject = parts.next()?;
    let detail = parts.next()?;
    match (subject, detail) {
        (b"1", _) | (b"2", b"1") => Some(ReasonClass::UnknownRecipient),
        (b"2", b"2") => Some(ReasonClass::MailboxFull),
        (b"4", b"4") => Some(ReasonClass::Routing),
        (b"4", _) => Some(ReasonClass::Connection),
        (b"7", _) => Some(ReasonClass::Policy),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(code: Option<(u16, &str)>, error: &str) -> &'static str {
        let code = code.map(|(code, enhanced)| SmtpCode {
            code,
            enhanced: (!enhanced.is_empty()).then_some(enhanced.as_bytes()),
        });
        classify(code.as_ref(), error.as_bytes()).name()
    }

    #[test]
    fn exims_own_words_decide_first() {
        assert_eq!(class(None, "retry time not reached"), "retry_time");
        assert_eq!(
            class(None, "retry time not reached for any host for 'x.example'"),
            "retry_time"
        );
        assert_eq!(class(None, "Unrouteable address"), "routing");
        assert_eq!(
            class(None, "all relevant MX records point to non-existent hosts"),
            "dns"
        );
        assert_eq!(
            class(
                Some((451, "4.7.1")),
                "SMTP error from remote mail server after RCPT TO:<g@r.example>: 451 4.7.1 Greylisted, try later"
            ),
            "greylisted"
        );
        assert_eq!(
            class(Some((452, "4.2.2")), "452 4.2.2 Over quota"),
            "mailbox_full"
        );
    }

    #[test]
    fn the_enhanced_code_decides_before_the_other_words() {
        assert_eq!(
            class(
                Some((550, "5.1.1")),
                "SMTP error from remote mail server after RCPT TO:<n@r.example>: 550 5.1.1 User unknown"
            ),
            "unknown_recipient"
        );
        assert_eq!(
            class(Some((550, "5.7.1")), "550 5.7.1 Message rejected"),
            "policy"
        );
        // "connection" words, but the server said it is policy.
        assert_eq!(
            class(
                Some((554, "5.7.1")),
                "554 5.7.1 connection refused by policy"
            ),
            "policy"
        );
        assert_eq!(
            class(Some((550, "5.2.1")), "mailbox disabled"),
            "unknown_recipient"
        );
        assert_eq!(class(Some((421, "4.4.2")), "421 4.4.2 bye"), "connection");
        assert_eq!(class(Some((550, "5.4.4")), "550 5.4.4 no route"), "routing");
    }

    #[test]
    fn the_words_decide_without_a_code() {
        assert_eq!(class(None, "Connection refused"), "connection");
        assert_eq!(
            class(
                None,
                "SMTP timeout after end of data (0 bytes written): Connection timed out"
            ),
            "connection"
        );
        assert_eq!(
            class(Some((550, "")), "550 Sender blocked by SPF"),
            "policy"
        );
        assert_eq!(class(None, "TLS session: (SSL_connect): error"), "tls");
        assert_eq!(
            class(Some((421, "")), "421 too many connections"),
            "rate_limited"
        );
        assert_eq!(class(Some((550, "")), "550 Go away"), "other");
        assert_eq!(class(None, ""), "other");
        assert_eq!(class(None, "\u{fffd}\u{0}garbage"), "other");
    }

    #[test]
    fn names_are_distinct_label_values() {
        let mut names: Vec<&str> = ReasonClass::ALL.iter().map(|c| c.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ReasonClass::ALL.len());
        assert!(
            names
                .iter()
                .all(|n| n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        );
    }
}
