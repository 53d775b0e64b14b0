//! The web view against a hostile client, before and after signing in:
//! DNS rebinding, half-sent requests, concurrent password guesses, a
//! redirect smuggled into `next`, one client holding every live stream,
//! addresses only the parser can find shown to a viewer, and answers of
//! long lines that took gigabytes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use tempfile::TempDir;

use crate::util::status_is;
use crate::util::web::{Server, admin_and_viewer, hash_of, sample_database, set_cookie};

/// A raw request from `from` (a loopback address) with exactly `head`.
fn raw(port: u16, from: &str, head: &str) -> std::io::Result<String> {
    let socket = socket2_connect(from, port)?;
    let mut stream = socket;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(head.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

/// A TCP connection to 127.0.0.1:`port` from the loopback address `from`.
fn socket2_connect(from: &str, port: u16) -> std::io::Result<TcpStream> {
    // std cannot bind a socket before connecting it; tokio's TcpSocket can.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(
            format!("{from}:0")
                .parse::<SocketAddr>()
                .map_err(std::io::Error::other)?,
        )?;
        let stream = socket
            .connect(
                format!("127.0.0.1:{port}")
                    .parse::<SocketAddr>()
                    .map_err(std::io::Error::other)?,
            )
            .await?;
        stream.into_std().and_then(|s| {
            s.set_nonblocking(false)?;
            Ok(s)
        })
    })
}

fn users_config(dir: &Path) -> std::path::PathBuf {
    let config = dir.join("web.toml");
    std::fs::write(
        &config,
        format!(
            "[web]\nauth = \"users\"\n\
             [[web.users]]\nname = \"alice\"\npassword_hash = \"{}\"\nrole = \"admin\"\n",
            hash_of("alice's secret"),
        ),
    )
    .unwrap();
    config
}

#[test]
fn a_request_naming_another_host_is_refused_even_without_authentication() {
    let dir = TempDir::new().unwrap();
    let db = sample_database(dir.path());
    let server = Server::start_with(&db, dir.path(), None);
    let port = server.port;
    let response = raw(
        port,
        "127.0.0.1",
        "GET /api/v1/lines HTTP/1.0\r\nHost: rebind.evil.example\r\n\r\n",
    )
    .unwrap();
    assert!(
        response.starts_with("HTTP/1.0 421") || response.starts_with("HTTP/1.1 421"),
        "{response}"
    );
    assert!(
        !response.contains("<="),
        "no log line in a refusal: {response}"
    );
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        let response = raw(
            port,
            "127.0.0.1",
            &format!("GET /api/v1/health HTTP/1.0\r\nHost: {host}\r\n\r\n"),
        )
        .unwrap();
        assert!(response.contains(" 200 "), "{host}: {response}");
    }
}

