//! Tocsin's HTTP layer: ingestion endpoints, the `/api/v1` REST API, health and metrics.
//!
//! Only this crate knows wire formats. Handlers are three steps: extract (and validate into
//! domain types), call one engine function, render.

pub mod api;
mod auth;
mod error;
mod health;
mod ingest;
pub mod parse;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tocsin_engine::Engine;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

pub use api::openapi_document;
pub use ingest::{EventAccepted, IngestErrorBody};

/// Shared by every handler.
#[derive(Clone, Debug)]
pub struct AppState {
    pub engine: Arc<Engine>,
}

/// How long a request may take before Tocsin gives up on it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The whole HTTP application.
pub fn router(engine: Arc<Engine>) -> Router {
    let state = AppState { engine };
    let (api_routes, _) = api::routes().split_for_parts();
    Router::new()
        .merge(ingest::routes())
        .merge(api_routes)
        .merge(health::routes())
        .fallback(error::not_found)
        .with_state(state)
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(TraceLayer::new_for_http())
}
