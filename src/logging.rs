//! The daemon's own diagnostics: tracing to journald, text or JSON on stderr,
//! with a level that SIGHUP can change.

use std::io::{IsTerminal, Write as _};

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
            tracing::warn!(error = %err, "cannot change the log level: {err}");
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
                tracing::warn!(error = %err, "journald is not reachable ({err}); logging to stderr");
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

/// Reports the error that ends the process with exit status `status`.
/// Under systemd it goes to the journal natively, at priority err, so that
/// `journalctl -u exim-pilot -p err` shows why a start failed: a bad
/// configuration fails before the configured logging exists, and a plain
/// line on stderr would reach the journal at priority info. Elsewhere it
/// is a line on stderr.
pub fn report_fatal(message: &str, status: u8) {
    if stderr_is_journal()
        && let Ok(journald) = tracing_journald::layer()
    {
        let subscriber = tracing_subscriber::registry().with(journald);
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(status, "{message}");
        });
        return;
    }
    // Written, not `eprintln!`: a closed stderr must not panic.
    let _ = writeln!(std::io::stderr(), "exim-pilot: {message}");
}

/// Logs a panic through tracing (so it reaches the journal) before the
/// default hook prints it; release builds then abort.
pub fn log_panics() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        tracing::error!(panic = %info, "exim-pilot panicked; aborting: {info}");
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

#[cfg(test)]
mod tests {
    /// journald's default view (`journalctl -u exim-pilot`) shows MESSAGE
    /// only; a record's fields are in addition, never the only place of
    /// what an operator needs. So every info, warning and error that has
    /// fields also puts values into its message text. Checked over the
    /// source, like a lint: a new record without them fails here.
    #[test]
    fn records_with_fields_say_their_values_in_the_message() {
        let mut offenders = Vec::new();
        let mut records = 0;
        for path in rust_files(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src")) {
            let source = std::fs::read_to_string(&path).unwrap();
            for macro_name in ["tracing::info!(", "tracing::warn!(", "tracing::error!("] {
                for (at, _) in source.match_indices(macro_name) {
                    records += 1;
                    let body = macro_body(&source[at + macro_name.len()..]);
                    let Some(quote) = body.find('"') else {
                        continue;
                    };
                    let has_fields = !body[..quote].trim().is_empty();
                    let message = &body[quote + 1..];
                    let message = &message[..message.find('"').unwrap_or(message.len())];
                    if has_fields && !message.contains('{') {
                        let line = source[..at].lines().count() + 1;
                        offenders.push(format!("{}:{line}: {message}", path.display()));
                    }
                }
            }
        }
        assert!(
            records > 40,
            "found only {records} records: is the scan broken?"
        );
        assert!(
            offenders.is_empty(),
            "records whose fields are missing from MESSAGE:\n{}",
            offenders.join("\n")
        );
    }

    /// The text up to the parenthesis that closes the macro call.
    fn macro_body(rest: &str) -> &str {
        let mut depth = 1;
        let mut in_string = false;
        let mut previous = ' ';
        for (index, c) in rest.char_indices() {
            match c {
                '"' if previous != '\\' => in_string = !in_string,
                '(' if !in_string => depth += 1,
                ')' if !in_string => {
                    depth -= 1;
                    if depth == 0 {
                        return &rest[..index];
                    }
                }
                _ => {}
            }
            previous = c;
        }
        rest
    }

    fn rust_files(directory: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(directory).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files.extend(rust_files(&path));
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
        files
    }
}
