//! One module per subcommand; [`dispatch`] loads the configuration and runs
//! the one the command line names.

mod check_config;
mod ingest;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::config::Config;
use crate::exit::{Failure, SOFTWARE};

/// Runs the command `cli` names. Errors carry their exit status (see
/// [`crate::exit::status_for`]).
pub async fn dispatch(cli: Cli) -> Result<()> {
    let overrides = cli.command.overrides();
    let config = Config::load(cli.config.as_deref(), &overrides)?;
    crate::logging::init(&config.logging);
    match cli.command {
        Command::CheckConfig { .. } => check_config::run(&config),
        Command::Run { .. } => not_yet("run", 4),
        Command::Ingest { files, .. } => ingest::run(&config, &files).await,
        Command::Parse { .. } => not_yet("parse", 3),
        Command::Trace { .. } => not_yet("trace", 5),
        Command::Stats { .. } => not_yet("stats", 5),
    }
}

/// Subcommands whose issue has not landed yet say so and exit 70, rather
/// than pretend to work.
fn not_yet(command: &str, issue: u32) -> Result<()> {
    Err(Failure::new(
        SOFTWARE,
        format!("`exim-pilot {command}` is not yet implemented (issue #{issue})"),
    )
    .into())
}
