//! The web view's queue pages against a stand-in queue helper on a socket
//! (the real helper against a real Exim is a system test): the listing
//! joined with the log's history, masked for a viewer, who may not choose
//! by address; the request names the signed-in user; the audit page is
//! for admins; the stuck page links to the queue.

use std::path::{Path, PathBuf};

use tempfile::TempDir;

use crate::util::queue_helper::stand_in_helper;
use crate::util::web::{Server, admin_and_viewer, sample_database};

fn server(dir: &Path, db: &Path, socket: &Path) -> (Server, String, String) {
    server_with(dir, db, socket, "")
}

/// An admin and a viewer, the helper's sockets at `socket`, and `queue`'s
/// lines in `[queue]`.
fn server_with(dir: &Path, db: &Path, socket: &Path, queue: &str) -> (Server, String, String) {
    let extra = format!(
        "[queue]\nsocket = \"{}\"\ndeliver_socket = \"{}\"\n{queue}",
        socket.display(),
        socket.display()
    );
    admin_and_viewer(dir, db, &extra)
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
    // A limit shows the first messages and says how many there are.
    let (_, page) = get(&server, &admin, "/queue?limit=1");
    assert!(
        page.contains("2 message(s), the first 1 shown") && !page.contains("carol@example.com"),
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

fn post(server: &Server, cookie: &str, path: &str, extra: &[&str], form: &str) -> (String, String) {
    let mut headers = vec![cookie, "Content-Type: application/x-www-form-urlencoded"];
    headers.extend_from_slice(extra);
    crate::util::http(server.port, "POST", path, &headers, form).unwrap()
}

/// The value of the hidden input `name` in `page`.
fn hidden(page: &str, name: &str) -> String {
    let at = page
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("{name} in {page}"));
    let rest = &page[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_owned()
}

#[test]
fn an_admin_acts_through_a_confirmation_that_runs_exactly_what_it_showed() {
    let dir = TempDir::new().unwrap();
    let db = sample_database(dir.path());
    let socket = dir.path().join("queue.sock");
    let seen = stand_in_helper(&socket);
    let (server, admin, viewer) = server_with(dir.path(), &db, &socket, "actions = true\n");
    let (_, page) = get(&server, &admin, "/queue");
    assert!(
        page.contains("name=\"id\" value=\"1xWZzS-0001uN-1x\""),
        "{page}"
    );
    let form_token = hidden(&page, "form_token");
    let form = format!("action=freeze&id=1xWZzS-0001uN-1x&reason=loops&form_token={form_token}");

    // The review is a dry run, recorded by the helper, naming the admin.
    let (head, confirm) = post(&server, &admin, "/queue/confirm", &[], &form);
    assert!(head.contains(" 200 "), "{head}\n{confirm}");
    assert!(
        confirm.contains("/usr/sbin/exim4 -Mf 1xWZzS-0001uN-1x"),
        "{confirm}"
    );
    let dry = seen.lock().unwrap().last().unwrap().clone();
    assert_eq!(
        (dry["verb"].as_str(), dry["dry_run"].as_bool()),
        (Some("freeze"), Some(true))
    );
    assert_eq!(
        (dry["actor"]["user"].as_str(), dry["reason"].as_str()),
        (Some("root"), Some("loops"))
    );
    let (token, expires) = (hidden(&confirm, "confirm"), hidden(&confirm, "expires"));
    let confirmed = format!("{form}&expires={expires}&confirm={token}");

    // What was confirmed, and nothing else, runs.
    let (head, _) = post(
        &server,
        &admin,
        "/queue/act",
        &[],
        &format!("{confirmed}&id=1xWZzT-0001uO-1y"),
    );
    assert!(head.contains(" 403 "), "a widened selection: {head}");
    let (head, _) = post(
        &server,
        &admin,
        "/queue/act",
        &[],
        &confirmed.replace("freeze", "remove"),
    );
    assert!(head.contains(" 403 "), "another action: {head}");
    let (head, _) = post(
        &server,
        &admin,
        "/queue/act",
        &["Origin: https://evil.example"],
        &confirmed,
    );
    assert!(head.contains(" 403 "), "cross-site: {head}");
    let (head, _) = post(
        &server,
        &admin,
        "/queue/act",
        &[],
        &confirmed.replace(&form_token, "00"),
    );
    assert!(head.contains(" 403 "), "no form token: {head}");
    let (head, _) = post(&server, &viewer, "/queue/act", &[], &confirmed);
    assert!(head.contains(" 403 "), "a viewer: {head}");
    let before = seen.lock().unwrap().len();
    let (head, done) = post(&server, &admin, "/queue/act", &[], &confirmed);
    assert!(
        head.contains(" 200 ") && done.contains("done"),
        "{head}\n{done}"
    );
    assert_eq!(
        seen.lock().unwrap().len(),
        before + 1,
        "only the confirmed request ran"
    );
    let ran = seen.lock().unwrap().last().unwrap().clone();
    assert_eq!(
        (ran["verb"].as_str(), ran["dry_run"].as_bool()),
        (Some("freeze"), Some(false))
    );
    assert_eq!(ran["ids"], serde_json::json!(["1xWZzS-0001uN-1x"]));

    // Bulk actions: three a minute per user, then 429.
    let bulk = format!(
        "action=thaw&id=1xWZzS-0001uN-1x&id=1xWZzT-0001uO-1y&reason=&form_token={form_token}"
    );
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let (_, confirm) = post(&server, &admin, "/queue/confirm", &[], &bulk);
        let confirmed = format!(
            "{bulk}&expires={}&confirm={}",
            hidden(&confirm, "expires"),
            hidden(&confirm, "confirm")
        );
        let (head, _) = post(&server, &admin, "/queue/act", &[], &confirmed);
        statuses.push(head.split_whitespace().nth(1).unwrap().to_owned());
    }
    assert_eq!(statuses, ["200", "200", "200", "429"]);
}

#[test]
fn with_actions_off_the_page_offers_none_and_a_post_is_refused() {
    let dir = TempDir::new().unwrap();
    let db = sample_database(dir.path());
    let socket = dir.path().join("queue.sock");
    let _seen = stand_in_helper(&socket);
    let (server, admin, _) = server(dir.path(), &db, &socket);
    let (_, page) = get(&server, &admin, "/queue");
    assert!(!page.contains("name=\"id\""), "{page}");
    let (head, _) = post(
        &server,
        &admin,
        "/queue/confirm",
        &[],
        "action=freeze&id=1xWZzS-0001uN-1x",
    );
    assert!(head.contains(" 403 "), "{head}");
}

#[test]
fn an_admin_reads_a_queued_messages_spool_files_and_the_body_only_as_text() {
    let dir = TempDir::new().unwrap();
    let db = sample_database(dir.path());
    let socket = dir.path().join("queue.sock");
    let seen = stand_in_helper(&socket);
    let (server, admin, viewer) = server(dir.path(), &db, &socket);
    let (head, page) = get(&server, &admin, "/queue/1xWZzS-0001uN-1x");
    assert!(head.contains(" 200 "), "{head}");
    assert!(page.contains("show_headers of"), "{page}");
    assert!(page.contains("show_log of"), "{page}");
    // Shown as text inside the page, never as markup.
    assert!(page.contains("&lt;b&gt;not markup&lt;/b&gt;"), "{page}");
    let (head, body) = get(&server, &admin, "/queue/1xWZzS-0001uN-1x/body");
    assert!(
        head.contains(" 200 ") && head.contains("content-type: text/plain"),
        "{head}"
    );
    assert!(
        body.starts_with("show_body of \"1xWZzS-0001uN-1x\""),
        "{body}"
    );
    let request = seen.lock().unwrap().last().unwrap().clone();
    assert_eq!(
        (request["verb"].as_str(), request["actor"]["user"].as_str()),
        (Some("show_body"), Some("root"))
    );
    // A viewer reads none of it; a bad id never reaches the helper.
    let before = seen.lock().unwrap().len();
    for path in ["/queue/1xWZzS-0001uN-1x", "/queue/1xWZzS-0001uN-1x/body"] {
        let (head, _) = get(&server, &viewer, path);
        assert!(head.contains(" 403 "), "{path}: {head}");
    }
    let (head, _) = get(&server, &admin, "/queue/-C%2Ftmp%2Fx/body");
    assert!(head.contains(" 400 "), "{head}");
    assert_eq!(seen.lock().unwrap().len(), before);
}
