//! `/api/v1`: incidents, alerts, timelines, services. Documented as OpenAPI (generated from
//! these handlers, so the document and the routes cannot drift apart).

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Json;
use serde::{Deserialize, Serialize};
use tocsin_core::{
    AlertId, AlertState, Command, EventAction, IncidentNumber, IncidentState, Priority,
    ResolvePolicy, ServiceId, Severity,
};
use tocsin_store::{
    AlertFilter, AlertRow, AlertSummary, ChangeEventRow, CommandOutcome, EventFilter, EventSummary,
    IncidentFilter, IncidentRow, PageRequest, StoredEvent, TimelineEntry, TokenScope,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{ReadAccess, WriteAccess};
use crate::error::ApiError;
pub use crate::error::ErrorBody;
use crate::AppState;

/// The longest note accepted, in characters.
const MAX_NOTE_CHARS: usize = 10_000;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tocsin API",
        description = "Incidents, alerts and their timelines. Every request needs an API token \
            (`Authorization: Bearer tcn_...`, created with `tocsin token create`): reads need \
            scope `read`, changes scope `write`. Lists are newest first (timelines oldest first) \
            and paginated: pass `next_cursor` back as `cursor`; `limit` defaults to 50, at most 500.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerToken),
    tags(
        (name = "incidents", description = "Incidents and their timelines"),
        (name = "alerts", description = "Alerts and the events folded into them"),
        (name = "services", description = "Services declared in the config"),
        (name = "heartbeats", description = "Heartbeat monitors and their pings"),
        (name = "monitors", description = "The monitors Tocsin probes, and their state"),
        (name = "config", description = "The config file in force")
    )
)]
struct ApiDoc;

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    let router = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(list_incidents))
        .routes(routes!(get_incident))
        .routes(routes!(acknowledge_incident))
        .routes(routes!(resolve_incident))
        .routes(routes!(escalate_incident))
        .routes(routes!(reassign_incident))
        .routes(routes!(set_priority))
        .routes(routes!(add_note))
        .routes(routes!(incident_timeline))
        .routes(routes!(incident_alerts))
        .routes(routes!(list_alerts))
        .routes(routes!(get_alert))
        .routes(routes!(alert_events))
        .routes(routes!(get_event))
        .routes(routes!(list_services))
        .routes(routes!(service_changes))
        .routes(routes!(crate::reload::reload_config))
        .routes(routes!(crate::heartbeats::list_heartbeats))
        .routes(routes!(crate::heartbeats::get_heartbeat))
        .routes(routes!(crate::heartbeats::heartbeat_pings))
        .routes(routes!(crate::monitors::list_monitors))
        .routes(routes!(crate::monitors::get_monitor))
        .routes(routes!(crate::monitors::pause_monitor))
        .routes(routes!(crate::monitors::resume_monitor))
        .routes(routes!(crate::monitors::monitor_results))
        .merge(crate::oncall::routes())
        .merge(crate::notices::routes())
        .merge(crate::status_admin::routes());
    let document = router.get_openapi().clone();
    let json = document
        .to_pretty_json()
        .unwrap_or_else(|_| "{}".to_owned());
    router
        .route(
            "/api/v1/openapi.json",
            get(move || async move { ([(header::CONTENT_TYPE, "application/json")], json) }),
        )
        .merge(docs().into())
}

/// Where the browsable API reference is served.
pub const DOCS_PATH: &str = "/api/v1/docs";

/// The browsable API reference at [`DOCS_PATH`]: Swagger UI, its assets served by Tocsin
/// itself (nothing comes from a CDN, and the document is not sent to the public validator),
/// reading `/api/v1/openapi.json`. "Authorize" takes an API token for "Try it out".
fn docs() -> axum::Router<AppState> {
    utoipa_swagger_ui::SwaggerUi::new(DOCS_PATH)
        .config(
            utoipa_swagger_ui::Config::new(["/api/v1/openapi.json"])
                .validator_url("none")
                .persist_authorization(false),
        )
        .into()
}

/// The OpenAPI document served at `/api/v1/openapi.json`.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    routes().split_for_parts().1
}

// ---------------------------------------------------------------- wire types
//
// Public so that clients (the CLI) decode answers into the same types the server encodes.

