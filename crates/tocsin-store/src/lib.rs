//! The storage interface every Tocsin backend implements, the rows it returns, and the
//! conformance suite (`conformance`) that each backend runs against itself.
//!
//! Only the store crates touch SQL. Everything that changes state does so inside one
//! transaction per call, executing what `tocsin-core` decides.

pub mod answered;
mod assigned;
#[cfg(feature = "testsuite")]
pub mod conformance;
pub mod decode;
pub mod due;
#[cfg(feature = "testsuite")]
pub mod due_conformance;
pub mod encode;
mod error;
pub mod heartbeat;
#[cfg(feature = "testsuite")]
mod heartbeat_conformance;
mod model;
pub mod monitor_pauses;
pub mod monitor_results;
pub mod outbox;
#[cfg(feature = "testsuite")]
pub mod outbox_conformance;
#[cfg(feature = "testsuite")]
pub mod override_conformance;
pub mod overrides;
pub mod rule_counts;
pub mod sql;
pub mod status;
#[cfg(feature = "testsuite")]
pub mod status_conformance;
mod timeline;
pub mod updates;

pub use assigned::AssignedIds;
#[doc(hidden)]
pub use async_trait::async_trait;
pub use due::DueWorkStore;
pub use error::StoreError;
pub use heartbeat::HeartbeatStore;
pub use model::{
    AlertFilter, AlertRow, AlertSummary, ApiToken, ChangeEventRow, CommandOutcome, Counts,
    EventFilter, EventSummary, Inbound, IncidentFilter, IncidentRow, IngestReport, Page,
    PageRequest, StoredEvent, TimelineEntry, TokenScope,
};
pub use monitor_pauses::MonitorPauseStore;
pub use monitor_results::MonitorResultStore;
pub use outbox::OutboxStore;
pub use overrides::{NewOverride, OverrideFilter, OverrideRow, OverrideStore};
pub use rule_counts::RuleCountStore;
pub use status::StatusStore;

use std::collections::HashMap;

use tocsin_core::{Actor, AlertId, Command, IncidentNumber, ServiceId, Timestamp};

/// How each service resolves its incidents (consulted by the fold) and which channels get its
/// incident updates; a plain `Fn(&ServiceId) -> ResolvePolicy` is one without channels.
pub type ResolvePolicyOf<'a> = &'a dyn updates::ServicePolicy;

/// One storage interface, two implementations (SQLite and PostgreSQL): every concern's
/// interface, plus what concerns the store as a whole. A new concern is a trait of its own,
/// added to the supertraits here.
#[async_trait]
pub trait Store:
    IncidentStore
    + TokenStore
    + DueWorkStore
    + OverrideStore
    + HeartbeatStore
    + OutboxStore
    + MonitorResultStore
    + MonitorPauseStore
    + RuleCountStore
    + StatusStore
    + 'static
{
    /// "sqlite" or "postgres", for logs and metrics.
    fn backend(&self) -> &'static str;

    /// Answers when the database can run a query.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Finishes what is in flight and releases the database: SQLite closes its ingest connection,
    /// stops its checkpointer and copies the write-ahead log into the database file; PostgreSQL
    /// closes its pool. Calls made after it fail.
    async fn close(&self);
}

/// A store's ingest as a blocking call ([`IncidentStore::blocking_ingest`]).
pub trait BlockingIngest: Send + Sync {
    /// What [`IncidentStore::ingest`] does, on the calling thread, which it blocks until the
    /// batch is committed (`Ok`) or refused whole (`Err`). Never call it from an async task
    /// of a shared runtime: it holds the thread for a whole transaction and its sync.
    fn ingest_blocking(
        &self,
        batch: &[Inbound],
        resolve_policy: ResolvePolicyOf<'_>,
    ) -> Result<IngestReport, StoreError>;
}

/// Events, alerts, incidents and their timelines: ingest, reads and incident commands.
#[async_trait]
pub trait IncidentStore: Send + Sync {
    /// Applies a batch of inbound events in one transaction: stores every event, folds alert
    /// events into alerts and incidents (`tocsin_core::fold_batch`) and appends the timeline.
    /// When this returns `Ok`, all of it is committed; on `Err`, none of it is.
    async fn ingest(
        &self,
        batch: &[Inbound],
        resolve_policy: ResolvePolicyOf<'_>,
    ) -> Result<IngestReport, StoreError>;

