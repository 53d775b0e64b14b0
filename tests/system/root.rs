//! Tests that need root: the daemon as another user against a read-only
//! database directory, a full disk (a small tmpfs), a log it may not read,
//! `ingest` of a file it may not read, and logging to journald's socket.
//! In CI they must run (`.ci/run` runs as root); a developer without root
//! sees why they did nothing.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::util::{
    Daemon, FAST_CONFIG, append_expected, append_lines, assert_exactly, numbered_lines,
    retry_warnings, wait_for_lines,
};

const WAIT: Duration = Duration::from_secs(60);

/// These tests need root (mount, other users). In CI they must run; a
/// developer without root sees why they did nothing.
pub fn privileged(what: &str) -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false);
    if !root {
        crate::util::stand_down(&format!("not root: {what}"));
    }
    root
}

#[test]
fn a_read_only_database_directory_then_writable_again() {
    if !privileged("the read-only directory test") {
        return;
    }
    let dir = TempDir::new().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let log = dir.path().join("mainlog");
    let mut expected = numbered_lines("a", 0, 20);
    append_lines(&log, &expected);
    let config = dir.path().join("c.toml");
    // Short-lived connections, so new ones meet the read-only files.
    std::fs::write(
        &config,
        FAST_CONFIG.replace("[database]\n", "[database]\nconn_max_lifetime = \"1s\"\n"),
    )
    .unwrap();
    chown_nobody(dir.path());
    chown_nobody(&data);
    let db = data.join("x.db");
    let mut daemon = start_as_nobody(dir.path(), &log, &db, &config);
    wait_for_lines(&db, 20, WAIT, Some(&daemon));

    set_mode(&data, 0o555);
    for name in ["x.db", "x.db-wal", "x.db-shm"] {
        let _ = std::fs::set_permissions(data.join(name), std::fs::Permissions::from_mode(0o444));
    }
    std::thread::sleep(Duration::from_millis(1500));
    append_expected(&log, &mut expected, "b", 0, 200);
    std::thread::sleep(Duration::from_secs(4));
    assert!(daemon.running(), "{}", daemon.stderr_text());
    let warnings = retry_warnings(&daemon);
    assert!(
        warnings >= 1,
        "the read-only database was reported:\n{}",
        daemon.stderr_text()
    );
    assert!(
        warnings <= 60,
        "{warnings} retry warnings in about 5 s: a busy loop"
    );

    set_mode(&data, 0o755);
    for name in ["x.db", "x.db-wal", "x.db-shm"] {
        let _ = std::fs::set_permissions(data.join(name), std::fs::Permissions::from_mode(0o640));
    }
    wait_for_lines(&db, expected.len(), WAIT, Some(&daemon));
    assert!(daemon.stop().success());
    assert_exactly(&db, &expected);
}

