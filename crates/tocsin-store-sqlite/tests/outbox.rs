//! The outbox conformance suite on SQLite: two stores opened separately on one file, as two
//! processes sharing a data directory would have.

use std::sync::Arc;

use tocsin_store::outbox_conformance::OutboxPair;
use tocsin_store_sqlite::SqliteStore;

async fn two_stores_on_one_file() -> Option<OutboxPair> {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let path = dir.path().join(tocsin_store_sqlite::DATABASE_FILE);
    let first = SqliteStore::open_file(&path).await.expect("first store");
    let second = SqliteStore::open_file(&path).await.expect("second store");
    Some(OutboxPair {
        first: Arc::new(first),
        second: Arc::new(second),
        guard: Box::new(dir),
    })
}

tocsin_store::outbox_suite!(two_stores_on_one_file);
