//! Durable due work: everything that must happen later is a row with a due time, claimed with a
//! lease so that one process, or many replicas on one database, run each item once.
//!
//! The life of an item:
//!
//! - [`DueWorkStore::schedule`] inserts it, or — scheduled again under the same (kind, key) —
//!   keeps or moves its due time as [`WhenScheduled`] says. Scheduling is idempotent.
//! - [`DueWorkStore::claim`] hands due items whose lease is free or expired to one claimer and
//!   leases them to it until a given time. Two claimers never hold the same item at once.
//! - The claimer runs the item and settles it: [`DueWorkStore::complete`] (done, the row goes),
//!   [`DueWorkStore::reschedule`] (done, run again later), [`DueWorkStore::retry`] (failed: run
//!   again later, or park it), or [`DueWorkStore::release`] (not run: give it back). Every
//!   settlement, and [`DueWorkStore::renew`], checks that the caller still holds the lease: a
//!   claimer whose lease expired and was taken over changes nothing ([`Settled::LeaseLost`]).
//! - A claimer that dies between claim and settlement leaves the item leased; when the lease
//!   expires another claimer takes it over and runs it again. Delivery is therefore at least
//!   once, and the work an item does must be idempotent.
//!
//! An item scheduled again while it is claimed keeps its lease; when the claimer settles, the
//! new schedule stands ([`Settled::Superseded`]) instead of being deleted or overwritten.

use std::borrow::Cow;
use std::fmt;

use async_trait::async_trait;
use tocsin_core::Timestamp;

use crate::decode::{self, StoredRow};
use crate::StoreError;

/// The payload of an incident's first escalation step (kind
/// `tocsin_core::ESCALATION_STEP_KIND`, key the incident number), which ingest schedules, due
/// at once, in the transaction that opens a triggered incident.
pub const FIRST_ESCALATION_STEP: &str = r#"{"step":0}"#;

/// The payload of the first step of an escalation started over at `since` (an
/// acknowledgement that timed out): `since` tells its pages apart from the first ladder's.
pub fn restarted_escalation_step(since: Timestamp) -> String {
    serde_json::json!({ "step": 0, "since": since.as_microsecond() }).to_string()
}

/// The payload of an acknowledgement timeout (kind `tocsin_core::ACK_TIMEOUT_KIND`) set by the
/// acknowledgement made at `acknowledged_at`.
pub fn ack_timeout_payload(acknowledged_at: Timestamp) -> String {
    serde_json::json!({ "acknowledged_at": acknowledged_at.as_microsecond() }).to_string()
}

/// The most items one [`DueWorkStore::schedule_many`] takes.
pub const MAX_SCHEDULE_MANY: usize = 1_000;

/// The error of a [`DueWorkStore::schedule_many`] given more than [`MAX_SCHEDULE_MANY`] items.
pub fn check_schedule_many(items: &[NewDueItem]) -> Result<(), StoreError> {
    if items.len() > MAX_SCHEDULE_MANY {
        return Err(StoreError::Invalid(format!(
            "{} items to schedule at once; at most {MAX_SCHEDULE_MANY}",
            items.len()
        )));
    }
    Ok(())
}

/// The most items one [`DueWorkStore::claim`] hands out, whatever the caller asks for.
pub const MAX_CLAIM: usize = 500;
/// The longest [`DueKey`], in characters.
pub const MAX_DUE_KEY_CHARS: usize = 255;
/// The longest [`DueKind`] and [`ClaimerId`], in characters.
pub const MAX_DUE_NAME_CHARS: usize = 64;
/// The largest payload of an item, encoded as JSON.
pub const MAX_DUE_PAYLOAD_BYTES: usize = 64 * 1024;
/// The longest error text [`DueWorkStore::retry`] keeps, in characters (longer ones are cut).
pub const MAX_DUE_ERROR_CHARS: usize = 1_000;

/// What an item is, which decides the handler that runs it: lowercase ASCII letters, digits,
/// `.`, `_` and `-`, 1 to [`MAX_DUE_NAME_CHARS`] characters (e.g. `fold_log.sweep`).
///
/// Kinds are written by code, not by users; an item of a kind this version does not know (one
/// written by a newer version) is never claimed by it, so it is left alone rather than lost.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DueKind(Cow<'static, str>);

impl DueKind {
    /// A kind named in code. Checked when evaluated in a `const`, so a bad name fails to
    /// compile there.
    pub const fn from_static(kind: &'static str) -> DueKind {
        assert!(
            is_name(kind.as_bytes()),
            "a due-work kind is 1 to 64 characters of a-z, 0-9, '.', '_' and '-'"
        );
        DueKind(Cow::Borrowed(kind))
    }