#[test]
fn a_full_disk_then_space_freed() {
    if !privileged("the full disk test") {
        return;
    }
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&data)
        .status()
        .unwrap();
    assert!(mounted.success(), "cannot mount a tmpfs");
    let _unmount = Unmount(data.clone());
    let log = dir.path().join("mainlog");
    let mut expected = numbered_lines("a", 0, 20);
    append_lines(&log, &expected);
    let db = data.join("x.db");
    let daemon = Daemon::start_at(dir.path(), &log, &db, &write_config(dir.path()), &[]);
    wait_for_lines(&db, 20, WAIT, Some(&daemon));

    // Fill what is left of the disk.
    let filler = data.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let block = vec![0u8; 64 * 1024];
    while std::io::Write::write_all(&mut file, &block).is_ok() {}
    drop(file);
    append_expected(&log, &mut expected, "b", 0, 3000);
    let deadline = Instant::now() + WAIT;
    while !daemon.stderr_text().contains("full") {
        assert!(
            Instant::now() < deadline,
            "the full disk was not reported:\n{}",
            daemon.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    let warnings = retry_warnings(&daemon);
    assert!(
        warnings <= 60,
        "{warnings} retry warnings in about 2 s: a busy loop"
    );
    std::fs::remove_file(&filler).unwrap();
    wait_for_lines(&db, expected.len(), WAIT, Some(&daemon));
    assert!(daemon.stop().success());
    // Checked in place (the WAL may hold the last commits), before the
    // tmpfs is unmounted when `_unmount` drops.
    assert_exactly(&db, &expected);
}

struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn write_config(dir: &Path) -> std::path::PathBuf {
    let config = dir.join("c.toml");
    std::fs::write(&config, FAST_CONFIG).unwrap();
    config
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chown_nobody(path: &Path) {
    assert!(
        Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(path)
            .status()
            .unwrap()
            .success()
    );
}

/// The daemon as user nobody, so file permissions apply to it.
fn start_as_nobody(dir: &Path, log: &Path, db: &Path, config: &Path) -> Daemon {
    Daemon::launch(
        dir,
        Some(log),
        db,
        config,
        &[],
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
        ],
    )
}

#[test]
fn a_log_that_appears_unreadable_is_retried_until_it_can_be_read() {
    if !privileged("the unreadable log test") {
        return;
    }
    let dir = TempDir::new().unwrap();
    set_mode(dir.path(), 0o755);
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    chown_nobody(&data);
    let log = dir.path().join("mainlog");
    let config = write_config(dir.path());
    let db = data.join("x.db");
    // Absent at start, then created without read permission for the
    // daemon (logrotate's create/chmod race), then made readable.
    let daemon = start_as_nobody(dir.path(), &log, &db, &config);
    std::thread::sleep(Duration::from_millis(500));
    let expected = numbered_lines("a", 0, 30);
    // Created unreadable for nobody from the first moment.
    {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(&log)
            .unwrap();
    }
    append_lines(&log, &expected);
    std::thread::sleep(Duration::from_secs(3));
    assert!(crate::util::stored_lines(&db).is_empty());
    assert!(
        daemon.stderr_text().contains("cannot open the log"),
        "{}",
        daemon.stderr_text()
    );
    set_mode(&log, 0o644);
    wait_for_lines(&db, 30, WAIT, Some(&daemon));
    let text = daemon.stderr_text();
    assert!(daemon.stop().success());
    assert_eq!(
        text.matches("cannot open the log").count(),
        1,
        "said once per episode:\n{text}"
    );
    assert_exactly(&db, &expected);
}

#[test]
fn logs_go_to_journald_when_stderr_is_the_journal() {
    let socket_path = Path::new("/run/systemd/journal/socket");
    if socket_path.exists() || !privileged("the journald test") {
        // A real journald owns the socket: do not take it over.
        assert!(
            std::env::var_os("CI").is_none() || !socket_path.exists(),
            "journald socket busy in CI"
        );
        return;
    }
    std::fs::create_dir_all(socket_path.parent().unwrap()).unwrap();
    let journal = std::os::unix::net::UnixDatagram::bind(socket_path).unwrap();
    let _cleanup = RemoveOnDrop(socket_path.to_path_buf());
    journal
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();

    let dir = TempDir::new().unwrap();
    append_lines(&dir.path().join("mainlog"), &numbered_lines("a", 0, 2));
    let stderr = dir.path().join("stderr.log");
    let file = std::fs::File::create(&stderr).unwrap();
    let stream = {
        use std::os::unix::fs::MetadataExt;
        let meta = file.metadata().unwrap();
        format!("{}:{}", meta.dev(), meta.ino())
    };
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        FAST_CONFIG.replace("format = \"text\"", "format = \"auto\""),
    )
    .unwrap();
    let mut child = Command::new(crate::util::binary())
        .args(["run", "--config"])
        .arg(&config)
        .arg("--log")
        .arg(dir.path().join("mainlog"))
        .arg("--db")
        .arg(dir.path().join("x.db"))
        .env("JOURNAL_STREAM", stream)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(file)
        .spawn()
        .unwrap();
    let child_guard = KillOnDrop(child.id());
    let mut buffer = vec![0u8; 65536];
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|m: &String| m.contains("exim-pilot is running"))
    {
        let n = journal
            .recv(&mut buffer)
            .unwrap_or_else(|_| panic!("no journald record; got {seen:?}"));
        seen.push(String::from_utf8_lossy(&buffer[..n]).into_owned());
    }
    let record = seen
        .iter()
        .find(|m| m.contains("exim-pilot is running"))
        .unwrap();
    // tracing-journald sends every field length-prefixed; INFO maps to
    // priority 5 (notice) by its default mapping.
    assert!(
        record.contains("MESSAGE")
            && record.contains("PRIORITY")
            && record.contains("exim_pilot::daemon"),
        "{record}"
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().unwrap().success());
    drop(child_guard);
    assert!(
        std::fs::read_to_string(&stderr).unwrap().is_empty(),
        "nothing went to stderr"
    );

    // A start that fails before logging is configured (an unknown key)
    // still reaches the journal natively, at priority err, naming the key:
    // `journalctl -p err` is where an operator looks when a unit failed.
    std::fs::write(&config, "[ingest]\nbatch_linez = 100\n").unwrap();
    let status = Command::new(crate::util::binary())
        .args(["run", "--config"])
        .arg(&config)
        .env("JOURNAL_STREAM", {
            use std::os::unix::fs::MetadataExt;
            let meta = std::fs::metadata(&stderr).unwrap();
            format!("{}:{}", meta.dev(), meta.ino())
        })
        .env_remove("NOTIFY_SOCKET")
        .stdout(std::process::Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .append(true)
                .open(&stderr)
                .unwrap(),
        )
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(78));
    // The first run's last records may still be queued before it.
    let record = loop {
        let n = journal
            .recv(&mut buffer)
            .expect("no journald record of the failed start");
        let message = journal_field(&buffer[..n], "MESSAGE").unwrap_or_default();
        if message.contains("batch_linez") {
            break buffer[..n].to_vec();
        }
    };
    assert_eq!(journal_field(&record, "PRIORITY").as_deref(), Some("3"));
    assert!(
        std::fs::read_to_string(&stderr).unwrap().is_empty(),
        "the failed start wrote to stderr too"
    );
}

