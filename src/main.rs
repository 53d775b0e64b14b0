//! The `exim-pilot` binary: parse the command line, run the command on a
//! tokio runtime, and turn the outcome into a sysexits status.

use std::process::ExitCode;

use clap::Parser;
use exim_pilot::cli::Cli;
use exim_pilot::exit;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("exim-pilot: cannot start the async runtime: {err}");
            return ExitCode::from(exit::SOFTWARE);
        }
    };
    match runtime.block_on(exim_pilot::commands::dispatch(cli)) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(err) => {
            eprintln!("exim-pilot: {err:#}");
            ExitCode::from(exit::status_for(&err))
        }
    }
}
