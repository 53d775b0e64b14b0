//! The shape of a line the parser could not place: its words with what
//! varies from line to line (numbers, addresses, hosts, quoted text, ids)
//! replaced by placeholders, so that `parse --unrecognised` can count lines
//! of one format together and an operator can report the format, not the
//! data. Pure.

/// Words of a shape at most: the format shows in its first words.
const MAX_WORDS: usize = 14;

/// The shape of `body` (a line after its timestamp, pid and id).
pub fn shape(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut words = Vec::new();
    let mut rest = text.as_ref();
    while let Some(word) = next_word(&mut rest) {
        if words.len() == MAX_WORDS {
            words.push("…".to_owned());
            break;
        }
        words.push(placeholder(word));
    }
    words.join(" ")
}

/// The next word of `rest`, a quoted run counting as one.
fn next_word<'a>(rest: &mut &'a str) -> Option<&'a str> {
    let trimmed = rest.trim_start();
    if trimmed.is_empty() {
        return None;
    }
    let end = if let Some(quoted) = trimmed.strip_prefix('"') {
        quoted.find('"').map_or(trimmed.len(), |at| at + 2)
    } else {
        trimmed.find(' ').unwrap_or(trimmed.len())
    };
    let (word, after) = trimmed.split_at(end);
    *rest = after;
    Some(word)
}

/// What a word becomes: kept when it is plain text, else a placeholder
/// for its sort, its leading tag (`H=`) and surrounding punctuation kept.
fn placeholder(word: &str) -> String {
    if let Some((tag, value)) = word.split_once('=')
        && !tag.is_empty()
        && tag.bytes().all(|b| b.is_ascii_alphabetic())
    {
        return format!("{tag}={}", placeholder(value));
    }
    let core = word.trim_matches(|c: char| "<>[]():,;".contains(c));
    if core.is_empty() {
        return word.to_owned();
    }
    let replaced = if core.starts_with('"') {
        "\"…\""
    } else if core.contains('@') {
        "ADDR"
    } else if core.bytes().any(|b| b.is_ascii_digit()) {
        let number = core.strip_prefix('-').unwrap_or(core);
        if number.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            && number.bytes().filter(|&b| b == b'.').count() <= 1
        {
            "N"
        } else if core
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b':')
        {
            "IP"
        } else {
            "X"
        }
    } else if core.contains('.')
        && core
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    {
        "HOST"
    } else {
        return word.to_owned();
    };
    word.replacen(core, replaced, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_one_format_share_a_shape() {
        let a = shape(b"spool directory space check failed: space=1024 inodes=77");
        let b = shape(b"spool directory space check failed: space=-1 inodes=0");
        assert_eq!(a, "spool directory space check failed: space=N inodes=N");
        assert_eq!(a, b);
        assert_eq!(
            shape(b"DNS list lookup defer (probably timeout) for 7.2.0.192.zen.spamhaus.org: assuming not listed"),
            "DNS list lookup defer (probably timeout) for X: assuming not listed"
        );
        assert_eq!(
            shape(b"[192.0.2.7] after QUIT, client reset TCP before SMTP response and TLS close"),
            "[IP] after QUIT, client reset TCP before SMTP response and TLS close"
        );
        assert_eq!(
            shape(b"Process failed (1) when writing error message to bob@example.org (frozen)"),
            "Process failed (N) when writing error message to ADDR (frozen)"
        );
        assert_eq!(
            shape(b"lookup of \"a b c\" for mx.example.net"),
            "lookup of \"…\" for HOST"
        );
        let long = "word ".repeat(40);
        assert!(shape(long.as_bytes()).ends_with(" …"));
    }
}
