//! `exim-pilot queue freeze|thaw|remove|deliver|giveup`: on the ids named,
//! or on the messages a selection takes (then only within a cap, and never
//! on the whole queue by accident), after a confirmation unless `--yes`,
//! sent to the helper in chunks; each message's outcome printed. The
//! helper records each request before Exim runs.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use anyhow::Result;

use super::{ask, chosen, request};
use crate::cli::Act;
use crate::config::Config;
use crate::exit::{Failure, USAGE};
use crate::queue::outcome::Outcome;
use crate::queue::request::Verb;

/// Ids per request to the helper (Exim takes them in one call).
const CHUNK: usize = 100;

/// Runs `verb` on the messages `act` names.
pub fn run(config: &Config, verb: Verb, act: Act) -> Result<()> {
    if !config.queue.actions {
        return Err(Failure::new(
            USAGE,
            "queue actions are off: set [queue] actions = true (docs/queue.md)",
        )
        .into());
    }
    let cap = config.queue.bulk_limit;
    let (ids, selection) = if act.ids.is_empty() {
        let filter = super::filter(&act.select)?;
        if filter.is_everything() {
            return Err(Failure::new(
                USAGE,
                "name message ids, or choose messages (--frozen, --sender, --older...): \
                 an action never takes the whole queue by default",
            )
            .into());
        }
        let mut select = act.select.clone();
        // One more than the cap: to tell "exactly the cap" from "more".
        let wanted = select
            .limit
            .map_or(cap, |n| usize::try_from(n).unwrap_or(cap));
        select.limit = Some(u64::try_from(cap.min(wanted) + 1).unwrap_or(u64::MAX));
        let messages = chosen(config, &select)?;
        if messages.len() > cap.min(wanted) && act.select.limit.is_none() {
            return Err(Failure::new(
                USAGE,
                format!(
                    "more than {} messages match: narrow the choice, or take the first ones \
                     with --limit (at most [queue] bulk_limit = {cap})",
                    cap.min(wanted)
                ),
            )
            .into());
        }
        let ids: Vec<String> = messages
            .into_iter()
            .take(cap.min(wanted))
            .map(|m| m.id)
            .collect();
        (ids, filter.describe().to_string())
    } else {
        (act.ids.clone(), String::new())
    };
    if ids.is_empty() {
        println!("no message matches: nothing to do");
        return Ok(());
    }
    if ids.len() > cap {
        return Err(Failure::new(
            USAGE,
            format!(
                "{} messages named, over [queue] bulk_limit = {cap}",
                ids.len()
            ),
        )
        .into());
    }
    if !act.dry_run && !act.yes && !confirmed(verb, ids.len())? {
        return Err(Failure::new(USAGE, "not confirmed: nothing done").into());
    }
    let mut results: Vec<(String, Outcome)> = Vec::new();
    for chunk in ids.chunks(CHUNK) {
        let mut request = request(verb, chunk.to_vec());
        request.dry_run = act.dry_run;
        request.reason.clone_from(&act.reason);
        request.selection.clone_from(&selection);
        let answer = ask(config, request, 0)?;
        if act.dry_run && results.is_empty() {
            eprintln!("would run: {}", answer.reply.argv.join(" "));
        }
        results.extend(chunk.iter().cloned().zip(answer.reply.outcomes));
    }
    print(verb, &results, act.json)
}

/// Asks on the terminal; without one, `--yes` is needed.
fn confirmed(verb: Verb, count: usize) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::new(
            USAGE,
            format!(
                "{} {count} messages: add --yes to confirm (no terminal to ask on)",
                verb.name()
            ),
        )
        .into());
    }
    eprint!("{} {count} messages? [y/N] ", verb.name());
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

fn print(verb: Verb, results: &[(String, Outcome)], json: bool) -> Result<()> {
    let mut out = crate::output::stdout();
    if json {
        let rows: Vec<serde_json::Value> = results
            .iter()
            .map(|(id, outcome)| serde_json::json!({"id": id, "action": verb.name(), "outcome": outcome}))
            .collect();
        writeln!(out, "{}", serde_json::Value::Array(rows))?;
    } else {
        for (id, outcome) in results {
            writeln!(out, "{id} {}: {}", verb.name(), outcome.name())?;
        }
    }
    out.flush()?;
    let failed = results
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Refused | Outcome::Failed | Outcome::Unknown))
        .count();
    if failed > 0 {
        return Err(Failure::new(
            crate::exit::TEMPFAIL,
            format!("{failed} of {} messages were not acted on", results.len()),
        )
        .into());
    }
    Ok(())
}
