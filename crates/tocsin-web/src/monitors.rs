//! `/api/v1/monitors`: the monitors Tocsin probes (http, tcp, dns, tls), with their current
//! state, last results and next check.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use tocsin_checks::state::ResultSummary;
use tocsin_checks::{AlertLink, MonitorView, Monitors};
use utoipa::{IntoParams, ToSchema};

use crate::auth::ReadAccess;
use crate::error::{ApiError, ErrorBody};
use crate::AppState;

/// A monitor and where it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MonitorStatus {
    pub id: String,
    pub service: String,
    /// `http`, `tcp`, `dns` or `tls`.
    pub kind: String,
    /// What it checks, e.g. `GET https://checkout.example/healthz` (without credentials or
    /// query).
    pub target: String,
    pub interval_seconds: f64,
    /// `pending` (no result yet), `up`, `degraded` or `down`.
    pub status: String,
    /// When the current status began.
    pub status_since: Option<String>,
    /// The first failing check of the current failure, while it is not up.
    pub failing_since: Option<String>,
    pub flapping: bool,
    /// `none`, `own` (its alert is open) or `parent` (its failure is recorded on the incident
    /// of `parent`).
    pub alert: String,
    pub parent: Option<String>,
    pub depends_on: Vec<String>,
    pub last_result: Option<CheckResultBody>,
    /// The last up result.
    pub last_good: Option<CheckResultBody>,
    /// The last result that was not up.
    pub last_failure: Option<CheckResultBody>,
    pub next_check_at: Option<String>,
    /// Over the last 24 hours, from hourly rollups (absent before the first rollup).
    pub uptime_24h: Option<UptimeBody>,
    /// Over the last 30 days, from daily rollups.
    pub uptime_30d: Option<UptimeBody>,
}

/// Availability over a span: `percent` = (up + degraded) / checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UptimeBody {
    pub percent: f64,
    pub checks: i64,
    pub up: i64,
    pub degraded: i64,
    pub down: i64,
    /// The highest of the span's hourly (or daily) latency percentiles.
    pub p50_ms: i64,
    pub p95_ms: i64,
    pub p99_ms: i64,
}

fn uptime_body(uptime: &tocsin_checks::view::Uptime) -> UptimeBody {
    UptimeBody {
        percent: uptime.percent,
        checks: uptime.checks,
        up: uptime.up,
        degraded: uptime.degraded,
        down: uptime.down,
        p50_ms: uptime.p50_ms,
        p95_ms: uptime.p95_ms,
        p99_ms: uptime.p99_ms,
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CheckResultBody {
    pub at: String,
    /// `up`, `degraded` or `down`.
    pub status: String,
    pub latency_ms: u64,
    pub error: Option<String>,
    pub http_status: Option<u16>,
}

/// A page of monitors, in id order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MonitorPage {
    pub items: Vec<MonitorStatus>,
    /// Pass it as `cursor` for the next page; absent on the last one.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct MonitorListParams {
    /// The `next_cursor` of the previous page (a monitor id).
    cursor: Option<String>,
    /// 1 to 500; default 50.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

fn result_body(result: &ResultSummary) -> CheckResultBody {
    CheckResultBody {
        at: result.at.to_string(),
        status: result.status.as_str().to_owned(),
        latency_ms: u64::try_from(result.latency.as_millis()).unwrap_or(u64::MAX),
        error: result.error.clone(),
        http_status: result.http_status,
    }
}

impl From<MonitorView> for MonitorStatus {
    fn from(view: MonitorView) -> Self {
        let monitor = &view.monitor;
        let state = &view.state;
        let (alert, parent) = match &state.alert {
            AlertLink::None => ("none", None),
            AlertLink::Own => ("own", None),
            AlertLink::Parent(parent) => ("parent", Some(parent.clone())),
        };
        MonitorStatus {
            id: monitor.id.clone(),
            service: monitor.service.clone(),
            kind: monitor.kind.name().to_owned(),
            target: tocsin_checks::runner::target_of(monitor),
            interval_seconds: monitor
                .probe()
                .map_or(0.0, |probe| probe.interval.as_secs_f64()),
            status: state.status.as_str().to_owned(),
            status_since: state.since.map(|at| at.to_string()),
            failing_since: state.failing_since.map(|at| at.to_string()),
            flapping: state.flapping,
            alert: alert.to_owned(),
            parent,
            depends_on: monitor.depends_on.clone(),
            last_result: state.last_result.as_ref().map(result_body),
            last_good: state.last_good.as_ref().map(result_body),
            last_failure: state.last_failure.as_ref().map(result_body),
            next_check_at: view.next_check_at.map(|at| at.to_string()),
            uptime_24h: view.last_day.as_ref().map(uptime_body),
            uptime_30d: view.last_30_days.as_ref().map(uptime_body),
        }
    }
}

/// List the probed monitors with their state, in id order.
#[utoipa::path(get, path = "/api/v1/monitors", tag = "monitors",
    params(MonitorListParams),
    security(("api_token" = [])),
    responses(
        (status = 200, description = "A page of monitors", body = MonitorPage),
        (status = 400, description = "A parameter is invalid", body = ErrorBody),
        (status = 401, description = "No valid API token", body = ErrorBody),
    ))]
pub(crate) async fn list_monitors(
    State(state): State<AppState>,
    _access: ReadAccess,
    monitors: Option<Extension<Arc<Monitors>>>,
    params: Result<Query<MonitorListParams>, QueryRejection>,
) -> Result<Json<MonitorPage>, ApiError> {
    let Query(params) =
        params.map_err(|rejection| ApiError::invalid("query", rejection.body_text()))?;
    let limit = match params.limit {
        None => 50,
        Some(limit @ 1..=500) => limit as usize,
        Some(_) => return Err(ApiError::invalid("limit", "`limit` must be 1 to 500")),
    };
    let Some(Extension(monitors)) = monitors else {
        return Ok(Json(MonitorPage {
            items: Vec::new(),
            next_cursor: None,
        }));
    };
    let store = state.engine.store();
    let (views, next) = monitors
        .views(
            store.as_ref(),
            params.cursor.as_deref(),
            limit,
            state.engine.now(),
        )
        .await?;
    Ok(Json(MonitorPage {
        items: views.into_iter().map(MonitorStatus::from).collect(),
        next_cursor: next,
    }))
}

/// One probed monitor with its state.
#[utoipa::path(get, path = "/api/v1/monitors/{id}", tag = "monitors",
    params(("id" = String, Path, description = "Monitor id")),
    security(("api_token" = [])),
    responses(
        (status = 200, description = "The monitor", body = MonitorStatus),
        (status = 401, description = "No valid API token", body = ErrorBody),
        (status = 404, description = "No such monitor", body = ErrorBody),
    ))]
pub(crate) async fn get_monitor(
    State(state): State<AppState>,
    _access: ReadAccess,
    monitors: Option<Extension<Arc<Monitors>>>,
    Path(id): Path<String>,
) -> Result<Json<MonitorStatus>, ApiError> {
    let not_found = || {
        ApiError::not_found(format!(
            "monitor `{id}` not found (heartbeat monitors are not listed here)"
        ))
    };
    let Some(Extension(monitors)) = monitors else {
        return Err(not_found());
    };
    let store = state.engine.store();
    match monitors
        .view(store.as_ref(), &id, state.engine.now())
        .await?
    {
        Some(view) => Ok(Json(view.into())),
        None => Err(not_found()),
    }
}
