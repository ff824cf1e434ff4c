//! Managing what the public status page says: publishing incidents and posting their public
//! updates, maintenance windows, and overrides of component statuses. These routes need an
//! API token (the page itself needs none); each change asks for a new snapshot at once.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use tocsin_core::IncidentNumber;
use tocsin_status::{ComponentStatus, Impact, IncidentStatus};
use tocsin_store::status::{
    ComponentOverride, MaintenanceRow, NewMaintenance, NewStatusUpdate, PublicIncident,
    StatusUpdateRow, MAX_STATUS_ROWS,
};
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::{body, query, AffectedComponent};
use crate::auth::{ReadAccess, WriteAccess};
use crate::error::{ApiError, ErrorBody};
use crate::oncall::parse_instant;
use crate::AppState;

#[derive(OpenApi)]
#[openapi(tags(
    (name = "status", description = "What the public status page says: published incidents, maintenance, component overrides")
))]
struct StatusDoc;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(StatusDoc::openapi())
        .routes(routes!(post_status_update, get_public_incident))
        .routes(routes!(create_maintenance, list_maintenance))
        .routes(routes!(get_maintenance))
        .routes(routes!(cancel_maintenance))
        .routes(routes!(list_components))
        .routes(routes!(set_override, clear_override))
        .routes(routes!(snapshot_files))
}

// ---------------------------------------------------------------- wire types

/// A public update to post. The first one publishes the incident and needs `name` and
/// `impact`; later ones may change them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StatusUpdateCreate {
    /// `investigating`, `identified`, `monitoring` or `resolved`.
    pub status: String,
    /// What readers are told. Shown as written (escaped), never with internal details.
    pub message: String,
    /// The public title (the incident's internal title is never shown).
    #[serde(default)]
    pub name: Option<String>,
    /// `none`, `minor`, `major` or `critical`.
    #[serde(default)]
    pub impact: Option<String>,
    /// Components the incident affects and the status each is in because of it, while the
    /// incident is not resolved (the worst of this, its monitors and maintenance shows).
    #[serde(default)]
    pub components: Vec<AffectedComponent>,
}

/// An incident as the status page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PublicIncidentItem {
    pub incident: i64,
    /// Its id on the status page: `/status/incidents/<public_id>`.
    pub public_id: String,
    pub name: String,
    pub impact: String,
    pub status: String,
    pub started_at: String,
    pub published_at: String,
    pub updated_at: String,
    pub monitoring_at: Option<String>,
    pub resolved_at: Option<String>,
    /// Newest first (at most 200).
    pub updates: Vec<StatusUpdateItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StatusUpdateItem {
    pub id: i64,
    pub status: String,
    pub message: String,
    pub components: Vec<AffectedComponent>,
    pub created_at: String,
}

impl From<StatusUpdateRow> for StatusUpdateItem {
    fn from(row: StatusUpdateRow) -> Self {
        StatusUpdateItem {
            id: row.id,
            status: row.status,
            message: row.message,
            components: row
                .affected
                .into_iter()
                .map(|(component, status)| AffectedComponent { component, status })
                .collect(),
            created_at: row.created_at.to_string(),
        }
    }
}

impl From<PublicIncident> for PublicIncidentItem {
    fn from(incident: PublicIncident) -> Self {
        PublicIncidentItem {
            incident: incident.incident.0,
            public_id: incident.public_id,
            name: incident.name,
            impact: incident.impact,
            status: incident.status,
            started_at: incident.started_at.to_string(),
            published_at: incident.published_at.to_string(),
            updated_at: incident.updated_at.to_string(),
            monitoring_at: incident.monitoring_at.map(|at| at.to_string()),
            resolved_at: incident.resolved_at.map(|at| at.to_string()),
            updates: incident
                .updates
                .into_iter()
                .map(StatusUpdateItem::from)
                .collect(),
        }
    }
}

/// A maintenance window to schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MaintenanceCreate {
    pub name: String,
    /// What readers are told.
    #[serde(default)]
    pub message: String,
    /// Component ids from the config (at least one).
    pub components: Vec<String>,
    /// RFC 3339 with an offset.
    pub start: String,
    /// RFC 3339 with an offset, after `start`.
    pub end: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MaintenanceItem {
    pub id: i64,
    pub name: String,
    pub message: String,
    pub components: Vec<String>,
    pub start: String,
    /// As scheduled, or when it was cancelled while it ran.
    pub end: String,
    /// `scheduled`, `in_progress`, `completed` or `cancelled`.
    pub state: String,
    pub created_at: String,
    pub created_by: String,
    pub cancelled_at: Option<String>,
}

