//! The command line of `exim-pilot queue`: see Exim's queue and act on it
//! through the queue helper.

use clap::{Args, Subcommand};

/// What `exim-pilot queue` does; listing when none is named.
#[derive(Debug, Clone, Subcommand)]
pub enum QueueAction {
    /// List queued messages, each waiting recipient with its last
    /// deferral reason from the database
    List {
        #[command(flatten)]
        /// Which messages.
        select: Selection,
        /// Print JSON (shaped like `postqueue -j`) instead of text
        #[arg(long)]
        json: bool,
    },
    /// Count queued messages
    Count,
    /// Per recipient domain: messages, volume, oldest and newest (as exiqsumm)
    Summary {
        #[command(flatten)]
        /// Which messages.
        select: Selection,
    },
    /// Show one queued message's headers, log or body (an admin's, audited)
    Show {
        /// The message's Exim id
        id: String,
        /// What to show (headers unless another is named)
        #[arg(long, group = "part")]
        headers: bool,
        /// Its message log
        #[arg(long, group = "part")]
        log: bool,
        /// Its body (audited)
        #[arg(long, group = "part")]
        body: bool,
    },
    /// Freeze messages
    Freeze(Act),
    /// Thaw frozen messages
    Thaw(Act),
    /// Remove messages from the queue, without a bounce
    Remove(Act),
    /// Try to deliver messages now
    Deliver(Act),
    /// Give up: bounce messages to their senders
    Giveup(Act),
}

/// Which queued messages (exiqgrep's choices).
#[derive(Debug, Clone, Default, Args)]
pub struct Selection {
    /// Frozen messages only
    #[arg(long, conflicts_with = "active")]
    pub frozen: bool,
    /// Messages not frozen only
    #[arg(long)]
    pub active: bool,
    /// Bounces only (sender <>)
    #[arg(long)]
    pub bounces: bool,
    /// Sender matching this regular expression (case-insensitive)
    #[arg(long, value_name = "RE")]
    pub sender: Option<String>,
    /// A recipient matching this regular expression (case-insensitive)
    #[arg(long, value_name = "RE")]
    pub recipient: Option<String>,
    /// Queued longer than this (30m, 2h, 3d)
    #[arg(long, value_name = "AGE")]
    pub older: Option<String>,
    /// Queued less long than this
    #[arg(long, value_name = "AGE")]
    pub younger: Option<String>,
    /// At most this many messages
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
}

/// The messages an action takes, and how.
#[derive(Debug, Clone, Args)]
pub struct Act {
    /// Exim ids; or choose with the options below
    #[arg(value_name = "ID")]
    pub ids: Vec<String>,
    #[command(flatten)]
    /// Which messages, when no id is named.
    pub select: Selection,
    /// Say what would be done, and do nothing (recorded all the same)
    #[arg(long)]
    pub dry_run: bool,
    /// Why, for the audit log
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub reason: String,
    /// Do not ask for confirmation
    #[arg(long)]
    pub yes: bool,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}
