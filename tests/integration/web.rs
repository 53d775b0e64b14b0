//! The web view (`exim-pilot serve`) against the real server: every page
//! and API answer, the API equal to the CLI's `--json`, bad input, the
//! security headers, sign-in, the live stream, and that it never writes.
//! The same pages in a real browser are system tests (`tests/system/browser.rs`).

use std::process::Command;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::util::web::{Server, hash_of, live_setup, sample_database, set_cookie, unique_line};
use crate::util::{free_port, outcome, run, status_is};

fn cli_json(args: &[&str]) -> serde_json::Value {
    let (status, stdout, stderr) = outcome(&run(args));
    assert_eq!(status, 0, "{args:?}: {stderr}");
    serde_json::from_str(&stdout).unwrap()
}

/// Every page answers with the numbers and ids of the database; every
/// API answer equals the CLI's `--json`; bad input gets a clear page and
/// the right status; the database is not written.
#[test]
fn pages_and_api_answer_like_the_cli_and_bad_input_is_refused_clearly() {
    let dir = TempDir::new().unwrap();
    let db = sample_database(dir.path());
    let db_text = db.to_str().unwrap().to_owned();
    // Two counts of Exim's queue, as the daemon keeps them: 13:30:10 and
    // 13:45:00 on the sample's day, in the log's clock.
    let at_1330: i64 = 1_795_699_800_000;
    let conn = deadpool_sqlite::rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(&format!(
        "INSERT INTO queue_samples VALUES ({}, 4, 1), ({}, 6, 2)",
        at_1330 + 10_000,
        at_1330 + 15 * 60_000
    ))
    .unwrap();
    drop(conn);
    let before = std::fs::read(&db).unwrap();
    let server = Server::start(&db, dir.path());

    // The API is the CLI.
    assert_eq!(
        server.json("/api/v1/stats"),
        cli_json(&["stats", "--json", "--db", &db_text])
    );
    assert_eq!(
        server.json("/api/v1/stats?since=2026-11-26%2013:58:23"),
        cli_json(&[
            "stats",
            "--json",
            "--db",
            &db_text,
            "--since",
            "2026-11-26 13:58:23"
        ])
    );
    let id = "1xWZzT-0001uj-1r";
    assert_eq!(
        server.json(&format!("/api/v1/search?q={id}")),
        cli_json(&["trace", "--json", "--db", &db_text, id])
    );
    assert_eq!(
        server.json(&format!("/api/v1/message/{id}")),
        cli_json(&["trace", "--json", "--related", "--db", &db_text, id])
    );
    assert_eq!(
        server.json("/api/v1/search?q=alice%40test.example"),
        cli_json(&["trace", "--json", "--db", &db_text, "alice@test.example"])
    );
    assert_eq!(
        server.json("/api/v1/stuck?older_than=1m"),
        cli_json(&["stuck", "--json", "--older-than", "1m", "--db", &db_text])
    );
    let (status, stdout, stderr) = outcome(&run(&[
        "lines",
        "--json",
        "--db",
        &db_text,
        "--since",
        "2026-11-26",
        "--kind",
        "rejection",
    ]));
    assert_eq!(status, 0, "{stderr}");
    let cli_lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let api_lines = server.json("/api/v1/lines?since=2026-11-26&kind=rejection");
    assert_eq!(api_lines["lines"], serde_json::Value::Array(cli_lines));
    assert_eq!(api_lines["more"], false);
    let flow = server.json("/api/v1/flow?since=2026-11-26%2013:00&until=2026-11-26%2014:00");
    assert_eq!(flow["step"], "minute");
    let received: u64 = flow["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["counts"][0].as_u64().unwrap())
        .sum();
    assert_eq!(received, 10, "{flow}");
    let queue: Vec<(&str, &serde_json::Value)> = flow["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| !b["queue"].is_null())
        .map(|b| (b["start"].as_str().unwrap(), &b["queue"]))
        .collect();
    assert_eq!(
        queue,
        [
            (
                "2026-11-26 13:30:00",
                &serde_json::json!({"messages": 4, "frozen": 1})
            ),
            (
                "2026-11-26 13:45:00",
                &serde_json::json!({"messages": 6, "frozen": 2})
            )
        ],
        "{flow}"
    );
    let health = server.json("/api/v1/health");
    assert_eq!(health["gap_count"], 0);
    assert!(
        health["sources"][0]["path"]
            .as_str()
            .unwrap()
            .ends_with("mainlog")
    );

    // The pages: the same facts, as HTML, with no inline script or style.
    let search = server.page(&format!("/?q={id}"), 200);
    assert!(
        search.contains(&format!("href=\"/message/{id}\"")),
        "{search}"
    );
    let message = server.page(&format!("/message/{id}"), 200);
    assert!(message.contains("nobody@remote.example"), "{message}");
    // The attempt as a table row: router, transport, host, TLS and code.
    for cell in [
        "<td>remote_relay</td>",
        "<td>remote_smtp</td>",
        "<td>127.0.0.1 [127.0.0.1]:2526</td>",
        "(not verified)",
        "<td>550 5.1.1</td>",
        "<td>20261126135823.007360@vm</td>",
    ] {
        assert!(message.contains(cell), "{cell}: {message}");
    }
    let flow_page = server.page("/flow?since=2026-11-26", 200);
    assert!(flow_page.contains("<svg"), "{flow_page}");
    // The queue's line, hour by hour: the last count of the 13:00 hour.
    assert!(
        flow_page.contains("aria-label=\"Exim's queue\"")
            && flow_page.contains("<title>2026-11-26 13:00:00: 6 messages</title>"),
        "{flow_page}"
    );
    for (name, value) in [
        ("received", 10),
        ("delivered", 10),
        ("deferred", 8),
        ("bounced", 2),
    ] {
        assert!(
            flow_page.contains(&format!(
                "id=\"total-{name}\"><div class=\"value\">{value}</div>"
            )),
            "{name} {value}: {flow_page}"
        );
    }
    let stuck = server.page("/stuck?older_than=1m", 200);
    assert!(stuck.contains("<table>"), "{stuck}");
    assert!(
        stuck.contains("id=\"frozen\"") && stuck.contains("(delivery error message)"),
        "{stuck}"
    );
    let log = server.page("/log?since=2026-11-26&kind=rejection", 200);
    assert!(log.contains("relay not permitted"), "{log}");
    let health = server.page("/health", 200);
    assert!(health.contains("id=\"gaps\""), "{health}");
    for page in [&search, &message, &flow_page, &log, &health] {
        assert!(!page.contains("style="), "a style attribute");
        assert!(!page.contains("<script>"), "an inline script");
        assert!(!page.contains(" onclick="), "an inline handler");
        assert!(
            page.contains("<script src=\"/assets/app.js\" defer>"),
            "{page}"
        );
    }
    let (head, _) = server.get("/");
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains("content-security-policy: default-src 'none'; script-src 'self';"),
        "{head}"
    );
    assert!(head.contains("x-content-type-options: nosniff"));
    let (head, css) = server.get("/assets/style.css");
    assert!(status_is(&head, 200) && css.contains(".status-frozen"));

    // Bad input: each a clear answer with the right status.
    let long = "a".repeat(10 * 1024);
    let body = server.page(&format!("/?q={long}"), 400);
    assert!(
        body.contains("q is 10240 bytes long; at most 512 are read"),
        "{body}"
    );
    let body = server.page("/?q=%27%3B%20DROP%20TABLE%20messages%3B%20--", 400);
    assert!(body.contains("is not a message id"), "{body}");
    let body = server.page("/flow?since=1930-01-01&until=2030-01-01", 400);
    assert!(body.contains("ask for at most 400 days"), "{body}");
    let body = server.page("/message/1xWZzT-0001uj-9Z", 404);
    assert!(
        body.contains("no message in the database matches"),
        "{body}"
    );
    let answer = server.page("/api/v1/stats?since=yesterday-ish", 400);
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert!(
        answer["error"].as_str().unwrap().contains("yesterday-ish"),
        "{answer}"
    );
    server.page("/no/such/page", 404);
    let answer = server.page("/api/v1/none", 404);
    assert!(answer.contains("\"error\""), "{answer}");

    // Read-only: the database is byte for byte what it was.
    drop(server);
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "serve wrote to the database"
    );
}

