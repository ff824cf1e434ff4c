//! `POST /api/v1/config/reload`: re-read the config file the server was started with.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;
use tocsin_engine::{ConfigReload, ReloadError};
use utoipa::ToSchema;

use crate::auth::WriteAccess;
use crate::error::ErrorBody;

/// The reloader the binary installs (`Router::layer(Extension(...))`); absent when the server
/// was not started from a config file.
pub type Reloader = Arc<dyn ConfigReload>;

/// The config file now in force.
#[derive(Serialize, ToSchema)]
pub(crate) struct Reloaded {
    /// Always `reloaded`.
    status: &'static str,
    /// SHA-256 (hex) of the file now in force, as in the `tocsin_config_info` metric.
    sha256: String,
    /// Services now known (their integration keys work at once; removed keys get 404).
    services: usize,
    /// Whether the file differs from the one in force before.
    changed: bool,
    /// Settings the file changes that take effect only after a restart (e.g. `server.listen`,
    /// `ingest.queue_capacity`); until then the server keeps the old values.
    needs_restart: Vec<&'static str>,
}

/// A refused reload: the running config stays in force.
#[derive(Serialize, ToSchema)]
pub(crate) struct ReloadRefused {
    /// `invalid_config` or `no_config_file`.
    error: &'static str,
    message: String,
    /// Every problem of the file with its line and column, as `tocsin config check` prints it.
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<String>,
}

/// Re-reads the config file the server was started with. A valid file swaps in at once (new
/// integration keys work, removed ones get 404); an invalid one is refused with every error
/// and its line and column, and the running config stays. Also done on `SIGHUP`.
#[utoipa::path(post, path = "/api/v1/config/reload", tag = "config",
    security(("api_token" = [])),
    responses(
        (status = 200, description = "The file was loaded and is in force", body = Reloaded),
        (status = 401, description = "No valid API token", body = ErrorBody),
        (status = 403, description = "The token cannot write", body = ErrorBody),
        (status = 409, description = "The server was not started from a config file", body = ReloadRefused),
        (status = 422, description = "The file is invalid; the running config stays", body = ReloadRefused),
    ))]
pub(crate) async fn reload_config(
    access: WriteAccess,
    reloader: Option<Extension<Reloader>>,
) -> Response {
    let Some(Extension(reloader)) = reloader else {
        return refused(ReloadError::NoFile);
    };
    let actor = access.actor();
    let outcome = tokio::task::spawn_blocking(move || reloader.reload()).await;
    match outcome {
        Ok(Ok(report)) => {
            tracing::info!(%actor, sha256 = %report.sha256, "config reloaded through the API");
            (
                StatusCode::OK,
                Json(Reloaded {
                    status: "reloaded",
                    sha256: report.sha256,
                    services: report.services,
                    changed: report.changed,
                    needs_restart: report.needs_restart,
                }),
            )
                .into_response()
        }
        Ok(Err(error)) => refused(error),
        Err(error) => {
            tracing::error!(error = %error, "config reload panicked");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(ReloadRefused {
                    error: "internal",
                    message: "internal error; it has been logged".to_owned(),
                    report: None,
                }),
            )
                .into_response()
        }
    }
}

fn refused(error: ReloadError) -> Response {
    let message = error.to_string();
    let (status, code, report) = match error {
        ReloadError::Invalid { report, .. } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_config",
            Some(report),
        ),
        ReloadError::NoFile => (StatusCode::CONFLICT, "no_config_file", None),
    };
    (
        status,
        Json(ReloadRefused {
            error: code,
            message,
            report,
        }),
    )
        .into_response()
}
