//! Who is on call: `/api/v1/oncall`, a schedule's gaps and overrides, a user's shifts.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tocsin_engine::oncall::{OnCallBy, OnCallError, OnCallNow, OverrideRequest, GAP_HORIZON};
use tocsin_store::{OverrideRow, PageRequest};
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::{body, query, text_param, PageParams};
use crate::auth::{ReadAccess, WriteAccess};
use crate::error::{ApiError, ErrorBody};
use crate::AppState;

#[derive(OpenApi)]
#[openapi(tags(
    (name = "oncall", description = "Who is on call: schedules from the config, overrides made at run time")
))]
struct OnCallDoc;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(OnCallDoc::openapi())
        .routes(routes!(who_is_on_call))
        .routes(routes!(schedule_gaps))
        .routes(routes!(user_shifts))
        .routes(routes!(create_override, list_overrides))
        .routes(routes!(get_override, delete_override))
}

// ---------------------------------------------------------------- wire types

/// Who is on call in one schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OnCallEntry {
    /// The schedule's id from the config.
    pub schedule: String,
    /// The user on call; null when nobody is (a gap).
    pub user: Option<String>,
    /// The layer that puts them on call, counted from 1 in config order; null for an override.
    pub layer: Option<u32>,
    /// The override that puts them on call; null for a layer.
    #[serde(rename = "override")]
    pub override_id: Option<i64>,
    /// Until when this answer holds (the next hand-off, window edge or override edge); null
    /// when it holds for the next 30 days.
    pub until: Option<String>,
}

impl From<OnCallNow> for OnCallEntry {
    fn from(now: OnCallNow) -> Self {
        let (layer, override_id) = match now.source {
            Some(OnCallBy::Layer(layer)) => (u32::try_from(layer).ok(), None),
            Some(OnCallBy::Override(id)) => (None, Some(id)),
            None => (None, None),
        };
        OnCallEntry {
            schedule: now.schedule,
            user: now.user,
            layer,
            override_id,
            until: now.until.map(|at| at.to_string()),
        }
    }
}

/// Who is on call at an instant, in each schedule asked about (config order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OnCallAnswer {
    pub at: String,
    pub schedules: Vec<OnCallEntry>,
}

/// A range `[start, end)` in which a schedule has nobody on call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GapItem {
    pub start: String,
    pub end: String,
    pub seconds: i64,
}

/// The gaps of a schedule in `[from, to)`, overrides included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GapList {
    pub schedule: String,
    pub from: String,
    pub to: String,
    pub gaps: Vec<GapItem>,
    /// Set when `limit` cut the list: ask again with this as `from` for the rest.
    pub next_from: Option<String>,
}

/// A shift of a user in a schedule: `[start, end)`. A shift running at `from` is shown from
/// `from`, one running at `to` until `to`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ShiftItem {
    pub schedule: String,
    pub start: String,
    pub end: String,
}

/// A user's shifts in every schedule over `[from, to)`, by start time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ShiftList {
    pub user: String,
    pub from: String,
    pub to: String,
    pub shifts: Vec<ShiftItem>,
    /// Set when `limit` cut the list: ask again with this as `from` for the rest.
    pub next_from: Option<String>,
}

/// Someone on call instead of a schedule's people for a while.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OverrideItem {
    pub id: i64,
    pub schedule: String,
    /// Inclusive.
    pub start: String,
    /// Exclusive.
    pub end: String,
    /// The user on call instead.
    pub user: String,
    /// When set, `user` takes only this user's turns; otherwise the whole range.
    pub replaces: Option<String>,
    /// Who made it: `token:<name>`.
    pub created_by: String,
    pub created_at: String,
}

impl From<OverrideRow> for OverrideItem {
    fn from(row: OverrideRow) -> Self {
        OverrideItem {
            id: row.id,
            schedule: row.schedule,
            start: row.start.to_string(),
            end: row.end.to_string(),
            user: row.user,
            replaces: row.replaces,
            created_by: row.created_by,
            created_at: row.created_at.to_string(),
        }
    }
}

/// A page of overrides, newest first. Pass `next_cursor` back as `cursor` for the next page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OverridePage {
    pub items: Vec<OverrideItem>,
    pub next_cursor: Option<String>,
}

