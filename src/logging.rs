//! The daemon's own diagnostics: tracing to journald, text or JSON on stderr,
//! with a level that SIGHUP can change.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, LoggingConfig};

/// Changes the level of the installed subscriber.
pub struct LogControl {
    filter: Option<reload::Handle<EnvFilter, tracing_subscriber::Registry>>,
    /// `RUST_LOG` was set: it stays in force over reloads.
    env_override: bool,
}

impl LogControl {
    /// Applies `[diagnostics] level` (unless `RUST_LOG` overrides it).
    pub fn set_level(&self, level: &str) {
        if self.env_override {
            return;
        }
        let (Some(handle), Ok(filter)) = (&self.filter, EnvFilter::try_new(level)) else {
            return;
        };
        if let Err(err) = handle.reload(filter) {
            tracing::warn!(error = %err, "cannot change the log level");
        }
    }
}

/// Installs the global subscriber for `config`. `RUST_LOG`, when set, wins
/// over `[diagnostics] level` so an operator can raise verbosity for one run.
pub fn init(config: &LoggingConfig) -> LogControl {
    let env_filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|directive| EnvFilter::try_new(directive).ok());
    let env_override = env_filter.is_some();
    let filter = env_filter
        .or_else(|| EnvFilter::try_new(&config.level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let format = match config.format {
        LogFormat::Auto if stderr_is_journal() => LogFormat::Journald,
        LogFormat::Auto => LogFormat::Text,
        other => other,
    };
    let registry = tracing_subscriber::registry().with(filter);
    let installed = match format {
        LogFormat::Journald => match tracing_journald::layer() {
            Ok(journald) => registry.with(journald).try_init(),
            Err(err) => {
                let result = registry.with(text_layer()).try_init();
                tracing::warn!(error = %err, "journald is not reachable; logging to stderr");
                result
            }
        },
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Text | LogFormat::Auto => registry.with(text_layer()).try_init(),
    };
    LogControl {
        // A subscriber is already installed only in tests that call init
        // twice; the first one stays.
        filter: installed.is_ok().then_some(handle),
        env_override,
    }
}

/// Logs a panic through tracing (so it reaches the journal) before the
/// default hook prints it; release builds then abort.
pub fn log_panics() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        tracing::error!(panic = %info, "exim-pilot panicked; aborting");
        default_hook(info);
    }));
}

fn text_layer<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
}

/// systemd sets JOURNAL_STREAM to the device and inode of the journal
/// stream it connected stderr to; when they match stderr, we log natively.
fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Ok(value) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.split_once(':') else {
        return false;
    };
    let Ok(meta) = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .and_then(|file| file.metadata())
    else {
        return false;
    };
    dev.parse() == Ok(meta.dev()) && ino.parse() == Ok(meta.ino())
}
