//! `exim-pilot-queue-helper`: the queue helper, started by systemd for one
//! connection on its socket, as Exim's user (see `exim_pilot::queue::helper`).
//!
//! `exim-pilot-queue-helper --tier 1|2 [--config FILE]`. It reads only
//! `[queue]` of the configuration, and only from a file root owns and no
//! one else may write, or systemd's copy of one: the file says which Exim
//! to run and whether actions may run at all.

use std::io::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use exim_pilot::config::{Config, Overrides};

const DEFAULT_CONFIG: &str = "/etc/exim-pilot/exim-pilot.toml";

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .init();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            let _ = writeln!(std::io::stderr(), "exim-pilot-queue-helper: {message}");
            ExitCode::from(exim_pilot::exit::SOFTWARE)
        }
    }
}

fn run() -> Result<(), String> {
    let (tier, config_path) = arguments(std::env::args().skip(1))?;
    trusted(&config_path)?;
    let config =
        Config::load(Some(&config_path), &Overrides::default()).map_err(|err| err.to_string())?;
    exim_pilot::queue::helper::serve_connection(&config.queue, tier)
        .map_err(|err| format!("serving the connection: {err}"))
}

/// `--tier N` and `--config FILE`.
fn arguments(mut args: impl Iterator<Item = String>) -> Result<(u8, PathBuf), String> {
    let mut tier = None;
    let mut config = PathBuf::from(DEFAULT_CONFIG);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--tier" => {
                tier = match args.next().as_deref() {
                    Some("1") => Some(1),
                    Some("2") => Some(2),
                    other => return Err(format!("--tier takes 1 or 2, not {other:?}")),
                }
            }
            "--config" => {
                config = args
                    .next()
                    .map(PathBuf::from)
                    .ok_or("--config takes a file")?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok((tier.ok_or("--tier 1 or --tier 2 is required")?, config))
}

/// The configuration is trusted only when root owns it and no one else may
/// change it: it names the program the helper runs with Exim's privileges.
/// A copy systemd made from root's file (`LoadCredential=`, in the unit's
/// credentials directory) is trusted as the file it came from.
fn trusted(path: &Path) -> Result<(), String> {
    if let Some(credentials) = std::env::var_os("CREDENTIALS_DIRECTORY")
        && path.starts_with(credentials)
    {
        return Ok(());
    }
    let metadata = std::fs::metadata(path).map_err(|err| format!("{}: {err}", path.display()))?;
    if metadata.uid() != 0 || metadata.mode() & 0o022 != 0 {
        return Err(format!(
            "{} must be owned by root and writable by no one else (it is uid {}, mode {:o})",
            path.display(),
            metadata.uid(),
            metadata.mode() & 0o7777
        ));
    }
    Ok(())
}
