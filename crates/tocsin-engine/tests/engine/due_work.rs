//! The due-work runner over real SQLite stores, with a manual clock: fold logging as recurring
//! due work, a dead runner's sweep taken over, retries with backoff, parking, and stopping.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use tocsin_core::IncidentNumber;
use tocsin_engine::due::{DueError, DueHandler, DueOutcome, FOLD_LOG_SWEEP};
use tocsin_engine::{
    Clock, DueRunner, DueRunnerSettings, Engine, IngestSettings, ManualClock, Metrics,
};
use tocsin_store::due::{
    ClaimRequest, ClaimedDueItem, ClaimerId, DueKey, DueKind, NewDueItem, WhenScheduled,
};
use tocsin_store::{PageRequest, Store};
use tocsin_store_sqlite::SqliteStore;

use super::{folded, trigger};

fn settings() -> DueRunnerSettings {
    DueRunnerSettings {
        batch: 8,
        lease: Duration::from_secs(60),
        poll: Duration::from_millis(50),
        backoff_base: Duration::from_secs(5),
        backoff_max: Duration::from_secs(60),
    }
}

async fn engine_on(path: &Path, clock: Arc<ManualClock>) -> (Arc<Engine>, Arc<dyn Store>) {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_file(path).await.expect("store"));
    let engine = super::engine_with(Arc::clone(&store), clock, IngestSettings::default());
    (Arc::new(engine), store)
}

fn sweep_key() -> DueKey {
    DueKey::parse("all").expect("key")
}

fn runs_of(metrics: &Metrics, kind: &str) -> u64 {
    metrics
        .due_items_run
        .get_or_create(&vec![("kind".to_owned(), kind.to_owned())])
        .get()
}

