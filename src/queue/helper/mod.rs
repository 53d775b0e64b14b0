//! The queue helper (`exim-pilot-queue-helper`): the one process that acts
//! as Exim's admin. systemd starts one per connection on its socket
//! (`Accept=yes`), as Exim's user, with the connection as standard input
//! and output; it serves one request and exits.
//!
//! In order: it reads `[queue]` from the root-owned configuration, asks
//! the kernel who is calling (`SO_PEERCRED`), reads one request line
//! (bounded in bytes and time), checks it ([`super::request`]), refuses an
//! action unless actions are on and the caller may act, writes the intent
//! to the actions log and flushes it to disk (refusing when it cannot),
//! runs Exim with a fixed argv ([`exec`]), reads what Exim said of each
//! message ([`super::outcome`]), records the outcome, and answers.
//!
//! The answer is one JSON line ([`Reply`]), then, for a listing or a
//! message's headers, log or body, Exim's output as it printed it.

mod actions_log;
mod exec;
mod peer;
mod recheck;

use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::outcome::{Outcome, outcomes};
use super::record::{Caller, Finished, Intent, Record, capped};
use super::request::{MAX_REQUEST_BYTES, Refusal, Request, Verb};
use crate::config::QueueConfig;
pub use peer::Peer;

/// The helper's answer, its first line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// Whether the request ran (an action may still have failed on some
    /// messages: see `outcomes`).
    pub ok: bool,
    /// Why not, when it did not.
    #[serde(default)]
    pub error: String,
    /// For an action: the outcome per id, in the request's order.
    #[serde(default)]
    pub outcomes: Vec<Outcome>,
    /// Exim's exit status.
    #[serde(default)]
    pub exit_status: Option<i32>,
    /// Exim's standard error, capped.
    #[serde(default)]
    pub stderr: String,
    /// Bytes of Exim's output that follow this line.
    #[serde(default)]
    pub payload_bytes: u64,
    /// Whether that output was cut at its cap.
    #[serde(default)]
    pub payload_cut: bool,
    /// The argv that ran (or would have, for a dry run).
    #[serde(default)]
    pub argv: Vec<String>,
}

/// How long a caller has to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long Exim may take, and how much of its output is passed on.
fn limits(verb: Verb) -> (Duration, usize) {
    match verb {
        Verb::List => (Duration::from_secs(60), 256 << 20),
        Verb::Count => (Duration::from_secs(30), 64),
        Verb::ShowHeaders | Verb::ShowLog => (Duration::from_secs(10), 1 << 20),
        Verb::ShowBody => (Duration::from_secs(10), 1 << 20),
        Verb::Freeze | Verb::Thaw | Verb::Remove => (Duration::from_secs(60), 1 << 20),
        // A forced delivery may wait on remote hosts; give-up sends a
        // bounce. What came of either is in the main log.
        Verb::Deliver | Verb::GiveUp => (Duration::from_secs(600), 1 << 20),
    }
}

/// Serves the connection systemd passed as standard input and output:
/// the caller named by the kernel, the request read within
/// [`REQUEST_TIMEOUT`].
pub fn serve_connection(config: &QueueConfig, tier: u8) -> std::io::Result<()> {
    let stdin = std::io::stdin();
    let peer = Peer::of(&stdin)?;
    rustix::net::sockopt::set_socket_timeout(
        &stdin,
        rustix::net::sockopt::Timeout::Recv,
        Some(REQUEST_TIMEOUT),
    )?;
    let mut output = std::io::stdout().lock();
    serve(config, tier, &peer, &mut stdin.lock(), &mut output)
}

/// Serves the one request on `input`/`output` (the accepted connection)
/// from `peer`, for the helper of `tier`.
pub fn serve(
    config: &QueueConfig,
    tier: u8,
    peer: &Peer,
    input: &mut impl BufRead,
    output: &mut impl Write,
) -> std::io::Result<()> {
    let (reply, payload) = match read_request(input, tier) {
        Ok(request) => answer(config, peer, &request),
        Err(refusal) => (refused(&refusal.to_string()), Vec::new()),
    };
    let mut line = serde_json::to_vec(&reply).unwrap_or_default();
    line.push(b'\n');
    output.write_all(&line)?;
    output.write_all(&payload)?;
    output.flush()
}

