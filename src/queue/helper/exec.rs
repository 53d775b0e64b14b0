//! Running Exim for the helper: a fixed program and argv, no shell, a
//! cleared environment, standard input from /dev/null, the root directory
//! as working directory, a deadline after which it is killed, and its
//! output capped (the rest read and dropped, so Exim never blocks on a
//! full pipe).

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a run of Exim gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ran {
    /// Its exit status; `None` when it was killed (the deadline) or by a
    /// signal.
    pub status: Option<i32>,
    /// Standard output, at most the cap given.
    pub stdout: Vec<u8>,
    /// Whether standard output was longer than the cap.
    pub stdout_cut: bool,
    /// Standard error, at most [`STDERR_CAP`].
    pub stderr: Vec<u8>,
    /// Whether the deadline passed and it was killed.
    pub timed_out: bool,
}

/// Bytes kept of Exim's standard error.
pub const STDERR_CAP: usize = 64 * 1024;

/// Runs `program` with `args` and waits at most `deadline`, keeping at
/// most `stdout_cap` bytes of its output.
pub fn run(
    program: &Path,
    args: &[String],
    deadline: Duration,
    stdout_cap: usize,
) -> std::io::Result<Ran> {
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LANG", "C")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that a deadline stops what it started
        // too (a delivery's children hold its output open).
        .process_group(0);
    let mut child = spawn(&mut command)?;
    let stdout = child.stdout.take().map(|out| capture(out, stdout_cap));
    let stderr = child.stderr.take().map(|err| capture(err, STDERR_CAP));
    let started = Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() >= deadline {
            timed_out = true;
            // Gone already is fine: wait() below reaps it either way.
            if let Some(group) = rustix::process::Pid::from_raw(child.id().cast_signed()) {
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
            }
            let _ = child.kill();
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let (stdout, stdout_cut) = stdout.map(joined).unwrap_or_default();
    let (stderr, _) = stderr.map(joined).unwrap_or_default();
    Ok(Ran {
        status: if timed_out { None } else { status.code() },
        stdout,
        stdout_cut,
        stderr,
        timed_out,
    })
}

/// Spawns `command`, again after a moment when the program is still open
/// for writing somewhere (`ETXTBSY`: a file just written, whose descriptor
/// another thread's fork still holds for an instant).
fn spawn(command: &mut Command) -> std::io::Result<std::process::Child> {
    let mut tries = 0;
    loop {
        match command.spawn() {
            Err(err) if err.raw_os_error() == Some(26) && tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            result => return result,
        }
    }
}

type Capture = std::thread::JoinHandle<(Vec<u8>, bool)>;

/// Reads `from` to its end on a thread, keeping the first `cap` bytes.
fn capture(mut from: impl Read + Send + 'static, cap: usize) -> Capture {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut cut = false;
        let mut buffer = [0u8; 64 * 1024];
        loop {
            match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = cap.saturating_sub(kept.len());
                    kept.extend_from_slice(&buffer[..n.min(room)]);
                    cut |= n > room;
                }
            }
        }
        (kept, cut)
    })
}

fn joined(capture: Capture) -> (Vec<u8>, bool) {
    capture.join().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, deadline: Duration, cap: usize) -> Ran {
        run(
            Path::new("/bin/sh"),
            &["-c".to_owned(), script.to_owned()],
            deadline,
            cap,
        )
        .unwrap()
    }

    #[test]
    fn the_environment_is_cleared_and_the_directory_is_root() {
        assert!(
            std::env::var_os("HOME").is_some(),
            "the test runs with HOME set"
        );
        let ran = sh("env; pwd", Duration::from_secs(10), 4096);
        let text = String::from_utf8(ran.stdout).unwrap();
        assert_eq!(ran.status, Some(0));
        assert!(
            text.contains("PATH=/usr/sbin:/usr/bin:/sbin:/bin"),
            "{text}"
        );
        assert!(text.contains("LANG=C"), "{text}");
        assert!(!text.contains("HOME="), "{text}");
        assert!(
            text.trim_end().ends_with("\n/") || text.trim_end() == "/",
            "{text}"
        );
    }

    #[test]
    fn output_is_capped_and_a_run_past_its_deadline_is_killed() {
        let ran = sh(
            "head -c 100000 /dev/zero; echo oops >&2; exit 3",
            Duration::from_secs(10),
            1000,
        );
        assert_eq!(
            (ran.stdout.len(), ran.stdout_cut, ran.status),
            (1000, true, Some(3))
        );
        assert_eq!(ran.stderr, b"oops\n");
        let started = Instant::now();
        let ran = sh("sleep 30", Duration::from_millis(200), 1000);
        assert!(ran.timed_out && ran.status.is_none());
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
