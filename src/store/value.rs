//! Reading one value: a query of one row and one column, its statement
//! cached on the connection and its error carrying the caller's context.

use deadpool_sqlite::rusqlite::types::FromSql;
use deadpool_sqlite::rusqlite::{Connection, Params};

use super::error::{Context, ResultExt, StoreError};

/// The first column of the one row `sql` returns with `params`.
pub fn query_value<T: FromSql>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    context: impl Fn() -> Context,
) -> Result<T, StoreError> {
    conn.prepare_cached(sql)
        .ctx(&context)?
        .query_row(params, |row| row.get(0))
        .ctx(context)
}
