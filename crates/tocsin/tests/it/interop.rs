//! Real third-party clients against a running Tocsin on loopback: the official PyPI `pagerduty`
//! client (over HTTPS, as it requires), `pdpyras`, Prometheus Alertmanager (a webhook receiver
//! and a PagerDuty receiver) and schemathesis against the OpenAPI document.
//!
//! Python is `$TOCSIN_PYTHON` (default `python3`) with `pagerduty`, `pdpyras` and `schemathesis`
//! installed; Alertmanager is `$TOCSIN_ALERTMANAGER` (default Debian's
//! `/usr/bin/prometheus-alertmanager`). A missing tool skips its test, or fails it when
//! `TOCSIN_REQUIRE_INTEROP=1`. The Python drivers live in `tests/interop/` and print JSON.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tocsin_store::TokenScope;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::support::{spawn_app, temp_dir, test_config, TestApp, TestDir, API_KEY, DB_KEY};

/// The Python drivers and the Alertmanager configuration template.
const INTEROP_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop");
/// How long one run of a Python driver may take.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long schemathesis may take in all.
const SCHEMATHESIS_TIMEOUT: Duration = Duration::from_secs(100);
/// How long to wait for Alertmanager's notifications to show in Tocsin.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------- tools

fn interop_required() -> bool {
    std::env::var("TOCSIN_REQUIRE_INTEROP").is_ok_and(|value| value == "1")
}

/// Whether a test can go on with `tool`. When the tool is missing: a failure naming what to
/// install under `TOCSIN_REQUIRE_INTEROP=1`, else a printed skip.
fn available(tool: &str, present: Result<(), String>, install: &str) -> bool {
    match present {
        Ok(()) => true,
        Err(problem) if interop_required() => panic!(
            "{tool} is not installed ({problem}); TOCSIN_REQUIRE_INTEROP=1 requires it. \
             Install it with: {install}"
        ),
        Err(problem) => {
            println!(
                "skipped: {tool} is not installed (set TOCSIN_REQUIRE_INTEROP=1 to require it)"
            );
            println!("  ({problem})");
            false
        }
    }
}

