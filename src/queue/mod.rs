//! Exim's queue: what is in it and acting on it, through a small
//! privileged helper with a fixed protocol. The pure parts: `listing/`
//! reads Exim's queue listing (`exim -bp`) into messages, `filter.rs` chooses
//! among them as exiqgrep does, `request.rs` is
//! the helper's protocol (the allow-listed verbs, checked ids, Exim's
//! fixed flags), `outcome.rs` reads what Exim said it did to each message,
//! `record.rs` is what the helper records of each action. The I/O shell:
//! `helper/`, the privileged process itself; `client.rs`, how the CLI and
//! the web view ask it.

pub mod client;
pub mod filter;
pub mod helper;
pub mod listing;
pub mod outcome;
pub mod record;
pub mod request;
