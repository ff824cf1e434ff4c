//! The due-work conformance suite on PostgreSQL: two stores connected separately to one
//! database, as two replicas would have.

mod support;

use std::sync::Arc;

use tocsin_store::due_conformance::DuePair;
use tocsin_store_postgres::PostgresStore;

use crate::support::TestDatabase;

async fn two_replicas() -> Option<DuePair> {
    let database = TestDatabase::create().await?;
    let first = PostgresStore::connect(database.url())
        .await
        .expect("first replica");
    let second = PostgresStore::connect(database.url())
        .await
        .expect("second replica");
    Some(DuePair {
        first: Arc::new(first),
        second: Arc::new(second),
        guard: Box::new(database),
    })
}

tocsin_store::due_work_suite!(two_replicas);
