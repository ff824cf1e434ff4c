//! The notification outbox: every notification is a row written in the transaction that
//! decided it, and a dispatcher sends it later.
//!
//! The life of a notification:
//!
//! - It is queued `pending`, due at `next_attempt_at` (a person's notify rule may say "two
//!   minutes after being paged"). Queued again under the same idempotency key it is one row;
//!   and while one person already has a pending notification of an incident on a contact
//!   method, another one for the same person, incident and contact method due within a minute
//!   of it collapses into it.
//! - [`OutboxStore::claim_notifications`] moves due rows to `sending` and holds them for the
//!   claimer until a deadline; a row whose deadline passed (its dispatcher died mid-send) is
//!   claimed again. Each claim counts an attempt, and the attempt number names the claim.
//! - The claimer settles it ([`OutboxStore::settle_notification`]): `sent`, `pending` again
//!   for a retry later, or `failed` after the last retry. Each settlement appends a
//!   `notification.attempted` entry (who, how, result, latency) to the incident's timeline in
//!   the same transaction.
//! - A user's contact method gets at most one message per bundling window
//!   ([`OutboxStore::take_bundle`]): a claimed page for a contact method that got a message
//!   less than a window ago goes back to `pending`, due when the window ends, and then goes
//!   out in one message with every other page of that contact method due by then. A message
//!   that failed does not count: settling it frees the contact method.
//! - A page that fails for good settles with the user's other contact methods to try
//!   ([`OutboxStore::settle_notifications`]): the first one this page has not tried yet is
//!   queued in the same transaction, and the timeline says so (`notification.rerouted`).
//! - Acknowledging or resolving the incident cancels every page of it still `pending` (queued
//!   or waiting for a retry); a row being sent at that moment finishes its attempt. A
//!   channel's incident updates (`crate::updates`) are not cancelled: they say what happened.
//!
//! A notification may be about no incident ([`NewNotification::incident`] `None`): a test
//! page ([`TEST_KIND`]) or a notice of a gap in a schedule ([`GAP_NOTICE_KIND`]). Its
//! outcome is kept on the row only (there is no timeline to put it on), and it never
//! collapses into another notification.
//!
//! Delivery is at least once: a dispatcher that dies after sending and before settling leaves
//! the row to be sent again; the idempotency key, sent with every message, lets the receiver
//! tell.

use std::fmt;

use async_trait::async_trait;
use tocsin_core::{
    Actor, IncidentNumber, IncidentRef, IncidentState, TimelineData, TimelineRecord, Timestamp,
    ESCALATION_STEP_KIND,
};

use crate::decode::{self, StoredRow};
use crate::due::{claim_limit, stored_error_text, ClaimerId};
use crate::sql::{self, Arg, Connection};
use crate::{StoreError, TimelineEntry};

/// A notification collapses into a pending one for the same person, incident and contact
/// method due within this long of it (a minute, in microseconds); a reminder due later is a
/// notification of its own.
pub const COLLAPSE_WINDOW_MICROS: i64 = 60_000_000;

/// The longest idempotency key, in characters.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

/// The kind of a test page (`tocsin page test`): about no incident.
pub const TEST_KIND: &str = "test";

/// The kind of a notice that a schedule will have nobody on call: about no incident.
pub const GAP_NOTICE_KIND: &str = "gap_notice";

/// Who a notification is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Recipient {
    /// A user from the config, reached through one of their contact methods.
    User { user: String, contact: String },
    /// A channel from the config (team chat, a webhook, a mailing list).
    Channel { channel: String },
}

impl Recipient {
    fn kind(&self) -> &'static str {
        match self {
            Recipient::User { .. } => "user",
            Recipient::Channel { .. } => "channel",
        }
    }

    fn id(&self) -> &str {
        match self {
            Recipient::User { user, .. } => user,
            Recipient::Channel { channel } => channel,
        }
    }

    fn contact(&self) -> &str {
        match self {
            Recipient::User { contact, .. } => contact,
            Recipient::Channel { .. } => "",
        }
    }

    fn read(kind: &str, id: String, contact: String) -> Result<Recipient, StoreError> {
        match kind {
            "user" => Ok(Recipient::User { user: id, contact }),
            "channel" => Ok(Recipient::Channel { channel: id }),
            other => Err(StoreError::Corrupt(format!(
                "column recipient_kind holds {other:?}"
            ))),
        }
    }
}

impl fmt::Display for Recipient {
    /// `user:<id>` or `channel:<id>`, as the timeline names it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind(), self.id())
    }
}

/// Where a notification stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotificationState {
    /// Waiting for `next_attempt_at` (first attempt, or a retry).
    Pending,
    /// Claimed by a dispatcher until `claim_until`.
    Sending,
    Sent,
    /// Given up after the last retry.
    Failed,
    /// Withdrawn before it was sent: the incident was acknowledged or resolved.
    Cancelled,
}

impl NotificationState {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationState::Pending => "pending",
            NotificationState::Sending => "sending",
            NotificationState::Sent => "sent",
            NotificationState::Failed => "failed",
            NotificationState::Cancelled => "cancelled",
        }
    }

    fn parse(value: &str) -> Result<Self, StoreError> {
        Ok(match value {
            "pending" => NotificationState::Pending,
            "sending" => NotificationState::Sending,
            "sent" => NotificationState::Sent,
            "failed" => NotificationState::Failed,
            "cancelled" => NotificationState::Cancelled,
            other => {
                return Err(StoreError::Corrupt(format!("column state holds {other:?}")));
            }
        })
    }
}

