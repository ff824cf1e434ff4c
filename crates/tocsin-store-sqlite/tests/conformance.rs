//! The shared conformance suite on SQLite, plus SQLite-specific checks.

use std::sync::Arc;

use tocsin_store::Store;
use tocsin_store_sqlite::SqliteStore;

/// A store in a temporary directory (under the target directory), removed after the case.
async fn fresh_store() -> Option<(Arc<dyn Store>, tempfile::TempDir)> {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let store = SqliteStore::open(dir.path()).await.expect("open store");
    Some((Arc::new(store), dir))
}

tocsin_store::conformance_suite!(fresh_store);
tocsin_store::override_suite!(fresh_store);
tocsin_store::status_suite!(fresh_store);