    /// The same ingest as one blocking call, where the store's ingest is one: for a caller
    /// with a thread of its own for it (the engine's ingest writer), which then runs the
    /// transaction itself instead of handing each batch to another thread and waiting for the
    /// answer. `None` where ingest is asynchronous (PostgreSQL).
    fn blocking_ingest(&self) -> Option<&dyn BlockingIngest> {
        None
    }

    async fn incident(&self, number: IncidentNumber) -> Result<IncidentRow, StoreError>;

    /// Newest first.
    async fn incidents(
        &self,
        filter: &IncidentFilter,
        page: PageRequest,
    ) -> Result<Page<IncidentRow>, StoreError>;

    /// One alert, with the latest payload's details.
    async fn alert(&self, id: AlertId) -> Result<AlertRow, StoreError>;

    /// Newest first, without details (a page of them could be hundreds of megabytes).
    async fn alerts(
        &self,
        filter: &AlertFilter,
        page: PageRequest,
    ) -> Result<Page<AlertSummary>, StoreError>;

    /// Oldest first: the order things happened.
    async fn timeline(
        &self,
        number: IncidentNumber,
        page: PageRequest,
    ) -> Result<Page<TimelineEntry>, StoreError>;

    /// One stored event, with its details.
    async fn event(&self, id: i64) -> Result<StoredEvent, StoreError>;

    /// Stored events, newest first, without details.
    async fn events(
        &self,
        filter: &EventFilter,
        page: PageRequest,
    ) -> Result<Page<EventSummary>, StoreError>;

    /// A service's change events, newest first.
    async fn change_events(
        &self,
        service: &ServiceId,
        page: PageRequest,
    ) -> Result<Page<ChangeEventRow>, StoreError>;

    /// Writes one `alert.folded` timeline entry (by [`Actor::system`], at `now`) for each open
    /// alert whose unlogged folds have waited since `due` or longer (see
    /// `tocsin_core::FOLD_LOG_INTERVAL`), at most `limit` alerts per call. Returns how many
    /// entries it wrote.
    async fn log_due_folds(
        &self,
        due: Timestamp,
        now: Timestamp,
        limit: usize,
    ) -> Result<usize, StoreError>;

    /// Runs an incident command in one transaction: loads the incident and its open alerts
    /// (locked), lets `tocsin_core::plan_command` decide, applies the plan. A command the
    /// incident's state refuses is a `Conflict`; one that changes nothing appends nothing.
    async fn command(
        &self,
        number: IncidentNumber,
        command: &Command,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<CommandOutcome, StoreError>;

    /// [`IncidentStore::command`], and in the same transaction the incident updates for the
    /// channels `policy` gives the incident's service (see [`updates`]).
    async fn command_with_updates(
        &self,
        number: IncidentNumber,
        command: &Command,
        actor: &Actor,
        now: Timestamp,
        policy: ResolvePolicyOf<'_>,
    ) -> Result<CommandOutcome, StoreError>;

    /// Open incidents and alerts, for metrics.
    async fn counts(&self) -> Result<Counts, StoreError>;
}

/// API tokens, stored by the hash of their secret.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores a new API token by the hash of its secret (the secret itself is never stored).
    async fn create_api_token(
        &self,
        name: &str,
        scope: TokenScope,
        secret_hash: &str,
        now: Timestamp,
    ) -> Result<ApiToken, StoreError>;

    /// The unrevoked token with this secret hash, if any.
    async fn api_token_by_hash(&self, secret_hash: &str) -> Result<Option<ApiToken>, StoreError>;

    /// Newest first.
    async fn api_tokens(&self, page: PageRequest) -> Result<Page<ApiToken>, StoreError>;

    async fn revoke_api_token(&self, id: i64, now: Timestamp) -> Result<ApiToken, StoreError>;
}

