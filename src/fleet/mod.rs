//! The fleet: many mail hosts in one PostgreSQL.
//!
//! Each host keeps its own SQLite; with `[fleet]` configured the daemon
//! also ships what it commits to a central PostgreSQL, tagged with the
//! host's name, and `trace --fleet`, `stats --fleet` and the web view
//! answer from there (`crate::query::fleet`). This module is the
//! replication: `rows.rs` derives the fleet's rows from stored lines
//! (pure), `insert.rs` writes them, `pg.rs` connects, classifies errors and
//! migrates the schema (`migrations/`), `ship.rs` is the replicator with
//! its exactly-once high-water mark, and `partitions.rs` drops whole
//! months for retention; `progress.rs` is its state as the daemon sees it.
//! All but `progress.rs` need the `fleet` feature. docs/fleet.md has the
//! trust model and how to distribute the tables with Citus.

#[cfg(feature = "fleet")]
mod insert;
#[cfg(feature = "fleet")]
pub mod partitions;
#[cfg(feature = "fleet")]
pub mod pg;
pub mod progress;
#[cfg(feature = "fleet")]
mod rows;
#[cfg(feature = "fleet")]
pub mod ship;

#[cfg(feature = "fleet")]
pub use pg::FleetError;
pub use progress::{FleetProgress, FleetStatus};
#[cfg(feature = "fleet")]
pub use rows::{Month, month_of};
#[cfg(feature = "fleet")]
pub use ship::Replicator;
