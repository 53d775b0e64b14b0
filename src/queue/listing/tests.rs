//! The listing reader against Exim's own output: a fixture per size and
//! age form, both id formats, bounces, logins, frozen, delivered and
//! generated recipients, spool errors, odd addresses; the original's
//! failures as regressions; and a property test that renders messages by
//! Exim's printf rules (`queue_list`, `string_format_size`) and reads them
//! back.

use proptest::prelude::*;

use super::*;

/// Exim's `string_format_size`.
fn exim_size(size: u64) -> String {
    let size_f = size as f64;
    match size {
        0 => "     ".to_owned(),
        1..1024 => format!("{size:5}"),
        1024..10_240 => format!("{:4.1}K", size_f / 1024.0),
        10_240..1_048_576 => format!("{:4}K", (size + 512) / 1024),
        1_048_576..10_485_760 => format!("{:4.1}M", size_f / (1024.0 * 1024.0)),
        _ => format!("{:4}M", (size + 512 * 1024) / (1024 * 1024)),
    }
}

/// Exim's age column for `minutes` on the queue.
fn exim_age(minutes: u64) -> String {
    if minutes > 90 {
        let hours = (minutes + 30) / 60;
        if hours > 72 {
            format!("{:2}d ", (hours + 12) / 24)
        } else {
            format!("{hours:2}h ")
        }
    } else {
        format!("{minutes:2}m ")
    }
}

fn one(listing: &str) -> QueuedMessage {
    let (messages, skipped) = parse_listing(listing.as_bytes());
    assert_eq!(skipped, 0, "{listing}");
    assert_eq!(messages.len(), 1, "{messages:?}");
    messages.into_iter().next().unwrap()
}

#[test]
fn every_size_form_reads_as_bytes() {
    for (printed, bytes) in [
        ("     ", 0),
        ("  328", 328),
        (" 2.9K", 2970),
        ("  12K", 12_288),
        ("1024K", 1_048_576),
        (" 1.5M", 1_572_864),
        ("  20M", 20_971_520),
    ] {
        let message = one(&format!(
            "25m {printed} 1rAAAA-000001-AB <alice@example.org>\n          bob@example.net\n\n"
        ));
        assert_eq!(message.size_bytes, bytes, "{printed:?}");
        assert_eq!(message.size_text, printed.trim());
        assert_eq!(
            message.age,
            Some(Age {
                value: 25,
                unit: AgeUnit::Minutes
            })
        );
    }
}

#[test]
fn ages_at_their_edges() {
    for (minutes, value, unit) in [
        (0, 0, AgeUnit::Minutes),
        (5, 5, AgeUnit::Minutes),
        (90, 90, AgeUnit::Minutes),
        (91, 2, AgeUnit::Hours),
        (72 * 60 + 29, 72, AgeUnit::Hours),
        (72 * 60 + 30, 3, AgeUnit::Days),
        (200 * 24 * 60, 200, AgeUnit::Days),
    ] {
        let line = format!(
            "{}  328 1rAAAA-000001-AB <a@b>\n          c@d\n",
            exim_age(minutes)
        );
        assert_eq!(one(&line).age, Some(Age { value, unit }), "{line}");
    }
}

