//! The mail model: what each parsed entry means for messages, recipients,
//! delivery attempts and rejections.
//!
//! The writer feeds a batch's entries, in log order, to a [`BatchModel`],
//! which keeps the batch's effect in memory: each message and recipient the
//! batch touches is one state ([`MessageState`], [`RecipientState`]),
//! changed line by line by the rules in `rules.rs`; a recipient's first
//! attempt is kept with its state (its row holds it), later attempts and
//! rejections are appended. [`BatchModel::flush`] then writes each changed row once
//! (`write.rs`), in the batch transaction, so a
//! delivery attempt, the recipient's status and the message's status always
//! change together. Most messages are received, delivered and completed
//! within one batch: written once, as a new row in its final state, instead
//! of inserted and updated line by line.
//!
//! A line about a message whose reception has not been read (it arrived
//! before the oldest log read, or its `<=` comes later, as with cutthrough
//! `>>`) creates a placeholder message row; the reception fills it in.
//!
//! A batch reads the states it needs from the database, except those the
//! batch before it left in [`Carried`]: the writer applies a batch while
//! the one before it is still being written, and the database does not
//! show that one's rows until it commits.

mod attempts;
pub mod counter_seed;
pub mod counters;
mod label_slots;
pub mod reasons;
mod rules;
mod write;

// FxHash: the keys here are row ids and Exim's own message ids, which no
// sender chooses, and hashing them was several percent of ingest.
use rustc_hash::FxHashMap as HashMap;

use deadpool_sqlite::rusqlite::Connection;

use crate::parse::{DeliveryFlag, Entry, Event, Reception};
use crate::store::{StoreError, TextIds};

pub use rules::{MessageState, RecipientState, Status};
pub use write::next_rows;

/// Message row ids by Exim id, remembered between batches. Bounded: it is
/// a cache, and the database answers when it forgets.
#[derive(Debug, Default, Clone)]
pub struct MessageIds {
    ids: HashMap<String, i64>,
}

/// Entries kept before the cache starts over: enough for the messages in
/// flight on a busy host (a miss costs one indexed lookup), small enough to
/// keep the daemon's memory flat.
const MESSAGE_ID_CACHE: usize = 4_096;

impl MessageIds {
    /// Forgets everything (the database was replaced).
    pub fn clear(&mut self) {
        self.ids.clear();
    }

    fn get(&self, exim_id: &str) -> Option<i64> {
        self.ids.get(exim_id).copied()
    }

    fn remember(&mut self, exim_id: &str, row: i64) {
        if self.ids.len() >= MESSAGE_ID_CACHE {
            self.ids.clear();
        }
        self.ids.insert(exim_id.to_owned(), row);
    }
}

/// What a batch leaves that the database shows only once it commits: the
/// rows it created, the states it left, and the next row ids. The batch
/// after it reads these first.
#[derive(Debug, Default)]
pub struct Carried {
    /// Rows created, by Exim id.
    created: HashMap<String, i64>,
    messages: HashMap<i64, MessageState>,
    recipients: std::collections::HashMap<(i64, String), RecipientState>,
    next_rows: Option<(i64, i64)>,
    /// Messages the batch completed: most messages complete within a
    /// batch, so their states and recipients are not carried, and a batch
    /// that touches one again is applied after this one commits.
    completed: rustc_hash::FxHashSet<i64>,
    /// The batch changed recipients it does not hold (all of a message's
    /// waiting recipients discarded): the next batch must be applied after
    /// it commits, reading the database.
    must_settle: bool,
}

impl Carried {
    /// Whether the next batch can be applied before this one commits.
    pub fn settled_enough(&self) -> bool {
        !self.must_settle
    }

    /// Fails if the batch before completed message `row`: its state is
    /// not carried, and the database shows it only once that batch
    /// commits.
    fn check_not_completed(&self, row: i64) -> Result<(), StoreError> {
        if self.completed.contains(&row) {
            return Err(StoreError::other(
                crate::store::Context::op("apply a batch ahead").key(row),
                "the batch before completed this message; apply after it commits",
            ));
        }
        Ok(())
    }
}

