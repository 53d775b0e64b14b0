//! `trace`, `stats` and `stuck`: open the database read-only, ask, print.

use std::io::{IsTerminal as _, Write as _};

use anyhow::Result;

use crate::cli::WindowArgs;
use crate::config::Config;
use crate::exit::{Failure, USAGE};
use crate::query::{self, QueryError, Window, stats, stuck, trace};

/// Human output as a terminal should get it: control characters from log
/// lines made visible. Piped output stays byte-for-byte what was logged.
fn for_terminal(text: &str) -> std::borrow::Cow<'_, str> {
    if std::io::stdout().is_terminal() {
        query::escape_controls(text)
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

fn usage(err: QueryError) -> anyhow::Error {
    match err {
        QueryError::BadArgument(message) => Failure::new(USAGE, message).into(),
        QueryError::Store(err) => err.into(),
        // Kept as the I/O error, so that a closed pipe ends quietly.
        QueryError::Output(err) => err.into(),
    }
}

/// `exim-pilot lines`: raw lines as stored (bytes, not text: piped, they
/// are the log itself), or one JSON object per line.
pub fn lines(config: &Config, window: &WindowArgs, args: LinesArgs<'_>) -> Result<()> {
    let json = args.json;
    let conn = query::open(&config.database.path).map_err(usage)?;
    let window =
        Window::parse(&conn, window.since.as_deref(), window.until.as_deref()).map_err(usage)?;
    let filter = query::lines::LineFilter::parse(window, args.kind, args.grep, args.source)
        .map_err(usage)?;
    let mut out = crate::output::stdout();
    let terminal = std::io::stdout().is_terminal();
    query::lines::each(&conn, &filter, &mut |line| {
        if json {
            serde_json::to_writer(&mut out, line)?;
            out.write_all(b"\n")
        } else if terminal {
            let text = String::from_utf8_lossy(line.bytes);
            writeln!(out, "{}", query::escape_controls(&text))
        } else {
            out.write_all(line.bytes)?;
            if line.newline {
                out.write_all(b"\n")?;
            }
            Ok(())
        }
    })
    .map_err(usage)?;
    out.flush()?;
    Ok(())
}

/// The filters of `lines`, as given on the command line.
pub struct LinesArgs<'a> {
    pub kind: Option<&'a str>,
    pub grep: Option<&'a str>,
    pub source: Option<String>,
    pub json: bool,
}

/// `exim-pilot trace`
pub fn trace(
    config: &Config,
    window: &WindowArgs,
    related: bool,
    json: bool,
    query_text: &str,
) -> Result<()> {
    let target = trace::Target::parse(query_text).map_err(usage)?;
    let conn = query::open(&config.database.path).map_err(usage)?;
    let window =
        Window::parse(&conn, window.since.as_deref(), window.until.as_deref()).map_err(usage)?;
    // One process per question: every line the messages have is printed.
    let messages = trace::find(&conn, &target, window, related, usize::MAX).map_err(usage)?;
    if messages.is_empty() {
        return Err(Failure::new(
            USAGE,
            format!("no message in the database matches {query_text:?}"),
        )
        .into());
    }
    let mut out = crate::output::stdout();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&messages)?)?;
    } else {
        write!(out, "{}", for_terminal(&trace::render(&messages)))?;
    }
    out.flush()?;
    Ok(())
}

/// `exim-pilot stats`
pub fn stats(config: &Config, window: &WindowArgs, json: bool) -> Result<()> {
    let conn = query::open(&config.database.path).map_err(usage)?;
    let window =
        Window::parse(&conn, window.since.as_deref(), window.until.as_deref()).map_err(usage)?;
    let report = stats::compute(&conn, window).map_err(usage)?;
    let mut out = crate::output::stdout();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        write!(out, "{}", for_terminal(&stats::render(&report)))?;
    }
    out.flush()?;
    Ok(())
}

/// `exim-pilot stuck`
/// `exim-pilot metrics`: the exposition once, from the database.
pub fn metrics(config: &Config) -> Result<()> {
    let conn = query::open(&config.database.path).map_err(usage)?;
    let families = query::metrics::collect(
        &conn,
        &config.database.path,
        config.metrics.stuck_after,
        &query::metrics::Live::default(),
    )
    .map_err(|err| usage(err.into()))?;
    let mut out = crate::output::stdout();
    write!(out, "{}", query::metrics::encode(&families))?;
    out.flush()?;
    Ok(())
}

pub fn stuck(config: &Config, older_than: &str, json: bool) -> Result<()> {
    let age = humantime::parse_duration(older_than.trim()).map_err(|err| {
        Failure::new(
            USAGE,
            format!("--older-than: not an age such as 4h or 2d ({err}), got {older_than:?}"),
        )
    })?;
    let conn = query::open(&config.database.path).map_err(usage)?;
    let report =
        stuck::find(&conn, i64::try_from(age.as_millis()).unwrap_or(i64::MAX)).map_err(usage)?;
    let mut out = crate::output::stdout();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        write!(out, "{}", for_terminal(&stuck::render(&report)))?;
    }
    out.flush()?;
    Ok(())
}

/// `exim-pilot audit`: the audit log, newest first.
pub fn audit(
    config: &Config,
    message: Option<&str>,
    actor: Option<&str>,
    since: Option<&str>,
    json: bool,
) -> Result<()> {
    let since_ms = since
        .map(|age| {
            humantime::parse_duration(age)
                .map(|age| {
                    crate::store::repo::now_ms()
                        - i64::try_from(age.as_millis()).unwrap_or(i64::MAX)
                })
                .map_err(|err| {
                    Failure::new(
                        USAGE,
                        format!("--since {age:?}: {err} (an age such as 2h or 7d)"),
                    )
                })
        })
        .transpose()?;
    let conn = query::open(&config.database.path).map_err(usage)?;
    let filter = query::audit::AuditFilter {
        message_id: message,
        actor,
        since_ms,
    };
    let rows = query::audit::find(&conn, &filter).map_err(usage)?;
    let mut out = crate::output::stdout();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
    } else {
        write!(out, "{}", for_terminal(&query::audit::render(&rows)))?;
    }
    out.flush()?;
    Ok(())
}
