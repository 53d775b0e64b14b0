//! Writing one prepared batch inside its transaction: sources, lines, the
//! model's rows, compressed chunks, line counts, gaps, audit records and
//! the read position of every source it touched.

// FxHash: keys are row ids, file fingerprints and (minute, kind) pairs,
// none of them chosen by a sender; hashing several per line was a few
// percent of ingest with the standard hasher.
use rustc_hash::FxHashMap as HashMap;

use deadpool_sqlite::rusqlite::Transaction;

use super::prepare::{Assumed, Planned, Prepared};
use super::{WriteState, WriteTotals, queue_actions};
use crate::model::counter_seed::seed_if_needed;
use crate::model::counters::CounterTally;
use crate::pipeline::item::{AuditItem, GapItem, Item, LineItem, SourceInfo};
use crate::pipeline::source::Fingerprint;
use crate::store::chunk::LineRecord;
use crate::store::repo::{
    AuditRecord, Checkpoint, ChunkedLines, Gap, ReadPosition, SourceIdentity, add_line_counts,
    load_checkpoint, minute_of, now_ms, record_audit, record_gap, save_checkpoint, seal_all,
    store_sealed, upsert_source,
};
use crate::store::{Context, StoreError};

/// Checks, in the transaction that writes a batch prepared before it
/// began, that nobody changed what the batch read: another writer's rows
/// or texts, a text sweep, a read position moved, the database replaced.
/// An error sends the batch to be prepared again inside its transaction.
pub(super) fn check_assumed(
    tx: &Transaction<'_>,
    assumed: &Assumed,
    generation: u64,
) -> Result<(), StoreError> {
    let stale = |what: &str| {
        Err(StoreError::other(
            Context::op("check a prepared batch"),
            format!("{what} changed since the batch was prepared"),
        ))
    };
    if assumed.generation != generation {
        return stale("the database");
    }
    if crate::model::next_rows(tx)? != assumed.first_rows {
        return stale("the row ids");
    }
    if let Some(first_text) = assumed.first_text
        && crate::store::next_text_id(tx)? != first_text
    {
        return stale("the text ids");
    }
    if crate::store::texts_sweeps(tx)? != assumed.sweeps {
        return stale("the texts");
    }
    for (source_id, offset) in &assumed.positions {
        let stored = load_checkpoint(tx, *source_id)?.map_or(0, |c| c.position.byte_offset);
        if stored != *offset {
            return stale("a read position");
        }
    }
    Ok(())
}

/// Stores the sources of `batch`'s lines that `source_ids` (preparing's
/// map, the one the writer keeps) does not hold yet: a batch prepared in
/// its own transaction needs their rows first. A rolled-back transaction
/// drops the map with the rest of preparing's state.
pub(super) fn store_sources(
    tx: &Transaction<'_>,
    batch: &[Item],
    source_ids: &mut HashMap<Fingerprint, i64>,
) -> Result<(), StoreError> {
    for item in batch {
        if let Item::Line(line) = item
            && !source_ids.contains_key(&line.source.fingerprint)
        {
            let id = store_source(tx, &line.source)?;
            source_ids.insert(line.source.fingerprint, id);
        }
    }
    Ok(())
}