/// An override to make.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OverrideCreate {
    /// RFC 3339 with an offset, e.g. `2026-11-02T09:00:00Z` or `2026-11-02T09:00:00-08:00`.
    #[schema(format = DateTime)]
    pub start: String,
    /// RFC 3339 with an offset; after `start` and after now, at most 366 days after `start`.
    #[schema(format = DateTime)]
    pub end: String,
    /// A user of the config, not a bot.
    #[schema(pattern = r"^[^\x00]*$")]
    pub user: String,
    /// A member of the schedule: `user` then takes only this user's turns in the range.
    #[serde(default)]
    #[schema(pattern = r"^[^\x00]*$")]
    pub replaces: Option<String>,
}

// ---------------------------------------------------------------- parameters

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct OnCallParams {
    /// RFC 3339 with an offset (default: now).
    #[param(format = DateTime, example = "2026-11-02T09:00:00Z")]
    at: Option<String>,
    /// A schedule id (default: every schedule).
    #[param(pattern = r"^[^\x00]*$")]
    schedule: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RangeParams {
    /// RFC 3339 with an offset (default: now).
    #[param(format = DateTime)]
    from: Option<String>,
    /// RFC 3339 with an offset, after `from`, at most 90 days later (default: 30 days after
    /// `from`).
    #[param(format = DateTime)]
    to: Option<String>,
    /// Items at most, 1 to 500 (default 500).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct OverrideListParams {
    /// Only overrides that end after this (RFC 3339 with an offset).
    #[param(format = DateTime)]
    from: Option<String>,
    /// Only overrides that start before this (RFC 3339 with an offset).
    #[param(format = DateTime)]
    to: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<i64>, minimum = 1)]
    cursor: Option<String>,
    /// Items per page, 1 to 500 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
}

/// Parses an instant of a request: RFC 3339 with an offset (`Z` for UTC).
pub(crate) fn parse_instant(field: &str, value: &str) -> Result<Timestamp, ApiError> {
    value.trim().parse::<Timestamp>().map_err(|_| {
        ApiError::invalid(
            field,
            format!(
                "{field} {:?} is not a time with an offset; write RFC 3339, e.g. \
                 2026-11-02T09:00:00Z or 2026-11-02T09:00:00-08:00",
                value.chars().take(64).collect::<String>()
            ),
        )
    })
}

fn optional_instant(field: &str, value: Option<&str>) -> Result<Option<Timestamp>, ApiError> {
    value.map(|value| parse_instant(field, value)).transpose()
}

/// `[from, to)` of a range query: `from` defaults to now, `to` to 30 days after `from`.
fn range(params: &RangeParams, now: Timestamp) -> Result<(Timestamp, Timestamp), ApiError> {
    let from = optional_instant("from", params.from.as_deref())?.unwrap_or(now);
    let to = match optional_instant("to", params.to.as_deref())? {
        Some(to) => to,
        None => from.checked_add(GAP_HORIZON).unwrap_or(Timestamp::MAX),
    };
    Ok((from, to))
}

fn item_limit(value: Option<&str>) -> Result<usize, ApiError> {
    match value {
        None => Ok(PageRequest::MAX_LIMIT as usize),
        Some(value) => value
            .parse::<u32>()
            .ok()
            .filter(|limit| (1..=PageRequest::MAX_LIMIT).contains(limit))
            .map(|limit| limit as usize)
            .ok_or_else(|| {
                ApiError::invalid(
                    "limit",
                    format!(
                        "limit must be a whole number from 1 to {}",
                        PageRequest::MAX_LIMIT
                    ),
                )
            }),
    }
}

/// A schedule or user id from the path or the query.
fn id_param(field: &str, value: String) -> Result<String, ApiError> {
    Ok(text_param(field, Some(value))?.unwrap_or_default())
}

/// A schedule id from the path, which must be declared in the config in force: checked before
/// anything else of the request, so an unknown schedule is a 404 whatever the rest says.
fn known_schedule(state: &AppState, id: String) -> Result<String, ApiError> {
    let id = id_param("id", id)?;
    if state.engine.schedule_catalog().schedule(&id).is_none() {
        return Err(api_error(OnCallError::UnknownSchedule(id), "id"));
    }
    Ok(id)
}

