//! Lines about one message with a flag: `<=` and the delivery results
//! (`=> -> >> *> ** ==`); the flagless message lines are `state.rs`'s.

use super::entry::{AddressPart, Delivery, DeliveryFlag, Event, Reception, Tls};
use super::fields::{
    after, bracketed, duration, find, find_first_tag, host, quoted, smtp_code, token,
};
use super::prefix::whole_message_id;

/// `<= sender tags...` (`fake_reject` for `(=`), `body` after the flag.
///
/// Long because it is one flat pass over the tags in the
/// order Exim writes them, one arm per tag (as [`delivery`]).
pub fn reception(body: &[u8], fake_reject: bool) -> Event<'_> {
    let (sender, mut rest) = sender(body);
    let mut r = Reception {
        fake_reject,
        sender,
        ..Reception::default()
    };
    while !rest.is_empty() {
        if rest[0] == b' ' {
            rest = &rest[1..];
            continue;
        }
        if let Some(value) = after(rest, b"for ") {
            r.recipients = Some(value);
            break;
        }
        if rest.starts_with(b"from <") {
            let (received_sender, after_sender) = bracketed(&rest[5..]);
            r.received_sender = Some(received_sender);
            rest = after_sender;
            continue;
        }
        if let Some(value) = after(rest, b"H=")
            && let Some((h, after_host)) = host(value)
        {
            r.host = Some(h);
            rest = after_host;
            continue;
        }
        if rest.starts_with(b"T=\"") {
            let (subject, after_subject) = quoted(&rest[2..]);
            r.subject = Some(subject);
            rest = after_subject;
            continue;
        }
        if rest.starts_with(b"DN=\"") {
            let (dn, after_dn) = quoted(&rest[3..]);
            r.tls.peer_dn = Some(dn);
            rest = after_dn;
            continue;
        }
        if let Some(value) = after(rest, b"U=") {
            let (user, after_user) = spaced_value(value, is_reception_tag);
            r.user = Some(user);
            rest = after_user;
            continue;
        }
        if let Some(value) = after(rest, b"A=") {
            let (auth, after_auth) = spaced_value(value, is_reception_tag);
            r.auth = Some(auth);
            rest = after_auth;
            continue;
        }
        let (word, next) = token(rest);
        rest = next;
        let Some(eq) = memchr::memchr(b'=', word) else {
            match word {
                b"K" => r.chunking = true,
                b"PRDR" => r.prdr = true,
                _ if word.first() == Some(&b'L')
                    && word[1..].iter().all(|b| matches!(b, b'-' | b'.' | b'*')) =>
                {
                    r.pipelining = Some(word);
                }
                b"DS" => {
                    if let Some(h) = r.host.as_mut() {
                        h.dnssec = true;
                    }
                }
                _ => {}
            }
            continue;
        };
        let (key, value) = (&word[..eq], &word[eq + 1..]);
        match key {
            b"R" => r.bounce_of = whole_message_id(value),
            b"I" => r.interface = Some(value),
            b"P" => r.protocol = Some(value),
            b"X" => r.tls.cipher = Some(value),
            b"CV" => r.tls.certificate_verified = Some(value),
            b"SNI" => r.tls.sni = Some(value),
            b"S" => r.size = Some(value),
            b"id" | b"id*" => r.header_message_id = Some(value),
            b"Q" => r.queue = Some(value),
            b"RT" => r.receive_time = Some(duration(value)),
            b"Ci" => r.connection_id = Some(value),
            b"DKIM" => r.dkim = Some(value),
            b"M8S" => r.eight_bit = Some(value),
            _ => {}
        }
    }
    Event::Reception(r)
}

/// The sender after `<= `: `<>`, an address, or a quoted local part with
/// spaces (`"spaced user"@host`).
fn sender(body: &[u8]) -> (&[u8], &[u8]) {
    if body.first() == Some(&b'"') {
        let (_, after_quote) = quoted(body);
        let quote_len = body.len() - after_quote.len();
        let (domain, rest) = token(after_quote);
        return (&body[..quote_len + domain.len()], rest);
    }
    token(body)
}

/// Tags that end a value which may contain spaces (`U=`, `A=`).
fn is_reception_tag(rest: &[u8]) -> bool {
    const TAGS: [&[u8]; 22] = [
        b"P=", b"S=", b"A=", b"X=", b"CV=", b"DN=", b"SNI=", b"Ci=", b"id=", b"id*=", b"T=\"",
        b"K ", b"PRDR", b"L ", b"L- ", b"M8S=", b"DKIM=", b"RT=", b"Q=", b"for ", b"from <",
        b"PRX=",
    ];
    TAGS.iter().any(|tag| rest.starts_with(tag)) || rest == b"K" || rest == b"L"
}

