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

/// Answers every connection with [`LISTING`] and keeps the requests.
pub fn stand_in_helper(socket: &Path) -> Arc<Mutex<Vec<serde_json::Value>>> {
    let listener = UnixListener::bind(socket).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut line = String::new();
            BufReader::new(&stream).read_line(&mut line).unwrap();
            keep.lock()
                .unwrap()
                .push(serde_json::from_str(&line).unwrap());
            let reply = format!(
                "{{\"ok\":true,\"payload_bytes\":{}}}\n{LISTING}",
                LISTING.len()
            );
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    seen
}