/// The API error for an on-call error; `schedule_field` names where the schedule id came from
/// (`id` in a path, `schedule` in a query).
fn api_error(error: OnCallError, schedule_field: &str) -> ApiError {
    match error {
        OnCallError::UnknownSchedule(id) => {
            ApiError::not_found(format!("schedule `{id}` is not declared in the config"))
                .with_field(schedule_field)
        }
        OnCallError::UnknownUser(id) => {
            ApiError::not_found(format!("user `{id}` is not declared in the config"))
                .with_field("id")
        }
        OnCallError::Invalid { field, message } => ApiError::invalid(field, message),
        OnCallError::Engine(error) => error.into(),
    }
}

// ---------------------------------------------------------------- handlers

/// Who is on call at an instant (default now), in one schedule or in every one.
#[utoipa::path(get, path = "/api/v1/oncall", tag = "oncall",
    params(OnCallParams),
    security(("api_token" = [])),
    responses(
        (status = 200, description = "Who is on call in each schedule", body = OnCallAnswer),
        (status = 400, description = "A parameter is invalid (`at` not RFC 3339...)", body = ErrorBody),
        (status = 401, description = "No valid API token", body = ErrorBody),
        (status = 404, description = "No such schedule", body = ErrorBody),
    ))]
async fn who_is_on_call(
    State(state): State<AppState>,
    _access: ReadAccess,
    params: Result<Query<OnCallParams>, QueryRejection>,
) -> Result<Json<OnCallAnswer>, ApiError> {
    let params = query(params)?;
    let at = optional_instant("at", params.at.as_deref())?.unwrap_or_else(|| state.engine.now());
    let schedule = text_param("schedule", params.schedule)?;
    let answers = state
        .engine
        .on_call_at(at, schedule.as_deref())
        .await
        .map_err(|error| api_error(error, "schedule"))?;
    Ok(Json(OnCallAnswer {
        at: at.to_string(),
        schedules: answers.into_iter().map(OnCallEntry::from).collect(),
    }))
}

/// The ranges in which a schedule has nobody on call, overrides included (default: the next
/// 30 days).
#[utoipa::path(get, path = "/api/v1/schedules/{id}/gaps", tag = "oncall",
    params(("id" = String, Path, description = "Schedule id", pattern = r"^[^\x00]*$"), RangeParams),
    security(("api_token" = [])),
    responses(
        (status = 200, description = "The gaps, oldest first", body = GapList),
        (status = 400, description = "A parameter is invalid", body = ErrorBody),
        (status = 401, description = "No valid API token", body = ErrorBody),
        (status = 404, description = "No such schedule", body = ErrorBody),
    ))]
async fn schedule_gaps(
    State(state): State<AppState>,
    _access: ReadAccess,
    Path(id): Path<String>,
    params: Result<Query<RangeParams>, QueryRejection>,
) -> Result<Json<GapList>, ApiError> {
    let params = query(params)?;
    let id = known_schedule(&state, id)?;
    let (from, to) = range(&params, state.engine.now())?;
    let limit = item_limit(params.limit.as_deref())?;
    let mut gaps = state
        .engine
        .schedule_gaps(&id, from, to)
        .await
        .map_err(|error| api_error(error, "id"))?;
    let next_from = gaps.get(limit).map(|gap| gap.start.to_string());
    gaps.truncate(limit);
    Ok(Json(GapList {
        schedule: id,
        from: from.to_string(),
        to: to.to_string(),
        gaps: gaps
            .into_iter()
            .map(|gap| GapItem {
                start: gap.start.to_string(),
                end: gap.end.to_string(),
                seconds: gap.end.duration_since(gap.start).as_secs(),
            })
            .collect(),
        next_from,
    }))
}

/// A user's shifts in every schedule, overrides included (default: the next 30 days).
#[utoipa::path(get, path = "/api/v1/users/{id}/shifts", tag = "oncall",
    params(("id" = String, Path, description = "User id", pattern = r"^[^\x00]*$"), RangeParams),
    security(("api_token" = [])),
    responses(
        (status = 200, description = "The shifts, by start time", body = ShiftList),
        (status = 400, description = "A parameter is invalid", body = ErrorBody),
        (status = 401, description = "No valid API token", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
    ))]