/// The most bytes of items one response carries. A page whose items would need more ends
/// early, with a `next_cursor` for the rest, so no single answer can be huge whatever its
/// `limit` (one item is always sent, and is itself bounded by the 512 KB ingestion limit).
pub const RESPONSE_BUDGET_BYTES: usize = 4 * 1024 * 1024;

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident from $core:ident, $case:tt {
        $($(#[$variant_meta:meta])* $variant:ident = $text:tt),+ $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = $case)]
        pub enum $name {
            $($(#[$variant_meta])* $variant),+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl From<$core> for $name {
            fn from(value: $core) -> Self {
                match value {
                    $($core::$variant => $name::$variant),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum! {
    /// Where an incident is in its life.
    IncidentStateName from IncidentState, "lowercase" {
        Triggered = "triggered",
        Acknowledged = "acknowledged",
        Resolved = "resolved",
    }
}

wire_enum! {
    /// Where an alert is in its life.
    AlertStateName from AlertState, "lowercase" {
        Triggered = "triggered",
        Acknowledged = "acknowledged",
        Resolved = "resolved",
    }
}

wire_enum! {
    /// An incident's priority, `P1` (most urgent) to `P5`.
    PriorityName from Priority, "UPPERCASE" {
        P1 = "P1",
        P2 = "P2",
        P3 = "P3",
        P4 = "P4",
        P5 = "P5",
    }
}

wire_enum! {
    /// How bad an event says things are.
    SeverityName from Severity, "lowercase" {
        Critical = "critical",
        Error = "error",
        Warning = "warning",
        Info = "info",
    }
}

wire_enum! {
    /// What an inbound event asks for.
    EventActionName from EventAction, "lowercase" {
        Trigger = "trigger",
        Acknowledge = "acknowledge",
        Resolve = "resolve",
    }
}

wire_enum! {
    /// How a service's incidents resolve: `auto` with their last alert, `manual` by a person.
    ResolvePolicyName from ResolvePolicy, "lowercase" {
        Auto = "auto",
        Manual = "manual",
    }
}

wire_enum! {
    /// What an API token may do: `read` allows GETs, `write` everything.
    TokenScopeName from TokenScope, "lowercase" {
        Read = "read",
        Write = "write",
    }
}

/// An incident: one or more alerts of a service, with a priority and a state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Incident {
    /// Sequential number, shown to people ("incident #42").
    pub number: i64,
    pub title: String,
    /// The service's id from the config.
    pub service: String,
    /// The dedup key of the alert that opened it.
    pub dedup_key: String,
    pub state: IncidentStateName,
    pub priority: PriorityName,
    /// Severity of the opening event.
    pub severity: SeverityName,
    /// Alerts of this incident not yet resolved.
    pub open_alerts: i64,
    pub created_at: String,
    /// When the first signal says the problem began.
    pub impact_started_at: String,
    pub acknowledged_at: Option<String>,
    pub resolved_at: Option<String>,
    pub updated_at: String,
    /// From creation to the first acknowledgement.
    pub time_to_acknowledge_seconds: Option<f64>,
    /// From the start of impact to resolution.
    pub time_to_resolve_seconds: Option<f64>,
}

impl From<IncidentRow> for Incident {
    fn from(row: IncidentRow) -> Self {
        let times = row.times();
        Incident {
            number: row.number.0,
            title: row.title,
            service: row.service.to_string(),
            dedup_key: row.dedup_key.into_string(),
            state: row.state.into(),
            priority: row.priority.into(),
            severity: row.severity.into(),
            open_alerts: row.open_alerts,
            created_at: row.created_at.to_string(),
            impact_started_at: row.impact_started_at.to_string(),
            acknowledged_at: row.acknowledged_at.map(|at| at.to_string()),
            resolved_at: row.resolved_at.map(|at| at.to_string()),
            updated_at: row.updated_at.to_string(),
            time_to_acknowledge_seconds: times.time_to_acknowledge().map(|d| d.as_secs_f64()),
            time_to_resolve_seconds: times.time_to_resolve().map(|d| d.as_secs_f64()),
        }
    }
}

/// Events folded by (service, dedup key), as lists show them: without the latest payload's
/// details (`GET /api/v1/alerts/{id}` has them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AlertItem {
    pub id: i64,
    pub incident: i64,
    pub service: String,
    pub dedup_key: String,
    pub state: AlertStateName,
    /// How many trigger events folded into it.
    pub count: i64,
    pub first_seen: String,
    pub last_seen: String,
    pub severity: SeverityName,
    /// Summary of the latest event.
    pub summary: String,
    pub source: String,
    pub acknowledged_at: Option<String>,
    pub resolved_at: Option<String>,
}

impl From<AlertSummary> for AlertItem {
    fn from(row: AlertSummary) -> Self {
        AlertItem {
            id: row.id.0,
            incident: row.incident.0,
            service: row.service.to_string(),
            dedup_key: row.dedup_key.into_string(),
            state: row.state.into(),
            count: row.count,
            first_seen: row.first_seen.to_string(),
            last_seen: row.last_seen.to_string(),
            severity: row.severity.into(),
            summary: row.summary,
            source: row.source,
            acknowledged_at: row.acknowledged_at.map(|at| at.to_string()),
            resolved_at: row.resolved_at.map(|at| at.to_string()),
        }
    }
}

/// One alert, with the latest payload's details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Alert {
    #[serde(flatten)]
    pub alert: AlertItem,
    /// Details of the latest event, as sent.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

impl From<AlertRow> for Alert {
    fn from(row: AlertRow) -> Self {
        Alert {
            alert: row.alert.into(),
            details: row.details,
        }
    }
}

/// One append-only record of something that happened to an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TimelineItem {
    pub id: i64,
    pub incident: i64,
    pub at: String,
    /// Who did it: `integration:<kind>`, `token:<name>` or `tocsin`.
    pub actor: String,
    /// What happened (`kind`) and its details (`data`).
    #[serde(flatten)]
    pub what: TimelineData,
}

/// A timeline entry's `kind` and the fields of its `data`, by kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", content = "data")]
pub enum TimelineData {
    /// An alert opened this incident.
    #[serde(rename = "incident.triggered")]
    IncidentTriggered {
        dedup_key: String,
        severity: String,
        summary: String,
        source: String,
        /// When the first signal says the problem began.
        impact_started_at: String,
    },
    /// A new alert joined the open incident.
    #[serde(rename = "alert.opened")]
    AlertOpened {
        dedup_key: String,
        severity: String,
        summary: String,
        source: String,
    },
    /// Events folded into an open alert since its previous `alert.folded` entry.
    #[serde(rename = "alert.folded")]
    AlertFolded {
        dedup_key: String,
        /// How many folds this entry counts.
        events: i64,
        /// The alert's count after them.
        count: i64,
        last_summary: String,
        /// Absent in entries written before it was recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_seen: Option<String>,
    },
    #[serde(rename = "alert.acknowledged")]
    AlertAcknowledged { dedup_key: String },
    #[serde(rename = "alert.resolved")]
    AlertResolved { dedup_key: String },
    /// By an event (no count) or a command (how many triggered alerts it acknowledged).
    #[serde(rename = "incident.acknowledged")]
    IncidentAcknowledged {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        alerts_acknowledged: Option<i64>,
    },
    /// By the event that resolved the last alert (no count) or a command (how many open
    /// alerts it resolved).
    #[serde(rename = "incident.resolved")]
    IncidentResolved {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        alerts_resolved: Option<i64>,
    },
    /// Every alert resolved; the service resolves incidents by hand.
    #[serde(rename = "incident.all_alerts_resolved")]
    AllAlertsResolved {},
    #[serde(rename = "incident.priority_changed")]
    PriorityChanged { from: String, to: String },
    #[serde(rename = "note.added")]
    NoteAdded { text: String },
    /// A level of the escalation policy was paged.
    #[serde(rename = "escalation.notified")]
    EscalationNotified {
        pass: u32,
        level: u32,
        recipients: Vec<String>,
    },
    /// A level resolved to nobody and was skipped.
    #[serde(rename = "escalation.skipped")]
    EscalationSkipped {
        pass: u32,
        level: u32,
        reason: String,
    },
    /// The next escalation level was asked for at once.
    #[serde(rename = "incident.escalated")]
    IncidentEscalated {},
    /// The incident was handed to a user, who was paged at once.
    #[serde(rename = "incident.reassigned")]
    IncidentReassigned { to: String },
    /// Acknowledged and unresolved for the service's `ack_timeout`: triggered again, and the
    /// escalation starts over at level 1.
    #[serde(rename = "incident.ack_timeout")]
    IncidentAckTimeout { timeout_minutes: u64 },
    /// One delivery attempt of a notification.
    #[serde(rename = "notification.attempted")]
    NotificationAttempted {
        recipient: String,
        method: String,
        contact: String,
        result: String,
        attempt: i64,
        latency_ms: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A page failed for good on one contact method; the user's next untried contact method
    /// (in the config's order) is paged instead, or none is left (`next_contact` absent).
    #[serde(rename = "notification.rerouted")]
    NotificationRerouted {
        recipient: String,
        failed_contact: String,
        failed_method: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next_contact: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next_method: Option<String>,
    },
    /// A public update was posted on the status page (`published`: it was the first, which
    /// made the incident public).
    #[serde(rename = "status.updated")]
    StatusUpdated {
        /// `investigating`, `identified`, `monitoring` or `resolved`.
        status: String,
        message: String,
        /// The components it set and the status it set on each.
        affected: Vec<AffectedComponent>,
        published: bool,
    },
}

/// A component a status update set, and the status it set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AffectedComponent {
    /// The component's id from the config.
    pub component: String,
    /// `operational`, `degraded_performance`, `partial_outage`, `major_outage` or
    /// `under_maintenance`.
    pub status: String,
}

impl From<tocsin_core::TimelineData> for TimelineData {
    fn from(data: tocsin_core::TimelineData) -> Self {
        use tocsin_core::TimelineData as Data;
        match data {
            Data::IncidentTriggered {
                dedup_key,
                severity,
                summary,
                source,
                impact_started_at,
            } => TimelineData::IncidentTriggered {
                dedup_key: dedup_key.into_string(),
                severity: severity.to_string(),
                summary,
                source,
                impact_started_at: impact_started_at.to_string(),
            },
            Data::AlertOpened {
                dedup_key,
                severity,
                summary,
                source,
            } => TimelineData::AlertOpened {
                dedup_key: dedup_key.into_string(),
                severity: severity.to_string(),
                summary,
                source,
            },
            Data::AlertFolded {
                dedup_key,
                events,
                count,
                last_summary,
                last_seen,
            } => TimelineData::AlertFolded {
                dedup_key: dedup_key.into_string(),
                events,
                count,
                last_summary,
                last_seen: last_seen.map(|at| at.to_string()),
            },
            Data::AlertAcknowledged { dedup_key } => TimelineData::AlertAcknowledged {
                dedup_key: dedup_key.into_string(),
            },
            Data::AlertResolved { dedup_key } => TimelineData::AlertResolved {
                dedup_key: dedup_key.into_string(),
            },
            Data::IncidentAcknowledged {
                alerts_acknowledged,
            } => TimelineData::IncidentAcknowledged {
                alerts_acknowledged,
            },
            Data::IncidentResolved { alerts_resolved } => {
                TimelineData::IncidentResolved { alerts_resolved }
            }
            Data::AllAlertsResolved => TimelineData::AllAlertsResolved {},
            Data::PriorityChanged { from, to } => TimelineData::PriorityChanged {
                from: from.to_string(),
                to: to.to_string(),
            },
            Data::NoteAdded { text } => TimelineData::NoteAdded { text },
            Data::EscalationNotified {
                pass,
                level,
                recipients,
            } => TimelineData::EscalationNotified {
                pass,
                level,
                recipients,
            },
            Data::EscalationSkipped {
                pass,
                level,
                reason,
            } => TimelineData::EscalationSkipped {
                pass,
                level,
                reason,
            },
            Data::IncidentEscalated => TimelineData::IncidentEscalated {},
            Data::IncidentReassigned { to } => TimelineData::IncidentReassigned { to },
            Data::IncidentAckTimeout { timeout_minutes } => {
                TimelineData::IncidentAckTimeout { timeout_minutes }
            }
            Data::NotificationAttempted {
                recipient,
                method,
                contact,
                result,
                attempt,
                latency_ms,
                error,
            } => TimelineData::NotificationAttempted {
                recipient,
                method,
                contact,
                result,
                attempt,
                latency_ms,
                error,
            },
            Data::NotificationRerouted {
                recipient,
                failed_contact,
                failed_method,
                next_contact,
                next_method,
            } => TimelineData::NotificationRerouted {
                recipient,
                failed_contact,
                failed_method,
                next_contact,
                next_method,
            },
            Data::StatusUpdated {
                status,
                message,
                affected,
                published,
            } => TimelineData::StatusUpdated {
                status,
                message,
                affected: affected
                    .into_iter()
                    .map(|(component, status)| AffectedComponent { component, status })
                    .collect(),
                published,
            },
        }
    }
}

impl From<TimelineEntry> for TimelineItem {
    fn from(entry: TimelineEntry) -> Self {
        TimelineItem {
            id: entry.id,
            incident: entry.incident.0,
            at: entry.at.to_string(),
            actor: entry.actor.to_string(),
            what: entry.data.into(),
        }
    }
}

/// An inbound event as stored, as lists show it: without its details
/// (`GET /api/v1/events/{id}` has them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventItem {
    pub id: i64,
    pub service: String,
    pub integration: String,
    pub action: EventActionName,
    pub dedup_key: String,
    pub severity: SeverityName,
    pub summary: String,
    pub source: String,
    pub occurred_at: Option<String>,
    pub received_at: String,
    pub alert: Option<i64>,
    /// What the fold did: `opened`, `folded`, `acknowledged`, `resolved`,
    /// `ignored_no_open_alert`, `ignored_already_acknowledged`.
    pub outcome: String,
}

impl From<EventSummary> for EventItem {
    fn from(event: EventSummary) -> Self {
        EventItem {
            id: event.id,
            service: event.service.to_string(),
            integration: event.integration.to_string(),
            action: event.action.into(),
            dedup_key: event.dedup_key.into_string(),
            severity: event.severity.into(),
            summary: event.summary,
            source: event.source,
            occurred_at: event.occurred_at.map(|at| at.to_string()),
            received_at: event.received_at.to_string(),
            alert: event.alert.map(|id| id.0),
            outcome: event.outcome,
        }
    }
}

/// One stored event, with its details as sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    #[serde(flatten)]
    pub event: EventItem,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

impl From<StoredEvent> for Event {
    fn from(event: StoredEvent) -> Self {
        Event {
            event: event.event.into(),
            details: event.details,
        }
    }
}

/// A change (deploy, config push) reported on a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChangeItem {
    pub id: i64,
    pub service: String,
    pub summary: String,
    pub source: Option<String>,
    pub occurred_at: Option<String>,
    pub received_at: String,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    #[schema(value_type = Vec<Object>)]
    pub links: serde_json::Value,
}

impl From<ChangeEventRow> for ChangeItem {
    fn from(change: ChangeEventRow) -> Self {
        ChangeItem {
            id: change.id,
            service: change.service.to_string(),
            summary: change.summary,
            source: change.source,
            occurred_at: change.occurred_at.map(|at| at.to_string()),
            received_at: change.received_at.to_string(),
            details: change.details,
            links: change.links,
        }
    }
}

/// A service declared in the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Service {
    pub id: String,
    pub name: String,
    pub resolve: ResolvePolicyName,
}

/// The position of a listed item in its list, as the store's cursors count it.
trait Listed {
    fn cursor(&self) -> i64;
}

impl Listed for Incident {
    fn cursor(&self) -> i64 {
        self.number
    }
}

impl Listed for AlertItem {
    fn cursor(&self) -> i64 {
        self.id
    }
}

impl Listed for TimelineItem {
    fn cursor(&self) -> i64 {
        self.id
    }
}

impl Listed for EventItem {
    fn cursor(&self) -> i64 {
        self.id
    }
}

impl Listed for ChangeItem {
    fn cursor(&self) -> i64 {
        self.id
    }
}

/// Keeps the leading items whose JSON fits in `budget` bytes (at least one), and says where the
/// next page starts: after the last item kept when the budget cut the page, else `next`.
pub(crate) fn within_budget<T: Serialize>(
    mut items: Vec<(i64, T)>,
    next: Option<i64>,
    budget: usize,
) -> (Vec<T>, Option<i64>) {
    let mut used = 0usize;
    let mut keep = items.len();
    for (index, (_, item)) in items.iter().enumerate() {
        let size = json_size(item);
        if index > 0 && used.saturating_add(size) > budget {
            keep = index;
            break;
        }
        // The comma between items.
        used = used.saturating_add(size + 1);
    }
    let next = if keep < items.len() {
        items.truncate(keep);
        items.last().map(|(cursor, _)| *cursor)
    } else {
        next
    };
    (items.into_iter().map(|(_, item)| item).collect(), next)
}

/// The length of a value's JSON encoding, without building it.
fn json_size<T: Serialize>(value: &T) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Encoding plain data into a writer that cannot fail does not fail; should it ever, the
    // item counts as too large to share a page.
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => counter.0,
        Err(_) => usize::MAX,
    }
}

