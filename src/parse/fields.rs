//! Small parsers shared by the line parsers: tokens, quoted values, hosts,
//! Exim time values and SMTP codes. All work on bytes and borrow.

use nom::branch::alt;
use nom::bytes::complete::{tag, take_while_m_n, take_while1};
use nom::character::complete::{char, digit1};
use nom::combinator::{opt, recognize};
use nom::sequence::{pair, preceded};
use nom::{IResult, Parser};

pub use super::entry::parse_decimal;
use super::entry::{EximDuration, Host, SmtpCode};

/// Splits at the first space: `(token, rest after the space)`. The rest is
/// empty when there is no space.
pub fn token(input: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memchr(b' ', input) {
        Some(index) => (&input[..index], &input[index + 1..]),
        None => (input, &[]),
    }
}

/// `input` without `prefix`, if it starts with it.
pub fn after<'a>(input: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    input.strip_prefix(prefix)
}

/// The position of the first occurrence of `needle`, one of the parser's
/// short constant tags. `memmem::find` builds a searcher on every call,
/// which cost more than the search on a log line; this scans for the
/// needle's first byte with memchr and compares there.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let Some((&first, rest)) = needle.split_first() else {
        return Some(0);
    };
    memchr::memchr_iter(first, haystack).find(|&at| haystack[at + 1..].starts_with(rest))
}

/// The position of the first occurrence of any of `needles` (each
/// starting with a space), in one pass over the spaces of `haystack`.
pub fn find_first_tag(haystack: &[u8], needles: &[&[u8]]) -> Option<usize> {
    memchr::memchr_iter(b' ', haystack).find(|&at| {
        needles
            .iter()
            .any(|needle| haystack[at..].starts_with(needle))
    })
}

/// A double-quoted value starting at `input[0] == '"'`: the content without
/// the quotes (escapes kept), and the rest after the closing quote. A
/// backslash escapes the next byte. An unterminated value runs to the end.
pub fn quoted(input: &[u8]) -> (&[u8], &[u8]) {
    let body = &input[1.min(input.len())..];
    let mut index = 0;
    while index < body.len() {
        match body[index] {
            b'\\' => index += 2,
            b'"' => return (&body[..index], &body[index + 1..]),
            _ => index += 1,
        }
    }
    (body, &[])
}

/// An angle-bracketed address at the start of `input`: the content and the
/// rest after `>`. Without brackets, the token up to the next space.
pub fn bracketed(input: &[u8]) -> (&[u8], &[u8]) {
    if input.first() == Some(&b'<')
        && let Some(end) = memchr::memchr(b'>', input)
    {
        let rest = &input[end + 1..];
        return (&input[1..end], rest.strip_prefix(b" ").unwrap_or(rest));
    }
    token(input)
}

/// A quoted value (`T=`, `C=`) as the text a store keeps: unescaped, and
/// invalid UTF-8 replaced. The model and the fleet both store it so.
pub fn quoted_text(value: &[u8]) -> String {
    String::from_utf8_lossy(&unescape_quoted(value)).into_owned()
}

/// Unescapes a quoted value as Exim writes `T=` and `C=`: `\"`, `\\`,
/// `\n`, `\t` and friends, and three-digit octal escapes. Bytes stay bytes
/// (octal escapes are often Latin-1). Allocates only when there is an
/// escape.
pub fn unescape_quoted(value: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if memchr::memchr(b'\\', value).is_none() {
        return std::borrow::Cow::Borrowed(value);
    }
    let mut out = Vec::with_capacity(value.len());
    let mut index = 0;
    while index < value.len() {
        let byte = value[index];
        if byte != b'\\' || index + 1 == value.len() {
            out.push(byte);
            index += 1;
            continue;
        }
        let next = value[index + 1];
        let octal = value
            .get(index + 1..index + 4)
            .filter(|digits| digits.iter().all(|d| (b'0'..=b'7').contains(d)));
        if let Some(digits) = octal {
            let code = digits
                .iter()
                .fold(0u32, |acc, digit| acc * 8 + u32::from(digit - b'0'));
            out.push(u8::try_from(code).unwrap_or(b'?'));
            index += 4;
            continue;
        }
        out.push(match next {
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'b' => 0x08,
            b'v' => 0x0b,
            b'f' => 0x0c,
            other => other,
        });
        index += 2;
    }
    std::borrow::Cow::Owned(out)
}

