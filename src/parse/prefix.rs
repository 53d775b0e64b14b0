//! The line prefix: `YYYY-MM-DD HH:MM:SS[.fff[fff]][ +hhmm] [[pid] ][id ]`.

use nom::bytes::complete::{tag, take_while_m_n};
use nom::character::complete::{char, one_of};
use nom::combinator::{map_res, opt, recognize, verify};
use nom::sequence::{delimited, preceded, terminated};
use nom::{IResult, Parser};

use super::entry::{MessageId, Prefix, Timestamp};

/// Parses the prefix; returns it and the body after it.
pub fn prefix(input: &[u8]) -> IResult<&[u8], Prefix<'_>> {
    let (rest, timestamp) = timestamp(input)?;
    let (rest, _) = char(' ').parse(rest)?;
    let (rest, pid) = opt(terminated(
        delimited(char('['), number::<u32>, char(']')),
        char(' '),
    ))
    .parse(rest)?;
    let (rest, message_id) = opt(terminated(message_id, char(' '))).parse(rest)?;
    Ok((
        rest,
        Prefix {
            timestamp,
            pid,
            message_id,
        },
    ))
}

/// `YYYY-MM-DD HH:MM:SS`, optional `.mmm` or `.uuuuuu`, optional ` ±hhmm`.
pub fn timestamp(input: &[u8]) -> IResult<&[u8], Timestamp> {
    let (rest, year) = fixed::<u16>(4).parse(input)?;
    let (rest, month) =
        preceded(char('-'), verify(fixed::<u8>(2), |m| (1..=12).contains(m))).parse(rest)?;
    let (rest, day) =
        preceded(char('-'), verify(fixed::<u8>(2), |d| (1..=31).contains(d))).parse(rest)?;
    let (rest, hour) = preceded(char(' '), verify(fixed::<u8>(2), |h| *h < 24)).parse(rest)?;
    let (rest, minute) = preceded(char(':'), verify(fixed::<u8>(2), |m| *m < 60)).parse(rest)?;
    // 60 is a leap second.
    let (rest, second) = preceded(char(':'), verify(fixed::<u8>(2), |s| *s <= 60)).parse(rest)?;
    let (rest, micros) = opt(preceded(char('.'), fraction)).parse(rest)?;
    let (rest, utc_offset_minutes) = opt(preceded(char(' '), zone)).parse(rest)?;
    Ok((
        rest,
        Timestamp {
            year,
            month,
            day,
            hour,
            minute,
            second,
            micros: micros.unwrap_or(0),
            utc_offset_minutes,
        },
    ))
}

/// Three digits (milliseconds) or six (microseconds), in microseconds.
fn fraction(input: &[u8]) -> IResult<&[u8], u32> {
    let (rest, digits) = take_while_m_n(3, 6, |b: u8| b.is_ascii_digit()).parse(input)?;
    let value = decimal(digits);
    match digits.len() {
        3 => Ok((rest, value * 1000)),
        6 => Ok((rest, value)),
        _ => Err(nom::Err::Error(nom::error::Error::new(
            input,
            nom::error::ErrorKind::Verify,
        ))),
    }
}

/// `+hhmm` or `-hhmm`, in minutes east of UTC.
fn zone(input: &[u8]) -> IResult<&[u8], i16> {
    let (rest, sign) = one_of("+-").parse(input)?;
    let (rest, hours) = verify(fixed::<i16>(2), |h| *h <= 23).parse(rest)?;
    let (rest, minutes) = verify(fixed::<i16>(2), |m| *m < 60).parse(rest)?;
    let total = hours * 60 + minutes;
    Ok((rest, if sign == '-' { -total } else { total }))
}

/// A message id: `6-11-4` (Exim 4.97+) or `6-6-2`, base-62 characters.
pub fn message_id(input: &[u8]) -> IResult<&[u8], MessageId<'_>> {
    // Three dash-separated runs of base-62 characters of the given lengths.
    let shape = |middle: usize, last: usize| {
        let id_char = |b: u8| b.is_ascii_alphanumeric();
        recognize((
            take_while_m_n(6, 6, id_char),
            tag("-"),
            take_while_m_n(middle, middle, id_char),
            tag("-"),
            take_while_m_n(last, last, id_char),
        ))
    };
    let (rest, id) = nom::branch::alt((shape(11, 4), shape(6, 2))).parse(input)?;
    // An id is a whole word: `1abcde-000000-00x` is not one.
    if rest
        .first()
        .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'-')
    {
        return Err(nom::Err::Error(nom::error::Error::new(
            input,
            nom::error::ErrorKind::Verify,
        )));
    }
    // The id characters are ASCII, so this never fails.
    let id = std::str::from_utf8(id)
        .map_err(|_| nom::Err::Error(nom::error::Error::new(input, nom::error::ErrorKind::Char)))?;
    Ok((rest, MessageId(id)))
}

