//! `spawn_app()`: a running Tocsin on a port-0 listener with a fresh database, and typed helpers.

use std::path::Path;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tocsin_core::ServiceId;
use tocsin_engine::Engine;
use tocsin_store::{IncidentFilter, IncidentRow, PageRequest, TokenScope};
use tokio_util::sync::CancellationToken;

/// Integration keys of the test config's services.
pub const API_KEY: &str = "0123456789abcdef0123456789abcdef";
pub const DB_KEY: &str = "fedcba9876543210fedcba9876543210";
pub const MANUAL_KEY: &str = "manualmanualmanualmanualmanual12";
pub const GRAFANA_KEY: &str = "grafanagrafanagrafanagrafana1234";
pub const GRAFANA_SECRET: &str = "grafana-shared-secret";

pub fn test_config(extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"

{extra}

[[services]]
id = "checkout-api"
name = "Checkout API"
integration_keys = ["{API_KEY}"]

[[services]]
id = "checkout-db"
name = "Checkout DB"
integration_keys = ["{DB_KEY}"]

[[services]]
id = "batch"
name = "Batch jobs"
resolve = "manual"
integration_keys = ["{MANUAL_KEY}"]

[[services]]
id = "dashboards"
name = "Dashboards"
integration_keys = ["{GRAFANA_KEY}"]
grafana = {{ secret = "{GRAFANA_SECRET}" }}
"#
    )
}

/// A fresh directory under the target directory for one test: see [`TestDir`].
pub fn temp_dir() -> TestDir {
    TestDir(Some(
        tempfile::Builder::new()
            .prefix("tocsin-test-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("temp dir"),
    ))
}

/// A test's temporary directory: removed when it goes out of scope in a passing test, kept
/// (and its path printed) when the test panics, so that a failure can be inspected.
pub struct TestDir(Option<tempfile::TempDir>);

impl std::ops::Deref for TestDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        self.0
            .as_ref()
            .expect("the directory exists until drop")
            .path()
    }
}

impl AsRef<Path> for TestDir {
    fn as_ref(&self) -> &Path {
        self
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let Some(dir) = self.0.take() else { return };
        if std::thread::panicking() {
            eprintln!(
                "kept the directory of the failed test: {}",
                dir.keep().display()
            );
        }
        // Otherwise dropping the TempDir removes it.
    }
}

pub struct TestApp {
    pub base: String,
    pub engine: Arc<Engine>,
    pub client: reqwest::Client,
    /// A token with scope `write`.
    pub token: String,
    /// A token with scope `read`.
    pub read_token: String,
    shutdown: CancellationToken,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// Declared last: dropped after the server's handles. `None` when the caller owns the
    /// data directory (to start another app on it).
    _data_dir: Option<TestDir>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with("").await
}

pub async fn spawn_app_with(extra_config: &str) -> TestApp {
    let config = tocsin_config::parse(&test_config(extra_config), "test.toml", &|_| None)
        .unwrap_or_else(|errors| panic!("test config is invalid:\n{errors}"));
    start_app(config, None).await
}

/// Builds the app on a fresh SQLite directory (reloadable from `file` when given), creates a
/// write and a read token, and serves it on a port-0 listener.
async fn start_app(config: tocsin_config::Config, file: Option<tocsin::ConfigFile>) -> TestApp {
    let listener = tocsin::bind_listener(([127, 0, 0, 1], 0).into()).expect("bind");
    start_app_on(config, file, listener).await
}

/// [`start_app`] on a listener the caller bound (to know its address before writing the
/// config, for `server.public_url`).
pub async fn start_app_on(
    config: tocsin_config::Config,
    file: Option<tocsin::ConfigFile>,
    listener: std::net::TcpListener,
) -> TestApp {
    start_app_with_clock(config, file, listener, Arc::new(tocsin_engine::SystemClock)).await
}

/// [`start_app_on`] with the engine reading `clock` (a manual clock for escalation timing).
pub async fn start_app_with_clock(
    config: tocsin_config::Config,
    file: Option<tocsin::ConfigFile>,
    listener: std::net::TcpListener,
    clock: Arc<dyn tocsin_engine::Clock>,
) -> TestApp {
    let data_dir = temp_dir();
    let settings = tocsin::Settings {
        config,
        data_dir: data_dir.to_path_buf(),
        database: None,
    };
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let mut app = tocsin::App::build_with_clock(&settings, clock)
        .await
        .expect("build app");
    if let Some(file) = file {
        app = app.reload_from(file, &settings.config);
    }
    let engine = Arc::clone(app.engine());
    let (token, _) = engine
        .create_token("tester", TokenScope::Write)
        .await
        .expect("token");
    let (read_token, _) = engine
        .create_token("reader", TokenScope::Read)
        .await
        .expect("token");
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let server = tokio::spawn(app.serve(listener, async move { stop.cancelled().await }));
    TestApp {
        base,
        engine,
        client: reqwest::Client::new(),
        token,
        read_token,
        shutdown,
        server: Some(server),
        _data_dir: Some(data_dir),
    }
}

