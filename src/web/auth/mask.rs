//! What a viewer may not see: mail addresses. `alice@example.com` becomes
//! `a***@example.com` (the first character of the local part and the
//! domain stay, so a viewer can still tell messages apart and see where
//! mail goes). Masked whole: a quoted local part (`"john doe"@...`), any
//! character an address may hold (`o'brien`, IDN), domains without a dot
//! (`root@localhost`) and address literals (`carol@[192.0.2.77]`).

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Largest answer masked for a viewer (pages and answers are bounded far
/// below this).
const MASKED_BODY_BYTES: usize = 32 << 20;

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
/// user name, a file, a pipe) keeps only its first character.
pub(crate) fn mask_address(address: &str) -> String {
    let (local, domain) = match address.rfind('@') {
        Some(at) => (&address[..at], Some(&address[at..])),
        None => (address, None),
    };
    let first = local
        .trim_start_matches("&quot;")
        .trim_start_matches('"')
        .chars()
        .next()
        .map(String::from)
        .unwrap_or_default();
    format!("{first}***{}", domain.unwrap_or_default())
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

/// A whole answer, its addresses masked.
pub(crate) async fn mask_response(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MASKED_BODY_BYTES).await else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the answer was too large to mask",
        )
            .into_response();
    };
    let text = String::from_utf8_lossy(&bytes);
    let masked = mask_addresses(&text).into_owned();
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(masked))
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
}
