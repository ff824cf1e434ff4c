//! API tokens: `Authorization: Bearer tcn_...`. Reads need the `read` scope, writes `write`.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use tocsin_core::Actor;
use tocsin_store::{ApiToken, TokenScope};

use crate::error::ApiError;
use crate::AppState;

/// A caller allowed to read.
pub(crate) struct ReadAccess(#[allow(dead_code)] pub ApiToken);

/// A caller allowed to change things.
pub(crate) struct WriteAccess(pub ApiToken);

impl WriteAccess {
    pub(crate) fn actor(&self) -> Actor {
        Actor::token(&self.0.name)
    }
}

async fn authorize(
    parts: &Parts,
    state: &AppState,
    needed: TokenScope,
) -> Result<ApiToken, ApiError> {
    let header = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::unauthorized(
                "missing `Authorization: Bearer <token>` header; create a token with `tocsin token create`",
            )
        })?;
    let secret = header
        .to_str()
        .ok()
        .and_then(bearer_secret)
        .ok_or_else(|| {
            ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
        })?;
    let token = state
        .engine
        .authenticate(secret)
        .await?
        .ok_or_else(|| ApiError::unauthorized("unknown or revoked API token"))?;
    if !token.scope.allows(needed) {
        return Err(ApiError::forbidden(format!(
            "token `{}` has scope `{}`; this needs `{}` (create one with `tocsin token create --scope {}`)",
            token.name, token.scope, needed, needed
        )));
    }
    Ok(token)
}

/// The token of an `Authorization` value `Bearer <token>`. The scheme is case-insensitive
/// (RFC 9110, section 11.1): `bearer x` and `BEARER x` are as valid as `Bearer x`.
fn bearer_secret(value: &str) -> Option<&str> {
    let (scheme, secret) = value.trim_start().split_once(' ')?;
    let secret = secret.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !secret.is_empty()).then_some(secret)
}

impl FromRequestParts<AppState> for ReadAccess {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        authorize(parts, state, TokenScope::Read)
            .await
            .map(ReadAccess)
    }
}

impl FromRequestParts<AppState> for WriteAccess {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        authorize(parts, state, TokenScope::Write)
            .await
            .map(WriteAccess)
    }
}

#[cfg(test)]
mod tests {
    use super::bearer_secret;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in [
            "Bearer tcn_x",
            "bearer tcn_x",
            "BEARER tcn_x",
            "bEaReR  tcn_x ",
        ] {
            assert_eq!(bearer_secret(value), Some("tcn_x"), "{value:?}");
        }
        for value in ["Basic tcn_x", "Bearer", "Bearer ", "Bearertcn_x", "tcn_x"] {
            assert_eq!(bearer_secret(value), None, "{value:?}");
        }
    }
}
