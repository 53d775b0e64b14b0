//! The whole-database report: every row of four tables in plain scans,
//! shared between this thread and a second one.
//!
//! Reading a table is CPU-bound once it is cached, so the work is split
//! in two steps, each run on both threads:
//! 1. the messages (their sizes, kept by id for step 2), in pieces taken
//!    by whichever thread is free; the line counts, the rejections and
//!    every recipient's domain on the second thread first;
//! 2. the attempts, each thread half of them by id, with the address of
//!    the recipient joined in for the deferrals and failures that quote
//!    it (the few rows a join per row costs little for); then the first
//!    attempts the recipients' rows hold, each thread half the recipients.
//!
//! The second thread has its own read-only connection. Like every query
//! here, each statement reads its own snapshot: while the daemon writes,
//! two figures can disagree by the last few batches' lines.

use std::path::Path;

use deadpool_sqlite::rusqlite::Connection;

use super::attempt_tally::{Attempts, Recipient};
use super::tally::{Bounds, Domains, Messages};
use super::{
    ATTEMPT_COLUMNS, HELD_ATTEMPT_COLUMNS, MESSAGE_COLUMNS, QueryError, Read, attempt_row, context,
    each_row, message_row,
};
use crate::store::{ResultExt, StoreError};

/// Reads everything the whole-database report needs.
pub(super) fn read(conn: &Connection, bounds: Bounds) -> Result<Read, QueryError> {
    // Without a second connection (an in-memory database) the steps run
    // one after the other here: slower, the same answers.
    let second = conn
        .path()
        .filter(|path| !path.is_empty())
        .and_then(|path| crate::query::open(Path::new(path)).ok());
    read_with(conn, second, bounds)
}

/// [`read`], sharing the work with a thread on `second` if there is one.
pub(super) fn read_with(
    conn: &Connection,
    mut second: Option<Connection>,
    bounds: Bounds,
) -> Result<Read, QueryError> {
    let mut sizes = sizes_for(conn)?;
    let pieces = pieces_of(&mut sizes);
    let (mut messages, (kinds, rejections, recipients, theirs)) = pair(
        conn,
        &mut second,
        |conn| {
            let mut messages = Messages::default();
            read_messages(conn, bounds, &pieces, &mut messages)?;
            Ok(messages)
        },
        |conn| {
            let kinds = super::kind_counts(conn, None)?;
            let rejections = super::read_rejections(conn, bounds, true)?;
            let recipients = RecipientDomains::read(conn)?;
            // Then whatever messages are left.
            let mut messages = Messages::default();
            read_messages(conn, bounds, &pieces, &mut messages)?;
            Ok((kinds, rejections, recipients, messages))
        },
    )?;
    messages.merge(theirs);

    let (low, high) = halves(
        conn,
        &mut second,
        id_range(conn, "attempts")?,
        |conn, from, to| read_attempts(conn, bounds, (from, to), &sizes, &recipients, Held::No),
    )?;
    let (held_low, held_high) = halves(
        conn,
        &mut second,
        id_range(conn, "recipients")?,
        |conn, from, to| read_attempts(conn, bounds, (from, to), &sizes, &recipients, Held::Yes),
    )?;
    let mut attempts = Attempts::numbered_by(recipients.domains);
    for half in [low, high, held_low, held_high] {
        attempts.merge(half);
    }

    Ok(Read {
        kinds,
        rejections,
        messages,
        attempts,
    })
}

/// Runs `mine` on this thread with `conn`, and `theirs` at the same time
/// on a thread of its own with the `second` connection (or after `mine`,
/// with `conn`, when there is none).
fn pair<A, B: Send>(
    conn: &Connection,
    second: &mut Option<Connection>,
    mine: impl FnOnce(&Connection) -> Result<A, QueryError>,
    theirs: impl FnOnce(&Connection) -> Result<B, QueryError> + Send,
) -> Result<(A, B), QueryError> {
    let Some(other) = second.take() else {
        let a = mine(conn)?;
        return Ok((a, theirs(conn)?));
    };
    std::thread::scope(|scope| {
        let handle = scope.spawn(move || {
            let result = theirs(&other);
            (other, result)
        });
        let a = mine(conn);
        let (other, b) = handle
            .join()
            .map_err(|_| StoreError::other(context(), "a statistics thread panicked"))?;
        *second = Some(other);
        Ok((a?, b?))
    })
}