/// A value that may contain spaces: it runs until a space followed by a
/// known tag (or the end).
fn spaced_value(input: &[u8], is_tag: fn(&[u8]) -> bool) -> (&[u8], &[u8]) {
    let mut search = 0;
    while let Some(offset) = memchr::memchr(b' ', &input[search..]) {
        let space = search + offset;
        if is_tag(&input[space + 1..]) {
            return (&input[..space], &input[space + 1..]);
        }
        search = space + 1;
    }
    (input, &[])
}

/// The delivery-result lines: `=> -> >> *> ** ==`, `body` after the flag.
///
/// Long because it is one flat pass over the tags in the
/// order Exim writes them, one arm per tag; split, the order that tells a
/// tag from free text would be spread over several functions.
pub fn delivery(body: &[u8], flag: DeliveryFlag) -> Event<'_> {
    let (mut address, mut rest, mut error) = address_part(body);
    if flag == DeliveryFlag::Failed && error.is_none() && rest.is_empty() {
        // Fixed texts without a separator: `** a@b routing yielded a
        // deferred delivery`, `** a@b mua_wrapper forced failure ...`.
        let (first, text) = token(address.final_address);
        if !text.is_empty() && first.contains(&b'@') && !address.final_address.starts_with(b"\"") {
            address.final_address = first;
            error = Some(text);
        }
    }
    let flag = if flag == DeliveryFlag::Delivered && is_discard(&address) {
        DeliveryFlag::Discarded
    } else {
        flag
    };
    let mut d = Delivery {
        flag,
        address,
        sender: None,
        return_path: None,
        router: None,
        transport: None,
        size: None,
        host: None,
        interface: None,
        shadow_transport: None,
        tls: Tls::default(),
        auth: None,
        confirmation: None,
        queue_time: None,
        delivery_time: None,
        queue: None,
        chunking: false,
        prdr: false,
        pipelining: None,
        errno: None,
        routing_defer: false,
        error: None,
        smtp_code: None,
    };
    while error.is_none() && !rest.is_empty() {
        if rest[0] == b' ' {
            rest = &rest[1..];
            continue;
        }
        if let Some(separator_rest) = separator(rest) {
            error = Some(separator_rest);
            break;
        }
        if let Some(value) = after(rest, b"H=")
            && let Some((h, after_host)) = host(value)
        {
            d.host = Some(h);
            rest = after_host;
            if let Some(message) = separator(rest).or_else(|| after(rest, b": ")) {
                error = Some(message);
            }
            continue;
        }
        if rest.starts_with(b"C=\"") || rest.starts_with(b"DN=\"") {
            let eq = if rest[0] == b'C' { 2 } else { 3 };
            let (value, after_value) = quoted(&rest[eq..]);
            if eq == 2 {
                d.confirmation = Some(value);
            } else {
                d.tls.peer_dn = Some(value);
            }
            rest = after_value;
            if let Some(message) = after(rest, b": ") {
                error = Some(message);
            }
            continue;
        }
        if let Some(value) = after(rest, b"routing defer (").or_else(|| after(rest, b"defer (")) {
            d.routing_defer = rest.starts_with(b"routing");
            let close = memchr::memchr(b')', value).unwrap_or(value.len());
            d.errno = Some(&value[..close]);
            rest = value.get(close + 1..).unwrap_or_default();
            if let Some(message) = after(rest, b": ") {
                error = Some(message);
            }
            continue;
        }
        if rest.starts_with(b"F=<") || rest.starts_with(b"P=<") {
            let (address, after_address) = bracketed(&rest[2..]);
            if rest[0] == b'F' {
                d.sender = Some(address);
            } else {
                d.return_path = Some(address);
            }
            rest = after_address;
            continue;
        }
        let (word, next) = token(rest);
        rest = next;
        // A value ending in ':' ends the tags: the error message follows.
        let (word, ends_tags) = match word.strip_suffix(b":") {
            Some(stripped) => (stripped, true),
            None => (word, false),
        };
        match memchr::memchr(b'=', word) {
            None => match word {
                b"K" => d.chunking = true,
                b"PRDR" => d.prdr = true,
                b"L" | b"L*" => d.pipelining = Some(word),
                _ => {}
            },
            Some(eq) => {
                let (key, value) = (&word[..eq], &word[eq + 1..]);
                match key {
                    b"R" => d.router = Some(value),
                    b"T" => d.transport = Some(value),
                    b"S" => d.size = Some(value),
                    b"I" => d.interface = Some(value),
                    b"ST" => d.shadow_transport = Some(value),
                    b"X" => d.tls.cipher = Some(value),
                    b"CV" => d.tls.certificate_verified = Some(value),
                    b"A" => d.auth = Some(value),
                    b"QT" => d.queue_time = Some(duration(value)),
                    b"DT" => d.delivery_time = Some(duration(value)),
                    b"Q" => d.queue = Some(value),
                    _ => {}
                }
            }
        }
        if ends_tags {
            error = Some(rest);
        }
    }
    if let Some(message) = error {
        // Exim up to 4.96 puts DT= after the message on `**` lines.
        let (message, trailing_time) = split_trailing_delivery_time(message);
        if d.delivery_time.is_none() {
            d.delivery_time = trailing_time;
        }
        d.error = Some(message);
        d.smtp_code = smtp_code(message);
    }
    Event::Delivery(d)
}