impl MaintenanceItem {
    fn of(row: MaintenanceRow, now: tocsin_core::Timestamp) -> Self {
        let state = if !row.starts_before_cancel() {
            "cancelled"
        } else if row.ends_at <= now {
            "completed"
        } else if row.starts_at <= now {
            "in_progress"
        } else {
            "scheduled"
        };
        MaintenanceItem {
            id: row.id,
            name: row.name,
            message: row.message,
            components: row.components,
            start: row.starts_at.to_string(),
            end: row.ends_at.to_string(),
            state: state.to_owned(),
            created_at: row.created_at.to_string(),
            created_by: row.created_by,
            cancelled_at: row.cancelled_at.map(|at| at.to_string()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MaintenanceList {
    /// Windows that have not ended, by start.
    pub items: Vec<MaintenanceItem>,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MaintenanceListParams {
    /// At most this many, 1 to 500 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
}

/// A component of the status page and its override, if any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ComponentItem {
    pub id: String,
    /// The override's status, when an operator set one (it replaces the derived status).
    pub override_status: Option<String>,
    pub override_set_at: Option<String>,
    pub override_set_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ComponentList {
    /// In the config's order.
    pub items: Vec<ComponentItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OverrideSet {
    /// `operational`, `degraded_performance`, `partial_outage`, `major_outage` or
    /// `under_maintenance`.
    pub status: String,
}

/// What the status page's current snapshot holds, for `tocsin status export`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SnapshotFiles {
    /// When the data it shows was read.
    pub built_at: String,
    /// Every path it serves (`/status`, `/status/incidents/…`, `/api/v2/…`), sorted.
    pub paths: Vec<String>,
}

// ---------------------------------------------------------------- checks

fn configured_components(state: &AppState) -> Result<Vec<String>, ApiError> {
    state
        .status
        .settings()
        .map(|settings| settings.components)
        .ok_or_else(|| {
            ApiError::not_found(
                "no status page is configured: add a [status_page] section to the config",
            )
        })
}

fn known_component(components: &[String], field: &str, id: &str) -> Result<(), ApiError> {
    if components.iter().any(|component| component == id) {
        return Ok(());
    }
    let known = if components.is_empty() {
        "the config declares no [[components]]".to_owned()
    } else {
        format!("declared: {}", components.join(", "))
    };
    Err(ApiError::invalid(
        field,
        format!(
            "component `{}` is not declared in the config ({known})",
            echo(id)
        ),
    ))
}

fn component_status(field: &str, value: &str) -> Result<(), ApiError> {
    ComponentStatus::parse(value).map(|_| ()).ok_or_else(|| {
        ApiError::invalid(
            field,
            format!(
                "{field} `{}` is not a component status: use operational, \
                 degraded_performance, partial_outage, major_outage or under_maintenance",
                echo(value)
            ),
        )
    })
}

fn echo(value: &str) -> String {
    value.chars().take(64).collect()
}

fn incident_number(value: &str) -> Result<IncidentNumber, ApiError> {
    value
        .parse::<i64>()
        .ok()
        .filter(|number| *number > 0)
        .map(IncidentNumber)
        .ok_or_else(|| {
            ApiError::invalid(
                "number",
                format!("{:?} is not an incident number", echo(value)),
            )
        })
}

fn maintenance_id(value: &str) -> Result<i64, ApiError> {
    value
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            ApiError::invalid("id", format!("{:?} is not a maintenance id", echo(value)))
        })
}

// ---------------------------------------------------------------- handlers

/// Post a public update on an incident; the first publishes it on the status page. Until
/// then the incident is internal: nothing of it is public. Only what this request says is
/// shown (name, message, impact, components), never alerts, notes or people. The update is
/// on the incident's timeline as `status.updated`.
#[utoipa::path(post, path = "/api/v1/incidents/{number}/status", tag = "status",
    params(("number" = i64, Path, description = "Incident number", minimum = 1)),
    request_body = StatusUpdateCreate,
    security(("api_token" = [])),
    responses(
        (status = 201, description = "The incident as published, with the new update first", body = PublicIncidentItem),
        (status = 400, description = "A field is invalid (or publishing without name or impact); nothing is stored", body = ErrorBody),
        (status = 401, description = "No valid API token", body = ErrorBody),
        (status = 403, description = "The token cannot write", body = ErrorBody),
        (status = 404, description = "No such incident, or no status page is configured", body = ErrorBody),
    ))]
async fn post_status_update(
    State(state): State<AppState>,
    access: WriteAccess,
    Path(number): Path<String>,
    request: Result<Json<StatusUpdateCreate>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let number = incident_number(&number)?;
    let components = configured_components(&state)?;
    let request = body(request)?;
    let status = IncidentStatus::parse(&request.status)
        .filter(|status| *status != IncidentStatus::Postmortem)
        .ok_or_else(|| {
            ApiError::invalid(
                "status",
                format!(
                    "status `{}` is not an incident status: use investigating, identified, \
                     monitoring or resolved",
                    echo(&request.status)
                ),
            )
        })?;
    if let Some(impact) = &request.impact {
        Impact::parse(impact)
            .filter(|impact| *impact != Impact::Maintenance)
            .ok_or_else(|| {
                ApiError::invalid(
                    "impact",
                    format!(
                        "impact `{}` is not an incident impact: use none, minor, major or critical",
                        echo(impact)
                    ),
                )
            })?;
    }
    let mut affected = Vec::with_capacity(request.components.len());
    for item in request.components {
        known_component(&components, "components", &item.component)?;
        component_status("components", &item.status)?;
        if affected.iter().any(|(id, _)| id == &item.component) {
            return Err(ApiError::invalid(
                "components",
                format!("component `{}` is listed twice", echo(&item.component)),
            ));
        }
        affected.push((item.component, item.status));
    }
    let now = state.engine.now();
    let (incident, _) = state
        .engine
        .store()
        .post_status_update(
            &NewStatusUpdate {
                incident: number,
                status: status.as_str().to_owned(),
                message: request.message,
                affected,
                name: request.name,
                impact: request.impact,
                by: access.actor(),
            },
            now,
        )
        .await?;
    state.status.request_rebuild();
    Ok((
        StatusCode::CREATED,
        Json(PublicIncidentItem::from(incident)),
    ))
}

/// An incident as the status page shows it; 404 while it is internal.
#[utoipa::path(get, path = "/api/v1/incidents/{number}/status", tag = "status",
    params(("number" = i64, Path, description = "Incident number", minimum = 1)),
    security(("api_token" = [])),
    responses(
        (status = 200, description = "The published incident", body = PublicIncidentItem),
        (status = 400, description = "Not an incident number", body = ErrorBody),
        (status = 401, description = "No valid API token", body = ErrorBody),
        (status = 404, description = "Not published (or no such incident)", body = ErrorBody),
    ))]
