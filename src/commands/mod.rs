//! One module per subcommand; [`dispatch`] loads the configuration and runs
//! the one the command line names.

mod check_config;
#[cfg(feature = "fleet")]
mod fleet;
mod generate;
mod ingest;
mod parse;
mod prune;
mod query;
mod queue;
#[cfg(feature = "web")]
mod serve;

use anyhow::{Context as _, Result};

use crate::cli::{Cli, Command};
use crate::config::Config;
use crate::exit::Failure;

/// Runs the command `cli` names; `run` takes the signal handlers `main`
/// installed before anything else. Errors carry their exit status (see
/// [`crate::exit::status_for`]).
pub async fn dispatch(cli: Cli, signals: Option<crate::daemon::CaughtSignals>) -> Result<()> {
    if let Some(done) = without_configuration(&cli.command) {
        return done;
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
        Command::Parse {
            json,
            show,
            unrecognised,
            files,
        } => parse::run(&config, &files, parse::Output::of(json, show, unrecognised)),
        command @ (Command::Trace { fleet: true, .. }
        | Command::Stats { fleet: true, .. }
        | Command::Fleet { .. }) => fleet_command(&config, command).await,
        Command::Trace {
            window,
            related,
            json,
            query: text,
            ..
        } => query::trace(&config, &window, related, json, &text),
        Command::Stats { window, json, .. } => query::stats(&config, &window, json),
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
        Command::Queue { action, .. } => queue::run(&config, action),
        Command::Audit {
            message,
            actor,
            since,
            json,
            ..
        } => query::audit(
            &config,
            message.as_deref(),
            actor.as_deref(),
            since.as_deref(),
            json,
        ),
        Command::Serve { hash_password, .. } => serve_command(&config, hash_password).await,
        Command::Generate { what } => generate::stdout(what),
    }
}

/// The commands that read no configuration, run; `None` for the others.
fn without_configuration(command: &Command) -> Option<Result<()>> {
    match command {
        // Packages are built where no configuration exists.
        Command::Generate { what } => Some(generate::stdout(*what)),
        // The hashes go into a configuration that may not load until they
        // are there (actions on, users not set yet).
        #[cfg(feature = "web")]
        Command::Serve {
            hash_password: true,
            ..
        } => Some(serve::hash_password()),
        _ => None,
    }
}

/// `trace --fleet`, `stats --fleet` and `fleet`: answered from the fleet's
/// PostgreSQL, or refused by a build without the `fleet` feature.
async fn fleet_command(config: &Config, command: Command) -> Result<()> {
    #[cfg(feature = "fleet")]
    return match command {
        Command::Trace {
            json, query: text, ..
        } => fleet::trace(config, json, &text).await,
        Command::Stats {
            window, json, host, ..
        } => fleet::stats(config, &window, host.as_deref(), json).await,
        Command::Fleet { action } => fleet::run(config, action).await,
        _ => Err(anyhow::anyhow!(
            "internal error: dispatch sent a command that is not the fleet's to it"
        )),
    };
    #[cfg(not(feature = "fleet"))]
    return not_built("fleet", (config, command));
}

/// `serve`: the web view, or refused by a build without the `web` feature.
async fn serve_command(config: &Config, hash_password: bool) -> Result<()> {
    #[cfg(feature = "web")]
    return match hash_password {
        true => serve::hash_password(),
        false => serve::run(config).await,
    };
    #[cfg(not(feature = "web"))]
    return not_built("web", (config, hash_password));
}

/// A command that needs a feature this build was made without: status 2
/// and how to build it in (`_args` are the command's, unused here).
#[cfg(not(all(feature = "web", feature = "fleet")))]
fn not_built<T>(feature: &str, _args: T) -> Result<()> {
    Err(Failure::new(
        crate::exit::USAGE,
        format!(
            "this exim-pilot was built without the `{feature}` feature: \
             build it with `cargo build --release --features {feature}`, or install the package"
        ),
    )
    .into())
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
