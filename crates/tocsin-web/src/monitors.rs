//! `/api/v1/monitors`: the monitors Tocsin probes (http, tcp, dns, tls), with their current
//! state, last results and next check.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use tocsin_checks::state::ResultSummary;
use tocsin_checks::{AlertLink, MonitorView, Monitors};
use tocsin_store::monitor_pauses::MonitorPause;
use utoipa::{IntoParams, ToSchema};

use crate::auth::{ReadAccess, WriteAccess};
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
    /// `paused` while the monitor is paused; else `pending` (no result yet), `up`, `degraded`
    /// or `down`.
    pub status: String,
    /// What the checks last found (`pending`, `up`, `degraded` or `down`), kept while paused.
    pub checked_status: String,
    /// When it was paused, while it is.
    pub paused_at: Option<String>,
    /// Who paused it (e.g. `token:ops`), while it is paused.
    pub paused_by: Option<String>,
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
            status: if view.paused.is_some() {
                "paused".to_owned()
            } else {
                state.status.as_str().to_owned()
            },
            checked_status: state.status.as_str().to_owned(),
            paused_at: view
                .paused
                .as_ref()
                .map(|pause| pause.paused_at.to_string()),
            paused_by: view.paused.as_ref().map(|pause| pause.paused_by.clone()),
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

/// A monitor's pause after a pause or resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PauseOutcome {
    pub id: String,
    /// `http`, `tcp`, `dns`, `tls` or `heartbeat`.
    pub kind: String,
    pub paused: bool,
    /// When it was paused, while it is.
    pub paused_at: Option<String>,
    /// Who paused it, while it is.
    pub paused_by: Option<String>,
    /// Whether the call changed anything (pausing a paused monitor, or resuming one that is
    /// not paused, does not).
    pub changed: bool,
}

fn unknown_monitor(id: &str) -> ApiError {
    ApiError::not_found(format!(
        "monitor `{id}` not found: no monitor or heartbeat monitor of the config in force has this id"
    ))
}

/// The monitor a pause or resume is for: a probed monitor (paused through the runner's
/// [`Monitors`], which stop its checks at once) or a heartbeat monitor (paused in the store,
/// where its deadline looks). A 404 when the config in force has neither.
struct Pausable {
    id: String,
    /// `http`, `tcp`, `dns`, `tls` or `heartbeat`.
    kind: String,
    /// Set for a probed monitor.
    probed: Option<Arc<Monitors>>,
}

impl Pausable {
    fn find(
        state: &AppState,
        monitors: Option<Extension<Arc<Monitors>>>,
        id: String,
    ) -> Result<Pausable, ApiError> {
        let monitors = monitors.map(|Extension(monitors)| monitors);
        if let Some(monitor) = monitors.as_ref().and_then(|monitors| monitors.get(&id)) {
            return Ok(Pausable {
                kind: monitor.kind.name().to_owned(),
                probed: monitors,
                id,
            });
        }
        match state.engine.catalog().heartbeat(&id) {
            Some(_) => Ok(Pausable {
                id,
                kind: "heartbeat".to_owned(),
                probed: None,
            }),
            None => Err(unknown_monitor(&id)),
        }
    }

    fn outcome(self, pause: Option<MonitorPause>, changed: bool) -> Json<PauseOutcome> {
        Json(PauseOutcome {
            id: self.id,
            kind: self.kind,
            paused: pause.is_some(),
            paused_at: pause.as_ref().map(|pause| pause.paused_at.to_string()),
            paused_by: pause.map(|pause| pause.paused_by),
            changed,
        })
    }
}

/// Pause a monitor: it is not checked (a heartbeat monitor does not go late) until it is
/// resumed. Its state and any open alert are left as they are; resolve the incident by hand if
/// it should close. Durable: the pause outlives restarts and reloads. Idempotent.
#[utoipa::path(post, path = "/api/v1/monitors/{id}/pause", tag = "monitors",
    params(("id" = String, Path, description = "Monitor id (probed or heartbeat)")),
    security(("api_token" = [])),
    responses(
        (status = 200, description = "The monitor is paused", body = PauseOutcome),
        (status = 401, description = "No valid API token", body = ErrorBody),
        (status = 403, description = "The token cannot write", body = ErrorBody),
        (status = 404, description = "No such monitor", body = ErrorBody),
    ))]
