//! Reading the configuration file: TOML into [`RawConfig`], with every
//! wrong key reported, not only the first serde meets.

use std::path::Path;

use super::raw::RawConfig;
use super::{ConfigError, Problem};

pub(super) fn read_file(path: &Path) -> Result<RawConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    parse_toml(&text, Some(path))
}

pub(super) fn parse_toml(text: &str, source: Option<&Path>) -> Result<RawConfig, ConfigError> {
    toml::from_str(text).map_err(|err| {
        // serde stops at the first wrong key; an operator fixing a file
        // wants them all. Valid TOML is checked again key by key; with one
        // problem, the parser's own message (line, column) is the better.
        let problems = text
            .parse::<toml::Table>()
            .map(|table| key_problems(&table))
            .unwrap_or_default();
        if problems.len() > 1 {
            ConfigError::Invalid {
                path: source.map(Path::to_path_buf),
                problems,
            }
        } else {
            ConfigError::Syntax {
                path: source.map(Path::to_path_buf),
                message: err.to_string().trim_end().to_owned(),
            }
        }
    })
}

/// The message of a TOML error without the "in `section.key`" line that
/// follows it (the problem names the key already).
fn first_line(err: &toml::de::Error) -> String {
    err.to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .trim_end()
        .to_owned()
}

/// Each key of a valid TOML document that [`RawConfig`] rejects (a wrong
/// type, an unknown key or section), checked alone.
fn key_problems(table: &toml::Table) -> Vec<Problem> {
    let check = |section: &str, value: toml::Value| {
        let alone = toml::Table::from_iter([(section.to_owned(), value)]);
        toml::Value::Table(alone).try_into::<RawConfig>().err()
    };
    let mut problems = Vec::new();
    for (section, value) in table {
        match value {
            toml::Value::Table(keys) => {
                for (key, value) in keys {
                    let one =
                        toml::Value::Table(toml::Table::from_iter([(key.clone(), value.clone())]));
                    if let Some(err) = check(section, one) {
                        problems.push(Problem {
                            key: format!("[{section}] {key}"),
                            message: first_line(&err),
                        });
                    }
                }
            }
            other => {
                if let Some(err) = check(section, other.clone()) {
                    problems.push(Problem {
                        key: section.clone(),
                        message: first_line(&err),
                    });
                }
            }
        }
    }
    problems
}
