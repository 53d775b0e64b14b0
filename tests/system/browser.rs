//! The web view in a real browser: headless Chromium renders every page
//! (the DOM read, a screenshot left under target/web-screenshots/), and,
//! driven through chromedriver, the live page shows a new line and pauses.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::util::free_port;
use crate::util::web::{Server, headless, live_setup, sample_database, unique_line};

/// Headless Chromium renders each page of the running server: the DOM
/// holds the expected numbers and ids, and a screenshot of each page is
/// left under target/web-screenshots/ for a person to look at.
#[test]
fn a_real_browser_renders_every_page() {
    let Some(chromium) = crate::util::system_program("chromium") else {
        crate::util::stand_down("chromium is not installed: the browser test");
        return;
    };
    let dir = TempDir::new().unwrap();
    let db = sample_database(dir.path());
    let server = Server::start(&db, dir.path());
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/web-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let id = "1xWZzT-0001uj-1r";
    let pages: [(&str, String, &[&str]); 6] = [
        (
            "search",
            "/?q=alice%40test.example".to_owned(),
            &["1xWZzS-0001uN-1x", "completed"],
        ),
        (
            "message",
            format!("/message/{id}"),
            &[id, "nobody@remote.example", "User unknown"],
        ),
        (
            "flow",
            "/flow".to_owned(),
            &["id=\"total-received\"><div class=\"value\">10<", "<svg"],
        ),
        (
            "stuck",
            "/stuck?older_than=1m".to_owned(),
            &["Stuck and frozen"],
        ),
        (
            "log",
            "/log?since=2026-11-26".to_owned(),
            &["relay not permitted", "Wrap long lines"],
        ),
        (
            "health",
            "/health".to_owned(),
            &["Read positions", "mainlog"],
        ),
    ];
    for (name, path, expected) in pages {
        let url = format!("http://127.0.0.1:{}{path}", server.port);
        let browser = |extra: &[&str]| headless(&chromium, &url, extra);
        let dom = browser(&["--dump-dom"]);
        for text in expected {
            assert!(
                dom.contains(text),
                "{name}: no {text:?} in the rendered DOM:\n{dom}"
            );
        }
        // The script ran: the log page's wrap button is shown by it.
        if name == "log" {
            assert!(
                !dom.contains("data-wrap-toggle=\"\" hidden"),
                "app.js did not run:\n{dom}"
            );
        }
        let shot = shots.join(format!("{name}.png"));
        let _ = std::fs::remove_file(&shot);
        browser(&[&format!("--screenshot={}", shot.display())]);
        let png = std::fs::read(&shot).unwrap();
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 10_000,
            "{name}: a screenshot"
        );
    }
}

