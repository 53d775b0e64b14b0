//! Rejection reasons grouped by what they mean, not by the names they
//! carry (pure): `syntactically invalid argument(s): helo74.example` and
//! `...: helo75.example` are one reason. Addresses, IP addresses, numbers
//! and the name after a HELO or an invalid argument are masked; the rest,
//! DNS-list zones included, is kept, because it says why.

/// The group `reason` counts in.
pub fn group(reason: &str) -> String {
    let mut out = String::with_capacity(reason.len());
    let mut name_next = false;
    for (index, word) in reason.split(' ').enumerate() {
        if index > 0 {
            out.push(' ');
        }
        let core = word.trim_matches(|c: char| "<>[]():,;\"'".contains(c));
        let masked = if core.is_empty() {
            None
        } else if name_next {
            Some("NAME")
        } else if core.contains('@') {
            Some("ADDR")
        } else if is_ip(core) {
            Some("IP")
        } else if core.bytes().all(|b| b.is_ascii_digit()) {
            Some("N")
        } else {
            None
        };
        match masked {
            Some(placeholder) => out.push_str(&word.replacen(core, placeholder, 1)),
            None => out.push_str(word),
        }
        name_next = core.eq_ignore_ascii_case("EHLO")
            || core.eq_ignore_ascii_case("HELO")
            || word.ends_with("argument(s):");
    }
    out
}

/// Whether `word` is an IPv4 or IPv6 address (or one with a port).
fn is_ip(word: &str) -> bool {
    let dots = word.bytes().filter(|&b| b == b'.').count();
    let colons = word.bytes().filter(|&b| b == b':').count();
    let digits = word.bytes().any(|b| b.is_ascii_digit());
    digits
        && (dots == 3
            && word
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'.' || b == b':')
            || colons >= 2
                && word
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_masked_and_meaning_is_kept() {
        assert_eq!(
            group("syntactically invalid argument(s): helo74.example"),
            group("syntactically invalid argument(s): helo75.example")
        );
        assert_eq!(
            group("syntactically invalid argument(s): helo74.example"),
            "syntactically invalid argument(s): NAME"
        );
        assert_eq!(
            group("rejected because 192.0.2.7 is in a black list at zen.spamhaus.org"),
            "rejected because IP is in a black list at zen.spamhaus.org"
        );
        assert_eq!(
            group("<bob@example.org>: Recipient address rejected"),
            "<ADDR>: Recipient address rejected"
        );
        assert_eq!(group("EHLO x"), "EHLO NAME");
        assert_eq!(group("relay not permitted"), "relay not permitted");
        assert_eq!(
            group("message too big: read=100 max=50"),
            "message too big: read=100 max=50"
        );
        assert_eq!(group("[2001:db8::1] is listed"), "[IP] is listed");
    }
}
