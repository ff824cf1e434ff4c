//! http(s) checks with reqwest over rustls. One client per combination of redirect policy and
//! TLS trust, shared by every monitor that uses it, so connections are reused between checks.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tocsin_config::{ExpectJson, HttpCheck, HttpMethod, JsonScalar, TlsTrust};

use super::tls::{certificate_not_after, client_config};
use super::{error_chain, CheckResult, CheckStatus};

/// The most of a response body read to check it; the rest is not read.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Redirects followed at most, when a monitor follows them.
pub const MAX_REDIRECTS: usize = 10;
/// How long an idle connection is kept for the next check of the same host.
const POOL_IDLE: Duration = Duration::from_secs(90);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    follow_redirects: bool,
    trust: TlsTrust,
}

/// The shared HTTP clients.
#[derive(Debug, Default)]
pub(crate) struct HttpClients {
    clients: Mutex<HashMap<ClientKey, reqwest::Client>>,
}

impl HttpClients {
    fn client(&self, follow_redirects: bool, trust: &TlsTrust) -> Result<reqwest::Client, String> {
        let key = ClientKey {
            follow_redirects,
            trust: trust.clone(),
        };
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let tls = client_config(trust)?;
        let redirects = if follow_redirects {
            reqwest::redirect::Policy::limited(MAX_REDIRECTS)
        } else {
            reqwest::redirect::Policy::none()
        };
        let client = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .tls_info(true)
            .redirect(redirects)
            .pool_idle_timeout(POOL_IDLE)
            .user_agent(concat!("tocsin-monitor/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| format!("cannot build the HTTP client: {}", error_chain(&error)))?;
        clients.insert(key, client.clone());
        Ok(client)
    }

    /// Forgets clients no monitor uses any more (after a reload).
    pub(crate) fn retain(&self, in_use: impl Fn(bool, &TlsTrust) -> bool) {
        self.clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|key, _| in_use(key.follow_redirects, &key.trust));
    }

    pub(super) async fn check(&self, check: &HttpCheck, started: Instant) -> CheckResult {
        let client = match self.client(check.follow_redirects, &check.tls) {
            Ok(client) => client,
            Err(error) => return CheckResult::down(started.elapsed(), error),
        };
        let method = match check.method {
            HttpMethod::Get => reqwest::Method::GET,
            HttpMethod::Head => reqwest::Method::HEAD,
            HttpMethod::Post => reqwest::Method::POST,
            HttpMethod::Put => reqwest::Method::PUT,
            HttpMethod::Patch => reqwest::Method::PATCH,
            HttpMethod::Delete => reqwest::Method::DELETE,
            HttpMethod::Options => reqwest::Method::OPTIONS,
        };
        let mut request = client
            .request(method, &check.url)
            .timeout(check.probe.timeout);
        for (name, value) in &check.headers {
            request = request.header(name.as_str(), value.expose());
        }
        if let Some(body) = &check.body {
            request = request.body(body.clone());
        }
        let mut response = match request.send().await {
            Ok(response) => response,
            // Without the URL: it may carry credentials or tokens.
            Err(error) => {
                return CheckResult::down(started.elapsed(), error_chain(&error.without_url()))
            }
        };
        let status = response.status().as_u16();
        let certificate_expires_at = response
            .extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|info| info.peer_certificate())
            .and_then(certificate_not_after);
        let needs_body = check.expect_body.is_some()
            || check.expect_body_absent.is_some()
            || check.expect_json.is_some();
        let mut body = Vec::new();
        if needs_body {
            loop {
                match response.chunk().await {
                    Ok(Some(chunk)) => {
                        let room = MAX_BODY_BYTES - body.len();
                        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                        if body.len() >= MAX_BODY_BYTES {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(error) => {
                        let mut result = CheckResult::down(
                            started.elapsed(),
                            format!(
                                "HTTP {status}, then the body failed: {}",
                                error_chain(&error.without_url())
                            ),
                        );
                        result.http_status = Some(status);
                        result.certificate_expires_at = certificate_expires_at;
                        return result;
                    }
                }
            }
        }
        let latency = started.elapsed();
        let error = judge_response(check, status, &body);
        CheckResult {
            status: if error.is_some() {
                CheckStatus::Down
            } else {
                CheckStatus::Up
            },
            latency,
            error,
            http_status: Some(status),
            certificate_expires_at,
        }
    }
}

/// Why the response fails the check's expectations, if it does.
fn judge_response(check: &HttpCheck, status: u16, body: &[u8]) -> Option<String> {
    if !check
        .expect_status
        .iter()
        .any(|pattern| pattern.matches(status))
    {
        let expected: Vec<String> = check
            .expect_status
            .iter()
            .map(|pattern| match pattern {
                tocsin_config::StatusPattern::Exact(code) => code.to_string(),
                tocsin_config::StatusPattern::Class(class) => format!("{class}xx"),
            })
            .collect();
        return Some(format!("HTTP {status}, expected {}", expected.join(" or ")));
    }
    let text = String::from_utf8_lossy(body);
    if let Some(expected) = &check.expect_body {
        if !text.contains(expected.as_str()) {
            return Some(format!(
                "HTTP {status}, but the body does not contain {expected:?}"
            ));
        }
    }
    if let Some(unwanted) = &check.expect_body_absent {
        if text.contains(unwanted.as_str()) {
            return Some(format!("HTTP {status}, but the body contains {unwanted:?}"));
        }
    }
    if let Some(expect) = &check.expect_json {
        if let Err(reason) = judge_json(expect, body) {
            return Some(format!("HTTP {status}, but {reason}"));
        }
    }
    None
}

/// Whether the JSON body holds the expected value at the path.
pub(crate) fn judge_json(expect: &ExpectJson, body: &[u8]) -> Result<(), String> {
    let document: serde_json::Value =
        serde_json::from_slice(body).map_err(|error| format!("the body is not JSON ({error})"))?;
    let mut at = &document;
    for segment in expect.path.split('.') {
        let next = match at {
            serde_json::Value::Object(map) => map.get(segment),
            serde_json::Value::Array(items) => segment
                .parse::<usize>()
                .ok()
                .and_then(|index| items.get(index)),
            _ => None,
        };
        at = next.ok_or_else(|| format!("the JSON body has nothing at `{}`", expect.path))?;
    }
    let matches = match (&expect.equals, at) {
        (JsonScalar::String(expected), serde_json::Value::String(found)) => expected == found,
        (JsonScalar::Boolean(expected), serde_json::Value::Bool(found)) => expected == found,
        (JsonScalar::Integer(expected), serde_json::Value::Number(found)) => {
            found.as_i64() == Some(*expected)
        }
        _ => false,
    };
    if matches {
        Ok(())
    } else {
        let expected = match &expect.equals {
            JsonScalar::String(text) => format!("{text:?}"),
            JsonScalar::Integer(number) => number.to_string(),
            JsonScalar::Boolean(flag) => flag.to_string(),
        };
        let mut found = at.to_string();
        if found.len() > 200 {
            let cut = (0..=200)
                .rev()
                .find(|i| found.is_char_boundary(*i))
                .unwrap_or(0);
            found.truncate(cut);
            found.push('…');
        }
        Err(format!("`{}` is {found}, expected {expected}", expect.path))
    }
}
