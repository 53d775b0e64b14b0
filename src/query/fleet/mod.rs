//! Questions answered from the fleet's PostgreSQL, beside the same
//! questions answered from the local SQLite: `trace --fleet` (`trace.rs`)
//! and `stats --fleet` (`stats.rs`). Read-only, fixed SQL, every value
//! bound; the connection and its errors are the replicator's
//! (`crate::fleet::pg`).

pub mod stats;
pub mod trace;
