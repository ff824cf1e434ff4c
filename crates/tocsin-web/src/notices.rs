//! Test pages (`POST /api/v1/users/{id}/test-page`) and reading one notification of the
//! outbox (`GET /api/v1/notifications/{id}`), to follow what a test page did.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use tocsin_engine::TestPageError;
use tocsin_store::outbox::{NotificationRow, NotificationState, Recipient};
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::text_param;
use crate::auth::{ReadAccess, WriteAccess};
use crate::error::{ApiError, ErrorBody};
use crate::AppState;

#[derive(OpenApi)]
#[openapi(tags(
    (name = "notifications", description = "The outbox: test pages, and how each notification fared")
))]
struct NotificationsDoc;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(NotificationsDoc::openapi())
        .routes(routes!(test_page))
        .routes(routes!(get_notification))
}

/// Where a notification stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NotificationStatus {
    /// Waiting to be sent (first attempt, or a retry).
    Pending,
    /// A dispatcher is sending it.
    Sending,
    Sent,
    /// Given up after the last attempt.
    Failed,
    /// Withdrawn before it was sent (its incident was acknowledged or resolved).
    Cancelled,
}

impl NotificationStatus {
    /// Sent, failed or cancelled: it will not change any more.
    pub fn is_settled(self) -> bool {
        matches!(
            self,
            NotificationStatus::Sent | NotificationStatus::Failed | NotificationStatus::Cancelled
        )
    }
}

impl From<NotificationState> for NotificationStatus {
    fn from(state: NotificationState) -> Self {
        match state {
            NotificationState::Pending => NotificationStatus::Pending,
            NotificationState::Sending => NotificationStatus::Sending,
            NotificationState::Sent => NotificationStatus::Sent,
            NotificationState::Failed => NotificationStatus::Failed,
            NotificationState::Cancelled => NotificationStatus::Cancelled,
        }
    }
}

/// One notification of the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Notification {
    pub id: i64,
    /// The incident it is about; null for a test page or a notice.
    pub incident: Option<i64>,
    /// `user:<id>` or `channel:<id>`.
    pub recipient: String,
    /// The user's contact method id (empty for a channel).
    pub contact: String,
    /// How it is sent: `email`, `webhook`, `ntfy`, `slack`, `console`.
    pub method: String,
    /// What it says: `page`, an `incident.*` update, `test` or `gap_notice`.
    pub kind: String,
    pub state: NotificationStatus,
    /// Attempts begun.
    pub attempts: i64,
    /// When it was queued.
    pub created_at: String,
    /// When it is (or was last) due to be sent.
    pub due_at: String,
    /// When it was sent, failed for good or withdrawn.
    pub settled_at: Option<String>,
    /// From queued to settled, in milliseconds (retries included); null until settled.
    pub latency_ms: Option<i64>,
    /// The last attempt's error, if one failed.
    pub last_error: Option<String>,
}

impl From<NotificationRow> for Notification {
    fn from(row: NotificationRow) -> Self {
        let (recipient, contact) = match &row.recipient {
            Recipient::User { contact, .. } => (row.recipient.to_string(), contact.clone()),
            Recipient::Channel { .. } => (row.recipient.to_string(), String::new()),
        };
        Notification {
            id: row.id,
            incident: row.incident.map(|number| number.0),
            recipient,
            contact,
            method: row.method,
            kind: row.kind,
            state: row.state.into(),
            attempts: row.attempts,
            created_at: row.created_at.to_string(),
            due_at: row.next_attempt_at.to_string(),
            settled_at: row.settled_at.map(|at| at.to_string()),
            latency_ms: row
                .settled_at
                .map(|at| at.duration_since(row.created_at).as_millis())
                .map(|millis| i64::try_from(millis).unwrap_or(i64::MAX)),
            last_error: row.last_error,
        }
    }
}

/// The test pages queued for a user: one per contact method, in config order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TestPageQueued {
    pub user: String,
    pub notifications: Vec<Notification>,
}

/// Sends a test page to each contact method of a user, through the real outbox and
/// dispatcher (retries included), now. Follow each with `GET /api/v1/notifications/{id}`
/// until its `state` is `sent` or `failed`. A test page is about no incident: it carries no
/// acknowledge link and is on no timeline. An unknown user is a 404; a bot, or a user without
/// contact methods, a 400; nothing is stored then.
#[utoipa::path(post, path = "/api/v1/users/{id}/test-page", tag = "notifications",
    params(("id" = String, Path, description = "User id", pattern = r"^[^\x00]*$")),
    security(("api_token" = [])),
    responses(
        (status = 202, description = "Queued: one notification per contact method", body = TestPageQueued),
        (status = 400, description = "The user is a bot or has no contact methods (`field` is `id`); nothing is stored", body = ErrorBody),
        (status = 401, description = "No valid API token", body = ErrorBody),
        (status = 403, description = "The token cannot write", body = ErrorBody),
        (status = 404, description = "No such user (`field` is `id`)", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    ))]
async fn test_page(
    State(state): State<AppState>,
    _access: WriteAccess,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<TestPageQueued>), ApiError> {
    let id = text_param("id", Some(id))?.unwrap_or_default();
    let rows = state
        .engine
        .test_page(&id)
        .await
        .map_err(|error| match error {
            TestPageError::UnknownUser(_) => {
                ApiError::not_found(error.to_string()).with_field("id")
            }
            TestPageError::Bot(_) | TestPageError::NoContact(_) => {
                ApiError::invalid("id", error.to_string())
            }
            TestPageError::Engine(error) => error.into(),
        })?;
    Ok((
        StatusCode::ACCEPTED,
        Json(TestPageQueued {
            user: id,
            notifications: rows.into_iter().map(Notification::from).collect(),
        }),
    ))
}

/// One notification of the outbox: its state, attempts, latency and last error.
#[utoipa::path(get, path = "/api/v1/notifications/{id}", tag = "notifications",
    params(("id" = i64, Path, description = "Notification id", minimum = 1)),
    security(("api_token" = [])),
    responses(
        (status = 200, description = "The notification", body = Notification),
        (status = 400, description = "The id is invalid", body = ErrorBody),
        (status = 401, description = "No valid API token", body = ErrorBody),
        (status = 404, description = "No such notification", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    ))]
async fn get_notification(
    State(state): State<AppState>,
    _access: ReadAccess,
    Path(id): Path<String>,
) -> Result<Json<Notification>, ApiError> {
    let id = id
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::invalid("id", format!("{id:?} is not a notification id")))?;
    let row = state.engine.notification(id).await?;
    Ok(Json(row.into()))
}