/// A message the batch touched.
#[derive(Debug)]
struct PendingMessage<'b> {
    exim_id: &'b str,
    /// Not in the database yet: inserted by the flush, with this row id.
    new: bool,
    /// The reception read in this batch, written by the flush (its time is
    /// the state's `received_ms`), with the ids of its texts.
    reception: Option<(Reception<'b>, write::ReceptionTexts)>,
    /// The row's state as the batch leaves it; `None` while the batch has
    /// not needed it (then the flush leaves it alone).
    state: Option<MessageState>,
}

/// A recipient the batch touched.
#[derive(Debug)]
struct PendingRecipient<'b> {
    message: i64,
    address: String,
    new: bool,
    state: RecipientState,
    changed: bool,
    /// Its first attempt, read in this batch: written in its row.
    first_attempt: Option<attempts::AttemptRow<'b>>,
}

/// The effect of one batch of entries, borrowed from the batch's lines
/// (`'b`), until [`flush`](Self::flush) writes it.
#[derive(Debug)]
pub struct BatchModel<'b> {
    messages: HashMap<i64, PendingMessage<'b>>,
    /// Rows of messages touched, in first-touch order, so the flush writes
    /// in a stable order.
    message_order: Vec<i64>,
    /// Rows this batch created, by Exim id: not in the database before the
    /// flush, and not to be forgotten by the bounded cache meanwhile.
    created: HashMap<&'b str, i64>,
    /// Keyed by addresses, which senders choose: the standard hasher,
    /// which crafted keys cannot make collide.
    recipients: std::collections::HashMap<(i64, String), usize>,
    recipient_rows: Vec<PendingRecipient<'b>>,
    attempts: Vec<attempts::AttemptRow<'b>>,
    rejections: Vec<write::PendingRejection<'b>>,
    /// Messages all of whose waiting recipients were discarded (`=>
    /// blackhole (DATA ACL discarded recipients)`, `=> discarded (system
    /// filter)`), marked so after the recipients are written.
    all_discarded: Vec<i64>,
    next_message_row: i64,
    next_recipient_row: i64,
    /// The row ids this batch started from.
    first_rows: (i64, i64),
    /// What the batch before this one left, not yet committed.
    carried: Carried,
}

impl<'b> BatchModel<'b> {
    /// An empty batch after the one that left `carried` (empty when the
    /// database holds everything before it). Row ids for new messages and
    /// recipients continue after the largest in the database, or after
    /// those the batch before it gave.
    pub fn begin(conn: &Connection, carried: Carried) -> Result<Self, StoreError> {
        let (next_message_row, next_recipient_row) = match carried.next_rows {
            Some(rows) => rows,
            None => next_rows(conn)?,
        };
        Ok(BatchModel {
            messages: HashMap::default(),
            message_order: Vec::new(),
            created: HashMap::default(),
            recipients: std::collections::HashMap::new(),
            recipient_rows: Vec::new(),
            attempts: Vec::new(),
            rejections: Vec::new(),
            all_discarded: Vec::new(),
            next_message_row,
            next_recipient_row,
            first_rows: (next_message_row, next_recipient_row),
            carried,
        })
    }

    /// The message and recipient row ids the batch started from: the
    /// writer checks in the batch's transaction that nobody else took
    /// them since (see [`write::next_rows`]).
    pub fn first_rows(&self) -> (i64, i64) {
        self.first_rows
    }

