//! `exim-pilot queue`: Exim's queue through the queue helper (this process
//! never runs Exim): list it with each waiting recipient's history from the
//! database, count it, sum it up per domain, show one message; actions in
//! `act.rs`.

mod act;
mod render;

use std::io::Write as _;
use std::time::Duration;

use anyhow::Result;

use crate::cli::{QueueAction, Selection};
use crate::config::Config;
use crate::exit::{Failure, TEMPFAIL, USAGE};
use crate::queue::client::{self, Answer};
use crate::queue::filter::Filter;
use crate::queue::listing::QueuedMessage;
use crate::queue::request::{Actor, PROTOCOL_VERSION, Request, Verb};

/// How long one read from the helper may wait.
const HELPER_TIMEOUT: Duration = Duration::from_secs(120);
/// The most listing this command reads (a queue of about a million).
const MAX_LISTING: u64 = 256 << 20;

/// Runs `exim-pilot queue [action]`.
pub fn run(config: &Config, action: Option<QueueAction>) -> Result<()> {
    match action.unwrap_or(QueueAction::List {
        select: Selection::default(),
        json: false,
    }) {
        QueueAction::List { select, json } => list(config, &select, json),
        QueueAction::Count => {
            let answer = ask(config, request(Verb::Count, Vec::new()), 64)?;
            let mut out = crate::output::stdout();
            out.write_all(&answer.payload)?;
            out.flush()?;
            Ok(())
        }
        QueueAction::Summary { select } => {
            let messages = chosen(config, &select)?;
            let mut out = crate::output::stdout();
            write!(out, "{}", render::summary(&messages))?;
            out.flush()?;
            Ok(())
        }
        QueueAction::Show { id, log, body, .. } => {
            let verb = match (log, body) {
                (true, _) => Verb::ShowLog,
                (_, true) => Verb::ShowBody,
                _ => Verb::ShowHeaders,
            };
            let answer = ask(config, request(verb, vec![id]), 1 << 20)?;
            let mut out = crate::output::stdout();
            out.write_all(&answer.payload)?;
            out.flush()?;
            if answer.reply.payload_cut {
                eprintln!("exim-pilot: the output was cut at 1 MiB");
            }
            Ok(())
        }
        QueueAction::Freeze(act) => act::run(config, Verb::Freeze, act),
        QueueAction::Thaw(act) => act::run(config, Verb::Thaw, act),
        QueueAction::Remove(act) => act::run(config, Verb::Remove, act),
        QueueAction::Deliver(act) => act::run(config, Verb::Deliver, act),
        QueueAction::Giveup(act) => act::run(config, Verb::GiveUp, act),
    }
}

/// `queue list`: the messages chosen, as text or JSON lines.
fn list(config: &Config, select: &Selection, json: bool) -> Result<()> {
    let messages = chosen(config, select)?;
    let histories = match crate::query::open(&config.database.path) {
        Ok(conn) => {
            let ids: Vec<&str> = messages.iter().map(|m| m.id.as_str()).collect();
            crate::query::queue::recipient_histories(&conn, &ids)?
        }
        // The listing stands without the log's history.
        Err(err) => {
            eprintln!("exim-pilot: no deferral reasons ({err})");
            Default::default()
        }
    };
    let mut out = crate::output::stdout();
    for message in &messages {
        if json {
            writeln!(out, "{}", render::json(message, &histories))?;
        } else {
            write!(out, "{}", render::text(message, &histories))?;
        }
    }
    out.flush()?;
    Ok(())
}

/// The queue as the helper lists it, narrowed by `select`.
fn chosen(config: &Config, select: &Selection) -> Result<Vec<QueuedMessage>> {
    let filter = filter(select)?;
    let answer = ask(config, request(Verb::List, Vec::new()), MAX_LISTING)?;
    if answer.reply.payload_cut {
        return Err(Failure::new(TEMPFAIL, "the queue listing was cut at its cap").into());
    }
    let now = crate::store::repo::now_ms() / 1000;
    let limit = select
        .limit
        .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let chosen = filter.choose(&answer.payload, now, limit);
    if chosen.skipped > 0 {
        eprintln!(
            "exim-pilot: {} lines of Exim's listing were not understood",
            chosen.skipped
        );
    }
    Ok(chosen.messages)
}

/// The command line's choices as a [`Filter`].
fn filter(select: &Selection) -> Result<Filter> {
    let pattern = |text: &Option<String>, flag: &str| -> Result<_> {
        text.as_deref()
            .map(Filter::pattern)
            .transpose()
            .map_err(|err| Failure::new(USAGE, format!("{flag}: {err}")).into())
    };
    let age = |text: &Option<String>, flag: &str| -> Result<Option<u64>> {
        text.as_deref()
            .map(|text| {
                humantime::parse_duration(text)
                    .map(|d| d.as_secs())
                    .map_err(|err| Failure::new(USAGE, format!("{flag} {text:?}: {err}")).into())
            })
            .transpose()
    };
    Ok(Filter {
        frozen: match (select.frozen, select.active) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        },
        bounces: select.bounces,
        sender: pattern(&select.sender, "--sender")?,
        recipient: pattern(&select.recipient, "--recipient")?,
        older_than: age(&select.older, "--older")?,
        younger_than: age(&select.younger, "--younger")?,
    })
}

/// A request of this command line, for `ids`.
fn request(verb: Verb, ids: Vec<String>) -> Request {
    Request {
        v: PROTOCOL_VERSION,
        request_id: format!(
            "cli-{}-{}",
            std::process::id(),
            crate::store::repo::now_ms()
        ),
        verb,
        ids,
        dry_run: false,
        reason: String::new(),
        selection: String::new(),
        origin: "cli".to_owned(),
        actor: Actor::default(),
    }
}

/// Asks the helper; a refusal is this command's failure, in its words.
fn ask(config: &Config, request: Request, max_payload: u64) -> Result<Answer> {
    let socket = client::socket_for(&config.queue, &request);
    let answer = client::ask(socket, &request, HELPER_TIMEOUT, max_payload).map_err(|err| {
        let status = match err {
            client::ClientError::Request(_) => USAGE,
            _ => TEMPFAIL,
        };
        Failure::new(status, err.to_string())
    })?;
    if !answer.reply.ok {
        return Err(Failure::new(USAGE, answer.reply.error.clone()).into());
    }
    Ok(answer)
}