macro_rules! page_type {
    ($name:ident, $item:ty) => {
        /// A page of a list. Pass `next_cursor` back as `cursor` for the next page; it is null
        /// on the last page. A page may hold fewer items than `limit` when their size reaches
        /// the response budget (4 MB); `next_cursor` then continues where it stopped.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
        pub struct $name {
            pub items: Vec<$item>,
            pub next_cursor: Option<String>,
        }

        impl $name {
            /// `items` with their cursors, in list order; `next` is the store's next cursor.
            fn from_positioned(items: Vec<(i64, $item)>, next: Option<i64>, budget: usize) -> Self {
                let (items, next) = within_budget(items, next, budget);
                $name {
                    items,
                    next_cursor: next.map(|cursor| cursor.to_string()),
                }
            }
        }
    };
    ($name:ident, $item:ty, listed) => {
        page_type!($name, $item);

        impl $name {
            fn new<T: Into<$item>>(page: tocsin_store::Page<T>) -> Self {
                Self::with_budget(page, RESPONSE_BUDGET_BYTES)
            }

            fn with_budget<T: Into<$item>>(page: tocsin_store::Page<T>, budget: usize) -> Self {
                let items = page
                    .items
                    .into_iter()
                    .map(|item| {
                        let item: $item = item.into();
                        (item.cursor(), item)
                    })
                    .collect();
                Self::from_positioned(items, page.next, budget)
            }
        }
    };
}