fn python() -> String {
    std::env::var("TOCSIN_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Keeps a child process's HTTP on loopback whatever proxy the environment names.
fn loopback_only(command: &mut Command) {
    for variable in [
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
    ] {
        command.env_remove(variable);
    }
    command.env("NO_PROXY", "*").env("no_proxy", "*");
}

pub(crate) fn python_command() -> Command {
    let mut command = Command::new(python());
    command
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    loopback_only(&mut command);
    command
}

/// Runs `command` to completion within `limit`, capturing its output; killed when it overruns.
async fn run(mut command: Command, limit: Duration, what: &str) -> Output {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = command
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {what}: {error}"));
    match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(output) => output.unwrap_or_else(|error| panic!("{what}: {error}")),
        Err(_) => panic!("{what} did not finish within {limit:?} (killed)"),
    }
}

/// Whether the Python distribution `name` is installed with the given major version.
async fn python_package(name: &str, major: &str) -> Result<(), String> {
    let mut command = python_command();
    command.args([
        "-c",
        "import importlib.metadata, sys; print(importlib.metadata.version(sys.argv[1]))",
        name,
    ]);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let output = match command.spawn() {
        Ok(child) => tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
            .await
            .map_err(|_| format!("{} did not answer", python()))?
            .map_err(|error| error.to_string())?,
        Err(error) => return Err(format!("cannot run {}: {error}", python())),
    };
    if !output.status.success() {
        return Err(format!("{} has no package {name}", python()));
    }
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if version.split('.').next() == Some(major) {
        Ok(())
    } else {
        Err(format!("{name} {version} found, {major}.x needed"))
    }
}

pub(crate) async fn python_ready(package: &str, major: &str, pinned: &str) -> bool {
    available(
        &format!("the Python package {package} {major}.x"),
        python_package(package, major).await,
        &format!(
            "{} -m pip install {pinned} (or point TOCSIN_PYTHON at an interpreter that has it)",
            python()
        ),
    )
}

// ---------------------------------------------------------------- the API, HTTP or HTTPS

/// Reads Tocsin's REST API with a write token.
struct Api {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    fn of(app: &TestApp) -> Api {
        Api {
            client: app.client.clone(),
            base: app.base.clone(),
            token: app.token.clone(),
        }
    }

    async fn get(&self, path: &str) -> Value {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap_or_else(|error| panic!("GET {path}: {error}"));
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        assert_eq!(status, 200, "GET {path}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|error| panic!("GET {path}: {error}: {text}"))
    }

    /// The incidents of a service, newest first.
    async fn incidents(&self, service: &str) -> Vec<Value> {
        let page = self
            .get(&format!("/api/v1/incidents?service={service}&limit=500"))
            .await;
        page["items"].as_array().expect("items").clone()
    }

    /// The only incident of a service.
    async fn only_incident(&self, service: &str) -> Value {
        let incidents = self.incidents(service).await;
        assert_eq!(
            incidents.len(),
            1,
            "one incident for {service}: {incidents:#?}"
        );
        incidents.into_iter().next().expect("an incident")
    }

    /// The only alert of an incident.
    async fn only_alert(&self, incident: &Value) -> Value {
        let number = incident["number"].as_i64().expect("number");
        let page = self
            .get(&format!("/api/v1/incidents/{number}/alerts"))
            .await;
        let alerts = page["items"].as_array().expect("items");
        assert_eq!(alerts.len(), 1, "one alert for incident {number}: {page:#}");
        // Lists leave the details out; the alert's own read has them.
        let id = alerts[0]["id"].as_i64().expect("alert id");
        self.get(&format!("/api/v1/alerts/{id}")).await
    }
}

/// A Tocsin serving HTTPS with a certificate from its own test CA.
struct HttpsApp {
    api: Api,
    /// PEM of the CA that signed the server's certificate.
    ca_file: PathBuf,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// Holds the certificates and the data; removed after a passing test.
    _dir: TestDir,
}

/// A CA, and a server certificate for `127.0.0.1` and `localhost` signed by it: (CA PEM,
/// certificate PEM, private key PEM).
fn test_certificates() -> (String, String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.distinguished_name
        .push(DnType::CommonName, "Tocsin interop test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");

    let key = KeyPair::generate().expect("server key");
    let mut server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("server params");
    server
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    server.use_authority_key_identifier_extension = true;
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = server
        .signed_by(&key, &ca_cert, &ca_key)
        .expect("server certificate");
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

async fn spawn_https_app() -> HttpsApp {
    let dir = temp_dir();
    let (ca_pem, cert_pem, key_pem) = test_certificates();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &ca_pem).expect("write CA");
    std::fs::write(dir.join("cert.pem"), cert_pem).expect("write certificate");
    std::fs::write(dir.join("key.pem"), key_pem).expect("write key");
    let source = test_config(&format!(
        "[server.tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n",
        dir.join("cert.pem").display(),
        dir.join("key.pem").display()
    ));
    let config = tocsin_config::parse(&source, "interop-tls.toml", &|_| None)
        .unwrap_or_else(|errors| panic!("test config is invalid:\n{errors}"));
    let settings = tocsin::Settings {
        config,
        data_dir: dir.join("data"),
        database: None,
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("https://{}", listener.local_addr().expect("address"));
    let app = tocsin::App::build(&settings).await.expect("build app");
    let (token, _) = app
        .engine()
        .create_token("interop", TokenScope::Write)
        .await
        .expect("token");
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let server = tokio::spawn(app.serve(listener, async move { stop.cancelled().await }));
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("CA PEM"))
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    HttpsApp {
        api: Api {
            client,
            base,
            token,
        },
        ca_file,
        shutdown,
        server,
        _dir: dir,
    }
}

impl HttpsApp {
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.server)
            .await
            .expect("the server stops within 10 s")
            .expect("server task")
            .expect("server result");
    }
}

// ---------------------------------------------------------------- Events API clients

