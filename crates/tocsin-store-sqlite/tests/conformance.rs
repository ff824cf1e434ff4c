//! The shared conformance suite on SQLite, plus SQLite-specific checks.

use std::sync::Arc;

use tocsin_store::Store;
use tocsin_store_sqlite::SqliteStore;

async fn fresh_store() -> Option<Arc<dyn Store>> {
    // Under the target directory, so `cargo clean` removes what tests leave behind.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temp dir")
        .keep();
    let store = SqliteStore::open(&dir).await.expect("open store");
    Some(Arc::new(store))
}

tocsin_store::conformance_suite!(fresh_store);
