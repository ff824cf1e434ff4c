//! Signed acknowledge and resolve links (`/links/<token>`), usable without signing in.
//!
//! A `GET` shows a page with one button and changes nothing: mail scanners and link previews
//! open every link, and must not acknowledge anything. The button `POST`s to the same URL,
//! which acts and records the user the link was sent to on the timeline (`link:<user>`).
//! Forged, altered or expired links, and links whose key was rotated away, are answered with
//! a 4xx page and change nothing.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tocsin_engine::links::{LinkAction, LinkClaims, LinkError};
use tocsin_engine::{EngineError, LinkFollowError};
use tocsin_store::StoreError;

use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/links/{token}", get(confirm).post(act))
}

/// Shows what the link would do, with one button; changes nothing.
async fn confirm(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let claims = match verify(&state, &token) {
        Ok(claims) => claims,
        Err(error) => return link_error(&error),
    };
    let title = match state.engine.incident(claims.incident).await {
        Ok(incident) => incident.title,
        Err(error) => return engine_error(&error),
    };
    let verb = verb(claims.action);
    let body = format!(
        "<h1>{verb} incident #{number}?</h1>\
         <p>{title}</p>\
         <form method=\"post\"><button type=\"submit\">{verb} as {user}</button></form>",
        number = claims.incident.0,
        title = escape(&title),
        user = escape(&claims.user),
    );
    page(StatusCode::OK, &format!("{verb} incident"), &body)
}

/// Acts on the link.
async fn act(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    match state.engine.follow_link(&token).await {
        Ok(outcome) => {
            let body = format!(
                "<h1>Incident #{number} is {state}</h1><p>{title}</p>",
                number = outcome.incident.number.0,
                state = outcome.incident.state,
                title = escape(&outcome.incident.title),
            );
            page(StatusCode::OK, "Done", &body)
        }
        Err(LinkFollowError::Link(error)) => link_error(&error),
        Err(LinkFollowError::Engine(error)) => engine_error(&error),
    }
}

fn verify(state: &AppState, token: &str) -> Result<LinkClaims, LinkError> {
    let signer = state.engine.links().ok_or(LinkError::NoKey)?;
    signer.verify(token, state.engine.now())
}

fn verb(action: LinkAction) -> &'static str {
    match action {
        LinkAction::Acknowledge => "Acknowledge",
        LinkAction::Resolve => "Resolve",
    }
}

fn link_error(error: &LinkError) -> Response {
    let status = match error {
        LinkError::Malformed => StatusCode::BAD_REQUEST,
        LinkError::BadSignature => StatusCode::FORBIDDEN,
        LinkError::Expired(_) => StatusCode::GONE,
        LinkError::NoKey => StatusCode::SERVICE_UNAVAILABLE,
    };
    let body = format!(
        "<h1>This link does not work</h1><p>{}. Use the API or the CLI instead.</p>",
        escape(&capitalize(&error.to_string()))
    );
    page(status, "Link not valid", &body)
}

fn engine_error(error: &EngineError) -> Response {
    let (status, text) = match error.store_error() {
        Some(StoreError::NotFound { .. }) => (StatusCode::NOT_FOUND, error.to_string()),
        Some(StoreError::Conflict(message)) => (StatusCode::CONFLICT, message.clone()),
        _ => {
            tracing::error!(error = %tocsin_engine::error_chain(error), "signed link failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the server could not do it; try again".to_owned(),
            )
        }
    };
    page(
        status,
        "Not done",
        &format!("<h1>Not done</h1><p>{}</p>", escape(&text)),
    )
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{} · Tocsin</title></head>\
         <body style=\"font-family: sans-serif; max-width: 40em; margin: 2em auto\">{body}</body></html>",
        escape(title)
    );
    (
        status,
        [
            ("cache-control", "no-store"),
            ("referrer-policy", "no-referrer"),
        ],
        Html(html),
    )
        .into_response()
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Text as HTML: every character that could start markup is escaped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            escape("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
    }
}
