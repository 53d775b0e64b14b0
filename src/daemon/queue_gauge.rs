//! Exim's queue size for the metrics (`exim_queue`, `exim_queue_frozen`)
//! and for the flow page's chart: the queue helper lists the queue once a
//! minute while its socket is there; a scrape reads the last count, and
//! each count goes to the writer to be kept (`queue_samples`). The daemon
//! never reads Exim's spool itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use crate::config::QueueConfig;
use crate::pipeline::channel::LineSender;
use crate::pipeline::item::{Item, QueueSample};
use crate::queue::client;
use crate::queue::listing::{ListingReader, QueueSize};
use crate::queue::request::{Actor, PROTOCOL_VERSION, Request, Verb};

/// How often the queue is counted.
const EVERY: Duration = Duration::from_secs(60);
/// The most listing read for a count (a queue of a few hundred thousand).
const MAX_LISTING: u64 = 64 << 20;

/// The last count: messages and frozen ones, when known.
#[derive(Debug, Default)]
pub struct QueueCounts {
    known: AtomicBool,
    messages: AtomicU64,
    frozen: AtomicU64,
}

impl QueueCounts {
    /// The last count, if the helper answered it.
    pub fn get(&self) -> Option<QueueSize> {
        self.known.load(Ordering::Relaxed).then(|| QueueSize {
            messages: self.messages.load(Ordering::Relaxed),
            frozen: self.frozen.load(Ordering::Relaxed),
        })
    }
}

/// Starts counting, each count also sent to `keep` for the writer; ends
/// when `stop` says so.
pub fn start(
    config: &QueueConfig,
    keep: LineSender,
    mut stop: watch::Receiver<bool>,
) -> Arc<QueueCounts> {
    let counts = Arc::new(QueueCounts::default());
    let shared = Arc::clone(&counts);
    let socket = config.socket.clone();
    tokio::spawn(async move {
        let mut said = false;
        loop {
            let ask = socket.clone();
            let counted = tokio::task::spawn_blocking(move || count(&ask)).await;
            match counted {
                Ok(Ok(Some(size))) => {
                    shared.messages.store(size.messages, Ordering::Relaxed);
                    shared.frozen.store(size.frozen, Ordering::Relaxed);
                    shared.known.store(true, Ordering::Relaxed);
                    said = false;
                    // The channel is full while the database is down: a
                    // stop must not wait for it.
                    let sample = Item::QueueSample(QueueSample {
                        at_ms: in_the_logs_clock(),
                        size,
                    });
                    tokio::select! {
                        _ = keep.send_record(sample) => {}
                        _ = stop.changed() => return,
                    }
                }
                Ok(Ok(None)) => shared.known.store(false, Ordering::Relaxed),
                Ok(Err(err)) => {
                    shared.known.store(false, Ordering::Relaxed);
                    if !said {
                        tracing::warn!(error = %err, "cannot count Exim's queue through the queue helper: {err}");
                        said = true;
                    }
                }
                Err(_) => shared.known.store(false, Ordering::Relaxed),
            }
            tokio::select! {
                () = tokio::time::sleep(EVERY) => {}
                _ = stop.changed() => return,
            }
        }
    });
    counts
}

/// Now as Exim writes its lines' times (local time), read as UTC as they
/// are stored: a count then charts beside the lines of its minute.
fn in_the_logs_clock() -> i64 {
    let utc_ms = crate::store::repo::now_ms();
    utc_ms + crate::localtime::utc_offset_ms(utc_ms)
}

/// The queue's size, or `None` when the helper's socket is not there (the
/// queue helper is not installed or not enabled).
fn count(socket: &std::path::Path) -> Result<Option<QueueSize>, client::ClientError> {
    if !socket.exists() {
        return Ok(None);
    }
    let request = Request {
        v: PROTOCOL_VERSION,
        request_id: format!("metrics-{}", crate::store::repo::now_ms()),
        verb: Verb::List,
        ids: Vec::new(),
        dry_run: false,
        reason: String::new(),
        selection: String::new(),
        origin: "daemon".to_owned(),
        actor: Actor::default(),
    };
    let answer = client::ask(socket, &request, Duration::from_secs(60), MAX_LISTING)?;
    if !answer.reply.ok || answer.reply.payload_cut {
        return Err(client::ClientError::Answer(answer.reply.error));
    }
    let mut reader = ListingReader::default();
    let mut size = QueueSize::default();
    for line in answer.payload.split(|&b| b == b'\n') {
        reader.line(line);
        reader.take().iter().for_each(|message| size.add(message));
    }
    reader.finish().iter().for_each(|message| size.add(message));
    Ok(Some(size))
}