async fn get_public_incident(
    State(state): State<AppState>,
    _access: ReadAccess,
    Path(number): Path<String>,
) -> Result<Json<PublicIncidentItem>, ApiError> {
    let number = incident_number(&number)?;
    let incident = state
        .engine
        .store()
        .public_incident(number)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "incident {} is not published on the status page",
                number.0
            ))
        })?;
    Ok(Json(PublicIncidentItem::from(incident)))
}

/// Schedule a maintenance window on components. It is shown on the status page ahead of
/// time; while it runs, its components are under maintenance.
#[utoipa::path(post, path = "/api/v1/maintenance", tag = "status",
    request_body = MaintenanceCreate,
    security(("api_token" = [])),
    responses(
        (status = 201, description = "The window", body = MaintenanceItem),
        (status = 400, description = "A field is invalid; nothing is stored", body = ErrorBody),
        (status = 401, description = "No valid API token", body = ErrorBody),
        (status = 403, description = "The token cannot write", body = ErrorBody),
        (status = 404, description = "No status page is configured", body = ErrorBody),
    ))]
async fn create_maintenance(
    State(state): State<AppState>,
    access: WriteAccess,
    request: Result<Json<MaintenanceCreate>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let components = configured_components(&state)?;
    let request = body(request)?;
    if request.components.is_empty() {
        return Err(ApiError::invalid(
            "components",
            "components is empty: name the components the maintenance takes down",
        ));
    }
    for component in &request.components {
        known_component(&components, "components", component)?;
    }
    let start = parse_instant("start", &request.start)?;
    let end = parse_instant("end", &request.end)?;
    let micros = |at: tocsin_core::Timestamp| {
        tocsin_core::Timestamp::from_microsecond(at.as_microsecond()).unwrap_or(at)
    };
    let now = state.engine.now();
    let row = state
        .engine
        .store()
        .create_maintenance(
            &NewMaintenance {
                name: request.name,
                message: request.message,
                components: request.components,
                starts_at: micros(start),
                ends_at: micros(end),
                by: access.actor(),
            },
            now,
        )
        .await?;
    state.status.request_rebuild();
    Ok((StatusCode::CREATED, Json(MaintenanceItem::of(row, now))))
}

