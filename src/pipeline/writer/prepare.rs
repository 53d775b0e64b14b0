//! Preparing a batch: each line parsed (on a second thread), placed before
//! or after its source's stored read position, and applied to the mail
//! model. Preparing reads the database and never writes it, so the writer
//! prepares the next batch on a connection of its own while this one is
//! written and committed (`mod.rs`); what the batch before left and the
//! database does not show yet, it takes from [`PrepareState`].

use std::path::Path;
use std::sync::Arc;

// FxHash: keys are row ids and file fingerprints, none of them chosen by a
// sender.
use rustc_hash::FxHashMap as HashMap;

use deadpool_sqlite::rusqlite::Connection;

use super::EntryContext;
use super::implausible::ImplausibleTimes;
use super::queue_actions::{Confirmable, confirmable};
use crate::model::counters::CounterTally;
use crate::model::{BatchModel, Carried, MessageIds};
use crate::parse::{Entry, Event, Kind, parse_line};
use crate::pipeline::item::{Item, SourceKind};
use crate::pipeline::source::Fingerprint;
use crate::store::repo::load_checkpoint;
use crate::store::{Context, ReadOnly, ResultExt, StoreError, TextIds, open_read_only};

/// Lines parsed ahead per message between the parsing thread and the
/// preparing one (a slice of the batch; not a line chunk).
const PARSE_AHEAD: usize = 64;

/// What preparing carries from batch to batch. Its caches and what the
/// batch before left may name rows that batch has not committed yet; if
/// that batch is not committed as prepared, the writer starts this state
/// over from the committed contexts ([`PrepareState::after`]).
#[derive(Debug, Default)]
pub(super) struct PrepareState {
    /// Source rows by fingerprint: only sources the database holds.
    pub(super) source_ids: HashMap<Fingerprint, i64>,
    /// What a continuation line inherits, per source.
    pub(super) contexts: HashMap<Fingerprint, EntryContext>,
    messages: MessageIds,
    texts: TextIds,
    /// What the batch prepared before this one left.
    carried: Carried,
    /// Where each source the batch before touched stands after it.
    positions: HashMap<i64, u64>,
    /// The store generation the cached ids belong to.
    pub(super) store_generation: u64,
}

impl PrepareState {
    /// A state that reads everything from the database but the contexts.
    pub(super) fn after(contexts: HashMap<Fingerprint, EntryContext>, generation: u64) -> Self {
        PrepareState {
            contexts,
            store_generation: generation,
            ..PrepareState::default()
        }
    }

    /// Whether `batch` can be prepared before the batch before it
    /// commits: its sources are all stored, and the batch before left
    /// nothing only the database can tell.
    pub(super) fn can_prepare_ahead(&self, batch: &[Item]) -> bool {
        self.carried.settled_enough()
            && batch.iter().all(|item| match item {
                Item::Line(line) => self.source_ids.contains_key(&line.source.fingerprint),
                Item::Gap(_) | Item::Audit(_) | Item::QueueSample(_) => true,
            })
    }

    /// Rows may have been removed (a prune step): forget every cached row
    /// and text id. Nothing may be in flight.
    pub(super) fn forget_rows(&mut self) {
        *self = PrepareState {
            source_ids: std::mem::take(&mut self.source_ids),
            ..PrepareState::after(std::mem::take(&mut self.contexts), self.store_generation)
        };
    }

    /// Prepares `batch` ahead on a read-only connection of its own to
    /// `path`, opened for it and closed after: the writer's pooled
    /// connections keep their page caches, nothing prepared this way can
    /// write, and no connection outlives a time the files were read-only
    /// (SQLite shares one process's view of the shared-memory file among
    /// its connections: one opened while it was read-only keeps every
    /// later one read-only while it stays open).
    pub(super) fn prepare_ahead<'b>(
        &mut self,
        path: &Path,
        batch: &'b [Item],
    ) -> Result<Prepared<'b>, StoreError> {
        let conn = open_reader(path)?;
        prepare(&conn, batch, self)
    }

    /// Every batch prepared before is committed: what they left is in the
    /// database now, and is read from there.
    pub(super) fn settle(&mut self) {
        self.carried = Carried::default();
        self.positions.clear();
        self.texts.settle();
    }
}

/// Page cache of the connection that prepares ahead, in KiB: it reads a
/// few rows per batch, and another connection's commit empties it anyway.
const READER_CACHE_KIB: i64 = 512;

