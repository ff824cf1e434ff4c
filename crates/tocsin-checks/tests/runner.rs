//! The monitor runner over real stores and real HTTP servers on loopback, with a manual clock
//! deciding when checks are due: two runners on one database run each check once; failures
//! open alerts through the ingest pipeline and recoveries resolve them; a monitor whose parent
//! is down is recorded on the parent's incident instead of paging.

use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::get;
use jiff::{SignedDuration, Timestamp};
use tocsin_checks::{MonitorRunner, Monitors, RunnerSettings};
use tocsin_core::{AlertState, ResolvePolicy, ServiceId, TimelineData};
use tocsin_engine::{
    Catalog, Engine, IngestSettings, Ingestor, ManualClock, Metrics, ServiceEntry,
};
use tocsin_store::{AlertFilter, AlertSummary, PageRequest, Store};
use tocsin_store_sqlite::SqliteStore;

struct Target {
    address: std::net::SocketAddr,
    status: Arc<AtomicU16>,
    requests: Arc<AtomicUsize>,
}

async fn spawn_target() -> Target {
    let status = Arc::new(AtomicU16::new(200));
    let requests = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/healthz",
        get({
            let status = Arc::clone(&status);
            let requests = Arc::clone(&requests);
            move || async move {
                requests.fetch_add(1, Ordering::SeqCst);
                (
                    StatusCode::from_u16(status.load(Ordering::SeqCst)).unwrap(),
                    "ok",
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Target {
        address,
        status,
        requests,
    }
}

fn config(source: &str) -> tocsin_config::Config {
    let source = format!("[[services]]\nid = \"api\"\n\n[[services]]\nid = \"db\"\n\n{source}");
    tocsin_config::parse(&source, "test.toml", &|_| None)
        .unwrap_or_else(|errors| panic!("invalid test config:\n{errors}"))
}

fn engine(store: Arc<dyn Store>, clock: Arc<ManualClock>) -> Arc<Engine> {
    let service = |id: &str| ServiceEntry {
        id: ServiceId::new(id),
        name: id.to_owned(),
        integration_keys: Vec::new(),
        resolve: ResolvePolicy::Auto,
        grafana: None,
    };
    let catalog = Arc::new(Catalog::new(vec![service("api"), service("db")]));
    let metrics = Arc::new(Metrics::new());
    let (ingestor, _writer) = Ingestor::start(
        Arc::clone(&store),
        Arc::clone(&catalog),
        Arc::clone(&metrics),
        IngestSettings::default(),
    )
    .expect("ingest writer");
    Arc::new(Engine::new(store, catalog, ingestor, clock, metrics))
}

fn settings() -> RunnerSettings {
    RunnerSettings {
        retry_delay: Duration::from_millis(10),
        ..RunnerSettings::default()
    }
}

fn runner(engine: &Arc<Engine>, config: &tocsin_config::Config) -> MonitorRunner {
    MonitorRunner::new(
        Arc::clone(engine),
        Arc::new(Monitors::new(&config.monitors)),
        settings(),
    )
}

fn start() -> Timestamp {
    Timestamp::from_second(1_900_000_000).unwrap()
}

async fn open_alerts(engine: &Engine) -> Vec<AlertSummary> {
    engine
        .alerts(
            &AlertFilter {
                state: Some(AlertState::Triggered),
                ..AlertFilter::default()
            },
            PageRequest::new(None, 100),
        )
        .await
        .unwrap()
        .items
}

/// Two runners on one database, each with its own engine, as two replicas: every round, both
/// try to run what is due at once, and the check runs once.
async fn two_runners_run_each_check_once(first: Arc<dyn Store>, second: Arc<dyn Store>) {
    let target = spawn_target().await;
    let config = config(&format!(
        "[[monitors]]\nid = \"web\"\nservice = \"api\"\nkind = \"http\"\nurl = \"http://{}/healthz\"\ninterval = \"10s\"\nconfirm = 2\n",
        target.address
    ));
    let clock = Arc::new(ManualClock::new(start()));
    let one = runner(&engine(first, Arc::clone(&clock)), &config);
    let two = runner(&engine(second, Arc::clone(&clock)), &config);
    one.sync().await.unwrap();
    two.sync().await.unwrap();
    let mut checked = 0;
    for round in 1..=6 {
        clock.advance(SignedDuration::from_secs(10));
        let (a, b) = tokio::join!(one.run_due_once(), two.run_due_once());
        let (a, b) = (a.unwrap(), b.unwrap());
        checked += a.checked + b.checked;
        assert_eq!(a.failed + b.failed, 0, "round {round}: {a:?} {b:?}");
        assert_eq!(checked, round, "round {round}: {a:?} {b:?}");
        assert_eq!(target.requests.load(Ordering::SeqCst), round);
    }
    // The state travels with the item: a failure counted by one runner and the next by the
    // other confirm the monitor down together.
    target.status.store(500, Ordering::SeqCst);
    clock.advance(SignedDuration::from_secs(10));
    let report = one.run_due_once().await.unwrap();
    assert_eq!(report.checked, 1);
    assert!(open_alerts(one_engine(&one)).await.is_empty());
    clock.advance(SignedDuration::from_secs(10));
    let report = two.run_due_once().await.unwrap();
    assert_eq!(report.checked, 1);
    let alerts = open_alerts(one_engine(&one)).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].dedup_key.as_str(), "monitor:web");
    assert!(
        alerts[0].summary.starts_with("web (GET http://")
            && alerts[0]
                .summary
                .contains("is down: HTTP 500, expected 2xx"),
        "{}",
        alerts[0].summary
    );
    target.status.store(200, Ordering::SeqCst);
    for _ in 0..2 {
        clock.advance(SignedDuration::from_secs(10));
        one.run_due_once().await.unwrap();
    }
    assert!(open_alerts(one_engine(&one)).await.is_empty());
}

fn one_engine(runner: &MonitorRunner) -> &Engine {
    runner.engine()
}

async fn sqlite(dir: &std::path::Path) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(dir).await.expect("store"))
}

