//! The edge of the server against hostile or careless callers: metrics from memory, a fair
//! ingest queue, NUL refused on both stores, quiet logs for client errors, lenient `Bearer`,
//! strict parameters and a byte budget per response.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tocsin_store::TokenScope;
use tocsin_store_postgres::testing::TestDatabase;
use tokio_util::sync::CancellationToken;

use crate::support::{spawn_app, spawn_app_with, temp_dir, test_config, TestApp, API_KEY, DB_KEY};

async fn metrics_text(app: &TestApp) -> String {
    let response = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(response.status(), 200);
    response.text().await.expect("body")
}

/// The value of the first sample line that starts with `name` (labels included).
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|line| line.starts_with(name) && line[name.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in\n{text}"))
}

const COUNTS_CALLS: &str = r#"tocsin_store_latency_seconds_count{operation="counts"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_come_from_memory_and_follow_ingest_acknowledge_and_resolve() {
    let app = spawn_app().await;
    app.trigger(API_KEY, "disk", "disk full").await;
    app.trigger(API_KEY, "cpu", "cpu hot").await;
    app.trigger(API_KEY, "cpu", "cpu hot again").await;

    let first = metrics_text(&app).await;
    let counted = sample(&first, COUNTS_CALLS);
    for _ in 0..30 {
        metrics_text(&app).await;
    }
    let text = metrics_text(&app).await;
    assert_eq!(
        sample(&text, COUNTS_CALLS),
        counted,
        "scrapes must not count in the store"
    );
    assert_eq!(sample(&text, "tocsin_open_incidents"), 2.0);
    assert_eq!(sample(&text, "tocsin_open_alerts"), 2.0);

    let (status, _) = app.post("/api/v1/incidents/1/acknowledge", None).await;
    assert_eq!(status, 200);
    let text = metrics_text(&app).await;
    assert_eq!(sample(&text, "tocsin_open_incidents"), 2.0);
    assert_eq!(sample(&text, "tocsin_open_alerts"), 2.0);

    let (status, _) = app.post("/api/v1/incidents/1/resolve", None).await;
    assert_eq!(status, 200);
    // Resolving again changes nothing, the gauges included.
    let (status, _) = app.post("/api/v1/incidents/1/resolve", None).await;
    assert_eq!(status, 200);
    let text = metrics_text(&app).await;
    assert_eq!(sample(&text, "tocsin_open_incidents"), 1.0);
    assert_eq!(sample(&text, "tocsin_open_alerts"), 1.0);

    let (status, body) = app
        .enqueue(&json!({"routing_key": API_KEY, "event_action": "resolve", "dedup_key": "cpu"}))
        .await;
    assert_eq!(status, 202, "{body}");
    let text = metrics_text(&app).await;
    assert_eq!(sample(&text, "tocsin_open_incidents"), 0.0);
    assert_eq!(sample(&text, "tocsin_open_alerts"), 0.0);
    assert_eq!(sample(&text, COUNTS_CALLS), counted);
    app.stop().await;
}