page_type!(IncidentPage, Incident, listed);
page_type!(AlertPage, AlertItem, listed);
page_type!(TimelinePage, TimelineItem, listed);
page_type!(EventPage, EventItem, listed);
page_type!(ChangePage, ChangeItem, listed);
page_type!(ServicePage, Service);

/// The incident after a command, and whether the command changed it (repeating a command
/// that already took effect changes nothing and adds nothing to the timeline).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CommandResult {
    pub incident: Incident,
    pub changed: bool,
}

impl From<CommandOutcome> for CommandResult {
    fn from(outcome: CommandOutcome) -> Self {
        CommandResult {
            changed: outcome.transition == tocsin_core::Transition::Changed,
            incident: outcome.incident.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReassignRequest {
    /// The id of a user declared in the config (not a bot, with at least one notify rule).
    pub user: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriorityRequest {
    /// `P1` to `P5`.
    #[schema(pattern = r"^[Pp][1-5]$")]
    pub priority: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteRequest {
    /// The note, 1 to 10,000 characters, not all white space, without NUL characters.
    #[schema(
        min_length = 1,
        max_length = 10000,
        pattern = r"^[^\x00]*[^\s\x00][^\x00]*$"
    )]
    pub text: String,
}

// ---------------------------------------------------------------- parameters

/// Pagination, shared by every list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageParams {
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<i64>, minimum = 1)]
    cursor: Option<String>,
    /// Items per page, 1 to 500 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
}

impl PageParams {
    pub(crate) fn new(cursor: Option<String>, limit: Option<String>) -> Self {
        PageParams { cursor, limit }
    }

