//! Paging end to end with real protocol peers on loopback: a real SMTP server process
//! (Python's aiosmtpd, `tests/interop/smtp_sink.py`) receives the page, a real HTTP receiver
//! checks the webhook's signature, and the acknowledge link from the email stops everything.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tocsin_core::IncidentNumber;
use tocsin_store::due::{DueKey, DueKind};
use tocsin_store::outbox::NotificationState;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::interop::{python_command, python_ready};
use crate::support::start_app_on;

const ROUTING_KEY: &str = "0123456789abcdef0123456789abcdef";
pub(crate) const HOOK_SECRET: &str = "hook-secret";
/// How long a page may take to arrive (the due-work runner and the dispatcher poll).
pub(crate) const DELIVERY: Duration = Duration::from_secs(20);

pub(crate) fn sink_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/smtp_sink.py")
}

/// A real SMTP server process on loopback (`tests/interop/smtp_sink.py`), started with
/// `arguments`; killed when dropped.
pub(crate) struct SmtpSink {
    pub(crate) child: tokio::process::Child,
    pub(crate) lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    pub(crate) port: u16,
}

pub(crate) async fn smtp_sink(arguments: &[&str]) -> SmtpSink {
    let mut command = python_command();
    command
        .arg(sink_script())
        .args(arguments)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = command.spawn().expect("start the SMTP server");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let port = next_line(&mut lines, "the SMTP server's port").await["port"]
        .as_u64()
        .and_then(|port| u16::try_from(port).ok())
        .expect("a port");
    SmtpSink { child, lines, port }
}

/// What the webhook receiver saw: the idempotency key, whether the signature was right, the
/// body.
pub(crate) type Received = Arc<Mutex<Vec<(String, bool, Value)>>>;

/// A webhook receiver on loopback that checks `Tocsin-Signature` against the shared secret.
pub(crate) async fn webhook_receiver() -> (String, Received) {
    let received: Received = Arc::default();
    let seen = Arc::clone(&received);
    let app = axum::Router::new().route(
        "/page",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let seen = Arc::clone(&seen);
            async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                let timestamp = header("tocsin-timestamp");
                let mut mac =
                    Hmac::<Sha256>::new_from_slice(HOOK_SECRET.as_bytes()).expect("any key length");
                mac.update(timestamp.as_bytes());
                mac.update(b".");
                mac.update(&body);
                let valid = hex::decode(header("tocsin-signature"))
                    .is_ok_and(|signature| mac.verify_slice(&signature).is_ok());
                let fresh = timestamp
                    .parse::<i64>()
                    .is_ok_and(|sent| (jiff::Timestamp::now().as_second() - sent).abs() < 300);
                let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
                seen.lock()
                    .expect("lock")
                    .push((header("idempotency-key"), valid && fresh, json));
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}/page"), received)
}

fn config(public_url: &str, smtp_port: u16, hook: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
public_url = "{public_url}"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
from = "Tocsin <tocsin@example.test>"
security = "none"

[[users]]
id = "ana"
name = "Ana Lima"
contact = [
  {{ id = "mail", kind = "email", address = "ana@example.test" }},
  {{ id = "hook", kind = "webhook", url = "{hook}", secret = "{HOOK_SECRET}" }},
]
notify = [
  {{ after_minutes = 0, contact = "mail" }},
  {{ after_minutes = 0, contact = "hook" }},
  {{ after_minutes = 30, contact = "hook" }},
]

[[users]]
id = "ben"
contact = [{{ id = "mail", kind = "email", address = "ben@example.test" }}]

[[escalation_policies]]
id = "checkout"
levels = [
  {{ targets = ["user:ana"], escalate_after_minutes = 5 }},
  {{ targets = ["user:ben"] }},
]

[[services]]
id = "checkout-api"
name = "Checkout API"
escalation_policy = "checkout"
integration_keys = ["{ROUTING_KEY}"]
"#
    )
}

/// The first line `lines` yields within [`DELIVERY`], as JSON.
pub(crate) async fn next_line(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    what: &str,
) -> Value {
    let line = tokio::time::timeout(DELIVERY, lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("no {what} within {DELIVERY:?}"))
        .expect("read the SMTP server's output")
        .unwrap_or_else(|| panic!("the SMTP server ended before {what}"));
    serde_json::from_str(&line).expect("a JSON line")
}