/// Maintenance windows that have not ended (cancelled ones included), by start.
#[utoipa::path(get, path = "/api/v1/maintenance", tag = "status",
    params(MaintenanceListParams),
    security(("api_token" = [])),
    responses(
        (status = 200, description = "Windows that have not ended", body = MaintenanceList),
        (status = 400, description = "A parameter is invalid", body = ErrorBody),
        (status = 401, description = "No valid API token", body = ErrorBody),
    ))]
async fn list_maintenance(
    State(state): State<AppState>,
    _access: ReadAccess,
    params: Result<Query<MaintenanceListParams>, QueryRejection>,
) -> Result<Json<MaintenanceList>, ApiError> {
    let params = query(params)?;
    let limit = match params.limit.as_deref() {
        None => 100,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|limit| (1..=MAX_STATUS_ROWS).contains(limit))
            .ok_or_else(|| {
                ApiError::invalid(
                    "limit",
                    format!("limit must be 1 to {MAX_STATUS_ROWS}, not {:?}", echo(text)),
                )
            })?,
    };
    let now = state.engine.now();
    let rows = state.engine.store().maintenances(now, limit).await?;
    Ok(Json(MaintenanceList {
        items: rows
            .into_iter()
            .map(|row| MaintenanceItem::of(row, now))
            .collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/maintenance/{id}", tag = "status",
    params(("id" = i64, Path, description = "Maintenance id", minimum = 1)),
    security(("api_token" = [])),
    responses(
        (status = 200, description = "The window", body = MaintenanceItem),
        (status = 400, description = "Not a maintenance id", body = ErrorBody),
        (status = 401, description = "No valid API token", body = ErrorBody),
        (status = 404, description = "No such window", body = ErrorBody),
    ))]
async fn get_maintenance(
    State(state): State<AppState>,
    _access: ReadAccess,
    Path(id): Path<String>,
) -> Result<Json<MaintenanceItem>, ApiError> {
    let id = maintenance_id(&id)?;
    let row = state.engine.store().maintenance(id).await?;
    Ok(Json(MaintenanceItem::of(row, state.engine.now())))
}

/// Cancel a window: one that has not begun is never shown; one that runs ends now.
#[utoipa::path(post, path = "/api/v1/maintenance/{id}/cancel", tag = "status",
    params(("id" = i64, Path, description = "Maintenance id", minimum = 1)),
    security(("api_token" = [])),
    responses(
        (status = 200, description = "The cancelled window", body = MaintenanceItem),
        (status = 400, description = "Not a maintenance id", body = ErrorBody),
        (status = 401, description = "No valid API token", body = ErrorBody),
        (status = 403, description = "The token cannot write", body = ErrorBody),
        (status = 404, description = "No such window", body = ErrorBody),
        (status = 409, description = "It is over or was cancelled already", body = ErrorBody),
    ))]
async fn cancel_maintenance(
    State(state): State<AppState>,
    _access: WriteAccess,
    Path(id): Path<String>,
) -> Result<Json<MaintenanceItem>, ApiError> {
    let id = maintenance_id(&id)?;
    let now = state.engine.now();
    let row = state.engine.store().cancel_maintenance(id, now).await?;
    state.status.request_rebuild();
    Ok(Json(MaintenanceItem::of(row, now)))
}

/// The status page's components, with operators' overrides.
#[utoipa::path(get, path = "/api/v1/components", tag = "status",
    security(("api_token" = [])),
    responses(
        (status = 200, description = "Components in the config's order", body = ComponentList),
        (status = 401, description = "No valid API token", body = ErrorBody),
        (status = 404, description = "No status page is configured", body = ErrorBody),
    ))]
