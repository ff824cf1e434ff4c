//! Tocsin's HTTP layer: ingestion endpoints, the `/api/v1` REST API, the public status page,
//! health and metrics.
//!
//! Only this crate knows wire formats. Handlers are three steps: extract (and validate into
//! domain types), call one engine function, render.

pub mod api;
mod auth;
mod error;
mod health;
pub mod heartbeats;
mod ingest;
mod limit;
mod links;
pub mod monitors;
pub mod notices;
pub mod oncall;
pub mod parse;
mod ping;
mod reload;
pub mod status;
pub mod status_admin;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tocsin_engine::Engine;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

pub use api::openapi_document;
pub use ingest::{EventAccepted, IngestErrorBody};
pub use limit::{WebSettings, API_CONCURRENCY};
pub use reload::Reloader;
pub use status::{PublicStatus, StatusSettings};

/// Shared by every handler.
#[derive(Clone, Debug)]
pub struct AppState {
    pub engine: Arc<Engine>,
    /// The status page's snapshot, kept current by the server.
    pub status: Arc<PublicStatus>,
}

/// How long an API or health request may take before Tocsin gives up on it. Ingestion
/// requests have no such bound: they wait for the real outcome of their commit (see
/// `ingest::commit`), and the bounded ingest queue keeps them from piling up.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The whole HTTP application, with the default [`WebSettings`] and no status page.
pub fn router(engine: Arc<Engine>) -> Router {
    router_with(
        engine,
        WebSettings::default(),
        Arc::new(PublicStatus::new()),
    )
}

/// The whole HTTP application; the status page serves what `status` holds.
pub fn router_with(
    engine: Arc<Engine>,
    settings: WebSettings,
    status: Arc<PublicStatus>,
) -> Router {
    let state = AppState { engine, status };
    let (api_routes, _) = api::routes().split_for_parts();
    // Signed links share the API's limits (concurrency, timeout).
    let api_routes = api_routes.merge(links::routes());
    assemble(
        api_routes,
        ingest::routes().merge(ping::routes()),
        health::routes().merge(status::routes()),
        settings,
    )
    .with_state(state)
}

/// Puts the three groups of routes together. Each has its own path to the handlers: `/api/v1`
/// reads and commands are limited to `settings.api_concurrency` at once (beyond it, an
/// immediate 503), so that no amount of API traffic can starve ingestion, health checks or the
/// status page (which is served with health, from memory).
fn assemble<S: Clone + Send + Sync + 'static>(
    api_routes: Router<S>,
    ingest_routes: Router<S>,
    health_routes: Router<S>,
    settings: WebSettings,
) -> Router<S> {
    let timeout = || {
        tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        )
    };
    Router::new()
        .merge(ingest_routes)
        .merge(
            api_routes
                .layer(timeout())
                .layer(axum::middleware::from_fn_with_state(
                    limit::Permits::new(settings.api_concurrency),
                    limit::shed,
                )),
        )
        .merge(health_routes.layer(timeout()))
        .fallback(error::not_found)
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(TraceLayer::new_for_http())
}

#[cfg(test)]
mod tests;
