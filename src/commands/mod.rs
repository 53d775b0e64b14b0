//! One module per subcommand; [`dispatch`] loads the configuration and runs
//! the one the command line names.

mod check_config;
mod fleet;
mod generate;
mod ingest;
mod parse;
mod prune;
mod query;
mod serve;

use anyhow::{Context as _, Result};

use crate::cli::{Cli, Command};
use crate::config::Config;
use crate::exit::Failure;

/// Runs the command `cli` names; `run` takes the signal handlers `main`
/// installed before anything else. Errors carry their exit status (see
/// [`crate::exit::status_for`]).
pub async fn dispatch(cli: Cli, signals: Option<crate::daemon::CaughtSignals>) -> Result<()> {
    if let Command::Generate { what } = cli.command {
        // Needs no configuration: packages are built where none exists.
        return generate::stdout(what);
    }
    let overrides = cli.command.overrides();
    let config = Config::load(cli.config.as_deref(), &overrides)?;
    let log = crate::logging::init(&config.logging);
    match cli.command {
        Command::CheckConfig { .. } => check_config::run(&config),
        Command::Run { .. } => {
            let signals = match signals {
                Some(signals) => signals,
                None => crate::daemon::catch_signals().context("installing signal handlers")?,
            };
            crate::daemon::run(signals, cli.config, overrides, config, log).await
        }
        Command::Ingest {
            journal: true,
            since,
            until,
            ..
        } => ingest::journal(&config, crate::source::journal::Window { since, until }).await,
        Command::Ingest { files, .. } => ingest::run(&config, &files).await,
        Command::Parse { json, show, files } => parse::run(&config, &files, json, show),
        Command::Trace {
            fleet: true,
            json,
            query: text,
            ..
        } => fleet::trace(&config, json, &text).await,
        Command::Trace {
            window,
            related,
            json,
            query: text,
            ..
        } => query::trace(&config, &window, related, json, &text),
        Command::Stats {
            fleet: true,
            window,
            json,
            host,
            ..
        } => fleet::stats(&config, &window, host.as_deref(), json).await,
        Command::Stats { window, json, .. } => query::stats(&config, &window, json),
        Command::Fleet { action } => fleet::run(&config, action).await,
        Command::Prune { .. } => prune::run(&config).await,
        Command::Lines {
            window,
            kind,
            grep,
            source,
            json,
            ..
        } => query::lines(
            &config,
            &window,
            query::LinesArgs {
                kind: kind.as_deref(),
                grep: grep.as_deref(),
                source,
                json,
            },
        ),
        Command::Stuck {
            older_than, json, ..
        } => query::stuck(&config, &older_than, json),
        Command::Metrics { .. } => query::metrics(&config),
        Command::Serve {
            hash_password: true,
            ..
        } => serve::hash_password(),
        Command::Serve { .. } => serve::run(&config).await,
        Command::Generate { what } => generate::stdout(what),
    }
}

/// Opens a log file named on the command line. Any reason it cannot be
/// read (missing, a directory, a FIFO, a symlink loop, no permission) is
/// a problem with the input: status 2, naming the file.
fn open_input(path: &std::path::Path, offset: u64) -> Result<crate::source::file::input::LogInput> {
    crate::source::file::input::LogInput::open(path, offset)
        .map_err(|err| input_error(path, &err).into())
}

/// A file named on the command line that cannot be read, as status 2.
fn input_error(path: &std::path::Path, err: &std::io::Error) -> Failure {
    let reason = match err.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_owned(),
        _ => err.to_string(),
    };
    Failure::new(crate::exit::USAGE, format!("{}: {reason}", path.display()))
}