/// A field of a record in journald's native protocol, as tracing-journald
/// sends it: `NAME\n`, a little-endian u64 length, the value, `\n`.
fn journal_field(record: &[u8], name: &str) -> Option<String> {
    let key = format!("{name}\n");
    let at = record
        .windows(key.len())
        .position(|window| window == key.as_bytes())?
        + key.len();
    let length = u64::from_le_bytes(record.get(at..at + 8)?.try_into().ok()?) as usize;
    let value = record.get(at + 8..at + 8 + length)?;
    Some(String::from_utf8_lossy(value).into_owned())
}

/// Kills a process by pid if the test fails before stopping it.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.0.to_string()])
            .status();
    }
}

struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A log the user may not read, named to `ingest` or `parse`: status 2 and
/// the OS's reason, once.
#[test]
fn an_unreadable_input_file_is_a_usage_error_naming_it() {
    if !privileged("the unreadable input test") {
        return;
    }
    let dir = TempDir::new().unwrap();
    std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o777)).unwrap();
    let log = dir.path().join("mainlog");
    std::fs::write(&log, "2024-01-01 00:00:00 x\n").unwrap();
    std::fs::set_permissions(&log, PermissionsExt::from_mode(0o600)).unwrap();
    let db = dir.path().join("x.db");
    for args in [
        vec![
            "ingest",
            "--db",
            db.to_str().unwrap(),
            log.to_str().unwrap(),
        ],
        vec!["parse", log.to_str().unwrap()],
    ] {
        let output = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(crate::util::binary())
            .args(&args)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let (status, _, stderr) = crate::util::outcome(&output);
        assert_eq!(status, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(log.to_str().unwrap()), "{stderr}");
        assert_eq!(stderr.matches("Permission denied").count(), 1, "{stderr}");
    }
}