/// A message id that must span all of `input` (for `R=` values).
pub fn whole_message_id(input: &[u8]) -> Option<MessageId<'_>> {
    match message_id(input) {
        Ok((b"", id)) => Some(id),
        _ => None,
    }
}

/// Exactly `width` ASCII digits as a number.
fn fixed<T: TryFrom<u32>>(width: usize) -> impl Fn(&[u8]) -> IResult<&[u8], T> {
    move |input| digits(width, width).parse(input)
}

/// One to nine digits as a number.
fn number<T: TryFrom<u32>>(input: &[u8]) -> IResult<&[u8], T> {
    digits(1, 9).parse(input)
}

/// Between `min` and `max` ASCII digits (at most nine) as a number.
fn digits<T: TryFrom<u32>>(min: usize, max: usize) -> impl Fn(&[u8]) -> IResult<&[u8], T> {
    move |input| {
        map_res(
            take_while_m_n(min, max, |b: u8| b.is_ascii_digit()),
            |digits: &[u8]| T::try_from(decimal(digits)),
        )
        .parse(input)
    }
}

/// The value of up to nine ASCII digits.
fn decimal(digits: &[u8]) -> u32 {
    digits
        .iter()
        .fold(0u32, |acc, digit| acc * 10 + u32::from(digit - b'0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> (Prefix<'_>, &str) {
        let (rest, prefix) = prefix(line.as_bytes()).expect(line);
        (prefix, std::str::from_utf8(rest).unwrap())
    }

    #[test]
    fn every_prefix_combination() {
        let (p, body) =
            parse("2001-09-16 16:09:47 SMTP connection from [127.0.0.1] closed by QUIT");
        assert_eq!(
            (
                p.timestamp.second,
                p.timestamp.micros,
                p.timestamp.utc_offset_minutes,
                p.pid,
                p.message_id
            ),
            (47, 0, None, None, None)
        );
        assert_eq!(body, "SMTP connection from [127.0.0.1] closed by QUIT");

        let (p, body) = parse("2003-04-25 11:17:07 +0100 Start queue run: pid=12762");
        assert_eq!(p.timestamp.utc_offset_minutes, Some(60));
        assert_eq!(body, "Start queue run: pid=12762");

        let (p, body) =
            parse("2017-07-30 18:51:05.712 10HmaZ-000000005vi-0000 Completed QT=q.qqqs");
        assert_eq!(p.timestamp.micros, 712_000);
        assert_eq!(p.message_id, Some(MessageId("10HmaZ-000000005vi-0000")));
        assert_eq!(body, "Completed QT=q.qqqs");

        let (p, body) = parse("2020-06-20 01:32:57 -0230 [789] 1jmKso-0009d4-Uf ** molly@zee.corp");
        assert_eq!(
            (p.timestamp.utc_offset_minutes, p.pid),
            (Some(-150), Some(789))
        );
        assert_eq!(p.message_id, Some(MessageId("1jmKso-0009d4-Uf")));
        assert_eq!(body, "** molly@zee.corp");

        let (p, _) = parse("2023-05-30 06:10:13.345123 +0000 [1] x");
        assert_eq!(
            (p.timestamp.micros, p.timestamp.utc_offset_minutes, p.pid),
            (345_123, Some(0), Some(1))
        );
    }

    #[test]
    fn a_bracket_after_the_timestamp_is_a_pid_only_if_it_is_digits() {
        let (p, body) =
            parse("1999-03-02 09:44:33 10HmaX-000000005vi-0000 [127.0.0.1] SSL verify error");
        assert_eq!(p.pid, None);
        assert_eq!(body, "[127.0.0.1] SSL verify error");
        let (p, body) = parse("1999-03-02 09:44:33 [127.0.0.1] x");
        assert_eq!((p.pid, body), (None, "[127.0.0.1] x"));
    }

    #[test]
    fn ids_must_be_whole_words() {
        let (p, body) = parse("2024-01-01 00:00:00 1abcde-000000-00x is not an id");
        assert_eq!(p.message_id, None);
        assert_eq!(body, "1abcde-000000-00x is not an id");
        assert!(whole_message_id(b"1smkL5-00000000e65-24eQ").is_some());
        assert!(whole_message_id(b"1smkL5-00000000e65-24e").is_none());
        assert!(whole_message_id(b"1WQstC-0000qD-Vl").is_some());
    }

    #[test]
    fn malformed_timestamps_are_not_prefixes() {
        for line in [
            "2012014-04-05 03:17:39 x",
            "2024-13-01 00:00:00 x",
            "2024-01-01 24:00:00 x",
            "2024-01-01 00:00 x",
            "Apr 28 15:53:37 server",
            "",
        ] {
            assert!(prefix(line.as_bytes()).is_err(), "{line}");
        }
    }
}
