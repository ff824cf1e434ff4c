use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde_json::json;

use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// Liveness: the process answers. Never touches the database, so a slow or saturated store
/// does not get a healthy process killed.
async fn healthz() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-store")], "ok\n")
}

/// Readiness: the config is loaded (it is, or the server would not be running) and the store
/// answers within two seconds.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let store = state.engine.backend();
    match tokio::time::timeout(Duration::from_secs(2), state.engine.ready()).await {
        Ok(Ok(())) => (
            StatusCode::OK,
            axum::Json(json!({ "status": "ready", "store": store, "config": "loaded" })),
        ),
        Ok(Err(error)) => {
            tracing::warn!(error = %crate::error::error_chain(&error), "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(
                    json!({ "status": "not ready", "store": store, "reason": "store unreachable" }),
                ),
            )
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(
                json!({ "status": "not ready", "store": store, "reason": "store did not answer within 2 s" }),
            ),
        ),
    }
}

/// Prometheus metrics (OpenMetrics text). Unauthenticated, so it answers from memory only and
/// never reaches the store: the gauges of stored state are kept by the ingest writer and the
/// incident commands (see `tocsin_engine::Metrics`).
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let engine = &state.engine;
    let metrics = engine.metrics();
    metrics
        .queue_depth
        .set(engine.ingestor().queue_depth() as i64);
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &metrics.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(error) => {
            tracing::error!(error = %error, "encoding metrics failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "encoding metrics failed\n".to_owned(),
            )
        }
    }
}
