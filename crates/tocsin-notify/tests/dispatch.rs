//! The dispatcher over a real SQLite store and a real HTTP receiver on loopback, with a manual
//! clock: a receiver that is down gets the page once it is back, exactly once successfully;
//! a 4xx fails at once; every attempt is on the timeline.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use jiff::SignedDuration;
use serde_json::json;
use tocsin_core::{
    DedupKey, EscalationLevel, EscalationPolicy, Event, EventAction, IncidentNumber, Integration,
    ResolvePolicy, ServiceId, Severity, Target, TimelineData,
};
use tocsin_engine::paging::{NotifyStep, PagedUser, PagingDirectory};
use tocsin_engine::{
    Catalog, Clock, DueRunnerSettings, Engine, IngestSettings, Ingestor, ManualClock, Metrics,
    ServiceEntry,
};
use tocsin_notify::{
    Destination, Destinations, Dispatcher, DispatcherSettings, DrainReport, Senders,
};
use tocsin_store::outbox::{ContactMethod, NotificationState};
use tocsin_store::{Inbound, PageRequest, Store};
use tocsin_store_sqlite::SqliteStore;

const SECRET: &str = "receiver-secret";

/// What a receiver saw of each request: (idempotency key, signature ok, status answered,
/// the JSON body).
type Seen = Arc<Mutex<Vec<(String, bool, u16, serde_json::Value)>>>;

/// A receiver answering with the status in `status`; records what it saw.
async fn receiver(status: Arc<AtomicU16>) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let record = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let record = Arc::clone(&record);
            let status = Arc::clone(&status);
            async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                let expected = tocsin_notify::signature(SECRET, &header("tocsin-timestamp"), &body);
                let answer = status.load(Ordering::SeqCst);
                record.lock().expect("lock").push((
                    header("idempotency-key"),
                    header("tocsin-signature") == expected,
                    answer,
                    serde_json::from_slice(&body).unwrap_or_default(),
                ));
                StatusCode::from_u16(answer).expect("status")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}/hook"), seen)
}

struct Setup {
    engine: Arc<Engine>,
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
    dispatcher: Dispatcher,
    _dir: tempfile::TempDir,
}

async fn setup(url: &str) -> Setup {
    setup_with(
        "webhook",
        Destination::Webhook {
            url: url.to_owned(),
            secret: Some(SECRET.to_owned()),
        },
    )
    .await
}

/// Ana, paged at once on contact method `hook` sent by `method` to `destination`.
async fn setup_with(method: &str, destination: Destination) -> Setup {
    setup_full(
        &[("hook", method, destination)],
        DispatcherSettings::default(),
    )
    .await
}

/// Ana with these contact methods (id, method, destination), in this order, paged at once
/// on the first.
async fn setup_full(contacts: &[(&str, &str, Destination)], settings: DispatcherSettings) -> Setup {
    setup_people(&[("ana", contacts.to_vec())], settings).await
}

/// A person: user id, and contact methods (id, method, where it goes).
type Person<'a> = (&'a str, Vec<(&'a str, &'a str, Destination)>);

