//! The re-check before an action: which of the requested ids are on Exim's
//! queue now, asked of Exim itself. `exim -bpr ID...` lists just those
//! messages and, for one whose spool files are gone, prints its id with
//! `*** spool read error: No such file or directory ***` (`queue.c`,
//! `queue_list`). A message that left the queue between the page and the
//! click is reported `absent` and never reaches the action's argv.

use std::io;
use std::path::Path;
use std::time::Duration;

use super::exec;
use crate::queue::listing::parse_listing;
use crate::queue::outcome::Outcome;

/// How long the listing of the requested ids may take.
const DEADLINE: Duration = Duration::from_secs(30);

/// The most of it read: far above what [`crate::queue::request::MAX_IDS`]
/// messages print, so that a cut listing is an error, never a message
/// taken for gone.
const CAP: usize = 64 << 20;

/// Whether each of `ids` is on the queue now, in their order.
pub fn on_queue(exim: &Path, ids: &[String]) -> io::Result<Vec<bool>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let args: Vec<String> = std::iter::once("-bpr".to_owned())
        .chain(ids.iter().cloned())
        .collect();
    let ran = exec::run(exim, &args, DEADLINE, CAP)?;
    if ran.timed_out || ran.stdout_cut || ran.status != Some(0) {
        let why = if ran.timed_out {
            "did not finish in time".to_owned()
        } else if ran.stdout_cut {
            format!("printed more than {CAP} bytes")
        } else {
            let stderr = String::from_utf8_lossy(&ran.stderr);
            format!("exited with {:?}: {}", ran.status, stderr.trim())
        };
        return Err(io::Error::other(format!("exim -bpr {why}")));
    }
    let (listed, _) = parse_listing(&ran.stdout);
    Ok(ids
        .iter()
        .map(|id| {
            listed.iter().any(|message| {
                message.id == *id
                    && !message
                        .spool_error
                        .as_deref()
                        .is_some_and(|error| error.contains("No such file or directory"))
            })
        })
        .collect())
}

/// The outcome per requested id: `absent` for those not on the queue, and
/// in order, `for_present` for the others (`unknown` if it falls short).
pub fn merge(on_queue: &[bool], for_present: Vec<Outcome>) -> Vec<Outcome> {
    let mut for_present = for_present.into_iter();
    on_queue
        .iter()
        .map(|&here| {
            if here {
                for_present.next().unwrap_or(Outcome::Unknown)
            } else {
                Outcome::Absent
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_of_the_present_fall_in_place_beside_the_absent() {
        assert_eq!(
            merge(
                &[true, false, true, true],
                vec![Outcome::Done, Outcome::Busy]
            ),
            [
                Outcome::Done,
                Outcome::Absent,
                Outcome::Busy,
                Outcome::Unknown
            ]
        );
    }
}