#[tokio::test]
async fn two_runners_on_one_sqlite_file_run_each_check_once() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let first = sqlite(dir.path()).await;
    let second = sqlite(dir.path()).await;
    two_runners_run_each_check_once(first, second).await;
}

#[tokio::test]
async fn two_runners_on_one_postgres_database_run_each_check_once() {
    let Some(database) = tocsin_store_postgres::testing::TestDatabase::create().await else {
        return;
    };
    let connect = || async {
        let store: Arc<dyn Store> = Arc::new(
            tocsin_store_postgres::PostgresStore::connect(database.url())
                .await
                .expect("connect"),
        );
        store
    };
    let first = connect().await;
    let second = connect().await;
    two_runners_run_each_check_once(first, second).await;
}

#[tokio::test]
async fn a_child_of_a_down_monitor_is_recorded_on_its_incident_instead_of_paging() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let store = sqlite(dir.path()).await;
    let database = spawn_target().await;
    let api = spawn_target().await;
    let config = config(&format!(
        r#"
[[monitors]]
id = "db"
service = "db"
kind = "http"
url = "http://{}/healthz"
interval = "10s"
confirm = 1

[[monitors]]
id = "api"
service = "api"
kind = "http"
url = "http://{}/healthz"
interval = "10s"
confirm = 2
depends_on = ["db"]
"#,
        database.address, api.address
    ));
    let clock = Arc::new(ManualClock::new(start()));
    let engine = engine(store, Arc::clone(&clock));
    let runner = runner(&engine, &config);
    runner.sync().await.unwrap();
    let round = || async {
        clock.advance(SignedDuration::from_secs(10));
        runner.run_due_once().await.unwrap()
    };
    round().await;
    assert!(open_alerts(&engine).await.is_empty());

    // The database fails, and the API with it: one page, the database's.
    database.status.store(503, Ordering::SeqCst);
    api.status.store(500, Ordering::SeqCst);
    round().await;
    round().await;
    round().await;
    let alerts = open_alerts(&engine).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].dedup_key.as_str(), "monitor:db");
    let timeline = engine
        .timeline(alerts[0].incident, PageRequest::new(None, 100))
        .await
        .unwrap();
    let notes: Vec<String> = timeline
        .items
        .iter()
        .filter_map(|entry| match &entry.data {
            TimelineData::NoteAdded { .. } => Some(format!("{:?}", entry.data)),
            _ => None,
        })
        .collect();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].contains("Monitor api") && notes[0].contains("depends on db"),
        "{notes:?}"
    );

    // The database recovers; the API is still down: now it pages on its own.
    database.status.store(200, Ordering::SeqCst);
    round().await;
    round().await;
    let alerts = open_alerts(&engine).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].dedup_key.as_str(), "monitor:api");
    // Its recovery is not suppressed.
    api.status.store(200, Ordering::SeqCst);
    round().await;
    round().await;
    assert!(open_alerts(&engine).await.is_empty());
}

#[tokio::test]
async fn a_reload_adds_and_removes_monitors_and_keeps_the_state_of_the_others() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let store = sqlite(dir.path()).await;
    let kept = spawn_target().await;
    let removed = spawn_target().await;
    let monitor = |id: &str, target: &Target, confirm: u32| {
        format!(
            "[[monitors]]\nid = \"{id}\"\nservice = \"api\"\nkind = \"http\"\nurl = \"http://{}/healthz\"\ninterval = \"10s\"\nconfirm = {confirm}\n",
            target.address
        )
    };
    let before = config(&(monitor("kept", &kept, 2) + &monitor("removed", &removed, 1)));
    let clock = Arc::new(ManualClock::new(start()));
    let engine = engine(store, Arc::clone(&clock));
    let runner = runner(&engine, &before);
    kept.status.store(500, Ordering::SeqCst);
    removed.status.store(500, Ordering::SeqCst);
    runner.sync().await.unwrap();
    clock.advance(SignedDuration::from_secs(10));
    runner.run_due_once().await.unwrap();
    let alerts = open_alerts(&engine).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].dedup_key.as_str(), "monitor:removed");

    // `kept` has one failure counted; `removed` goes, `added` comes.
    let added = spawn_target().await;
    let after = config(&(monitor("kept", &kept, 2) + &monitor("added", &added, 1)));
    runner.monitors().replace(&after.monitors);
    runner.sync().await.unwrap();
    clock.advance(SignedDuration::from_secs(10));
    let report = runner.run_due_once().await.unwrap();
    assert_eq!(report.checked, 2, "{report:?}");
    let alerts = open_alerts(&engine).await;
    // The removed monitor's alert resolved; `kept` reached its second failure and alerts.
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].dedup_key.as_str(), "monitor:kept");
    let requests_before = removed.requests.load(Ordering::SeqCst);
    clock.advance(SignedDuration::from_secs(10));
    runner.run_due_once().await.unwrap();
    assert_eq!(removed.requests.load(Ordering::SeqCst), requests_before);
    assert!(added.requests.load(Ordering::SeqCst) >= 2);
}
