//! `exim-pilot ingest FILE...`: read whole log files into the database,
//! resuming each from its stored read position, then exit.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use tokio::sync::mpsc;

use crate::config::Config;
use crate::pipeline::{reader, writer};
use crate::store::repo::{SourceIdentity, load_checkpoint, upsert_source};
use crate::store::{self, Backoff, Store, TxError};
use crate::tail::identity::Fingerprint;

/// Attempts per batch before a retryable database error ends the command.
const MAX_ATTEMPTS_PER_BATCH: u32 = 8;

/// Ingests `files` in order and prints one summary line per file.
pub async fn run(config: &Config, files: &[PathBuf]) -> Result<()> {
    let store = store::connect(&config.database).await?;
    for path in files {
        ingest_file(&store, config, path)
            .await
            .with_context(|| format!("ingesting {}", path.display()))?;
    }
    Ok(())
}

async fn ingest_file(store: &Store, config: &Config, path: &Path) -> Result<()> {
    let fingerprint = {
        let path = path.to_path_buf();
        let input = super::open_input(&path, 0)?;
        tokio::task::spawn_blocking(move || Fingerprint::of_head(&mut input.into_reader()))
            .await??
    };
    let Some(fingerprint) = fingerprint else {
        println!(
            "{}: no complete line yet, nothing to ingest",
            path.display()
        );
        return Ok(());
    };
    let (source_id, resume_at) = locate(store, path, fingerprint).await?;

    let (sender, receiver) = mpsc::channel(
        config
            .ingest
            .channel_capacity
            .div_ceil(config.ingest.batch_size)
            .max(1),
    );
    let read = {
        let path = path.to_path_buf();
        let batch_size = config.ingest.batch_size;
        let max_line_bytes = config.ingest.max_line_bytes;
        tokio::task::spawn_blocking(move || {
            reader::read_file(
                &path,
                source_id,
                resume_at,
                batch_size,
                max_line_bytes,
                &sender,
            )
        })
    };
    let backoff = Backoff::new(config.health.backoff_min, config.health.backoff_max);
    let written = writer::run(store, receiver, backoff, MAX_ATTEMPTS_PER_BATCH).await;
    let summary = read.await??;
    let written = written?;

    println!(
        "{}: {} lines read from byte {} ({} new, {} already stored, {} truncated)",
        path.display(),
        summary.lines,
        resume_at,
        written.inserted,
        written.replayed,
        summary.truncated
    );
    if summary.pending_bytes > 0 {
        println!(
            "{}: {} bytes after the last newline were left for later (incomplete line)",
            path.display(),
            summary.pending_bytes
        );
    }
    Ok(())
}

/// The source row for this file and the offset to resume from.
async fn locate(store: &Store, path: &Path, fingerprint: Fingerprint) -> Result<(i64, u64)> {
    let metadata = std::fs::metadata(path)?;
    let path_text = path.display().to_string();
    let (device, inode) = {
        use std::os::unix::fs::MetadataExt;
        (metadata.dev(), metadata.ino())
    };
    let located = store
        .transaction("locate log source", move |tx| {
            let source_id = upsert_source(
                tx,
                &SourceIdentity {
                    fingerprint: &fingerprint.0,
                    path: &path_text,
                    device: Some(device),
                    inode: Some(inode),
                },
            )?;
            let offset = load_checkpoint(tx, source_id)?.map_or(0, |c| c.byte_offset);
            Ok((source_id, offset))
        })
        .await
        .map_err(TxError::into_primary)?;
    Ok(located)
}