/// In a real browser (Chromium driven through chromedriver): the live page
/// shows a line appended to the log, and Pause stops it.
#[test]
fn a_real_browser_shows_a_new_line_on_the_live_page() {
    let Some(driver) = crate::util::system_program("chromedriver") else {
        crate::util::stand_down("chromedriver is not installed: the live page in a browser");
        return;
    };
    let dir = TempDir::new().unwrap();
    let (_daemon, server) = live_setup(dir.path());
    let driver_port = free_port();
    let mut chromedriver = Command::new(&driver)
        .arg(format!("--port={driver_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let webdriver = WebDriver::connect(driver_port);
    let profile = TempDir::new().unwrap();
    let session = webdriver.session(&profile);
    webdriver.go(&session, &format!("http://127.0.0.1:{}/live", server.port));
    let line = unique_line("browser");
    let shows = |text: &str| {
        webdriver
            .script(
                &session,
                &format!(
                    "return document.getElementById('live').textContent.includes({});",
                    serde_json::Value::String(text.to_owned())
                ),
            )
            .as_bool()
            .unwrap_or(false)
    };
    // The script has opened its stream once the Pause button shows.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !webdriver
        .script(
            &session,
            "return !document.getElementById('live-pause').hidden;",
        )
        .as_bool()
        .unwrap_or(false)
    {
        assert!(Instant::now() < deadline, "the live script did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let appended = Instant::now();
    crate::util::append_lines(&dir.path().join("mainlog"), std::slice::from_ref(&line));
    while !shows(&line) {
        assert!(
            appended.elapsed() < Duration::from_secs(10),
            "the line never showed in the browser"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // Paused, a new line does not show; resumed, it does (nothing missed).
    webdriver.script(
        &session,
        "document.getElementById('live-pause').click(); return true;",
    );
    let paused_line = unique_line("paused");
    crate::util::append_lines(
        &dir.path().join("mainlog"),
        std::slice::from_ref(&paused_line),
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!shows(&paused_line), "a paused page went on");
    webdriver.script(
        &session,
        "document.getElementById('live-pause').click(); return true;",
    );
    let resumed = Instant::now();
    while !shows(&paused_line) {
        assert!(
            resumed.elapsed() < Duration::from_secs(10),
            "resuming lost the line"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/web-screenshots/live.png");
    std::fs::create_dir_all(shot.parent().unwrap()).unwrap();
    webdriver.screenshot(&session, &shot);
    webdriver.quit(&session);
    let _ = chromedriver.kill();
    let _ = chromedriver.wait();
}

/// The few WebDriver commands the live test needs, over chromedriver's
/// HTTP interface.
struct WebDriver {
    port: u16,
}

impl WebDriver {
    fn connect(port: u16) -> WebDriver {
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        WebDriver { port }
    }

    fn call(&self, method: &str, path: &str, body: &serde_json::Value) -> serde_json::Value {
        use std::io::{Read as _, Write as _};
        let body = body.to_string();
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        write!(
            stream,
            // chromedriver refuses HTTP/1.0.
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        // Read by Content-Length: chromedriver keeps the connection open.
        let mut reader = std::io::BufReader::new(stream);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push_str(&line);
        }
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or_else(|| panic!("{method} {path}: no Content-Length in {head}"));
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let json = String::from_utf8(body).unwrap();
        let answer: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert!(
            answer["value"]["error"].is_null(),
            "{method} {path}: {answer}"
        );
        answer["value"].clone()
    }

    fn session(&self, profile: &TempDir) -> String {
        let answer = self.call(
            "POST",
            "/session",
            &serde_json::json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update",
                         "--disable-sync", "--window-size=1280,900",
                         format!("--user-data-dir={}", profile.path().display())]
            }}}}),
        );
        answer["sessionId"].as_str().unwrap().to_owned()
    }

    fn go(&self, session: &str, url: &str) {
        self.call(
            "POST",
            &format!("/session/{session}/url"),
            &serde_json::json!({ "url": url }),
        );
    }

    fn script(&self, session: &str, script: &str) -> serde_json::Value {
        self.call(
            "POST",
            &format!("/session/{session}/execute/sync"),
            &serde_json::json!({ "script": script, "args": [] }),
        )
    }

    fn screenshot(&self, session: &str, path: &Path) {
        use base64_decode::decode;
        let png = self.call(
            "GET",
            &format!("/session/{session}/screenshot"),
            &serde_json::json!({}),
        );
        std::fs::write(path, decode(png.as_str().unwrap())).unwrap();
    }

    fn quit(&self, session: &str) {
        self.call(
            "DELETE",
            &format!("/session/{session}"),
            &serde_json::json!({}),
        );
    }
}

/// Standard base64, decoded (WebDriver sends screenshots so).
mod base64_decode {
    pub fn decode(text: &str) -> Vec<u8> {
        let value = |c: u8| match c {
            b'A'..=b'Z' => Some(c - b'A'),
            b'a'..=b'z' => Some(c - b'a' + 26),
            b'0'..=b'9' => Some(c - b'0' + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        };
        let mut out = Vec::with_capacity(text.len() * 3 / 4);
        let (mut buffer, mut bits) = (0u32, 0);
        for sextet in text.bytes().filter_map(value) {
            buffer = (buffer << 6) | u32::from(sextet);
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((buffer >> bits) as u8);
            }
        }
        out
    }
}