    pub(crate) fn page(&self) -> Result<PageRequest, ApiError> {
        let after = match &self.cursor {
            None => None,
            Some(cursor) => Some(
                cursor
                    .parse::<i64>()
                    .ok()
                    .filter(|cursor| *cursor > 0)
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "cursor",
                            format!(
                                "cursor {:?} is not a `next_cursor` value from a previous page; \
                                 leave it out for the first page",
                                fields_echo(cursor)
                            ),
                        )
                    })?,
            ),
        };
        let limit = match &self.limit {
            None => PageRequest::DEFAULT_LIMIT,
            Some(limit) => limit
                .parse::<u32>()
                .ok()
                .filter(|limit| (1..=PageRequest::MAX_LIMIT).contains(limit))
                .ok_or_else(|| {
                    ApiError::invalid(
                        "limit",
                        format!(
                            "limit must be a whole number from 1 to {}",
                            PageRequest::MAX_LIMIT
                        ),
                    )
                })?,
        };
        Ok(PageRequest::new(after, limit))
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct IncidentListParams {
    /// Comma-separated states: `triggered`, `acknowledged`, `resolved`, or `open` for the
    /// first two. Default: all.
    #[param(
        pattern = r"^(triggered|acknowledged|resolved|open)(,(triggered|acknowledged|resolved|open))*$"
    )]
    state: Option<String>,
    /// A service id.
    #[param(pattern = r"^[^\x00]*$")]
    service: Option<String>,
    /// `P1` to `P5`.
    #[param(pattern = r"^[Pp][1-5]$")]
    priority: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<i64>, minimum = 1)]
    cursor: Option<String>,
    /// Items per page, 1 to 500 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AlertListParams {
    /// `triggered`, `acknowledged` or `resolved`.
    #[param(pattern = r"^(triggered|acknowledged|resolved)$")]
    state: Option<String>,
    /// A service id.
    #[param(pattern = r"^[^\x00]*$")]
    service: Option<String>,
    /// An incident number.
    #[param(value_type = Option<i64>, minimum = 1)]
    incident: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<i64>, minimum = 1)]
    cursor: Option<String>,
    /// Items per page, 1 to 500 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
}

/// A text parameter that reaches the store: refused when it holds a NUL character, which no
/// identifier contains and PostgreSQL cannot compare.
pub(crate) fn text_param(field: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(value) if value.contains('\0') => Err(ApiError::invalid(
            field,
            format!("{field} must not contain a NUL character (%00)"),
        )),
        other => Ok(other),
    }
}

/// A value repeated in an error message: at most 64 characters.
fn fields_echo(value: &str) -> String {
    value.chars().take(64).collect()
}

pub(crate) fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(value)| value)
        .map_err(|rejection| ApiError::invalid("query", rejection.body_text()))
}

pub(crate) fn body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(value)| value)
        .map_err(|rejection| ApiError::invalid("body", rejection.body_text()))
}

fn incident_number(value: &str) -> Result<IncidentNumber, ApiError> {
    value
        .parse::<i64>()
        .ok()
        .filter(|number| *number > 0)
        .map(IncidentNumber)
        .ok_or_else(|| ApiError::invalid("number", format!("{value:?} is not an incident number")))
}

fn alert_id(value: &str) -> Result<AlertId, ApiError> {
    value
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .map(AlertId)
        .ok_or_else(|| ApiError::invalid("id", format!("{value:?} is not an alert id")))
}

fn incident_states(value: &str) -> Result<Vec<IncidentState>, ApiError> {
    let mut states = Vec::new();
    for part in value.split(',') {
        if part == "open" {
            states.extend([IncidentState::Triggered, IncidentState::Acknowledged]);
        } else {
            states.push(part.parse().map_err(|error: tocsin_core::UnknownValue| {
                ApiError::invalid("state", format!("{error}, open"))
            })?);
        }
    }
    Ok(states)
}

fn priority(field: &str, value: &str) -> Result<Priority, ApiError> {
    value
        .parse()
        .map_err(|error: tocsin_core::UnknownValue| ApiError::invalid(field, error.to_string()))
}

// ---------------------------------------------------------------- handlers

/// List incidents, newest first.
#[utoipa::path(get, path = "/api/v1/incidents", tag = "incidents",
    params(IncidentListParams),
    security(("api_token" = [])),
    responses(
        (status = 200, description = "A page of incidents", body = IncidentPage),
        (status = 400, description = "A parameter is invalid", body = ErrorBody),
        (status = 401, description = "No valid API token", body = ErrorBody),
    ))]
async fn list_incidents(
    State(state): State<AppState>,
    _access: ReadAccess,
    params: Result<Query<IncidentListParams>, QueryRejection>,
) -> Result<Json<IncidentPage>, ApiError> {
    let params = query(params)?;
    let page = PageParams {
        cursor: params.cursor,
        limit: params.limit,
    }
    .page()?;
    let filter = IncidentFilter {
        states: params
            .state
            .as_deref()
            .map(incident_states)
            .transpose()?
            .unwrap_or_default(),
        service: text_param("service", params.service)?.map(ServiceId::new),
        priority: params
            .priority
            .as_deref()
            .map(|value| priority("priority", value))
            .transpose()?,
    };
    let incidents = state.engine.incidents(&filter, page).await?;
    Ok(Json(IncidentPage::new(incidents)))
}

/// Get one incident.
#[utoipa::path(get, path = "/api/v1/incidents/{number}", tag = "incidents",
    params(("number" = i64, Path, description = "Incident number", minimum = 1)),
    security(("api_token" = [])),
    responses(
        (status = 200, description = "The incident", body = Incident),
        (status = 400, description = "The number is invalid", body = ErrorBody),
        (status = 401, description = "No valid API token", body = ErrorBody),
        (status = 404, description = "No such incident", body = ErrorBody),
    ))]
async fn get_incident(
    State(state): State<AppState>,
    _access: ReadAccess,
    Path(number): Path<String>,
) -> Result<Json<Incident>, ApiError> {
    let incident = state.engine.incident(incident_number(&number)?).await?;
    Ok(Json(incident.into()))
}

/// Acknowledge an incident and its triggered alerts. Idempotent; a resolved incident is a 409.
#[utoipa::path(post, path = "/api/v1/incidents/{number}/acknowledge", tag = "incidents",
    params(("number" = i64, Path, description = "Incident number", minimum = 1)),
    security(("api_token" = [])),
    responses(
        (status = 200, description = "The incident afterwards", body = CommandResult),
        (status = 400, description = "The number is invalid", body = ErrorBody),
        (status = 401, description = "No valid API token", body = ErrorBody),
        (status = 403, description = "The token cannot write", body = ErrorBody),
        (status = 404, description = "No such incident", body = ErrorBody),
        (status = 409, description = "The incident is resolved", body = ErrorBody),
    ))]
async fn acknowledge_incident(
    State(state): State<AppState>,
    access: WriteAccess,
    Path(number): Path<String>,
) -> Result<Json<CommandResult>, ApiError> {
    let outcome = state
        .engine
        .command(
            incident_number(&number)?,
            &Command::Acknowledge,
            &access.actor(),
        )
        .await?;
    Ok(Json(outcome.into()))
}