#[tokio::test]
async fn the_fold_log_sweep_is_recurring_due_work() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let start: Timestamp = "2026-11-22T03:00:00Z".parse().expect("time");
    let clock = Arc::new(ManualClock::new(start));
    let (engine, store) = engine_on(&dir.path().join("tocsin.sqlite"), Arc::clone(&clock)).await;
    let runner = engine.due_runner(settings());
    engine
        .submit(vec![trigger("db-down", clock.now())])
        .await
        .expect("submit");
    // The incident's first escalation step is due at once; its service has no policy, so it
    // is done without paging anyone.
    assert_eq!(runner.run_due_once().await.expect("run").ran, 1);

    runner.schedule_recurring().await.expect("schedule");
    runner.schedule_recurring().await.expect("schedule again");
    let report = runner.run_due_once().await.expect("run");
    assert_eq!(report.ran, 1, "the sweep is due at once, and there is one");
    let sweep = store
        .due_item(&FOLD_LOG_SWEEP, &sweep_key())
        .await
        .expect("read")
        .expect("the sweep recurs");
    assert_eq!(sweep.due_at, start + SignedDuration::from_secs(15));
    assert_eq!((sweep.attempts, sweep.claimed_by), (0, None));

    for _ in 0..5 {
        clock.advance(SignedDuration::from_secs(10));
        engine
            .submit(vec![trigger("db-down", clock.now())])
            .await
            .expect("submit");
    }
    // 50 s in: the sweep runs, but the five folds wait for their minute.
    assert_eq!(runner.run_due_once().await.expect("run").ran, 1);
    assert!(folded(&engine, IncidentNumber(1)).await.is_empty());
    clock.advance(SignedDuration::from_secs(10));
    assert_eq!(
        runner.run_due_once().await.expect("run").ran,
        0,
        "the next sweep is due at 65 s"
    );
    clock.advance(SignedDuration::from_secs(5));
    assert_eq!(runner.run_due_once().await.expect("run").ran, 1);
    let entries = folded(&engine, IncidentNumber(1)).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].at, clock.now());
    assert_eq!(folded_events(&entries[0].data), 5);
    assert_eq!(runs_of(engine.metrics(), "fold_log.sweep"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_runners_sweep_is_taken_over_when_its_lease_ends_and_counts_each_fold_once() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let path = dir.path().join("tocsin.sqlite");
    let start: Timestamp = "2026-11-22T04:00:00Z".parse().expect("time");
    let clock = Arc::new(ManualClock::new(start));
    // Two processes on one data directory.
    let (engine_a, store_a) = engine_on(&path, Arc::clone(&clock)).await;
    let (engine_b, _store_b) = engine_on(&path, Arc::clone(&clock)).await;
    let runner_b = engine_b.due_runner(settings());
    for _ in 0..4 {
        engine_a
            .submit(vec![trigger("db-down", clock.now())])
            .await
            .expect("submit");
        clock.advance(SignedDuration::from_secs(10));
    }
    // The incident's first escalation step (its service has no policy: done at once).
    assert_eq!(runner_b.run_due_once().await.expect("run").ran, 1);
    runner_b.schedule_recurring().await.expect("schedule");
    clock.advance(SignedDuration::from_secs(30));

    // Process A claims the sweep, runs it, and dies before settling it.
    let dead = ClaimerId::parse("runner-dead").expect("claimer");
    let claimed = store_a
        .claim(&ClaimRequest {
            kinds: &[FOLD_LOG_SWEEP],
            claimer: &dead,
            now: clock.now(),
            lease_until: clock.now() + SignedDuration::from_secs(60),
            limit: 10,
        })
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(engine_a.log_due_folds().await.expect("log"), 1);
    drop(claimed);

    assert_eq!(
        runner_b.run_due_once().await.expect("run").ran,
        0,
        "the dead runner's lease holds until it ends"
    );
    clock.advance(SignedDuration::from_secs(60));
    let report = runner_b.run_due_once().await.expect("run");
    assert_eq!((report.ran, report.lost), (1, 0), "taken over");

    let entries = folded(&engine_b, IncidentNumber(1)).await;
    assert_eq!(entries.len(), 1, "the sweep ran twice, its effect once");
    assert_eq!(folded_events(&entries[0].data), 3);
    let alert = engine_b
        .alerts(
            &tocsin_store::AlertFilter::default(),
            PageRequest::default(),
        )
        .await
        .expect("alerts")
        .items
        .remove(0);
    assert_eq!(alert.count, 4, "every fold is counted by exactly one entry");
    let sweep = store_a
        .due_item(&FOLD_LOG_SWEEP, &sweep_key())
        .await
        .expect("read")
        .expect("still recurring");
    assert_eq!(sweep.due_at, clock.now() + SignedDuration::from_secs(15));
    assert_eq!(sweep.claimed_by, None);
}

/// Fails every run, counting them.
struct Flaky(AtomicUsize);

#[async_trait]
impl DueHandler for Flaky {
    fn kind(&self) -> DueKind {
        DueKind::from_static("test.flaky")
    }

    async fn run(&self, _item: &ClaimedDueItem, _now: Timestamp) -> Result<DueOutcome, DueError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Err("the mail server said 451".into())
    }

    fn max_attempts(&self) -> Option<i64> {
        Some(3)
    }
}

/// Succeeds once per item.
struct Once(AtomicUsize);

#[async_trait]
impl DueHandler for Once {
    fn kind(&self) -> DueKind {
        DueKind::from_static("test.once")
    }

    async fn run(&self, _item: &ClaimedDueItem, _now: Timestamp) -> Result<DueOutcome, DueError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(DueOutcome::Done)
    }
}