/// A running Tocsin on the data directory `data_dir` (or on the PostgreSQL database
/// `database`) that the caller keeps, so that it can be stopped and started again on the same
/// data; its config comes from the file at `path`, reloadable through `POST
/// /api/v1/config/reload`. Creates a write and a read token at each start.
pub async fn start_app_at(path: &Path, data_dir: &Path, database: Option<&str>) -> TestApp {
    let loaded = tocsin::read_config(path)
        .unwrap_or_else(|errors| panic!("test config is invalid:\n{errors}"));
    let file = tocsin::ConfigFile {
        path: path.to_owned(),
        listen: None,
        database: None,
        sha256: loaded.sha256,
    };
    let settings = tocsin::Settings {
        config: loaded.config,
        data_dir: data_dir.to_path_buf(),
        database: database.map(str::to_owned),
    };
    let listener = tocsin::bind_listener(([127, 0, 0, 1], 0).into()).expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let app = tocsin::App::build(&settings)
        .await
        .expect("build app")
        .reload_from(file, &settings.config);
    let engine = Arc::clone(app.engine());
    let (token, _) = engine
        .create_token("tester", TokenScope::Write)
        .await
        .expect("token");
    let (read_token, _) = engine
        .create_token("reader", TokenScope::Read)
        .await
        .expect("token");
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let server = tokio::spawn(app.serve(listener, async move { stop.cancelled().await }));
    TestApp {
        base,
        engine,
        client: reqwest::Client::new(),
        token,
        read_token,
        shutdown,
        server: Some(server),
        _data_dir: None,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs raw bytes to an ingestion endpoint.
    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_raw(path, body.to_string()).await
    }

    /// A PagerDuty Events API v2 event.
    pub async fn enqueue(&self, body: &Value) -> (u16, Value) {
        self.post_json("/v2/enqueue", body).await
    }

    pub async fn trigger(&self, routing_key: &str, dedup_key: &str, summary: &str) -> Value {
        let (status, body) = self
            .enqueue(&json!({
                "routing_key": routing_key,
                "event_action": "trigger",
                "dedup_key": dedup_key,
                "payload": {"summary": summary, "source": "web-1", "severity": "critical"}
            }))
            .await;
        assert_eq!(status, 202, "{body}");
        body
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.request(reqwest::Method::GET, path, None, Some(&self.token))
            .await
    }

    pub async fn post(&self, path: &str, body: Option<Value>) -> (u16, Value) {
        self.request(reqwest::Method::POST, path, body, Some(&self.token))
            .await
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Stops the server gracefully and waits for the ingest queue to drain (which needs every
    /// handle on the engine gone, this one included).
    pub async fn stop(self) {
        let TestApp {
            engine,
            shutdown,
            server,
            ..
        } = self;
        drop(engine);
        shutdown.cancel();
        if let Some(server) = server {
            tokio::time::timeout(std::time::Duration::from_secs(10), server)
                .await
                .expect("the server stops within 10 s")
                .expect("server task")
                .expect("server result");
        }
    }
}

/// A running Tocsin whose config comes from the file at `path`, reloadable (`SIGHUP` aside:
/// that needs the binary) through `POST /api/v1/config/reload`.
pub async fn spawn_app_from_file(path: &std::path::Path) -> TestApp {
    let loaded = tocsin::read_config(path)
        .unwrap_or_else(|errors| panic!("test config is invalid:\n{errors}"));
    let file = tocsin::ConfigFile {
        path: path.to_owned(),
        listen: None,
        database: None,
        sha256: loaded.sha256,
    };
    start_app(loaded.config, Some(file)).await
}

/// Serves `app` on a port-0 loopback listener in the background; returns its address.
pub async fn serve_on_loopback(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

/// An HTTP server on loopback whose `/healthz` answers with the status the test sets (200 to
/// begin with): the target of the monitor tests.
pub async fn spawn_status_target() -> (std::net::SocketAddr, Arc<AtomicU16>) {
    let status = Arc::new(AtomicU16::new(200));
    let app = axum::Router::new().route(
        "/healthz",
        axum::routing::get({
            let status = Arc::clone(&status);
            move || async move {
                (
                    axum::http::StatusCode::from_u16(status.load(Ordering::SeqCst))
                        .expect("status"),
                    "ok",
                )
            }
        }),
    );
    let address = serve_on_loopback(app).await;
    (address, status)
}

/// The newest incidents of a service (up to 10), newest first.
pub async fn service_incidents(engine: &Engine, service: &str) -> Vec<IncidentRow> {
    let filter = IncidentFilter {
        states: Vec::new(),
        service: Some(ServiceId::new(service.to_owned())),
        priority: None,
    };
    engine
        .incidents(&filter, PageRequest::first(10))
        .await
        .expect("incidents")
        .items
}

/// The incident of the monitor `checkout-health` (service `checkout-api`), if it has one.
pub async fn checkout_health_incident(engine: &Engine) -> Option<IncidentRow> {
    service_incidents(engine, "checkout-api")
        .await
        .into_iter()
        .find(|incident| incident.dedup_key.as_str() == "monitor:checkout-health")
}

/// Polls `condition` every 100 ms for up to `limit`.
pub async fn wait_for<T, F>(limit: Duration, mut condition: impl FnMut() -> F) -> Option<T>
where
    F: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = condition().await {
            return Some(value);
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