/// A notification to queue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotification {
    /// The incident it is about; `None` for a test page or a notice.
    pub incident: Option<IncidentNumber>,
    pub recipient: Recipient,
    /// How it is sent: `email`, `webhook`, `ntfy`, `slack`, `console`, ...
    pub method: String,
    /// What it says: `page` for an escalation's notification.
    pub kind: String,
    /// What the dispatcher needs besides the incident.
    pub payload: serde_json::Value,
    /// Unique per notification, at most [`MAX_IDEMPOTENCY_KEY_CHARS`] characters.
    pub idempotency_key: String,
    /// Not sent before this.
    pub not_before: Timestamp,
}

/// A notification as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationRow {
    pub id: i64,
    /// The incident it is about; `None` for a test page or a notice.
    pub incident: Option<IncidentNumber>,
    pub recipient: Recipient,
    pub method: String,
    pub kind: String,
    pub payload: serde_json::Value,
    pub idempotency_key: String,
    pub state: NotificationState,
    /// Attempts begun, the current one included; while `sending`, it names the claim.
    pub attempts: i64,
    pub next_attempt_at: Timestamp,
    pub claimed_by: Option<String>,
    pub claim_until: Option<Timestamp>,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub settled_at: Option<Timestamp>,
}

/// What to claim.
#[derive(Debug, Clone)]
pub struct NotificationClaim<'a> {
    pub claimer: &'a ClaimerId,
    /// Rows due at or before `now`, and rows whose claim ended at or before `now`.
    pub now: Timestamp,
    /// The claim lasts until then; after it another dispatcher may send the row again.
    pub claim_until: Timestamp,
    /// At most this many rows, and never more than [`crate::due::MAX_CLAIM`].
    pub limit: usize,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    Sent,
    /// It failed and is tried again at `at`.
    Retry {
        at: Timestamp,
        error: String,
    },
    /// It failed and is not tried again.
    Failed {
        error: String,
    },
}

/// One of a user's contact methods: its id and how it sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactMethod {
    pub contact: String,
    pub method: String,
}

/// Claimed rows to settle alike (the pages of one message).
#[derive(Debug, Clone)]
pub struct Settlement<'a> {
    pub rows: &'a [NotificationRow],
    pub delivery: &'a Delivery,
    pub latency_ms: i64,
    pub now: Timestamp,
    /// When the delivery failed for good: the user's other contact methods, in the order to
    /// try them (the config's order after the failed one, wrapping). The first one a failed
    /// page has not tried yet for its incident is queued; empty for none.
    pub next: &'a [ContactMethod],
}

/// A page of an incident's escalation, or a reassignment, rerouted to another contact
/// method keeps its kind; others (a channel's update, a test) are not rerouted.
pub const REROUTED_KIND: &str = "page";

/// The most rows [`OutboxStore::settle_notification_batch`] settles in one transaction.
pub const MAX_SETTLE_BATCH_ROWS: usize = 5_000;

/// The largest bundle [`OutboxStore::take_bundle`] makes.
pub const MAX_BUNDLE: usize = 500;

/// What to bundle: claimed pages for one user's one contact method.
#[derive(Debug, Clone)]
pub struct BundleClaim<'a> {
    pub claimer: &'a ClaimerId,
    /// Claimed by `claimer`, all for the same user and contact method.
    pub rows: &'a [NotificationRow],
    pub now: Timestamp,
    /// The contact method's next message may go this long after this one at the earliest.
    pub window: std::time::Duration,
    /// Rows added to the bundle are claimed until then.
    pub claim_until: Timestamp,
    /// At most this many rows in the bundle (never more than [`MAX_BUNDLE`]).
    pub limit: usize,
}

/// What [`OutboxStore::take_bundle`] decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Bundle {
    /// Send these in one message: the claimed rows and the contact method's other pages due
    /// by `now`, claimed as well (oldest due first). The contact method's window starts now.
    Send(Vec<NotificationRow>),
    /// The contact method got a message less than a window ago: the rows are `pending`
    /// again, due at `until` (their claim's attempt not counted).
    Deferred { until: Timestamp },
}

/// What [`OutboxStore::run_escalation_step`] writes when the step still stands.
#[derive(Debug, Clone, PartialEq)]
pub struct EscalationStepWrite {
    pub incident: IncidentNumber,
    /// The step the claimed due item's payload names; the write applies only while the item
    /// still names it, so a step is written once even if it runs twice.
    pub step_payload: serde_json::Value,
    /// The payload and due time of the step after it.
    pub next_payload: serde_json::Value,
    pub next_due_at: Timestamp,
    pub notifications: Vec<NewNotification>,
    /// Entries to append (escalation.notified, escalation.skipped), by the system.
    pub timeline: Vec<TimelineData>,
    /// When the step's level takes turns: the store picks whose turn it is, in the same
    /// transaction, and writes that candidate's notifications and timeline after the ones
    /// above.
    pub turn: Option<EscalationTurn>,
    pub now: Timestamp,
    /// The claim the caller holds on the item, to settle in the same transaction: when set,
    /// the write applies only while that claim still holds, and it frees the item's lease
    /// (attempts reset), so the runner need not settle it. `None`: lease and revision are left
    /// untouched for the runner to settle.
    pub settle: Option<crate::due::Lease>,
}

/// A round-robin level's step: one of `candidates` is paged, each in turn. The turn is kept
/// per policy and level (`escalation_turns`) and taken in the step's transaction, so steps
/// of different incidents, on any replica, take turns one after the other.
#[derive(Debug, Clone, PartialEq)]
pub struct EscalationTurn {
    pub policy: String,
    /// The level's index in the policy (0 for level 1).
    pub level: u32,
    /// Never empty, in a stable order.
    pub candidates: Vec<TurnCandidate>,
}

/// What paging one candidate of a round-robin level writes.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnCandidate {
    pub user: String,
    pub notifications: Vec<NewNotification>,
    pub timeline: Vec<TimelineData>,
}