/// A host in Exim's `name (helo) [ip]:port` form, starting right after
/// `H=` (or `from `). Also reads outbound forms: `name DS [ip]:port*`.
/// Returns `None` when `input` does not start like a host.
pub fn host(input: &[u8]) -> Option<(Host<'_>, &[u8])> {
    let mut host = Host::default();
    let mut rest = input;
    match rest.first()? {
        b'[' => {}
        b'(' => {
            let (helo, after) = helo(rest)?;
            host.helo = Some(helo);
            rest = after;
        }
        _ => {
            let (name, after) = token(rest);
            if name.is_empty() {
                return None;
            }
            host.name = Some(name);
            rest = after;
            if rest.first() == Some(&b'(')
                && let Some((helo, after)) = helo(rest)
            {
                host.helo = Some(helo);
                rest = after;
            }
        }
    }
    if let Some(after) = rest.strip_prefix(b"DS ") {
        host.dnssec = true;
        rest = after;
    }
    if rest.first() == Some(&b'[') {
        if let Some(end) = memchr::memchr(b']', rest) {
            host.ip = Some(&rest[1..end]);
            rest = &rest[end + 1..];
            if let Some(after) = rest.strip_prefix(b":") {
                let port_len = after
                    .iter()
                    .position(|&b| matches!(b, b' ' | b'*' | b':'))
                    .unwrap_or(after.len());
                if port_len > 0 {
                    host.port = Some(&after[..port_len]);
                    rest = &after[port_len..];
                }
            }
            if let Some(after) = rest.strip_prefix(b"*") {
                host.continued = true;
                rest = after;
            }
            rest = rest.strip_prefix(b" ").unwrap_or(rest);
        }
    } else if host.name.is_none() {
        return None;
    } else if host.helo.is_none() {
        // `H=name` alone: no IP was logged (or the name was the IP).
    }
    Some((host, rest))
}

/// `(helo) ` followed by `[`: the HELO may contain anything, even spaces
/// and parentheses, so it ends at the `) [` before the IP.
fn helo(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = find(input, b") [")?;
    Some((&input[1..end], &input[end + 2..]))
}

/// An Exim time value: `[-][Nw][Nd][Nh][Nm][N[.fff]s]`.
pub fn duration(raw: &[u8]) -> EximDuration<'_> {
    let millis = exim_time(raw)
        .ok()
        .filter(|(rest, _)| rest.is_empty())
        .map(|(_, ms)| ms);
    EximDuration { raw, millis }
}

fn exim_time(input: &[u8]) -> IResult<&[u8], i64> {
    let (input, negative) = opt(char('-')).parse(input)?;
    let mut total: i64 = 0;
    let mut any = false;
    let mut rest = input;
    for (unit, factor) in [
        (b'w', 604_800_000i64),
        (b'd', 86_400_000),
        (b'h', 3_600_000),
        (b'm', 60_000),
    ] {
        if let Ok((after, value)) = number_then(rest, unit) {
            total = total.saturating_add(value.saturating_mul(factor));
            rest = after;
            any = true;
        }
    }
    if let Ok((after, (whole, fraction))) = seconds(rest) {
        total = total.saturating_add(whole.saturating_mul(1000).saturating_add(fraction));
        rest = after;
        any = true;
    }
    if !any {
        return Err(nom::Err::Error(nom::error::Error::new(
            input,
            nom::error::ErrorKind::Digit,
        )));
    }
    Ok((rest, if negative.is_some() { -total } else { total }))
}

fn number_then(input: &[u8], unit: u8) -> IResult<&[u8], i64> {
    let (rest, digits) = digit1(input)?;
    let (rest, _) = char(char::from(unit)).parse(rest)?;
    Ok((rest, decimal(digits)))
}

