//! `exim-pilot check-config`: validate the configuration and print the
//! effective values (file, defaults and flags combined) as TOML.

use anyhow::Result;

use crate::config::Config;

/// Prints the effective configuration. Loading already validated it; an
/// invalid one never gets here (exit 78 with every problem listed).
pub fn run(config: &Config) -> Result<()> {
    match &config.source {
        Some(path) => println!("# effective configuration from {}", path.display()),
        None => println!("# effective configuration (built-in defaults, no file)"),
    }
    print!("{}", config.to_toml());
    Ok(())
}