/// What [`OutboxStore::run_escalation_step`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EscalationStepOutcome {
    /// Written: this many notifications were queued (duplicates collapsed); `turn` is the user
    /// whose turn it was, on a round-robin level.
    Written { queued: usize, turn: Option<String> },
    /// The incident is no longer triggered: nothing was written.
    NotTriggered,
    /// The step was already written (or the item was cancelled): nothing was written.
    Stale,
}

/// The outbox of a backend, and the escalation writes that fill it.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Queues the notifications in one transaction; returns how many rows were added (a
    /// repeated idempotency key, or a duplicate of a pending notification for the same person,
    /// incident and contact method due within [`COLLAPSE_WINDOW_MICROS`], adds none).
    async fn enqueue_notifications(
        &self,
        notifications: &[NewNotification],
        now: Timestamp,
    ) -> Result<usize, StoreError>;

    /// Queues notifications about no incident (each with `incident` `None`: a test page, a
    /// notice) in one transaction and returns the rows added, in the order given; a repeated
    /// idempotency key adds none. They never collapse into other notifications.
    async fn enqueue_notices(
        &self,
        notices: &[NewNotification],
        now: Timestamp,
    ) -> Result<Vec<NotificationRow>, StoreError>;

    /// Moves due `pending` rows, and `sending` rows whose claim ended, to `sending` for the
    /// claimer (oldest due first), counting an attempt on each.
    async fn claim_notifications(
        &self,
        claim: &NotificationClaim<'_>,
    ) -> Result<Vec<NotificationRow>, StoreError>;

    /// Settles a claimed row and appends the attempt (`latency_ms`, by the system, at `now`)
    /// to the incident's timeline (a notification about no incident keeps it on its row
    /// only). `None`: the caller no longer holds the claim (it ended and another dispatcher
    /// took the row), and nothing was changed.
    async fn settle_notification(
        &self,
        row: &NotificationRow,
        delivery: &Delivery,
        latency_ms: i64,
        now: Timestamp,
    ) -> Result<Option<SettledNotification>, StoreError>;

    /// Settles claimed rows alike (one message carried them) and appends each attempt to its
    /// incident's timeline; a page that failed for good is rerouted to the next contact
    /// method of `settlement.next` it has not tried, while its incident is still triggered.
    /// Returns how many rows were still held by their claim (the others are left as they
    /// are).
    async fn settle_notifications(&self, settlement: &Settlement<'_>) -> Result<usize, StoreError>;

    /// [`OutboxStore::settle_notifications`] for the messages of a whole drain in one
    /// transaction: every attempt is on its incident's timeline and every page that failed for
    /// good is rerouted, as if each settlement were made on its own, in the order given.
    /// Returns, per settlement, how many of its rows were still held by their claim (the
    /// others were settled by someone else and are left as they are). At most
    /// [`MAX_SETTLE_BATCH_ROWS`] rows in all.
    async fn settle_notification_batch(
        &self,
        settlements: &[Settlement<'_>],
    ) -> Result<Vec<usize>, StoreError>;

    /// Bundles claimed pages for one user's contact method: at most one message per
    /// contact method per `window` (see [`Bundle`]).
    async fn take_bundle(&self, claim: &BundleClaim<'_>) -> Result<Bundle, StoreError>;

    /// [`OutboxStore::take_bundle`] for the contact methods of a whole claim (each claim for
    /// another user's contact method) in one transaction; the bundles are in the order of
    /// `claims`. At most [`MAX_CLAIM`](crate::due::MAX_CLAIM) claims.
    async fn take_bundles(&self, claims: &[BundleClaim<'_>]) -> Result<Vec<Bundle>, StoreError>;

    /// Cancels every `pending` page (notification for a user) of the incident; returns how
    /// many.
    async fn cancel_notifications(
        &self,
        incident: IncidentNumber,
        now: Timestamp,
    ) -> Result<u64, StoreError>;

    /// The incident's notifications, oldest first, at most `limit` (and never more than
    /// `PageRequest::MAX_LIMIT`).
    async fn notifications(
        &self,
        incident: IncidentNumber,
        limit: u32,
    ) -> Result<Vec<NotificationRow>, StoreError>;

    /// One notification by id; `NotFound` when there is none.
    async fn notification(&self, id: i64) -> Result<NotificationRow, StoreError>;

    /// The due time of the notification that has waited longest to be sent (`pending` or
    /// `sending`), if any: how far behind the outbox is.
    async fn oldest_waiting_notification(&self) -> Result<Option<Timestamp>, StoreError>;

    /// Writes one escalation step in one transaction: when the incident is still triggered
    /// and its escalation item still names `step_payload`, queues the notifications, appends
    /// the timeline and points the item at the next step (its lease and revision untouched:
    /// the runner settles it).
    async fn run_escalation_step(
        &self,
        step: &EscalationStepWrite,
    ) -> Result<EscalationStepOutcome, StoreError>;

    /// [`OutboxStore::run_escalation_step`] for several steps (of different incidents) in one
    /// transaction: a storm's first pages cost one commit, not one each. The outcomes are in
    /// the order of `steps`.
    async fn run_escalation_steps(
        &self,
        steps: &[EscalationStepWrite],
    ) -> Result<Vec<EscalationStepOutcome>, StoreError>;

    /// The current key for `purpose` (created, 32 random bytes given by the caller as hex,
    /// when there is none), and every key of it not retired (newest first) to check with.
    async fn server_key(
        &self,
        purpose: &str,
        new_secret: &str,
        now: Timestamp,
    ) -> Result<Vec<ServerKey>, StoreError>;

    /// Retires the current key of `purpose` and makes `new_secret` current.
    async fn rotate_server_key(
        &self,
        purpose: &str,
        new_secret: &str,
        now: Timestamp,
    ) -> Result<ServerKey, StoreError>;
}

/// What settling a notification wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct SettledNotification {
    /// The attempt on the incident's timeline; `None` for a notification about no incident.
    pub timeline: Option<TimelineEntry>,
}

/// A key the server signs with.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerKey {
    pub id: i64,
    /// Hex.
    pub secret: String,
    pub created_at: Timestamp,
}

impl fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerKey")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .field("created_at", &self.created_at)
            .finish()
    }
}