pub(crate) async fn pause_monitor(
    State(state): State<AppState>,
    access: WriteAccess,
    monitors: Option<Extension<Arc<Monitors>>>,
    Path(id): Path<String>,
) -> Result<Json<PauseOutcome>, ApiError> {
    let target = Pausable::find(&state, monitors, id)?;
    let store = state.engine.store();
    let before = store.monitor_pause(&target.id).await?;
    let actor = access.actor().to_string();
    let now = state.engine.now();
    let pause = match &target.probed {
        Some(monitors) => monitors
            .pause(store.as_ref(), &target.id, &actor, now)
            .await?
            .ok_or_else(|| unknown_monitor(&target.id))?,
        None => {
            let pause = store.pause_monitor(&target.id, &actor, now).await?;
            tracing::info!(monitor = %target.id, by = %pause.paused_by, "heartbeat monitor paused; it does not go late until it is resumed");
            pause
        }
    };
    Ok(target.outcome(Some(pause), before.is_none()))
}

/// Resume a paused monitor: its checks go on from the state it had (a heartbeat monitor whose
/// deadline passed meanwhile without a success goes late at once). Idempotent.
#[utoipa::path(post, path = "/api/v1/monitors/{id}/resume", tag = "monitors",
    params(("id" = String, Path, description = "Monitor id (probed or heartbeat)")),
    security(("api_token" = [])),
    responses(
        (status = 200, description = "The monitor is not paused", body = PauseOutcome),
        (status = 401, description = "No valid API token", body = ErrorBody),
        (status = 403, description = "The token cannot write", body = ErrorBody),
        (status = 404, description = "No such monitor", body = ErrorBody),
    ))]
pub(crate) async fn resume_monitor(
    State(state): State<AppState>,
    access: WriteAccess,
    monitors: Option<Extension<Arc<Monitors>>>,
    Path(id): Path<String>,
) -> Result<Json<PauseOutcome>, ApiError> {
    let target = Pausable::find(&state, monitors, id)?;
    let store = state.engine.store();
    let changed = match &target.probed {
        Some(monitors) => monitors
            .resume(store.as_ref(), &target.id)
            .await?
            .ok_or_else(|| unknown_monitor(&target.id))?,
        None => {
            let changed = store.resume_monitor(&target.id).await?;
            if changed {
                // Bring the deadline back now rather than at the paused deadline's next look.
                let watcher =
                    tocsin_checks::heartbeat::HeartbeatWatcher::new(Arc::clone(&state.engine));
                if let Err(error) = watcher.watch_one(&target.id).await {
                    tracing::warn!(monitor = %target.id, error = %tocsin_engine::error_chain(&error), "cannot watch a resumed heartbeat monitor; its deadline comes back within a minute");
                }
                tracing::info!(monitor = %target.id, actor = %access.actor(), "heartbeat monitor resumed");
            }
            changed
        }
    };
    Ok(target.outcome(None, changed))
}

/// The most results one page of `/api/v1/monitors/{id}/results` holds.
pub const MAX_RESULTS_PAGE: usize = 1_000;
/// The span read when `from` is not given: this long before `to`.
const DEFAULT_RESULTS_SPAN: std::time::Duration = std::time::Duration::from_secs(24 * 3_600);

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ResultsParams {
    /// The earliest check time (inclusive), RFC 3339; default 24 hours before `to`.
    #[param(format = DateTime, example = "2026-11-02T09:00:00Z")]
    from: Option<String>,
    /// The end of the range (exclusive), RFC 3339, after `from`; default now.
    #[param(format = DateTime)]
    to: Option<String>,
    /// 1 to 1000; default 100.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// The `next_cursor` of the previous page.
    #[param(value_type = Option<i64>)]
    cursor: Option<String>,
}

/// A page of a monitor's check results, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ResultPage {
    pub monitor: String,
    /// The range read: `from` inclusive, `to` exclusive.
    pub from: String,
    pub to: String,
    pub items: Vec<CheckResultBody>,
    /// Pass it as `cursor` (with the same `from` and `to`) for the next page; absent on the
    /// last one.
    pub next_cursor: Option<String>,
}