fn alertmanager_group(size: usize, round: usize) -> Value {
    let alerts: Vec<Value> = (0..size)
        .map(|n| {
            json!({"status": "firing", "labels": {"alertname": "Noisy", "instance": format!("i-{n}")},
                   "annotations": {"summary": format!("noise {round}")},
                   "startsAt": "2026-11-22T02:00:00Z", "fingerprint": format!("fp{n:05}")})
        })
        .collect();
    json!({"version": "4", "status": "firing", "receiver": "tocsin", "groupKey": "{}:{}",
           "alerts": alerts})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_noisy_service_saturating_the_queue_does_not_starve_a_quiet_one() {
    // A queue of 2,000 events and four connections posting 500-alert groups without pause:
    // the noisy service keeps the queue at its share and gets 429s; the quiet one, sending one
    // event at a time, must (nearly) never be refused.
    let app = Arc::new(spawn_app_with("[ingest]\nqueue_capacity = 2000\nmax_batch = 256\n").await);
    let stop = CancellationToken::new();
    let noisy_refused = Arc::new(AtomicUsize::new(0));
    let noisy_accepted = Arc::new(AtomicUsize::new(0));
    let mut noisy = Vec::new();
    for connection in 0..4 {
        let app = Arc::clone(&app);
        let stop = stop.clone();
        let refused = Arc::clone(&noisy_refused);
        let accepted = Arc::clone(&noisy_accepted);
        noisy.push(tokio::spawn(async move {
            let body = alertmanager_group(500, connection).to_string();
            while !stop.is_cancelled() {
                let (status, _) = app
                    .post_raw(
                        &format!("/integrations/alertmanager/{API_KEY}"),
                        body.clone(),
                    )
                    .await;
                match status {
                    200 => accepted.fetch_add(1, Ordering::SeqCst),
                    429 => refused.fetch_add(1, Ordering::SeqCst),
                    other => panic!("noisy sender got {other}"),
                };
            }
        }));
    }
    // Let the noisy senders fill the queue first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut quiet_refused = 0;
    let quiet_sent = 60;
    for n in 0..quiet_sent {
        let (status, body) = app
            .enqueue(&json!({"routing_key": DB_KEY, "event_action": "trigger",
                             "dedup_key": format!("quiet-{n}"),
                             "payload": {"summary": "quiet", "source": "db-1", "severity": "error"}}))
            .await;
        match status {
            202 => {}
            429 => quiet_refused += 1,
            other => panic!("quiet sender got {other}: {body}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    for sender in noisy {
        sender.await.expect("noisy sender");
    }
    let refused = noisy_refused.load(Ordering::SeqCst);
    assert!(
        refused > 0,
        "the noisy senders must saturate the queue for this test to mean anything \
         (accepted {}, refused {refused})",
        noisy_accepted.load(Ordering::SeqCst)
    );
    assert!(
        quiet_refused <= 1,
        "the quiet sender got 429 on {quiet_refused} of {quiet_sent} events \
         (noisy: {refused} refused)"
    );
    Arc::into_inner(app).expect("sole owner").stop().await;
}

/// A running app on PostgreSQL with a write token, or `None` when no test database is set.
struct PostgresApp {
    base: String,
    token: String,
    client: reqwest::Client,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    _database: TestDatabase,
}

async fn spawn_on_postgres() -> Option<PostgresApp> {
    let database = TestDatabase::create().await?;
    let config = tocsin_config::parse(&test_config(""), "test.toml", &|_| None)
        .unwrap_or_else(|errors| panic!("{errors}"));
    let data_dir = temp_dir();
    let settings = tocsin::Settings {
        config,
        data_dir: data_dir.to_path_buf(),
        database: Some(database.url().to_owned()),
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let app = tocsin::App::build(&settings).await.expect("build");
    let (token, _) = app
        .engine()
        .create_token("pg", TokenScope::Write)
        .await
        .expect("token");
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let server = tokio::spawn(app.serve(listener, async move { stop.cancelled().await }));
    Some(PostgresApp {
        base,
        token,
        client: reqwest::Client::new(),
        shutdown,
        server,
        _database: database,
    })
}

/// Sends NUL in every kind of text input and checks each is a 400 naming the field.
async fn nul_is_refused(base: &str, token: &str, client: &reqwest::Client) {
    let get = |path: String| {
        let client = client.clone();
        let token = token.to_owned();
        async move {
            let response = client
                .get(path)
                .bearer_auth(token)
                .send()
                .await
                .expect("get");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.expect("json"))
        }
    };
    for (path, field) in [
        ("/api/v1/incidents?service=%00", "service"),
        ("/api/v1/alerts?service=a%00b", "service"),
        ("/api/v1/incidents?state=%00", "state"),
        ("/api/v1/incidents?cursor=%00", "cursor"),
        ("/api/v1/services/%00/changes", "id"),
    ] {
        let (status, body) = get(format!("{base}{path}")).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["field"], field, "{path}: {body}");
    }
    for (body, field) in [
        (
            json!({"routing_key": API_KEY, "event_action": "trigger", "dedup_key": "nul",
                   "payload": {"summary": "a\u{0}b", "source": "s", "severity": "error"}}),
            "'payload.summary'",
        ),
        (
            json!({"routing_key": API_KEY, "event_action": "trigger", "dedup_key": "k\u{0}",
                   "payload": {"summary": "s", "source": "s", "severity": "error"}}),
            "'dedup_key'",
        ),
        (
            json!({"routing_key": API_KEY, "event_action": "trigger", "dedup_key": "nul",
                   "payload": {"summary": "s", "source": "s", "severity": "error",
                               "custom_details": {"note": "x\u{0}"}}}),
            "'payload.custom_details.note'",
        ),
    ] {
        let response = client
            .post(format!("{base}/v2/enqueue"))
            .json(&body)
            .send()
            .await
            .expect("post");
        assert_eq!(response.status(), 400, "{body}");
        let answer: Value = response.json().await.expect("json");
        assert!(
            answer["errors"][0]
                .as_str()
                .is_some_and(|error| error.starts_with(field) && error.contains("NUL")),
            "{field}: {answer}"
        );
    }
    // Nothing was stored.
    let (status, incidents) = get(format!("{base}/api/v1/incidents")).await;
    assert_eq!(status, 200);
    assert_eq!(incidents["items"], json!([]), "{incidents}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_in_any_text_input_is_a_400_naming_the_field_on_sqlite() {
    let app = spawn_app().await;
    nul_is_refused(&app.base, &app.token, &app.client).await;
    app.trigger(API_KEY, "disk", "disk full").await;
    let response = app
        .client
        .post(app.url("/api/v1/incidents/1/notes"))
        .bearer_auth(&app.token)
        .json(&json!({"text": "a\u{0}b"}))
        .send()
        .await
        .expect("note");
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["field"], "text");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_in_any_text_input_is_a_400_naming_the_field_on_postgres() {
    let Some(app) = spawn_on_postgres().await else {
        return;
    };
    nul_is_refused(&app.base, &app.token, &app.client).await;
    app.shutdown.cancel();
    app.server.await.expect("task").expect("server");
}

/// Collects the level of every event logged on this thread.
#[derive(Clone, Default)]
struct Levels(Arc<Mutex<Vec<(tracing::Level, String)>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Levels {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _context: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut message = String::new();
        struct Visitor<'a>(&'a mut String);
        impl tracing::field::Visit for Visitor<'_> {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!("{}={value:?} ", field.name()));
            }
        }
        event.record(&mut Visitor(&mut message));
        self.0
            .lock()
            .unwrap()
            .push((*event.metadata().level(), message));
    }
}

