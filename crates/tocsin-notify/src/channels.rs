//! How a notification leaves: one sender per method.

mod smtp;

use std::time::Duration;

use hmac::{Hmac, Mac};
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Mailboxes};
use sha2::Sha256;
use tocsin_config::Smtp;
use tocsin_core::Priority;

use crate::message::Message;

/// How long one attempt may take, whatever the method.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(15);

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Trying again may work (a timeout, a refused connection, a 5xx or 429).
    #[error("{0}")]
    Transient(String),
    /// Trying again will not work (a 4xx, an address the server refuses, a missing setting).
    #[error("{0}")]
    Permanent(String),
}

/// Where one notification goes, with what its method needs.
#[derive(Clone)]
pub enum Destination {
    /// One address, or several separated by commas (an email channel's `to`).
    Email {
        address: String,
    },
    Webhook {
        url: String,
        secret: Option<String>,
    },
    Ntfy {
        url: String,
    },
    /// A Slack-compatible incoming webhook (Slack, Mattermost).
    Slack {
        url: String,
    },
    Console,
}

impl std::fmt::Debug for Destination {
    /// URLs may hold secrets (a Slack hook, an ntfy topic): not shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Email { address } => write!(f, "Email({address})"),
            Destination::Webhook { .. } => f.write_str("Webhook(<redacted>)"),
            Destination::Ntfy { .. } => f.write_str("Ntfy(<redacted>)"),
            Destination::Slack { .. } => f.write_str("Slack(<redacted>)"),
            Destination::Console => f.write_str("Console"),
        }
    }
}

/// Sends messages by every method, reusing one HTTP client and open SMTP connections.
pub struct Senders {
    http: reqwest::Client,
    smtp: Option<smtp::Mailer>,
}

impl std::fmt::Debug for Senders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Senders")
            .field("smtp", &self.smtp.is_some())
            .finish_non_exhaustive()
    }
}

