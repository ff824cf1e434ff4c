//! What the parsers' tests share: a fixed time and one known integration key.

use tocsin_core::{ServiceId, Timestamp};

/// The integration key `lookup` knows.
pub(super) const KEY: &str = "0123456789abcdef0123456789abcdef";

/// Finds service `db` by [`KEY`], nothing else.
pub(super) fn lookup(key: &str) -> Option<ServiceId> {
    (key == KEY).then(|| ServiceId::new("db"))
}

/// The time every parsed event is received at.
pub(super) fn now() -> Timestamp {
    "2026-11-22T03:00:00Z".parse().unwrap()
}
