//! `/api/v1/heartbeats`: the heartbeat monitors of the config with their current state, and
//! each one's pings.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use tocsin_core::heartbeat::HeartbeatSchedule;
use tocsin_engine::HeartbeatEntry;
use tocsin_store::heartbeat::{HeartbeatStateRow, PingRow};
use tocsin_store::monitor_pauses::MonitorPause;
use utoipa::ToSchema;

use crate::api::{within_budget, PageParams, RESPONSE_BUDGET_BYTES};
use crate::auth::ReadAccess;
use crate::error::ApiError;
pub use crate::error::ErrorBody;
use crate::AppState;

/// A heartbeat monitor and where it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Heartbeat {
    pub id: String,
    pub service: String,
    /// `period` or `cron`.
    pub schedule: String,
    /// The period (`1h`) or the cron expression (`0 3 * * *`).
    pub expected: String,
    /// The cron expression's time zone; null for a period.
    pub time_zone: Option<String>,
    pub grace_seconds: u64,
    pub max_starts_without_success: Option<u32>,
    pub post_only: bool,
    /// `paused` while the monitor is paused (it does not go late); else `new` (no success
    /// yet), `up`, `late` or `failed`; `unknown` until Tocsin has recorded the monitor (moments
    /// after start-up or a reload).
    pub status: String,
    /// What the pings last made of it (`new`, `up`, `late`, `failed` or `unknown`), kept while
    /// paused.
    pub checked_status: String,
    /// When it was paused, while it is.
    pub paused_at: Option<String>,
    /// Who paused it (e.g. `token:ops`), while it is paused.
    pub paused_by: Option<String>,
    /// When the status began.
    pub since: Option<String>,
    /// When the monitor becomes late without a success; null while down.
    pub deadline: Option<String>,
    pub last_ping: Option<LastPing>,
    pub last_success_at: Option<String>,
    /// When the run in progress started, if one did.
    pub started_at: Option<String>,
    pub starts_without_success: u32,
    pub crash_looping: bool,
}

/// The latest ping that was not a log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LastPing {
    /// `success`, `start` or `fail`.
    pub kind: String,
    pub at: String,
    pub exit_code: Option<u8>,
}

/// One ping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PingItem {
    pub id: i64,
    /// `success`, `start`, `fail` or `log`.
    pub kind: String,
    pub at: String,
    pub rid: Option<String>,
    pub exit_code: Option<u8>,
    /// How long the run took, when this ping ended a run whose start was seen.
    pub duration_ms: Option<u64>,
    /// The first bytes of the request body (up to `Ping-Body-Limit`).
    pub body: String,
    pub remote: Option<String>,
    pub method: String,
}

/// A page of heartbeat monitors, in config order. Pass `next_cursor` back as `cursor`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatPage {
    pub items: Vec<Heartbeat>,
    pub next_cursor: Option<String>,
}

/// A page of pings, newest first. Pass `next_cursor` back as `cursor`; a page may end early
/// when its bodies reach the response budget (4 MB).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PingPage {
    pub items: Vec<PingItem>,
    pub next_cursor: Option<String>,
}

fn heartbeat(
    entry: &HeartbeatEntry,
    stored: Option<&HeartbeatStateRow>,
    pause: Option<MonitorPause>,
) -> Heartbeat {
    let (schedule, expected, time_zone) = match &entry.expectation.schedule {
        HeartbeatSchedule::Period(period) => (
            "period",
            tocsin_core::heartbeat::format_duration(*period),
            None,
        ),
        HeartbeatSchedule::Cron { cron, zone } => (
            "cron",
            cron.to_string(),
            Some(zone.iana_name().unwrap_or("UTC").to_owned()),
        ),
    };
    let state = stored.map(|row| &row.state);
    let checked_status = state
        .map_or("unknown", |state| state.status.as_str())
        .to_owned();
    Heartbeat {
        id: entry.id.clone(),
        service: entry.service.to_string(),
        schedule: schedule.to_owned(),
        expected,
        time_zone,
        grace_seconds: entry.expectation.grace.as_secs(),
        max_starts_without_success: entry.expectation.max_starts_without_success,
        post_only: entry.post_only,
        status: if pause.is_some() {
            "paused".to_owned()
        } else {
            checked_status.clone()
        },
        checked_status,
        paused_at: pause.as_ref().map(|pause| pause.paused_at.to_string()),
        paused_by: pause.map(|pause| pause.paused_by),
        since: state.map(|state| state.since.to_string()),
        deadline: state.and_then(|state| state.deadline.map(|at| at.to_string())),
        last_ping: state.and_then(|state| {
            state.last_ping.as_ref().map(|ping| LastPing {
                kind: ping.kind.as_str().to_owned(),
                at: ping.at.to_string(),
                exit_code: ping.exit_code,
            })
        }),
        last_success_at: state.and_then(|state| state.last_success_at.map(|at| at.to_string())),
        started_at: state.and_then(|state| state.started_at.map(|at| at.to_string())),
        starts_without_success: state.map_or(0, |state| state.starts_without_success),
        crash_looping: state.is_some_and(|state| state.crash_looping),
    }
}