/// These people, each with their contact methods (id, method, destination) in this order and
/// paged at once on the first, all on the one level of service `db`'s policy.
async fn setup_people(people: &[Person<'_>], settings: DispatcherSettings) -> Setup {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).await.expect("store"));
    let clock = Arc::new(ManualClock::new(
        "2026-11-22T02:35:00Z".parse().expect("time"),
    ));
    let catalog = Arc::new(Catalog::new(vec![ServiceEntry {
        id: ServiceId::new("db"),
        name: "Game DB".to_owned(),
        integration_keys: vec!["0123456789abcdef0123456789abcdef".to_owned()],
        resolve: ResolvePolicy::Auto,
        grafana: None,
    }]));
    let users = people
        .iter()
        .map(|(user, contacts)| {
            let (first_contact, method, _) = &contacts[0];
            (
                (*user).to_owned(),
                PagedUser {
                    id: (*user).to_owned(),
                    name: (*user).to_owned(),
                    bot: false,
                    notify: vec![NotifyStep {
                        after_minutes: 0,
                        contact: (*first_contact).to_owned(),
                        method: (*method).to_owned(),
                    }],
                },
            )
        })
        .collect();
    catalog.replace_paging(PagingDirectory {
        users,
        policies: HashMap::from([(
            "db".to_owned(),
            EscalationPolicy {
                id: "db".to_owned(),
                name: "db".to_owned(),
                repeat: 0,
                levels: vec![EscalationLevel {
                    targets: people
                        .iter()
                        .map(|(user, _)| Target::User((*user).to_owned()))
                        .collect(),
                    escalate_after_minutes: None,
                    round_robin: false,
                }],
            },
        )]),
        service_policies: HashMap::from([(ServiceId::new("db"), "db".to_owned())]),
        ..PagingDirectory::default()
    });
    let metrics = Arc::new(Metrics::new());
    let (ingestor, _writer) = Ingestor::start(
        Arc::clone(&store),
        Arc::clone(&catalog),
        Arc::clone(&metrics),
        IngestSettings::default(),
    )
    .expect("ingest writer");
    let engine = Arc::new(Engine::new(
        Arc::clone(&store),
        catalog,
        ingestor,
        Arc::clone(&clock) as Arc<dyn Clock>,
        metrics,
    ));
    engine.load_link_keys().await.expect("link keys");
    let destinations = Destinations {
        public_url: "http://tocsin.test".to_owned(),
        users: people
            .iter()
            .map(|(user, contacts)| {
                (
                    (*user).to_owned(),
                    contacts
                        .iter()
                        .map(|(id, _, destination)| ((*id).to_owned(), destination.clone()))
                        .collect(),
                )
            })
            .collect(),
        contact_order: people
            .iter()
            .map(|(user, contacts)| {
                (
                    (*user).to_owned(),
                    contacts
                        .iter()
                        .map(|(id, method, _)| ContactMethod {
                            contact: (*id).to_owned(),
                            method: (*method).to_owned(),
                        })
                        .collect(),
                )
            })
            .collect(),
        ..Destinations::default()
    };
    let dispatcher = Dispatcher::new(
        Arc::clone(&engine),
        destinations,
        Senders::new(None),
        settings,
    );
    Setup {
        engine,
        store,
        clock,
        dispatcher,
        _dir: dir,
    }
}

async fn open_incident(setup: &Setup, key: &str) {
    setup
        .engine
        .submit(vec![Inbound::Alert(Event {
            service: ServiceId::new("db"),
            integration: Integration::EventsV2,
            action: EventAction::Trigger,
            dedup_key: DedupKey::parse(key).expect("key"),
            severity: Severity::Critical,
            summary: "database down".to_owned(),
            source: "db-1".to_owned(),
            occurred_at: None,
            received_at: setup.clock.now(),
            details: json!({}),
        })])
        .await
        .expect("submit");
    let runner = setup.engine.due_runner(DueRunnerSettings::default());
    runner.run_due_once().await.expect("escalate");
}

/// Every attempt on the incident's timeline (all its pages): (result, attempt).
async fn attempts(setup: &Setup, number: i64) -> Vec<(String, i64)> {
    let mut found = Vec::new();
    let mut page = PageRequest::first(PageRequest::MAX_LIMIT);
    loop {
        let entries = setup
            .engine
            .timeline(IncidentNumber(number), page)
            .await
            .expect("timeline");
        found.extend(
            entries
                .items
                .into_iter()
                .filter_map(|entry| match entry.data {
                    TimelineData::NotificationAttempted {
                        result, attempt, ..
                    } => Some((result, attempt)),
                    _ => None,
                }),
        );
        match entries.next {
            Some(after) => page = PageRequest::new(Some(after), PageRequest::MAX_LIMIT),
            None => return found,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_is_down_gets_the_page_once_it_is_back() {
    let status = Arc::new(AtomicU16::new(503));
    let (url, seen) = receiver(Arc::clone(&status)).await;
    let setup = setup(&url).await;
    open_incident(&setup, "db-down").await;

    let report = setup.dispatcher.drain_once().await.expect("drain");
    assert_eq!(
        report,
        DrainReport {
            retrying: 1,
            ..DrainReport::default()
        }
    );
    // Not due again yet.
    assert_eq!(
        setup.dispatcher.drain_once().await.expect("drain"),
        DrainReport::default()
    );
    // Ten minutes of outage: the retries back off (10 s, 20 s, 40 s, ... with jitter).
    for _ in 0..6 {
        setup.clock.advance(SignedDuration::from_secs(100));
        setup.dispatcher.drain_once().await.expect("drain");
    }
    let failures = seen.lock().expect("lock").len();
    assert!(
        (2..=7).contains(&failures),
        "{failures} attempts while down"
    );

    status.store(200, Ordering::SeqCst);
    setup.clock.advance(SignedDuration::from_secs(30 * 60));
    let report = setup.dispatcher.drain_once().await.expect("drain");
    assert_eq!(report.sent, 1, "{report:?}");
    setup.clock.advance(SignedDuration::from_secs(3600));
    assert_eq!(
        setup.dispatcher.drain_once().await.expect("drain"),
        DrainReport::default(),
        "sent once, never again"
    );

    let seen = seen.lock().expect("lock").clone();
    let keys: std::collections::HashSet<_> = seen.iter().map(|(key, ..)| key.clone()).collect();
    assert_eq!(
        keys.len(),
        1,
        "every attempt carries the same idempotency key"
    );
    assert!(
        seen.iter().all(|(_, signed, ..)| *signed),
        "every attempt is signed"
    );
    assert_eq!(
        seen.iter()
            .filter(|(_, _, status, _)| *status == 200)
            .count(),
        1,
        "delivered once"
    );
    let timeline = attempts(&setup, 1).await;
    assert_eq!(
        timeline.len(),
        seen.len(),
        "every attempt is on the timeline"
    );
    assert_eq!(
        timeline.last().map(|(result, _)| result.as_str()),
        Some("sent")
    );
    assert!(timeline[..timeline.len() - 1]
        .iter()
        .all(|(result, _)| result == "retrying"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_error_fails_at_once_and_says_so_on_the_timeline() {
    let status = Arc::new(AtomicU16::new(404));
    let (url, seen) = receiver(Arc::clone(&status)).await;
    let setup = setup(&url).await;
    open_incident(&setup, "db-down").await;
    let report = setup.dispatcher.drain_once().await.expect("drain");
    assert_eq!(report.failed, 1, "{report:?}");
    assert_eq!(seen.lock().expect("lock").len(), 1);
    assert_eq!(attempts(&setup, 1).await, [("failed".to_owned(), 1)]);
    let rows = setup
        .store
        .notifications(IncidentNumber(1), 10)
        .await
        .expect("rows");
    assert_eq!(rows[0].state, NotificationState::Failed);
    assert!(
        rows[0]
            .last_error
            .as_deref()
            .is_some_and(|error| error.contains("404")),
        "{:?}",
        rows[0].last_error
    );
}

/// A Slack-compatible incoming webhook on loopback: answers `status` with Slack's plain-text
/// body and records the content type and the JSON of every request.
async fn slack_receiver(
    status: Arc<AtomicU16>,
) -> (String, Arc<Mutex<Vec<(String, serde_json::Value)>>>) {
    let seen: Arc<Mutex<Vec<(String, serde_json::Value)>>> = Arc::default();
    let record = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/services/T000/B000/XXXX",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let record = Arc::clone(&record);
            let status = Arc::clone(&status);
            async move {
                let content_type = headers
                    .get("content-type")
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let json: serde_json::Value =
                    serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                record.lock().expect("lock").push((content_type, json));
                let answer = status.load(Ordering::SeqCst);
                let text = match answer {
                    200 => "ok",
                    400 => "invalid_payload",
                    429 => "rate_limited",
                    _ => "error",
                };
                (StatusCode::from_u16(answer).expect("status"), text)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}/services/T000/B000/XXXX"), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_webhook_gets_text_and_blocks_with_working_links() {
    let status = Arc::new(AtomicU16::new(200));
    let (url, seen) = slack_receiver(Arc::clone(&status)).await;
    let setup = setup_with("slack", Destination::Slack { url }).await;
    open_incident(&setup, "db-down").await;
    let report = setup.dispatcher.drain_once().await.expect("drain");
    assert_eq!(report.sent, 1, "{report:?}");

    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1);
    let (content_type, body) = &seen[0];
    assert_eq!(content_type, "application/json");
    let object = body.as_object().expect("a JSON object");
    let mut keys: Vec<_> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["blocks", "text"]);
    let text = body["text"].as_str().expect("text");
    assert!(
        text.starts_with("[P1] Game DB: database down (#1) — <http://tocsin.test/links/"),
        "{text}"
    );
    assert!(
        text.contains("|Acknowledge> · <http://tocsin.test/links/"),
        "{text}"
    );
    assert!(
        text.ends_with("|Resolve> · <http://tocsin.test/api/v1/incidents/1|Incident #1>"),
        "{text}"
    );

    let blocks = body["blocks"].as_array().expect("blocks");
    let types: Vec<_> = blocks
        .iter()
        .map(|block| block["type"].as_str().expect("type"))
        .collect();
    assert_eq!(types, ["header", "section", "actions"]);
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    assert_eq!(
        blocks[0]["text"]["text"],
        "[P1] Game DB: database down (#1)"
    );
    assert_eq!(blocks[1]["text"]["type"], "mrkdwn");
    let facts = blocks[1]["text"]["text"].as_str().expect("facts");
    assert!(
        facts.starts_with("Incident #1 · P1 · critical · triggered\n"),
        "{facts}"
    );
    assert!(facts.ends_with("Events: 1, latest from db-1"), "{facts}");
    let buttons = blocks[2]["elements"].as_array().expect("buttons");
    let labels: Vec<_> = buttons
        .iter()
        .map(|button| {
            assert_eq!(button["type"], "button");
            button["text"]["text"].as_str().expect("label")
        })
        .collect();
    assert_eq!(labels, ["Acknowledge", "Resolve", "Incident #1"]);

    // The acknowledge button's link is a signed link for ana and this incident.
    let ack = buttons[0]["url"].as_str().expect("url");
    let token = ack
        .strip_prefix("http://tocsin.test/links/")
        .expect("a link of the server");
    let claims = setup.engine.verify_link(token).await.expect("a valid link");
    assert_eq!(claims.incident, IncidentNumber(1));
    assert_eq!(claims.user, "ana");
    assert_eq!(claims.action, tocsin_engine::links::LinkAction::Acknowledge);
    assert_eq!(attempts(&setup, 1).await, [("sent".to_owned(), 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_refusals_fail_at_once_and_rate_limits_are_retried() {
    let status = Arc::new(AtomicU16::new(400));
    let (url, seen) = slack_receiver(Arc::clone(&status)).await;
    let setup = setup_with("slack", Destination::Slack { url }).await;
    open_incident(&setup, "db-down").await;
    let report = setup.dispatcher.drain_once().await.expect("drain");
    assert_eq!(report.failed, 1, "{report:?}");
    let rows = setup
        .store
        .notifications(IncidentNumber(1), 10)
        .await
        .expect("rows");
    assert_eq!(
        rows[0].last_error.as_deref(),
        Some("http 400: invalid_payload")
    );

    status.store(429, Ordering::SeqCst);
    open_incident(&setup, "db-slow").await;
    let report = setup.dispatcher.drain_once().await.expect("drain");
    assert_eq!(report.retrying, 1, "{report:?}");
    status.store(200, Ordering::SeqCst);
    setup.clock.advance(SignedDuration::from_secs(60));
    let report = setup.dispatcher.drain_once().await.expect("drain");
    assert_eq!(report.sent, 1, "{report:?}");
    assert_eq!(seen.lock().expect("lock").len(), 3);
}

/// The incident numbers a webhook body is about: its own and those it lists.
fn incidents_in(body: &serde_json::Value) -> Vec<i64> {
    let mut numbers = vec![body["incident"]["number"].as_i64().expect("number")];
    if let Some(also) = body["also"].as_array() {
        numbers.extend(
            also.iter()
                .map(|other| other["number"].as_i64().expect("number")),
        );
    }
    numbers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_for_one_person_is_one_message_now_and_one_bundle_after_the_window() {
    let status = Arc::new(AtomicU16::new(200));
    let (url, seen) = receiver(Arc::clone(&status)).await;
    let setup = setup(&url).await;
    let start = setup.clock.now();

    // 50 incidents open within a second; the dispatcher drains after each, as it polls.
    for n in 0..50 {
        open_incident(&setup, &format!("disk-{n}")).await;
        setup.dispatcher.drain_once().await.expect("drain");
        setup.clock.advance(SignedDuration::from_millis(20));
    }
    assert_eq!(seen.lock().expect("lock").len(), 1, "one message at once");
    // Nothing more until the window ends.
    setup.clock.advance(SignedDuration::from_millis(28_900));
    setup.dispatcher.drain_once().await.expect("drain");
    assert_eq!(
        seen.lock().expect("lock").len(),
        1,
        "nothing within the window"
    );
    setup.clock.advance(SignedDuration::from_millis(100));
    let report = setup.dispatcher.drain_once().await.expect("drain");
    assert_eq!(report.sent, 49, "{report:?}");
    assert_eq!(
        setup.clock.now().duration_since(start),
        SignedDuration::from_secs(30)
    );
    setup.clock.advance(SignedDuration::from_secs(3600));
    assert_eq!(
        setup.dispatcher.drain_once().await.expect("drain"),
        DrainReport::default(),
        "nothing is left"
    );

    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 2, "one message at once, one bundle");
    assert_eq!(incidents_in(&seen[0].3), [1]);
    let bundle = &seen[1].3;
    let mut numbers = incidents_in(bundle);
    assert_eq!(numbers.len(), 49, "the bundle lists the other 49");
    numbers.sort_unstable();
    assert_eq!(
        numbers,
        (2..=50).collect::<Vec<_>>(),
        "none twice, none missing"
    );
    assert_eq!(bundle["incident"]["number"], 2, "the oldest page leads");
    let first_also = &bundle["also"][0];
    assert_eq!(first_also["priority"], "P1");
    assert_eq!(first_also["title"], "database down");
    let ack = first_also["links"]["acknowledge"]
        .as_str()
        .expect("an acknowledge link");
    let token = ack
        .strip_prefix("http://tocsin.test/links/")
        .expect("a link of the server");
    let claims = setup.engine.verify_link(token).await.expect("a valid link");
    assert_eq!(
        claims.incident,
        IncidentNumber(first_also["number"].as_i64().expect("number"))
    );
    assert_eq!(claims.user, "ana");
    assert!(seen
        .iter()
        .all(|(_, signed, status, _)| *signed && *status == 200));

    // Every incident's page is sent, by one of the two messages, and on its timeline once.
    for number in 1..=50 {
        let rows = setup
            .store
            .notifications(IncidentNumber(number), 10)
            .await
            .expect("rows");
        assert_eq!(rows.len(), 1, "incident {number}");
        assert_eq!(rows[0].state, NotificationState::Sent, "incident {number}");
        assert_eq!(
            rows[0].attempts, 1,
            "incident {number}: a deferral is no attempt"
        );
        assert_eq!(attempts(&setup, number).await, [("sent".to_owned(), 1)]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_last_retry_the_next_contact_method_is_paged() {
    let failing = Arc::new(AtomicU16::new(500));
    let (broken, broken_seen) = receiver(Arc::clone(&failing)).await;
    let working = Arc::new(AtomicU16::new(200));
    let (url, seen) = receiver(Arc::clone(&working)).await;
    let hook = |url: &str| Destination::Webhook {
        url: url.to_owned(),
        secret: Some(SECRET.to_owned()),
    };
    let setup = setup_full(
        &[
            ("hook", "webhook", hook(&broken)),
            ("backup", "webhook", hook(&url)),
        ],
        DispatcherSettings {
            max_attempts: 3,
            ..DispatcherSettings::default()
        },
    )
    .await;
    open_incident(&setup, "db-down").await;
    for _ in 0..4 {
        setup.dispatcher.drain_once().await.expect("drain");
        setup.clock.advance(SignedDuration::from_secs(60));
    }
    assert_eq!(broken_seen.lock().expect("lock").len(), 3, "three attempts");
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1, "the next contact method got the page");
    assert_eq!(incidents_in(&seen[0].3), [1]);
    assert_eq!(seen[0].2, 200);

    let rows = setup
        .store
        .notifications(IncidentNumber(1), 10)
        .await
        .expect("rows");
    let states: Vec<_> = rows
        .iter()
        .map(|row| (row.recipient.to_string(), row.state))
        .collect();
    assert_eq!(
        states,
        [
            ("user:ana".to_owned(), NotificationState::Failed),
            ("user:ana".to_owned(), NotificationState::Sent),
        ]
    );
    let timeline = setup
        .engine
        .timeline(IncidentNumber(1), PageRequest::default())
        .await
        .expect("timeline")
        .items;
    let rerouted: Vec<_> = timeline
        .iter()
        .filter_map(|entry| match &entry.data {
            TimelineData::NotificationRerouted {
                failed_contact,
                next_contact,
                ..
            } => Some((failed_contact.clone(), next_contact.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(rerouted, [("hook".to_owned(), Some("backup".to_owned()))]);
    assert_eq!(
        attempts(&setup, 1).await,
        [
            ("retrying".to_owned(), 1),
            ("retrying".to_owned(), 2),
            ("failed".to_owned(), 3),
            ("sent".to_owned(), 1),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_ten_minutes_gets_everything_afterwards_none_twice() {
    let status = Arc::new(AtomicU16::new(503));
    let (url, seen) = receiver(Arc::clone(&status)).await;
    let setup = setup(&url).await;
    // Every 10 s for 50 minutes: an incident opens every 2 minutes while the receiver is
    // down; it is back at minute 10.
    for step in 0..300 {
        if step % 12 == 0 && step < 60 {
            open_incident(&setup, &format!("disk-{step}")).await;
        }
        if step == 60 {
            status.store(200, Ordering::SeqCst);
        }
        setup.dispatcher.drain_once().await.expect("drain");
        setup.clock.advance(SignedDuration::from_secs(10));
    }
    let seen = seen.lock().expect("lock").clone();
    let failed = seen
        .iter()
        .filter(|(_, _, status, _)| *status != 200)
        .count();
    assert!(failed >= 5, "{failed} attempts while down");
    let delivered: Vec<_> = seen
        .iter()
        .filter(|(_, _, status, _)| *status == 200)
        .collect();
    let mut incidents: Vec<i64> = delivered
        .iter()
        .flat_map(|(_, _, _, body)| incidents_in(body))
        .collect();
    incidents.sort_unstable();
    assert_eq!(incidents, [1, 2, 3, 4, 5], "everything, none twice");
    let keys: std::collections::HashSet<_> = delivered.iter().map(|(key, ..)| key).collect();
    assert_eq!(keys.len(), delivered.len(), "no message delivered twice");
    for number in 1..=5 {
        let rows = setup
            .store
            .notifications(IncidentNumber(number), 10)
            .await
            .expect("rows");
        assert_eq!(rows.len(), 1, "incident {number}");
        assert_eq!(rows[0].state, NotificationState::Sent, "incident {number}");
        let attempts = attempts(&setup, number).await;
        assert_eq!(
            attempts.last().map(|(result, _)| result.as_str()),
            Some("sent"),
            "incident {number}: {attempts:?}"
        );
    }
}

/// What [`held_receiver`] saw: (path, idempotency key) of every request, how many were in
/// flight at most, and how many arrived.
#[derive(Default)]
struct Held {
    requests: Mutex<Vec<(String, String)>>,
    in_flight: std::sync::atomic::AtomicUsize,
    most_in_flight: std::sync::atomic::AtomicUsize,
}

/// A receiver for `/hook/<user>` that holds every request until `open` says true (and then
/// for `delay` more) before answering `200`.
async fn held_receiver(
    open: tokio::sync::watch::Receiver<bool>,
    delay: std::time::Duration,
) -> (String, Arc<Held>) {
    let held = Arc::new(Held::default());
    let record = Arc::clone(&held);
    let app = axum::Router::new().route(
        "/hook/{user}",
        axum::routing::post(
            move |axum::extract::Path(user): axum::extract::Path<String>, headers: HeaderMap| {
                let record = Arc::clone(&record);
                let mut open = open.clone();
                async move {
                    let now = record.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    record.most_in_flight.fetch_max(now, Ordering::SeqCst);
                    let key = headers
                        .get("idempotency-key")
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    record.requests.lock().expect("lock").push((user, key));
                    let _ = open.wait_for(|open| *open).await;
                    tokio::time::sleep(delay).await;
                    record.in_flight.fetch_sub(1, Ordering::SeqCst);
                    StatusCode::OK
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}/hook"), held)
}

/// `count` people, `p000`, `p001`, ..., each with a webhook of their own at `base/<name>`.
fn people_at(base: &str, count: usize) -> Vec<(String, Destination)> {
    (0..count)
        .map(|n| {
            let name = format!("p{n:03}");
            let destination = Destination::Webhook {
                url: format!("{base}/{name}"),
                secret: Some(SECRET.to_owned()),
            };
            (name, destination)
        })
        .collect()
}

async fn setup_many(people: &[(String, Destination)], settings: DispatcherSettings) -> Setup {
    let people: Vec<Person<'_>> = people
        .iter()
        .map(|(name, destination)| {
            (
                name.as_str(),
                vec![("hook", "webhook", destination.clone())],
            )
        })
        .collect();
    setup_people(&people, settings).await
}

async fn states(setup: &Setup) -> HashMap<String, NotificationState> {
    setup
        .store
        .notifications(IncidentNumber(1), 500)
        .await
        .expect("rows")
        .into_iter()
        .map(|row| (row.idempotency_key, row.state))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_to_many_people_go_out_at_once_each_exactly_once() {
    let (_open, gate) = tokio::sync::watch::channel(true);
    let (base, held) = held_receiver(gate, std::time::Duration::from_millis(20)).await;
    let people = people_at(&base, 200);
    let settings = DispatcherSettings::default();
    let setup = setup_many(&people, settings).await;
    open_incident(&setup, "db-down").await;
    assert_eq!(states(&setup).await.len(), 200, "one page per person");

    let report = setup.dispatcher.drain_once().await.expect("drain");
    assert_eq!(
        report,
        DrainReport {
            sent: 200,
            ..DrainReport::default()
        }
    );
    assert_eq!(
        setup.dispatcher.drain_once().await.expect("drain"),
        DrainReport::default(),
        "nothing is left"
    );

    let requests = held.requests.lock().expect("lock").clone();
    assert_eq!(requests.len(), 200, "one request per page");
    let keys: std::collections::HashSet<_> = requests.iter().map(|(_, key)| key).collect();
    assert_eq!(keys.len(), 200, "no idempotency key twice");
    let paths: std::collections::HashSet<_> = requests.iter().map(|(user, _)| user).collect();
    assert_eq!(
        paths.len(),
        200,
        "every person reached at their own address"
    );
    let most = held.most_in_flight.load(Ordering::SeqCst);
    assert!(
        (2..=settings.concurrency).contains(&most),
        "{most} requests in flight at most"
    );
    let states = states(&setup).await;
    assert!(
        states
            .values()
            .all(|state| *state == NotificationState::Sent),
        "{states:?}"
    );
    let attempts = attempts(&setup, 1).await;
    assert_eq!(attempts.len(), 200, "every attempt is on the timeline");
    assert!(attempts
        .iter()
        .all(|(result, attempt)| result == "sent" && *attempt == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledgement_during_dispatch_stops_the_pages_not_yet_claimed() {
    let (open, gate) = tokio::sync::watch::channel(false);
    let (base, held) = held_receiver(gate, std::time::Duration::ZERO).await;
    let people = people_at(&base, 40);
    let settings = DispatcherSettings {
        batch: 8,
        concurrency: 8,
        ..DispatcherSettings::default()
    };
    let setup = setup_many(&people, settings).await;
    open_incident(&setup, "db-down").await;

    // The first claim's eight pages reach the receiver, which holds them; meanwhile the
    // incident is acknowledged, and then the receiver answers.
    let acknowledge = async {
        while held.requests.lock().expect("lock").len() < 8 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        setup
            .engine
            .command(
                IncidentNumber(1),
                &tocsin_core::Command::Acknowledge,
                &tocsin_core::Actor::token("p000"),
            )
            .await
            .expect("acknowledge");
        open.send(true).expect("open the receiver");
    };
    let (report, ()) = tokio::join!(setup.dispatcher.drain_once(), acknowledge);
    let report = report.expect("drain");
    assert_eq!(
        report,
        DrainReport {
            sent: 8,
            ..DrainReport::default()
        },
        "the claimed pages finish their attempt, nothing else is sent"
    );
    assert_eq!(held.most_in_flight.load(Ordering::SeqCst), 8, "all at once");
    let requests = held.requests.lock().expect("lock").clone();
    assert_eq!(requests.len(), 8);
    let states = states(&setup).await;
    let sent: Vec<_> = states
        .iter()
        .filter(|(_, state)| **state == NotificationState::Sent)
        .map(|(key, _)| key.clone())
        .collect();
    let mut received: Vec<_> = requests.iter().map(|(_, key)| key.clone()).collect();
    let mut sent_sorted = sent.clone();
    received.sort();
    sent_sorted.sort();
    assert_eq!(received, sent_sorted, "the sent rows are the ones received");
    assert_eq!(
        states
            .values()
            .filter(|state| **state == NotificationState::Cancelled)
            .count(),
        32,
        "{states:?}"
    );
    assert_eq!(attempts(&setup, 1).await.len(), 8);
    setup.clock.advance(SignedDuration::from_secs(3600));
    assert_eq!(
        setup.dispatcher.drain_once().await.expect("drain"),
        DrainReport::default()
    );
}