/// SIGTERM stops it at once with status 0; a taken port is an error
/// naming the key (78); a missing database a clear usage error (2).
#[test]
fn serve_stops_on_sigterm_and_refuses_a_taken_port_or_a_missing_database() {
    let dir = TempDir::new().unwrap();
    let db = sample_database(dir.path());
    let mut server = Server::start(&db, dir.path());
    let status = Command::new("kill")
        .arg(server.child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    let exited = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exited.success(), "{exited:?}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let (status, _, stderr) = outcome(&run(&[
        "serve",
        "--db",
        db.to_str().unwrap(),
        "--listen",
        &address,
    ]));
    assert_eq!(status, 78, "{stderr}");
    assert!(
        stderr.contains("[web] listen: cannot listen on"),
        "{stderr}"
    );
    let (status, _, stderr) = outcome(&run(&["serve", "--listen", "nowhere", "--db", "x.db"]));
    assert_eq!(status, 78, "{stderr}");
    assert!(
        stderr.contains("--listen: \"nowhere\" is not an address"),
        "{stderr}"
    );
    let missing = dir.path().join("missing.db");
    let (status, _, stderr) = outcome(&run(&[
        "serve",
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
        "--db",
        missing.to_str().unwrap(),
    ]));
    assert_eq!(status, 2, "{stderr}");
    assert!(stderr.contains("no database at"), "{stderr}");
}