/// ` : ` (Exim 4.99) or `: ` at the current position: the error message
/// follows.
fn separator(rest: &[u8]) -> Option<&[u8]> {
    after(rest, b": ")
}

fn split_trailing_delivery_time(message: &[u8]) -> (&[u8], Option<super::entry::EximDuration<'_>>) {
    if let Some(index) = memchr::memmem::rfind(message, b" DT=") {
        let value = &message[index + 4..];
        let time = duration(value);
        if time.millis.is_some() || !value.contains(&b' ') {
            return (&message[..index], Some(time));
        }
    }
    (message, None)
}

/// Tags that end the address part of a delivery line.
const ADDRESS_END_TAGS: [&[u8]; 15] = [
    b" R=",
    b" T=",
    b" F=<",
    b" Q=",
    b" P=<",
    b" H=",
    b" S=",
    b" ST=",
    b" C=\"",
    b" QT=",
    b" DT=",
    b" defer (",
    b" routing defer (",
    b" I=",
    b" F=",
];

/// Splits `final (parents) <original>` off the front of a delivery body.
/// Returns the address, the rest (tags), and the error message when it
/// follows the address directly (`** addr <orig>: reason`).
fn address_part(body: &[u8]) -> (AddressPart<'_>, &[u8], Option<&[u8]>) {
    let tags_at = find_first_tag(body, &ADDRESS_END_TAGS).unwrap_or(body.len());
    // An error message straight after the address: the first ": " (or
    // " : ") before the tags whose left side looks like a whole address.
    let mut search = 0;
    while let Some(offset) = find(&body[search..tags_at], b": ") {
        let colon = search + offset;
        let left = body[..colon].strip_suffix(b" ").unwrap_or(&body[..colon]);
        if plausible_address_part(left) {
            return (split_address(left), &[], Some(&body[colon + 2..]));
        }
        search = colon + 1;
    }
    let segment = &body[..tags_at];
    let rest = &body[tags_at..];
    (split_address(segment), rest, None)
}

fn plausible_address_part(text: &[u8]) -> bool {
    let quotes_balanced = text.iter().filter(|&&b| b == b'"').count() % 2 == 0;
    quotes_balanced
        && (text.contains(&b'@')
            || text.ends_with(b">")
            || matches!(text.first(), Some(b'|' | b'/' | b'>')))
}

fn split_address(segment: &[u8]) -> AddressPart<'_> {
    let mut final_part = segment;
    let mut original = None;
    if segment.ends_with(b">")
        && let Some(open) = memchr::memmem::rfind(segment, b" <")
    {
        original = Some(&segment[open + 2..segment.len() - 1]);
        final_part = &segment[..open];
    }
    let mut parents = None;
    if final_part.ends_with(b")")
        && let Some(open) = memchr::memmem::rfind(final_part, b" (")
    {
        parents = Some(&final_part[open + 2..final_part.len() - 1]);
        final_part = &final_part[..open];
    }
    AddressPart {
        final_address: final_part,
        parents,
        original,
    }
}

/// Whether a `=>` line delivered nothing: `:blackhole:` and a filter's
/// `discarded` for one recipient (routers/redirect.c), `blackhole (DATA ACL
/// discarded recipients)` (receive.c) and `discarded (system filter)`
/// (deliver.c) for all of a message's.
fn is_discard(address: &AddressPart<'_>) -> bool {
    match (address.final_address, address.parents) {
        (b":blackhole:", _) => true,
        (b"discarded", Some(b"system filter")) => true,
        (b"discarded", None) => address.original.is_some(),
        (b"blackhole", Some(parents)) => parents.ends_with(b"discarded recipients"),
        _ => false,
    }
}