/// Page the incident's next escalation level now instead of waiting for the level's timeout.
/// Only a triggered incident escalates; an acknowledged or resolved one is a 409.
#[utoipa::path(post, path = "/api/v1/incidents/{number}/escalate", tag = "incidents",
    params(("number" = i64, Path, description = "Incident number", minimum = 1)),
    security(("api_token" = [])),
    responses(
        (status = 200, description = "The incident afterwards", body = CommandResult),
        (status = 400, description = "The number is invalid", body = ErrorBody),
        (status = 401, description = "No valid API token", body = ErrorBody),
        (status = 403, description = "The token cannot write", body = ErrorBody),
        (status = 404, description = "No such incident", body = ErrorBody),
        (status = 409, description = "The incident is not triggered", body = ErrorBody),
    ))]
async fn escalate_incident(
    State(state): State<AppState>,
    access: WriteAccess,
    Path(number): Path<String>,
) -> Result<Json<CommandResult>, ApiError> {
    let outcome = state
        .engine
        .command(
            incident_number(&number)?,
            &Command::Escalate,
            &access.actor(),
        )
        .await?;
    Ok(Json(outcome.into()))
}

/// Hand an open incident to a user and page them at once by each of their notify rules (in
/// the same transaction). Notifications of the incident still pending are withdrawn; the
/// incident keeps its state and its escalation. An unknown user, a bot or a user without
/// notify rules is a 400 naming `user`, and nothing is stored; a resolved incident is a 409.
#[utoipa::path(post, path = "/api/v1/incidents/{number}/reassign", tag = "incidents",
    params(("number" = i64, Path, description = "Incident number", minimum = 1)),
    request_body = ReassignRequest,
    security(("api_token" = [])),
    responses(
        (status = 200, description = "The incident afterwards", body = CommandResult),
        (status = 400, description = "The number is invalid, or the user is a bot or has no notify rules; nothing is stored", body = ErrorBody),
        (status = 401, description = "No valid API token", body = ErrorBody),
        (status = 403, description = "The token cannot write", body = ErrorBody),
        (status = 404, description = "No such incident, or no such user (`field` is `user`)", body = ErrorBody),
        (status = 409, description = "The incident is resolved", body = ErrorBody),
    ))]
async fn reassign_incident(
    State(state): State<AppState>,
    access: WriteAccess,
    Path(number): Path<String>,
    request: Result<Json<ReassignRequest>, JsonRejection>,
) -> Result<Json<CommandResult>, ApiError> {
    let number = incident_number(&number)?;
    let request = body(request)?;
    // An unknown incident is a 404 whatever the body says.
    state.engine.incident(number).await?;
    let user = request.user.trim();
    let outcome = state
        .engine
        .reassign(number, user, &access.actor())
        .await
        .map_err(|error| match error {
            // A user the config does not declare is not found, like an unknown id in a path;
            // a declared user who cannot be paged is a bad request.
            tocsin_engine::ReassignError::Refused(
                refusal @ tocsin_engine::ReassignRefusal::UnknownUser(_),
            ) => ApiError::not_found(refusal.to_string()).with_field("user"),
            tocsin_engine::ReassignError::Refused(refusal) => {
                ApiError::invalid("user", refusal.to_string())
            }
            tocsin_engine::ReassignError::Engine(error) => ApiError::from(error),
        })?;
    Ok(Json(outcome.into()))
}

/// Resolve an incident and all of its open alerts. Idempotent.
#[utoipa::path(post, path = "/api/v1/incidents/{number}/resolve", tag = "incidents",
    params(("number" = i64, Path, description = "Incident number", minimum = 1)),
    security(("api_token" = [])),
    responses(
        (status = 200, description = "The incident afterwards", body = CommandResult),
        (status = 400, description = "The number is invalid", body = ErrorBody),
        (status = 401, description = "No valid API token", body = ErrorBody),
        (status = 403, description = "The token cannot write", body = ErrorBody),
        (status = 404, description = "No such incident", body = ErrorBody),
    ))]
async fn resolve_incident(
    State(state): State<AppState>,
    access: WriteAccess,
    Path(number): Path<String>,
) -> Result<Json<CommandResult>, ApiError> {
    let number = incident_number(&number)?;
    let outcome = state
        .engine
        .command(number, &Command::Resolve, &access.actor())
        .await?;
    // The open-incident and open-alert gauges follow what the resolution closed.
    for entry in &outcome.entries {
        if let tocsin_core::TimelineData::IncidentResolved {
            alerts_resolved: Some(alerts),
        } = entry.data
        {
            state.engine.metrics().record_resolved_incident(alerts);
        }
    }
    Ok(Json(outcome.into()))
}

/// Change an incident's priority.
#[utoipa::path(put, path = "/api/v1/incidents/{number}/priority", tag = "incidents",
    params(("number" = i64, Path, description = "Incident number", minimum = 1)),
    request_body = PriorityRequest,
    security(("api_token" = [])),
    responses(
        (status = 200, description = "The incident afterwards", body = CommandResult),
        (status = 400, description = "The number or priority is invalid", body = ErrorBody),
        (status = 401, description = "No valid API token", body = ErrorBody),
        (status = 403, description = "The token cannot write", body = ErrorBody),
        (status = 404, description = "No such incident", body = ErrorBody),
    ))]
async fn set_priority(
    State(state): State<AppState>,
    access: WriteAccess,
    Path(number): Path<String>,
    request: Result<Json<PriorityRequest>, JsonRejection>,
) -> Result<Json<CommandResult>, ApiError> {
    let number = incident_number(&number)?;
    let request = body(request)?;
    let priority = priority("priority", &request.priority)?;
    let outcome = state
        .engine
        .command(number, &Command::SetPriority(priority), &access.actor())
        .await?;
    Ok(Json(outcome.into()))
}

/// Add a note to an incident's timeline.
#[utoipa::path(post, path = "/api/v1/incidents/{number}/notes", tag = "incidents",
    params(("number" = i64, Path, description = "Incident number", minimum = 1)),
    request_body = NoteRequest,
    security(("api_token" = [])),
    responses(
        (status = 201, description = "The timeline entry", body = TimelineItem),
        (status = 400, description = "The number or text is invalid", body = ErrorBody),
        (status = 401, description = "No valid API token", body = ErrorBody),
        (status = 403, description = "The token cannot write", body = ErrorBody),
        (status = 404, description = "No such incident", body = ErrorBody),
    ))]