const NOTIFICATION_COLUMNS: &str = "id, incident_number, recipient_kind, recipient, contact, \
    method, kind, payload, idempotency_key, state, attempts, next_attempt_at, claimed_by, \
    claim_until, last_error, created_at, settled_at";

fn micros(at: Timestamp) -> i64 {
    at.as_microsecond()
}

fn read_notification(row: &impl StoredRow) -> Result<NotificationRow, StoreError> {
    Ok(NotificationRow {
        id: row.integer("id")?,
        incident: row.optional_integer("incident_number")?.map(IncidentNumber),
        recipient: Recipient::read(
            &row.text("recipient_kind")?,
            row.text("recipient")?,
            row.text("contact")?,
        )?,
        method: row.text("method")?,
        kind: row.text("kind")?,
        payload: decode::json("payload", &row.text("payload")?)?,
        idempotency_key: row.text("idempotency_key")?,
        state: NotificationState::parse(&row.text("state")?)?,
        attempts: row.integer("attempts")?,
        next_attempt_at: decode::timestamp("next_attempt_at", row.integer("next_attempt_at")?)?,
        claimed_by: row.optional_text("claimed_by")?,
        claim_until: decode::optional_timestamp(
            "claim_until",
            row.optional_integer("claim_until")?,
        )?,
        last_error: row.optional_text("last_error")?,
        created_at: decode::timestamp("created_at", row.integer("created_at")?)?,
        settled_at: decode::optional_timestamp("settled_at", row.optional_integer("settled_at")?)?,
    })
}

fn check_notification(notification: &NewNotification) -> Result<(), StoreError> {
    let chars = notification.idempotency_key.chars().count();
    if chars == 0 || chars > MAX_IDEMPOTENCY_KEY_CHARS {
        return Err(StoreError::Invalid(format!(
            "idempotency key has {chars} characters: use 1 to {MAX_IDEMPOTENCY_KEY_CHARS}"
        )));
    }
    sql::check_text("idempotency_key", &notification.idempotency_key)?;
    sql::check_text("recipient", notification.recipient.id())?;
    sql::check_text("contact", notification.recipient.contact())?;
    sql::check_text("method", &notification.method)?;
    sql::check_text("kind", &notification.kind)?;
    Ok(())
}

/// Inserts the notifications (see [`OutboxStore::enqueue_notifications`]). The caller commits.
pub async fn enqueue<C: Connection>(
    conn: &mut C,
    notifications: &[NewNotification],
    now: Timestamp,
) -> Result<usize, StoreError> {
    for notification in notifications {
        check_notification(notification)?;
    }
    let mut added = 0;
    for notification in notifications {
        let payload = notification.payload.to_string();
        sql::check_text("payload", &payload)?;
        added += conn
            .execute(
                "INSERT INTO outbox (incident_number, recipient_kind, recipient, contact, method,
                     kind, payload, idempotency_key, state, attempts, next_attempt_at, created_at)
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, 'pending', 0, $9, $10
                 WHERE NOT EXISTS (
                     SELECT 1 FROM outbox WHERE incident_number = $1 AND recipient_kind = $2
                         AND recipient = $3 AND contact = $4 AND method = $5
                         AND state = 'pending'
                         AND next_attempt_at BETWEEN $11 AND $12)
                 ON CONFLICT (idempotency_key) DO NOTHING",
                &[
                    Arg::OptionalInteger(notification.incident.map(|number| number.0)),
                    Arg::Text(notification.recipient.kind()),
                    Arg::Text(notification.recipient.id()),
                    Arg::Text(notification.recipient.contact()),
                    Arg::Text(&notification.method),
                    Arg::Text(&notification.kind),
                    Arg::Text(&payload),
                    Arg::Text(&notification.idempotency_key),
                    Arg::Integer(micros(notification.not_before)),
                    Arg::Integer(micros(now)),
                    Arg::Integer(micros(notification.not_before) - COLLAPSE_WINDOW_MICROS),
                    Arg::Integer(micros(notification.not_before) + COLLAPSE_WINDOW_MICROS),
                ],
            )
            .await?;
    }
    Ok(usize::try_from(added).unwrap_or(usize::MAX))
}

/// Inserts notices (see [`OutboxStore::enqueue_notices`]). The caller commits.
pub async fn enqueue_notices<C: Connection>(
    conn: &mut C,
    notices: &[NewNotification],
    now: Timestamp,
) -> Result<Vec<NotificationRow>, StoreError> {
    for notice in notices {
        if notice.incident.is_some() {
            return Err(StoreError::Invalid(
                "a notice is about no incident; queue a page with enqueue_notifications".to_owned(),
            ));
        }
        check_notification(notice)?;
        sql::check_text("payload", &notice.payload.to_string())?;
    }
    let mut added = Vec::with_capacity(notices.len());
    for notice in notices {
        let payload = notice.payload.to_string();
        let row = conn
            .fetch_optional(
                &format!(
                    "INSERT INTO outbox (incident_number, recipient_kind, recipient, contact,
                         method, kind, payload, idempotency_key, state, attempts,
                         next_attempt_at, created_at)
                     VALUES (NULL, $1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8, $9)
                     ON CONFLICT (idempotency_key) DO NOTHING
                     RETURNING {NOTIFICATION_COLUMNS}"
                ),
                &[
                    Arg::Text(notice.recipient.kind()),
                    Arg::Text(notice.recipient.id()),
                    Arg::Text(notice.recipient.contact()),
                    Arg::Text(&notice.method),
                    Arg::Text(&notice.kind),
                    Arg::Text(&payload),
                    Arg::Text(&notice.idempotency_key),
                    Arg::Integer(micros(notice.not_before)),
                    Arg::Integer(micros(now)),
                ],
            )
            .await?;
        if let Some(row) = row {
            added.push(read_notification(&row)?);
        }
    }
    Ok(added)
}