/// The tables and columns this version reads and writes. Each backend checks them after
/// migrating and refuses to start when one is missing; extra tables and columns (added by a
/// newer version) are fine.
pub const REQUIRED_SCHEMA: &[(&str, &[&str])] = &[
    (
        "incidents",
        &[
            "number",
            "service_id",
            "dedup_key",
            "title",
            "severity",
            "priority",
            "state",
            "open_alerts",
            "created_at",
            "impact_started_at",
            "acknowledged_at",
            "resolved_at",
            "updated_at",
        ],
    ),
    (
        "alerts",
        &[
            "id",
            "incident_number",
            "service_id",
            "dedup_key",
            "state",
            "count",
            "first_seen",
            "last_seen",
            "severity",
            "summary",
            "source",
            "details",
            "acknowledged_at",
            "resolved_at",
            "unlogged_folds",
            "folds_logged_at",
        ],
    ),
    (
        "timeline_entries",
        &["id", "incident_number", "at", "actor", "kind", "data"],
    ),
    (
        "events",
        &[
            "id",
            "service_id",
            "integration",
            "action",
            "dedup_key",
            "severity",
            "summary",
            "source",
            "occurred_at",
            "received_at",
            "alert_id",
            "outcome",
            "details",
        ],
    ),
    (
        "change_events",
        &[
            "id",
            "service_id",
            "summary",
            "source",
            "occurred_at",
            "received_at",
            "details",
            "links",
        ],
    ),
    (
        "api_tokens",
        &[
            "id",
            "name",
            "scope",
            "secret_hash",
            "created_at",
            "revoked_at",
        ],
    ),
    (
        "due_work",
        &[
            "id",
            "kind",
            "key",
            "payload",
            "due_at",
            "attempts",
            "claims",
            "revision",
            "claimed_by",
            "lease_until",
            "last_error",
            "parked_at",
            "created_at",
        ],
    ),
    (
        "schedule_overrides",
        &[
            "id",
            "schedule_id",
            "starts_at",
            "ends_at",
            "user_id",
            "replaces_user_id",
            "created_by",
            "created_at",
        ],
    ),
    (
        "heartbeat_states",
        &[
            "monitor_id",
            "status",
            "since",
            "deadline",
            "last_ping_kind",
            "last_ping_at",
            "last_ping_exit_code",
            "last_ping_body",
            "last_success_at",
            "started_at",
            "started_rid",
            "starts_without_success",
            "crash_looping",
            "created_at",
            "updated_at",
        ],
    ),
    (
        "heartbeat_pings",
        &[
            "id",
            "monitor_id",
            "kind",
            "at",
            "rid",
            "exit_code",
            "duration_ms",
            "body",
            "remote",
            "method",
        ],
    ),
    (
        "outbox",
        &[
            "id",
            "incident_number",
            "recipient_kind",
            "recipient",
            "contact",
            "method",
            "kind",
            "payload",
            "idempotency_key",
            "state",
            "attempts",
            "next_attempt_at",
            "claimed_by",
            "claim_until",
            "last_error",
            "created_at",
            "settled_at",
        ],
    ),
    (
        "server_keys",
        &["id", "purpose", "secret", "created_at", "retired_at"],
    ),
    ("escalation_turns", &["policy", "level", "next_turn"]),
    ("monitor_keys", &["id", "name"]),
    ("monitor_errors", &["id", "monitor", "text", "last_at"]),
    (
        "monitor_checks",
        &[
            "monitor",
            "at",
            "status",
            "latency_ms",
            "http_status",
            "error",
        ],
    ),
    (
        "monitor_check_rollups",
        &[
            "monitor", "period", "start", "checks", "up", "degraded", "down", "p50_ms", "p95_ms",
            "p99_ms",
        ],
    ),
    (
        "status_incidents",
        &[
            "incident_number",
            "public_id",
            "name",
            "impact",
            "status",
            "started_at",
            "published_at",
            "updated_at",
            "monitoring_at",
            "resolved_at",
        ],
    ),
    (
        "status_updates",
        &[
            "id",
            "incident_number",
            "status",
            "message",
            "affected",
            "created_at",
            "created_by",
        ],
    ),
    (
        "status_maintenances",
        &[
            "id",
            "name",
            "message",
            "components",
            "starts_at",
            "ends_at",
            "created_at",
            "created_by",
            "updated_at",
            "cancelled_at",
        ],
    ),
    (
        "status_component_overrides",
        &["component_id", "status", "set_at", "set_by"],
    ),
];

/// Compares the columns a database has with [`REQUIRED_SCHEMA`]; `columns_of` returns the
/// columns of a table (empty when the table does not exist).
pub fn missing_schema(columns_of: &HashMap<String, Vec<String>>) -> Option<String> {
    let mut missing = Vec::new();
    for (table, columns) in REQUIRED_SCHEMA {
        match columns_of.get(*table) {
            None => missing.push(format!("table `{table}`")),
            Some(present) if present.is_empty() => missing.push(format!("table `{table}`")),
            Some(present) => {
                for column in *columns {
                    if !present.iter().any(|have| have == column) {
                        missing.push(format!("column `{table}.{column}`"));
                    }
                }
            }
        }
    }
    (!missing.is_empty()).then(|| {
        format!(
            "missing {}. The database was changed by hand or by a tool other than tocsin; restore it from a backup or point tocsin at another database",
            missing.join(", ")
        )
    })
}
