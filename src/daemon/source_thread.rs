//! The source thread: drives a [`LineSource`] on a thread of its own with
//! the one drive loop (`crate::pipeline::drive`), waking on file-system events that may mean new
//! lines (notify, on the source's directory; not the reader's own opens) or the
//! poll interval, whichever comes first, and sending lines into the bounded
//! channel (it blocks there when the writer is behind: the log is the
//! buffer).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::pipeline::channel::LineSender;
use crate::pipeline::drive::{Steering, drive};
use crate::pipeline::item::Item;
use crate::pipeline::source::{ItemSink, LineSource, PollOutcome};
use notify::{RecursiveMode, Watcher};

/// How the rest of the daemon steers the reader.
pub struct ReaderControl {
    stop: AtomicBool,
    switch_to: Mutex<Option<PathBuf>>,
    wake: SyncSender<()>,
    /// Bytes between the read position and the end of the live file.
    pub lag_bytes: AtomicU64,
    /// Since when (wall clock, ms) `lag_bytes` has not been 0; 0 while the
    /// reader is at the end.
    pub behind_since_ms: AtomicI64,
    /// Lines longer than `max_line_bytes`, stored truncated, since start.
    pub truncated_lines: AtomicU64,
    /// What the source reads now (it changes when a reload switches the
    /// log path), for the status line.
    described: Mutex<String>,
    /// Whether the reader is stalled, and why: see [`ReaderControl::stall`].
    health: ReaderHealth,
}

/// What tells a stalled reader from a quiet log: polls that keep failing,
/// or one that does not return while it is not waiting for the writer
/// (a full channel is the database pushing back, not a stall).
#[derive(Debug, Default)]
struct ReaderHealth {
    /// Since when (wall clock, ms) every poll has failed; 0 while they do not.
    failing_since_ms: AtomicI64,
    /// The last poll's error.
    last_error: Mutex<String>,
    /// Whether a poll is under way.
    in_poll: AtomicBool,
    /// Whether the reader waits for room in the channel.
    in_send: AtomicBool,
    /// When (wall clock, ms) the reader last showed life inside a poll: its
    /// start, or a send returning.
    heartbeat_ms: AtomicI64,
    /// `[health] stall_after`, in ms.
    stall_after_ms: AtomicI64,
}

/// A stalled reader: since when, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stall {
    /// When it began (wall clock, ms).
    pub since_ms: i64,
    /// The error, or what hangs.
    pub reason: String,
}

impl ReaderControl {
    fn new(wake: SyncSender<()>, described: String) -> Self {
        ReaderControl {
            stop: AtomicBool::new(false),
            switch_to: Mutex::new(None),
            wake,
            lag_bytes: AtomicU64::new(0),
            behind_since_ms: AtomicI64::new(0),
            truncated_lines: AtomicU64::new(0),
            described: Mutex::new(described),
            health: ReaderHealth::default(),
        }
    }

    /// Notes the bytes behind after a poll, and since when they have not
    /// been 0.
    fn record_lag(&self, lag: u64) {
        self.lag_bytes.store(lag, Ordering::Relaxed);
        if lag == 0 {
            self.behind_since_ms.store(0, Ordering::Relaxed);
        } else if self.behind_since_ms.load(Ordering::Relaxed) == 0 {
            self.behind_since_ms
                .store(crate::store::repo::now_ms().max(1), Ordering::Relaxed);
        }
    }

    /// How long the reader has been behind the end of the log.
    pub fn lag_seconds(&self) -> f64 {
        match self.behind_since_ms.load(Ordering::Relaxed) {
            0 => 0.0,
            since => (crate::store::repo::now_ms() - since).max(0) as f64 / 1000.0,
        }
    }