    /// What this batch leaves for the next one, which may be applied
    /// before this one commits. Ends applying: what only applying needed
    /// (the lookups, what the batch before left) is let go here, so a
    /// batch waiting to be written holds only its rows.
    pub fn carry(&mut self) -> Carried {
        self.carried = Carried::default();
        let mut messages = HashMap::default();
        let mut completed = rustc_hash::FxHashSet::default();
        for (row, pending) in &self.messages {
            match pending.state {
                Some(state) if state.status == Status::Completed => {
                    completed.insert(*row);
                }
                Some(state) => {
                    messages.insert(*row, state);
                }
                None => {}
            }
        }
        let recipients = std::mem::take(&mut self.recipients)
            .into_iter()
            .filter(|((message, _), _)| !completed.contains(message))
            .map(|(key, index)| (key, self.recipient_rows[index].state.clone()))
            .collect();
        Carried {
            created: std::mem::take(&mut self.created)
                .into_iter()
                .map(|(exim_id, row)| (exim_id.to_owned(), row))
                .collect(),
            messages,
            recipients,
            completed,
            next_rows: Some((self.next_message_row, self.next_recipient_row)),
            must_settle: !self.all_discarded.is_empty(),
        }
    }

    /// The row of the message `entry` is about, if it names one: a row
    /// already in the database (`ids` remembers recent ones), one this
    /// batch already created, or a new one (a reception, or a placeholder).
    pub fn message_row(
        &mut self,
        conn: &Connection,
        ids: &mut MessageIds,
        entry: &Entry<'b>,
    ) -> Result<Option<i64>, StoreError> {
        let Some(exim_id) = entry.message_id() else {
            return Ok(None);
        };
        let exim_id = exim_id.as_str();
        let row = match ids
            .get(exim_id)
            .or_else(|| self.created.get(exim_id).copied())
            .or_else(|| self.carried.created.get(exim_id).copied())
        {
            Some(row) => row,
            None => {
                let row = match write::find_message(conn, exim_id)? {
                    Some(row) => row,
                    None => {
                        let row = self.next_message_row;
                        self.next_message_row += 1;
                        self.messages.insert(
                            row,
                            PendingMessage {
                                exim_id,
                                new: true,
                                reception: None,
                                state: Some(MessageState::default()),
                            },
                        );
                        self.message_order.push(row);
                        self.created.insert(exim_id, row);
                        row
                    }
                };
                ids.remember(exim_id, row);
                row
            }
        };
        Ok(Some(row))
    }

    /// Applies one newly stored entry. `message` is the row of the entry's
    /// message (from [`message_row`](Self::message_row)), `at` its time in
    /// the log's clock; `texts` remembers the ids of repeated values.
    pub fn apply(
        &mut self,
        conn: &Connection,
        texts: &mut TextIds,
        entry: &Entry<'b>,
        message: Option<i64>,
        at: Option<i64>,
    ) -> Result<(), StoreError> {
        let exim_id = entry.message_id().map_or("", |id| id.as_str());
        match (&entry.event, message) {
            (Event::Reception(reception), Some(message)) => {
                let state = self.message_state(conn, message, exim_id)?;
                state.received(at);
                for address in reception.recipient_list() {
                    self.recipient(conn, message, &String::from_utf8_lossy(address))?;
                }
                let reception_texts = write::ReceptionTexts::of(reception, conn, texts)?;
                if let Some(pending) = self.messages.get_mut(&message) {
                    pending.reception = Some((*reception, reception_texts));
                }
            }
            (Event::Delivery(delivery), Some(message))
                if delivery.flag == DeliveryFlag::Discarded
                    && delivery.address.original.is_none() =>
            {
                // All of the message's recipients, none named.
                self.message_state(conn, message, exim_id)?
                    .attempted(delivery.flag, at);
                self.all_discarded.push(message);
            }
            (Event::Delivery(delivery), Some(message)) => {
                self.message_state(conn, message, exim_id)?
                    .attempted(delivery.flag, at);
                let address = String::from_utf8_lossy(delivery.address.recipient());
                let recipient = self.recipient(conn, message, &address)?;
                let pending = &mut self.recipient_rows[recipient];
                pending.state.attempted(delivery, at);
                pending.changed = true;
                let recipient = pending.state.row;
                if delivery.flag == DeliveryFlag::Discarded {
                    // A discard is no attempt: the recipient's status says it.
                    return Ok(());
                }
                let attempt =
                    attempts::AttemptRow::of(conn, texts, (message, recipient, at), delivery)?;
                if pending.state.holds_attempt {
                    self.attempts.push(attempt);
                } else {
                    pending.state.holds_attempt = true;
                    pending.first_attempt = Some(attempt);
                }
            }
            (Event::Completed { .. }, Some(message)) => {
                self.message_state(conn, message, exim_id)?.completed(at);
            }
            (Event::Frozen { reason }, Some(message)) => {
                let reason_id = texts.optional(conn, *reason)?;
                self.message_state(conn, message, exim_id)?
                    .frozen_because(at, reason_id);
            }
            (Event::MessageIsFrozen, Some(message)) => {
                self.message_state(conn, message, exim_id)?.frozen(at);
            }
            (Event::Unfrozen { .. }, Some(message)) => {
                self.message_state(conn, message, exim_id)?.unfrozen(at);
            }
            (Event::Rejection(rejection), _) => {
                if let Some(message) = message {
                    self.message_state(conn, message, exim_id)?
                        .rejected_after_data(at);
                }
                self.rejections.push((message, *rejection, at));
            }
            _ => {}
        }
        Ok(())
    }

