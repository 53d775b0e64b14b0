//! The web view as the tests run it: `exim-pilot serve` on a free port,
//! headless Chromium, a sample database, password hashes and cookies.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{binary, free_port, http_get, status_is};

/// Runs headless Chromium (as the machine allows: no sandbox as root, no
/// background traffic) on `url` with `extra` (`--dump-dom`,
/// `--screenshot=...`), in a fresh profile; its standard output.
pub fn headless(chromium: &str, url: &str, extra: &[&str]) -> String {
    let profile = TempDir::new().unwrap();
    let output = Command::new("timeout")
        .arg("60")
        .arg(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,900",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A running `exim-pilot serve`, stopped on drop.
pub struct Server {
    pub child: Child,
    pub port: u16,
    stderr: PathBuf,
}

impl Server {
    pub fn start(db: &Path, dir: &Path) -> Server {
        Self::start_with(db, dir, None)
    }

    /// With a configuration file (for `[web] auth`).
    pub fn start_with(db: &Path, dir: &Path, config: Option<&Path>) -> Server {
        let port = free_port();
        let stderr = dir.join(format!("serve-{port}.log"));
        let mut command = Command::new(binary());
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        let child = command
            .args(["serve", "--db"])
            .arg(db)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let server = Server {
            child,
            port,
            stderr,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while http_get(port, "/assets/style.css").is_err() {
            assert!(
                Instant::now() < deadline,
                "serve did not answer: {}",
                std::fs::read_to_string(&server.stderr).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    pub fn get(&self, path: &str) -> (String, String) {
        http_get(self.port, path).unwrap()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A page's body, asserting its status.
    pub fn page(&self, path: &str, status: u16) -> String {
        let (head, body) = self.get(path);
        assert!(status_is(&head, status), "{path}: {head}\n{body}");
        body
    }

    pub fn json(&self, path: &str) -> serde_json::Value {
        serde_json::from_str(&self.page(path, 200)).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The bundled sample log, ingested into a database in `dir`.
pub fn sample_database(dir: &Path) -> PathBuf {
    let db = dir.join("sample.db");
    super::ingest_into(&db, &super::fixture("sample/mainlog"));
    db
}

/// `serve --hash-password` for `password`.
pub fn hash_of(password: &str) -> String {
    use std::io::Write as _;
    let mut child = Command::new(binary())
        .args(["serve", "--hash-password"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// The session cookie a response sets (`name=value`), and its attributes.
pub fn set_cookie(head: &str) -> (String, String) {
    let line = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie set:\n{head}"));
    let value = line.split_once(':').unwrap().1.trim();
    let (pair, attributes) = value.split_once(';').unwrap_or((value, ""));
    (pair.to_owned(), attributes.to_owned())
}

/// A daemon tailing `dir/mainlog` into `dir/x.db` (the sample log already
/// stored), and the web view on the same database.
pub fn live_setup(dir: &Path) -> (super::Daemon, Server) {
    let sample = std::fs::read_to_string(super::fixture("sample/mainlog")).unwrap();
    let lines: Vec<String> = sample.lines().map(str::to_owned).collect();
    super::append_lines(&dir.join("mainlog"), &lines);
    let daemon = super::Daemon::start(dir);
    super::wait_for_lines(
        &daemon.db,
        lines.len(),
        Duration::from_secs(60),
        Some(&daemon),
    );
    let server = Server::start(&daemon.db, dir);
    (daemon, server)
}

/// A line Exim might write, unique to this test.
pub fn unique_line(tag: &str) -> String {
    format!(
        "2026-11-26 14:00:00 [999] Start queue run: pid={tag}-{}",
        std::process::id()
    )
}

/// A users configuration with an admin and a viewer, and a signed-in
/// cookie for each; `extra` is appended to the configuration.
pub fn admin_and_viewer(dir: &Path, db: &Path, extra: &str) -> (Server, String, String) {
    let config = dir.join("web.toml");
    std::fs::write(
        &config,
        format!(
            "[web]\nauth = \"users\"\n\
             [[web.users]]\nname = \"root\"\npassword_hash = \"{}\"\nrole = \"admin\"\n\
             [[web.users]]\nname = \"eve\"\npassword_hash = \"{}\"\nrole = \"viewer\"\n{extra}",
            hash_of("root's secret"),
            hash_of("eve's secret"),
        ),
    )
    .unwrap();
    let server = Server::start_with(db, dir, Some(&config));
    let sign_in = |name: &str, password: &str| {
        let (head, _) = super::http(
            server.port,
            "POST",
            "/login",
            &[],
            &format!("name={name}&password={password}&next=/"),
        )
        .unwrap();
        format!("Cookie: {}", set_cookie(&head).0)
    };
    let admin = sign_in("root", "root%27s+secret");
    let viewer = sign_in("eve", "eve%27s+secret");
    (server, admin, viewer)
}