    /// Asks the reader to stop after the line it is sending.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake();
    }

    /// Asks the reader to follow another path.
    pub fn switch_path(&self, path: PathBuf) {
        if let Ok(mut slot) = self.switch_to.lock() {
            *slot = Some(path);
        }
        self.wake();
    }

    /// Makes the reader poll now. Wake-ups coalesce: a full queue means one
    /// is already pending.
    pub fn wake(&self) {
        match self.wake.try_send(()) {
            Ok(()) | Err(TrySendError::Full(()) | TrySendError::Disconnected(())) => {}
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// What the source reads now: a path.
    pub fn describe(&self) -> String {
        self.described
            .lock()
            .map(|text| text.clone())
            .unwrap_or_default()
    }

    /// Sets `[health] stall_after` (at start and on reload).
    pub fn set_stall_after(&self, after: Duration) {
        let after_ms = i64::try_from(after.as_millis()).unwrap_or(i64::MAX);
        self.health
            .stall_after_ms
            .store(after_ms, Ordering::Relaxed);
    }

    /// Whether the reader has failed, or hung outside the channel, for
    /// `[health] stall_after` or longer.
    pub fn stall(&self) -> Option<Stall> {
        let now = crate::store::repo::now_ms();
        let health = &self.health;
        let after_ms = health.stall_after_ms.load(Ordering::Relaxed);
        let failing = health.failing_since_ms.load(Ordering::Relaxed);
        if failing != 0 && now - failing >= after_ms {
            let error = health
                .last_error
                .lock()
                .map(|e| e.clone())
                .unwrap_or_default();
            return Some(Stall {
                since_ms: failing,
                reason: format!("reading {} fails: {error}", self.describe()),
            });
        }
        let heartbeat = health.heartbeat_ms.load(Ordering::Relaxed);
        if health.in_poll.load(Ordering::Relaxed)
            && !health.in_send.load(Ordering::Relaxed)
            && now - heartbeat >= after_ms
        {
            return Some(Stall {
                since_ms: heartbeat,
                reason: format!(
                    "a read of {} has not returned for {} s",
                    self.describe(),
                    (now - heartbeat) / 1000
                ),
            });
        }
        None
    }

    fn poll_started(&self) {
        self.health
            .heartbeat_ms
            .store(crate::store::repo::now_ms(), Ordering::Relaxed);
        self.health.in_poll.store(true, Ordering::Relaxed);
    }

    fn poll_ended(&self, error: Option<&std::io::Error>) {
        let health = &self.health;
        health.in_poll.store(false, Ordering::Relaxed);
        match error {
            None => health.failing_since_ms.store(0, Ordering::Relaxed),
            Some(err) => {
                if let Ok(mut last) = health.last_error.lock() {
                    *last = err.to_string();
                }
                if health.failing_since_ms.load(Ordering::Relaxed) == 0 {
                    health
                        .failing_since_ms
                        .store(crate::store::repo::now_ms().max(1), Ordering::Relaxed);
                }
            }
        }
    }

    /// Runs `send` (which may wait for room in the channel) marked as such.
    fn sending<T>(&self, send: impl FnOnce() -> T) -> T {
        let health = &self.health;
        health.in_send.store(true, Ordering::Relaxed);
        let result = send();
        health.in_send.store(false, Ordering::Relaxed);
        health
            .heartbeat_ms
            .store(crate::store::repo::now_ms(), Ordering::Relaxed);
        result
    }

    fn set_described(&self, text: String) {
        if let Ok(mut slot) = self.described.lock() {
            *slot = text;
        }
    }
}

/// Starts the source thread. It first lets the source catch up with what
/// happened while stopped, then polls it until stopped or the writer goes
/// away.
pub fn spawn(
    mut source: Box<dyn LineSource>,
    sender: LineSender,
    poll_active: Duration,
    poll_idle: Duration,
) -> (Arc<ReaderControl>, std::thread::JoinHandle<()>) {
    let (wake_tx, wake_rx) = sync_channel(1);
    let control = Arc::new(ReaderControl::new(wake_tx, source.describe()));
    let thread_control = Arc::clone(&control);
    let mut sender = ReaderSink {
        sender,
        control: Arc::clone(&control),
    };
    let thread = std::thread::Builder::new()
        .name("source".to_owned())
        .spawn(move || {
            if let Err(err) = source.resume(&mut sender) {
                let described = source.describe();
                tracing::error!(
                    source = %described,
                    error = %err,
                    "cannot catch up with what {described} got while stopped: {err}"
                );
            }
            sender.flush();
            let mut following = Following {
                control: &thread_control,
                wake: &wake_rx,
                watcher: watch(source.wake_directory(), &thread_control),
                poll_active,
                poll_idle,
                read_errors: 0,
            };
            // The daemon's steering retries every failed poll: the drive
            // ends only on a stop request or when the writer has gone.
            if let Err(err) = drive(source.as_mut(), &mut sender, &mut following) {
                tracing::error!(error = %err, "the source thread ended: {err}");
            }
        })
        .unwrap_or_else(|err| {
            tracing::error!(error = %err, "cannot start the source thread: {err}");
            std::thread::spawn(|| {})
        });
    (control, thread)
}

/// The reader's end of the channel: knows about stop requests, and counts
/// and reports truncated lines.
struct ReaderSink {
    sender: LineSender,
    control: Arc<ReaderControl>,
}

impl ItemSink for ReaderSink {
    fn send(&mut self, item: Item) -> bool {
        let sender = &mut self.sender;
        self.control.sending(|| sender.send(item))
    }

    fn flush(&mut self) -> bool {
        let sender = &mut self.sender;
        self.control.sending(|| sender.flush())
    }

    fn stopping(&self) -> bool {
        self.control.stopping()
    }

    fn truncated(&mut self, path: &str, offset: u64, length: u64) {
        let count = self.control.truncated_lines.fetch_add(1, Ordering::Relaxed) + 1;
        // Rare in a real log; a flood of them is summed up rather than
        // logged line by line.
        if count <= 100 || count.is_power_of_two() {
            tracing::warn!(
                path,
                offset,
                length,
                truncated_lines = count,
                "a line of {length} bytes at byte {offset} of {path} is longer than \
                 [ingest] max_line_bytes; stored truncated, with its real length ({count} so far)"
            );
        }
    }
}

/// The daemon's steering of the one drive loop: stop on request, follow a
/// reload's new path, keep the reader's health and lag, retry failed reads
/// at the idle pace, and sleep until a file-system event or the poll
/// interval.
struct Following<'a> {
    control: &'a Arc<ReaderControl>,
    wake: &'a Receiver<()>,
    watcher: Option<notify::RecommendedWatcher>,
    poll_active: Duration,
    poll_idle: Duration,
    read_errors: u32,
}