impl Senders {
    pub fn new(smtp: Option<Smtp>) -> Senders {
        let http = reqwest::Client::builder()
            .timeout(SEND_TIMEOUT)
            .user_agent(concat!("tocsin/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Senders {
            http,
            smtp: smtp.map(smtp::Mailer::new),
        }
    }

    /// One attempt to deliver `message` to `destination`; `key` is the idempotency key.
    pub async fn send(
        &self,
        destination: &Destination,
        message: &Message,
        key: &str,
    ) -> Result<(), SendError> {
        match destination {
            Destination::Console => {
                console(message, key);
                Ok(())
            }
            Destination::Webhook { url, secret } => {
                self.webhook(url, secret.as_deref(), message, key).await
            }
            Destination::Ntfy { url } => self.ntfy(url, message, key).await,
            Destination::Slack { url } => self.slack(url, message).await,
            Destination::Email { address } => self.email(address, message, key).await,
        }
    }

    async fn webhook(
        &self,
        url: &str,
        secret: Option<&str>,
        message: &Message,
        key: &str,
    ) -> Result<(), SendError> {
        let body = serde_json::to_vec(&message.json).unwrap_or_default();
        let timestamp = jiff::Timestamp::now().as_second().to_string();
        let mut request = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("tocsin-timestamp", &timestamp)
            .header("idempotency-key", key);
        if let Some(secret) = secret {
            request = request.header("tocsin-signature", signature(secret, &timestamp, &body));
        }
        let response = request.body(body).send().await.map_err(http_error)?;
        status_outcome(response).await
    }

    /// Slack answers `200 ok`; a 4xx names what it refused (`invalid_payload`,
    /// `channel_not_found`) and is not retried; a 429 or 5xx is.
    async fn slack(&self, url: &str, message: &Message) -> Result<(), SendError> {
        let body = serde_json::to_vec(&crate::slack::payload(message)).unwrap_or_default();
        let response = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(http_error)?;
        status_outcome(response).await
    }

    async fn ntfy(&self, url: &str, message: &Message, key: &str) -> Result<(), SendError> {
        let mut request = self
            .http
            .post(url)
            .header("x-title", ascii_header(&message.subject))
            .header("x-priority", ntfy_priority(message.priority))
            .header("x-tags", "rotating_light")
            .header("x-click", &message.links.incident)
            .header("idempotency-key", key);
        if let Some(ack) = &message.links.acknowledge {
            request = request.header(
                "x-actions",
                format!("http, Acknowledge, {ack}, method=POST, clear=true"),
            );
        }
        // ntfy keeps messages up to 4096 bytes.
        let mut body = message.text.clone();
        truncate_to(&mut body, 4096);
        let response = request.body(body).send().await.map_err(http_error)?;
        status_outcome(response).await
    }

    async fn email(&self, address: &str, message: &Message, key: &str) -> Result<(), SendError> {
        let Some(smtp) = &self.smtp else {
            return Err(SendError::Permanent(
                "no [smtp] section in the config: email cannot be sent".to_owned(),
            ));
        };
        let from: Mailbox = smtp.from().parse().map_err(|error| {
            SendError::Permanent(format!("smtp.from {:?}: {error}", smtp.from()))
        })?;
        // One address, or a channel's list of them, comma-separated.
        let to: Mailboxes = address
            .parse()
            .map_err(|error| SendError::Permanent(format!("address {address:?}: {error}")))?;
        let mut builder = lettre::Message::builder().from(from);
        for mailbox in to {
            builder = builder.to(mailbox);
        }
        let email = builder
            .subject(&message.subject)
            // The idempotency key as the Message-ID: a receiver sees a repeated delivery.
            .message_id(Some(format!("<{key}@tocsin>")))
            .header(ContentType::TEXT_PLAIN)
            .body(message.text.clone())
            .map_err(|error| SendError::Permanent(format!("cannot build the email: {error}")))?;
        smtp.send(email.envelope(), &email.formatted()).await
    }
}

/// The console channel: the server's log, with the links, for trying Tocsin out.
fn console(message: &Message, key: &str) {
    tracing::warn!(
        target: "tocsin::page",
        incident = message.incident,
        subject = %message.subject,
        acknowledge = message.links.acknowledge.as_deref().unwrap_or("-"),
        resolve = message.links.resolve.as_deref().unwrap_or("-"),
        link = %message.links.incident,
        idempotency_key = key,
        "page"
    );
}

/// Hex HMAC-SHA256 over `"<timestamp>.<body>"`: what `Tocsin-Signature` carries.
pub fn signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn http_error(error: reqwest::Error) -> SendError {
    // Whatever went wrong on the way (refused, reset, timed out) may be gone next time. The
    // URL is left out: it may hold a secret.
    SendError::Transient(format!("http: {}", error.without_url()))
}

async fn status_outcome(response: reqwest::Response) -> Result<(), SendError> {
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let mut body = response.text().await.unwrap_or_default();
    truncate_to(&mut body, 200);
    let text = format!("http {}: {}", status.as_u16(), body.trim());
    if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
        Err(SendError::Transient(text))
    } else {
        Err(SendError::Permanent(text))
    }
}

fn ntfy_priority(priority: Priority) -> &'static str {
    match priority {
        Priority::P1 => "5",
        Priority::P2 => "4",
        Priority::P3 => "3",
        Priority::P4 => "2",
        Priority::P5 => "1",
    }
}

/// Header values are ASCII: other characters become `?`.
fn ascii_header(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

fn truncate_to(text: &mut String, bytes: usize) {
    if text.len() > bytes {
        let mut end = bytes;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_covers_the_timestamp_and_the_body() {
        let one = signature("secret", "1700000000", b"{}");
        assert_eq!(one.len(), 64);
        assert_ne!(one, signature("secret", "1700000001", b"{}"));
        assert_ne!(one, signature("secret", "1700000000", b"{ }"));
        assert_ne!(one, signature("other", "1700000000", b"{}"));
    }

    #[test]
    fn header_text_and_bodies_are_kept_within_limits() {
        assert_eq!(ascii_header("Disk 99% — db1"), "Disk 99% ? db1");
        let mut text = "é".repeat(3000);
        truncate_to(&mut text, 4096);
        assert!(text.len() <= 4096);
        assert!(text.chars().all(|c| c == 'é'));
    }
}
