//! The outbox conformance suite on PostgreSQL: two replicas on one database.

mod support;

use std::sync::Arc;

use tocsin_store::outbox_conformance::OutboxPair;
use tocsin_store_postgres::PostgresStore;

use crate::support::TestDatabase;

async fn two_replicas() -> Option<OutboxPair> {
    let database = TestDatabase::create().await?;
    let first = PostgresStore::connect(database.url())
        .await
        .expect("first replica");
    let second = PostgresStore::connect(database.url())
        .await
        .expect("second replica");
    Some(OutboxPair {
        first: Arc::new(first),
        second: Arc::new(second),
        guard: Box::new(database),
    })
}

tocsin_store::outbox_suite!(two_replicas);
