//! healthchecks.io-compatible heartbeat pings (interop.md §4): `HEAD`, `GET` or `POST`
//!
//! ```text
//! /ping/<key>            success
//! /ping/<key>/start      a run started
//! /ping/<key>/fail       failure
//! /ping/<key>/log        log only, status unchanged
//! /ping/<key>/<0-255>    exit status: 0 success, else failure
//! ```
//!
//! `?rid=<uuid>` ties a start to the ping that ends its run. The first `Ping-Body-Limit` bytes
//! of the body are kept as the ping's log. A ping goes through the ingest queue like an event:
//! `200 OK` means that it, the monitor's new state and deadline, and any alert it resolves or
//! triggers are committed. Answers and errors are plain text.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{header, Extensions, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tocsin_core::heartbeat::{HeartbeatInput, HeartbeatSignal, Ping, PingKind, PING_BODY_LIMIT};
use tocsin_engine::SubmitError;
use tocsin_store::Inbound;

use crate::parse::MAX_BODY_BYTES;
use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    // `get` answers `HEAD` too (without the body).
    Router::new()
        .route("/ping/{key}", get(ping_success).post(ping_success))
        .route("/ping/{key}/{action}", get(ping_action).post(ping_action))
}

/// A refused ping, answered in plain text as healthchecks.io does.
#[derive(Debug)]
enum PingError {
    NotFound,
    InvalidUrl,
    InvalidUuid,
    TooLarge,
    Throttled,
    Unavailable,
}

impl PingError {
    fn reason(&self) -> &'static str {
        match self {
            PingError::NotFound => "unknown_key",
            PingError::InvalidUrl | PingError::InvalidUuid => "invalid",
            PingError::TooLarge => "too_large",
            PingError::Throttled => "queue_full",
            PingError::Unavailable => "unavailable",
        }
    }
}

impl From<SubmitError> for PingError {
    fn from(error: SubmitError) -> Self {
        match error {
            SubmitError::QueueFull => PingError::Throttled,
            SubmitError::TooLarge { .. } | SubmitError::ShuttingDown | SubmitError::Store(_) => {
                PingError::Unavailable
            }
        }
    }
}

impl IntoResponse for PingError {
    fn into_response(self) -> Response {
        let (status, text, retry_after) = match self {
            PingError::NotFound => (StatusCode::NOT_FOUND, "not found", None),
            PingError::InvalidUrl => (StatusCode::BAD_REQUEST, "invalid url format", None),
            PingError::InvalidUuid => (StatusCode::BAD_REQUEST, "invalid uuid format", None),
            PingError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body is larger than 512 KB",
                None,
            ),
            PingError::Throttled => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate limited; retry after the Retry-After delay",
                Some("1"),
            ),
            PingError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "the ping was not stored; retry",
                Some("5"),
            ),
        };
        let mut response = (status, text).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        if let Some(seconds) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static(seconds));
        }
        response
    }
}

async fn ping_success(
    State(state): State<AppState>,
    method: Method,
    Path(key): Path<String>,
    RawQuery(query): RawQuery,
    extensions: Extensions,
    body: axum::body::Body,
) -> Response {
    handle(&state, method, &key, None, query, &extensions, body).await
}