/// `[web] auth = "users"`: no session, redirected (pages) or 401 (API);
/// a wrong password refused, and after five failures refused for a while;
/// a viewer sees addresses masked everywhere, an admin does not; signing
/// out ends the session; a post from another site is refused.
#[test]
fn users_sign_in_viewers_see_masked_addresses_and_failures_are_limited() {
    let dir = TempDir::new().unwrap();
    let db = sample_database(dir.path());
    let config = dir.path().join("web.toml");
    std::fs::write(
        &config,
        format!(
            "[web]\nauth = \"users\"\n\
             [[web.users]]\nname = \"alice\"\npassword_hash = \"{}\"\nrole = \"admin\"\n\
             [[web.users]]\nname = \"bob\"\npassword_hash = \"{}\"\nrole = \"viewer\"\n",
            hash_of("alice's secret"),
            hash_of("bob's secret")
        ),
    )
    .unwrap();
    let server = Server::start_with(&db, dir.path(), Some(&config));
    let port = server.port;
    let (head, _) = server.get("/flow");
    assert!(status_is(&head, 303), "{head}");
    assert!(head.contains("location: /login?next=/flow"), "{head}");
    let (head, body) = server.get("/api/v1/stats");
    assert!(status_is(&head, 401), "{head}");
    assert!(body.contains("sign in first"), "{body}");
    assert!(server.page("/login", 200).contains("type=\"password\""));

    let sign_in = |name: &str, password: &str| {
        crate::util::http(
            port,
            "POST",
            "/login",
            &[],
            &format!(
                "name={name}&password={}&next=/flow",
                password.replace(' ', "+").replace('\'', "%27")
            ),
        )
        .unwrap()
    };
    let (head, body) = sign_in("bob", "wrong");
    assert!(status_is(&head, 401), "{head}");
    assert!(body.contains("wrong name or password"), "{body}");
    let (head, _) = sign_in("nobody", "bob's secret");
    assert!(status_is(&head, 401), "{head}");

    // A viewer: every address masked, in pages and in the API.
    let (head, _) = sign_in("bob", "bob's secret");
    assert!(
        status_is(&head, 303) && head.contains("location: /flow"),
        "{head}"
    );
    let (viewer, attributes) = set_cookie(&head);
    let attributes = attributes.to_ascii_lowercase();
    assert!(
        attributes.contains("httponly")
            && attributes.contains("samesite=strict")
            && attributes.contains("path=/"),
        "{attributes}"
    );
    let cookie = format!("Cookie: {viewer}");
    // A viewer's search by address is refused, whether or not it exists:
    // an answer would confirm it.
    for address in ["alice%40test.example", "nobody%40nowhere.example"] {
        let (head, body) = crate::util::http(
            port,
            "GET",
            &format!("/api/v1/search?q={address}"),
            &[&cookie],
            "",
        )
        .unwrap();
        assert!(status_is(&head, 403), "{head}");
        assert!(body.contains("cannot search by address"), "{body}");
    }
    let (head, body) =
        crate::util::http(port, "GET", "/api/v1/search?q=test.example", &[&cookie], "").unwrap();
    assert!(status_is(&head, 200), "{head}");
    assert!(body.contains("a***@test.example"), "{body}");
    assert!(
        !body.contains("alice@test.example"),
        "a viewer saw an address: {body}"
    );
    let (_, page) =
        crate::util::http(port, "GET", "/log?since=2026-11-26", &[&cookie], "").unwrap();
    assert!(
        page.contains("***@") && !page.contains("alice@test.example"),
        "{page}"
    );

    // An admin sees them.
    let (head, _) = sign_in("alice", "alice's secret");
    let (admin, _) = set_cookie(&head);
    let (_, body) = crate::util::http(
        port,
        "GET",
        "/api/v1/search?q=alice%40test.example",
        &[&format!("Cookie: {admin}")],
        "",
    )
    .unwrap();
    assert!(body.contains("alice@test.example"), "{body}");

    // A forged cookie is no session.
    let forged = "Cookie: exim_pilot_session=alice|99999999999|x";
    let (head, _) = crate::util::http(port, "GET", "/api/v1/stats", &[forged], "").unwrap();
    assert!(status_is(&head, 401), "{head}");

    // Signing out ends the session, even for a copy of the cookie.
    let (head, _) = crate::util::http(port, "POST", "/logout", &[&cookie], "").unwrap();
    assert!(status_is(&head, 303), "{head}");
    let (head, _) = crate::util::http(port, "GET", "/api/v1/stats", &[&cookie], "").unwrap();
    assert!(status_is(&head, 401), "signed out, still served: {head}");

    // Another site's form is refused.
    let (head, body) = crate::util::http(
        port,
        "POST",
        "/login",
        &["Origin: https://evil.example"],
        "name=alice&password=x",
    )
    .unwrap();
    assert!(status_is(&head, 403), "{head}");
    assert!(body.contains("posted from another site"), "{body}");

    // Five failures for a name, then a pause even with the right password.
    for _ in 0..5 {
        let (head, _) = sign_in("alice", "guess");
        assert!(status_is(&head, 401), "{head}");
    }
    let (head, body) = sign_in("alice", "alice's secret");
    assert!(status_is(&head, 429), "{head}");
    assert!(body.contains("too many failed sign-ins"), "{body}");
}