/// Claims due rows (see [`OutboxStore::claim_notifications`]). The caller commits.
pub async fn claim<C: Connection>(
    conn: &mut C,
    claim: &NotificationClaim<'_>,
) -> Result<Vec<NotificationRow>, StoreError> {
    let skip_locked = conn.dialect().skip_locked;
    let rows = conn
        .fetch_all(
            &format!(
                "UPDATE outbox SET state = 'sending', attempts = attempts + 1, claimed_by = $1,
                     claim_until = $2
                 WHERE id IN (
                     SELECT id FROM outbox
                     WHERE (state = 'pending' AND next_attempt_at <= $3)
                        OR (state = 'sending' AND claim_until <= $3)
                     ORDER BY next_attempt_at, id LIMIT $4{skip_locked})
                 RETURNING {NOTIFICATION_COLUMNS}"
            ),
            &[
                Arg::Text(claim.claimer.as_str()),
                Arg::Integer(micros(claim.claim_until)),
                Arg::Integer(micros(claim.now)),
                Arg::Integer(claim_limit(claim.limit)),
            ],
        )
        .await?;
    let mut claimed = rows
        .iter()
        .map(read_notification)
        .collect::<Result<Vec<_>, _>>()?;
    // RETURNING follows no order: hand them out oldest due first.
    claimed.sort_by_key(|row| (row.next_attempt_at, row.id));
    Ok(claimed)
}

/// Settles a claimed row (see [`OutboxStore::settle_notification`]). The caller commits.
pub async fn settle<C: Connection>(
    conn: &mut C,
    row: &NotificationRow,
    delivery: &Delivery,
    latency_ms: i64,
    now: Timestamp,
) -> Result<Option<SettledNotification>, StoreError> {
    let claimer = row.claimed_by.as_deref().unwrap_or_default();
    let (state, next_attempt_at, error, settled_at, result) = match delivery {
        Delivery::Sent => ("sent", row.next_attempt_at, None, Some(now), "sent"),
        Delivery::Retry { at, error } => (
            "pending",
            *at,
            Some(stored_error_text(error)),
            None,
            "retrying",
        ),
        Delivery::Failed { error } => (
            "failed",
            row.next_attempt_at,
            Some(stored_error_text(error)),
            Some(now),
            "failed",
        ),
    };
    let changed = conn
        .execute(
            "UPDATE outbox SET state = $1, next_attempt_at = $2, last_error = COALESCE($3, last_error),
                 settled_at = $4, claimed_by = NULL, claim_until = NULL
             WHERE id = $5 AND state = 'sending' AND claimed_by = $6 AND attempts = $7",
            &[
                Arg::Text(state),
                Arg::Integer(micros(next_attempt_at)),
                Arg::OptionalText(error.as_deref()),
                Arg::OptionalInteger(settled_at.map(micros)),
                Arg::Integer(row.id),
                Arg::Text(claimer),
                Arg::Integer(row.attempts),
            ],
        )
        .await?;
    if changed == 0 {
        return Ok(None);
    }
    // A notification about no incident keeps its outcome on its row alone.
    let Some(incident) = row.incident else {
        return Ok(Some(SettledNotification { timeline: None }));
    };
    let record = TimelineRecord {
        incident: IncidentRef::Existing(incident),
        at: now,
        actor: Actor::system(),
        data: TimelineData::NotificationAttempted {
            recipient: row.recipient.to_string(),
            method: row.method.clone(),
            contact: row.recipient.contact().to_owned(),
            result: result.to_owned(),
            attempt: row.attempts,
            latency_ms,
            error,
        },
    };
    let entries = sql::append_timeline(conn, std::slice::from_ref(&record)).await?;
    Ok(Some(SettledNotification {
        timeline: entries.into_iter().next(),
    }))
}

/// Settles rows alike and reroutes failed pages (see
/// [`OutboxStore::settle_notifications`]); a failed message frees its contact method's
/// bundling window. The caller commits.
pub async fn settle_all<C: Connection>(
    conn: &mut C,
    settlement: &Settlement<'_>,
) -> Result<usize, StoreError> {
    let mut settled = 0;
    for row in settlement.rows {
        if settle(
            conn,
            row,
            settlement.delivery,
            settlement.latency_ms,
            settlement.now,
        )
        .await?
        .is_none()
        {
            continue;
        }
        settled += 1;
        if matches!(settlement.delivery, Delivery::Failed { .. }) {
            reroute(conn, row, settlement.next, settlement.now).await?;
        }
    }
    // A message that did not arrive does not count: its contact method is free again.
    if let (Some(Recipient::User { user, contact }), false) = (
        settlement.rows.first().map(|row| &row.recipient),
        matches!(settlement.delivery, Delivery::Sent),
    ) {
        if settled > 0 {
            conn.execute(
                "UPDATE outbox_contacts SET free_at = $1
                 WHERE recipient = $2 AND contact = $3 AND free_at > $1",
                &[
                    Arg::Integer(micros(settlement.now)),
                    Arg::Text(user),
                    Arg::Text(contact),
                ],
            )
            .await?;
        }
    }
    Ok(settled)
}