/// Reads one request line of at most [`MAX_REQUEST_BYTES`].
fn read_request(input: &mut impl BufRead, tier: u8) -> Result<Request, Refusal> {
    let mut line = Vec::new();
    let limit = u64::try_from(MAX_REQUEST_BYTES + 1).unwrap_or(u64::MAX);
    std::io::Read::take(&mut *input, limit)
        .read_until(b'\n', &mut line)
        .map_err(|err| Refusal::Malformed(format!("reading the request: {err}")))?;
    if line.len() > MAX_REQUEST_BYTES {
        return Err(Refusal::TooLong);
    }
    Request::decode(line.trim_ascii_end(), tier)
}

fn refused(error: &str) -> Reply {
    Reply {
        ok: false,
        error: error.to_owned(),
        ..Reply::default()
    }
}

/// Checks that the caller may ask this, re-checks an action's ids against
/// the queue, records the intent when the verb is audited, runs Exim,
/// records the outcome.
fn answer(config: &QueueConfig, peer: &Peer, request: &Request) -> (Reply, Vec<u8>) {
    let caller = peer.caller(config, request);
    if let Err(why) = may_ask(config, &caller, request) {
        return (refused(&why), Vec::new());
    }
    let on_queue = if request.verb.acts() {
        match recheck::on_queue(&config.exim, &request.ids) {
            Ok(on_queue) => on_queue,
            Err(err) => {
                let why = format!(
                    "cannot check the messages against the queue with {}: {err}",
                    config.exim.display()
                );
                return (refused(&why), Vec::new());
            }
        }
    } else {
        vec![true; request.ids.len()]
    };
    let present: Vec<String> = request
        .ids
        .iter()
        .zip(&on_queue)
        .filter(|(_, here)| **here)
        .map(|(id, _)| id.clone())
        .collect();
    // Nothing runs when every id has left the queue: the argv says so.
    let argv: Vec<String> = if request.verb.acts() && present.is_empty() {
        Vec::new()
    } else {
        std::iter::once(config.exim.display().to_string())
            .chain(request.exim_args(&present))
            .collect()
    };
    let log = &config.actions_log;
    if request.verb.audited() {
        let intent = Record::Intent(Intent {
            request_id: request.request_id.clone(),
            at_ms: crate::store::repo::now_ms(),
            caller,
            verb: request.verb,
            ids: request.ids.clone(),
            selection: request.selection.clone(),
            dry_run: request.dry_run,
            reason: request.reason.clone(),
            argv: argv.clone(),
        });
        if let Err(err) = actions_log::append(log, &intent) {
            let why = format!(
                "refused: the action cannot be recorded in {}: {err}",
                log.display()
            );
            return (refused(&why), Vec::new());
        }
    }
    if request.dry_run || argv.is_empty() {
        let outcomes = recheck::merge(&on_queue, vec![Outcome::DryRun; present.len()]);
        let finished = finish(request, None, &outcomes, &[], &[], "");
        record(log, request, finished);
        let reply = Reply {
            ok: true,
            outcomes,
            argv,
            ..Reply::default()
        };
        return (reply, Vec::new());
    }
    run_exim(config, request, argv, (&present, &on_queue))
}