#[tokio::test]
async fn failed_items_back_off_then_park_and_unknown_kinds_are_left_alone() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let start: Timestamp = "2026-11-22T05:00:00Z".parse().expect("time");
    let clock = Arc::new(ManualClock::new(start));
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).await.expect("store"));
    let metrics = Arc::new(Metrics::new());
    let flaky = Arc::new(Flaky(AtomicUsize::new(0)));
    let once = Arc::new(Once(AtomicUsize::new(0)));
    let runner = DueRunner::new(
        Arc::clone(&store),
        Arc::clone(&clock) as Arc<dyn Clock>,
        Arc::clone(&metrics),
        settings(),
    )
    .with_handler(Arc::clone(&flaky) as Arc<dyn DueHandler>)
    .with_handler(Arc::clone(&once) as Arc<dyn DueHandler>);
    let schedule = |kind: &'static str| {
        let store = Arc::clone(&store);
        async move {
            let item = NewDueItem::new(
                DueKind::parse(kind).expect("kind"),
                DueKey::parse("k").expect("key"),
                &json!({}),
                start,
            )
            .expect("item");
            store
                .schedule(&item, WhenScheduled::Keep, start)
                .await
                .expect("schedule");
        }
    };
    schedule("test.flaky").await;
    schedule("test.once").await;
    schedule("test.from-a-newer-version").await;
    let read = |kind: &'static str| {
        let store = Arc::clone(&store);
        async move {
            store
                .due_item(
                    &DueKind::parse(kind).expect("kind"),
                    &DueKey::parse("k").expect("key"),
                )
                .await
                .expect("read")
        }
    };

    let report = runner.run_due_once().await.expect("run");
    assert_eq!((report.ran, report.failed), (1, 1));
    assert_eq!(read("test.once").await, None, "a done item goes");
    let row = read("test.flaky").await.expect("kept");
    assert_eq!(row.attempts, 1);
    assert_eq!(row.due_at, start + SignedDuration::from_secs(5));
    assert_eq!(row.last_error.as_deref(), Some("the mail server said 451"));

    assert_eq!(
        runner.run_due_once().await.expect("run").failed,
        0,
        "backs off"
    );
    clock.advance(SignedDuration::from_secs(5));
    assert_eq!(runner.run_due_once().await.expect("run").failed, 1);
    let row = read("test.flaky").await.expect("kept");
    assert_eq!(
        row.due_at,
        clock.now() + SignedDuration::from_secs(10),
        "doubled"
    );
    clock.advance(SignedDuration::from_secs(10));
    assert_eq!(runner.run_due_once().await.expect("run").failed, 1);
    let row = read("test.flaky").await.expect("a parked item is kept");
    assert_eq!(row.attempts, 3);
    assert_eq!(row.parked_at, Some(clock.now()));
    clock.advance(SignedDuration::from_hours(1));
    assert_eq!(
        runner.run_due_once().await.expect("run"),
        Default::default(),
        "parked items and unknown kinds are not run"
    );
    assert_eq!(flaky.0.load(Ordering::SeqCst), 3);
    assert_eq!(once.0.load(Ordering::SeqCst), 1);
    let unknown = read("test.from-a-newer-version")
        .await
        .expect("never deleted");
    assert_eq!((unknown.attempts, unknown.claims), (0, 0));
    assert_eq!(
        metrics
            .due_items_failed
            .get_or_create(&vec![("kind".to_owned(), "test.flaky".to_owned())])
            .get(),
        3
    );
}

#[tokio::test]
async fn a_running_runner_schedules_the_sweep_and_stops_when_told() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let clock = Arc::new(ManualClock::new(Timestamp::UNIX_EPOCH));
    let (engine, store) = engine_on(&dir.path().join("tocsin.sqlite"), Arc::clone(&clock)).await;
    let runner = engine.due_runner(settings());
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn({
        let stop = stop.clone();
        async move { runner.run_until(stop).await }
    });
    let mut sweep = None;
    for _ in 0..100 {
        sweep = store
            .due_item(&FOLD_LOG_SWEEP, &sweep_key())
            .await
            .expect("read");
        if sweep
            .as_ref()
            .is_some_and(|sweep| sweep.due_at > Timestamp::UNIX_EPOCH)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sweep = sweep.expect("the runner scheduled the sweep");
    assert_eq!(
        sweep.due_at,
        Timestamp::UNIX_EPOCH + SignedDuration::from_secs(15),
        "and ran it once"
    );
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("stops within 5 s")
        .expect("runner task");
}

/// How many folds an `alert.folded` entry counts.
fn folded_events(data: &tocsin_core::TimelineData) -> i64 {
    match data {
        tocsin_core::TimelineData::AlertFolded { events, .. } => *events,
        other => panic!("not an alert.folded entry: {other:?}"),
    }
}