/// Settles the messages of a drain (see [`OutboxStore::settle_notification_batch`]), each as
/// [`settle_all`] does, in order. The caller commits.
pub async fn settle_batch<C: Connection>(
    conn: &mut C,
    settlements: &[Settlement<'_>],
) -> Result<Vec<usize>, StoreError> {
    let rows: usize = settlements
        .iter()
        .map(|settlement| settlement.rows.len())
        .sum();
    if rows > MAX_SETTLE_BATCH_ROWS {
        return Err(StoreError::Invalid(format!(
            "a settlement batch of {rows} rows: settle at most {MAX_SETTLE_BATCH_ROWS} at once"
        )));
    }
    let mut settled = Vec::with_capacity(settlements.len());
    for settlement in settlements {
        settled.push(settle_all(conn, settlement).await?);
    }
    Ok(settled)
}

/// Queues the failed page `row` on the first contact method of `next` that its page (same
/// incident, user, pass and level) has not tried, and says so on the timeline.
async fn reroute<C: Connection>(
    conn: &mut C,
    row: &NotificationRow,
    next: &[ContactMethod],
    now: Timestamp,
) -> Result<(), StoreError> {
    let Recipient::User { user, contact } = &row.recipient else {
        return Ok(());
    };
    if row.kind != REROUTED_KIND {
        return Ok(());
    }
    // Only pages of an incident are rerouted; notices about none are not.
    let Some(number) = row.incident else {
        return Ok(());
    };
    // Locked, as acknowledging locks it: a page rerouted after an acknowledgement sees it.
    let incident = sql::incident(conn, number, true).await?;
    if incident.state != IncidentState::Triggered {
        return Ok(());
    }
    let page =
        |payload: &serde_json::Value| (payload.get("pass").cloned(), payload.get("level").cloned());
    let tried_rows = conn
        .fetch_all(
            "SELECT contact, payload FROM outbox
             WHERE incident_number = $1 AND recipient_kind = 'user' AND recipient = $2
                 AND kind = $3 AND state <> 'cancelled'
             ORDER BY id LIMIT 1000",
            &[
                Arg::Integer(number.0),
                Arg::Text(user),
                Arg::Text(&row.kind),
            ],
        )
        .await?;
    let mut tried = std::collections::HashSet::new();
    for tried_row in &tried_rows {
        let payload = decode::json("payload", &tried_row.text("payload")?)?;
        if page(&payload) == page(&row.payload) {
            tried.insert(tried_row.text("contact")?);
        }
    }
    let chosen = next
        .iter()
        .find(|method| method.contact != *contact && !tried.contains(&method.contact));
    if let Some(method) = chosen {
        let mut payload = row.payload.clone();
        if let Some(object) = payload.as_object_mut() {
            object.insert("rerouted_from".to_owned(), serde_json::json!(contact));
        }
        let notification = NewNotification {
            incident: row.incident,
            recipient: Recipient::User {
                user: user.clone(),
                contact: method.contact.clone(),
            },
            method: method.method.clone(),
            kind: row.kind.clone(),
            payload,
            idempotency_key: format!("reroute-{}-{}", row.id, method.contact),
            not_before: now,
        };
        enqueue(conn, std::slice::from_ref(&notification), now).await?;
    }
    let record = TimelineRecord {
        incident: IncidentRef::Existing(number),
        at: now,
        actor: Actor::system(),
        data: TimelineData::NotificationRerouted {
            recipient: row.recipient.to_string(),
            failed_contact: contact.clone(),
            failed_method: row.method.clone(),
            next_contact: chosen.map(|method| method.contact.clone()),
            next_method: chosen.map(|method| method.method.clone()),
        },
    };
    sql::append_timeline(conn, std::slice::from_ref(&record)).await?;
    Ok(())
}

/// Bundles claimed pages (see [`OutboxStore::take_bundle`]). The caller commits.
pub async fn take_bundle<C: Connection>(
    conn: &mut C,
    claim: &BundleClaim<'_>,
) -> Result<Bundle, StoreError> {
    let Some(Recipient::User { user, contact }) = claim.rows.first().map(|row| &row.recipient)
    else {
        return Ok(Bundle::Send(claim.rows.to_vec()));
    };
    if claim
        .rows
        .iter()
        .any(|row| row.recipient != claim.rows[0].recipient)
    {
        return Err(StoreError::Invalid(
            "a bundle is for one user's one contact method".to_owned(),
        ));
    }
    let now = micros(claim.now);
    let window = i64::try_from(claim.window.as_micros()).unwrap_or(i64::MAX);
    // Takes the contact method's window when it is free, in one statement: of two
    // dispatchers at once, one takes it.
    let taken = conn
        .fetch_optional(
            "INSERT INTO outbox_contacts (recipient, contact, free_at) VALUES ($1, $2, $3)
             ON CONFLICT (recipient, contact) DO UPDATE SET free_at = excluded.free_at
                 WHERE outbox_contacts.free_at <= $4
             RETURNING free_at",
            &[
                Arg::Text(user),
                Arg::Text(contact),
                Arg::Integer(now.saturating_add(window)),
                Arg::Integer(now),
            ],
        )
        .await?;
    if taken.is_none() {
        let free_at = conn
            .fetch_one(
                "SELECT free_at FROM outbox_contacts WHERE recipient = $1 AND contact = $2",
                &[Arg::Text(user), Arg::Text(contact)],
            )
            .await?
            .integer("free_at")?;
        for row in claim.rows {
            conn.execute(
                "UPDATE outbox SET state = 'pending', attempts = attempts - 1,
                     next_attempt_at = $1, claimed_by = NULL, claim_until = NULL
                 WHERE id = $2 AND state = 'sending' AND claimed_by = $3 AND attempts = $4",
                &[
                    Arg::Integer(free_at),
                    Arg::Integer(row.id),
                    Arg::Text(claim.claimer.as_str()),
                    Arg::Integer(row.attempts),
                ],
            )
            .await?;
        }
        return Ok(Bundle::Deferred {
            until: decode::timestamp("free_at", free_at)?,
        });
    }
    let mut rows = claim.rows.to_vec();
    let room = claim.limit.min(MAX_BUNDLE).saturating_sub(rows.len());
    if room > 0 {
        let skip_locked = conn.dialect().skip_locked;
        let more = conn
            .fetch_all(
                &format!(
                    "UPDATE outbox SET state = 'sending', attempts = attempts + 1,
                         claimed_by = $1, claim_until = $2
                     WHERE id IN (
                         SELECT id FROM outbox
                         WHERE state = 'pending' AND recipient_kind = 'user'
                             AND incident_number IS NOT NULL
                             AND recipient = $3 AND contact = $4 AND next_attempt_at <= $5
                         ORDER BY next_attempt_at, id LIMIT $6{skip_locked})
                     RETURNING {NOTIFICATION_COLUMNS}"
                ),
                &[
                    Arg::Text(claim.claimer.as_str()),
                    Arg::Integer(micros(claim.claim_until)),
                    Arg::Text(user),
                    Arg::Text(contact),
                    Arg::Integer(now),
                    Arg::Integer(i64::try_from(room).unwrap_or(i64::MAX)),
                ],
            )
            .await?;
        let mut more = more
            .iter()
            .map(read_notification)
            .collect::<Result<Vec<_>, _>>()?;
        more.sort_by_key(|row| (row.next_attempt_at, row.id));
        rows.extend(more);
    }
    Ok(Bundle::Send(rows))
}

/// Bundles the claimed pages of several contact methods (see
/// [`OutboxStore::take_bundles`]), in order. The caller commits.
pub async fn take_bundles<C: Connection>(
    conn: &mut C,
    claims: &[BundleClaim<'_>],
) -> Result<Vec<Bundle>, StoreError> {
    if claims.len() > crate::due::MAX_CLAIM {
        return Err(StoreError::Invalid(format!(
            "{} bundles at once: take at most {}",
            claims.len(),
            crate::due::MAX_CLAIM
        )));
    }
    let mut bundles = Vec::with_capacity(claims.len());
    for claim in claims {
        bundles.push(take_bundle(conn, claim).await?);
    }
    Ok(bundles)
}

/// Cancels the incident's pending pages (rows for users; a channel's incident updates are
/// still sent). The caller commits.
pub async fn cancel<C: Connection>(
    conn: &mut C,
    incident: IncidentNumber,
    now: Timestamp,
) -> Result<u64, StoreError> {
    conn.execute(
        "UPDATE outbox SET state = 'cancelled', settled_at = $2
         WHERE incident_number = $1 AND state = 'pending' AND recipient_kind = 'user'",
        &[Arg::Integer(incident.0), Arg::Integer(micros(now))],
    )
    .await
}

/// The incident's notifications, oldest first.
pub async fn list<C: Connection>(
    conn: &mut C,
    incident: IncidentNumber,
    limit: u32,
) -> Result<Vec<NotificationRow>, StoreError> {
    let limit = limit.clamp(1, crate::PageRequest::MAX_LIMIT);
    let rows = conn
        .fetch_all(
            &format!(
                "SELECT {NOTIFICATION_COLUMNS} FROM outbox WHERE incident_number = $1
                 ORDER BY id LIMIT $2"
            ),
            &[Arg::Integer(incident.0), Arg::Integer(i64::from(limit))],
        )
        .await?;
    rows.iter().map(read_notification).collect()
}

/// One notification by id (see [`OutboxStore::notification`]).
pub async fn get<C: Connection>(conn: &mut C, id: i64) -> Result<NotificationRow, StoreError> {
    let row = conn
        .fetch_optional(
            &format!("SELECT {NOTIFICATION_COLUMNS} FROM outbox WHERE id = $1"),
            &[Arg::Integer(id)],
        )
        .await?
        .ok_or_else(|| StoreError::not_found(format!("notification {id}")))?;
    read_notification(&row)
}

/// The earliest due time of a waiting notification (see
/// [`OutboxStore::oldest_waiting_notification`]); reads the `outbox_waiting` index.
pub async fn oldest_waiting<C: Connection>(conn: &mut C) -> Result<Option<Timestamp>, StoreError> {
    let row = conn
        .fetch_optional(
            "SELECT next_attempt_at FROM outbox WHERE state IN ('pending', 'sending')
             ORDER BY next_attempt_at, id LIMIT 1",
            &[],
        )
        .await?;
    row.map(|row| decode::timestamp("next_attempt_at", row.integer("next_attempt_at")?))
        .transpose()
}

/// Writes an escalation step (see [`OutboxStore::run_escalation_step`]). The caller commits.
pub async fn escalation_step<C: Connection>(
    conn: &mut C,
    step: &EscalationStepWrite,
) -> Result<EscalationStepOutcome, StoreError> {
    // The incident first, locked: acknowledging takes the same lock, so a step and an
    // acknowledgement are ordered, and a step written after one sees it.
    let incident = sql::incident(conn, step.incident, true).await?;
    if incident.state != IncidentState::Triggered {
        return Ok(EscalationStepOutcome::NotTriggered);
    }
    let key = step.incident.0.to_string();
    let current = step.step_payload.to_string();
    let next = step.next_payload.to_string();
    let moved = match &step.settle {
        None => {
            conn.execute(
                "UPDATE due_work SET payload = $1, due_at = $2
                 WHERE kind = $3 AND key = $4 AND payload = $5",
                &[
                    Arg::Text(&next),
                    Arg::Integer(micros(step.next_due_at)),
                    Arg::Text(ESCALATION_STEP_KIND),
                    Arg::Text(&key),
                    Arg::Text(&current),
                ],
            )
            .await?
        }
        Some(lease) => {
            conn.execute(
                "UPDATE due_work SET payload = $1, due_at = $2, attempts = 0, last_error = NULL,
                 claimed_by = NULL, lease_until = NULL
                 WHERE kind = $3 AND key = $4 AND payload = $5
                 AND claims = $6 AND claimed_by = $7 AND revision = $8",
                &[
                    Arg::Text(&next),
                    Arg::Integer(micros(step.next_due_at)),
                    Arg::Text(ESCALATION_STEP_KIND),
                    Arg::Text(&key),
                    Arg::Text(&current),
                    Arg::Integer(lease.claim),
                    Arg::Text(lease.claimer.as_str()),
                    Arg::Integer(lease.revision),
                ],
            )
            .await?
        }
    };
    if moved == 0 {
        return Ok(EscalationStepOutcome::Stale);
    }
    let mut queued = enqueue(conn, &step.notifications, step.now).await?;
    let mut timeline: Vec<&TimelineData> = step.timeline.iter().collect();
    let mut turn = None;
    if let Some(round) = &step.turn {
        if let Some(candidate) = take_turn(conn, round).await? {
            queued += enqueue(conn, &candidate.notifications, step.now).await?;
            timeline.extend(&candidate.timeline);
            turn = Some(candidate.user.clone());
        }
    }
    let records: Vec<TimelineRecord> = timeline
        .into_iter()
        .map(|data| TimelineRecord {
            incident: IncidentRef::Existing(step.incident),
            at: step.now,
            actor: Actor::system(),
            data: data.clone(),
        })
        .collect();
    sql::append_timeline(conn, &records).await?;
    Ok(EscalationStepOutcome::Written { queued, turn })
}

/// Takes the next turn of a round-robin level and returns whose it is. The counter row is
/// written (and, on PostgreSQL, locked until the commit) before it is read, so two steps
/// running at once take two turns. The caller commits.
async fn take_turn<'a, C: Connection>(
    conn: &mut C,
    turn: &'a EscalationTurn,
) -> Result<Option<&'a TurnCandidate>, StoreError> {
    if turn.candidates.is_empty() {
        return Ok(None);
    }
    sql::check_text("policy", &turn.policy)?;
    let row = conn
        .fetch_one(
            "INSERT INTO escalation_turns (policy, level, next_turn) VALUES ($1, $2, 1)
             ON CONFLICT (policy, level)
             DO UPDATE SET next_turn = escalation_turns.next_turn + 1
             RETURNING next_turn",
            &[Arg::Text(&turn.policy), Arg::Integer(i64::from(turn.level))],
        )
        .await?;
    let taken = row.integer("next_turn")?.saturating_sub(1);
    let count = i64::try_from(turn.candidates.len()).unwrap_or(i64::MAX);
    let index = usize::try_from(taken.rem_euclid(count)).unwrap_or(0);
    Ok(turn.candidates.get(index))
}