/// `[web] auth = "proxy"`: the user header counts only from the proxy's
/// address; its users get the configured role.
#[test]
fn a_trusted_proxy_names_the_user_and_others_are_refused() {
    let dir = TempDir::new().unwrap();
    let db = sample_database(dir.path());
    let config = dir.path().join("web.toml");
    let write = |addresses: &str| {
        std::fs::write(
            &config,
            format!(
                "[web]\nauth = \"proxy\"\nproxy_user_header = \"X-Remote-User\"\n\
                 proxy_addresses = [{addresses}]\nproxy_role = \"viewer\"\n"
            ),
        )
        .unwrap();
    };
    write("\"127.0.0.1\"");
    let server = Server::start_with(&db, dir.path(), Some(&config));
    // A viewer searches by domain (by address is refused: it would confirm
    // the address) and sees every address masked.
    let (head, body) = crate::util::http(
        server.port,
        "GET",
        "/api/v1/search?q=test.example",
        &["X-Remote-User: carol"],
        "",
    )
    .unwrap();
    assert!(status_is(&head, 200), "{head}");
    assert!(
        body.contains("a***@test.example") && !body.contains("alice@test.example"),
        "{body}"
    );
    let (head, body) = server.get("/api/v1/stats");
    assert!(status_is(&head, 403), "{head}");
    assert!(body.contains("reverse proxy"), "{body}");
    drop(server);

    // From an address that is not the proxy's, the header is ignored.
    write("\"192.0.2.7\"");
    let server = Server::start_with(&db, dir.path(), Some(&config));
    let (head, _) = crate::util::http(
        server.port,
        "GET",
        "/api/v1/stats",
        &["X-Remote-User: carol"],
        "",
    )
    .unwrap();
    assert!(status_is(&head, 403), "{head}");
}

/// Configuration mistakes are named by key: another machine's address
/// without authentication, a user without a valid hash, a proxy without
/// its addresses.
#[test]
fn web_settings_that_would_expose_or_lock_out_are_refused_by_key() {
    let dir = TempDir::new().unwrap();
    for (text, message) in [
        (
            "[web]\nlisten = \"0.0.0.0:8025\"\n",
            "[web] listen: 0.0.0.0:8025 is not a loopback address",
        ),
        (
            "[web]\nauth = \"users\"\n[[web.users]]\nname = \"a\"\npassword_hash = \"secret\"\n",
            "[[web.users]] #1 password_hash: is not a password hash",
        ),
        (
            "[web]\nauth = \"users\"\n",
            "needs at least one [[web.users]]",
        ),
        ("[web]\nauth = \"proxy\"\n", "[web] proxy_addresses"),
        (
            "[web]\nauth = \"magic\"\n",
            "[web] auth: \"magic\" is not a way to sign in",
        ),
    ] {
        let config = dir.path().join("c.toml");
        std::fs::write(&config, text).unwrap();
        let (status, _, stderr) = outcome(&run(&[
            "check-config",
            "--config",
            config.to_str().unwrap(),
        ]));
        assert_eq!(status, 78, "{text}: {stderr}");
        assert!(stderr.contains(message), "{text}: {stderr}");
    }
}