#[test]
fn half_sent_requests_from_one_address_hold_up_no_one_else() {
    let dir = TempDir::new().unwrap();
    let db = sample_database(dir.path());
    let server = Server::start_with(&db, dir.path(), Some(&users_config(dir.path())));
    let port = server.port;
    // More half-sent requests than one address may hold.
    let mut held = Vec::new();
    for _ in 0..100 {
        let mut stream = socket2_connect("127.0.0.1", port).unwrap();
        let _ = stream.write_all(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ");
        held.push(stream);
    }
    // Past the cap, a connection from that address is closed at once.
    let mut extra = socket2_connect("127.0.0.1", port).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = extra.write_all(b"GET /login HTTP/1.0\r\n\r\n");
    let mut answer = String::new();
    let _ = extra.read_to_string(&mut answer);
    assert!(
        answer.is_empty(),
        "over the per-address cap, yet served: {answer}"
    );
    // Another client is served meanwhile.
    let response = raw(
        port,
        "127.0.0.2",
        &format!("GET /login HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n"),
    )
    .unwrap();
    assert!(response.contains(" 200 "), "{response}");
    // The half-sent ones are closed once the header timeout passes.
    let mut first = held.remove(0);
    first
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut rest = Vec::new();
    let _ = first.read_to_end(&mut rest);
    let text = String::from_utf8_lossy(&rest);
    assert!(text.is_empty() || text.contains("408"), "{text}");
}

#[test]
fn concurrent_wrong_passwords_get_only_the_free_checks_and_lock_out_no_one_elsewhere() {
    let dir = TempDir::new().unwrap();
    let db = sample_database(dir.path());
    let server = Server::start_with(&db, dir.path(), Some(&users_config(dir.path())));
    let port = server.port;
    let form = |password: &str| {
        let body = format!("name=alice&password={password}&next=/flow");
        format!(
            "POST /login HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let guesses: Vec<_> = (0..100)
        .map(|n| {
            let request = form(&format!("guess{n}"));
            std::thread::spawn(move || raw(port, "127.0.0.1", &request))
        })
        .collect();
    // Past the per-address connection cap a guess is closed unanswered.
    let answers: Vec<String> = guesses
        .into_iter()
        .filter_map(|t| t.join().unwrap().ok())
        .filter(|a| !a.is_empty())
        .collect();
    let checked = answers.iter().filter(|a| a.contains(" 401 ")).count();
    let paused = answers.iter().filter(|a| a.contains(" 429 ")).count();
    assert_eq!(checked, 5, "password checks: {checked}");
    assert_eq!(paused, answers.len() - 5, "{answers:?}");
    assert!(paused >= 20, "too few answered to prove anything: {paused}");
    assert!(
        answers
            .iter()
            .any(|a| a.to_ascii_lowercase().contains("retry-after:"))
    );
    // The owner, from another address, signs in at once.
    let response = raw(port, "127.0.0.2", &form("alice%27s+secret")).unwrap();
    assert!(
        response.contains(" 303 "),
        "locked out from elsewhere: {response}"
    );
    let (cookie, _) = set_cookie(&response);
    assert!(cookie.starts_with("exim_pilot_session="));
}

#[test]
fn next_cannot_point_at_another_site_or_break_the_redirect() {
    let dir = TempDir::new().unwrap();
    let db = sample_database(dir.path());
    let server = Server::start_with(&db, dir.path(), Some(&users_config(dir.path())));
    let port = server.port;
    for next in [
        "/%09/evil.example/",
        "/%0a/x",
        "/%0d%0aSet-Cookie:%20x=1",
        "%2f%2fevil.example",
    ] {
        let body = format!("name=alice&password=alice%27s+secret&next={next}");
        let response = raw(
            port,
            "127.0.0.1",
            &format!(
                "POST /login HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        )
        .unwrap();
        assert!(response.contains(" 303 "), "{next}: {response}");
        let head = response
            .split("\r\n\r\n")
            .next()
            .unwrap()
            .to_ascii_lowercase();
        assert!(head.contains("\r\nlocation: /\r\n"), "{next}: {head}");
    }
}

#[test]
fn one_client_cannot_hold_every_live_stream() {
    let dir = TempDir::new().unwrap();
    let db = sample_database(dir.path());
    let server = Server::start_with(&db, dir.path(), None);
    let port = server.port;
    let open = || {
        let mut stream = socket2_connect("127.0.0.1", port).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
            .write_all(
                format!("GET /api/v1/live HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes(),
            )
            .unwrap();
        let mut head = [0u8; 256];
        let read = stream.read(&mut head).unwrap();
        (String::from_utf8_lossy(&head[..read]).into_owned(), stream)
    };
    let mut streams = Vec::new();
    for _ in 0..4 {
        let (head, stream) = open();
        assert!(status_is(&head, 200), "{head}");
        streams.push(stream);
    }
    let (head, _) = open();
    assert!(
        status_is(&head, 429),
        "a fifth stream for one client: {head}"
    );
    drop(streams.pop());
    // The server notices the closed stream at its next write.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (head, stream) = open();
        if status_is(&head, 200) {
            streams.push(stream);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a stream given back never became free: {head}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Local delivery targets, quoted local parts, dotless and literal
/// domains: a regex over the text missed them; the parser's fields do not.
#[test]
fn a_viewer_sees_no_address_the_parser_knows_in_any_page_or_answer() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    let id = "1vXyZa-000001-AB";
    std::fs::write(
        &log,
        format!(
            "2026-12-01 10:00:00 {id} <= \"john doe\"@sender.example H=mx.sender.example [192.0.2.1] P=esmtp S=1234 id=m1@sender.example for alice@mail.example bobby@mail.example carol@[192.0.2.77] root@localhost\n\
             2026-12-01 10:00:01 {id} => alice <alice@mail.example> R=localuser T=local_delivery\n\
             2026-12-01 10:00:01 {id} => /var/mail/bobby <bobby@mail.example> R=userforward T=address_file\n\
             2026-12-01 10:00:02 {id} == carol@[192.0.2.77] R=literal T=remote_smtp defer (-44): SMTP error from remote mail server after RCPT TO:<carol@[192.0.2.77]>: 451 try later\n\
             2026-12-01 10:00:02 {id} ** root@localhost: Unrouteable address\n\
             2026-12-01 10:00:03 H=mx.bad.example [192.0.2.9] F=<o'brien@b\u{fc}cher.example> rejected RCPT <dave@mail.example>: relay not permitted\n"
        ),
    )
    .unwrap();
    let db = dir.path().join("masked.db");
    crate::util::ingest_into(&db, &log);
    let (server, admin, viewer) = admin_and_viewer(dir.path(), &db, "");
    let secrets = ["john", "alice", "bobby", "carol", "root@", "brien", "dave"];
    let paths = [
        "/log?since=2026-12-01".to_owned(),
        "/api/v1/lines?since=2026-12-01".to_owned(),
        format!("/api/v1/search?q={id}"),
        format!("/api/v1/message/{id}"),
        format!("/message/{id}"),
        format!("/?q={id}"),
        "/api/v1/stuck?older_than=0s".to_owned(),
        "/stuck?older_than=0s".to_owned(),
        "/api/v1/stats".to_owned(),
        "/flow?since=2026-12-01".to_owned(),
        "/live".to_owned(),
    ];
    for path in &paths {
        let (head, body) = crate::util::http(server.port, "GET", path, &[&viewer], "").unwrap();
        assert!(status_is(&head, 200), "{path}: {head}\n{body}");
        for secret in secrets {
            assert!(
                !body.contains(secret),
                "a viewer saw {secret:?} at {path}:\n{body}"
            );
        }
    }
    // The masks stand where the addresses stood.
    let (_, log_page) =
        crate::util::http(server.port, "GET", "/log?since=2026-12-01", &[&viewer], "").unwrap();
    assert!(
        log_page.contains("=&gt; a*** &lt;a***@mail.example&gt;"),
        "{log_page}"
    );
    assert!(
        log_page.contains("=&gt; /*** &lt;b***@mail.example&gt;"),
        "{log_page}"
    );
    // An admin sees everything; the cache keeps the two apart.
    let (_, admin_page) =
        crate::util::http(server.port, "GET", "/log?since=2026-12-01", &[&admin], "").unwrap();
    for secret in secrets {
        assert!(admin_page.contains(secret), "an admin missed {secret:?}");
    }
}

/// Lines of a mebibyte took gigabytes per request, and four-kilobyte lines
/// passed the answer cap: answers are pages of bounded bytes with a link
/// to the next, every line is reached, and the server stays small with
/// eight such requests at once.
#[test]
fn answers_of_long_lines_are_paged_by_bytes_and_memory_stays_bounded() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    let mut text = String::new();
    let long = "x".repeat(1_000_000);
    for n in 0..40 {
        text.push_str(&format!(
            "2026-12-01 10:00:{:02} 1vXyZa-{n:06}-AB <= s@sender.example H=h [192.0.2.1] P=esmtp S=1 T=\"{long}\" for r@mail.example\n",
            n % 60
        ));
    }
    let four_k = "y".repeat(4000);
    for n in 0..2000 {
        text.push_str(&format!(
            "2026-12-01 10:01:{:02} 1vXyZb-{n:06}-AB ** r@mail.example: {four_k}\n",
            n % 60
        ));
    }
    std::fs::write(&log, text).unwrap();
    let db = dir.path().join("long.db");
    crate::util::ingest_into(&db, &log);
    let server = Server::start_with(&db, dir.path(), None);
    // Every line, page after page.
    let mut after: Option<String> = None;
    let mut lines = 0;
    let mut pages = 0;
    loop {
        let path = match &after {
            Some(after) => format!("/api/v1/lines?since=2026-12-01&after={after}"),
            None => "/api/v1/lines?since=2026-12-01".to_owned(),
        };
        let (head, body) = crate::util::http(server.port, "GET", &path, &[], "").unwrap();
        assert!(status_is(&head, 200), "{path}: {head}");
        assert!(body.len() < 8 << 20, "{path}: {} bytes", body.len());
        let page: serde_json::Value = serde_json::from_str(&body).unwrap();
        lines += page["lines"].as_array().unwrap().len();
        pages += 1;
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(lines, 2040, "in {pages} pages");
    // The log page of four-kilobyte lines answers, with a next page.
    let (head, body) = crate::util::http(
        server.port,
        "GET",
        "/log?since=2026-12-01T10:01:00",
        &[],
        "",
    )
    .unwrap();
    assert!(status_is(&head, 200), "{head}");
    assert!(body.contains("Next page"), "no next page");
    // Eight at once, many times over: the server stays small.
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let port = server.port;
            std::thread::spawn(move || {
                for _ in 0..5 {
                    let (head, _) = crate::util::http(
                        port,
                        "GET",
                        "/api/v1/lines?since=2026-12-01&kind=reception",
                        &[],
                        "",
                    )
                    .unwrap();
                    assert!(status_is(&head, 200) || status_is(&head, 503), "{head}");
                    let (head, _) = crate::util::http(
                        port,
                        "GET",
                        "/api/v1/search?q=1vXyZa-000001-AB",
                        &[],
                        "",
                    )
                    .unwrap();
                    assert!(status_is(&head, 200) || status_is(&head, 503), "{head}");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let peak = crate::hostile::peak_rss_kib(server.pid()).unwrap();
    assert!(peak < 256 * 1024, "serve grew to {peak} KiB");
}
