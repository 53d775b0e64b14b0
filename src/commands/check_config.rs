//! `exim-pilot check-config`: validate the configuration and print the
//! effective values (file, defaults and flags combined) as TOML.

use std::io::Write as _;

use anyhow::Result;

use crate::config::Config;

/// Prints the effective configuration. Loading already validated it; an
/// invalid one never gets here (exit 78 with every problem listed). The
/// files `[fleet]` names are read as `run` reads them at start, so a
/// configuration this passes does not stop the daemon.
pub fn run(config: &Config) -> Result<()> {
    #[cfg(feature = "fleet")]
    if let Some(fleet) = &config.fleet {
        crate::fleet::pg::pool(fleet)
            .map_err(|err| crate::exit::Failure::new(crate::exit::CONFIG, err.to_string()))?;
    }
    let mut out = crate::output::stdout();
    match &config.source {
        Some(path) => writeln!(out, "# effective configuration from {}", path.display())?,
        None => writeln!(
            out,
            "# effective configuration (built-in defaults, no file)"
        )?,
    }
    write!(out, "{}", config.to_toml())?;
    out.flush()?;
    Ok(())
}
