//! What `trace` reads back from a message's stored lines rather than from
//! its rows: the subject and the Message-ID header (the row keeps only the
//! latter's hash) from its `<=` line, and each delivery's confirmation
//! (`C="..."`, each attempt's own). None of them is stored twice. Pure:
//! the lines are already read.

use super::{TracedAttempt, TracedMessage};
use crate::parse::{Entry, Event, Reception, parse_line, quoted_text};
use crate::query::format_ms;
use crate::store::chunk::StoredLine;

/// Fills `message`'s subject and Message-ID (when the row keeps its hash)
/// from its `<=` line and its attempts' confirmations from their lines,
/// each line parsed once: a message delivered to many recipients in one
/// second has as many lines of that second to match its attempts with.
/// Without a delivery, lines are parsed only up to the `<=` line (most
/// often the first). Not there when the lines shown were cut short or
/// pruned.
pub(super) fn fill(message: &mut TracedMessage, lines: &[StoredLine], header_id_hash: Option<i64>) {
    if message.attempts.iter().any(|a| a.outcome == "delivered") {
        let entries: Vec<Entry<'_>> = lines.iter().map(|line| parse_line(&line.bytes)).collect();
        from_reception(message, entries.iter().find_map(reception), header_id_hash);
        confirmations(&mut message.attempts, lines, &entries);
    } else {
        let found = lines
            .iter()
            .find_map(|line| reception(&parse_line(&line.bytes)));
        from_reception(message, found, header_id_hash);
    }
}

/// The reception `entry` is, if it is one.
fn reception<'l>(entry: &Entry<'l>) -> Option<Reception<'l>> {
    match &entry.event {
        Event::Reception(reception) => Some(*reception),
        _ => None,
    }
}

/// The subject and the Message-ID header whose hash the message row keeps,
/// from its reception.
fn from_reception(message: &mut TracedMessage, found: Option<Reception<'_>>, hash: Option<i64>) {
    let Some(reception) = found else {
        return;
    };
    message.subject = reception.subject.map(quoted_text);
    message.header_message_id = hash.and_then(|hash| {
        let header = String::from_utf8_lossy(reception.header_message_id?).into_owned();
        (crate::store::text_hash(&header) == hash).then_some(header)
    });
}

/// Each attempt's confirmation (`C="..."`), read back from its line among
/// `lines` (`entries` are the same lines parsed): the line of the same
/// time, flag and address. Not there when the lines shown were cut short
/// or pruned.
fn confirmations(attempts: &mut [TracedAttempt], lines: &[StoredLine], entries: &[Entry<'_>]) {
    let times: Vec<Option<String>> = lines.iter().map(|l| l.logged_ms.map(format_ms)).collect();
    let mut used = vec![false; lines.len()];
    for attempt in attempts.iter_mut().filter(|a| a.outcome == "delivered") {
        let found = entries.iter().enumerate().find_map(|(index, entry)| {
            if used[index] || times[index].as_deref() != Some(&attempt.at) {
                return None;
            }
            let Event::Delivery(delivery) = &entry.event else {
                return None;
            };
            let address = String::from_utf8_lossy(delivery.address.final_address);
            (delivery.flag.symbol() == attempt.flag
                && attempt.address.as_deref() == Some(address.as_ref()))
            .then(|| (index, delivery.confirmation.map(quoted_text)))
        });
        if let Some((index, confirmation)) = found {
            used[index] = true;
            attempt.confirmation = confirmation;
        }
    }
}
