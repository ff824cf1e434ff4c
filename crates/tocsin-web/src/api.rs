//! `/api/v1`: incidents, alerts, timelines, services. Documented as OpenAPI (generated from
//! these handlers, so the document and the routes cannot drift apart).

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Json;
use serde::{Deserialize, Serialize};
use tocsin_core::Command;
use tocsin_core::{AlertId, AlertState, IncidentNumber, IncidentState, Priority, ServiceId};
use tocsin_store::{
    AlertFilter, AlertRow, AlertSummary, ChangeEventRow, CommandOutcome, EventFilter, EventSummary,
    IncidentFilter, IncidentRow, PageRequest, StoredEvent, TimelineEntry,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{ReadAccess, WriteAccess};
use crate::error::{ApiError, ErrorBody};
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
        .routes(routes!(crate::reload::reload_config));
    let document = router.get_openapi().clone();
    let json = document
        .to_pretty_json()
        .unwrap_or_else(|_| "{}".to_owned());
    router.route(
        "/api/v1/openapi.json",
        get(move || async move { ([(header::CONTENT_TYPE, "application/json")], json) }),
    )
}

/// The OpenAPI document served at `/api/v1/openapi.json`.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    routes().split_for_parts().1
}

// ---------------------------------------------------------------- wire types

/// An incident: one or more alerts of a service, with a priority and a state.
#[derive(Serialize, ToSchema)]
pub(crate) struct Incident {
    /// Sequential number, shown to people ("incident #42").
    number: i64,
    title: String,
    /// The service's id from the config.
    service: String,
    /// The dedup key of the alert that opened it.
    dedup_key: String,
    /// `triggered`, `acknowledged` or `resolved`.
    state: String,
    /// `P1` (most urgent) to `P5`.
    priority: String,
    /// Severity of the opening event: `critical`, `error`, `warning`, `info`.
    severity: String,
    /// Alerts of this incident not yet resolved.
    open_alerts: i64,
    created_at: String,
    /// When the first signal says the problem began.
    impact_started_at: String,
    acknowledged_at: Option<String>,
    resolved_at: Option<String>,
    updated_at: String,
    /// From creation to the first acknowledgement.
    time_to_acknowledge_seconds: Option<f64>,
    /// From the start of impact to resolution.
    time_to_resolve_seconds: Option<f64>,
}