async fn add_note(
    State(state): State<AppState>,
    access: WriteAccess,
    Path(number): Path<String>,
    request: Result<Json<NoteRequest>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let number = incident_number(&number)?;
    let request = body(request)?;
    if request.text.contains('\0') {
        return Err(ApiError::invalid(
            "text",
            "text must not contain a NUL character (\\u0000)",
        ));
    }
    let text = request.text.trim();
    let length = text.chars().count();
    if length == 0 || length > MAX_NOTE_CHARS {
        return Err(ApiError::invalid(
            "text",
            format!("text must be 1 to {MAX_NOTE_CHARS} characters (got {length})"),
        ));
    }
    let outcome = state
        .engine
        .command(number, &Command::AddNote(text.to_owned()), &access.actor())
        .await?;
    let entry = outcome.entries.into_iter().next().ok_or_else(|| {
        ApiError::from(tocsin_store::StoreError::Corrupt(
            "a note appended no timeline entry".to_owned(),
        ))
    })?;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(TimelineItem::from(entry)),
    ))
}

/// An incident's timeline, oldest first.
#[utoipa::path(get, path = "/api/v1/incidents/{number}/timeline", tag = "incidents",
    params(("number" = i64, Path, description = "Incident number", minimum = 1), PageParams),
    security(("api_token" = [])),
    responses(
        (status = 200, description = "A page of timeline entries", body = TimelinePage),
        (status = 400, description = "A parameter is invalid", body = ErrorBody),
        (status = 401, description = "No valid API token", body = ErrorBody),
        (status = 404, description = "No such incident", body = ErrorBody),
    ))]
async fn incident_timeline(
    State(state): State<AppState>,
    _access: ReadAccess,
    Path(number): Path<String>,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<TimelinePage>, ApiError> {
    let number = incident_number(&number)?;
    let page = query(params)?.page()?;
    Ok(Json(TimelinePage::new(
        state.engine.timeline(number, page).await?,
    )))
}

/// An incident's alerts, newest first.
#[utoipa::path(get, path = "/api/v1/incidents/{number}/alerts", tag = "incidents",
    params(("number" = i64, Path, description = "Incident number", minimum = 1), PageParams),
    security(("api_token" = [])),
    responses(
        (status = 200, description = "A page of alerts", body = AlertPage),
        (status = 400, description = "A parameter is invalid", body = ErrorBody),
        (status = 401, description = "No valid API token", body = ErrorBody),
        (status = 404, description = "No such incident", body = ErrorBody),
    ))]
async fn incident_alerts(
    State(state): State<AppState>,
    _access: ReadAccess,
    Path(number): Path<String>,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<AlertPage>, ApiError> {
    let number = incident_number(&number)?;
    let page = query(params)?.page()?;
    state.engine.incident(number).await?;
    let filter = AlertFilter {
        incident: Some(number),
        ..AlertFilter::default()
    };
    Ok(Json(AlertPage::new(
        state.engine.alerts(&filter, page).await?,
    )))
}

/// List alerts, newest first.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts",
    params(AlertListParams),
    security(("api_token" = [])),
    responses(
        (status = 200, description = "A page of alerts", body = AlertPage),
        (status = 400, description = "A parameter is invalid", body = ErrorBody),
        (status = 401, description = "No valid API token", body = ErrorBody),
    ))]
async fn list_alerts(
    State(state): State<AppState>,
    _access: ReadAccess,
    params: Result<Query<AlertListParams>, QueryRejection>,
) -> Result<Json<AlertPage>, ApiError> {
    let params = query(params)?;
    let page = PageParams {
        cursor: params.cursor,
        limit: params.limit,
    }
    .page()?;
    let filter = AlertFilter {
        state: params
            .state
            .as_deref()
            .map(|value| {
                value
                    .parse::<AlertState>()
                    .map_err(|error| ApiError::invalid("state", error.to_string()))
            })
            .transpose()?,
        service: text_param("service", params.service)?.map(ServiceId::new),
        incident: params
            .incident
            .as_deref()
            .map(|value| incident_number(value).map_err(|error| error.for_field("incident")))
            .transpose()?,
    };
    Ok(Json(AlertPage::new(
        state.engine.alerts(&filter, page).await?,
    )))
}

/// Get one alert.
#[utoipa::path(get, path = "/api/v1/alerts/{id}", tag = "alerts",
    params(("id" = i64, Path, description = "Alert id", minimum = 1)),
    security(("api_token" = [])),
    responses(
        (status = 200, description = "The alert", body = Alert),
        (status = 400, description = "The id is invalid", body = ErrorBody),
        (status = 401, description = "No valid API token", body = ErrorBody),
        (status = 404, description = "No such alert", body = ErrorBody),
    ))]
async fn get_alert(
    State(state): State<AppState>,
    _access: ReadAccess,
    Path(id): Path<String>,
) -> Result<Json<Alert>, ApiError> {
    Ok(Json(state.engine.alert(alert_id(&id)?).await?.into()))
}

/// The events folded into an alert, newest first.
#[utoipa::path(get, path = "/api/v1/alerts/{id}/events", tag = "alerts",
    params(("id" = i64, Path, description = "Alert id", minimum = 1), PageParams),
    security(("api_token" = [])),
    responses(
        (status = 200, description = "A page of events", body = EventPage),
        (status = 400, description = "A parameter is invalid", body = ErrorBody),
        (status = 401, description = "No valid API token", body = ErrorBody),
        (status = 404, description = "No such alert", body = ErrorBody),
    ))]
async fn alert_events(
    State(state): State<AppState>,
    _access: ReadAccess,
    Path(id): Path<String>,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<EventPage>, ApiError> {
    let id = alert_id(&id)?;
    let page = query(params)?.page()?;
    state.engine.alert(id).await?;
    let filter = EventFilter {
        alert: Some(id),
        ..EventFilter::default()
    };
    Ok(Json(EventPage::new(
        state.engine.events(&filter, page).await?,
    )))
}

/// Get one event, with its details.
#[utoipa::path(get, path = "/api/v1/events/{id}", tag = "alerts",
    params(("id" = i64, Path, description = "Event id", minimum = 1)),
    security(("api_token" = [])),
    responses(
        (status = 200, description = "The event, with its details", body = Event),
        (status = 400, description = "The id is invalid", body = ErrorBody),
        (status = 401, description = "No valid API token", body = ErrorBody),
        (status = 404, description = "No such event", body = ErrorBody),
    ))]
async fn get_event(
    State(state): State<AppState>,
    _access: ReadAccess,
    Path(id): Path<String>,
) -> Result<Json<Event>, ApiError> {
    let id = id
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::invalid("id", format!("{id:?} is not an event id")))?;
    Ok(Json(state.engine.event(id).await?.into()))
}

