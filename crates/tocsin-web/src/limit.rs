//! Load shedding for `/api/v1`: a bounded number of requests in flight, and an immediate 503
//! beyond it rather than a queue that grows while callers wait.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::error::ErrorBody;

/// `/api/v1` requests handled at once by default.
pub const API_CONCURRENCY: usize = 64;

/// How the HTTP layer is sized.
#[derive(Debug, Clone, Copy)]
pub struct WebSettings {
    /// `/api/v1` requests in flight at most; one more is answered 503 with `Retry-After` at
    /// once. Ingestion, health and metrics do not count against it.
    pub api_concurrency: usize,
}

impl Default for WebSettings {
    fn default() -> Self {
        WebSettings {
            api_concurrency: API_CONCURRENCY,
        }
    }
}

/// The slots of one group of routes.
#[derive(Clone)]
pub(crate) struct Permits(Arc<Semaphore>);

impl Permits {
    pub(crate) fn new(limit: usize) -> Self {
        Permits(Arc::new(Semaphore::new(limit.max(1))))
    }
}

/// Runs the request when a slot is free, else answers `503 overloaded` without waiting.
pub(crate) async fn shed(State(permits): State<Permits>, request: Request, next: Next) -> Response {
    match permits.0.try_acquire() {
        Ok(_permit) => next.run(request).await,
        Err(_) => overloaded(),
    }
}

fn overloaded() -> Response {
    tracing::debug!("api request shed: too many in flight");
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(ErrorBody {
            error: "overloaded".to_owned(),
            message: "the server is handling as many API requests as it allows; retry after \
                      the Retry-After delay"
                .to_owned(),
            field: None,
        }),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}