/// Where a driver sends its events.
struct Target<'a> {
    base: &'a str,
    routing_key: &'a str,
    ca_file: Option<&'a Path>,
}

/// Runs a driver from `tests/interop/` and returns the JSON it prints.
async fn driver(script: &str, target: &Target<'_>, args: &[&str]) -> Value {
    let mut command = python_command();
    command
        .current_dir(INTEROP_DIR)
        .arg(Path::new(INTEROP_DIR).join(script))
        .args([
            "--base-url",
            target.base,
            "--routing-key",
            target.routing_key,
        ]);
    if let Some(ca_file) = target.ca_file {
        command.arg("--ca-file").arg(ca_file);
    }
    command.args(args);
    let what = format!("{script} {}", args.first().copied().unwrap_or_default());
    let output = run(command, SCRIPT_TIMEOUT, &what).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstderr:\n{stderr}\nstdout:\n{stdout}",
        output.status
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|error| panic!("{what} printed no JSON ({error}):\n{stdout}\n{stderr}"))
}

/// Trigger (with custom details and links), a repeat of the trigger, acknowledge, resolve and a
/// change event through one client library; each step checked through the REST API.
/// `change_timestamp` is the change event's timestamp as sent and as Tocsin shows it; without it
/// the client stamps the event (or not) on its own.
async fn exercise_events_client(
    script: &str,
    target: &Target<'_>,
    api: &Api,
    service: &str,
    change_timestamp: Option<(&str, &str)>,
) {
    let details = json!({"p99_ms": "2300", "region": "eu-west-1", "hosts": ["web-1", "web-3"]});
    let links = json!([{"href": "https://grafana.example/d/latency", "text": "Latency dashboard"}]);
    let details_arg = details.to_string();
    let links_arg = links.to_string();

    // A trigger without a dedup key: the server makes one up and the client hands it back.
    let sent = driver(
        script,
        target,
        &[
            "trigger",
            "--summary",
            "Checkout p99 latency 2.3 s",
            "--source",
            "web-3",
            "--severity",
            "error",
            "--custom-details",
            &details_arg,
            "--links",
            &links_arg,
        ],
    )
    .await;
    let dedup_key = sent["dedup_key"]
        .as_str()
        .filter(|key| !key.is_empty())
        .unwrap_or_else(|| panic!("{script}: the client got no dedup key back: {sent}"))
        .to_owned();
    let incident = api.only_incident(service).await;
    assert_eq!(incident["state"], "triggered", "{incident:#}");
    assert_eq!(incident["dedup_key"], dedup_key.as_str(), "{incident:#}");
    assert_eq!(incident["title"], "Checkout p99 latency 2.3 s");
    assert_eq!(incident["severity"], "error");
    let alert = api.only_alert(&incident).await;
    assert_eq!(alert["dedup_key"], dedup_key.as_str());
    assert_eq!(alert["source"], "web-3");
    assert_eq!(alert["count"], 1);
    assert_eq!(alert["details"]["custom_details"], details, "{alert:#}");
    assert_eq!(alert["details"]["links"], links, "{alert:#}");

    // The same key again folds into the open alert.
    let again = driver(
        script,
        target,
        &[
            "trigger",
            "--dedup-key",
            &dedup_key,
            "--summary",
            "Checkout p99 latency 2.5 s",
            "--source",
            "web-3",
            "--severity",
            "error",
        ],
    )
    .await;
    assert_eq!(again["dedup_key"], dedup_key.as_str());
    let incident = api.only_incident(service).await;
    let alert = api.only_alert(&incident).await;
    assert_eq!(alert["count"], 2, "{alert:#}");
    assert_eq!(alert["summary"], "Checkout p99 latency 2.5 s");

    for (action, state) in [("acknowledge", "acknowledged"), ("resolve", "resolved")] {
        let answer = driver(script, target, &[action, "--dedup-key", &dedup_key]).await;
        assert_eq!(
            answer["dedup_key"],
            dedup_key.as_str(),
            "{script} {action}: {answer}"
        );
        let incident = api.only_incident(service).await;
        assert_eq!(incident["state"], state, "after {action}: {incident:#}");
        assert_eq!(incident["dedup_key"], dedup_key.as_str());
    }

    // A change event shows on the service, and opens nothing.
    let change_details = json!({"version": "v2.14.0", "commit": "4f1c2e9"});
    let change_links = json!([{"href": "https://git.example/deploys/812", "text": "Deploy 812"}]);
    let change_details_arg = change_details.to_string();
    let change_links_arg = change_links.to_string();
    let mut args = vec![
        "change",
        "--summary",
        "Deployed checkout v2.14.0",
        "--source",
        "ci-runner-2",
        "--custom-details",
        &change_details_arg,
        "--links",
        &change_links_arg,
    ];
    if let Some((sent, _)) = change_timestamp {
        args.extend(["--timestamp", sent]);
    }
    driver(script, target, &args).await;
    let changes = api
        .get(&format!("/api/v1/services/{service}/changes"))
        .await;
    let items = changes["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{changes:#}");
    let change = &items[0];
    assert_eq!(change["summary"], "Deployed checkout v2.14.0");
    assert_eq!(change["source"], "ci-runner-2");
    assert_eq!(
        change["details"]["custom_details"], change_details,
        "{change:#}"
    );
    assert_eq!(
        change["links"][0]["href"], "https://git.example/deploys/812",
        "{change:#}"
    );
    match change_timestamp {
        Some((_, shown)) => assert_eq!(change["occurred_at"], shown, "{change:#}"),
        None => assert!(change["occurred_at"].is_string(), "{change:#}"),
    }
    assert_eq!(api.incidents(service).await.len(), 1);
}

