//! Signed acknowledge and resolve links: usable without signing in, for one incident, one
//! action and one person, until they expire.
//!
//! A link's token is `<incident>.<action>.<user as hex>.<expires, Unix seconds>.<signature>`,
//! the signature a hex HMAC-SHA256 of everything before it under a server key kept in the
//! database (created on first start; rotating it adds a new key and retires the old one, whose
//! links then stop working). Forged, altered, expired or retired-key tokens do not verify.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tocsin_core::{IncidentNumber, Timestamp};

/// The purpose the link keys are stored under.
pub const LINK_KEY_PURPOSE: &str = "links";

/// How long a link works after it was sent.
pub const LINK_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// What a link does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkAction {
    Acknowledge,
    Resolve,
}

impl LinkAction {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkAction::Acknowledge => "ack",
            LinkAction::Resolve => "resolve",
        }
    }

    fn parse(value: &str) -> Option<LinkAction> {
        match value {
            "ack" => Some(LinkAction::Acknowledge),
            "resolve" => Some(LinkAction::Resolve),
            _ => None,
        }
    }
}

/// What a verified link says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkClaims {
    pub incident: IncidentNumber,
    pub action: LinkAction,
    /// The user the link was sent to.
    pub user: String,
    pub expires: Timestamp,
}

/// Why a link does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the link is malformed")]
    Malformed,
    #[error("the link's signature is not valid")]
    BadSignature,
    #[error("the link expired at {0}")]
    Expired(Timestamp),
    #[error("links are not available: the server key is not loaded")]
    NoKey,
}

/// Signs with the newest key, verifies with any key not retired.
#[derive(Clone)]
pub struct LinkSigner {
    /// Newest first; never empty.
    keys: Vec<Vec<u8>>,
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkSigner")
            .field("keys", &format_args!("<{} redacted>", self.keys.len()))
            .finish()
    }
}

type HmacSha256 = Hmac<Sha256>;

impl LinkSigner {
    /// `keys` newest first; `None` when there is none.
    pub fn new(keys: Vec<Vec<u8>>) -> Option<LinkSigner> {
        (!keys.is_empty()).then_some(LinkSigner { keys })
    }

    /// The token of a link for `user` to take `action` on `incident`, working until `expires`.
    pub fn sign(
        &self,
        incident: IncidentNumber,
        action: LinkAction,
        user: &str,
        expires: Timestamp,
    ) -> String {
        let body = format!(
            "{}.{}.{}.{}",
            incident.0,
            action.as_str(),
            hex::encode(user.as_bytes()),
            expires.as_second()
        );
        let signature = hex::encode(mac(&self.keys[0], &body).finalize().into_bytes());
        format!("{body}.{signature}")
    }

    /// The claims of a token, when one of the keys signed it and it has not expired at `now`.
    pub fn verify(&self, token: &str, now: Timestamp) -> Result<LinkClaims, LinkError> {
        let (body, signature) = token.rsplit_once('.').ok_or(LinkError::Malformed)?;
        let signature = hex::decode(signature).map_err(|_| LinkError::Malformed)?;
        let signed = self
            .keys
            .iter()
            .any(|key| mac(key, body).verify_slice(&signature).is_ok());
        if !signed {
            return Err(LinkError::BadSignature);
        }
        let mut parts = body.split('.');
        let (Some(incident), Some(action), Some(user), Some(expires), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(LinkError::Malformed);
        };
        let incident = incident.parse::<i64>().map_err(|_| LinkError::Malformed)?;
        let action = LinkAction::parse(action).ok_or(LinkError::Malformed)?;
        let user = hex::decode(user)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or(LinkError::Malformed)?;
        let expires = expires
            .parse::<i64>()
            .ok()
            .and_then(|seconds| Timestamp::from_second(seconds).ok())
            .ok_or(LinkError::Malformed)?;
        if expires <= now {
            return Err(LinkError::Expired(expires));
        }
        Ok(LinkClaims {
            incident: IncidentNumber(incident),
            action,
            user,
            expires,
        })
    }
}

fn mac(key: &[u8], body: &str) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(b"tocsin-link-v1:");
    mac.update(body.as_bytes());
    mac
}

/// A new random key, as the hex the store keeps.
pub fn new_key_hex() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + second).expect("valid")
    }

    #[test]
    fn a_signed_link_verifies_until_it_expires() {
        let signer = LinkSigner::new(vec![b"key-one".to_vec()]).expect("a key");
        let token = signer.sign(IncidentNumber(12), LinkAction::Acknowledge, "ana", at(100));
        let claims = signer.verify(&token, at(0)).expect("valid");
        assert_eq!(claims.incident, IncidentNumber(12));
        assert_eq!(claims.action, LinkAction::Acknowledge);
        assert_eq!(claims.user, "ana");
        assert_eq!(
            signer.verify(&token, at(100)),
            Err(LinkError::Expired(at(100)))
        );
    }

    #[test]
    fn altered_or_foreign_links_do_not_verify() {
        let signer = LinkSigner::new(vec![b"key-one".to_vec()]).expect("a key");
        let token = signer.sign(IncidentNumber(12), LinkAction::Acknowledge, "ana", at(100));
        let other_incident = token.replacen("12.", "13.", 1);
        assert_eq!(
            signer.verify(&other_incident, at(0)),
            Err(LinkError::BadSignature)
        );
        let other_action = token.replacen(".ack.", ".resolve.", 1);
        assert_eq!(
            signer.verify(&other_action, at(0)),
            Err(LinkError::BadSignature)
        );
        let stranger = LinkSigner::new(vec![b"key-two".to_vec()]).expect("a key");
        assert_eq!(stranger.verify(&token, at(0)), Err(LinkError::BadSignature));
        assert_eq!(signer.verify("nonsense", at(0)), Err(LinkError::Malformed));
        // After a rotation the old key still verifies while it is kept.
        let rotated =
            LinkSigner::new(vec![b"key-two".to_vec(), b"key-one".to_vec()]).expect("keys");
        assert!(rotated.verify(&token, at(0)).is_ok());
    }
}
