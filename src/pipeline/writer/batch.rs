//! Writing one batch inside its transaction: sources, lines (parsed on a
//! second thread), the model's rows, compressed chunks, line counts, gaps,
//! audit records and the read position of every source it touched.

// FxHash: keys are row ids, file fingerprints and (minute, kind) pairs,
// none of them chosen by a sender; hashing several per line was a few
// percent of ingest with the standard hasher.
use rustc_hash::FxHashMap as HashMap;

use deadpool_sqlite::rusqlite::Transaction;

use super::{WriteTotals, WriterState, queue_actions};
use crate::model::BatchModel;
use crate::model::counter_seed::seed_if_needed;
use crate::model::counters::CounterTally;
use crate::parse::{Entry, Event, parse_line};
use crate::pipeline::item::{AuditItem, GapItem, Item, LineItem, SourceInfo, SourceKind};
use crate::store::chunk::LineRecord;
use crate::store::repo::{
    AuditRecord, Checkpoint, ChunkedLines, Gap, ReadPosition, SourceIdentity, add_line_counts,
    load_checkpoint, minute_of, now_ms, record_audit, record_gap, save_checkpoint, seal_all,
    store_sealed, upsert_source,
};
use crate::store::{Context, StoreError};

/// Lines parsed ahead per message between the parsing thread and the
/// writer (a slice of the batch; not a line chunk).
const PARSE_AHEAD: usize = 64;

/// Stores one batch inside `tx`: sources, lines, gaps, what they add to
/// the metrics' counters (with the `retries` this commit took), and the
/// read position after the last line of each source.
///
/// Uses both cores: a second thread parses the lines while this one applies
/// them, and then compresses the chunks of lines while this one writes the
/// model's rows.
pub(super) fn write_batch(
    tx: &Transaction<'_>,
    batch: &[Item],
    state: &mut WriterState,
    retries: u32,
) -> Result<WriteTotals, StoreError> {
    state.texts.revalidate(tx)?;
    if !state.counters_seeded {
        if let Some(lines) = seed_if_needed(tx)? {
            tracing::info!(
                lines,
                "counted the {lines} lines stored before this version for the metrics' counters"
            );
        }
        state.counters_seeded = true;
    }
    let mut counters = CounterTally::default();
    counters.writer_retries(retries);
    let mut writing = BatchWriter {
        tx,
        state,
        model: BatchModel::begin(tx)?,
        chunks: ChunkedLines::default(),
        counters,
        counts: HashMap::default(),
        stored_to: HashMap::default(),
        positions: HashMap::default(),
        implausible: ImplausibleTimes::new(),
        totals: WriteTotals {
            batches: 1,
            ..WriteTotals::default()
        },
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
            match (item, entries.next()) {
                (Item::Line(line), Some(Some(entry))) => writing.line(line, entry)?,
                (Item::Gap(gap), Some(None)) => writing.gap(gap)?,
                (Item::Audit(audit), Some(None)) => writing.audit(audit)?,
                (Item::QueueSample(sample), Some(None)) => {
                    crate::store::repo::queue_samples::record(
                        writing.tx,
                        sample.at_ms,
                        sample.size.messages,
                        sample.size.frozen,
                    )?;
                }
                _ => {
                    return Err(StoreError::other(
                        Context::op("parse lines"),
                        "the parsing thread stopped early",
                    ));
                }
            }
        }
        Ok(())
    })?;
    writing.finish()
}