async fn ping_action(
    State(state): State<AppState>,
    method: Method,
    Path((key, action)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    extensions: Extensions,
    body: axum::body::Body,
) -> Response {
    handle(
        &state,
        method,
        &key,
        Some(&action),
        query,
        &extensions,
        body,
    )
    .await
}

async fn handle(
    state: &AppState,
    method: Method,
    key: &str,
    action: Option<&str>,
    query: Option<String>,
    extensions: &Extensions,
    body: axum::body::Body,
) -> Response {
    match accept(state, method, key, action, query, extensions, body).await {
        Ok(()) => ok(),
        Err(error) => {
            state
                .engine
                .metrics()
                .count_rejected("heartbeat", error.reason());
            error.into_response()
        }
    }
}

async fn accept(
    state: &AppState,
    method: Method,
    key: &str,
    action: Option<&str>,
    query: Option<String>,
    extensions: &Extensions,
    body: axum::body::Body,
) -> Result<(), PingError> {
    let (kind, exit_code) = match action {
        None => (PingKind::Success, None),
        Some("start") => (PingKind::Start, None),
        Some("fail") => (PingKind::Fail, None),
        Some("log") => (PingKind::Log, None),
        Some(code) if !code.is_empty() && code.bytes().all(|byte| byte.is_ascii_digit()) => {
            let code: u8 = code.parse().map_err(|_| PingError::InvalidUrl)?;
            (PingKind::of_exit_code(code), Some(code))
        }
        Some(_) => return Err(PingError::NotFound),
    };
    let rid = run_id(query.as_deref())?;
    let monitor = state
        .engine
        .catalog()
        .heartbeat_for_key(key)
        .ok_or(PingError::NotFound)?;
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| PingError::TooLarge)?;
    if monitor.post_only && method != Method::POST {
        // Link previews and crawlers fetch URLs; with POST-only, only the job's POST counts.
        tracing::debug!(monitor = %monitor.id, %method, "ignored a ping: the monitor counts POST only");
        return Ok(());
    }
    let remote = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip().to_string());
    let input = HeartbeatInput {
        monitor: monitor.id.clone(),
        service: monitor.service.clone(),
        expectation: monitor.expectation.clone(),
        signal: HeartbeatSignal::Ping(Ping {
            kind,
            rid,
            exit_code,
            body: log_of(&body),
            remote,
            method: method.as_str().to_owned(),
        }),
        now: state.engine.now(),
    };
    state
        .engine
        .submit(vec![Inbound::Heartbeat(input)])
        .await
        .map_err(PingError::from)
}

/// `rid` of the query string, as a lowercase hyphenated UUID.
fn run_id(query: Option<&str>) -> Result<Option<String>, PingError> {
    let Some(query) = query else {
        return Ok(None);
    };
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name == "rid" {
            let uuid = uuid::Uuid::parse_str(value).map_err(|_| PingError::InvalidUuid)?;
            return Ok(Some(uuid.hyphenated().to_string()));
        }
    }
    Ok(None)
}

/// The first [`PING_BODY_LIMIT`] bytes of the body as text (invalid UTF-8 and NUL characters
/// become U+FFFD, which every store keeps).
fn log_of(body: &Bytes) -> String {
    let kept = &body[..body.len().min(PING_BODY_LIMIT)];
    String::from_utf8_lossy(kept).replace('\0', "\u{FFFD}")
}

fn ok() -> Response {
    let mut response = (StatusCode::OK, "OK").into_response();
    let headers = response.headers_mut();
    headers.insert(
        "Ping-Body-Limit",
        HeaderValue::from_str(&PING_BODY_LIMIT.to_string()).expect("digits are a header value"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_uuids() {
        assert_eq!(run_id(None).unwrap(), None);
        assert_eq!(run_id(Some("x=1")).unwrap(), None);
        assert_eq!(
            run_id(Some("x=1&rid=5F1C2A3E-8D0F-4D6E-9B2A-0C7D1E2F3A4B")).unwrap(),
            Some("5f1c2a3e-8d0f-4d6e-9b2a-0c7d1e2f3a4b".to_owned())
        );
        assert!(matches!(
            run_id(Some("rid=not-a-uuid")),
            Err(PingError::InvalidUuid)
        ));
    }

    #[test]
    fn logs_keep_the_first_bytes_as_text() {
        let body = Bytes::from(vec![b'a'; PING_BODY_LIMIT + 10]);
        assert_eq!(log_of(&body).len(), PING_BODY_LIMIT);
        assert_eq!(
            log_of(&Bytes::from_static(b"a\0b\xff")),
            "a\u{FFFD}b\u{FFFD}"
        );
    }
}