#[test]
fn both_id_formats_bounces_logins_and_frozen() {
    let listing = "\
 0m   328 1xaLu2-0005AV-1r <sender@test.example> *** frozen ***
          rcpt@test.example

 3h  2.9K 1rAbCd-0000000000A-1x2Y <> *** frozen ***
          bounced@example.net

12d  1.5M 1rAbCe-000002-CD <postmaster@here> (webuser)
        D first@example.net
          second@example.net

 7m   999 1rAbCf-000003-EF <x@y> (www-data) *** frozen ***
          z@w
";
    let (messages, skipped) = parse_listing(listing.as_bytes());
    assert_eq!(skipped, 0);
    /// Id, sender, login, frozen, recipients.
    type Summary<'a> = (&'a str, &'a [u8], Option<&'a [u8]>, bool, usize);
    let summary: Vec<Summary<'_>> = messages
        .iter()
        .map(|m| {
            (
                m.id.as_str(),
                m.sender.as_slice(),
                m.login.as_deref(),
                m.frozen,
                m.recipients.len(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "1xaLu2-0005AV-1r",
                &b"sender@test.example"[..],
                None,
                true,
                1
            ),
            ("1rAbCd-0000000000A-1x2Y", &b""[..], None, true, 1),
            (
                "1rAbCe-000002-CD",
                &b"postmaster@here"[..],
                Some(&b"webuser"[..]),
                false,
                2
            ),
            (
                "1rAbCf-000003-EF",
                &b"x@y"[..],
                Some(&b"www-data"[..]),
                true,
                1
            ),
        ]
    );
    assert!(messages[2].recipients[0].delivered);
    assert!(!messages[2].recipients[1].delivered);
}

#[test]
fn generated_recipients_and_odd_addresses_are_kept_as_bytes() {
    let mut listing = b"33m  4.0K 1rAAAA-000001-AB <\"john doe\"@example.org>\n".to_vec();
    listing.extend_from_slice(b"        D list@example.org\n");
    listing.extend_from_slice(b"          \"odd > name\"@example.net\n");
    listing.extend_from_slice(b"          caf\xe9@example.net\n");
    listing.extend_from_slice(b"       +D member@example.com\n\n");
    let (messages, skipped) = parse_listing(&listing);
    assert_eq!(skipped, 0);
    let message = &messages[0];
    assert_eq!(message.sender, b"\"john doe\"@example.org");
    let recipients: Vec<(&[u8], bool, bool)> = message
        .recipients
        .iter()
        .map(|r| (r.address.as_slice(), r.delivered, r.generated))
        .collect();
    assert_eq!(
        recipients,
        vec![
            (&b"list@example.org"[..], true, false),
            (&b"\"odd > name\"@example.net"[..], false, false),
            (&b"caf\xe9@example.net"[..], false, false),
            (&b"member@example.com"[..], true, true),
        ]
    );
}

#[test]
fn spool_errors_are_kept_with_the_message() {
    let listing = "      1rAAAA-000001-AB
    *** spool read error: Permission denied ***

 5m   328 1rAAAA-000002-AB <a@b>
    *** spool format error: size=1234 *** *** frozen ***
          c@d

      1rAAAA-000003-AB
    *** spool format error ***

";
    let (messages, skipped) = parse_listing(listing.as_bytes());
    assert_eq!(skipped, 0);
    let errors: Vec<(Option<&str>, bool, Option<Age>)> = messages
        .iter()
        .map(|m| (m.spool_error.as_deref(), m.frozen, m.age))
        .collect();
    assert_eq!(
        errors,
        vec![
            (Some("spool read error: Permission denied"), false, None),
            (
                Some("spool format error: size=1234"),
                true,
                Some(Age {
                    value: 5,
                    unit: AgeUnit::Minutes
                })
            ),
            (Some("spool format error"), false, None),
        ]
    );
}

/// The original exim-pilot's parser (a regex needing `>` at the end, `\d+`
/// sizes, 16-character ids) lost these: each must read right here.
#[test]
fn the_originals_failures_read_right() {
    // A frozen message with a one-digit age became a recipient of the
    // previous message; a two-digit one was dropped.
    let listing = "25m  2.9K 0t5C6f-0000c8-00 <alice@example.com>
          bob@example.net

 5m   328 0t5C6g-0000c9-00 <carol@example.com> *** frozen ***
          dave@example.net

15m 12K 0t5C6h-0000ca-00 <erin@example.com> *** frozen ***
          frank@example.net

 1h  1.0M 1rAbCd-0000000000A-1x2Y <grace@example.com>
          heidi@example.net
";
    let (messages, skipped) = parse_listing(listing.as_bytes());
    assert_eq!(skipped, 0);
    let ids: Vec<&str> = messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "0t5C6f-0000c8-00",
            "0t5C6g-0000c9-00",
            "0t5C6h-0000ca-00",
            "1rAbCd-0000000000A-1x2Y"
        ]
    );
    assert!(messages.iter().all(|m| m.recipients.len() == 1));
    assert_eq!(messages[0].size_bytes, 2970);
    assert!(messages[1].frozen && messages[2].frozen);
}

