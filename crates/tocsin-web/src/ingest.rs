//! The ingestion endpoints: PagerDuty Events API v2 (and v1), change events, Prometheus
//! Alertmanager, Grafana and Tocsin's generic JSON. Each authenticates by integration key,
//! validates everything before anything is queued, and answers 2xx only after the commit.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::json;
use tocsin_core::{Event, ServiceId};
use tocsin_engine::{ServiceEntry, SubmitError};
use tocsin_store::Inbound;

use crate::parse::{self, ParseErrors};
use crate::AppState;

use crate::parse::MAX_BODY_BYTES;
/// How far a signed Grafana timestamp may be from our clock.
const GRAFANA_MAX_SKEW_SECONDS: i64 = 300;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/enqueue", post(enqueue_v2))
        .route("/v2/enqueue/", post(enqueue_v2))
        .route("/v2/change/enqueue", post(enqueue_change))
        .route("/v2/change/enqueue/", post(enqueue_change))
        .route("/generic/2010-04-15/create_event.json", post(enqueue_v1))
        .route("/integrations/alertmanager/{key}", post(alertmanager))
        .route("/integrations/grafana/{key}", post(grafana).put(grafana))
        .route("/integrations/generic/{key}", post(generic))
}

/// The answer to an accepted PagerDuty v2 or generic event:
/// `{"status":"success","message":"Event processed","dedup_key":"..."}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EventAccepted {
    pub status: String,
    pub message: String,
    pub dedup_key: String,
}

/// The body of every refused ingestion request (PagerDuty's error shape).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IngestErrorBody {
    pub status: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// Why an ingestion request was refused. Rendered in PagerDuty's error shape, which every
/// ingestion endpoint shares: `{status, message, errors[]}`.
#[derive(Debug)]
pub(crate) enum IngestError {
    Invalid(Vec<String>),
    TooLarge,
    UnknownKey,
    BadSignature(String),
    Throttled,
    Unavailable(String),
}

impl IngestError {
    fn reason(&self) -> &'static str {
        match self {
            IngestError::Invalid(_) => "invalid",
            IngestError::TooLarge => "too_large",
            IngestError::UnknownKey => "unknown_key",
            IngestError::BadSignature(_) => "bad_signature",
            IngestError::Throttled => "queue_full",
            IngestError::Unavailable(_) => "unavailable",
        }
    }
}

impl From<ParseErrors> for IngestError {
    fn from(errors: ParseErrors) -> Self {
        IngestError::Invalid(errors.0)
    }
}

impl From<SubmitError> for IngestError {
    fn from(error: SubmitError) -> Self {
        match error {
            SubmitError::QueueFull => IngestError::Throttled,
            SubmitError::TooLarge { events, capacity } => IngestError::Invalid(vec![format!(
                "the request holds {events} events; at most {capacity} fit in one request"
            )]),
            SubmitError::ShuttingDown => IngestError::Unavailable(
                "tocsin is shutting down; nothing of this request was stored, retry".to_owned(),
            ),
            SubmitError::Store(_) => IngestError::Unavailable(
                "the store could not commit the events; nothing of this request was stored, retry"
                    .to_owned(),
            ),
        }
    }
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        let (status, body, retry_after) = match self {
            IngestError::Invalid(errors) => (
                StatusCode::BAD_REQUEST,
                json!({ "status": "invalid event", "message": "Event object is invalid", "errors": errors }),
                None,
            ),
            IngestError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({ "status": "invalid event", "message": "Event object is invalid",
                        "errors": [format!("body is larger than {MAX_BODY_BYTES} bytes (512 KB)")] }),
                None,
            ),
            IngestError::UnknownKey => (
                StatusCode::NOT_FOUND,
                json!({ "status": "invalid event", "message": "Unknown integration key",
                        "errors": ["the integration key in the URL does not belong to any service; check `integration_keys` in the config"] }),
                None,
            ),
            IngestError::BadSignature(problem) => (
                StatusCode::UNAUTHORIZED,
                json!({ "status": "unauthorized", "message": "Signature check failed", "errors": [problem] }),
                None,
            ),
            IngestError::Throttled => (
                StatusCode::TOO_MANY_REQUESTS,
                json!({ "status": "throttle exceeded",
                        "message": "The ingest queue is full. Please retry after the Retry-After delay." }),
                Some("1"),
            ),
            IngestError::Unavailable(message) => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "status": "unavailable", "message": message }),
                Some("5"),
            ),
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from_static(seconds),
            );
        }
        response
    }
}