/// The live stream: a line appended to the log arrives as an event (how
/// soon is measured by `examples/live_latency`, not here); a stream from chunk 0
/// replays everything; the live page's first state is rendered on the
/// server.
#[test]
fn the_live_stream_pushes_a_committed_line() {
    use std::io::{BufRead as _, Write as _};
    let dir = TempDir::new().unwrap();
    let (_daemon, server) = live_setup(dir.path());
    let page = server.page("/live", 200);
    assert!(page.contains("id=\"live\""), "{page}");
    assert!(page.contains("Completed"), "the newest lines: {page}");

    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /api/v1/live HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut reader = std::io::BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    assert!(status.contains(" 200 "), "{status}");
    // Past the headers: the stream is open.
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).unwrap();
        if header == "\r\n" {
            break;
        }
        if header.to_ascii_lowercase().starts_with("content-type") {
            assert!(header.contains("text/event-stream"), "{header}");
        }
    }
    let line = unique_line("live");
    let appended = Instant::now();
    crate::util::append_lines(&dir.path().join("mainlog"), std::slice::from_ref(&line));
    let mut event_id = None;
    loop {
        let mut text = String::new();
        reader.read_line(&mut text).unwrap();
        if let Some(id) = text.strip_prefix("id:") {
            event_id = Some(id.trim().to_owned());
        }
        if text.starts_with("data:") && text.contains(&line) {
            break;
        }
        assert!(
            appended.elapsed() < Duration::from_secs(10),
            "never arrived"
        );
    }
    assert!(event_id.is_some_and(|id| id.parse::<i64>().is_ok()));

    // From the first chunk: the whole log, the new line last.
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /api/v1/live?after=0 HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut reader = std::io::BufReader::new(stream);
    let mut seen = String::new();
    while !seen.contains(&line) {
        let mut text = String::new();
        reader.read_line(&mut text).unwrap();
        seen.push_str(&text);
    }
    assert!(
        seen.contains("1xWZzS-0001uN-1x <= a@outside.example"),
        "{seen}"
    );
}

/// On a generated log (every shape of line the generator writes): the API
/// equals the CLI for statistics and for a search by the busiest sender;
/// the flow's buckets add up to the lines counted; every page answers.
#[test]
fn on_a_generated_log_the_api_equals_the_cli_and_every_page_answers() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("generated.log");
    let mut content = Vec::new();
    exim_pilot::synth::Generator::new(41)
        .write(20_000, &mut content)
        .unwrap();
    std::fs::write(&log, content).unwrap();
    let db = dir.path().join("generated.db");
    crate::util::ingest_into(&db, &log);
    let db_text = db.to_str().unwrap().to_owned();
    let server = Server::start(&db, dir.path());
    assert_eq!(
        server.json("/api/v1/stats"),
        cli_json(&["stats", "--json", "--db", &db_text])
    );
    let stats = cli_json(&["stats", "--json", "--db", &db_text]);
    let sender = stats["top_senders"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|row| row["key"].as_str())
        .find(|key| key.contains('@'))
        .unwrap()
        .to_owned();
    assert_eq!(
        server.json(&format!("/api/v1/search?q={}", sender.replace('@', "%40"))),
        cli_json(&["trace", "--json", "--db", &db_text, &sender])
    );
    // The flow over the whole log, hour by hour, adds up to the counts.
    let until = stats["until"].as_str().map(str::to_owned);
    let conn = deadpool_sqlite::rusqlite::Connection::open(&db).unwrap();
    let (first, last): (i64, i64) = conn
        .query_row(
            "SELECT min(minute_ms), max(minute_ms) FROM line_counts WHERE minute_ms > 0",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert!(until.is_none());
    let span_days = (last - first) / 86_400_000 + 1;
    assert!(span_days <= 400, "{span_days}");
    let since = exim_pilot::query::format_ms(first).replace(' ', "%20");
    let flow = server.json(&format!("/api/v1/flow?since={since}"));
    let received: u64 = flow["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["counts"][0].as_u64().unwrap())
        .sum();
    assert_eq!(received, stats["received"].as_u64().unwrap(), "{flow}");
    for path in ["/", "/flow", "/stuck", "/log", "/health", "/live"] {
        server.page(path, 200);
    }
}
