//! Shared helpers for the integration tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use exim_pilot::config::{Config, DatabaseConfig, Overrides};

/// The built `exim-pilot` binary.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_exim-pilot"))
}

/// Runs the binary with `args`, with no configuration file of the machine's
/// in play, and returns its output.
pub fn run(args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .output()
        .expect("run exim-pilot")
}

/// Exit status, stdout and stderr of a run, as text.
pub fn outcome(output: &Output) -> (i32, String, String) {
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The defaults, with the database at `dir/test.db` and short timeouts so
/// failing tests fail quickly.
pub fn database_config(dir: &Path) -> DatabaseConfig {
    let mut config = Config::from_toml("", None, &Overrides::default())
        .expect("defaults are valid")
        .database;
    config.path = dir.join("test.db");
    config.pool_wait_timeout = Duration::from_secs(5);
    config
}

/// A bundled fixture.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}