impl From<IncidentRow> for Incident {
    fn from(row: IncidentRow) -> Self {
        let times = row.times();
        Incident {
            number: row.number.0,
            title: row.title,
            service: row.service.to_string(),
            dedup_key: row.dedup_key.into_string(),
            state: row.state.to_string(),
            priority: row.priority.to_string(),
            severity: row.severity.to_string(),
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
#[derive(Serialize, ToSchema)]
pub(crate) struct AlertItem {
    id: i64,
    incident: i64,
    service: String,
    dedup_key: String,
    /// `triggered`, `acknowledged` or `resolved`.
    state: String,
    /// How many trigger events folded into it.
    count: i64,
    first_seen: String,
    last_seen: String,
    severity: String,
    /// Summary of the latest event.
    summary: String,
    source: String,
    acknowledged_at: Option<String>,
    resolved_at: Option<String>,
}

impl From<AlertSummary> for AlertItem {
    fn from(row: AlertSummary) -> Self {
        AlertItem {
            id: row.id.0,
            incident: row.incident.0,
            service: row.service.to_string(),
            dedup_key: row.dedup_key.into_string(),
            state: row.state.to_string(),
            count: row.count,
            first_seen: row.first_seen.to_string(),
            last_seen: row.last_seen.to_string(),
            severity: row.severity.to_string(),
            summary: row.summary,
            source: row.source,
            acknowledged_at: row.acknowledged_at.map(|at| at.to_string()),
            resolved_at: row.resolved_at.map(|at| at.to_string()),
        }
    }
}

/// One alert, with the latest payload's details.
#[derive(Serialize, ToSchema)]
pub(crate) struct Alert {
    #[serde(flatten)]
    alert: AlertItem,
    /// Details of the latest event, as sent.
    #[schema(value_type = Object)]
    details: serde_json::Value,
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
#[derive(Serialize, ToSchema)]
pub(crate) struct TimelineItem {
    id: i64,
    incident: i64,
    at: String,
    /// Who did it: `integration:<kind>`, `token:<name>` or `tocsin`.
    actor: String,
    /// What happened (`kind`) and its details (`data`).
    #[serde(flatten)]
    what: TimelineData,
}

/// A timeline entry's `kind` and the fields of its `data`, by kind.
#[derive(Serialize, ToSchema)]
#[serde(tag = "kind", content = "data")]
pub(crate) enum TimelineData {
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
        #[serde(skip_serializing_if = "Option::is_none")]
        last_seen: Option<String>,
    },
    #[serde(rename = "alert.acknowledged")]
    AlertAcknowledged { dedup_key: String },
    #[serde(rename = "alert.resolved")]
    AlertResolved { dedup_key: String },
    /// By an event (no count) or a command (how many triggered alerts it acknowledged).
    #[serde(rename = "incident.acknowledged")]
    IncidentAcknowledged {
        #[serde(skip_serializing_if = "Option::is_none")]
        alerts_acknowledged: Option<i64>,
    },
    /// By the event that resolved the last alert (no count) or a command (how many open
    /// alerts it resolved).
    #[serde(rename = "incident.resolved")]
    IncidentResolved {
        #[serde(skip_serializing_if = "Option::is_none")]
        alerts_resolved: Option<i64>,
    },
    /// Every alert resolved; the service resolves incidents by hand.
    #[serde(rename = "incident.all_alerts_resolved")]
    AllAlertsResolved {},
    #[serde(rename = "incident.priority_changed")]
    PriorityChanged { from: String, to: String },
    #[serde(rename = "note.added")]
    NoteAdded { text: String },
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
#[derive(Serialize, ToSchema)]
pub(crate) struct EventItem {
    id: i64,
    service: String,
    integration: String,
    action: String,
    dedup_key: String,
    severity: String,
    summary: String,
    source: String,
    occurred_at: Option<String>,
    received_at: String,
    alert: Option<i64>,
    /// What the fold did: `opened`, `folded`, `acknowledged`, `resolved`,
    /// `ignored_no_open_alert`, `ignored_already_acknowledged`.
    outcome: String,
}

impl From<EventSummary> for EventItem {
    fn from(event: EventSummary) -> Self {
        EventItem {
            id: event.id,
            service: event.service.to_string(),
            integration: event.integration.to_string(),
            action: event.action.to_string(),
            dedup_key: event.dedup_key.into_string(),
            severity: event.severity.to_string(),
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
#[derive(Serialize, ToSchema)]
pub(crate) struct Event {
    #[serde(flatten)]
    event: EventItem,
    #[schema(value_type = Object)]
    details: serde_json::Value,
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
#[derive(Serialize, ToSchema)]
pub(crate) struct ChangeItem {
    id: i64,
    service: String,
    summary: String,
    source: Option<String>,
    occurred_at: Option<String>,
    received_at: String,
    #[schema(value_type = Object)]
    details: serde_json::Value,
    #[schema(value_type = Vec<Object>)]
    links: serde_json::Value,
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
#[derive(Serialize, ToSchema)]
pub(crate) struct Service {
    id: String,
    name: String,
    /// `auto`: an incident resolves with its last alert; `manual`: a person resolves it.
    resolve: String,
}

macro_rules! page_type {
    ($name:ident, $item:ty) => {
        /// A page of a list. Pass `next_cursor` back as `cursor` for the next page; it is null
        /// on the last page.
        #[derive(Serialize, ToSchema)]
        pub(crate) struct $name {
            items: Vec<$item>,
            next_cursor: Option<String>,
        }

        impl $name {
            fn new<T: Into<$item>>(page: tocsin_store::Page<T>) -> Self {
                $name {
                    items: page.items.into_iter().map(Into::into).collect(),
                    next_cursor: page.next.map(|cursor| cursor.to_string()),
                }
            }
        }
    };
}

page_type!(IncidentPage, Incident);
page_type!(AlertPage, AlertItem);
page_type!(TimelinePage, TimelineItem);
page_type!(EventPage, EventItem);
page_type!(ChangePage, ChangeItem);
page_type!(ServicePage, Service);

/// The incident after a command, and whether the command changed it (repeating a command
/// that already took effect changes nothing and adds nothing to the timeline).
#[derive(Serialize, ToSchema)]
pub(crate) struct CommandResult {
    incident: Incident,
    changed: bool,
}

impl From<CommandOutcome> for CommandResult {
    fn from(outcome: CommandOutcome) -> Self {
        CommandResult {
            changed: outcome.transition == tocsin_core::Transition::Changed,
            incident: outcome.incident.into(),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PriorityRequest {
    /// `P1` to `P5`.
    #[schema(pattern = r"^[Pp][1-5]$")]
    priority: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoteRequest {
    /// The note, 1 to 10,000 characters, not all white space.
    #[schema(min_length = 1, max_length = 10000, pattern = r"\S")]
    text: String,
}

// ---------------------------------------------------------------- parameters

/// Pagination, shared by every list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageParams {
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<i64>)]
    cursor: Option<String>,
    /// Items per page, 1 to 500 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
}

impl PageParams {
    fn page(&self) -> Result<PageRequest, ApiError> {
        let after = match &self.cursor {
            None => None,
            Some(cursor) => Some(cursor.parse::<i64>().map_err(|_| {
                ApiError::invalid(
                    "cursor",
                    "cursor must be a `next_cursor` value from a previous page",
                )
            })?),
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
    service: Option<String>,
    /// `P1` to `P5`.
    #[param(pattern = r"^[Pp][1-5]$")]
    priority: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<i64>)]
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
    service: Option<String>,
    /// An incident number.
    #[param(value_type = Option<i64>, minimum = 1)]
    incident: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<i64>)]
    cursor: Option<String>,
    /// Items per page, 1 to 500 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
}

fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(value)| value)
        .map_err(|rejection| ApiError::invalid("query", rejection.body_text()))
}

fn body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
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
        service: params.service.map(ServiceId::new),
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
    let outcome = state
        .engine
        .command(
            incident_number(&number)?,
            &Command::Resolve,
            &access.actor(),
        )
        .await?;
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
        service: params.service.map(ServiceId::new),
        incident: params
            .incident
            .as_deref()
            .map(incident_number)
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

/// The services declared in the config, in config order.
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
                    resolve: match service.resolve {
                        tocsin_core::ResolvePolicy::Auto => "auto",
                        tocsin_core::ResolvePolicy::Manual => "manual",
                    }
                    .to_owned(),
                },
            )
        })
        .collect();
    let finished = page.finish(rows, |(position, _)| *position);
    Ok(Json(ServicePage::new(tocsin_store::Page {
        items: finished
            .items
            .into_iter()
            .map(|(_, service)| service)
            .collect(),
        next: finished.next,
    })))
}

/// A service's change events (deploys, config pushes), newest first.
#[utoipa::path(get, path = "/api/v1/services/{id}/changes", tag = "services",
    params(("id" = String, Path, description = "Service id"), PageParams),
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
    let service = ServiceId::new(id);
    if state.engine.catalog().service(&service).is_none() {
        return Err(ApiError::not_found(format!("service {service} not found")));
    }
    Ok(Json(ChangePage::new(
        state.engine.change_events(&service, page).await?,
    )))
}
