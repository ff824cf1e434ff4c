//! Watch the watcher: while the pipeline is healthy (`Engine::pipeline_health`: the store
//! takes writes, due work is not lagging, the outbox drains), Tocsin sends a GET to the
//! `[watchdog]` URL every `every`, so that an external heartbeat monitor (another Tocsin, or
//! any healthchecks-style service) notices when the pings stop. While it is not healthy it
//! sends no ping: it POSTs the reason to `<url>/fail` instead, and logs it.

use std::sync::Arc;
use std::time::Duration;

use tocsin_engine::{Engine, PipelineHealth};
use tokio_util::sync::CancellationToken;

/// How long one ping may take.
pub const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// What one round did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Round {
    /// Healthy; the URL answered this status.
    Pinged(u16),
    /// Not healthy; `<url>/fail` was told why (and answered this status, if it answered).
    Failed {
        health: PipelineHealth,
        status: Option<u16>,
    },
    /// Healthy, but the URL could not be reached (or answered an error status).
    Unreachable(String),
}

/// Pings the `[watchdog]` URL; see the module documentation.
pub struct Watchdog {
    engine: Arc<Engine>,
    url: reqwest::Url,
    fail_url: reqwest::Url,
    every: Duration,
    http: reqwest::Client,
}

impl std::fmt::Debug for Watchdog {
    /// The URL may hold a secret (a healthchecks check's UUID): not shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watchdog")
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

/// `<url>/fail`: a path segment added to the URL, its query kept.
fn fail_url(url: &reqwest::Url) -> reqwest::Url {
    let mut fail = url.clone();
    let path = format!("{}/fail", url.path().trim_end_matches('/'));
    fail.set_path(&path);
    fail
}

impl Watchdog {
    pub fn new(engine: Arc<Engine>, settings: &tocsin_config::Watchdog) -> anyhow::Result<Self> {
        // The config loader checked the URL already.
        let url = reqwest::Url::parse(settings.url.expose())
            .map_err(|error| anyhow::anyhow!("[watchdog] url is not a URL: {error}"))?;
        let http = reqwest::Client::builder()
            .timeout(PING_TIMEOUT)
            .user_agent(concat!("tocsin/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| anyhow::anyhow!("cannot build the watchdog's HTTP client: {error}"))?;
        Ok(Watchdog {
            engine,
            fail_url: fail_url(&url),
            url,
            every: settings.every,
            http,
        })
    }

    /// Checks the pipeline and pings (or reports the failure) once.
    pub async fn round(&self) -> Round {
        let health = self.engine.pipeline_health().await;
        if !health.is_healthy() {
            tracing::error!(problems = %health, "the pipeline is not healthy; the watchdog URL is not pinged");
            let status = match self
                .http
                .post(self.fail_url.clone())
                .header("content-type", "text/plain; charset=utf-8")
                .body(health.to_string())
                .send()
                .await
            {
                Ok(response) => Some(response.status().as_u16()),
                Err(error) => {
                    tracing::warn!(error = %error.without_url(), "cannot report the failure to the watchdog URL");
                    None
                }
            };
            return Round::Failed { health, status };
        }
        match self.http.get(self.url.clone()).send().await {
            Ok(response) if response.status().is_success() => {
                tracing::debug!(
                    status = response.status().as_u16(),
                    "pinged the watchdog URL"
                );
                Round::Pinged(response.status().as_u16())
            }
            Ok(response) => {
                let text = format!("the watchdog URL answered HTTP {}", response.status());
                tracing::warn!("{text}");
                Round::Unreachable(text)
            }
            Err(error) => {
                let text = format!("cannot reach the watchdog URL: {}", error.without_url());
                tracing::warn!("{text}");
                Round::Unreachable(text)
            }
        }
    }

    /// A round every `every` (the first one `every` after the start, so that the due-work
    /// runner has started) until `stop` is cancelled.
    pub async fn run_until(&self, stop: CancellationToken) {
        let mut ticks =
            tokio::time::interval_at(tokio::time::Instant::now() + self.every, self.every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            tokio::select! {
                () = stop.cancelled() => return,
                _ = self.round() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fail_url_adds_a_segment_and_keeps_the_query() {
        let url = |text: &str| reqwest::Url::parse(text).expect("url");
        assert_eq!(
            fail_url(&url("https://hc-ping.example/0b7c")).as_str(),
            "https://hc-ping.example/0b7c/fail"
        );
        assert_eq!(
            fail_url(&url("https://hc-ping.example/0b7c/?create=1")).as_str(),
            "https://hc-ping.example/0b7c/fail?create=1"
        );
        assert_eq!(
            fail_url(&url("http://127.0.0.1:9")).as_str(),
            "http://127.0.0.1:9/fail"
        );
    }
}
