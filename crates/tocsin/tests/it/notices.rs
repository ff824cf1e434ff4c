//! Notifications that are not pages, end to end on loopback: `tocsin page test` through the
//! real outbox to a real HTTP receiver (one contact method that takes it, one that refuses
//! it), and the watchdog pinging a real heartbeat receiver while the pipeline is healthy and
//! reporting to `<url>/fail` once the store is gone.

use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::Value;

use crate::support::{start_app_on, TestApp};

const HOOK_SECRET: &str = "test-page-secret";

/// What the receiver saw: method, path, whether a signature checked out, body.
type Seen = Arc<Mutex<Vec<(Method, String, bool, String)>>>;

/// An HTTP receiver on loopback: `/refuse` answers 400, anything else 200. Webhook
/// signatures (`Tocsin-Signature`) are checked against [`HOOK_SECRET`].
async fn receiver() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let record = Arc::clone(&seen);
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: axum::body::Bytes| {
            let record = Arc::clone(&record);
            async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                // The signature the dispatcher's own function makes (the paging test checks
                // it independently).
                let signed = header("tocsin-signature")
                    == tocsin_notify::signature(HOOK_SECRET, &header("tocsin-timestamp"), &body);
                let path = uri.path().to_owned();
                let refuse = path == "/refuse";
                record.lock().expect("lock").push((
                    method,
                    path,
                    signed,
                    String::from_utf8_lossy(&body).into_owned(),
                ));
                if refuse {
                    (StatusCode::BAD_REQUEST, "no such hook")
                } else {
                    (StatusCode::OK, "OK")
                }
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}"), seen)
}

async fn app_with(extra: &str) -> TestApp {
    let listener = tocsin::bind_listener(([127, 0, 0, 1], 0).into()).expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let source = format!("[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"{base}\"\n{extra}");
    let config = tocsin_config::parse(&source, "notices.toml", &|_| None)
        .unwrap_or_else(|errors| panic!("invalid config:\n{errors}"));
    start_app_on(config, None, listener).await
}