async fn user_shifts(
    State(state): State<AppState>,
    _access: ReadAccess,
    Path(id): Path<String>,
    params: Result<Query<RangeParams>, QueryRejection>,
) -> Result<Json<ShiftList>, ApiError> {
    let params = query(params)?;
    let id = id_param("id", id)?;
    if state.engine.schedule_catalog().user(&id).is_none() {
        return Err(api_error(OnCallError::UnknownUser(id), "id"));
    }
    let (from, to) = range(&params, state.engine.now())?;
    let limit = item_limit(params.limit.as_deref())?;
    let mut shifts = state
        .engine
        .shifts_of_user(&id, from, to)
        .await
        .map_err(|error| api_error(error, "schedule"))?;
    let next_from = shifts.get(limit).map(|shift| shift.start.to_string());
    shifts.truncate(limit);
    Ok(Json(ShiftList {
        user: id,
        from: from.to_string(),
        to: to.to_string(),
        shifts: shifts
            .into_iter()
            .map(|shift| ShiftItem {
                schedule: shift.schedule,
                start: shift.start.to_string(),
                end: shift.end.to_string(),
            })
            .collect(),
        next_from,
    }))
}

/// Puts someone on call instead of the schedule for a while: for the whole range, or (with
/// `replaces`) only for one member's turns in it. Where overrides overlap, the later wins.
#[utoipa::path(post, path = "/api/v1/schedules/{id}/overrides", tag = "oncall",
    params(("id" = String, Path, description = "Schedule id", pattern = r"^[^\x00]*$")),
    request_body = OverrideCreate,
    security(("api_token" = [])),
    responses(
        (status = 201, description = "The override, in force at once", body = OverrideItem),
        (status = 400, description = "A field is invalid (end not after start, unknown user, a bot...); nothing is stored", body = ErrorBody),
        (status = 401, description = "No valid API token", body = ErrorBody),
        (status = 403, description = "The token cannot write", body = ErrorBody),
        (status = 404, description = "No such schedule", body = ErrorBody),
    ))]
async fn create_override(
    State(state): State<AppState>,
    access: WriteAccess,
    Path(id): Path<String>,
    request: Result<Json<OverrideCreate>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let id = known_schedule(&state, id)?;
    let request = body(request)?;
    let start = parse_instant("start", &request.start)?;
    let end = parse_instant("end", &request.end)?;
    let user = id_param("user", request.user)?;
    let replaces = text_param("replaces", request.replaces)?;
    // Stores keep microseconds; so does what is checked.
    let micros = |at: Timestamp| Timestamp::from_microsecond(at.as_microsecond()).unwrap_or(at);
    let created = state
        .engine
        .create_override(
            &OverrideRequest {
                schedule: id,
                start: micros(start),
                end: micros(end),
                user,
                replaces,
            },
            &access.actor(),
        )
        .await
        .map_err(|error| api_error(error, "id"))?;
    Ok((StatusCode::CREATED, Json(OverrideItem::from(created))))
}

/// A schedule's overrides, newest first; `from` and `to` keep those overlapping a range.
#[utoipa::path(get, path = "/api/v1/schedules/{id}/overrides", tag = "oncall",
    params(("id" = String, Path, description = "Schedule id", pattern = r"^[^\x00]*$"), OverrideListParams),
    security(("api_token" = [])),
    responses(
        (status = 200, description = "A page of overrides", body = OverridePage),
        (status = 400, description = "A parameter is invalid", body = ErrorBody),
        (status = 401, description = "No valid API token", body = ErrorBody),
        (status = 404, description = "No such schedule", body = ErrorBody),
    ))]
async fn list_overrides(
    State(state): State<AppState>,
    _access: ReadAccess,
    Path(id): Path<String>,
    params: Result<Query<OverrideListParams>, QueryRejection>,
) -> Result<Json<OverridePage>, ApiError> {
    let params = query(params)?;
    let id = known_schedule(&state, id)?;
    let from = optional_instant("from", params.from.as_deref())?;
    let to = optional_instant("to", params.to.as_deref())?;
    let page = PageParams::new(params.cursor, params.limit).page()?;
    let page = state
        .engine
        .schedule_overrides(&id, from, to, page)
        .await
        .map_err(|error| api_error(error, "id"))?;
    Ok(Json(OverridePage {
        items: page.items.into_iter().map(OverrideItem::from).collect(),
        next_cursor: page.next.map(|cursor| cursor.to_string()),
    }))
}