fn seconds(input: &[u8]) -> IResult<&[u8], (i64, i64)> {
    let (rest, whole) = digit1(input)?;
    let (rest, fraction) = opt(preceded(
        char('.'),
        take_while_m_n(1, 3, |b: u8| b.is_ascii_digit()),
    ))
    .parse(rest)?;
    let (rest, _) = char('s').parse(rest)?;
    let millis = fraction.map_or(0, |digits: &[u8]| {
        let value = decimal(digits);
        value * [100, 10, 1][digits.len() - 1]
    });
    Ok((rest, (decimal(whole), millis)))
}

fn decimal(digits: &[u8]) -> i64 {
    digits
        .iter()
        .take(18)
        .fold(0i64, |acc, digit| acc * 10 + i64::from(digit - b'0'))
}

/// The first SMTP reply code in free text: three digits starting with 2, 4
/// or 5, standing alone (after start, space, `:` or `"`; before space, `-`
/// or end), with the enhanced status code that may follow (`5.1.1`).
pub fn smtp_code(text: &[u8]) -> Option<SmtpCode<'_>> {
    let mut start = 0;
    while let Some(offset) = text[start..]
        .iter()
        .position(|b| matches!(b, b'2' | b'4' | b'5'))
    {
        let index = start + offset;
        start = index + 1;
        let boundary_before = index == 0 || matches!(text[index - 1], b' ' | b':' | b'"');
        if !boundary_before {
            continue;
        }
        if let Ok((_, code)) = reply_code(&text[index..]) {
            return Some(code);
        }
    }
    None
}

