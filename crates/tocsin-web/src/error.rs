use std::any::Any;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tocsin_engine::EngineError;
use tocsin_store::StoreError;

pub(crate) use tocsin_engine::error_chain;

/// An error of the `/api/v1` API: a status and a JSON body telling the client what it did wrong
/// (naming the field when there is one). Internal causes are logged, never sent.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
}

/// The body of every `/api/v1` error answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A stable machine-readable code: `invalid_request`, `unauthorized`, `forbidden`,
    /// `not_found`, `conflict`, `unavailable`, `overloaded`, `internal`.
    pub error: String,
    /// What went wrong and how to fix it.
    pub message: String,
    /// The request field at fault, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_request",
            message: message.into(),
            field: Some(field.into()),
        }
    }

    /// The same error, about another field (a value parsed by a shared function but given
    /// under another name).
    pub(crate) fn for_field(mut self, field: impl Into<String>) -> Self {
        if self.field.is_some() {
            self.field = Some(field.into());
        }
        self
    }

    /// The same error, naming the request field at fault (a 404 for an id in the path).
    pub(crate) fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: message.into(),
            field: None,
        }
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::FORBIDDEN,
            code: "forbidden",
            message: message.into(),
            field: None,
        }
    }

    /// 503 `unavailable`: the server cannot answer yet; the client may retry.
    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "unavailable",
            message: message.into(),
            field: None,
        }
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: message.into(),
            field: None,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound { what } => ApiError::not_found(format!("{what} not found")),
            StoreError::Invalid(message) => ApiError {
                status: StatusCode::BAD_REQUEST,
                code: "invalid_request",
                message,
                field: None,
            },
            StoreError::Conflict(message) => ApiError {
                status: StatusCode::CONFLICT,
                code: "conflict",
                message,
                field: None,
            },
            other => {
                // The one place a store failure behind an API answer is logged, with its cause.
                tracing::error!(error = %error_chain(&other), "store call failed");
                ApiError {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    code: "unavailable",
                    message: "the store is unavailable; retry shortly".to_owned(),
                    field: None,
                }
            }
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        match error.store_error() {
            Some(StoreError::NotFound { .. } | StoreError::Conflict(_)) => {
                let EngineError::Store { source, .. } = error;
                ApiError::from(source)
            }
            _ => {
                tracing::error!(error = %error_chain(&error), "engine call failed");
                ApiError {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    code: "unavailable",
                    message: "the store is unavailable; retry shortly".to_owned(),
                    field: None,
                }
            }
        }
    }
}

/// How loudly an answer with this status is logged. A client error (4xx) is the client's to
/// fix and anyone with a token can cause as many as they like, so it never reaches the error
/// log; a server error (5xx) is the operator's.
pub(crate) fn log_level(status: StatusCode) -> tracing::Level {
    if status.is_server_error() {
        tracing::Level::ERROR
    } else {
        tracing::Level::DEBUG
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if log_level(self.status) == tracing::Level::DEBUG {
            tracing::debug!(status = self.status.as_u16(), code = self.code, message = %self.message, "request refused");
        }
        let mut response = (
            self.status,
            axum::Json(ErrorBody {
                error: self.code.to_owned(),
                message: self.message,
                field: self.field,
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        }
        response
    }
}

pub(crate) async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route for {}", uri.path()))
}

pub(crate) fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = detail, "request handler panicked");
    ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        code: "internal",
        message: "internal error; it has been logged".to_owned(),
        field: None,
    }
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_are_logged_below_error_and_server_errors_at_error() {
        for status in [400, 401, 403, 404, 405, 409, 413, 429] {
            let status = StatusCode::from_u16(status).unwrap();
            assert!(log_level(status) > tracing::Level::INFO, "{status}");
        }
        for status in [500, 503] {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(log_level(status), tracing::Level::ERROR, "{status}");
        }
    }
}
