//! API tokens: created with a random secret shown once, stored only as a hash. Usable without an
//! [`Engine`](crate::Engine), so `tocsin token ...` needs nothing but the store.

use sha2::{Digest, Sha256};
use tocsin_core::Timestamp;
use tocsin_store::{ApiToken, Store, StoreError, TokenScope};

/// The prefix of every API token, so leaked tokens are easy to find in logs and repositories.
pub const TOKEN_PREFIX: &str = "tcn_";

/// Creates an API token and returns its secret (shown once, stored only as a hash).
pub async fn create_token(
    store: &dyn Store,
    name: &str,
    scope: TokenScope,
    now: Timestamp,
) -> Result<(String, ApiToken), StoreError> {
    let secret = format!(
        "{TOKEN_PREFIX}{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let token = store
        .create_api_token(name, scope, &hash_token(&secret), now)
        .await?;
    Ok((secret, token))
}

/// The unrevoked token whose secret this is.
pub async fn authenticate(store: &dyn Store, secret: &str) -> Result<Option<ApiToken>, StoreError> {
    if !secret.starts_with(TOKEN_PREFIX) {
        return Ok(None);
    }
    store.api_token_by_hash(&hash_token(secret)).await
}

/// Tokens carry 256 random bits, so a fast hash is enough: there is nothing to brute-force.
fn hash_token(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::hash_token;

    #[test]
    fn the_hash_is_sha256_hex_of_the_whole_secret() {
        let hash = hash_token("tcn_abc");
        assert_eq!(hash.len(), 64);
        assert_ne!(hash, hash_token("tcn_abd"));
        assert_eq!(
            hash_token(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