    /// Writes every change of the batch: messages first, then recipients,
    /// attempts and rejections, which refer to them (the batch's new texts
    /// are written beside, see [`TextIds::take_unwritten`]).
    pub fn flush(&self, conn: &Connection) -> Result<(), StoreError> {
        let messages: Vec<(i64, &PendingMessage<'_>)> = self
            .message_order
            .iter()
            .filter_map(|row| Some((*row, self.messages.get(row)?)))
            .collect();
        write::messages(conn, &messages)?;
        write::recipients(conn, &self.recipient_rows)?;
        write::all_discarded(conn, &self.all_discarded)?;
        attempts::attempts(conn, &self.attempts)?;
        write::rejections(conn, &self.rejections)
    }

    /// The state of message `row`, read from the database the first time
    /// the batch changes a message it did not create.
    fn message_state(
        &mut self,
        conn: &Connection,
        row: i64,
        exim_id: &'b str,
    ) -> Result<&mut MessageState, StoreError> {
        let pending = match self.messages.entry(row) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                self.message_order.push(row);
                entry.insert(PendingMessage {
                    exim_id,
                    new: false,
                    reception: None,
                    state: None,
                })
            }
        };
        if pending.state.is_none() {
            self.carried.check_not_completed(row)?;
            pending.state = Some(match self.carried.messages.get(&row) {
                Some(state) => *state,
                None => write::load_message(conn, row)?,
            });
        }
        Ok(pending.state.get_or_insert_with(MessageState::default))
    }

    /// The index in `recipient_rows` of `address` of message `message`,
    /// created (pending) if the message has no such recipient yet.
    fn recipient(
        &mut self,
        conn: &Connection,
        message: i64,
        address: &str,
    ) -> Result<usize, StoreError> {
        let key = (message, address.to_owned());
        if let Some(index) = self.recipients.get(&key) {
            return Ok(*index);
        }
        let message_is_new = self.messages.get(&message).is_some_and(|m| m.new);
        if !message_is_new {
            self.carried.check_not_completed(message)?;
        }
        let known = if message_is_new {
            None
        } else if let Some(state) = self.carried.recipients.get(&key) {
            Some(state.clone())
        } else {
            write::load_recipient(conn, message, address)?
        };
        let pending = match known {
            Some(state) => PendingRecipient {
                message,
                address: key.1.clone(),
                new: false,
                state,
                changed: false,
                first_attempt: None,
            },
            None => {
                let row = self.next_recipient_row;
                self.next_recipient_row += 1;
                PendingRecipient {
                    message,
                    address: key.1.clone(),
                    new: true,
                    state: RecipientState::pending(row),
                    changed: true,
                    first_attempt: None,
                }
            }
        };
        let index = self.recipient_rows.len();
        self.recipient_rows.push(pending);
        self.recipients.insert(key, index);
        Ok(index)
    }
}

#[cfg(test)]
pub(crate) mod tests;
