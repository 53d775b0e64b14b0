//! A running `exim-pilot run` as a test drives it: started with its files
//! in one directory, signalled, stopped, killed, its log read.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::binary;

/// A running `exim-pilot run` with its files in one directory.
pub struct Daemon {
    pub child: std::process::Child,
    pub db: PathBuf,
    pub config: PathBuf,
    pub stderr: PathBuf,
}

/// A configuration that reacts fast, for tests.
pub const FAST_CONFIG: &str = r#"
[ingest]
batch_size = 200
flush_interval = "20ms"
channel_capacity = 1000
[database]
busy_timeout = "100ms"
pool_wait_timeout = "2s"
[health]
interval = "200ms"
timeout = "1s"
backoff_min = "20ms"
backoff_max = "400ms"
[diagnostics]
level = "info"
format = "text"
"#;

impl Daemon {
    /// Starts the daemon on `dir/mainlog` and `dir/x.db` with
    /// [`FAST_CONFIG`] (written to `dir/c.toml` unless it exists).
    pub fn start(dir: &Path) -> Daemon {
        Self::start_with(dir, &[])
    }

    /// Like [`Daemon::start`], with extra environment variables.
    pub fn start_with(dir: &Path, env: &[(&str, &str)]) -> Daemon {
        let config = dir.join("c.toml");
        if !config.exists() {
            std::fs::write(&config, FAST_CONFIG).unwrap();
        }
        Self::start_at(dir, &dir.join("mainlog"), &dir.join("x.db"), &config, env)
    }

    /// Starts the daemon with explicit paths.
    pub fn start_at(
        dir: &Path,
        log: &Path,
        db: &Path,
        config: &Path,
        env: &[(&str, &str)],
    ) -> Daemon {
        Self::launch(dir, Some(log), db, config, env, &[])
    }

    /// Starts `wrapper... exim-pilot run --config C [--log L] --db D`: a
    /// wrapper such as `setpriv` runs it as another user; without `log`
    /// the configuration file names the log.
    pub fn launch(
        dir: &Path,
        log: Option<&Path>,
        db: &Path,
        config: &Path,
        env: &[(&str, &str)],
        wrapper: &[&str],
    ) -> Daemon {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let stderr = dir.join(format!("stderr-{stamp}.log"));
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(binary());
                command
            }
            None => Command::new(binary()),
        };
        command
            .args(["run", "--config"])
            .arg(config)
            .arg("--db")
            .arg(db);
        if let Some(log) = log {
            command.arg("--log").arg(log);
        }
        command
            .env_remove("RUST_LOG")
            .env_remove("JOURNAL_STREAM")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap());
        for (key, value) in env {
            command.env(key, value);
        }
        Daemon {
            child: command.spawn().expect("start exim-pilot run"),
            db: db.to_path_buf(),
            config: config.to_path_buf(),
            stderr,
        }
    }

    /// Sends a signal by name (`HUP`, `TERM`, `KILL`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    /// SIGTERM, then the exit status (fails the test after 10 s).
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        self.wait(Duration::from_secs(10))
    }

    /// SIGKILL and reap.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "exim-pilot did not exit within {limit:?}; stderr:\n{}",
                    self.stderr_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the daemon has logged `text` (fails after 30 s).
    pub fn wait_for_log(&self, text: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !self.stderr_text().contains(text) {
            assert!(
                std::time::Instant::now() < deadline,
                "no {text:?} in:\n{}",
                self.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// What the daemon logged so far.
    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