fn override_id(value: &str) -> Result<i64, ApiError> {
    value
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            ApiError::invalid(
                "override_id",
                format!(
                    "{:?} is not an override id",
                    value.chars().take(64).collect::<String>()
                ),
            )
        })
}

/// One override of a schedule.
#[utoipa::path(get, path = "/api/v1/schedules/{id}/overrides/{override_id}", tag = "oncall",
    params(
        ("id" = String, Path, description = "Schedule id", pattern = r"^[^\x00]*$"),
        ("override_id" = i64, Path, description = "Override id", minimum = 1),
    ),
    security(("api_token" = [])),
    responses(
        (status = 200, description = "The override", body = OverrideItem),
        (status = 400, description = "The id is invalid", body = ErrorBody),
        (status = 401, description = "No valid API token", body = ErrorBody),
        (status = 404, description = "No such schedule or override", body = ErrorBody),
    ))]
async fn get_override(
    State(state): State<AppState>,
    _access: ReadAccess,
    Path((id, override_id_text)): Path<(String, String)>,
) -> Result<Json<OverrideItem>, ApiError> {
    let id = known_schedule(&state, id)?;
    let override_id = override_id(&override_id_text)?;
    let row = state
        .engine
        .schedule_override(&id, override_id)
        .await
        .map_err(|error| api_error(error, "id"))?;
    Ok(Json(row.into()))
}

/// Deletes an override: the schedule's people are on call again at once.
#[utoipa::path(delete, path = "/api/v1/schedules/{id}/overrides/{override_id}", tag = "oncall",
    params(
        ("id" = String, Path, description = "Schedule id", pattern = r"^[^\x00]*$"),
        ("override_id" = i64, Path, description = "Override id", minimum = 1),
    ),
    security(("api_token" = [])),
    responses(
        (status = 200, description = "The deleted override", body = OverrideItem),
        (status = 400, description = "The id is invalid", body = ErrorBody),
        (status = 401, description = "No valid API token", body = ErrorBody),
        (status = 403, description = "The token cannot write", body = ErrorBody),
        (status = 404, description = "No such schedule or override", body = ErrorBody),
    ))]
async fn delete_override(
    State(state): State<AppState>,
    _access: WriteAccess,
    Path((id, override_id_text)): Path<(String, String)>,
) -> Result<Json<OverrideItem>, ApiError> {
    let id = known_schedule(&state, id)?;
    let override_id = override_id(&override_id_text)?;
    let row = state
        .engine
        .delete_override(&id, override_id)
        .await
        .map_err(|error| api_error(error, "id"))?;
    Ok(Json(row.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_need_an_offset_and_errors_name_the_field() {
        assert_eq!(
            parse_instant("at", "2026-11-02T09:00:00-08:00")
                .unwrap()
                .to_string(),
            "2026-11-02T17:00:00Z"
        );
        assert!(parse_instant("at", "2026-11-02T09:00:00Z").is_ok());
        for bad in ["2026-11-02T09:00", "tomorrow", "", "2026-13-02T09:00:00Z"] {
            let error = parse_instant("at", bad).unwrap_err();
            let body = format!("{error:?}");
            assert!(body.contains("\"at\""), "{body}");
            assert!(body.contains("RFC 3339"), "{body}");
        }
    }

    #[test]
    fn the_openapi_document_has_the_oncall_routes() {
        let document = serde_json::to_value(crate::openapi_document()).unwrap();
        let paths = &document["paths"];
        for path in [
            "/api/v1/oncall",
            "/api/v1/schedules/{id}/gaps",
            "/api/v1/users/{id}/shifts",
            "/api/v1/schedules/{id}/overrides",
            "/api/v1/schedules/{id}/overrides/{override_id}",
        ] {
            assert!(paths.get(path).is_some(), "{path} missing");
        }
        assert!(paths["/api/v1/schedules/{id}/overrides"]
            .get("post")
            .is_some());
        assert!(paths["/api/v1/schedules/{id}/overrides/{override_id}"]
            .get("delete")
            .is_some());
        assert!(document["components"]["schemas"]
            .get("OverrideCreate")
            .is_some());
    }
}
