//! The queue helper's action records (pure): what it appends to its
//! actions log, one JSON line each, before Exim runs (an intent) and after
//! (the outcome). The daemon reads them back into the audit log; both
//! sides use these types, so the format is said once.

use serde::{Deserialize, Serialize};

use super::request::{Actor, Verb};

/// Bytes kept of Exim's output in a record.
pub const OUTPUT_CAP: usize = 4096;

/// Who asked, as the helper saw it: the peer the kernel names, and the
/// actor the request names (trusted only from the web view's user).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// The peer's uid (`SO_PEERCRED`).
    pub peer_uid: u32,
    /// The peer's user name, when the password file has it.
    pub peer_user: String,
    /// The peer's pid.
    pub peer_pid: i32,
    /// The actor: the web view's signed-in user, or the peer's user name.
    pub actor: Actor,
    /// `web` or `cli`.
    pub origin: String,
}

/// One line of the actions log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record {
    /// Written, and flushed to disk, before Exim runs.
    Intent(Intent),
    /// Written after Exim ran (or was refused, or timed out).
    Outcome(Finished),
}

/// What is about to run, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    /// The caller's request id.
    pub request_id: String,
    /// When (ms since 1970).
    pub at_ms: i64,
    /// Who.
    pub caller: Caller,
    /// What.
    pub verb: Verb,
    /// On which messages.
    pub ids: Vec<String>,
    /// How they were chosen (a filter, as JSON text), if by one.
    pub selection: String,
    /// Only saying what would be done.
    pub dry_run: bool,
    /// Why, in the operator's words.
    pub reason: String,
    /// Exim's command line.
    pub argv: Vec<String>,
}

/// What came of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finished {
    /// The request id of the intent.
    pub request_id: String,
    /// When (ms since 1970).
    pub at_ms: i64,
    /// Exim's exit status (`None`: killed, or never ran).
    pub exit_status: Option<i32>,
    /// An outcome per id, in the intent's order (`done`, `noop`, `busy`...).
    pub outcomes: Vec<String>,
    /// Exim's standard output, capped at [`OUTPUT_CAP`] bytes.
    pub stdout: String,
    /// Exim's standard error, capped likewise.
    pub stderr: String,
    /// Why it did not run or did not end, if so.
    pub error: String,
}

impl Record {
    /// The record as one line (no newline in it: JSON escapes them).
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_default();
        line.push('\n');
        line
    }

    /// A line of the actions log, if it is a record.
    pub fn from_line(line: &[u8]) -> Option<Record> {
        serde_json::from_slice(line).ok()
    }
}

/// `bytes` as text of at most [`OUTPUT_CAP`] bytes (cut at a character
/// boundary).
pub fn capped(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    if text.len() <= OUTPUT_CAP {
        return text.into_owned();
    }
    let mut end = OUTPUT_CAP;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_one_line_and_reads_back() {
        let intent = Record::Intent(Intent {
            request_id: "r-1".into(),
            at_ms: 1,
            caller: Caller {
                peer_uid: 104,
                peer_user: "exim-pilot".into(),
                peer_pid: 42,
                actor: Actor {
                    user: "alice\nbob".into(),
                    role: "admin".into(),
                    auth: "users".into(),
                    client_ip: "192.0.2.7".into(),
                },
                origin: "web".into(),
            },
            verb: Verb::Freeze,
            ids: vec!["1rAAAA-000001-AB".into()],
            selection: String::new(),
            dry_run: false,
            reason: "loops".into(),
            argv: vec![
                "/usr/sbin/exim4".into(),
                "-Mf".into(),
                "1rAAAA-000001-AB".into(),
            ],
        });
        let line = intent.to_line();
        assert_eq!(line.matches('\n').count(), 1);
        assert!(line.starts_with("{\"record\":\"intent\""), "{line}");
        assert_eq!(Record::from_line(line.trim_end().as_bytes()), Some(intent));
        assert_eq!(Record::from_line(b"{\"record\":\"other\"}"), None);
    }

    #[test]
    fn output_is_capped_at_a_character_boundary() {
        let long = "é".repeat(OUTPUT_CAP);
        let cut = capped(long.as_bytes());
        assert!(cut.len() <= OUTPUT_CAP && cut.len() >= OUTPUT_CAP - 1);
        assert_eq!(capped(b"short"), "short");
    }
}