impl From<PingRow> for PingItem {
    fn from(ping: PingRow) -> Self {
        PingItem {
            id: ping.id,
            kind: ping.kind.as_str().to_owned(),
            at: ping.at.to_string(),
            rid: ping.rid,
            exit_code: ping.exit_code,
            duration_ms: ping
                .duration
                .map(|duration| u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)),
            body: ping.body,
            remote: ping.remote,
            method: ping.method,
        }
    }
}

/// The heartbeat monitors declared in the config, in config order, with their state.
#[utoipa::path(get, path = "/api/v1/heartbeats", tag = "heartbeats",
    params(PageParams),
    security(("api_token" = [])),
    responses(
        (status = 200, description = "A page of heartbeat monitors", body = HeartbeatPage),
        (status = 400, description = "A parameter is invalid", body = ErrorBody),
        (status = 401, description = "No valid API token", body = ErrorBody),
    ))]
pub(crate) async fn list_heartbeats(
    State(state): State<AppState>,
    _access: ReadAccess,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<HeartbeatPage>, ApiError> {
    let page = params
        .map(|Query(value)| value)
        .map_err(|rejection| ApiError::invalid("query", rejection.body_text()))?
        .page()?;
    let monitors = state.engine.catalog().heartbeats();
    let start = page
        .after
        .map_or(0, |after| usize::try_from(after.max(0)).unwrap_or(0));
    let chosen: Vec<(usize, &std::sync::Arc<HeartbeatEntry>)> = monitors
        .iter()
        .enumerate()
        .skip(start)
        .take(page.limit() as usize + 1)
        .collect();
    let ids: Vec<String> = chosen.iter().map(|(_, entry)| entry.id.clone()).collect();
    let states = state.engine.heartbeat_states(&ids).await?;
    let store = state.engine.store();
    let mut rows: Vec<(i64, Heartbeat)> = Vec::with_capacity(chosen.len());
    for (index, entry) in &chosen {
        let stored = states.iter().find(|row| row.monitor == entry.id);
        let pause = store.monitor_pause(&entry.id).await?;
        rows.push((*index as i64 + 1, heartbeat(entry, stored, pause)));
    }
    let finished = page.finish(rows, |(position, _)| *position);
    let (items, next) = within_budget(finished.items, finished.next, RESPONSE_BUDGET_BYTES);
    Ok(Json(HeartbeatPage {
        items,
        next_cursor: next.map(|cursor| cursor.to_string()),
    }))
}

fn configured(state: &AppState, id: &str) -> Result<std::sync::Arc<HeartbeatEntry>, ApiError> {
    state.engine.catalog().heartbeat(id).ok_or_else(|| {
        ApiError::not_found(format!(
            "no heartbeat monitor {id:?} in the config; `GET /api/v1/heartbeats` lists them"
        ))
    })
}

/// One heartbeat monitor with its state.
#[utoipa::path(get, path = "/api/v1/heartbeats/{id}", tag = "heartbeats",
    params(("id" = String, Path, description = "Monitor id")),
    security(("api_token" = [])),
    responses(
        (status = 200, description = "The heartbeat monitor", body = Heartbeat),
        (status = 401, description = "No valid API token", body = ErrorBody),
        (status = 404, description = "No such heartbeat monitor", body = ErrorBody),
    ))]
pub(crate) async fn get_heartbeat(
    State(state): State<AppState>,
    _access: ReadAccess,
    Path(id): Path<String>,
) -> Result<Json<Heartbeat>, ApiError> {
    let entry = configured(&state, &id)?;
    let states = state
        .engine
        .heartbeat_states(std::slice::from_ref(&entry.id))
        .await?;
    let pause = state.engine.store().monitor_pause(&entry.id).await?;
    Ok(Json(heartbeat(&entry, states.first(), pause)))
}

/// A heartbeat monitor's pings, newest first.
#[utoipa::path(get, path = "/api/v1/heartbeats/{id}/pings", tag = "heartbeats",
    params(("id" = String, Path, description = "Monitor id"), PageParams),
    security(("api_token" = [])),
    responses(
        (status = 200, description = "A page of pings", body = PingPage),
        (status = 400, description = "A parameter is invalid", body = ErrorBody),
        (status = 401, description = "No valid API token", body = ErrorBody),
        (status = 404, description = "No such heartbeat monitor", body = ErrorBody),
    ))]
pub(crate) async fn heartbeat_pings(
    State(state): State<AppState>,
    _access: ReadAccess,
    Path(id): Path<String>,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<PingPage>, ApiError> {
    let page = params
        .map(|Query(value)| value)
        .map_err(|rejection| ApiError::invalid("query", rejection.body_text()))?
        .page()?;
    let entry = configured(&state, &id)?;
    let pings = state.engine.pings(&entry.id, page).await?;
    let items = pings
        .items
        .into_iter()
        .map(|ping| {
            let item = PingItem::from(ping);
            (item.id, item)
        })
        .collect();
    let (items, next) = within_budget(items, pings.next, RESPONSE_BUDGET_BYTES);
    Ok(Json(PingPage {
        items,
        next_cursor: next.map(|cursor| cursor.to_string()),
    }))
}