/// A request body of at most [`MAX_BODY_BYTES`], refused early when `Content-Length` says more.
pub(crate) struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = IngestError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<usize>().ok());
        if declared.is_some_and(|length| length > MAX_BODY_BYTES) {
            return Err(IngestError::TooLarge);
        }
        axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES)
            .await
            .map(RawBody)
            .map_err(|_| IngestError::TooLarge)
    }
}

/// Runs one ingestion request: counts refusals, waits for the commit with a bound.
async fn ingest(
    state: &AppState,
    integration: &'static str,
    handle: impl std::future::Future<Output = Result<Response, IngestError>>,
) -> Response {
    match handle.await {
        Ok(response) => response,
        Err(error) => {
            state
                .engine
                .metrics()
                .count_rejected(integration, error.reason());
            if let IngestError::Invalid(errors) = &error {
                tracing::debug!(integration, ?errors, "event refused");
            }
            error.into_response()
        }
    }
}

/// Queues the events and waits for the real outcome of their commit, however long the writer
/// takes: the writer answers every request, so a 2xx means committed and an error means that
/// nothing of the request was stored, and a sender that retries after an error is not counted
/// twice. (Requests cannot pile up meanwhile: the queue is bounded, and a full one answers 429
/// at once.)
async fn commit(state: &AppState, items: Vec<Inbound>) -> Result<(), IngestError> {
    state.engine.submit(items).await.map_err(IngestError::from)
}

fn service_by_key(state: &AppState, key: &str) -> Result<Arc<ServiceEntry>, IngestError> {
    state
        .engine
        .catalog()
        .service_for_key(key)
        .ok_or(IngestError::UnknownKey)
}

fn lookup(state: &AppState) -> impl Fn(&str) -> Option<ServiceId> + '_ {
    move |key| {
        state
            .engine
            .catalog()
            .service_for_key(key)
            .map(|service| service.id.clone())
    }
}

fn accepted(dedup_key: &str) -> Response {
    (
        StatusCode::ACCEPTED,
        axum::Json(EventAccepted {
            status: "success".to_owned(),
            message: "Event processed".to_owned(),
            dedup_key: dedup_key.to_owned(),
        }),
    )
        .into_response()
}

async fn enqueue_v2(State(state): State<AppState>, body: Result<RawBody, IngestError>) -> Response {
    ingest(&state, "events-v2", async {
        let RawBody(body) = body?;
        let event = parse::parse_event_v2(&body, &lookup(&state), state.engine.now())?;
        let dedup_key = event.dedup_key.to_string();
        commit(&state, vec![Inbound::Alert(event)]).await?;
        Ok(accepted(&dedup_key))
    })
    .await
}

async fn enqueue_change(
    State(state): State<AppState>,
    body: Result<RawBody, IngestError>,
) -> Response {
    ingest(&state, "change", async {
        let RawBody(body) = body?;
        let change = parse::parse_change_event(&body, &lookup(&state), state.engine.now())?;
        commit(&state, vec![Inbound::Change(change)]).await?;
        Ok((
            StatusCode::ACCEPTED,
            axum::Json(json!({ "status": "success", "message": "Change event processed" })),
        )
            .into_response())
    })
    .await
}