impl Steering for Following<'_> {
    fn stopping(&self) -> bool {
        self.control.stopping()
    }

    fn before_poll(&mut self, source: &mut dyn LineSource, sink: &mut dyn ItemSink) {
        let switch = self
            .control
            .switch_to
            .lock()
            .ok()
            .and_then(|mut slot| slot.take());
        if let Some(path) = switch {
            if let Err(err) = source.switch_path(path, sink) {
                tracing::warn!(error = %err, "error while finishing the previous log: {err}");
            }
            self.control.set_described(source.describe());
            self.watcher = watch(source.wake_directory(), self.control);
        }
    }

    fn poll_started(&mut self) {
        self.control.poll_started();
    }

    fn poll_ended(&mut self, source: &dyn LineSource, polled: &std::io::Result<PollOutcome>) {
        self.control.poll_ended(polled.as_ref().err());
        if polled.is_ok() {
            self.read_errors = 0;
        }
        self.control.record_lag(source.lag_bytes());
    }

    /// An I/O error reading the log: say so (once per episode) and try
    /// again at the idle pace.
    fn retry(&mut self, source: &dyn LineSource, err: &std::io::Error) -> bool {
        if self.read_errors == 0 {
            let described = source.describe();
            tracing::warn!(
                source = %described,
                error = %err,
                "error reading the log {described}: {err}; retrying"
            );
        }
        self.read_errors = self.read_errors.saturating_add(1);
        true
    }

    fn wait(&mut self, since_lines: Duration) -> bool {
        let interval = if since_lines < Duration::from_secs(5) {
            self.poll_active
        } else {
            self.poll_idle
        };
        match self.wake.recv_timeout(interval) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => true,
            Err(RecvTimeoutError::Disconnected) => false,
        }
    }
}

