//! `exim-pilot queue`: Exim's queue through the queue helper (this process
//! never runs Exim): list it with each waiting recipient's history from the
//! database, count it, sum it up per domain, show one message; actions in
//! `act.rs`.

mod act;
mod render;

use std::io::Write;
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
        QueueAction::Summary { select } => summary(config, &select),
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

/// Messages `queue list` joins with the log's history and prints at a
/// time: a queue of any length costs its listing and one page.
const LIST_PAGE: usize = 1000;

/// `queue list`: the messages chosen, as text or JSON lines, a page at a
/// time.
fn list(config: &Config, select: &Selection, json: bool) -> Result<()> {
    let (filter, answer) = listed(config, select)?;
    let conn = match crate::query::open(&config.database.path) {
        Ok(conn) => Some(conn),
        // The listing stands without the log's history.
        Err(err) => {
            eprintln!("exim-pilot: no deferral reasons ({err})");
            None
        }
    };
    let mut out = crate::output::stdout();
    let mut page = Vec::with_capacity(LIST_PAGE);
    let mut left = limit(select);
    let mut failed = None;
    let print = |page: &mut Vec<QueuedMessage>, out: &mut dyn Write| -> Result<()> {
        let histories = match &conn {
            Some(conn) => {
                let ids: Vec<&str> = page.iter().map(|m| m.id.as_str()).collect();
                crate::query::queue::recipient_histories(conn, &ids)?
            }
            None => Default::default(),
        };
        for message in page.drain(..) {
            if json {
                writeln!(out, "{}", render::json(&message, &histories))?;
            } else {
                write!(out, "{}", render::text(&message, &histories))?;
            }
        }
        Ok(())
    };
    let now = crate::store::repo::now_ms() / 1000;
    let skipped = filter.each_taken(&answer.payload, now, |message| {
        if left == 0 || failed.is_some() {
            return;
        }
        left -= 1;
        page.push(message);
        if page.len() == LIST_PAGE
            && let Err(err) = print(&mut page, &mut out)
        {
            failed = Some(err);
        }
    });
    if let Some(err) = failed {
        return Err(err);
    }
    print(&mut page, &mut out)?;
    out.flush()?;
    said_skipped(skipped);
    Ok(())
}

/// `queue summary`: the chosen messages summed per domain, a message at a
/// time.
fn summary(config: &Config, select: &Selection) -> Result<()> {
    let (filter, answer) = listed(config, select)?;
    let now = crate::store::repo::now_ms() / 1000;
    let mut sum = render::Summary::default();
    let mut left = limit(select);
    let skipped = filter.each_taken(&answer.payload, now, |message| {
        if left > 0 {
            left -= 1;
            sum.add(&message, now);
        }
    });
    said_skipped(skipped);
    let mut out = crate::output::stdout();
    write!(out, "{}", sum.render())?;
    out.flush()?;
    Ok(())
}

/// The queue as the helper lists it, narrowed by `select`.
fn chosen(config: &Config, select: &Selection) -> Result<Vec<QueuedMessage>> {
    let (filter, answer) = listed(config, select)?;
    let now = crate::store::repo::now_ms() / 1000;
    let chosen = filter.choose(&answer.payload, now, limit(select));
    said_skipped(chosen.skipped);
    Ok(chosen.messages)
}

/// The filter `select` makes, and the helper's listing of the queue.
fn listed(config: &Config, select: &Selection) -> Result<(Filter, Answer)> {
    let filter = filter(select)?;
    let answer = ask(config, request(Verb::List, Vec::new()), MAX_LISTING)?;
    if answer.reply.payload_cut {
        return Err(Failure::new(TEMPFAIL, "the queue listing was cut at its cap").into());
    }
    Ok((filter, answer))
}

/// `--limit`, or no limit.
fn limit(select: &Selection) -> usize {
    select
        .limit
        .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX))
}

/// Says how many lines of Exim's listing were not understood, if any.
fn said_skipped(skipped: usize) {
    if skipped > 0 {
        eprintln!("exim-pilot: {skipped} lines of Exim's listing were not understood");
    }
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