/// Runs `work` over the two halves of the ids `first..=last`, one on each
/// thread (see [`pair`]).
fn halves<T: Send>(
    conn: &Connection,
    second: &mut Option<Connection>,
    (first, last): (i64, i64),
    work: impl Fn(&Connection, i64, i64) -> Result<T, QueryError> + Sync,
) -> Result<(T, T), QueryError> {
    let middle = first.saturating_add(last.saturating_sub(first) / 2);
    let work = &work;
    pair(
        conn,
        second,
        |conn| work(conn, first, middle),
        move |conn| work(conn, middle.saturating_add(1), last),
    )
}

/// The smallest and largest id of `table` (a constant name); (0, -1),
/// an empty range, for an empty table.
fn id_range(conn: &Connection, table: &str) -> Result<(i64, i64), QueryError> {
    // Two subqueries: SQLite answers a lone min() or max() of the rowid
    // from the b-tree's ends, but both in one SELECT by a scan.
    let (first, last): (Option<i64>, Option<i64>) = conn
        .query_row(
            &format!("SELECT (SELECT min(id) FROM {table}), (SELECT max(id) FROM {table})"),
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .ctx(context)?;
    Ok((first.unwrap_or(0), last.unwrap_or(-1)))
}

/// A vector over the ids `first..=last` of a table.
fn slots<T: Clone>((first, last): (i64, i64), empty: T) -> Vec<T> {
    let len = usize::try_from(last.saturating_sub(first).saturating_add(1)).unwrap_or(0);
    vec![empty; len]
}

fn slot(first: i64, id: i64) -> Option<usize> {
    usize::try_from(id.checked_sub(first)?).ok()
}

/// Per message, by id: its size, for the volume of each delivery without
/// a join per attempt.
struct Sizes {
    first: i64,
    /// [`NO_SIZE`] where unknown: half the memory of an `Option<i64>`
    /// for every message of the database.
    sizes: Vec<i64>,
}

/// No size: the column is NULL (it is never negative: a CHECK says so).
const NO_SIZE: i64 = -1;

impl Sizes {
    fn size(&self, id: i64) -> Option<i64> {
        slot(self.first, id)
            .and_then(|index| self.sizes.get(index))
            .copied()
            .filter(|size| *size != NO_SIZE)
    }
}

/// Messages to a piece of the messages step: small enough that the thread
/// that finishes its other work first shares the rest evenly.
const MESSAGES_PER_PIECE: usize = 16_384;

/// The pieces of [`Sizes`] not read yet, each with the id of its first
/// message; taken by whichever thread is free.
type Pieces<'s> = std::sync::Mutex<
    std::iter::Zip<std::iter::StepBy<std::ops::RangeFrom<i64>>, std::slice::ChunksMut<'s, i64>>,
>;

fn sizes_for(conn: &Connection) -> Result<Sizes, QueryError> {
    let range = id_range(conn, "messages")?;
    Ok(Sizes {
        first: range.0,
        sizes: slots(range, NO_SIZE),
    })
}

fn pieces_of(sizes: &mut Sizes) -> Pieces<'_> {
    let firsts = (sizes.first..).step_by(MESSAGES_PER_PIECE);
    std::sync::Mutex::new(firsts.zip(sizes.sizes.chunks_mut(MESSAGES_PER_PIECE)))
}

