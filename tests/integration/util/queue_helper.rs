//! A stand-in queue helper on a socket, for the tests of what asks it
//! (the web view, the daemon's queue gauges): it answers every request
//! with a fixed listing and keeps the requests.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A queued message of the bundled sample (its recipient has a history).
pub const LISTING: &str = " 5m   328 1xWZzS-0001uN-1x <alice@outside.example>
          bob@example.net

 3h  2.9K 1xWZzT-0001uO-1y <> *** frozen ***
          carol@example.com

";

/// Answers a listing with [`LISTING`], a message's headers, log or body
/// with a line naming them, and an action with `done` for each id
/// (`dry_run` for a dry run); keeps the requests.
pub fn stand_in_helper(socket: &Path) -> Arc<Mutex<Vec<serde_json::Value>>> {
    let listener = UnixListener::bind(socket).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut line = String::new();
            BufReader::new(&stream).read_line(&mut line).unwrap();
            let request: serde_json::Value = serde_json::from_str(&line).unwrap();
            keep.lock().unwrap().push(request.clone());
            let shown = match request["verb"].as_str() {
                Some("list") => Some(LISTING.to_owned()),
                Some(verb @ ("show_headers" | "show_log" | "show_body")) => Some(format!(
                    "{verb} of {}\n<b>not markup</b>\n",
                    request["ids"][0]
                )),
                _ => None,
            };
            let reply = if let Some(payload) = shown {
                format!(
                    "{{\"ok\":true,\"payload_bytes\":{}}}\n{payload}",
                    payload.len()
                )
            } else {
                // An action: done for each id (dry_run for a dry run), and
                // the argv the real helper would run.
                let ids = request["ids"].as_array().cloned().unwrap_or_default();
                let outcome = if request["dry_run"] == true {
                    "dry_run"
                } else {
                    "done"
                };
                let mut argv = vec![
                    serde_json::json!("/usr/sbin/exim4"),
                    serde_json::json!("-Mf"),
                ];
                argv.extend(ids.iter().cloned());
                let reply = serde_json::json!({
                    "ok": true,
                    "outcomes": vec![outcome; ids.len()],
                    "argv": argv,
                });
                format!("{reply}\n")
            };
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    seen
}
