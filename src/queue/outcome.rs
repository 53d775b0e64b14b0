//! What Exim said it did to each message (pure): its per-message lines on
//! standard output (`queue.c`, `queue_action`) read into an [`Outcome`]
//! per id. A call on several ids exits 1 when any failed, so the lines,
//! not the exit status, say what happened to each.

use serde::{Deserialize, Serialize};

/// What came of an action on one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Done: `is now frozen`, `is no longer frozen`, `has been removed`.
    Done,
    /// Nothing to do: `is already frozen`, `is not frozen`.
    Noop,
    /// Another process holds it (a delivery under way): `is locked`.
    Busy,
    /// Not on the queue (any more): `Spool data file ... does not exist`.
    Absent,
    /// Exim refused the caller: `Permission denied`.
    Refused,
    /// Exim tried and failed (a spool file it could not read or change).
    Failed,
    /// Started; what came of it is in the main log (deliver, give up:
    /// Exim prints nothing and exits 0 even when the delivery defers).
    Started,
    /// Exim said nothing this reader knows about the message, or the
    /// helper stopped before it ended.
    Unknown,
    /// Not run: a dry run.
    DryRun,
}

impl Outcome {
    /// Its name in the audit log.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Noop => "noop",
            Outcome::Busy => "busy",
            Outcome::Absent => "absent",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
            Outcome::Started => "started",
            Outcome::Unknown => "unknown",
            Outcome::DryRun => "dry_run",
        }
    }
}

/// Reads Exim's output for an action on `ids` (in the order given): an
/// outcome per id. Lines that name an id apply to it; `Permission denied`
/// names none and applies to the first id without an outcome yet (Exim
/// works through the ids in order and prints it before the id).
pub fn outcomes(ids: &[String], stdout: &[u8]) -> Vec<Outcome> {
    let mut found: Vec<Option<Outcome>> = vec![None; ids.len()];
    for line in String::from_utf8_lossy(stdout).lines() {
        if line.trim() == "Permission denied" {
            if let Some(slot) = found.iter_mut().find(|slot| slot.is_none()) {
                *slot = Some(Outcome::Refused);
            }
            continue;
        }
        let Some((index, outcome)) = ids
            .iter()
            .enumerate()
            .find_map(|(index, id)| line_outcome(line, id).map(|o| (index, o)))
        else {
            continue;
        };
        // `has been removed or did not exist` follows `does not exist`:
        // the later, more definite line wins only over Unknown-like ones.
        let slot = &mut found[index];
        *slot = match (*slot, outcome) {
            (Some(Outcome::Absent), Outcome::Done) => Some(Outcome::Absent),
            _ => Some(outcome),
        };
    }
    found
        .into_iter()
        .map(|slot| slot.unwrap_or(Outcome::Unknown))
        .collect()
}

/// The outcome one of Exim's lines gives for `id`, if it speaks of it.
fn line_outcome(line: &str, id: &str) -> Option<Outcome> {
    if let Some(rest) = line.strip_prefix("Message ") {
        let verdict = rest.strip_prefix(id)?.strip_prefix(' ')?;
        return Some(match verdict {
            "is now frozen" | "is no longer frozen" | "has been removed" => Outcome::Done,
            "is already frozen" | "is not frozen" => Outcome::Noop,
            "has been removed or did not exist" => Outcome::Absent,
            "is locked" => Outcome::Busy,
            _ if verdict.starts_with("could not be") => Outcome::Failed,
            _ => return None,
        });
    }
    if line == format!("Spool data file for {id} does not exist") {
        return Some(Outcome::Absent);
    }
    let failed = line.starts_with(&format!("Couldn't open spool file for {id}:"))
        || line.starts_with(&format!("Spool read error for {id}-H"))
        || line == format!("Spool format error for {id}-H");
    failed.then_some(Outcome::Failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|id| (*id).to_owned()).collect()
    }

    #[test]
    fn each_of_exims_lines_gives_its_outcome() {
        let ids = ids(&[
            "1rAAAA-000001-AB",
            "1rAAAA-000002-AB",
            "1rAAAA-000003-AB",
            "1rAAAA-000004-AB",
            "1rAAAA-000005-AB",
        ]);
        let stdout = b"Message 1rAAAA-000001-AB is now frozen
Message 1rAAAA-000002-AB is already frozen
Message 1rAAAA-000003-AB is locked
Spool data file for 1rAAAA-000004-AB does not exist
Couldn't open spool file for 1rAAAA-000005-AB: Permission denied
";
        assert_eq!(
            outcomes(&ids, stdout),
            [
                Outcome::Done,
                Outcome::Noop,
                Outcome::Busy,
                Outcome::Absent,
                Outcome::Failed
            ]
        );
    }

    #[test]
    fn thaw_and_remove_read_alike() {
        let ids = ids(&[
            "1rAAAA-000001-AB",
            "1rAbCd-0000000000A-1x2Y",
            "1rAAAA-000003-AB",
        ]);
        let stdout = b"Message 1rAAAA-000001-AB is no longer frozen
Message 1rAbCd-0000000000A-1x2Y is not frozen
Spool data file for 1rAAAA-000003-AB does not exist
Continuing, to ensure all files removed
Message 1rAAAA-000003-AB has been removed or did not exist
";
        assert_eq!(
            outcomes(&ids, stdout),
            [Outcome::Done, Outcome::Noop, Outcome::Absent]
        );
        let removed = outcomes(&ids[..1], b"Message 1rAAAA-000001-AB has been removed\n");
        assert_eq!(removed, [Outcome::Done]);
    }

    #[test]
    fn permission_denied_names_no_id_and_falls_on_the_next_one() {
        let ids = ids(&["1rAAAA-000001-AB", "1rAAAA-000002-AB"]);
        let stdout = b"Message 1rAAAA-000001-AB is now frozen\nPermission denied\n";
        assert_eq!(outcomes(&ids, stdout), [Outcome::Done, Outcome::Refused]);
        // Nothing said of a message: unknown, never guessed.
        assert_eq!(
            outcomes(&ids, b"exim: something new\n"),
            [Outcome::Unknown, Outcome::Unknown]
        );
        // An id is matched whole: a longer one does not count.
        assert_eq!(
            outcomes(&ids[..1], b"Message 1rAAAA-000001-ABC is now frozen\n"),
            [Outcome::Unknown]
        );
    }
}
