//! The outbox end to end with real peers on loopback: a service's channels (Slack-compatible
//! and a signed webhook) hear of every change in order; the outage replay (an alert at 08:46
//! local time outside working hours, the primary does not answer, escalation reaches the
//! secondary in another time zone, who acknowledges from the email link) on a manual clock;
//! and a server killed with `kill -9` mid-send sends the page after restart, once by its
//! idempotency key.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use jiff::SignedDuration;
use serde_json::{json, Value};
use tocsin_engine::{Clock, ManualClock};
use tokio::io::AsyncWriteExt;

use crate::durability::{free_port, start_server};
use crate::interop::python_ready;
use crate::paging::{
    link, next_line, smtp_sink, webhook_receiver, SmtpSink, DELIVERY, HOOK_SECRET,
};
use crate::support::{serve_on_loopback, start_app_on, start_app_with_clock, temp_dir};

const ROUTING_KEY: &str = "0123456789abcdef0123456789abcdef";

/// Waits until `ready` holds for what `seen` holds, up to [`DELIVERY`].
async fn wait_for<T: Clone>(seen: &Arc<Mutex<Vec<T>>>, what: &str, ready: impl Fn(&[T]) -> bool) {
    let deadline = Instant::now() + DELIVERY;
    loop {
        if ready(&seen.lock().expect("lock")) {
            return;
        }
        assert!(Instant::now() < deadline, "no {what} within {DELIVERY:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A Slack-compatible incoming webhook on loopback that records every JSON body.
async fn slack_receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let record = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/services/T1/B1/secret",
        axum::routing::post(move |body: axum::body::Bytes| {
            let record = Arc::clone(&record);
            async move {
                let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
                record.lock().expect("lock").push(json);
                (StatusCode::OK, "ok")
            }
        }),
    );
    let address = serve_on_loopback(app).await;
    (format!("http://{address}/services/T1/B1/secret"), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_services_channels_hear_of_every_change_in_order() {
    let (hook, hooked) = webhook_receiver().await;
    let (chat, chatted) = slack_receiver().await;
    let listener = tocsin::bind_listener(([127, 0, 0, 1], 0).into()).expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:0"
public_url = "{base}"

[[channels]]
id = "team-chat"
kind = "slack"
url = "{chat}"

[[channels]]
id = "audit"
kind = "webhook"
url = "{hook}"
secret = "{HOOK_SECRET}"

[[services]]
id = "checkout-api"
name = "Checkout API"
channels = ["team-chat", "audit"]
integration_keys = ["{ROUTING_KEY}"]
"#
    );
    let config = tocsin_config::parse(&config, "channels.toml", &|_| None)
        .unwrap_or_else(|errors| panic!("invalid config:\n{errors}"));
    let app = start_app_on(config, None, listener).await;

    app.trigger(ROUTING_KEY, "disk-db1", "Disk 99% on db1")
        .await;
    wait_for(&hooked, "opened update", |seen| !seen.is_empty()).await;
    let (status, _) = app.post("/api/v1/incidents/1/acknowledge", None).await;
    assert_eq!(status, 200);
    wait_for(&hooked, "acknowledged update", |seen| seen.len() >= 2).await;
    let (status, _) = app
        .post(
            "/api/v1/incidents/1/notes",
            Some(json!({"text": "failing over to db2"})),
        )
        .await;
    assert_eq!(status, 201);
    wait_for(&hooked, "note update", |seen| seen.len() >= 3).await;
    let (status, _) = app.post("/api/v1/incidents/1/resolve", None).await;
    assert_eq!(status, 200);
    wait_for(&hooked, "resolved update", |seen| seen.len() >= 4).await;
    wait_for(&chatted, "four chat messages", |seen| seen.len() >= 4).await;

    let hooked = hooked.lock().expect("lock").clone();
    let kinds: Vec<_> = hooked
        .iter()
        .map(|(_, _, json)| json["type"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        kinds,
        [
            "incident.opened",
            "incident.acknowledged",
            "incident.note",
            "incident.resolved"
        ]
    );
    assert!(
        hooked.iter().all(|(_, signed, _)| *signed),
        "every update is signed with the channel's secret"
    );
    let keys: HashSet<_> = hooked.iter().map(|(key, ..)| key.clone()).collect();
    assert_eq!(keys.len(), 4, "each update has its own idempotency key");
    assert_eq!(hooked[2].2["update"]["note"], "failing over to db2");
    assert_eq!(hooked[0].2["incident"]["number"], 1);
    // Once acknowledged, no acknowledge link; once resolved, no resolve link either.
    assert!(hooked[0].2["links"]["acknowledge"].is_string());
    assert!(hooked[1].2["links"]["acknowledge"].is_null());
    assert!(hooked[3].2["links"]["resolve"].is_null());

    let chatted = chatted.lock().expect("lock").clone();
    assert_eq!(chatted.len(), 4, "{chatted:?}");
    let texts: Vec<_> = chatted
        .iter()
        .map(|json| json["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(texts[0].starts_with("Opened: [P"), "{texts:?}");
    assert!(texts[1].starts_with("Acknowledged by "), "{texts:?}");
    assert!(texts[2].starts_with("Note by "), "{texts:?}");
    assert!(texts[3].starts_with("Resolved by "), "{texts:?}");
    assert!(
        texts
            .iter()
            .all(|text| text.contains("Checkout API: Disk 99% on db1 (#1)")),
        "{texts:?}"
    );
    app.stop().await;
}

/// The outage replay's people: the after-hours primary in New York, the secondary in Berlin.
fn replay_config(public_url: &str, smtp_port: u16) -> String {
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
time_zone = "America/New_York"
contact = [{{ id = "mail", kind = "email", address = "ana@example.test" }}]

[[users]]
id = "ben"
name = "Ben Okafor"
time_zone = "Europe/Berlin"
contact = [{{ id = "mail", kind = "email", address = "ben@example.test" }}]

# Outside working hours (weekday evenings to 09:00) New York's primary is Ana.
[[schedules]]
id = "after-hours"
time_zone = "America/New_York"

  [[schedules.layers]]
  members = ["ana"]
  rotation = "1w"
  handoff = "2026-11-02T09:00"
  only = ["mon-fri 18:00-09:00"]

[[schedules]]
id = "europe"
time_zone = "Europe/Berlin"

  [[schedules.layers]]
  members = ["ben"]
  rotation = "1w"
  handoff = "2026-11-02T09:00"

[[escalation_policies]]
id = "checkout"
levels = [
  {{ targets = ["schedule:after-hours"], escalate_after_minutes = 5 }},
  {{ targets = ["schedule:europe"] }},
]

[[services]]
id = "checkout-api"
name = "Checkout API"
escalation_policy = "checkout"
integration_keys = ["{ROUTING_KEY}"]
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outage_replay_escalates_to_the_secondary_who_acknowledges_from_the_email() {
    if !python_ready("aiosmtpd", "1", "aiosmtpd==1.4.6").await {
        return;
    }
    let SmtpSink {
        child: mut sink,
        mut lines,
        port: smtp_port,
    } = smtp_sink(&[]).await;

    // Tuesday 24 November 2026, 08:46 in New York (13:46 UTC, 14:46 in Berlin).
    let alert_at: jiff::Timestamp = "2026-11-24T13:46:00Z".parse().expect("time");
    let clock = Arc::new(ManualClock::new(alert_at));
    let listener = tocsin::bind_listener(([127, 0, 0, 1], 0).into()).expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let config = tocsin_config::parse(&replay_config(&base, smtp_port), "replay.toml", &|_| None)
        .unwrap_or_else(|errors| panic!("invalid config:\n{errors}"));
    let app =
        start_app_with_clock(config, None, listener, Arc::clone(&clock) as Arc<dyn Clock>).await;
    let (_, oncall) = app.get(&format!("/api/v1/oncall?at={alert_at}")).await;
    let text = oncall.to_string();
    assert!(
        text.contains("\"ana\""),
        "ana is the primary at 08:46: {text}"
    );

    app.enqueue(&json!({
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": "checkout-5xx",
        "payload": {"summary": "Checkout 5xx above 20%", "source": "lb-1", "severity": "critical"}
    }))
    .await;

    // Level 1: the after-hours primary, by email at once.
    let mail = next_page(&mut lines, "the primary's email").await;
    assert_eq!(mail["rcpt_tos"], json!(["ana@example.test"]));
    assert!(
        mail["subject"]
            .as_str()
            .is_some_and(|subject| subject.ends_with("Checkout API: Checkout 5xx above 20% (#1)")),
        "{mail}"
    );

    settled(&app, "user:ana").await;

    // Ana does not answer. Four minutes later nothing else has gone out.
    clock.advance(SignedDuration::from_mins(4));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, incident) = app.get("/api/v1/incidents/1").await;
    assert_eq!(incident["state"], "triggered");
    // At five minutes level 2 is paged: the secondary in Berlin.
    clock.advance(SignedDuration::from_mins(1));
    let mail = next_page(&mut lines, "the secondary's email").await;
    assert_eq!(mail["rcpt_tos"], json!(["ben@example.test"]));
    let body = mail["body"].as_str().expect("body").to_owned();
    let acknowledge = link(&body, "Acknowledge");
    settled(&app, "user:ben").await;

    // Ben opens the link (a GET changes nothing), then presses the button.
    clock.advance(SignedDuration::from_secs(90));
    let client = reqwest::Client::new();
    let response = client.get(&acknowledge).send().await.expect("get");
    assert_eq!(response.status(), 200);
    let page = response.text().await.expect("page");
    assert!(page.contains("Acknowledge incident #1?"), "{page}");
    let (_, incident) = app.get("/api/v1/incidents/1").await;
    assert_eq!(incident["state"], "triggered", "a GET changes nothing");
    let response = client.post(&acknowledge).send().await.expect("post");
    assert_eq!(response.status(), 200);
    let (_, incident) = app.get("/api/v1/incidents/1").await;
    assert_eq!(incident["state"], "acknowledged");

    // The timeline tells the story, each step at its time.
    let (_, timeline) = app.get("/api/v1/incidents/1/timeline").await;
    let steps: Vec<(String, String, String)> = timeline["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|entry| {
            let what = match entry["kind"].as_str().unwrap_or_default() {
                "escalation.notified" => format!(
                    "level {} {}",
                    entry["data"]["level"], entry["data"]["recipients"]
                ),
                "notification.attempted" => format!(
                    "{} {}",
                    entry["data"]["recipient"].as_str().unwrap_or_default(),
                    entry["data"]["result"].as_str().unwrap_or_default()
                ),
                _ => entry["actor"].as_str().unwrap_or_default().to_owned(),
            };
            (
                entry["at"].as_str().unwrap_or_default().to_owned(),
                entry["kind"].as_str().unwrap_or_default().to_owned(),
                what,
            )
        })
        .filter(|(_, kind, _)| kind != "alert.opened")
        .collect();
    let at = |entry: &(String, String, String)| {
        entry
            .0
            .parse::<jiff::Timestamp>()
            .expect("a time")
            .duration_since(alert_at)
    };
    let kinds: Vec<_> = steps
        .iter()
        .map(|(_, kind, what)| format!("{kind}: {what}"))
        .collect();
    assert_eq!(
        kinds,
        [
            "incident.triggered: integration:events-v2".to_owned(),
            "escalation.notified: level 1 [\"ana\"]".to_owned(),
            "notification.attempted: user:ana sent".to_owned(),
            "escalation.notified: level 2 [\"ben\"]".to_owned(),
            "notification.attempted: user:ben sent".to_owned(),
            "incident.acknowledged: link:ben".to_owned(),
        ],
        "{steps:?}"
    );
    assert!(at(&steps[1]) < SignedDuration::from_secs(1), "{steps:?}");
    assert!(at(&steps[2]) < SignedDuration::from_secs(1), "{steps:?}");
    assert_eq!(at(&steps[3]), SignedDuration::from_mins(5), "{steps:?}");
    assert_eq!(at(&steps[4]), SignedDuration::from_mins(5), "{steps:?}");
    assert_eq!(
        at(&steps[5]),
        SignedDuration::from_mins(5) + SignedDuration::from_secs(90),
        "{steps:?}"
    );

    app.stop().await;
    if let Some(mut stdin) = sink.stdin.take() {
        let _ = stdin.shutdown().await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), sink.wait()).await;
}

/// Waits until the incident's timeline has the attempt of a page to `recipient` (the
/// dispatcher settles it after the SMTP server accepted the mail).
async fn settled(app: &crate::support::TestApp, recipient: &str) {
    let deadline = Instant::now() + DELIVERY;
    loop {
        let (_, timeline) = app.get("/api/v1/incidents/1/timeline").await;
        let done = timeline["items"].as_array().is_some_and(|items| {
            items.iter().any(|entry| {
                entry["kind"] == "notification.attempted" && entry["data"]["recipient"] == recipient
            })
        });
        if done {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no attempt for {recipient} within {DELIVERY:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the receiver of the kill test saw: (idempotency key, answered 200).
type Deliveries = Arc<Mutex<Vec<(String, bool)>>>;

/// A webhook receiver that holds the first request it gets without answering (the sender
/// dies meanwhile) and answers every later one 200.
async fn stalling_receiver() -> (String, Deliveries) {
    let seen: Deliveries = Arc::default();
    let stalled = Arc::new(AtomicBool::new(false));
    let record = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/page",
        axum::routing::post(move |headers: HeaderMap| {
            let record = Arc::clone(&record);
            let stalled = Arc::clone(&stalled);
            async move {
                let key = headers
                    .get("idempotency-key")
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                if !stalled.swap(true, Ordering::SeqCst) {
                    record.lock().expect("lock").push((key.clone(), false));
                    std::future::pending::<()>().await;
                }
                record.lock().expect("lock").push((key, true));
                StatusCode::OK
            }
        }),
    );
    let address = serve_on_loopback(app).await;
    (format!("http://{address}/page"), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_send_sends_the_page_after_restart_once_by_its_key() {
    let (hook, seen) = stalling_receiver().await;
    let dir = temp_dir();
    let config = dir.join("tocsin.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
listen = "127.0.0.1:0"

[[users]]
id = "ana"
contact = [{{ id = "hook", kind = "webhook", url = "{hook}", secret = "{HOOK_SECRET}" }}]

[[escalation_policies]]
id = "checkout"
levels = [{{ targets = ["user:ana"] }}]

[[services]]
id = "checkout-api"
name = "Checkout API"
escalation_policy = "checkout"
integration_keys = ["{ROUTING_KEY}"]
"#
        ),
    )
    .expect("config");
    let data = dir.join("data");
    let port = free_port();
    let mut server = start_server(&config, &data, port).await;
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/v2/enqueue"))
        .json(&json!({
            "routing_key": ROUTING_KEY,
            "event_action": "trigger",
            "dedup_key": "disk-db1",
            "payload": {"summary": "Disk 99% on db1", "source": "db1", "severity": "critical"}
        }))
        .send()
        .await
        .expect("trigger");
    assert_eq!(response.status(), 202);

    // The page is on its way: the receiver holds it, and the server dies before any answer.
    wait_for(&seen, "the first attempt", |seen| !seen.is_empty()).await;
    server.start_kill().expect("kill -9");
    server.wait().await.expect("killed");
    let key = seen.lock().expect("lock")[0].0.clone();
    assert!(key.starts_with("page-1-"), "{key}");

    // After the restart the claim of the dead server ends and the page goes again.
    let mut server = start_server(&config, &data, port).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if seen
            .lock()
            .expect("lock")
            .iter()
            .any(|(_, answered)| *answered)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the page was not sent again after the restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // And never again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(
        seen,
        [(key.clone(), false), (key, true)],
        "one page, one idempotency key, delivered once"
    );
    server.start_kill().expect("kill");
    let _ = server.wait().await;
}

/// The next mail that is a page: notices of the schedules' coming gaps (the replay's schedules
/// leave hours uncovered, and Tocsin warns of them a day ahead) may come first, and are skipped.
async fn next_page(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    what: &str,
) -> Value {
    loop {
        let mail = next_line(lines, what).await;
        let gap_notice = mail["message_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("<gap-"));
        if !gap_notice {
            return mail;
        }
        assert!(
            mail["subject"]
                .as_str()
                .is_some_and(|subject| subject.starts_with("[Tocsin] Nobody on call soon")),
            "{mail}"
        );
    }
}