/// Watches `directory`; an event that may mean new lines or another file
/// (an overflow or error included) only means "poll now". Without a watch
/// the thread polls alone, and says so.
fn watch(
    directory: Option<PathBuf>,
    control: &Arc<ReaderControl>,
) -> Option<notify::RecommendedWatcher> {
    let directory = directory?;
    let waker = Arc::clone(control);
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if wakes(&event) {
            waker.wake();
        }
    })
    .and_then(|mut watcher| {
        watcher.watch(&directory, RecursiveMode::NonRecursive)?;
        Ok(watcher)
    });
    match watcher {
        Ok(watcher) => Some(watcher),
        Err(err) => {
            tracing::warn!(
                directory = %directory.display(),
                error = %err,
                "cannot watch {} ({err}); polling only",
                directory.display()
            );
            None
        }
    }
}

/// Whether a file-system event can mean new lines or another file. Opening
/// a file or the directory cannot: notify reports opens (inotify's
/// `IN_OPEN`), and the reader's own polls open the directory (listing the
/// rotated generations) and the log, so waking on them turned a poll into
/// the next one's wake-up: a reader waiting for a log that does not exist
/// yet (the queue helper's actions log before the first action) polled
/// without pause, a core's worth of CPU.
fn wakes(event: &notify::Result<notify::Event>) -> bool {
    use notify::EventKind;
    use notify::event::AccessKind;
    match event {
        Ok(event) => !matches!(
            event.kind,
            EventKind::Access(AccessKind::Open(_) | AccessKind::Read)
        ),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A watcher on a fresh directory and the receiver its wake-ups reach.
    fn watched() -> (tempfile::TempDir, notify::RecommendedWatcher, Receiver<()>) {
        let dir = tempfile::TempDir::new().unwrap();
        let (wake_tx, wake_rx) = sync_channel(1);
        let control = Arc::new(ReaderControl::new(wake_tx, "test".to_owned()));
        let watcher = watch(Some(dir.path().to_path_buf()), &control).unwrap();
        (dir, watcher, wake_rx)
    }

    #[test]
    fn the_readers_own_opens_do_not_wake_it() {
        let (dir, _watcher, wake) = watched();
        let log = dir.path().join("mainlog");
        std::fs::write(&log, "line\n").unwrap();
        // The write's events arrive; then only the reader's own acts follow.
        assert!(wake.recv_timeout(Duration::from_secs(5)).is_ok());
        while wake.recv_timeout(Duration::from_millis(300)).is_ok() {}
        for _ in 0..20 {
            let _ = std::fs::read_dir(dir.path()).unwrap().count();
            let _ = std::fs::read(&log).unwrap();
            let _ = std::fs::metadata(dir.path().join("actions.log"));
        }
        assert_eq!(
            wake.recv_timeout(Duration::from_millis(500)),
            Err(RecvTimeoutError::Timeout),
            "listing the directory and reading the log woke the reader"
        );
    }

    #[test]
    fn a_write_a_new_file_and_a_rename_wake_the_reader() {
        let (dir, _watcher, wake) = watched();
        let log = dir.path().join("mainlog");
        std::fs::File::create(&log).unwrap();
        assert!(
            wake.recv_timeout(Duration::from_secs(5)).is_ok(),
            "a new file"
        );
        while wake.recv_timeout(Duration::from_millis(300)).is_ok() {}
        let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        while wake.recv_timeout(Duration::from_millis(300)).is_ok() {}
        file.write_all(b"line\n").unwrap();
        assert!(wake.recv_timeout(Duration::from_secs(5)).is_ok(), "a write");
        while wake.recv_timeout(Duration::from_millis(300)).is_ok() {}
        std::fs::rename(&log, dir.path().join("mainlog.1")).unwrap();
        assert!(
            wake.recv_timeout(Duration::from_secs(5)).is_ok(),
            "a rename"
        );
    }
}