/// Stores one prepared batch inside `tx`: sources, lines, gaps, what they
/// add to the metrics' counters (with the `retries` this commit took), the
/// model's rows and the read position after the last line of each source.
pub(super) fn write_batch<'b>(
    tx: &Transaction<'_>,
    batch: &'b [Item],
    prepared: &'b Prepared<'b>,
    state: &mut WriteState,
    retries: u32,
) -> Result<WriteTotals, StoreError> {
    if !state.counters_seeded {
        if let Some(lines) = seed_if_needed(tx)? {
            tracing::info!(
                lines,
                "counted the {lines} lines stored before this version for the metrics' counters"
            );
        }
        state.counters_seeded = true;
    }
    // Each attempt counts from what the batch's lines add.
    let mut counters = prepared.counters.clone();
    counters.writer_retries(retries);
    let mut writing = BatchWriter {
        tx,
        state,
        chunks: ChunkedLines::default(),
        counters,
        counts: HashMap::default(),
        positions: HashMap::default(),
        totals: WriteTotals {
            batches: 1,
            ..WriteTotals::default()
        },
    };
    if batch.len() != prepared.planned.len() {
        return Err(StoreError::other(
            Context::op("write batch"),
            "the prepared batch is not the batch",
        ));
    }
    for (item, planned) in batch.iter().zip(&prepared.planned) {
        match (item, planned) {
            (Item::Line(_), Planned::Replayed) => writing.totals.replayed += 1,
            (Item::Line(line), Planned::QueueAction { source_id }) => {
                // The queue helper's records go to the audit log, not among
                // Exim's lines; their read position commits the same way.
                queue_actions::ingest(tx, &line.bytes, &mut writing.state.awaiting)?;
                writing
                    .positions
                    .insert(*source_id, (line.end, line.resume.as_bytes()));
                writing.totals.inserted += 1;
            }
            (Item::Line(line), Planned::Line { .. }) => writing.line(line, planned, prepared)?,
            (Item::Gap(gap), Planned::Other) => writing.gap(gap)?,
            (Item::Audit(audit), Planned::Other) => writing.audit(audit)?,
            (Item::QueueSample(sample), Planned::Other) => {
                crate::store::repo::queue_samples::record(
                    tx,
                    sample.at_ms,
                    sample.size.messages,
                    sample.size.frozen,
                )?;
            }
            _ => {
                return Err(StoreError::other(
                    Context::op("write batch"),
                    "the prepared batch is not the batch",
                ));
            }
        }
    }
    writing.finish(prepared)
}

/// One batch being written.
struct BatchWriter<'t, 'b> {
    tx: &'t Transaction<'t>,
    state: &'t mut WriteState,
    chunks: ChunkedLines,
    /// What the batch adds to the metrics' counters.
    counters: CounterTally<'b>,
    /// Lines per (minute, kind).
    counts: HashMap<(i64, &'static str), u64>,
    /// Where each source stands after this batch: its end offset and the
    /// bytes before it (borrowed, so a line costs no copy of them).
    positions: HashMap<i64, (u64, &'b [u8])>,
    totals: WriteTotals,
}

impl<'b> BatchWriter<'_, 'b> {
    fn line(
        &mut self,
        line: &'b LineItem,
        planned: &Planned,
        prepared: &Prepared<'b>,
    ) -> Result<(), StoreError> {
        let Planned::Line {
            source_id,
            logged_ms,
            message,
            kind,
            confirms,
        } = planned
        else {
            return Ok(());
        };
        let tx = self.tx;
        if let Some(index) = confirms {
            let confirms = prepared.confirms.get(*index as usize).copied();
            queue_actions::confirm(tx, confirms, *logged_ms, &mut self.state.awaiting)?;
        }
        *self
            .counts
            .entry((minute_of(*logged_ms), kind.name()))
            .or_default() += 1;
        self.chunks.push(
            *source_id,
            &LineRecord {
                start: line.start,
                end: line.end,
                length: line.length,
                bytes: &line.bytes,
                logged_ms: *logged_ms,
                message: *message,
            },
        );
        self.positions
            .insert(*source_id, (line.end, line.resume.as_bytes()));
        self.totals.inserted += 1;
        Ok(())
    }

    fn gap(&mut self, gap: &GapItem) -> Result<(), StoreError> {
        let source_id = match &gap.source {
            // Gaps are rare: the source's row is looked up each time.
            Some(source) => Some(store_source(self.tx, source)?),
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
    fn finish(mut self, prepared: &Prepared<'_>) -> Result<WriteTotals, StoreError> {
        let tx = self.tx;
        if let Some(details) = prepared.implausible.report() {
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
        let compressor = &mut self.state.compressor;
        let sealed = std::thread::scope(|scope| {
            let sealing = scope.spawn(move || seal_all(chunks, compressor));
            crate::store::insert_texts(tx, &prepared.texts)?;
            prepared.model.flush(tx)?;
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

/// Stores `source` if the database does not hold it yet; returns its row.
fn store_source(tx: &Transaction<'_>, source: &SourceInfo) -> Result<i64, StoreError> {
    upsert_source(
        tx,
        &SourceIdentity {
            fingerprint: &source.fingerprint.0,
            path: &source.path,
            device: source.device,
            inode: source.inode,
        },
    )
}