/// One batch being written.
struct BatchWriter<'t, 'b> {
    tx: &'t Transaction<'t>,
    state: &'t mut WriterState,
    model: BatchModel<'b>,
    chunks: ChunkedLines,
    /// What the batch adds to the metrics' counters.
    counters: CounterTally<'b>,
    /// Lines per (minute, kind).
    counts: HashMap<(i64, &'static str), u64>,
    /// Per source, the offset before which every line is stored: lines
    /// before it (a replay) are skipped, so none is stored twice.
    stored_to: HashMap<i64, u64>,
    /// Where each source stands after this batch: its end offset and the
    /// bytes before it (borrowed, so a line costs no copy of them).
    positions: HashMap<i64, (u64, &'b [u8])>,
    /// Lines dated outside [`PlausibleTimes`], reported once per batch.
    implausible: ImplausibleTimes<'b>,
    totals: WriteTotals,
}

/// The earliest time a line of Exim's can carry: its first release. An
/// earlier one (1970 above all) comes from a reset clock or garbage.
const EXIM_EPOCH_MS: i64 = 788_918_400_000; // 1995-01-01T00:00:00Z

/// Lines of a batch dated before Exim existed or beyond the wall clock's
/// tolerance: stored like any other line, and reported, because they are
/// garbage or a clock jump that an operator should know of.
#[derive(Debug, Default)]
struct ImplausibleTimes<'b> {
    count: u64,
    /// The first such line: its path, offset and time.
    first: Option<(&'b str, u64, i64)>,
    /// The latest plausible time (the wall clock plus tolerance).
    latest_ms: i64,
}

impl<'b> ImplausibleTimes<'b> {
    fn new() -> Self {
        ImplausibleTimes {
            latest_ms: now_ms().saturating_add(crate::store::repo::FUTURE_TOLERANCE_MS),
            ..ImplausibleTimes::default()
        }
    }

    fn check(&mut self, line: &'b LineItem, logged_ms: i64) {
        if (EXIM_EPOCH_MS..=self.latest_ms).contains(&logged_ms) {
            return;
        }
        self.count += 1;
        self.first
            .get_or_insert((line.source.path.as_str(), line.start, logged_ms));
    }

    /// The audit record's details, if any line was implausible.
    fn report(&self) -> Option<String> {
        let (path, offset, logged_ms) = self.first?;
        tracing::warn!(
            lines = self.count,
            path,
            offset,
            logged_ms,
            "stored {} line(s) dated before 1995 or more than a day ahead of the clock \
             (first in {path} at byte {offset}); they do not move the retention clock",
            self.count
        );
        Some(
            serde_json::json!({
                "lines": self.count, "path": path, "offset": offset, "logged_ms": logged_ms,
            })
            .to_string(),
        )
    }
}

impl<'b> BatchWriter<'_, 'b> {
    fn line(&mut self, line: &'b LineItem, entry: Entry<'b>) -> Result<(), StoreError> {
        let tx = self.tx;
        let source_id = source_id(tx, &line.source, self.state)?;
        let stored_to = match self.stored_to.get(&source_id) {
            Some(offset) => *offset,
            None => load_checkpoint(tx, source_id)?.map_or(0, |c| c.position.byte_offset),
        };
        if line.start < stored_to {
            // Before the stored read position: already stored.
            self.stored_to.insert(source_id, stored_to);
            self.totals.replayed += 1;
            return Ok(());
        }
        if line.source.kind == SourceKind::QueueActions {
            // The queue helper's records go to the audit log, not among
            // Exim's lines; their read position commits the same way.
            queue_actions::ingest(tx, &line.bytes, &mut self.state.awaiting)?;
            self.stored_to.insert(source_id, line.end);
            self.positions
                .insert(source_id, (line.end, line.resume.as_bytes()));
            self.totals.inserted += 1;
            return Ok(());
        }
        self.counters
            .line(&entry, line.length > line.bytes.len() as u64);
        let at = entry.prefix.map(|prefix| prefix.timestamp.local_ms());
        if let Some(at) = at {
            self.implausible.check(line, at);
        }
        let message_row = self
            .model
            .message_row(tx, &mut self.state.messages, &entry)?;
        let context = self
            .state
            .contexts
            .entry(line.source.fingerprint)
            .or_default();
        if !matches!(entry.event, Event::Continuation { .. }) {
            context.logged_ms = at;
            context.message_row = message_row;
        }
        // What the line means for its message, in this same transaction as
        // the line itself.
        self.model.apply(
            tx,
            &mut self.state.texts,
            &entry,
            message_row,
            context.logged_ms,
        )?;
        queue_actions::confirm(tx, &entry, context.logged_ms, &mut self.state.awaiting)?;
        *self
            .counts
            .entry((minute_of(context.logged_ms), entry.kind().name()))
            .or_default() += 1;
        self.chunks.push(
            source_id,
            &LineRecord {
                start: line.start,
                end: line.end,
                length: line.length,
                bytes: &line.bytes,
                logged_ms: context.logged_ms,
                message: context.message_row,
            },
        );
        self.stored_to.insert(source_id, line.end);
        self.positions
            .insert(source_id, (line.end, line.resume.as_bytes()));
        self.totals.inserted += 1;
        Ok(())
    }

    fn gap(&mut self, gap: &GapItem) -> Result<(), StoreError> {
        let source_id = match &gap.source {
            Some(source) => Some(source_id(self.tx, source, self.state)?),
            None => None,
        };
        let recorded = record_gap(
            self.tx,
            &Gap {
                source_id,
                path: &gap.path,
                start_offset: gap.start,
                end_offset: gap.end,
                reason: &gap.reason,
            },
        )?;
        if !recorded {
            return Ok(());
        }
        self.counters.gap();
        record_audit(
            self.tx,
            &AuditRecord {
                actor: "exim-pilot",
                action: "gap",
                message_id: None,
                details: &serde_json::json!({
                    "path": gap.path, "start": gap.start, "end": gap.end, "reason": gap.reason,
                })
                .to_string(),
                origin: "daemon",
            },
        )?;
        tracing::warn!(
            path = %gap.path,
            start = gap.start,
            end = ?gap.end,
            reason = %gap.reason,
            "recorded a gap: bytes {}..{} of {} could not be read: {}",
            gap.start,
            gap.end.map_or_else(|| "its end".to_owned(), |end| end.to_string()),
            gap.path,
            gap.reason
        );
        self.totals.gaps += 1;
        Ok(())
    }

    fn audit(&mut self, audit: &AuditItem) -> Result<(), StoreError> {
        record_audit(
            self.tx,
            &AuditRecord {
                actor: "exim-pilot",
                action: &audit.action,
                message_id: None,
                details: &audit.details,
                origin: audit.origin,
            },
        )
        .map(drop)
    }

    /// Writes the model's rows while another thread compresses the chunks,
    /// then the chunks (they link to the message rows), the line counts and
    /// the read positions.
    fn finish(mut self) -> Result<WriteTotals, StoreError> {
        let tx = self.tx;
        if let Some(details) = self.implausible.report() {
            record_audit(
                tx,
                &AuditRecord {
                    actor: "exim-pilot",
                    action: "implausible_time",
                    message_id: None,
                    details: &details,
                    origin: "daemon",
                },
            )?;
        }
        let chunks = self.chunks.take();
        let model = self.model;
        let texts = &mut self.state.texts;
        let compressor = &mut self.state.compressor;
        let sealed = std::thread::scope(|scope| {
            let sealing = scope.spawn(move || seal_all(chunks, compressor));
            model.flush(tx, texts)?;
            sealing.join().map_err(|_| {
                StoreError::other(
                    Context::op("compress lines"),
                    "the compressing thread panicked",
                )
            })?
        })?;
        store_sealed(tx, &sealed)?;
        std::mem::take(&mut self.counters).flush(tx)?;
        let counts: Vec<((i64, &str), u64)> = self.counts.into_iter().collect();
        add_line_counts(tx, &counts)?;
        let committed_ms = now_ms();
        for (source_id, (byte_offset, marker)) in self.positions {
            let checkpoint = Checkpoint {
                source_id,
                position: ReadPosition {
                    byte_offset,
                    marker: marker.to_vec(),
                },
            };
            save_checkpoint(tx, &checkpoint, committed_ms)?;
        }
        Ok(self.totals)
    }
}

fn source_id(
    tx: &Transaction<'_>,
    source: &SourceInfo,
    state: &mut WriterState,
) -> Result<i64, StoreError> {
    if let Some(id) = state.source_ids.get(&source.fingerprint) {
        return Ok(*id);
    }
    let id = upsert_source(
        tx,
        &SourceIdentity {
            fingerprint: &source.fingerprint.0,
            path: &source.path,
            device: source.device,
            inode: source.inode,
        },
    )?;
    state.source_ids.insert(source.fingerprint, id);
    Ok(id)
}
