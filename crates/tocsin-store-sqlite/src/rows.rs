//! The store's shared SQL (`tocsin_store::sql`) on a SQLite connection.

use async_trait::async_trait;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Arguments, Row, SqliteConnection};
use tocsin_core::Timestamp;
use tocsin_store::decode::StoredRow;
use tocsin_store::sql::{Arg, Connection, Dialect};
use tocsin_store::StoreError;

pub(crate) fn db(error: sqlx::Error) -> StoreError {
    StoreError::database(error)
}

pub(crate) fn micros(at: Timestamp) -> i64 {
    at.as_microsecond()
}

/// A SQLite row as `tocsin_store::decode` reads it.
pub(crate) struct Stored(pub(crate) SqliteRow);

impl StoredRow for Stored {
    fn text(&self, column: &str) -> Result<String, StoreError> {
        self.0.try_get(column).map_err(db)
    }

    fn optional_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        self.0.try_get(column).map_err(db)
    }

    fn integer(&self, column: &str) -> Result<i64, StoreError> {
        self.0.try_get(column).map_err(db)
    }

    fn optional_integer(&self, column: &str) -> Result<Option<i64>, StoreError> {
        self.0.try_get(column).map_err(db)
    }
}

/// A SQLite connection (or transaction) running the shared SQL.
pub(crate) struct Sqlite<'c>(pub(crate) &'c mut SqliteConnection);

fn arguments<'q>(args: &[Arg<'q>]) -> Result<SqliteArguments<'q>, StoreError> {
    let mut arguments = SqliteArguments::default();
    for arg in args {
        match *arg {
            Arg::Integer(value) => arguments.add(value),
            Arg::OptionalInteger(value) => arguments.add(value),
            Arg::Text(value) => arguments.add(value),
            Arg::OptionalText(value) => arguments.add(value),
        }
        .map_err(StoreError::Database)?;
    }
    Ok(arguments)
}

#[async_trait]
impl Connection for Sqlite<'_> {
    type Row = Stored;

    fn dialect(&self) -> Dialect {
        Dialect {
            lock_rows: "",
            skip_locked: "",
            open_alerts_index: " INDEXED BY alerts_one_open_per_key",
            alert_event_chains: true,
        }
    }

    async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, StoreError> {
        let result = sqlx::query_with(sql, arguments(args)?)
            .execute(&mut *self.0)
            .await
            .map_err(db)?;
        Ok(result.rows_affected())
    }

    async fn fetch_all(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Stored>, StoreError> {
        let rows = sqlx::query_with(sql, arguments(args)?)
            .fetch_all(&mut *self.0)
            .await
            .map_err(db)?;
        Ok(rows.into_iter().map(Stored).collect())
    }

    async fn fetch_optional(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Option<Stored>, StoreError> {
        let row = sqlx::query_with(sql, arguments(args)?)
            .fetch_optional(&mut *self.0)
            .await
            .map_err(db)?;
        Ok(row.map(Stored))
    }
}
