//! The SQLite store: opening, configuring and migrating the database in one
//! place, the connection pool, transactions, classified errors, and the
//! repository functions that read and write rows.
//!
//! Only the writer task writes through this module in the daemon; query
//! commands read. The schema, its migrations and the SQL of sources, read
//! positions, raw lines, counts and audit records live here; the model
//! (`crate::model`) and the queries (`crate::query`) hold the SQL of their
//! own tables and questions, as fixed statements with bound parameters.

pub mod chunk;
mod error;
mod files;
mod handle;
pub mod indexes;
mod migrations;
mod open;
mod pool;
pub mod repo;
mod retention;
mod retry;
mod texts;
mod tx;
mod value;

pub use error::{ConstraintKind, Context, ErrorClass, ResultExt, StoreError};
pub use files::deleted_while_open;
pub use handle::StoreHandle;
pub use migrations::{
    MIGRATIONS, SchemaState, current_version, latest_version, migrate, refusal, schema_state,
};
pub use open::{DATABASE_FILE_MODE, ReadOnly, open_connection, open_read_only};
pub use pool::{PoolStats, Store, connect};
pub use retention::{Pruned, ROWS_PER_PRUNE_STEP, RetentionPolicy};
pub use retry::{retry, retry_logged};
pub use texts::{
    TextIds, insert as insert_texts, next_stored_id as next_text_id, sweeps as texts_sweeps,
    text_hash,
};
pub use tx::{TxError, in_transaction};
pub use value::query_value;

/// A migrated database in memory, for tests.
#[cfg(test)]
pub(crate) fn migrated_in_memory() -> deadpool_sqlite::rusqlite::Connection {
    let mut conn = deadpool_sqlite::rusqlite::Connection::open_in_memory().unwrap();
    migrate(&mut conn).unwrap();
    conn
}