#[tokio::test(flavor = "current_thread")]
async fn client_errors_never_reach_the_error_log() {
    use tracing_subscriber::layer::SubscriberExt;
    let levels = Levels::default();
    // Everything of the server runs on this thread (a current-thread runtime), so a
    // thread-local subscriber sees all its logs.
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(levels.clone()));
    let app = spawn_app().await;
    app.trigger(API_KEY, "disk", "disk full").await;
    let (status, _) = app.post("/api/v1/incidents/1/resolve", None).await;
    assert_eq!(status, 200);
    for (method, path, expected) in [
        ("GET", "/api/v1/incidents/999", 404),
        ("POST", "/api/v1/incidents/999/acknowledge", 404),
        ("POST", "/api/v1/incidents/999/resolve", 404),
        ("POST", "/api/v1/incidents/1/acknowledge", 409),
        ("GET", "/api/v1/alerts/999", 404),
        ("GET", "/api/v1/incidents?limit=0", 400),
        ("GET", "/no/such/route", 404),
    ] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let (status, body) = app.request(method, path, None, Some(&app.token)).await;
        assert_eq!(status, expected, "{path}: {body}");
    }
    let (status, _) = app
        .request(
            reqwest::Method::GET,
            "/api/v1/incidents",
            None,
            Some("tcn_wrong"),
        )
        .await;
    assert_eq!(status, 401);
    let errors: Vec<_> = levels
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|(level, _)| *level <= tracing::Level::WARN)
        .cloned()
        .collect();
    assert!(
        errors.is_empty(),
        "client errors logged at WARN or ERROR: {errors:?}"
    );
    assert!(
        levels
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|(level, message)| *level == tracing::Level::DEBUG
                && message.contains("request refused")),
        "client errors are still logged, at debug"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_is_case_insensitive_and_bad_parameters_name_their_field() {
    let app = spawn_app().await;
    app.trigger(API_KEY, "disk", "disk full").await;
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let response = app
            .client
            .get(app.url("/api/v1/incidents"))
            .header("authorization", format!("{scheme} {}", app.token))
            .send()
            .await
            .expect("get");
        assert_eq!(response.status(), 200, "{scheme}");
    }
    for (path, field) in [
        ("/api/v1/incidents?cursor=abc", "cursor"),
        ("/api/v1/incidents?cursor=-1", "cursor"),
        ("/api/v1/incidents?cursor=0", "cursor"),
        ("/api/v1/alerts?cursor=1.5", "cursor"),
        ("/api/v1/incidents/1/timeline?cursor=zz", "cursor"),
        ("/api/v1/alerts?incident=abc", "incident"),
        ("/api/v1/alerts?incident=0", "incident"),
    ] {
        let (status, body) = app.get(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["field"], field, "{path}: {body}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_stops_at_the_byte_budget_and_its_cursor_continues() {
    let app = spawn_app().await;
    // Twelve change events of ~450 KB each: 5.4 MB in all, more than the 4 MB budget.
    let blob = "x".repeat(450 * 1024);
    for n in 0..12 {
        let (status, body) = app
            .post_json(
                "/v2/change/enqueue",
                &json!({"routing_key": API_KEY,
                        "payload": {"summary": format!("deploy {n}"), "custom_details": {"blob": blob}}}),
            )
            .await;
        assert_eq!(status, 202, "{body}");
    }
    let mut path = "/api/v1/services/checkout-api/changes?limit=500".to_owned();
    let mut pages = Vec::new();
    loop {
        let response = app
            .client
            .get(app.url(&path))
            .bearer_auth(&app.token)
            .send()
            .await
            .expect("get");
        assert_eq!(response.status(), 200);
        let bytes = response.bytes().await.expect("body");
        assert!(
            bytes.len() <= tocsin_web::api::RESPONSE_BUDGET_BYTES + 64 * 1024,
            "a response of {} bytes",
            bytes.len()
        );
        let page: tocsin_web::api::ChangePage = serde_json::from_slice(&bytes).expect("page");
        pages.push(page.items.len());
        match page.next_cursor {
            Some(cursor) => {
                path = format!("/api/v1/services/checkout-api/changes?limit=500&cursor={cursor}")
            }
            None => break,
        }
    }
    assert!(pages.len() >= 2, "the budget split the list: {pages:?}");
    assert_eq!(
        pages.iter().sum::<usize>(),
        12,
        "every item once: {pages:?}"
    );
    app.stop().await;
}

const HUGE: &str = "12345678901234567890123";

/// Sends a trigger whose details hold integers beyond f64 and reads the alert back as text.
async fn huge_integers_round_trip(base: &str, token: &str, client: &reqwest::Client) {
    let body = format!(
        r#"{{"routing_key":"{API_KEY}","event_action":"trigger","dedup_key":"huge",
            "payload":{{"summary":"huge","source":"s","severity":"error",
                        "custom_details":{{"id":{HUGE},"negative":-{HUGE},"exact":9007199254740993}}}}}}"#
    );
    let response = client
        .post(format!("{base}/v2/enqueue"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 202);
    let text = client
        .get(format!("{base}/api/v1/alerts/1"))
        .bearer_auth(token)
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("body");
    for number in [
        format!(r#""id":{HUGE}"#),
        format!(r#""negative":-{HUGE}"#),
        r#""exact":9007199254740993"#.to_owned(),
    ] {
        assert!(text.contains(&number), "{number} in {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integers_beyond_f64_are_kept_exactly_in_details_on_sqlite() {
    let app = spawn_app().await;
    huge_integers_round_trip(&app.base, &app.token, &app.client).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integers_beyond_f64_are_kept_exactly_in_details_on_postgres() {
    let Some(app) = spawn_on_postgres().await else {
        return;
    };
    huge_integers_round_trip(&app.base, &app.token, &app.client).await;
    app.shutdown.cancel();
    app.server.await.expect("task").expect("server");
}
