//! A running `journalctl`: its entries read on a thread of their own into a
//! bounded channel (a slow database pushes back on journalctl through its
//! pipe), its complaints on stderr kept for the error that ends it, and the
//! process killed when it is dropped or its parent dies.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use super::export::{JournalEntry, read_entry};

/// Entries read ahead of the writer (bounded: a slow database pushes back
/// on journalctl through its pipe).
const READ_AHEAD: usize = 1024;

/// A running `journalctl`, its entries read on a thread of their own.
pub(super) struct Reader {
    pub(super) child: Child,
    pub(super) entries: Receiver<std::io::Result<JournalEntry>>,
    /// The last line journalctl wrote to stderr: why it ended, if it failed.
    pub(super) last_complaint: Arc<std::sync::Mutex<String>>,
    /// The thread reading stderr.
    pub(super) stderr_reader: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Reader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Reader {
    /// Runs `command` (journalctl with its arguments), its output read on
    /// a thread; `described` names the source in the warnings of stderr.
    pub(super) fn spawn(mut command: Command, described: String) -> std::io::Result<Reader> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        end_with_parent(&mut command);
        let mut child = command.spawn().map_err(|err| {
            std::io::Error::new(err.kind(), format!("cannot run journalctl: {err}"))
        })?;
        let (sender, entries) = sync_channel(READ_AHEAD);
        if let Some(stdout) = child.stdout.take() {
            std::thread::Builder::new()
                .name("journalctl".into())
                .spawn(move || read_entries(BufReader::new(stdout), &sender))?;
        }
        let last_complaint = Arc::new(std::sync::Mutex::new(String::new()));
        let mut stderr_reader = None;
        if let Some(stderr) = child.stderr.take() {
            let complaint = Arc::clone(&last_complaint);
            stderr_reader = Some(
                std::thread::Builder::new()
                    .name("journalctl-err".into())
                    .spawn(move || {
                        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                            tracing::warn!(source = %described, "journalctl: {line}");
                            if let Ok(mut last) = complaint.lock() {
                                *last = line.chars().take(512).collect();
                            }
                        }
                    })?,
            );
        }
        Ok(Reader {
            child,
            entries,
            last_complaint,
            stderr_reader,
        })
    }
}

/// Has the child killed when the thread that started it ends, so that a
/// daemon killed with SIGKILL outside systemd (which would stop the whole
/// cgroup) leaves no journalctl following the journal behind.
#[allow(unsafe_code)] // prctl(2) between fork and exec
fn end_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches only this child.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Reads journalctl's output until it ends or nobody listens.
fn read_entries(
    mut stdout: BufReader<std::process::ChildStdout>,
    sender: &SyncSender<std::io::Result<JournalEntry>>,
) {
    loop {
        match read_entry(&mut stdout) {
            Ok(Some(entry)) => {
                if sender.send(Ok(entry)).is_err() {
                    return;
                }
            }
            Ok(None) => return,
            Err(err) => {
                let _ = sender.send(Err(err));
                return;
            }
        }
    }
}