/// Runs Exim for `request` (after its intent is on disk) with `argv`, on
/// the ids still queued (`present`, as `on_queue` marks the requested
/// ones), records the outcome of an audited one, and makes the reply and
/// its payload.
fn run_exim(
    config: &QueueConfig,
    request: &Request,
    argv: Vec<String>,
    (present, on_queue): (&[String], &[bool]),
) -> (Reply, Vec<u8>) {
    let log = &config.actions_log;
    let (deadline, cap) = limits(request.verb);
    let ran = match exec::run(&config.exim, &argv[1..], deadline, cap) {
        Ok(ran) => ran,
        Err(err) => {
            let why = format!("cannot run {}: {err}", config.exim.display());
            let outcomes = vec![Outcome::Unknown; request.ids.len()];
            let finished = finish(request, None, &outcomes, &[], &[], &why);
            record(log, request, finished);
            return (
                Reply {
                    argv,
                    ..refused(&why)
                },
                Vec::new(),
            );
        }
    };
    let outcomes = if request.verb.acts() {
        recheck::merge(on_queue, action_outcomes(request.verb, present, &ran))
    } else {
        Vec::new()
    };
    let error = if ran.timed_out {
        "Exim did not finish in time and was stopped"
    } else {
        ""
    };
    let finished = finish(
        request,
        ran.status,
        &outcomes,
        &ran.stdout,
        &ran.stderr,
        error,
    );
    record(log, request, finished);
    let shows = !request.verb.acts();
    let payload = if shows { ran.stdout } else { Vec::new() };
    let reply = Reply {
        ok: !ran.timed_out,
        error: error.to_owned(),
        outcomes,
        exit_status: ran.status,
        stderr: capped(&ran.stderr),
        payload_bytes: payload.len() as u64,
        payload_cut: shows && ran.stdout_cut,
        argv,
    };
    (reply, payload)
}

/// The outcome per id of an action on `ids`: what Exim printed, or for
/// deliver and give up (which print nothing) `started` when Exim ran.
fn action_outcomes(verb: Verb, ids: &[String], ran: &exec::Ran) -> Vec<Outcome> {
    let read = outcomes(ids, &ran.stdout);
    match verb {
        Verb::Deliver | Verb::GiveUp if !ran.timed_out => read
            .into_iter()
            .map(|o| {
                if o == Outcome::Unknown {
                    Outcome::Started
                } else {
                    o
                }
            })
            .collect(),
        _ => read,
    }
}

/// Whether `caller` may ask `request`: listing and showing headers or a
/// log, anyone the socket lets in; a body and every action, admins only,
/// and actions only when `[queue] actions` is on and within the bulk limit.
fn may_ask(config: &QueueConfig, caller: &Caller, request: &Request) -> Result<(), String> {
    let verb = request.verb;
    if verb.acts() && !config.actions {
        return Err("refused: actions are off ([queue] actions = false)".to_owned());
    }
    if (verb.acts() || verb == Verb::ShowBody) && caller.actor.role != "admin" {
        return Err(format!("refused: {} needs the admin role", verb.name()));
    }
    if request.ids.len() > config.bulk_limit {
        return Err(format!(
            "refused: {} messages at once, over [queue] bulk_limit = {}",
            request.ids.len(),
            config.bulk_limit
        ));
    }
    Ok(())
}

fn finish(
    request: &Request,
    status: Option<i32>,
    outcomes: &[Outcome],
    stdout: &[u8],
    stderr: &[u8],
    error: &str,
) -> Finished {
    Finished {
        request_id: request.request_id.clone(),
        at_ms: crate::store::repo::now_ms(),
        exit_status: status,
        outcomes: outcomes.iter().map(|o| o.name().to_owned()).collect(),
        stdout: if request.verb.acts() {
            capped(stdout)
        } else {
            String::new()
        },
        stderr: capped(stderr),
        error: error.to_owned(),
    }
}

/// Appends the outcome of an audited request (a failure to is logged: the
/// intent is on disk, and reads as unknown without its outcome).
fn record(log: &Path, request: &Request, finished: Finished) {
    if !request.verb.audited() {
        return;
    }
    if let Err(err) = actions_log::append(log, &Record::Outcome(finished)) {
        tracing::error!(
            error = %err,
            "cannot record the outcome of request {} in {}: {err}",
            request.request_id,
            log.display()
        );
    }
}

#[cfg(test)]
mod tests;
