//! The web view's queue pages against a stand-in queue helper on a socket
//! (the real helper against a real Exim is a system test): the listing
//! joined with the log's history, masked for a viewer, who may not choose
//! by address; the request names the signed-in user; the audit page is
//! for admins; the stuck page links to the queue.

use std::path::{Path, PathBuf};

use tempfile::TempDir;

use crate::util::queue_helper::stand_in_helper;
use crate::util::web::{Server, hash_of, sample_database, set_cookie};

fn server(dir: &Path, db: &Path, socket: &Path) -> (Server, String, String) {
    let config = dir.join("web.toml");
    std::fs::write(
        &config,
        format!(
            "[web]\nauth = \"users\"\n\
             [[web.users]]\nname = \"root\"\npassword_hash = \"{}\"\nrole = \"admin\"\n\
             [[web.users]]\nname = \"eve\"\npassword_hash = \"{}\"\nrole = \"viewer\"\n\
             [queue]\nsocket = \"{}\"\n",
            hash_of("root's secret"),
            hash_of("eve's secret"),
            socket.display()
        ),
    )
    .unwrap();
    let server = Server::start_with(db, dir, Some(&config));
    let sign_in = |name: &str, password: &str| {
        let (head, _) = crate::util::http(
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

fn get(server: &Server, cookie: &str, path: &str) -> (String, String) {
    crate::util::http(server.port, "GET", path, &[cookie], "").unwrap()
}

#[test]
fn the_queue_page_lists_through_the_helper_with_the_logs_history_masked_for_a_viewer() {
    let dir = TempDir::new().unwrap();
    let db: PathBuf = sample_database(dir.path());
    let socket = dir.path().join("queue.sock");
    let seen = stand_in_helper(&socket);
    let (server, admin, viewer) = server(dir.path(), &db, &socket);

    let (head, body) = get(&server, &admin, "/api/v1/queue");
    assert!(
        head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
        "{head}\n{body}"
    );
    let rows: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2, "{body}");
    assert_eq!(rows[0]["queue_id"], "1xWZzS-0001uN-1x");
    assert_eq!(rows[0]["sender"], "alice@outside.example");
    assert_eq!(rows[1]["frozen"], true);
    let request = seen.lock().unwrap()[0].clone();
    assert_eq!(request["verb"], "list");
    assert_eq!(request["origin"], "web");
    assert_eq!(request["actor"]["user"], "root");
    assert_eq!(request["actor"]["role"], "admin");
    assert_eq!(request["actor"]["auth"], "users");

    let (_, body) = get(&server, &admin, "/api/v1/queue?frozen=1");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let (_, page) = get(&server, &admin, "/queue");
    assert!(
        page.contains("1xWZzT-0001uO-1y") && page.contains("carol@example.com"),
        "{page}"
    );

    // A viewer sees the queue, masked, and may not choose by address.
    let (_, body) = get(&server, &viewer, "/api/v1/queue");
    assert!(!body.contains("alice") && !body.contains("carol"), "{body}");
    assert!(body.contains("1xWZzS-0001uN-1x"), "{body}");
    let (head, _) = get(&server, &viewer, "/api/v1/queue?recipient=carol");
    assert!(head.contains(" 403 "), "{head}");
    let (head, _) = get(&server, &viewer, "/audit");
    assert!(head.contains(" 403 "), "{head}");
    let (head, _) = get(&server, &admin, "/audit");
    assert!(head.contains(" 200 "), "{head}");
    let (_, stuck) = get(&server, &admin, "/stuck");
    assert!(stuck.contains("href=\"/queue\""), "{stuck}");
}

#[test]
fn without_a_helper_the_queue_page_says_so() {
    let dir = TempDir::new().unwrap();
    let db = sample_database(dir.path());
    let (server, admin, _) = server(dir.path(), &db, &dir.path().join("no-helper.sock"));
    let (head, body) = get(&server, &admin, "/queue");
    assert!(head.contains(" 503 "), "{head}");
    assert!(body.contains("exim-pilot-queue.socket"), "{body}");
}