    pub fn parse(kind: &str) -> Result<DueKind, InvalidDueWork> {
        if is_name(kind.as_bytes()) {
            Ok(DueKind(Cow::Owned(kind.to_owned())))
        } else {
            Err(InvalidDueWork::Kind {
                value: kind.chars().take(80).collect(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which item of its kind this is (e.g. an incident number, or `all` for a sweep): 1 to
/// [`MAX_DUE_KEY_CHARS`] characters, no NUL. (kind, key) is unique.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DueKey(String);

impl DueKey {
    pub fn parse(key: &str) -> Result<DueKey, InvalidDueWork> {
        let chars = key.chars().count();
        if chars == 0 || chars > MAX_DUE_KEY_CHARS {
            return Err(InvalidDueWork::KeyLength { chars });
        }
        if key.contains('\0') {
            return Err(InvalidDueWork::KeyNul);
        }
        Ok(DueKey(key.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DueKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who claims: one name per running claimer, unique across replicas (same characters as
/// [`DueKind`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClaimerId(String);

impl ClaimerId {
    pub fn parse(claimer: &str) -> Result<ClaimerId, InvalidDueWork> {
        if is_name(claimer.as_bytes()) {
            Ok(ClaimerId(claimer.to_owned()))
        } else {
            Err(InvalidDueWork::Claimer {
                value: claimer.chars().take(80).collect(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClaimerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A value that cannot be part of a due-work item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidDueWork {
    #[error("due-work kind {value:?} is not valid: use 1 to 64 characters of a-z, 0-9, '.', '_' and '-'")]
    Kind { value: String },
    #[error("due-work key has {chars} characters: use 1 to 255")]
    KeyLength { chars: usize },
    #[error("due-work key contains a NUL character: remove it")]
    KeyNul,
    #[error(
        "claimer id {value:?} is not valid: use 1 to 64 characters of a-z, 0-9, '.', '_' and '-'"
    )]
    Claimer { value: String },
    #[error("due-work payload is {bytes} bytes of JSON: keep it under 65536 and store bulk data elsewhere")]
    PayloadSize { bytes: usize },
}

/// An item to schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDueItem {
    pub kind: DueKind,
    pub key: DueKey,
    payload: String,
    pub due_at: Timestamp,
}

impl NewDueItem {
    /// `payload` is what the handler needs to run the item, up to [`MAX_DUE_PAYLOAD_BYTES`]
    /// as JSON.
    pub fn new(
        kind: DueKind,
        key: DueKey,
        payload: &serde_json::Value,
        due_at: Timestamp,
    ) -> Result<NewDueItem, InvalidDueWork> {
        let payload = payload.to_string();
        if payload.len() > MAX_DUE_PAYLOAD_BYTES {
            return Err(InvalidDueWork::PayloadSize {
                bytes: payload.len(),
            });
        }
        Ok(NewDueItem {
            kind,
            key,
            payload,
            due_at,
        })
    }

    /// The payload as JSON text, as the store writes it.
    pub fn payload_text(&self) -> &str {
        &self.payload
    }
}

/// What [`DueWorkStore::schedule`] does when the (kind, key) is already scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenScheduled {
    /// Leave the existing item as it is (due time, payload, attempts).
    Keep,
    /// Move it to the new due time and payload, and un-park it.
    Replace,
    /// Take the earlier of the two due times and the new payload, and un-park it.
    Earlier,
}

/// Where a scheduled item now stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scheduled {
    pub id: i64,
    pub due_at: Timestamp,
    /// Whether this call inserted the row (false: the (kind, key) was already scheduled).
    pub inserted: bool,
}

/// What to claim.
#[derive(Debug, Clone)]
pub struct ClaimRequest<'a> {
    /// Only items of these kinds: the ones the claimer can run.
    pub kinds: &'a [DueKind],
    pub claimer: &'a ClaimerId,
    /// Items due at or before `now`, whose lease is free or ended at or before `now`.
    pub now: Timestamp,
    /// The lease lasts until then; after it, another claimer may take the item over.
    pub lease_until: Timestamp,
    /// At most this many items, and never more than [`MAX_CLAIM`].
    pub limit: usize,
}

/// An item held by a claimer, and the proof that it holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedDueItem {
    pub id: i64,
    pub kind: DueKind,
    pub key: DueKey,
    pub payload: serde_json::Value,
    pub due_at: Timestamp,
    /// Runs begun since the item last succeeded or was scheduled anew, this one included.
    pub attempts: i64,
    pub lease: Lease,
}

/// A claimer's hold on an item: who, which claim of the item it is, which schedule it runs,
/// and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub claimer: ClaimerId,
    /// How many times the item had been claimed, this claim included; a later claim of the
    /// same item has a larger number, so this identifies the claim.
    pub claim: i64,
    /// Which schedule of the item was claimed; scheduling it anew changes it.
    pub revision: i64,
    pub until: Timestamp,
}

/// What a settlement did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The caller held the lease, and the outcome it asked for was written.
    Applied,
    /// The caller held the lease, but the item was scheduled anew while it ran: that schedule
    /// stands (the item is unleased and runs again when due).
    Superseded,
    /// The caller no longer holds the lease (it expired and another claimer took the item, or
    /// the item was cancelled): nothing was changed.
    LeaseLost,
}

/// An item as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct DueItemRow {
    pub id: i64,
    pub kind: DueKind,
    pub key: DueKey,
    pub payload: serde_json::Value,
    pub due_at: Timestamp,
    pub attempts: i64,
    pub claims: i64,
    pub revision: i64,
    pub claimed_by: Option<String>,
    pub lease_until: Option<Timestamp>,
    pub last_error: Option<String>,
    /// Set when the item was parked after failing too often; parked items are not claimed
    /// until scheduled anew with [`WhenScheduled::Replace`] or [`WhenScheduled::Earlier`].
    pub parked_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

/// The due-work queue of a backend.
#[async_trait]
pub trait DueWorkStore: Send + Sync + 'static {
    /// Inserts the item, or applies `when_scheduled` to the one already scheduled under its
    /// (kind, key). Scheduling the same item twice leaves one row.
    async fn schedule(
        &self,
        item: &NewDueItem,
        when_scheduled: WhenScheduled,
        now: Timestamp,
    ) -> Result<Scheduled, StoreError>;

    /// [`DueWorkStore::schedule`] for each item, in one transaction (at most
    /// [`MAX_SCHEDULE_MANY`] items; more is an error): what a runner does for every monitor
    /// at start, without a commit for each.
    async fn schedule_many(
        &self,
        items: &[NewDueItem],
        when_scheduled: WhenScheduled,
        now: Timestamp,
    ) -> Result<Vec<Scheduled>, StoreError>;

    /// Leases due items (oldest due first) to the claimer, counting an attempt on each. Items
    /// leased to someone else until after `now`, parked items and items of other kinds are
    /// not claimed.
    async fn claim(&self, request: &ClaimRequest<'_>) -> Result<Vec<ClaimedDueItem>, StoreError>;

    /// Extends the lease to `until`, if the caller still holds it.
    async fn renew(&self, item: &ClaimedDueItem, until: Timestamp) -> Result<bool, StoreError>;

    /// The item ran: removes it.
    async fn complete(&self, item: &ClaimedDueItem) -> Result<Settled, StoreError>;

    /// The item ran and is to run again at `due_at` (a recurring item): frees its lease and
    /// resets its attempts.
    async fn reschedule(
        &self,
        item: &ClaimedDueItem,
        due_at: Timestamp,
    ) -> Result<Settled, StoreError>;

    /// The item failed with `error`: frees its lease and makes it due again at `retry_at`, or
    /// parks it (at `now`) when `retry_at` is `None`. Its attempts are kept.
    async fn retry(
        &self,
        item: &ClaimedDueItem,
        retry_at: Option<Timestamp>,
        error: &str,
        now: Timestamp,
    ) -> Result<Settled, StoreError>;

    /// The item was not run (e.g. at shutdown): frees its lease without counting the attempt.
    async fn release(&self, item: &ClaimedDueItem) -> Result<Settled, StoreError>;

    /// Removes the item, whoever holds it; returns whether it existed.
    async fn cancel(&self, kind: &DueKind, key: &DueKey) -> Result<bool, StoreError>;

    /// The item scheduled under (kind, key), if any.
    async fn due_item(
        &self,
        kind: &DueKind,
        key: &DueKey,
    ) -> Result<Option<DueItemRow>, StoreError>;
}

/// The columns [`read_due_item`] and [`read_claimed_due_item`] read, in the order a backend
/// selects or returns them.
pub const DUE_ITEM_COLUMNS: &str = "id, kind, key, payload, due_at, attempts, claims, revision, \
    claimed_by, lease_until, last_error, parked_at, created_at";

/// Reads a row of [`DUE_ITEM_COLUMNS`].
pub fn read_due_item(row: &impl StoredRow) -> Result<DueItemRow, StoreError> {
    Ok(DueItemRow {
        id: row.integer("id")?,
        kind: stored_kind(&row.text("kind")?)?,
        key: stored_key(&row.text("key")?)?,
        payload: decode::json("payload", &row.text("payload")?)?,
        due_at: decode::timestamp("due_at", row.integer("due_at")?)?,
        attempts: row.integer("attempts")?,
        claims: row.integer("claims")?,
        revision: row.integer("revision")?,
        claimed_by: row.optional_text("claimed_by")?,
        lease_until: decode::optional_timestamp(
            "lease_until",
            row.optional_integer("lease_until")?,
        )?,
        last_error: row.optional_text("last_error")?,
        parked_at: decode::optional_timestamp("parked_at", row.optional_integer("parked_at")?)?,
        created_at: decode::timestamp("created_at", row.integer("created_at")?)?,
    })
}

/// Reads a row of [`DUE_ITEM_COLUMNS`] that a claim by `claimer` returned.
pub fn read_claimed_due_item(
    row: &impl StoredRow,
    claimer: &ClaimerId,
) -> Result<ClaimedDueItem, StoreError> {
    let item = read_due_item(row)?;
    let until = item
        .lease_until
        .ok_or_else(|| StoreError::Corrupt(format!("claimed due item {} has no lease", item.id)))?;
    Ok(ClaimedDueItem {
        id: item.id,
        kind: item.kind,
        key: item.key,
        payload: item.payload,
        due_at: item.due_at,
        attempts: item.attempts,
        lease: Lease {
            claimer: claimer.clone(),
            claim: item.claims,
            revision: item.revision,
            until,
        },
    })
}

/// `error` cut to [`MAX_DUE_ERROR_CHARS`] and without NUL characters (which PostgreSQL text
/// cannot hold), the same on every backend.
pub fn stored_error_text(error: &str) -> String {
    error
        .chars()
        .take(MAX_DUE_ERROR_CHARS)
        .map(|c| if c == '\0' { '\u{FFFD}' } else { c })
        .collect()
}

/// The claim limit a backend uses: 1 to [`MAX_CLAIM`].
pub fn claim_limit(requested: usize) -> i64 {
    i64::try_from(requested.clamp(1, MAX_CLAIM)).unwrap_or(1)
}

fn stored_kind(value: &str) -> Result<DueKind, StoreError> {
    DueKind::parse(value).map_err(|error| StoreError::Corrupt(error.to_string()))
}

fn stored_key(value: &str) -> Result<DueKey, StoreError> {
    DueKey::parse(value).map_err(|error| StoreError::Corrupt(error.to_string()))
}

const fn is_name(bytes: &[u8]) -> bool {
    if bytes.is_empty() || bytes.len() > MAX_DUE_NAME_CHARS {
        return false;
    }
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        if !(byte.is_ascii_lowercase()
            || byte.is_ascii_digit()
            || byte == b'.'
            || byte == b'_'
            || byte == b'-')
        {
            return false;
        }
        index += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_keys_and_claimers_are_checked() {
        const SWEEP: DueKind = DueKind::from_static("fold_log.sweep");
        assert_eq!(SWEEP.as_str(), "fold_log.sweep");
        assert_eq!(DueKind::parse("fold_log.sweep"), Ok(SWEEP));
        assert!(matches!(
            DueKind::parse("Fold Log"),
            Err(InvalidDueWork::Kind { .. })
        ));
        assert!(DueKind::parse("").is_err());
        assert!(DueKind::parse(&"a".repeat(65)).is_err());
        assert!(DueKey::parse("incident-7").is_ok());
        assert_eq!(
            DueKey::parse(""),
            Err(InvalidDueWork::KeyLength { chars: 0 })
        );
        assert_eq!(
            DueKey::parse(&"k".repeat(256)),
            Err(InvalidDueWork::KeyLength { chars: 256 })
        );
        assert_eq!(DueKey::parse("a\0b"), Err(InvalidDueWork::KeyNul));
        assert!(ClaimerId::parse("replica-1.42").is_ok());
        assert!(ClaimerId::parse("replica 1").is_err());
    }

    #[test]
    fn payloads_are_bounded() {
        let kind = DueKind::from_static("test");
        let key = DueKey::parse("k").expect("key");
        let big = serde_json::Value::String("x".repeat(MAX_DUE_PAYLOAD_BYTES));
        let error = NewDueItem::new(kind.clone(), key.clone(), &big, Timestamp::UNIX_EPOCH)
            .expect_err("too large");
        assert!(error.to_string().contains("65538 bytes"), "{error}");
        let item = NewDueItem::new(
            kind,
            key,
            &serde_json::json!({"n": 1}),
            Timestamp::UNIX_EPOCH,
        )
        .expect("small payload");
        assert_eq!(item.payload_text(), r#"{"n":1}"#);
    }

    #[test]
    fn error_texts_are_cut_and_cleaned() {
        assert_eq!(stored_error_text("a\0b"), "a\u{FFFD}b");
        assert_eq!(stored_error_text(&"e".repeat(5_000)).chars().count(), 1_000);
        assert_eq!(claim_limit(0), 1);
        assert_eq!(claim_limit(10_000), MAX_CLAIM as i64);
    }
}