/// Reads pieces of the messages until none is left, counting them into
/// `messages` and filling in their sizes.
fn read_messages(
    conn: &Connection,
    bounds: Bounds,
    pieces: &Pieces<'_>,
    messages: &mut Messages,
) -> Result<(), QueryError> {
    loop {
        let piece = pieces
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .next();
        let Some((first, sizes)) = piece else {
            return Ok(());
        };
        let last = first.saturating_add(i64::try_from(sizes.len()).unwrap_or(i64::MAX) - 1);
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id BETWEEN ?1 AND ?2");
        each_row(conn, &sql, [first, last], |row| {
            let message = message_row(row)?;
            messages.add(&message, bounds, true);
            if let Some(index) = slot(first, message.id).filter(|i| *i < sizes.len()) {
                // A negative size, which the CHECK forbids, would add
                // nothing to a volume anyway.
                sizes[index] = message.size.filter(|size| *size >= 0).unwrap_or(NO_SIZE);
            }
            Ok(())
        })?;
    }
}

/// Every recipient's domain, numbered, by recipient id.
struct RecipientDomains {
    first: i64,
    /// The domain's number in `domains`; [`NO_DOMAIN`] without an `@`,
    /// and for ids without a row.
    numbers: Vec<u32>,
    domains: Domains,
}

const NO_DOMAIN: u32 = u32::MAX;

impl RecipientDomains {
    fn read(conn: &Connection) -> Result<Self, QueryError> {
        let range = id_range(conn, "recipients")?;
        let mut numbers = slots(range, NO_DOMAIN);
        let mut domains = Domains::default();
        each_row(
            conn,
            "SELECT id, address FROM recipients WHERE id BETWEEN ?1 AND ?2",
            [range.0, range.1],
            |row| {
                let id: i64 = row.get(0)?;
                if let Some(number) = slot(range.0, id).and_then(|index| numbers.get_mut(index)) {
                    *number = domains
                        .id_of(row.get_ref(1)?.as_str()?)
                        .unwrap_or(NO_DOMAIN);
                }
                Ok(())
            },
        )?;
        Ok(RecipientDomains {
            first: range.0,
            numbers,
            domains,
        })
    }

    fn of(&self, id: i64) -> Option<u32> {
        slot(self.first, id)
            .and_then(|index| self.numbers.get(index))
            .copied()
            .filter(|number| *number != NO_DOMAIN)
    }
}

/// Which attempts a step reads: the first of each recipient, held in its
/// row (a range of recipient ids), or the later ones (of attempt ids).
#[derive(Debug, Clone, Copy)]
enum Held {
    Yes,
    No,
}

fn read_attempts(
    conn: &Connection,
    bounds: Bounds,
    (from, to): (i64, i64),
    sizes: &Sizes,
    recipients: &RecipientDomains,
    held: Held,
) -> Result<Attempts, QueryError> {
    let mut attempts = Attempts::numbered_by(recipients.domains.clone());
    // The address only for the deferrals and failures that quote it.
    let sql = match held {
        Held::No => format!(
            "SELECT {ATTEMPT_COLUMNS}, a.recipient_id,
                    CASE WHEN a.error_address_at IS NOT NULL AND a.final_address IS NULL
                         THEN (SELECT address FROM recipients r WHERE r.id = a.recipient_id) END
             FROM attempts a WHERE a.id BETWEEN ?1 AND ?2"
        ),
        Held::Yes => format!(
            "SELECT {HELD_ATTEMPT_COLUMNS}, r.id,
                    CASE WHEN r.attempt_error_address_at IS NOT NULL
                              AND r.attempt_final_address IS NULL THEN r.address END
             FROM recipients r WHERE r.id BETWEEN ?1 AND ?2 AND r.attempt_flag IS NOT NULL"
        ),
    };
    each_row(conn, &sql, [from, to], |row| {
        let message_id: i64 = row.get(0)?;
        let recipient = match (row.get_ref(9)?.as_str_or_null()?, row.get(8)?) {
            (Some(address), _) => Recipient::Address(address),
            (None, Some(id)) => Recipient::Numbered(recipients.of(id)),
            (None, None) => Recipient::None,
        };
        attempts.add(
            &attempt_row(row, sizes.size(message_id), recipient)?,
            bounds,
        );
        Ok(())
    })?;
    Ok(attempts)
}
