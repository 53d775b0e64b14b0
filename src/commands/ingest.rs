//! `exim-pilot ingest FILE...`: read whole log files into the database
//! through the same parser, writer and read positions as the daemon, then
//! exit. Ingesting a file twice adds nothing; ingesting rotated files and
//! then starting `run` continues without a gap or a duplicate.

use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::Config;
use crate::exit::Failure;
use crate::pipeline::channel::{self, LineSender};
use crate::pipeline::drive::{ToTheEnd, drive};
use crate::pipeline::item::{AuditItem, Item};
use crate::pipeline::source::{ItemSink, LineSource as _};
use crate::pipeline::writer::{self, NoProgress, WriteTotals, WriterSettings};
use crate::source::file::finished::ReadSummary;
use crate::source::file::named_files::NamedFiles;
use crate::source::file::positions::Positions;
use crate::store::{self, StoreHandle};

/// Attempts per batch before a retryable database error ends the command.
const MAX_ATTEMPTS_PER_BATCH: u32 = 8;

/// Ingests `files` in order and prints what each held, then a summary.
pub async fn run(config: &Config, files: &[PathBuf]) -> Result<()> {
    for path in files {
        // Fail on a missing file before touching the database.
        drop(super::open_input(path, 0)?);
    }
    let store = store::connect(&config.database).await?;
    let positions = Positions::from_rows(&store.source_positions().await?);
    let started = Instant::now();
    let bulk = is_bulk(&config.database.path, files);
    if bulk {
        store
            .with_conn("drop indexes for a bulk load", |conn| {
                store::indexes::drop_secondary(conn)
            })
            .await?;
    }
    let handle = StoreHandle::new(store);
    // The command drops and builds the indexes itself, around the writer.
    let (sender, writer) = start_writer(config, &handle);
    let reading = read_all(
        files.to_vec(),
        positions,
        config.ingest.max_line_bytes,
        sender,
    );
    let summaries = reading.await?;
    let written = writer.task.await?;
    if bulk {
        // Even after a failure: what was committed is kept, and queries need
        // the indexes (the next open would build them otherwise).
        let indexing = Instant::now();
        handle
            .current()
            .with_conn("rebuild indexes after a bulk load", |conn| {
                store::indexes::ensure_secondary(conn)
            })
            .await?;
        let seconds = indexing.elapsed().as_secs_f64();
        tracing::info!(
            seconds,
            "rebuilt the indexes after a bulk load in {seconds:.1} s"
        );
    }
    report(&summaries?, written?, started)
}

/// `ingest --journal`: reads Exim's journal entries (after the stored
/// position, or from `window.since`) up to the end (or `window.until`),
/// through the same writer, and stores the position so that `run`
/// continues from there.
pub async fn journal(config: &Config, window: crate::source::journal::Window) -> Result<()> {
    let settings = crate::source::journal::JournalSettings::from_config(config);
    let store = store::connect(&config.database).await?;
    let start = settings.stored_position(&store.source_positions().await?);
    let handle = StoreHandle::new(store);
    let started = Instant::now();
    let (sender, writer) = start_writer(config, &handle);
    let described = settings.describe();
    let reading = tokio::task::spawn_blocking(move || -> Result<(u64, u64)> {
        let mut source = crate::source::journal::JournalSource::new(settings, start, window, false);
        let mut sender = sender;
        let entries = drive(&mut source, &mut sender, &mut ToTheEnd)?;
        ItemSink::send(
            &mut sender,
            AuditItem::item(
                "backfill",
                "ingest",
                serde_json::json!({ "journal": source.describe(), "entries": entries }),
            ),
        );
        sender.flush();
        Ok((entries, source.partial_lines()))
    });
    let (entries, partial) = reading.await??;
    let totals = writer.task.await??;
    let seconds = started.elapsed().as_secs_f64();
    let mut out = crate::output::stdout();
    writeln!(
        out,
        "{described}: {entries} entries read, {} lines stored ({} already stored, {partial} \
         incomplete) in {seconds:.2} s",
        totals.inserted, totals.replayed
    )?;
    out.flush()?;
    Ok(())
}

/// The writer of a command: retries a batch a bounded number of times, and
/// leaves the indexes to the command.
fn start_writer(config: &Config, handle: &StoreHandle) -> (LineSender, writer::Started) {
    let (sender, receiver) = channel::for_config(&config.ingest);
    let writer = writer::start(
        handle.clone(),
        receiver,
        WriterSettings::from_config(config, Some(MAX_ATTEMPTS_PER_BATCH)),
        Box::new(NoProgress),
        writer::Indexes::Kept,
    );
    (sender, writer)
}

