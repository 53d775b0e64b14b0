//! The command line, declared with clap's derive API. Parsing only; the
//! commands themselves live in the `commands` module, which uses these.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::Overrides;

mod queue;
pub use queue::{Act, QueueAction, Selection};

/// Tails Exim's main log into SQLite and answers what happened to every
/// message.
///
/// The run command is the daemon: it follows the main log through rotations
/// and restarts and stores every line, message, recipient, delivery attempt,
/// deferral, bounce, rejection and frozen message in an SQLite database. The
/// other commands answer from that database (trace, stats, stuck), load old
/// logs (ingest), or work on log files alone (parse).
#[derive(Debug, Parser)]
#[command(name = "exim-pilot", version, about, max_term_width = 100)]
pub struct Cli {
    /// Configuration file [default: /etc/exim-pilot/exim-pilot.toml when it exists]
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    /// The subcommand to run.
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: tail the main log and keep the database current
    Run {
        #[command(flatten)]
        /// The log to tail.
        log: LogArg,
        #[command(flatten)]
        /// The database to write.
        db: DbArg,
    },
    /// Read whole log files (plain or .gz) into the database, then exit
    Ingest {
        #[command(flatten)]
        /// The database to write.
        db: DbArg,
        /// Read Exim's entries from the systemd journal instead of files
        /// (where a stored position exists, from there on)
        #[arg(long, conflicts_with = "files")]
        journal: bool,
        /// With --journal: from this time on (journalctl's --since)
        #[arg(long, requires = "journal", value_name = "TIME")]
        since: Option<String>,
        /// With --journal: up to this time (journalctl's --until)
        #[arg(long, requires = "journal", value_name = "TIME")]
        until: Option<String>,
        /// Exim main log files, oldest first
        #[arg(required_unless_present = "journal", value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Parse log files and report what the parser recognised (no database)
    Parse {
        /// Print one JSON object instead of a report
        #[arg(long, conflicts_with = "show")]
        json: bool,
        /// Print every parsed entry in compact form instead of a report
        #[arg(long)]
        show: bool,
        /// Print only the shapes of the lines not understood, most frequent
        /// first, with a count and an example each (to report a format)
        #[arg(long, conflicts_with_all = ["show", "json"])]
        unrecognised: bool,
        /// Exim main log files (plain or .gz)
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Show every line about a message, an address or an IP, grouped by message
    Trace {
        #[command(flatten)]
        /// The database to read.
        db: DbArg,
        #[command(flatten)]
        /// Which messages, by time.
        window: WindowArgs,
        /// Also show bounces of the messages found, and what they bounced
        #[arg(long, conflicts_with = "fleet")]
        related: bool,
        /// Ask the fleet's PostgreSQL ([fleet] postgres) instead of this
        /// host's database: the message's whole journey across hosts,
        /// joined by the receiving Exim's id in C= and by Message-ID
        #[arg(long)]
        fleet: bool,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
        /// An Exim message id, an email address, a Message-ID header, an IP
        /// address, or a mail domain (searched within at most 31 days; the
        /// last week by default)
        #[arg(value_name = "ID|ADDRESS|IP")]
        query: String,
    },
    /// Summarise traffic like eximstats, from the database
    Stats {
        #[command(flatten)]
        /// The database to read.
        db: DbArg,
        #[command(flatten)]
        /// Which lines are counted, by time.
        window: WindowArgs,
        /// Print one JSON object instead of a report
        #[arg(long)]
        json: bool,
        /// Count every host in the fleet's PostgreSQL ([fleet] postgres):
        /// the figures that add up, per host and in total
        #[arg(long)]
        fleet: bool,
        /// With --fleet: only this host
        #[arg(long, requires = "fleet", value_name = "HOST")]
        host: Option<String>,
    },
    /// List recipients still waiting (pending or deferred), oldest first
    Stuck {
        #[command(flatten)]
        /// The database to read.
        db: DbArg,
        /// Only those waiting longer than this ("4h", "2d")
        #[arg(long, value_name = "AGE", default_value = "4h")]
        older_than: String,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Print the metrics for Prometheus once, read from the database, in
    /// the text format the daemon serves on [metrics] listen and writes
    /// to [metrics] textfile (without the daemon's own lag and health)
    Metrics {
        #[command(flatten)]
        /// The database to read.
        db: DbArg,
    },
    /// Serve the read-only web view: search, messages, mail flow, stuck
    /// recipients, the log and health, with a JSON API under /api/v1/
    Serve {
        /// Address and port to listen on (overrides [web] listen; default
        /// 127.0.0.1:8025, loopback only)
        #[arg(long, value_name = "ADDRESS:PORT")]
        listen: Option<String>,
        /// Read a password from standard input and print its argon2 hash
        /// for [[web.users]] password_hash, instead of serving
        #[arg(long)]
        hash_password: bool,
        #[command(flatten)]
        /// The database to read.
        db: DbArg,
    },
    /// Print stored raw lines byte for byte, in log order: exigrep from the
    /// database, or a lost day's log recovered
    Lines {
        #[command(flatten)]
        /// The database to read.
        db: DbArg,
        #[command(flatten)]
        /// Which lines, by time.
        window: WindowArgs,
        /// Only lines of this kind (as `parse` names them: reception, delivery, ...)
        #[arg(long, value_name = "KIND")]
        kind: Option<String>,
        /// Only lines matching this regular expression
        #[arg(long, value_name = "REGEX")]
        grep: Option<String>,
        /// Only lines read from this path (the live log or a file given to ingest)
        #[arg(long, value_name = "PATH")]
        source: Option<String>,
        /// Print one JSON object per line: offset, source, time, kind, message id, line
        #[arg(long)]
        json: bool,
    },
    /// Delete rows older than [retention] allows, now (the daemon does it daily)
    Prune {
        #[command(flatten)]
        /// The database to prune.
        db: DbArg,
    },
    /// The audit log: what the program did on its own, and what people did
    /// to Exim's queue (who, from where, what came of it), newest first
    Audit {
        #[command(flatten)]
        /// The database to read.
        db: DbArg,
        /// Only records about this message (an Exim id)
        #[arg(long, value_name = "ID")]
        message: Option<String>,
        /// Only records by this actor
        #[arg(long, value_name = "USER")]
        actor: Option<String>,
        /// Only records younger than this age ("2h", "7d")
        #[arg(long, value_name = "AGE")]
        since: Option<String>,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// See Exim's queue and act on it, through the queue helper ([queue])
    Queue {
        #[command(subcommand)]
        /// What to do (list when none is named).
        action: Option<QueueAction>,
        #[command(flatten)]
        /// The database the deferral reasons come from.
        db: DbArg,
    },
    /// Look after the fleet's PostgreSQL ([fleet] postgres)
    Fleet {
        #[command(subcommand)]
        /// What to do.
        action: FleetAction,
    },
    /// Check the configuration and print the effective values
    CheckConfig {
        #[command(flatten)]
        /// The log the file would name.
        log: LogArg,
        #[command(flatten)]
        /// The database the file would name.
        db: DbArg,
    },
    /// Write the man page or a shell completion script to standard output
    #[command(hide = true)]
    Generate {
        #[arg(value_enum)]
        /// What to render.
        what: Generated,
    },
}

/// `exim-pilot fleet ...`
#[derive(Debug, Subcommand)]
pub enum FleetAction {
    /// Create or upgrade the fleet's schema (as the tables' owner)
    Migrate,
    /// Show each host's replication: its high-water mark, lines shipped
    /// and when it last shipped
    Status {
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Drop the monthly partitions older than the months kept (as the
    /// tables' owner)
    Prune {
        /// Months to keep, the current one included
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1200))]
        keep_months: u32,
    },
}

/// What `exim-pilot generate` writes.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Generated {
    /// exim-pilot(8), in roff
    Man,
    /// Completions for bash
    Bash,
    /// Completions for zsh
    Zsh,
    /// Completions for fish
    Fish,
}

/// `--since` and `--until`: dates, dates with times, or ages.
#[derive(Debug, Default, Clone, Args)]
pub struct WindowArgs {
    /// Start: 2024-03-01, "2024-03-01 14:00", 2024-03-01T14:00:00Z (ISO 8601, with an
    /// offset or not), today, yesterday, or an age such as 2h (before the newest line)
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// End, in the same forms
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
}

/// `--log PATH`
#[derive(Debug, Default, Clone, Args)]
pub struct LogArg {
    /// Exim main log to tail (overrides [log] path)
    #[arg(long = "log", value_name = "PATH", conflicts_with = "journal")]
    pub log_path: Option<PathBuf>,
    /// Read Exim's main log from the systemd journal (Exim with
    /// log_file_path = syslog; overrides [log] source)
    #[arg(long)]
    pub journal: bool,
}

/// `--db PATH`
#[derive(Debug, Default, Clone, Args)]
pub struct DbArg {
    /// SQLite database file (overrides [database] path)
    #[arg(long = "db", value_name = "PATH")]
    pub db_path: Option<PathBuf>,
}

impl Command {
    /// The configuration overrides this command's flags carry.
    pub fn overrides(&self) -> Overrides {
        let (log, journal, db) = match self {
            Command::Run { log, db } | Command::CheckConfig { log, db } => {
                (log.log_path.clone(), log.journal, db.db_path.clone())
            }
            Command::Ingest { db, journal, .. } => (None, *journal, db.db_path.clone()),
            Command::Trace { db, .. }
            | Command::Stats { db, .. }
            | Command::Stuck { db, .. }
            | Command::Metrics { db }
            | Command::Serve { db, .. }
            | Command::Lines { db, .. }
            | Command::Prune { db }
            | Command::Queue { db, .. }
            | Command::Audit { db, .. } => (None, false, db.db_path.clone()),
            Command::Parse { .. } | Command::Generate { .. } | Command::Fleet { .. } => {
                (None, false, None)
            }
        };
        Overrides {
            log_path: log,
            journal,
            database_path: db,
            web_listen: match self {
                Command::Serve { listen, .. } => listen.clone(),
                _ => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn db_flag_is_accepted_after_the_subcommand() {
        let cli = Cli::try_parse_from(["exim-pilot", "stats", "--db", "x.db", "--json"]).unwrap();
        assert_eq!(
            cli.command.overrides().database_path,
            Some(PathBuf::from("x.db"))
        );
        let cli = Cli::try_parse_from(["exim-pilot", "ingest", "--db", "x.db", "mainlog"]).unwrap();
        assert_eq!(
            cli.command.overrides().database_path,
            Some(PathBuf::from("x.db"))
        );
    }

    #[test]
    fn config_flag_is_global() {
        let cli =
            Cli::try_parse_from(["exim-pilot", "check-config", "--config", "a.toml"]).unwrap();
        assert_eq!(cli.config, Some(PathBuf::from("a.toml")));
    }
}