/// Opens the read-only connection that prepares batches ahead.
fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let context = || Context::op("open a connection to prepare batches").key(path.display());
    match open_read_only(path)? {
        ReadOnly::Ready(conn) => {
            conn.pragma_update(None, "cache_size", -READER_CACHE_KIB)
                .ctx(context)?;
            Ok(conn)
        }
        ReadOnly::Missing | ReadOnly::Empty | ReadOnly::Older(_) => Err(StoreError::other(
            context(),
            "the database is missing or not migrated",
        )),
    }
}

/// What the writer does with one item of a prepared batch.
#[derive(Debug)]
pub(super) enum Planned {
    /// A line of Exim's to store, with its time (inherited by a
    /// continuation line), its message's row, its kind and the queue
    /// actions it may confirm. The parsed entry itself is not kept: a batch
    /// waiting to be written holds only this.
    Line {
        source_id: i64,
        logged_ms: Option<i64>,
        message: Option<i64>,
        kind: Kind,
        /// Its place in [`Prepared::confirms`] (few lines confirm one).
        confirms: Option<u32>,
    },
    /// A line before its source's stored read position: already stored.
    Replayed,
    /// A record of the queue helper's actions log.
    QueueAction { source_id: i64 },
    /// A gap, an audit record or a queue sample: the writer records it.
    Other,
}

/// A batch prepared: what to do with each item, the model's rows, the new
/// texts they refer to, and what it assumed of the database.
#[derive(Debug)]
pub(super) struct Prepared<'b> {
    pub(super) planned: Vec<Planned>,
    /// The queue actions lines may confirm.
    pub(super) confirms: Vec<Confirmable<'b>>,
    /// What the batch's lines add to the metrics' counters.
    pub(super) counters: CounterTally<'b>,
    /// Lines dated outside plausible times.
    pub(super) implausible: ImplausibleTimes<'b>,
    pub(super) model: BatchModel<'b>,
    pub(super) texts: Vec<(i64, String)>,
    pub(super) assumed: Assumed,
    /// The contexts before the batch, to start over from.
    pub(super) contexts_before: HashMap<Fingerprint, EntryContext>,
}

/// What a prepared batch assumed of the database, checked in the
/// transaction that writes it: nobody else took row or text ids, removed
/// texts or moved a read position since.
#[derive(Debug)]
pub(super) struct Assumed {
    pub(super) generation: u64,
    pub(super) first_rows: (i64, i64),
    pub(super) first_text: Option<i64>,
    pub(super) sweeps: i64,
    /// Each source's stored read position as the batch found it.
    pub(super) positions: HashMap<i64, u64>,
}

self_cell::self_cell!(
    /// A batch and its preparation, which borrows the batch's lines.
    pub(super) struct PreparedBatch {
        owner: Arc<Vec<Item>>,
        #[covariant]
        dependent: Prepared,
    }
    impl {Debug}
);

/// Prepares `batch` on `conn` (the writer's own transaction, or a
/// connection of its own while the batch before is being committed).
pub(super) fn prepare<'b>(
    conn: &Connection,
    batch: &'b [Item],
    state: &mut PrepareState,
) -> Result<Prepared<'b>, StoreError> {
    state.texts.revalidate(conn)?;
    let contexts_before = state.contexts.clone();
    let carried = std::mem::take(&mut state.carried);
    let in_flight = std::mem::take(&mut state.positions);
    let mut preparing = Preparing {
        conn,
        model: BatchModel::begin(conn, carried)?,
        stored_to: HashMap::default(),
        in_flight,
        assumed_positions: HashMap::default(),
        planned: Vec::with_capacity(batch.len()),
        confirms: Vec::new(),
        counters: CounterTally::default(),
        implausible: ImplausibleTimes::new(),
    };
    std::thread::scope(|scope| -> Result<(), StoreError> {
        let (sender, receiver) = std::sync::mpsc::sync_channel::<Vec<Option<Entry<'_>>>>(4);
        scope.spawn(move || {
            for slice in batch.chunks(PARSE_AHEAD) {
                let entries = slice
                    .iter()
                    .map(|item| match item {
                        Item::Line(line) => Some(parse_line(&line.bytes)),
                        Item::Gap(_) | Item::Audit(_) | Item::QueueSample(_) => None,
                    })
                    .collect();
                if sender.send(entries).is_err() {
                    return;
                }
            }
        });
        let mut entries = receiver.into_iter().flatten();
        for item in batch {
            let planned = preparing.plan(state, item, entries.next())?;
            preparing.planned.push(planned);
        }
        Ok(())
    })?;
    state.carried = preparing.model.carry();
    state.positions = preparing.stored_to;
    let texts = state.texts.take_unwritten();
    Ok(Prepared {
        planned: preparing.planned,
        confirms: preparing.confirms,
        counters: preparing.counters,
        implausible: preparing.implausible,
        assumed: Assumed {
            generation: state.store_generation,
            first_rows: preparing.model.first_rows(),
            first_text: texts.first().map(|(id, _)| *id),
            sweeps: state.texts.sweeps(),
            positions: preparing.assumed_positions,
        },
        model: preparing.model,
        texts,
        contexts_before,
    })
}