/// Writes several escalation steps (see [`OutboxStore::run_escalation_steps`]), in order.
/// The caller commits.
pub async fn escalation_steps<C: Connection>(
    conn: &mut C,
    steps: &[EscalationStepWrite],
) -> Result<Vec<EscalationStepOutcome>, StoreError> {
    let mut outcomes = Vec::with_capacity(steps.len());
    for step in steps {
        outcomes.push(escalation_step(conn, step).await?);
    }
    Ok(outcomes)
}

fn read_key(row: &impl StoredRow) -> Result<ServerKey, StoreError> {
    Ok(ServerKey {
        id: row.integer("id")?,
        secret: row.text("secret")?,
        created_at: decode::timestamp("created_at", row.integer("created_at")?)?,
    })
}

/// The unretired keys of `purpose`, newest first; creates one from `new_secret` when there
/// is none. The caller commits.
pub async fn server_key<C: Connection>(
    conn: &mut C,
    purpose: &str,
    new_secret: &str,
    now: Timestamp,
) -> Result<Vec<ServerKey>, StoreError> {
    let keys = server_keys(conn, purpose).await?;
    if !keys.is_empty() {
        return Ok(keys);
    }
    Ok(vec![insert_key(conn, purpose, new_secret, now).await?])
}

/// Retires the current keys of `purpose` and adds `new_secret`. The caller commits.
pub async fn rotate_server_key<C: Connection>(
    conn: &mut C,
    purpose: &str,
    new_secret: &str,
    now: Timestamp,
) -> Result<ServerKey, StoreError> {
    conn.execute(
        "UPDATE server_keys SET retired_at = $2 WHERE purpose = $1 AND retired_at IS NULL",
        &[Arg::Text(purpose), Arg::Integer(micros(now))],
    )
    .await?;
    insert_key(conn, purpose, new_secret, now).await
}

async fn server_keys<C: Connection>(
    conn: &mut C,
    purpose: &str,
) -> Result<Vec<ServerKey>, StoreError> {
    let lock = conn.dialect().lock_rows;
    let rows = conn
        .fetch_all(
            &format!(
                "SELECT id, secret, created_at FROM server_keys
                 WHERE purpose = $1 AND retired_at IS NULL ORDER BY id DESC LIMIT 16{lock}"
            ),
            &[Arg::Text(purpose)],
        )
        .await?;
    rows.iter().map(read_key).collect()
}

async fn insert_key<C: Connection>(
    conn: &mut C,
    purpose: &str,
    secret: &str,
    now: Timestamp,
) -> Result<ServerKey, StoreError> {
    let row = conn
        .fetch_one(
            "INSERT INTO server_keys (purpose, secret, created_at) VALUES ($1, $2, $3)
             RETURNING id, secret, created_at",
            &[
                Arg::Text(purpose),
                Arg::Text(secret),
                Arg::Integer(micros(now)),
            ],
        )
        .await?;
    read_key(&row)
}