async fn enqueue_v1(State(state): State<AppState>, body: Result<RawBody, IngestError>) -> Response {
    ingest(&state, "events-v1", async {
        let RawBody(body) = body?;
        let event = parse::parse_event_v1(&body, &lookup(&state), state.engine.now())?;
        let incident_key = event.dedup_key.to_string();
        commit(&state, vec![Inbound::Alert(event)]).await?;
        Ok((
            StatusCode::OK,
            axum::Json(json!({ "status": "success", "message": "Event processed", "incident_key": incident_key })),
        )
            .into_response())
    })
    .await
}

fn processed(events: &[Event]) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({
            "status": "success",
            "message": format!("{} alerts processed", events.len()),
            "dedup_keys": events.iter().map(|event| event.dedup_key.as_str()).collect::<Vec<_>>(),
        })),
    )
        .into_response()
}

async fn alertmanager(
    State(state): State<AppState>,
    Path(key): Path<String>,
    body: Result<RawBody, IngestError>,
) -> Response {
    ingest(&state, "alertmanager", async {
        let service = service_by_key(&state, &key)?.id.clone();
        let RawBody(body) = body?;
        let events = parse::parse_alertmanager(&body, &service, state.engine.now())?;
        let response = processed(&events);
        commit(&state, events.into_iter().map(Inbound::Alert).collect()).await?;
        Ok(response)
    })
    .await
}

async fn grafana(
    State(state): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Result<RawBody, IngestError>,
) -> Response {
    ingest(&state, "grafana", async {
        let service = service_by_key(&state, &key)?;
        let RawBody(body) = body?;
        if let Some(settings) = &service.grafana {
            check_grafana_signature(settings, &headers, &body, state.engine.now())?;
        }
        let events = parse::parse_grafana(&body, &service.id, state.engine.now())?;
        let response = processed(&events);
        commit(&state, events.into_iter().map(Inbound::Alert).collect()).await?;
        Ok(response)
    })
    .await
}

fn check_grafana_signature(
    settings: &tocsin_engine::GrafanaSettings,
    headers: &HeaderMap,
    body: &[u8],
    now: tocsin_core::Timestamp,
) -> Result<(), IngestError> {
    const SIGNATURE: &str = "X-Grafana-Alerting-Signature";
    let signature = headers
        .get(SIGNATURE)
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| {
            IngestError::BadSignature(format!(
                "'{SIGNATURE}' header is missing; set the HMAC secret in Grafana's webhook contact point"
            ))
        })?;
    let timestamp = match &settings.timestamp_header {
        None => None,
        Some(name) => {
            let value = headers
                .get(name.as_str())
                .and_then(|value| value.to_str().ok())
                .ok_or_else(|| IngestError::BadSignature(format!("'{name}' header is missing")))?;
            let seconds: i64 = value.parse().map_err(|_| {
                IngestError::BadSignature(format!("'{name}' must be a Unix timestamp in seconds"))
            })?;
            if (now.as_second() - seconds).abs() > GRAFANA_MAX_SKEW_SECONDS {
                return Err(IngestError::BadSignature(format!(
                    "'{name}' is more than {GRAFANA_MAX_SKEW_SECONDS} s away from the server's clock"
                )));
            }
            Some(value)
        }
    };
    if parse::verify_grafana_signature(&settings.secret, body, signature, timestamp) {
        Ok(())
    } else {
        Err(IngestError::BadSignature(format!(
            "'{SIGNATURE}' does not match the body; check the secret configured for this service"
        )))
    }
}

async fn generic(
    State(state): State<AppState>,
    Path(key): Path<String>,
    body: Result<RawBody, IngestError>,
) -> Response {
    ingest(&state, "generic", async {
        let service = service_by_key(&state, &key)?.id.clone();
        let RawBody(body) = body?;
        let event = parse::parse_generic(&body, &service, state.engine.now())?;
        let dedup_key = event.dedup_key.to_string();
        commit(&state, vec![Inbound::Alert(event)]).await?;
        Ok(accepted(&dedup_key))
    })
    .await
}
