//! The engine over a real SQLite store, with a manual clock: times recorded by commands come from
//! the clock that is passed in, so hours of an incident pass in microseconds.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use tocsin_core::{
    Actor, Command, DedupKey, Event, EventAction, IncidentNumber, IncidentState, Integration,
    ResolvePolicy, ServiceId, Severity,
};
use tocsin_engine::{
    Catalog, Clock, Engine, IngestSettings, Ingestor, ManualClock, Metrics, ServiceEntry,
    SubmitError,
};
use tocsin_store::{Inbound, Store};
use tocsin_store_sqlite::SqliteStore;

#[path = "engine/due_work.rs"]
mod due_work;
#[path = "engine/notices.rs"]
mod notices;
#[path = "engine/oncall.rs"]
mod oncall;
#[path = "engine/paging.rs"]
mod paging;

/// A test's data directory: removed after a passing test, kept (and its path printed) when the
/// test panics, for inspection.
struct TestDir(Option<tempfile::TempDir>);

impl Drop for TestDir {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            if std::thread::panicking() {
                eprintln!(
                    "kept the directory of the failed test: {}",
                    dir.keep().display()
                );
            }
        }
    }
}

/// An engine on `store` with one service, `api`, resolving automatically.
fn engine_with(store: Arc<dyn Store>, clock: Arc<ManualClock>, settings: IngestSettings) -> Engine {
    let catalog = Arc::new(Catalog::new(vec![ServiceEntry {
        id: ServiceId::new("api"),
        name: "API".to_owned(),
        integration_keys: vec!["0123456789abcdef0123456789abcdef".to_owned()],
        resolve: ResolvePolicy::Auto,
        grafana: None,
    }]));
    let metrics = Arc::new(Metrics::new());
    let (ingestor, _writer) = Ingestor::start(
        Arc::clone(&store),
        Arc::clone(&catalog),
        Arc::clone(&metrics),
        settings,
    )
    .expect("ingest writer starts");
    Engine::new(store, catalog, ingestor, clock, metrics)
}

/// An engine on a fresh SQLite store; the directory lives as long as the returned guard.
async fn engine(clock: Arc<ManualClock>, settings: IngestSettings) -> (Engine, TestDir) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).await.expect("store"));
    (engine_with(store, clock, settings), TestDir(Some(dir)))
}

fn trigger(key: &str, at: Timestamp) -> Inbound {
    Inbound::Alert(Event {
        service: ServiceId::new("api"),
        integration: Integration::EventsV2,
        action: EventAction::Trigger,
        dedup_key: DedupKey::parse(key).expect("key"),
        severity: Severity::Critical,
        summary: "checkout is down".to_owned(),
        source: "probe".to_owned(),
        occurred_at: Some(at),
        received_at: at,
        details: json!({}),
    })
}

#[tokio::test]
async fn commands_take_their_time_from_the_clock() {
    let start: Timestamp = "2026-11-22T02:35:00Z".parse().expect("time");
    let clock = Arc::new(ManualClock::new(start));
    let (engine, _dir) = engine(Arc::clone(&clock), IngestSettings::default()).await;
    engine
        .submit(vec![trigger("db-down", clock.now())])
        .await
        .expect("submit");
    let number = IncidentNumber(1);
    let ana = Actor::token("ana");

    clock.advance(SignedDuration::from_mins(4));
    let acknowledged = engine
        .command(number, &Command::Acknowledge, &ana)
        .await
        .expect("ack");
    assert_eq!(
        acknowledged.incident.acknowledged_at,
        Some("2026-11-22T02:39:00Z".parse().expect("time"))
    );

    clock.advance(SignedDuration::from_hours(4));
    let resolved = engine
        .command(number, &Command::Resolve, &ana)
        .await
        .expect("resolve");
    assert_eq!(resolved.incident.state, IncidentState::Resolved);
    let times = resolved.incident.times();
    assert_eq!(
        times.time_to_acknowledge(),
        Some(SignedDuration::from_mins(4))
    );
    assert_eq!(
        times.time_to_resolve(),
        Some(SignedDuration::from_mins(4 * 60 + 4))
    );
    let note = engine
        .command(
            number,
            &Command::AddNote("the cleanup job ran while the database was down".to_owned()),
            &ana,
        )
        .await
        .expect("note");
    assert_eq!(note.entries[0].at, clock.now());
}

#[tokio::test]
async fn a_request_larger_than_the_queue_is_refused_whole() {
    let clock = Arc::new(ManualClock::new(Timestamp::UNIX_EPOCH));
    let (engine, _dir) = engine(
        Arc::clone(&clock),
        IngestSettings {
            queue_capacity: 10,
            max_batch: 10,
        },
    )
    .await;
    let batch: Vec<Inbound> = (0..11)
        .map(|n| trigger(&format!("k{n}"), clock.now()))
        .collect();
    assert_eq!(
        engine.submit(batch).await,
        Err(SubmitError::TooLarge {
            events: 11,
            capacity: 10
        })
    );
    assert_eq!(engine.ingestor().queue_depth(), 0);
    let counts = engine.counts().await.expect("counts");
    assert_eq!(
        counts.open_incidents, 0,
        "nothing of the refused request was stored"
    );
}

#[tokio::test]
async fn waiting_folds_reach_the_timeline_once_their_minute_has_passed() {
    let start: Timestamp = "2026-11-22T03:00:00Z".parse().expect("time");
    let clock = Arc::new(ManualClock::new(start));
    let (engine, _dir) = engine(Arc::clone(&clock), IngestSettings::default()).await;
    let number = IncidentNumber(1);
    engine
        .submit(vec![trigger("db-down", clock.now())])
        .await
        .expect("submit");
    for _ in 0..5 {
        clock.advance(SignedDuration::from_secs(10));
        engine
            .submit(vec![trigger("db-down", clock.now())])
            .await
            .expect("submit");
    }
    // 50 s after the alert opened: the five folds wait.
    assert_eq!(engine.log_due_folds().await.expect("log"), 0);
    assert!(folded(&engine, number).await.is_empty());

    clock.advance(SignedDuration::from_secs(10));
    assert_eq!(engine.log_due_folds().await.expect("log"), 1);
    let entries = folded(&engine, number).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].at, clock.now());
    assert_eq!(entries[0].data.folded_events(), Some(5));
    assert_eq!(engine.log_due_folds().await.expect("log"), 0);
}

async fn folded(engine: &Engine, number: IncidentNumber) -> Vec<tocsin_store::TimelineEntry> {
    engine
        .timeline(number, tocsin_store::PageRequest::default())
        .await
        .expect("timeline")
        .items
        .into_iter()
        .filter(|entry| entry.kind() == tocsin_core::TimelineKind::AlertFolded)
        .collect()
}