fn reply_code(input: &[u8]) -> IResult<&[u8], SmtpCode<'_>> {
    let (rest, digits) = recognize(pair(
        take_while_m_n(1, 1, |b: u8| matches!(b, b'2' | b'4' | b'5')),
        take_while_m_n(2, 2, |b: u8| b.is_ascii_digit()),
    ))
    .parse(input)?;
    if rest.first().is_some_and(|b| !matches!(b, b' ' | b'-')) {
        return Err(nom::Err::Error(nom::error::Error::new(
            rest,
            nom::error::ErrorKind::Verify,
        )));
    }
    let code = u16::try_from(decimal(digits)).unwrap_or(0);
    let (rest, enhanced) = opt(preceded(
        alt((tag(" "), tag("-"))),
        recognize((
            take_while_m_n(1, 1, |b: u8| b == digits[0]),
            char('.'),
            take_while1(|b: u8| b.is_ascii_digit()),
            char('.'),
            take_while1(|b: u8| b.is_ascii_digit()),
        )),
    ))
    .parse(rest)?;
    Ok((rest, SmtpCode { code, enhanced }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_finds_the_first_occurrence_like_memmem() {
        let haystacks: [&[u8]; 5] = [b"", b"a", b" R=x T=y R=z", b"RRR=R=", b"ab ab abc"];
        let needles: [&[u8]; 6] = [b"", b"R=", b" R=", b"abc", b"zz", b" "];
        for haystack in haystacks {
            for needle in needles {
                assert_eq!(
                    find(haystack, needle),
                    memchr::memmem::find(haystack, needle),
                    "{:?} in {:?}",
                    String::from_utf8_lossy(needle),
                    String::from_utf8_lossy(haystack)
                );
            }
        }
        assert_eq!(find_first_tag(b"a@b T=t R=r", &[b" R=", b" T="]), Some(3));
        assert_eq!(find_first_tag(b"a@b", &[b" R="]), None);
    }

    #[test]
    fn decimals_are_strict() {
        assert_eq!(parse_decimal::<u64>(b"1234"), Some(1234));
        assert_eq!(parse_decimal::<u64>(b"sss"), None);
        assert_eq!(parse_decimal::<u64>(b""), None);
        assert_eq!(parse_decimal::<u16>(b"70000"), None);
        assert_eq!(parse_decimal::<u64>(b"99999999999999999999"), None);
    }

    #[test]
    fn hosts_in_every_form() {
        let (h, rest) = host(b"mail.example [1.2.3.4] rest").unwrap();
        assert_eq!(
            (h.name, h.helo, h.ip, rest),
            (
                Some(&b"mail.example"[..]),
                None,
                Some(&b"1.2.3.4"[..]),
                &b"rest"[..]
            )
        );
        let (h, _) = host(b"(helo.example) [1.2.3.4]:2525 x").unwrap();
        assert_eq!(
            (h.name, h.helo, h.port_number()),
            (None, Some(&b"helo.example"[..]), Some(2525))
        );
        let (h, _) = host(b"name (the helo) [2001:db8::1]:25* C=").unwrap();
        assert_eq!(
            (h.name, h.helo, h.ip, h.port, h.continued),
            (
                Some(&b"name"[..]),
                Some(&b"the helo"[..]),
                Some(&b"2001:db8::1"[..]),
                Some(&b"25"[..]),
                true
            )
        );
        let (h, _) = host(b"([10.21.32.43]) [192.168.8.34]").unwrap();
        assert_eq!(
            (h.helo, h.ip),
            (Some(&b"[10.21.32.43]"[..]), Some(&b"192.168.8.34"[..]))
        );
        let (h, rest) = host(b"[::1]: Connection refused").unwrap();
        assert_eq!(
            (h.ip, h.port, rest),
            (Some(&b"::1"[..]), None, &b": Connection refused"[..])
        );
        let (h, _) = host(b"l-sec.test.ex DS [127.0.0.1] C=").unwrap();
        assert!(h.dnssec);
        let (h, _) = host(b"127.0.0.1 [127.0.0.1]:PORT_D x").unwrap();
        assert_eq!((h.port, h.port_number()), (Some(&b"PORT_D"[..]), None));
        assert!(host(b"").is_none());
    }

    #[test]
    fn exim_time_values() {
        let ms = |raw: &[u8]| duration(raw).millis;
        assert_eq!(ms(b"0s"), Some(0));
        assert_eq!(ms(b"3m45s"), Some(225_000));
        assert_eq!(ms(b"1h2m3s"), Some(3_723_000));
        assert_eq!(ms(b"1w2d"), Some(777_600_000));
        assert_eq!(ms(b"0.304s"), Some(304));
        assert_eq!(ms(b"4.9s"), Some(4900));
        assert_eq!(ms(b"-2s"), Some(-2000));
        assert_eq!(ms(b"qqs"), None);
        assert_eq!(ms(b"q.qqqs"), None);
        assert_eq!(ms(b""), None);
        assert_eq!(ms(b"5x"), None);
    }

    #[test]
    fn smtp_codes_in_free_text() {
        fn code(text: &[u8]) -> Option<(u16, Option<&[u8]>)> {
            smtp_code(text).map(|c| (c.code, c.enhanced))
        }
        assert_eq!(
            code(b"SMTP error from remote mail server after RCPT TO:<a@b>: 550 5.1.1 User unknown"),
            Some((550, Some(&b"5.1.1"[..])))
        );
        assert_eq!(
            code(b"host mx [74.208.5.90]: 450 4.3.2 Too many"),
            Some((450, Some(&b"4.3.2"[..])))
        );
        assert_eq!(
            code(b"535 Incorrect authentication data"),
            Some((535, None))
        );
        assert_eq!(code(b"Connection timed out"), None);
        assert_eq!(
            code(b"after end of data: 554-5.7.1 rejected"),
            Some((554, Some(&b"5.7.1"[..])))
        );
        assert_eq!(
            code(b"size 5000 exceeded"),
            None,
            "not a reply code: 4 digits"
        );
        assert_eq!(code(b"id 250abc"), None);
    }

    #[test]
    fn quoted_values_and_unescaping() {
        let (value, rest) = quoted(br#""a \"b\" \\ c" next"#);
        assert_eq!((value, rest), (&br#"a \"b\" \\ c"#[..], &b" next"[..]));
        assert_eq!(unescape_quoted(value).as_ref(), br#"a "b" \ c"#);
        assert_eq!(
            unescape_quoted(br"Patrik F\344ltstr\366m").as_ref(),
            b"Patrik F\xe4ltstr\xf6m"
        );
        assert_eq!(
            unescape_quoted(br"two\nlines\ttab").as_ref(),
            b"two\nlines\ttab"
        );
        assert_eq!(unescape_quoted(b"trailing\\").as_ref(), b"trailing\\");
        let (value, rest) = quoted(b"\"unterminated");
        assert_eq!((value, rest), (&b"unterminated"[..], &b""[..]));
    }
}