/// The services declared in the config, in config order.
#[utoipa::path(get, path = "/api/v1/services", tag = "services",
    params(PageParams),
    security(("api_token" = [])),
    responses(
        (status = 200, description = "A page of services", body = ServicePage),
        (status = 400, description = "A parameter is invalid", body = ErrorBody),
        (status = 401, description = "No valid API token", body = ErrorBody),
    ))]
async fn list_services(
    State(state): State<AppState>,
    _access: ReadAccess,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<ServicePage>, ApiError> {
    let page = query(params)?.page()?;
    let services = state.engine.catalog().services();
    let start = page
        .after
        .map_or(0, |after| usize::try_from(after.max(0)).unwrap_or(0));
    let rows: Vec<(i64, Service)> = services
        .iter()
        .enumerate()
        .skip(start)
        .take(page.limit() as usize + 1)
        .map(|(index, service)| {
            (
                index as i64 + 1,
                Service {
                    id: service.id.to_string(),
                    name: service.name.clone(),
                    resolve: service.resolve.into(),
                },
            )
        })
        .collect();
    let finished = page.finish(rows, |(position, _)| *position);
    Ok(Json(ServicePage::from_positioned(
        finished.items,
        finished.next,
        RESPONSE_BUDGET_BYTES,
    )))
}

/// A service's change events (deploys, config pushes), newest first.
#[utoipa::path(get, path = "/api/v1/services/{id}/changes", tag = "services",
    params(("id" = String, Path, description = "Service id", pattern = r"^[^\x00]*$"), PageParams),
    security(("api_token" = [])),
    responses(
        (status = 200, description = "A page of change events", body = ChangePage),
        (status = 400, description = "A parameter is invalid", body = ErrorBody),
        (status = 401, description = "No valid API token", body = ErrorBody),
        (status = 404, description = "No such service", body = ErrorBody),
    ))]
async fn service_changes(
    State(state): State<AppState>,
    _access: ReadAccess,
    Path(id): Path<String>,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<ChangePage>, ApiError> {
    let page = query(params)?.page()?;
    let id = text_param("id", Some(id))?.unwrap_or_default();
    let service = ServiceId::new(id);
    if state.engine.catalog().service(&service).is_none() {
        return Err(ApiError::not_found(format!("service {service} not found")));
    }
    Ok(Json(ChangePage::new(
        state.engine.change_events(&service, page).await?,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(id: i64, details_bytes: usize) -> ChangeItem {
        ChangeItem {
            id,
            service: "checkout-api".to_owned(),
            summary: "deploy".to_owned(),
            source: None,
            occurred_at: None,
            received_at: "2026-01-01T00:00:00Z".to_owned(),
            details: serde_json::json!({ "blob": "x".repeat(details_bytes) }),
            links: serde_json::json!([]),
        }
    }

    fn positioned(items: Vec<ChangeItem>) -> Vec<(i64, ChangeItem)> {
        items.into_iter().map(|item| (item.id, item)).collect()
    }

    #[test]
    fn a_page_over_the_byte_budget_ends_early_with_a_cursor_after_its_last_item() {
        let items = positioned((1..=10).rev().map(|id| change(id, 1_000)).collect());
        let page = ChangePage::from_positioned(items, None, 3_500);
        assert_eq!(page.items.len(), 3, "three items of ~1.1 KB fit in 3.5 KB");
        assert_eq!(page.next_cursor.as_deref(), Some("8"));
        let encoded = serde_json::to_vec(&page).unwrap();
        assert!(encoded.len() < 3_500 + 200, "{} bytes", encoded.len());
    }

    #[test]
    fn a_page_within_the_budget_keeps_the_stores_cursor() {
        let items = positioned(vec![change(3, 10), change(2, 10)]);
        let page = ChangePage::from_positioned(items.clone(), Some(2), 3_500);
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.next_cursor.as_deref(), Some("2"));
        let last = ChangePage::from_positioned(items, None, 3_500);
        assert_eq!(last.next_cursor, None);
    }

    #[test]
    fn one_item_larger_than_the_budget_is_still_sent_alone() {
        let items = positioned(vec![change(2, 10_000), change(1, 10)]);
        let page = ChangePage::from_positioned(items, None, 1_000);
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.next_cursor.as_deref(), Some("2"));
    }

    #[test]
    fn the_default_budget_is_four_megabytes() {
        assert_eq!(RESPONSE_BUDGET_BYTES, 4 * 1024 * 1024);
    }

    #[test]
    fn wire_enums_keep_todays_strings_and_round_trip() {
        assert_eq!(
            serde_json::to_value(IncidentStateName::from(IncidentState::Acknowledged)).unwrap(),
            "acknowledged"
        );
        assert_eq!(
            serde_json::to_value(PriorityName::from(Priority::P3)).unwrap(),
            "P3"
        );
        assert_eq!(
            serde_json::to_value(SeverityName::from(Severity::Warning)).unwrap(),
            "warning"
        );
        assert_eq!(
            serde_json::to_value(AlertStateName::from(AlertState::Resolved)).unwrap(),
            "resolved"
        );
        assert_eq!(
            serde_json::to_value(TokenScopeName::from(TokenScope::Write)).unwrap(),
            "write"
        );
        let state: IncidentStateName = serde_json::from_value("triggered".into()).unwrap();
        assert_eq!(state, IncidentStateName::Triggered);
        assert!(serde_json::from_value::<PriorityName>("P9".into()).is_err());
    }

    #[test]
    fn openapi_states_incident_state_priority_and_severity_as_enums() {
        let document = serde_json::to_value(openapi_document()).unwrap();
        let schemas = &document["components"]["schemas"];
        let incident = &schemas["Incident"]["properties"];
        for (property, schema, values) in [
            (
                "state",
                "IncidentStateName",
                vec!["triggered", "acknowledged", "resolved"],
            ),
            (
                "priority",
                "PriorityName",
                vec!["P1", "P2", "P3", "P4", "P5"],
            ),
            (
                "severity",
                "SeverityName",
                vec!["critical", "error", "warning", "info"],
            ),
        ] {
            assert_eq!(
                incident[property]["$ref"],
                format!("#/components/schemas/{schema}"),
                "{property}: {}",
                incident[property]
            );
            assert_eq!(
                schemas[schema]["enum"],
                serde_json::json!(values),
                "{schema}: {}",
                schemas[schema]
            );
        }
        assert_eq!(
            schemas["AlertItem"]["properties"]["state"]["$ref"],
            "#/components/schemas/AlertStateName"
        );
    }
}