fn stored_result_body(row: &tocsin_store::monitor_results::CheckResultRow) -> CheckResultBody {
    use tocsin_store::monitor_results::ResultStatus;
    CheckResultBody {
        at: row.at.to_string(),
        status: match row.status {
            ResultStatus::Up => "up",
            ResultStatus::Degraded => "degraded",
            ResultStatus::Down => "down",
        }
        .to_owned(),
        latency_ms: u64::try_from(row.latency_ms).unwrap_or(0),
        error: row.error.clone(),
        http_status: row.http_status.and_then(|code| u16::try_from(code).ok()),
    }
}

/// A probed monitor's check results in a time range, oldest first, a page at a time. Raw
/// results are kept 14 days (see the uptime rollups for longer spans).
#[utoipa::path(get, path = "/api/v1/monitors/{id}/results", tag = "monitors",
    params(("id" = String, Path, description = "Monitor id"), ResultsParams),
    security(("api_token" = [])),
    responses(
        (status = 200, description = "A page of results", body = ResultPage),
        (status = 400, description = "A parameter is invalid (the error names it)", body = ErrorBody),
        (status = 401, description = "No valid API token", body = ErrorBody),
        (status = 404, description = "No such monitor", body = ErrorBody),
    ))]
pub(crate) async fn monitor_results(
    State(state): State<AppState>,
    _access: ReadAccess,
    monitors: Option<Extension<Arc<Monitors>>>,
    Path(id): Path<String>,
    params: Result<Query<ResultsParams>, QueryRejection>,
) -> Result<Json<ResultPage>, ApiError> {
    let Query(params) =
        params.map_err(|rejection| ApiError::invalid("query", rejection.body_text()))?;
    let known = monitors
        .as_ref()
        .is_some_and(|Extension(monitors)| monitors.get(&id).is_some());
    if !known {
        return Err(ApiError::not_found(format!(
            "monitor `{id}` not found (heartbeat monitors have pings: /api/v1/heartbeats/{id}/pings)"
        )));
    }
    let to = match params.to.as_deref() {
        Some(to) => crate::oncall::parse_instant("to", to)?,
        None => state.engine.now(),
    };
    let from = match params.from.as_deref() {
        Some(from) => crate::oncall::parse_instant("from", from)?,
        None => to
            .checked_sub(DEFAULT_RESULTS_SPAN)
            .unwrap_or(tocsin_core::Timestamp::UNIX_EPOCH),
    };
    if from >= to {
        return Err(ApiError::invalid(
            "from",
            format!("`from` ({from}) must be before `to` ({to})"),
        ));
    }
    let limit = match params.limit.as_deref().map(str::trim) {
        None => 100,
        Some(limit) => match limit.parse::<usize>() {
            Ok(limit @ 1..=MAX_RESULTS_PAGE) => limit,
            _ => {
                return Err(ApiError::invalid(
                    "limit",
                    format!(
                        "`limit` {:?} must be a number from 1 to {MAX_RESULTS_PAGE}",
                        limit.chars().take(32).collect::<String>()
                    ),
                ))
            }
        },
    };
    // The cursor is the time (microseconds) of the last result of the previous page; results
    // of one monitor have distinct times.
    let start = match params.cursor.as_deref().map(str::trim) {
        None => from,
        Some(cursor) => {
            let invalid =
                || ApiError::invalid("cursor", "`cursor` is not a `next_cursor` of this endpoint");
            let micros: i64 = cursor.parse().map_err(|_| invalid())?;
            // A number outside the representable times lies before or after every result.
            match tocsin_core::Timestamp::from_microsecond(micros.saturating_add(1)) {
                Ok(after) => after.max(from),
                Err(_) if micros < 0 => from,
                Err(_) => to,
            }
        }
    };
    let store = state.engine.store();
    let mut rows = if start < to {
        store.results(&id, start, to, limit + 1).await?
    } else {
        Vec::new()
    };
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|row| row.at.as_microsecond().to_string())
    } else {
        None
    };
    Ok(Json(ResultPage {
        monitor: id,
        from: from.to_string(),
        to: to.to_string(),
        items: rows.iter().map(stored_result_body).collect(),
        next_cursor,
    }))
}