pub(crate) fn link(body: &str, label: &str) -> String {
    body.lines()
        .find_map(|line| line.strip_prefix(&format!("{label}: ")))
        .unwrap_or_else(|| panic!("no {label} link in:\n{body}"))
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_reaches_smtp_and_a_signed_webhook_and_the_email_link_stops_everything() {
    if !python_ready("aiosmtpd", "1", "aiosmtpd==1.4.6").await {
        return;
    }
    let SmtpSink {
        child: mut sink,
        mut lines,
        port: smtp_port,
    } = smtp_sink(&[]).await;
    let (hook, received) = webhook_receiver().await;

    let listener = tocsin::bind_listener(([127, 0, 0, 1], 0).into()).expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let config = tocsin_config::parse(&config(&base, smtp_port, &hook), "paging.toml", &|_| None)
        .unwrap_or_else(|errors| panic!("invalid config:\n{errors}"));
    assert!(
        config
            .inert_sections()
            .iter()
            .all(|section| !section.name.contains("escalation")
                && !section.name.contains("smtp")
                && !section.name.contains("contact")),
        "paging sections act: {:?}",
        config.inert_sections()
    );
    let app = start_app_on(config, None, listener).await;

    let started = Instant::now();
    app.enqueue(&serde_json::json!({
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": "disk-db1",
        "payload": {"summary": "Disk 99% on db1", "source": "db1", "severity": "critical"}
    }))
    .await;

    // Level 1 is paged at once: the email arrives at the real SMTP server.
    let mail = next_line(&mut lines, "the page's email").await;
    let latency = started.elapsed();
    assert_eq!(mail["rcpt_tos"], serde_json::json!(["ana@example.test"]));
    assert_eq!(mail["mail_from"], "tocsin@example.test");
    let subject = mail["subject"].as_str().expect("subject");
    assert!(
        subject.starts_with("[P") && subject.ends_with("] Checkout API: Disk 99% on db1 (#1)"),
        "{subject}"
    );
    let body = mail["body"].as_str().expect("body");
    assert!(body.contains("Events: 1, latest from db1"), "{body}");
    assert!(
        mail["message_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("<page-1-")),
        "{mail}"
    );
    println!("trigger to SMTP: {latency:?}");

    // The webhook arrives too, signed.
    let deadline = Instant::now() + DELIVERY;
    let hooked = loop {
        let seen = received.lock().expect("lock").clone();
        if let Some(first) = seen.into_iter().next() {
            break first;
        }
        assert!(Instant::now() < deadline, "no webhook within {DELIVERY:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (key, signed, json) = hooked;
    assert!(signed, "the signature checks out against the shared secret");
    assert!(key.starts_with("page-1-"), "{key}");
    assert_eq!(json["incident"]["number"], 1);
    assert_eq!(json["incident"]["service_name"], "Checkout API");
    assert_eq!(json["recipient"], "user:ana");

    let acknowledge = link(body, "Acknowledge");
    assert!(
        acknowledge.starts_with(&format!("{base}/links/")),
        "{acknowledge}"
    );
    let client = reqwest::Client::new();

    // Forged and other-incident links change nothing.
    let flipped = if acknowledge.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{flipped}", &acknowledge[..acknowledge.len() - 1]);
    let response = client.post(&forged).send().await.expect("post");
    assert_eq!(response.status(), 403);
    let other = acknowledge.replacen("/links/1.", "/links/2.", 1);
    let response = client.post(&other).send().await.expect("post");
    assert_eq!(response.status(), 403);

    // A GET (a mail scanner) shows one button and changes nothing.
    let response = client.get(&acknowledge).send().await.expect("get");
    assert_eq!(response.status(), 200);
    let page = response.text().await.expect("page");
    assert!(page.contains("Acknowledge incident #1?"), "{page}");
    assert!(page.contains("<form method=\"post\">"), "{page}");
    let (_, incident) = app.get("/api/v1/incidents/1").await;
    assert_eq!(incident["state"], "triggered");

    // The POST acknowledges, as ana.
    let response = client.post(&acknowledge).send().await.expect("post");
    assert_eq!(response.status(), 200);
    let (_, incident) = app.get("/api/v1/incidents/1").await;
    assert_eq!(incident["state"], "acknowledged");
    let (_, timeline) = app.get("/api/v1/incidents/1/timeline").await;
    let entries = timeline["items"].as_array().expect("items");
    let acknowledged = entries
        .iter()
        .find(|entry| entry["kind"] == "incident.acknowledged")
        .expect("acknowledged");
    assert_eq!(acknowledged["actor"], "link:ana");
    assert!(entries
        .iter()
        .any(|entry| entry["kind"] == "escalation.notified"
            && entry["data"]["recipients"] == serde_json::json!(["ana"])));
    let sent: Vec<_> = entries
        .iter()
        .filter(|entry| entry["kind"] == "notification.attempted")
        .map(|entry| {
            (
                entry["data"]["method"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                entry["data"]["result"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    assert!(
        sent.contains(&("email".to_owned(), "sent".to_owned())),
        "{sent:?}"
    );
    assert!(
        sent.contains(&("webhook".to_owned(), "sent".to_owned())),
        "{sent:?}"
    );

    // Everything stops: ana's later notification is withdrawn, level 2 is never due.
    let store = app.engine.store();
    let rows = store
        .notifications(IncidentNumber(1), 50)
        .await
        .expect("notifications");
    let states: Vec<_> = rows.iter().map(|row| row.state).collect();
    assert_eq!(
        states,
        [
            NotificationState::Sent,
            NotificationState::Sent,
            NotificationState::Cancelled
        ]
    );
    let step = store
        .due_item(
            &DueKind::parse("escalation.step").expect("kind"),
            &DueKey::parse("1").expect("key"),
        )
        .await
        .expect("read");
    assert!(step.is_none(), "no escalation step is left");

    // The link again changes nothing; an escalation of an acknowledged incident is refused.
    let response = client.post(&acknowledge).send().await.expect("post");
    assert_eq!(response.status(), 200);
    let (status, _) = app.post("/api/v1/incidents/1/escalate", None).await;
    assert_eq!(status, 409);

    // After the link key is rotated (as `tocsin links rotate-key` does), older links stop
    // working at once.
    let resolve = link(body, "Resolve");
    store
        .rotate_server_key(
            tocsin_engine::links::LINK_KEY_PURPOSE,
            &tocsin_engine::links::new_key_hex(),
            app.engine.now(),
        )
        .await
        .expect("rotate");
    let response = client.post(&resolve).send().await.expect("post");
    assert_eq!(response.status(), 403);
    let (_, incident) = app.get("/api/v1/incidents/1").await;
    assert_eq!(
        incident["state"], "acknowledged",
        "the old link changed nothing"
    );

    app.stop().await;
    if let Some(mut stdin) = sink.stdin.take() {
        let _ = stdin.shutdown().await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), sink.wait()).await;
}
