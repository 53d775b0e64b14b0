//! What `trace` reads back from a message's stored lines rather than from
//! its rows: the Message-ID header (the row keeps only its hash) and each
//! delivery's confirmation (`C="..."`, each attempt's own, not stored
//! twice). Pure: the lines are already read.

use super::{TracedAttempt, TracedMessage};
use crate::parse::{Entry, Event, parse_line, quoted_text};
use crate::query::format_ms;
use crate::store::chunk::StoredLine;

/// Fills `message`'s Message-ID (when the row keeps its hash) and its
/// attempts' confirmations from `lines`, each parsed once: a message
/// delivered to many recipients in one second has as many lines of that
/// second to match its attempts with.
pub(super) fn fill(message: &mut TracedMessage, lines: &[StoredLine], header_id_hash: Option<i64>) {
    let delivered = message.attempts.iter().any(|a| a.outcome == "delivered");
    if header_id_hash.is_none() && !delivered {
        // Nothing to read back: a message never delivered, without `id=`.
        return;
    }
    let entries: Vec<Entry<'_>> = lines.iter().map(|line| parse_line(&line.bytes)).collect();
    if let Some(hash) = header_id_hash {
        message.header_message_id = header_message_id(&entries, hash);
    }
    confirmations(&mut message.attempts, lines, &entries);
}

/// The Message-ID header whose hash the message row keeps, read back
/// from its `<=` line among the message's parsed lines (not there when the
/// lines shown were cut short or pruned).
fn header_message_id(entries: &[Entry<'_>], hash: i64) -> Option<String> {
    entries.iter().find_map(|entry| {
        let Event::Reception(reception) = &entry.event else {
            return None;
        };
        let header = String::from_utf8_lossy(reception.header_message_id?).into_owned();
        (crate::store::text_hash(&header) == hash).then_some(header)
    })
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