/// One batch being prepared.
struct Preparing<'c, 'b> {
    conn: &'c Connection,
    model: BatchModel<'b>,
    /// Per source, the offset before which every line is stored: lines
    /// before it (a replay) are skipped, so none is stored twice.
    stored_to: HashMap<i64, u64>,
    /// Where the batch before left each source it touched.
    in_flight: HashMap<i64, u64>,
    /// Each source's stored position as this batch found it.
    assumed_positions: HashMap<i64, u64>,
    planned: Vec<Planned>,
    confirms: Vec<Confirmable<'b>>,
    counters: CounterTally<'b>,
    implausible: ImplausibleTimes<'b>,
}

impl<'b> Preparing<'_, 'b> {
    /// What to do with `item`, parsed as `entry` by the parsing thread
    /// (`None` for an item that is no line; nothing when it stopped).
    fn plan(
        &mut self,
        state: &mut PrepareState,
        item: &'b Item,
        entry: Option<Option<Entry<'b>>>,
    ) -> Result<Planned, StoreError> {
        match (item, entry) {
            (Item::Line(line), Some(Some(entry))) => {
                let Some(source_id) = state.source_ids.get(&line.source.fingerprint) else {
                    return Err(StoreError::other(
                        Context::op("prepare batch"),
                        format!("no stored source for {}", line.source.path),
                    ));
                };
                let source_id = *source_id;
                if self.is_replay(source_id, line.start)? {
                    return Ok(Planned::Replayed);
                }
                self.stored_to.insert(source_id, line.end);
                if line.source.kind == SourceKind::QueueActions {
                    return Ok(Planned::QueueAction { source_id });
                }
                self.counters
                    .line(&entry, line.length > line.bytes.len() as u64);
                if let Some(at) = entry.prefix.map(|prefix| prefix.timestamp.local_ms()) {
                    self.implausible.check(line, at);
                }
                self.line(state, line.source.fingerprint, source_id, entry)
            }
            (Item::Gap(_) | Item::Audit(_) | Item::QueueSample(_), Some(None)) => {
                Ok(Planned::Other)
            }
            _ => Err(StoreError::other(
                Context::op("parse lines"),
                "the parsing thread stopped early",
            )),
        }
    }

    /// Whether a line of `source_id` starting at `start` is already stored.
    fn is_replay(&mut self, source_id: i64, start: u64) -> Result<bool, StoreError> {
        let stored_to = match self.stored_to.get(&source_id) {
            Some(offset) => *offset,
            None => {
                let offset = match self.in_flight.get(&source_id) {
                    Some(offset) => *offset,
                    None => {
                        load_checkpoint(self.conn, source_id)?.map_or(0, |c| c.position.byte_offset)
                    }
                };
                self.assumed_positions.insert(source_id, offset);
                self.stored_to.insert(source_id, offset);
                offset
            }
        };
        Ok(start < stored_to)
    }

    /// Applies a line to the model, in its source's context.
    fn line(
        &mut self,
        state: &mut PrepareState,
        fingerprint: Fingerprint,
        source_id: i64,
        entry: Entry<'b>,
    ) -> Result<Planned, StoreError> {
        let at = entry.prefix.map(|prefix| prefix.timestamp.local_ms());
        let message = self
            .model
            .message_row(self.conn, &mut state.messages, &entry)?;
        let context = state.contexts.entry(fingerprint).or_default();
        if !matches!(entry.event, Event::Continuation { .. }) {
            context.logged_ms = at;
            context.message_row = message;
        }
        // What the line means for its message, written in the same
        // transaction as the line itself.
        self.model.apply(
            self.conn,
            &mut state.texts,
            &entry,
            message,
            context.logged_ms,
        )?;
        let confirms = confirmable(&entry).map(|confirms| {
            self.confirms.push(confirms);
            (self.confirms.len() - 1) as u32
        });
        Ok(Planned::Line {
            source_id,
            logged_ms: context.logged_ms,
            message: context.message_row,
            kind: entry.kind(),
            confirms,
        })
    }
}