#[tokio::test]
async fn official_pagerduty_client_over_https() {
    if !python_ready("pagerduty", "7", "pagerduty==7.2.0").await {
        return;
    }
    let app = spawn_https_app().await;
    let target = Target {
        base: &app.api.base,
        routing_key: API_KEY,
        ca_file: Some(&app.ca_file),
    };
    exercise_events_client(
        "pagerduty_events.py",
        &target,
        &app.api,
        "checkout-api",
        Some(("2026-11-22T02:20:13.977+00:00", "2026-11-22T02:20:13.977Z")),
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn pdpyras_events_and_change_events() {
    if !python_ready("pdpyras", "5", "pdpyras==5.4.1").await {
        return;
    }
    let app = spawn_app().await;
    let api = Api::of(&app);
    let target = Target {
        base: &app.base,
        routing_key: DB_KEY,
        ca_file: None,
    };
    // No timestamp: the client stamps the change event itself.
    exercise_events_client("pdpyras_events.py", &target, &api, "checkout-db", None).await;
    app.stop().await;
}

// ---------------------------------------------------------------- Prometheus Alertmanager

fn alertmanager_binary() -> PathBuf {
    std::env::var_os("TOCSIN_ALERTMANAGER").map_or_else(
        || PathBuf::from("/usr/bin/prometheus-alertmanager"),
        PathBuf::from,
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

/// Polls `probe` until it yields a value, for at most `limit`.
async fn eventually<T, F, Fut>(limit: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A running Alertmanager, killed when dropped.
struct Alertmanager {
    process: tokio::process::Child,
    base: String,
    log: PathBuf,
    client: reqwest::Client,
    /// Its config, storage and log; removed after a passing test.
    _dir: TestDir,
}

impl Alertmanager {
    async fn start(binary: &Path, tocsin: &str, webhook_key: &str, pagerduty_key: &str) -> Self {
        let dir = temp_dir();
        let template = std::fs::read_to_string(Path::new(INTEROP_DIR).join("alertmanager.yml"))
            .expect("alertmanager.yml");
        let config = template
            .replace("@TOCSIN@", tocsin)
            .replace("@WEBHOOK_KEY@", webhook_key)
            .replace("@PAGERDUTY_KEY@", pagerduty_key);
        std::fs::write(dir.join("alertmanager.yml"), config).expect("write config");
        let log = dir.join("alertmanager.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let base = format!("http://127.0.0.1:{}", free_port());
        let mut command = Command::new(binary);
        command
            .arg(format!(
                "--config.file={}",
                dir.join("alertmanager.yml").display()
            ))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!(
                "--web.listen-address={}",
                base.trim_start_matches("http://")
            ))
            .arg(format!("--web.external-url={base}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=debug")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file)
            .kill_on_drop(true);
        loopback_only(&mut command);
        let process = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", binary.display()));
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client");
        let mut alertmanager = Alertmanager {
            process,
            base,
            log,
            client,
            _dir: dir,
        };
        let ready = eventually(Duration::from_secs(20), || {
            let request = alertmanager
                .client
                .get(format!("{}/-/ready", alertmanager.base));
            async move {
                let response = request.send().await.ok()?;
                response.status().is_success().then_some(())
            }
        })
        .await;
        if ready.is_none() {
            let exited = alertmanager.process.try_wait().ok().flatten();
            panic!(
                "Alertmanager is not ready within 20 s (exit: {exited:?}); its log:\n{}",
                alertmanager.log()
            );
        }
        alertmanager
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn post_alerts(&self, alerts: &Value) {
        let response = self
            .client
            .post(format!("{}/api/v2/alerts", self.base))
            .json(alerts)
            .send()
            .await
            .expect("POST /api/v2/alerts");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(
            status.is_success(),
            "Alertmanager refused {alerts}: {status} {text}"
        );
    }

    /// Alertmanager's fingerprint of the alert with this `alertname`.
    async fn fingerprint(&self, alertname: &str) -> String {
        let alerts: Value = self
            .client
            .get(format!("{}/api/v2/alerts", self.base))
            .send()
            .await
            .expect("GET /api/v2/alerts")
            .json()
            .await
            .expect("alerts JSON");
        alerts
            .as_array()
            .expect("an array of alerts")
            .iter()
            .find(|alert| alert["labels"]["alertname"] == alertname)
            .and_then(|alert| alert["fingerprint"].as_str())
            .unwrap_or_else(|| panic!("Alertmanager holds no {alertname} alert: {alerts:#}"))
            .to_owned()
    }

    async fn stop(mut self) {
        self.process.kill().await.expect("kill Alertmanager");
    }
}

/// The first incident of `service` in `state`.
async fn incident_in_state(api: &Api, service: &str, state: &str) -> Option<Value> {
    api.incidents(service)
        .await
        .into_iter()
        .find(|incident| incident["state"] == state)
}

#[tokio::test]
async fn prometheus_alertmanager_webhook_and_pagerduty_receivers() {
    let binary = alertmanager_binary();
    let present = if binary.is_file() {
        Ok(())
    } else {
        Err(format!("{} does not exist", binary.display()))
    };
    if !available(
        "prometheus-alertmanager",
        present,
        "apt-get install prometheus-alertmanager (or set TOCSIN_ALERTMANAGER to its binary)",
    ) {
        return;
    }
    let app = spawn_app().await;
    let api = Api::of(&app);
    // The webhook receiver feeds checkout-api, the PagerDuty receiver checkout-db.
    let alertmanager = Alertmanager::start(&binary, &app.base, API_KEY, DB_KEY).await;

    let starts_at = jiff::Timestamp::now();
    let labels = json!({"alertname": "DiskFull", "severity": "critical", "instance": "db1",
                        "service": "db"});
    let annotations = json!({"summary": "Disk 99% on db1",
                             "runbook_url": "https://runbooks.example/disk-full"});
    alertmanager
        .post_alerts(&json!([{
            "labels": labels,
            "annotations": annotations,
            "startsAt": starts_at.to_string(),
            "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=disk_free"
        }]))
        .await;
    let fingerprint = alertmanager.fingerprint("DiskFull").await;

    let webhook = eventually(DELIVERY_TIMEOUT, || {
        incident_in_state(&api, "checkout-api", "triggered")
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "no triggered incident from the webhook receiver within {DELIVERY_TIMEOUT:?}; \
             Alertmanager's log:\n{}",
            alertmanager.log()
        )
    });
    let paged = eventually(DELIVERY_TIMEOUT, || {
        incident_in_state(&api, "checkout-db", "triggered")
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "no triggered incident from the PagerDuty receiver within {DELIVERY_TIMEOUT:?}; \
             Alertmanager's log:\n{}",
            alertmanager.log()
        )
    });

    assert_eq!(webhook["dedup_key"], fingerprint.as_str(), "{webhook:#}");
    assert_eq!(webhook["title"], "Disk 99% on db1");
    assert_eq!(webhook["severity"], "critical");
    let paged_key = paged["dedup_key"].as_str().expect("dedup key");
    assert!(
        paged_key.len() == 64
            && paged_key
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
        "Alertmanager's PagerDuty dedup key is a 64-hex hash: {paged:#}"
    );
    let paged_title = paged["title"].as_str().expect("title");
    assert!(paged_title.starts_with("[FIRING:1] DiskFull"), "{paged:#}");
    let webhook_alert = api.only_alert(&webhook).await;
    assert_eq!(webhook_alert["dedup_key"], fingerprint.as_str());

    // The alert ends: both receivers send their resolution.
    let ends_at = jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_millis(500))
        .expect("time")
        .max(
            starts_at
                .checked_add(jiff::SignedDuration::from_millis(1))
                .expect("time"),
        );
    alertmanager
        .post_alerts(&json!([{
            "labels": labels,
            "annotations": annotations,
            "startsAt": starts_at.to_string(),
            "endsAt": ends_at.to_string(),
            "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=disk_free"
        }]))
        .await;
    let api = &api;
    for (service, opened) in [("checkout-api", &webhook), ("checkout-db", &paged)] {
        let resolved = eventually(DELIVERY_TIMEOUT, || async move {
            let incident = api.only_incident(service).await;
            (incident["state"] == "resolved").then_some(incident)
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "the {service} incident is not resolved within {DELIVERY_TIMEOUT:?}; \
                 Alertmanager's log:\n{}",
                alertmanager.log()
            )
        });
        assert_eq!(resolved["number"], opened["number"]);
        assert_eq!(resolved["dedup_key"], opened["dedup_key"]);
        assert_eq!(resolved["open_alerts"], 0, "{resolved:#}");
    }
    alertmanager.stop().await;
    app.stop().await;
}

// ---------------------------------------------------------------- schemathesis

#[tokio::test]
async fn schemathesis_finds_the_api_true_to_its_openapi_document() {
    if !python_ready("schemathesis", "4", "schemathesis==4.32.5").await {
        return;
    }
    let app = spawn_app().await;
    // Real data behind incident 1 and 2, alert 1 and the services' change lists.
    app.trigger(API_KEY, "disk-full", "Disk 99% on db1").await;
    app.trigger(API_KEY, "disk-full", "Disk 99.5% on db1").await;
    app.trigger(API_KEY, "cpu-high", "CPU 98% on web-3").await;
    app.trigger(DB_KEY, "replication-lag", "Replication lag 40 s")
        .await;
    let (status, body) = app.post("/api/v1/incidents/2/acknowledge", None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .post_json(
            "/v2/change/enqueue",
            &json!({"routing_key": API_KEY,
                    "payload": {"summary": "Deployed checkout v2.14.0", "source": "ci"}}),
        )
        .await;
    assert_eq!(status, 202, "{body}");

    let dir = temp_dir();
    let mut command = python_command();
    command.current_dir(&dir).args([
        "-m",
        "schemathesis.cli",
        "run",
        &format!("{}/api/v1/openapi.json", app.base),
        "--header",
        &format!("Authorization: Bearer {}", app.token),
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        "30",
        "--workers",
        "1",
        "--seed",
        "1",
        "--request-timeout",
        "10",
        "--generation-database",
        "none",
        "--no-color",
    ]);
    let output = run(command, SCHEMATHESIS_TIMEOUT, "schemathesis").await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "schemathesis finds the API at odds with its OpenAPI document ({}):\n{stdout}\n{stderr}",
        output.status
    );
    app.stop().await;
}