/// Reads `files` in order on a blocking thread, sending every line, then
/// the audit record of the backfill. The writer ends once `sender` is gone.
fn read_all(
    files: Vec<PathBuf>,
    positions: Positions,
    max_line_bytes: usize,
    sender: LineSender,
) -> tokio::task::JoinHandle<Result<Vec<(PathBuf, ReadSummary)>>> {
    tokio::task::spawn_blocking(move || {
        let bar = progress_bar(&files);
        let mut source = NamedFiles::new(files, positions, max_line_bytes);
        let mut sink = CountingSink { sender, bar: &bar };
        if let Err(err) = drive(&mut source, &mut sink, &mut ToTheEnd) {
            let path = source.current().unwrap_or(std::path::Path::new("?"));
            return Err(super::input_error(path, &err).into());
        }
        bar.finish_and_clear();
        let summaries = source.summaries().to_vec();
        let files: Vec<serde_json::Value> = summaries
            .iter()
            .map(|(path, s)| serde_json::json!({ "path": path.display().to_string(), "from": s.resumed_at, "lines": s.lines }))
            .collect();
        let mut sender = sink.sender;
        ItemSink::send(
            &mut sender,
            AuditItem::item("backfill", "ingest", serde_json::json!({ "files": files })),
        );
        sender.flush();
        Ok(summaries)
    })
}

/// Prints what each file held and the summary; a damaged file ends the
/// command with status 2 after what was readable is reported.
fn report(
    summaries: &[(PathBuf, ReadSummary)],
    totals: WriteTotals,
    started: Instant,
) -> Result<()> {
    let mut out = crate::output::stdout();
    for (path, summary) in summaries {
        if summary.no_first_line {
            writeln!(
                out,
                "{}: no complete line yet, nothing to ingest",
                path.display()
            )?;
            continue;
        }
        writeln!(
            out,
            "{}: {} lines read from byte {} ({} truncated)",
            path.display(),
            summary.lines,
            summary.resumed_at,
            summary.truncated
        )?;
        if summary.pending_bytes > 0 {
            writeln!(
                out,
                "{}: {} bytes after the last newline were left for later (incomplete line)",
                path.display(),
                summary.pending_bytes
            )?;
        }
    }
    let damaged: Vec<String> = summaries
        .iter()
        .filter_map(|(path, summary)| {
            let reason = summary.unreadable_tail.as_ref()?;
            Some(format!(
                "{}: {reason}; its {} readable lines were stored and the rest recorded as a gap",
                path.display(),
                summary.lines
            ))
        })
        .collect();
    if !damaged.is_empty() {
        out.flush()?;
        return Err(Failure::new(crate::exit::USAGE, damaged.join("\n")).into());
    }
    let seconds = started.elapsed().as_secs_f64();
    let lines: u64 = summaries.iter().map(|(_, s)| s.lines).sum();
    writeln!(
        out,
        "ingested {lines} lines ({} new, {} already stored) in {seconds:.2} s, {:.0} lines/s",
        totals.inserted,
        totals.replayed,
        lines as f64 / seconds.max(1e-9)
    )?;
    out.flush()?;
    Ok(())
}

/// Whether to load in bulk: worth it when the files are large beside the
/// database (see [`store::indexes::bulk_load_pays`]).
fn is_bulk(database: &std::path::Path, files: &[PathBuf]) -> bool {
    let input_bytes: u64 = files
        .iter()
        .map(|path| std::fs::metadata(path).map_or(0, |m| m.len()))
        .sum();
    store::indexes::bulk_load_pays(database, input_bytes)
}

/// A progress bar over the files' sizes when stderr is a terminal; hidden
/// otherwise (scripts and tests see only the summary).
fn progress_bar(files: &[PathBuf]) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let total = files
        .iter()
        .map(|path| std::fs::metadata(path).map_or(0, |m| m.len()))
        .sum();
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg} {wide_bar} {bytes}/{total_bytes} {per_sec} {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(format!("ingest {} files", files.len()));
    bar
}

/// Sends to the writer and advances the progress bar by the line's bytes.
struct CountingSink<'a> {
    sender: LineSender,
    bar: &'a ProgressBar,
}

impl ItemSink for CountingSink<'_> {
    fn send(&mut self, item: Item) -> bool {
        if let Item::Line(line) = &item {
            self.bar.inc(line.end - line.start);
        }
        ItemSink::send(&mut self.sender, item)
    }

    fn flush(&mut self) -> bool {
        self.sender.flush()
    }
}