#[test]
fn a_line_of_no_known_shape_is_counted_not_guessed() {
    let (messages, skipped) = parse_listing(b"exim: permission denied\n");
    assert!(messages.is_empty());
    assert_eq!(skipped, 1);
}

#[test]
fn the_arrival_time_comes_from_the_id() {
    // exiqgrep's msg_utc: base 62 of the first six characters.
    assert_eq!(arrival_seconds("000001-000000-00"), Some(1));
    assert_eq!(arrival_seconds("00000a-000000-00"), Some(36));
    // The bundled sample's first message, logged at 2026-11-26 13:58:22
    // (that host logs in UTC).
    assert_eq!(arrival_seconds("1xWZzS-0001uN-1x"), Some(1_795_701_502));
    assert_eq!(arrival_seconds("1rA!AA-000001-AB"), None);
}

fn address() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[a-z]{1,12}@[a-z]{1,10}\\.example".prop_map(String::into_bytes),
        "\"[a-z]{1,5} [a-z>]{1,5}\"@x\\.example".prop_map(String::into_bytes),
        proptest::collection::vec(33u8..=255, 1..30)
            .prop_filter("no spaces or newlines", |b| !b.contains(&b'\n')),
    ]
}

fn message_id() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}",
        "[0-9A-Za-z]{6}-[0-9A-Za-z]{11}-[0-9A-Za-z]{4}",
    ]
}

proptest! {
    #[test]
    fn what_exim_prints_reads_back(
        id in message_id(),
        minutes in 0u64..400_000,
        size in prop_oneof![0u64..2_000, 2_000u64..2_000_000, 2_000_000u64..200_000_000],
        sender in proptest::option::of(address()),
        login in proptest::option::of("[a-z-]{1,8}"),
        frozen in any::<bool>(),
        recipients in proptest::collection::vec((address(), any::<bool>()), 1..5),
    ) {
        let mut listing = format!("{}{} {id}", exim_age(minutes), exim_size(size)).into_bytes();
        let sender = sender.unwrap_or_default();
        listing.extend_from_slice(b" <");
        listing.extend_from_slice(&sender);
        listing.push(b'>');
        if let Some(login) = &login {
            listing.extend_from_slice(format!(" ({login})").as_bytes());
        }
        if frozen {
            listing.extend_from_slice(b" *** frozen ***");
        }
        listing.push(b'\n');
        for (address, delivered) in &recipients {
            listing.extend_from_slice(if *delivered { b"        D " } else { b"          " });
            listing.extend_from_slice(address);
            listing.push(b'\n');
        }
        listing.push(b'\n');
        let (messages, skipped) = parse_listing(&listing);
        prop_assert_eq!(skipped, 0);
        prop_assert_eq!(messages.len(), 1);
        let message = &messages[0];
        prop_assert_eq!(&message.id, &id);
        prop_assert_eq!(&message.sender, &sender);
        prop_assert_eq!(message.login.clone(), login.map(String::into_bytes));
        prop_assert_eq!(message.frozen, frozen);
        let read: Vec<(Vec<u8>, bool)> =
            message.recipients.iter().map(|r| (r.address.clone(), r.delivered)).collect();
        prop_assert_eq!(read, recipients);
        // The printed size is within its rounding of the real one.
        let tolerance = (size / 20).max(1);
        prop_assert!(message.size_bytes.abs_diff(size) <= tolerance, "{} vs {}", message.size_bytes, size);
        let age = message.age.map(Age::seconds).unwrap_or(0);
        let real = minutes * 60;
        prop_assert!(age.abs_diff(real) <= 12 * 3600 + 1800, "{} vs {}", age, real);
    }
}