async fn cli(app: &TestApp, args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    let base = app.base.clone();
    let token = app.token.clone();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_tocsin"))
            .args(&args)
            .env("TOCSIN_SERVER", base)
            .env("TOCSIN_TOKEN", token)
            .output()
            .expect("run tocsin")
    })
    .await
    .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_test_sends_through_the_outbox_and_prints_what_each_contact_method_did() {
    let (hooks, seen) = receiver().await;
    let app = app_with(&format!(
        r#"
[[users]]
id = "ana"
name = "Ana Lima"
contact = [
  {{ id = "hook", kind = "webhook", url = "{hooks}/hook", secret = "{HOOK_SECRET}" }},
  {{ id = "old-hook", kind = "webhook", url = "{hooks}/refuse" }},
  {{ id = "log", kind = "console" }},
]

[[users]]
id = "ben"

[[users]]
id = "ci"
bot = true
"#
    ))
    .await;

    let output = cli(&app, &["page", "test", "ana", "--timeout", "20"]).await;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "one contact method failed, so the command fails:\n{stdout}\n{stderr}"
    );
    println!("{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "test page for ana", "{stdout}\n{stderr}");
    assert!(lines[1].starts_with("CONTACT"), "{stdout}");
    let row = |contact: &str| {
        lines
            .iter()
            .find(|line| line.split_whitespace().next() == Some(contact))
            .unwrap_or_else(|| panic!("no line for {contact}:\n{stdout}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    let hook = row("hook");
    assert_eq!(&hook[1..3], ["webhook", "sent"], "{stdout}");
    assert!(
        hook[3].parse::<u64>().is_ok() && hook[4] == "ms",
        "{stdout}"
    );
    assert_eq!(hook[5], "-", "no error: {stdout}");
    let old = row("old-hook");
    assert_eq!(&old[1..3], ["webhook", "failed"], "{stdout}");
    assert!(old.join(" ").contains("http 400: no such hook"), "{stdout}");
    assert_eq!(&row("log")[1..3], ["console", "sent"], "{stdout}");

    // The receiver got a signed test page that says it is one, with no incident.
    let got = seen.lock().expect("lock").clone();
    let (_, _, signed, body) = got
        .iter()
        .find(|(method, path, _, _)| method == Method::POST && path == "/hook")
        .expect("the test page reached the hook");
    assert!(signed, "signed with the contact method's secret");
    let json: Value = serde_json::from_str(body).expect("JSON");
    assert_eq!(json["type"], "test");
    assert_eq!(json["recipient"], "user:ana");
    assert_eq!(
        json["text"],
        "Test page from Tocsin for Ana Lima via hook; no incident."
    );
    assert!(json["links"]["acknowledge"].is_null());
    assert_eq!(
        got.iter()
            .filter(|(_, path, _, _)| path == "/refuse")
            .count(),
        1,
        "a refusal (4xx) is not retried"
    );

    // A test page opens no incident.
    let (_, incidents) = app.get("/api/v1/incidents").await;
    assert_eq!(incidents["items"], serde_json::json!([]));

    // Whom a test page cannot reach: nothing stored, the field named.
    let (status, body) = app.post("/api/v1/users/nobody/test-page", None).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (404, Some("id")),
        "{body}"
    );
    let (status, body) = app.post("/api/v1/users/ben/test-page", None).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|text| text.contains("no contact methods")),
        "{body}"
    );
    let (status, body) = app.post("/api/v1/users/ci/test-page", None).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = app
        .request(
            reqwest::Method::POST,
            "/api/v1/users/ana/test-page",
            None,
            Some(&app.read_token),
        )
        .await;
    assert_eq!(status, 403, "a read token cannot page");
    let (status, _) = app.get("/api/v1/notifications/999").await;
    assert_eq!(status, 404);
    let (status, body) = app.get("/api/v1/notifications/abc").await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("id")),
        "{body}"
    );
    let output = cli(&app, &["page", "test", "nobody"]).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        stderr.contains("user `nobody` is not declared in the config"),
        "{stderr}"
    );
    app.stop().await;
}

/// The requests the receiver saw to `path`, by method.
fn requests(seen: &Seen, method: &Method, path: &str) -> Vec<String> {
    seen.lock()
        .expect("lock")
        .iter()
        .filter(|(m, p, _, _)| m == method && p == path)
        .map(|(_, _, _, body)| body.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_pings_while_healthy_and_reports_to_fail_once_the_store_is_gone() {
    let (heartbeat, seen) = receiver().await;
    let app = app_with(&format!(
        "\n[watchdog]\nurl = \"{heartbeat}/hc/3f1e\"\nevery = \"1s\"\n"
    ))
    .await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while requests(&seen, &Method::GET, "/hc/3f1e").len() < 2 {
        assert!(
            Instant::now() < deadline,
            "no pings while healthy: {:?}",
            seen.lock().expect("lock")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(requests(&seen, &Method::POST, "/hc/3f1e/fail").is_empty());

    // The store goes away: the pings stop and the failure is reported, with the reason.
    app.engine.store().close().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let failure = loop {
        if let Some(body) = requests(&seen, &Method::POST, "/hc/3f1e/fail").pop() {
            break body;
        }
        assert!(Instant::now() < deadline, "no failure reported");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        failure.starts_with("the store does not take writes"),
        "{failure}"
    );
    let pings = requests(&seen, &Method::GET, "/hc/3f1e").len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        requests(&seen, &Method::GET, "/hc/3f1e").len(),
        pings,
        "no ping while unhealthy"
    );
    assert!(requests(&seen, &Method::POST, "/hc/3f1e/fail").len() >= 2);
    // The store is closed under the running server: it is not stopped gracefully.
    drop(app);
}
