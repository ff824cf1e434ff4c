//! The shape of the router: API load shedding does not reach ingestion or health.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::Notify;
use tower::ServiceExt;

use super::*;

#[derive(Clone)]
struct Gate(Arc<Notify>);

async fn blocked(axum::extract::State(gate): axum::extract::State<Gate>) -> &'static str {
    gate.0.notified().await;
    "done"
}

fn app(gate: Gate, limit: usize) -> Router {
    let api = Router::new().route("/api/v1/incidents", get(blocked));
    let ingest = Router::new().route("/v2/enqueue", post(|| async { StatusCode::ACCEPTED }));
    let health = Router::new().route("/healthz", get(|| async { "ok" }));
    assemble(
        api,
        ingest,
        health,
        WebSettings {
            api_concurrency: limit,
        },
    )
    .with_state(gate)
}

async fn call(app: &Router, method: &str, path: &str) -> axum::response::Response {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::empty())
        .unwrap();
    app.clone().oneshot(request).await.unwrap()
}

#[tokio::test]
async fn api_requests_beyond_the_limit_are_shed_at_once_while_ingestion_and_health_answer() {
    let gate = Gate(Arc::new(Notify::new()));
    let app = app(gate.clone(), 2);
    let in_flight: Vec<_> = (0..2)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { call(&app, "GET", "/api/v1/incidents").await.status() })
        })
        .collect();
    // Let both reach the handler and take their slots.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;

    let started = std::time::Instant::now();
    let shed = call(&app, "GET", "/api/v1/incidents").await;
    assert!(started.elapsed() < std::time::Duration::from_millis(500));
    assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(shed.headers()["retry-after"], "1");
    let body = axum::body::to_bytes(shed.into_body(), 4096).await.unwrap();
    let body: api::ErrorBody = serde_json::from_slice(&body).unwrap();
    assert_eq!(body.error, "overloaded");

    assert_eq!(call(&app, "GET", "/healthz").await.status(), StatusCode::OK);
    assert_eq!(
        call(&app, "POST", "/v2/enqueue").await.status(),
        StatusCode::ACCEPTED
    );

    gate.0.notify_waiters();
    for request in in_flight {
        assert_eq!(request.await.unwrap(), StatusCode::OK);
    }
    // The slots are free again.
    let again = tokio::spawn({
        let app = app.clone();
        async move { call(&app, "GET", "/api/v1/incidents").await.status() }
    });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    gate.0.notify_waiters();
    assert_eq!(again.await.unwrap(), StatusCode::OK);
}
