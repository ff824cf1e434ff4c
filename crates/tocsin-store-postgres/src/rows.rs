//! The store's shared SQL (`tocsin_store::sql`) on a PostgreSQL connection.

use async_trait::async_trait;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{Arguments, PgConnection, Row};
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

/// A PostgreSQL row as `tocsin_store::decode` reads it.
pub(crate) struct Stored<R = PgRow>(pub(crate) R);

impl<R: std::ops::Deref<Target = PgRow>> StoredRow for Stored<R> {
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

/// A PostgreSQL connection (or transaction) running the shared SQL.
pub(crate) struct Postgres<'c>(pub(crate) &'c mut PgConnection);

fn arguments<'q>(args: &[Arg<'q>]) -> Result<PgArguments, StoreError> {
    let mut arguments = PgArguments::default();
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
impl Connection for Postgres<'_> {
    type Row = Stored<Box<PgRow>>;

    fn dialect(&self) -> Dialect {
        Dialect {
            lock_rows: " FOR UPDATE",
            skip_locked: " FOR UPDATE SKIP LOCKED",
            open_alerts_index: "",
            alert_event_chains: false,
        }
    }

    async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, StoreError> {
        let result = sqlx::query_with(sql, arguments(args)?)
            .execute(&mut *self.0)
            .await
            .map_err(db)?;
        Ok(result.rows_affected())
    }

    async fn fetch_all(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Vec<Self::Row>, StoreError> {
        let rows = sqlx::query_with(sql, arguments(args)?)
            .fetch_all(&mut *self.0)
            .await
            .map_err(db)?;
        Ok(rows.into_iter().map(|row| Stored(Box::new(row))).collect())
    }

    async fn fetch_optional(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Option<Self::Row>, StoreError> {
        let row = sqlx::query_with(sql, arguments(args)?)
            .fetch_optional(&mut *self.0)
            .await
            .map_err(db)?;
        Ok(row.map(|row| Stored(Box::new(row))))
    }
}