async fn list_components(
    State(state): State<AppState>,
    _access: ReadAccess,
) -> Result<Json<ComponentList>, ApiError> {
    let components = configured_components(&state)?;
    let overrides = state.engine.store().component_overrides().await?;
    let find = |id: &str| overrides.iter().find(|o| o.component == id);
    Ok(Json(ComponentList {
        items: components
            .iter()
            .map(|id| {
                let found: Option<&ComponentOverride> = find(id);
                ComponentItem {
                    id: id.clone(),
                    override_status: found.map(|o| o.status.clone()),
                    override_set_at: found.map(|o| o.set_at.to_string()),
                    override_set_by: found.map(|o| o.set_by.clone()),
                }
            })
            .collect(),
    }))
}

/// Override a component's status: it shows this status, whatever its monitors, incidents
/// and maintenance say, until the override is cleared.
#[utoipa::path(put, path = "/api/v1/components/{id}/override", tag = "status",
    params(("id" = String, Path, description = "Component id")),
    request_body = OverrideSet,
    security(("api_token" = [])),
    responses(
        (status = 200, description = "The component with its override", body = ComponentItem),
        (status = 400, description = "Unknown component or status", body = ErrorBody),
        (status = 401, description = "No valid API token", body = ErrorBody),
        (status = 403, description = "The token cannot write", body = ErrorBody),
        (status = 404, description = "No status page is configured", body = ErrorBody),
    ))]
async fn set_override(
    State(state): State<AppState>,
    access: WriteAccess,
    Path(id): Path<String>,
    request: Result<Json<OverrideSet>, JsonRejection>,
) -> Result<Json<ComponentItem>, ApiError> {
    let components = configured_components(&state)?;
    known_component(&components, "id", &id)?;
    let request = body(request)?;
    component_status("status", &request.status)?;
    let set = state
        .engine
        .store()
        .set_component_override(
            &id,
            Some(&request.status),
            &access.actor(),
            state.engine.now(),
        )
        .await?;
    state.status.request_rebuild();
    Ok(Json(ComponentItem {
        id,
        override_status: set.as_ref().map(|o| o.status.clone()),
        override_set_at: set.as_ref().map(|o| o.set_at.to_string()),
        override_set_by: set.map(|o| o.set_by),
    }))
}

/// Clear a component's override: its status is derived again.
#[utoipa::path(delete, path = "/api/v1/components/{id}/override", tag = "status",
    params(("id" = String, Path, description = "Component id")),
    security(("api_token" = [])),
    responses(
        (status = 200, description = "The component, without an override", body = ComponentItem),
        (status = 400, description = "Unknown component", body = ErrorBody),
        (status = 401, description = "No valid API token", body = ErrorBody),
        (status = 403, description = "The token cannot write", body = ErrorBody),
        (status = 404, description = "No status page is configured", body = ErrorBody),
    ))]
async fn clear_override(
    State(state): State<AppState>,
    access: WriteAccess,
    Path(id): Path<String>,
) -> Result<Json<ComponentItem>, ApiError> {
    let components = configured_components(&state)?;
    known_component(&components, "id", &id)?;
    state
        .engine
        .store()
        .set_component_override(&id, None, &access.actor(), state.engine.now())
        .await?;
    state.status.request_rebuild();
    Ok(Json(ComponentItem {
        id,
        override_status: None,
        override_set_at: None,
        override_set_by: None,
    }))
}

/// The paths of the status page's current snapshot, to copy it elsewhere (`tocsin status
/// export`); 503 until the first snapshot is built.
#[utoipa::path(get, path = "/api/v1/status/files", tag = "status",
    security(("api_token" = [])),
    responses(
        (status = 200, description = "The snapshot's paths", body = SnapshotFiles),
        (status = 401, description = "No valid API token", body = ErrorBody),
        (status = 404, description = "No status page is configured", body = ErrorBody),
        (status = 503, description = "The first snapshot is not built yet", body = ErrorBody),
    ))]
async fn snapshot_files(
    State(state): State<AppState>,
    _access: ReadAccess,
) -> Result<Json<SnapshotFiles>, ApiError> {
    configured_components(&state)?;
    let snapshot = state.status.snapshot().ok_or_else(|| {
        ApiError::unavailable("the status page is being built; try again in a few seconds")
    })?;
    Ok(Json(SnapshotFiles {
        built_at: snapshot.built_at().to_string(),
        paths: snapshot.paths().map(str::to_owned).collect(),
    }))
}
