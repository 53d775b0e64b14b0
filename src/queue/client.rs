//! Asking the queue helper: connect to its socket, send one request (checked
//! here first, and again by the helper), read its reply line and whatever
//! output follows, bounded in bytes and time. Used by the CLI and the web
//! view; neither ever runs Exim itself.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::helper::Reply;
use super::request::{Refusal, Request};

/// The longest reply line.
const MAX_REPLY_LINE: u64 = 1 << 20;

/// What the helper answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Its reply.
    pub reply: Reply,
    /// Exim's output that followed (a listing, headers, a log, a body).
    pub payload: Vec<u8>,
}

/// Why the helper could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The request is wrong: nothing was sent.
    #[error("{0}")]
    Request(#[from] Refusal),
    /// The socket is not there or refuses us.
    #[error(
        "cannot reach the queue helper at {socket}: {source} (is exim-pilot-queue.socket \
         enabled, and is this user in group exim-pilot-queue?)"
    )]
    Connect {
        /// The socket.
        socket: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The conversation broke off, or the answer is not one.
    #[error("the queue helper's answer: {0}")]
    Answer(String),
    /// The helper ended without a word (killed mid-action, or stopped by
    /// its unit's time limit): its intent is on record, its outcome not.
    #[error(
        "the queue helper ended without answering: what came of the request is unknown \
         (exim-pilot audit shows what was recorded)"
    )]
    Unanswered,
}

/// Sends `request` to the helper listening on `socket` and reads its answer,
/// at most `max_payload` bytes of output, within `timeout` per read.
pub fn ask(
    socket: &Path,
    request: &Request,
    timeout: Duration,
    max_payload: u64,
) -> Result<Answer, ClientError> {
    request.check(request.verb.tier())?;
    let connect = |source| ClientError::Connect {
        socket: socket.to_path_buf(),
        source,
    };
    let mut stream = UnixStream::connect(socket).map_err(connect)?;
    let broken = |err: std::io::Error| ClientError::Answer(err.to_string());
    stream.set_read_timeout(Some(timeout)).map_err(broken)?;
    stream.set_write_timeout(Some(timeout)).map_err(broken)?;
    let mut line =
        serde_json::to_vec(request).map_err(|err| ClientError::Answer(err.to_string()))?;
    line.push(b'\n');
    stream.write_all(&line).map_err(broken)?;
    let mut reader = BufReader::new(stream);
    let mut header = Vec::new();
    (&mut reader)
        .take(MAX_REPLY_LINE)
        .read_until(b'\n', &mut header)
        .map_err(broken)?;
    if header.is_empty() {
        return Err(ClientError::Unanswered);
    }
    let reply: Reply = serde_json::from_slice(header.trim_ascii_end())
        .map_err(|err| ClientError::Answer(format!("not a reply ({err})")))?;
    if reply.payload_bytes > max_payload {
        return Err(ClientError::Answer(format!(
            "{} bytes of output, over the {max_payload} this caller takes",
            reply.payload_bytes
        )));
    }
    let mut payload = Vec::new();
    reader
        .take(reply.payload_bytes)
        .read_to_end(&mut payload)
        .map_err(broken)?;
    if (payload.len() as u64) < reply.payload_bytes {
        return Err(ClientError::Answer("the output was cut short".to_owned()));
    }
    Ok(Answer { reply, payload })
}

/// The socket of the helper tier that runs `request`'s verb.
pub fn socket_for<'a>(config: &'a crate::config::QueueConfig, request: &Request) -> &'a Path {
    match request.verb.tier() {
        2 => &config.deliver_socket,
        _ => &config.socket,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::request::{PROTOCOL_VERSION, Verb};
    use std::os::unix::net::UnixListener;

    fn list() -> Request {
        Request {
            v: PROTOCOL_VERSION,
            request_id: "c-1".into(),
            verb: Verb::List,
            ids: Vec::new(),
            dry_run: false,
            reason: String::new(),
            selection: String::new(),
            origin: "cli".into(),
            actor: Default::default(),
        }
    }

    /// A helper stand-in answering every connection with `answer`.
    fn helper(answer: &'static [u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("queue.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let mut request = String::new();
                BufReader::new(&stream).read_line(&mut request).unwrap();
                stream.write_all(answer).unwrap();
            }
        });
        (dir, socket)
    }

    #[test]
    fn a_reply_and_its_output_are_read_exactly() {
        let (_dir, socket) = helper(b"{\"ok\":true,\"payload_bytes\":5}\nhello and more");
        let answer = ask(&socket, &list(), Duration::from_secs(5), 100).unwrap();
        assert!(answer.reply.ok);
        assert_eq!(answer.payload, b"hello");
        let err = ask(&socket, &list(), Duration::from_secs(5), 4).unwrap_err();
        assert!(err.to_string().contains("over the 4"), "{err}");
    }

    #[test]
    fn a_missing_helper_says_how_to_get_one_and_a_bad_request_is_not_sent() {
        let err = ask(
            Path::new("/nonexistent/q.sock"),
            &list(),
            Duration::from_secs(1),
            10,
        )
        .unwrap_err();
        assert!(err.to_string().contains("exim-pilot-queue.socket"), "{err}");
        let mut bad = list();
        bad.ids.push("not-an-id".into());
        assert!(matches!(
            ask(
                Path::new("/nonexistent/q.sock"),
                &bad,
                Duration::from_secs(1),
                10
            ),
            Err(ClientError::Request(_))
        ));
        let (_dir, socket) = helper(b"{\"ok\":true,\"payload_bytes\":50}\nshort");
        let err = ask(&socket, &list(), Duration::from_secs(5), 100).unwrap_err();
        assert!(err.to_string().contains("cut short"), "{err}");
        // A helper killed before it answered.
        let (_dir, socket) = helper(b"");
        let err = ask(&socket, &list(), Duration::from_secs(5), 100).unwrap_err();
        assert!(err.to_string().contains("ended without answering"), "{err}");
    }
}
