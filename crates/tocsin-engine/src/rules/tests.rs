use std::sync::atomic::{AtomicBool, Ordering};

use tocsin_store_sqlite::SqliteStore;

use super::*;

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + second).expect("timestamp")
}

fn event(service: &str, severity: Severity, source: &str, second: i64) -> Event {
    Event {
        service: ServiceId::new(service),
        integration: Integration::EventsV2,
        action: EventAction::Trigger,
        dedup_key: DedupKey::parse("k").unwrap(),
        severity,
        summary: "s".to_owned(),
        source: source.to_owned(),
        occurred_at: None,
        received_at: at(second),
        details: json!({"component": "postgres"}),
    }
}

fn rate(above: u64, baseline: Option<Baseline>) -> RuleDefinition {
    RuleDefinition {
        id: "storm".to_owned(),
        service: ServiceId::new("api"),
        condition: RuleCondition::Rate { above, baseline },
        matches: EventMatch {
            severity: Some(Severity::Error),
            ..EventMatch::default()
        },
        window: Duration::from_secs(60),
    }
}

fn absence() -> RuleDefinition {
    RuleDefinition {
        id: "quiet".to_owned(),
        service: ServiceId::new("api"),
        condition: RuleCondition::Absence,
        matches: EventMatch {
            source: Some("log-shipper".to_owned()),
            component: Some("postgres".to_owned()),
            ..EventMatch::default()
        },
        window: Duration::from_secs(300),
    }
}

/// Records the events sent; fails while `failing` is set.
#[derive(Clone, Default)]
struct Sink {
    sent: Arc<Mutex<Vec<Event>>>,
    failing: Arc<AtomicBool>,
}

impl RuleAlertSink for Sink {
    async fn record(&self, event: Event) -> Result<(), String> {
        if self.failing.load(Ordering::SeqCst) {
            return Err("the pipeline is down".to_owned());
        }
        self.sent.lock().unwrap().push(event);
        Ok(())
    }
}

/// One process: its rule set, and its evaluator over a store.
struct Process {
    rules: Arc<RuleSet>,
    evaluator: RuleEvaluator<Sink>,
    sink: Sink,
}

impl Process {
    fn new(store: Arc<dyn Store>, definitions: Vec<RuleDefinition>) -> Process {
        let rules = Arc::new(RuleSet::new(definitions));
        let sink = Sink::default();
        Process {
            evaluator: RuleEvaluator::new(Arc::clone(&rules), store, sink.clone()),
            rules,
            sink,
        }
    }

    /// Evaluates at `second`, returning (firing, summary) of each change sent.
    async fn tick(&self, second: i64) -> Vec<(bool, String)> {
        self.evaluator
            .run_at(at(second))
            .await
            .expect("evaluate")
            .into_iter()
            .map(|change| (change.firing, change.event.summary))
            .collect()
    }
}

async fn sqlite(dir: &tempfile::TempDir) -> Arc<SqliteStore> {
    Arc::new(SqliteStore::open(dir.path()).await.expect("open"))
}

async fn process(dir: &tempfile::TempDir, definitions: Vec<RuleDefinition>) -> Process {
    Process::new(sqlite(dir).await, definitions)
}

#[tokio::test]
async fn a_rate_rule_fires_above_n_in_the_window_and_resolves_when_it_slides_out() {
    let dir = tempfile::tempdir().unwrap();
    let one = process(&dir, vec![rate(3, None)]).await;
    // The first evaluation records the rule's state (a resolve clears what an earlier
    // process may have left open).
    assert_eq!(
        one.tick(0).await,
        vec![(false, "Rule storm: event rate back to normal".to_owned())]
    );
    let errors: Vec<_> = (0..4)
        .map(|n| event("api", Severity::Error, "web", 10 + n))
        .collect();
    // Other services, severities and rule events do not count.
    let mut others = vec![
        event("db", Severity::Error, "web", 10),
        event("api", Severity::Warning, "web", 10),
    ];
    let mut own = event("api", Severity::Error, "web", 10);
    own.integration = Integration::Rule;
    others.push(own);
    one.rules.observe(&others);
    one.rules.observe(&errors[..3]);
    assert!(one.tick(20).await.is_empty(), "3 is not more than 3");
    one.rules.observe(&errors[3..]);
    let fired = one.tick(20).await;
    assert_eq!(fired.len(), 1);
    assert!(fired[0].0);
    assert!(
        fired[0].1.contains("4 matching events in 1m"),
        "{}",
        fired[0].1
    );
    assert!(one.tick(30).await.is_empty(), "fires once");
    // The window at t is (t - 60 s, t]: the event of second 10 leaves it at 70.
    assert!(one.tick(69).await.is_empty());
    let resolved = one.tick(70).await;
    assert_eq!(resolved.len(), 1);
    assert!(!resolved[0].0);
    assert_eq!(one.sink.sent.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_change_the_pipeline_did_not_take_is_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let one = process(&dir, vec![rate(0, None)]).await;
    one.tick(0).await;
    one.rules
        .observe(&[event("api", Severity::Error, "web", 1)]);
    one.sink.failing.store(true, Ordering::SeqCst);
    assert!(one.tick(2).await.is_empty(), "not sent");
    one.sink.failing.store(false, Ordering::SeqCst);
    assert_eq!(one.tick(3).await.len(), 1, "sent on the next evaluation");
    assert!(one.tick(4).await.is_empty());
}

#[tokio::test]
async fn a_baseline_rule_fires_only_above_k_times_the_trailing_average() {
    let dir = tempfile::tempdir().unwrap();
    let baseline = Baseline {
        factor: 3,
        window: Duration::from_secs(600),
    };
    let one = process(&dir, vec![rate(5, Some(baseline))]).await;
    one.tick(0).await;
    // Ten windows of 10 events each: busy, but normal for this service.
    for window in 0..10 {
        let events: Vec<_> = (0..10)
            .map(|n| event("api", Severity::Error, "web", window * 60 + n))
            .collect();
        one.rules.observe(&events);
        assert!(
            one.tick(window * 60 + 30).await.is_empty(),
            "10 a minute is the baseline (window {window})"
        );
    }
    // 25 in the next minute: above 5, but not above 3 x 10.
    let events: Vec<_> = (0..25)
        .map(|n| event("api", Severity::Error, "web", 600 + n))
        .collect();
    one.rules.observe(&events);
    assert!(one.tick(630).await.is_empty());
    // 40 in the following minute: above 3 x the average.
    let events: Vec<_> = (0..40)
        .map(|n| event("api", Severity::Error, "web", 660 + n))
        .collect();
    one.rules.observe(&events);
    let fired = one.tick(700).await;
    assert_eq!(fired.len(), 1);
    assert!(fired[0].0);
}

#[tokio::test]
async fn an_absence_rule_fires_when_the_source_goes_quiet_and_resolves_when_it_speaks() {
    let dir = tempfile::tempdir().unwrap();
    let one = process(&dir, vec![absence()]).await;
    assert_eq!(one.tick(0).await.len(), 1, "first state recorded");
    one.rules
        .observe(&[event("api", Severity::Info, "log-shipper", 100)]);
    // A non-matching source does not keep it alive.
    one.rules
        .observe(&[event("api", Severity::Info, "other", 390)]);
    assert!(one.tick(399).await.is_empty());
    let fired = one.tick(400).await;
    assert_eq!(fired.len(), 1);
    assert!(fired[0].0);
    assert!(
        fired[0].1.contains("no matching event for 5m"),
        "{}",
        fired[0].1
    );
    one.rules
        .observe(&[event("api", Severity::Info, "log-shipper", 401)]);
    let resolved = one.tick(402).await;
    assert_eq!(
        resolved,
        vec![(false, "Rule quiet: matching events arrive again".to_owned())]
    );
}

#[tokio::test]
async fn an_absence_rule_counts_from_when_it_was_first_watched() {
    let dir = tempfile::tempdir().unwrap();
    let one = process(&dir, vec![absence()]).await;
    one.tick(1_000).await;
    assert!(one.tick(1_299).await.is_empty());
    let fired = one.tick(1_300).await;
    assert!(fired[0].0);
    assert!(fired[0].1.contains("none since"), "{}", fired[0].1);
}

#[tokio::test]
async fn counts_and_alert_state_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir).await;
    let first = Process::new(store.clone(), vec![rate(3, None), absence()]);
    assert_eq!(first.tick(0).await.len(), 2, "first states recorded");
    first.rules.observe(
        &(0..3)
            .map(|n| event("api", Severity::Error, "web", 10 + n))
            .collect::<Vec<_>>(),
    );
    first
        .rules
        .observe(&[event("api", Severity::Info, "log-shipper", 12)]);
    assert!(first.tick(15).await.is_empty(), "3 is not more than 3");
    // Counted but not evaluated yet: the runner writes them as the process stops.
    first
        .rules
        .observe(&[event("api", Severity::Error, "web", 16)]);
    RuleRunner::new(
        Arc::clone(&first.rules),
        store.clone(),
        Arc::new(crate::SystemClock),
    )
    .run_once()
    .await;
    store.close().await;
    drop(first);

    let second = process(&dir, vec![rate(3, None), absence()]).await;
    second
        .rules
        .observe(&[event("api", Severity::Error, "web", 20)]);
    let fired = second.tick(21).await;
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert!(fired[0].0);
    assert!(
        fired[0].1.contains("5 matching events in 1m"),
        "the counts of before the restart count: {}",
        fired[0].1
    );
    // The absence rule was not reported again (it had been resolved), and it counts from
    // the last matching event before the restart.
    assert!(second
        .tick(311)
        .await
        .iter()
        .all(|(_, s)| !s.contains("quiet")));
    let quiet = second.tick(312).await;
    assert_eq!(quiet.len(), 1, "{quiet:?}");
    assert!(quiet[0].1.contains("no matching event for 5m"), "{quiet:?}");
}

/// Two processes on one store, each ingesting some of the events: the rule counts them all and
/// fires once.
async fn two_processes_fire_once(one: Arc<dyn Store>, two: Arc<dyn Store>) {
    let first = Process::new(one, vec![rate(3, None)]);
    let second = Process::new(two, vec![rate(3, None)]);
    assert_eq!(first.tick(0).await.len(), 1);
    assert!(
        second.tick(0).await.is_empty(),
        "recorded by the other already"
    );
    first.rules.observe(&[
        event("api", Severity::Error, "web", 1),
        event("api", Severity::Error, "web", 2),
    ]);
    second.rules.observe(&[
        event("api", Severity::Error, "web", 3),
        event("api", Severity::Error, "web", 4),
    ]);
    // Each writes its counts; whichever evaluates sees all four.
    RuleRunner::new(
        Arc::clone(&second.rules),
        Arc::clone(&second.evaluator.store),
        Arc::new(crate::SystemClock),
    )
    .run_once()
    .await;
    let fired = first.tick(5).await;
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert!(fired[0].1.contains("4 matching events"), "{fired:?}");
    assert!(second.tick(6).await.is_empty(), "fired once");
    assert!(first.tick(7).await.is_empty(), "fired once");
    let triggers = |sink: &Sink| {
        sink.sent
            .lock()
            .unwrap()
            .iter()
            .filter(|event| event.action == EventAction::Trigger)
            .count()
    };
    assert_eq!(triggers(&first.sink) + triggers(&second.sink), 1);
}

#[tokio::test]
async fn two_processes_on_one_sqlite_file_fire_a_rule_once() {
    let dir = tempfile::tempdir().unwrap();
    two_processes_fire_once(sqlite(&dir).await, sqlite(&dir).await).await;
}

#[tokio::test]
async fn two_processes_on_one_postgres_fire_a_rule_once() {
    let Some(database) = tocsin_store_postgres::testing::TestDatabase::create().await else {
        return;
    };
    let open = || async {
        Arc::new(
            tocsin_store_postgres::PostgresStore::connect(database.url())
                .await
                .expect("connect"),
        )
    };
    two_processes_fire_once(open().await, open().await).await;
}

#[tokio::test]
async fn replacing_keeps_unchanged_rules_and_restarts_changed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let one = process(&dir, vec![rate(0, None), absence()]).await;
    one.tick(0).await;
    one.rules
        .observe(&[event("api", Severity::Error, "web", 1)]);
    assert_eq!(one.tick(2).await.len(), 1, "storm fires");
    let mut changed = absence();
    changed.window = Duration::from_secs(60);
    one.rules.replace(vec![rate(0, None), changed]);
    assert_eq!(one.rules.len(), 2);
    let changes = one.tick(4).await;
    // The unchanged rate rule keeps its state; the changed absence rule reports afresh.
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert!(!changes[0].0);
}

#[tokio::test]
async fn memory_is_bounded_whatever_the_rate_while_the_store_is_away() {
    let mut definition = rate(10, None);
    definition.window = Duration::from_secs(1);
    let rules = RuleSet::new(vec![definition]);
    for second in 0..(MAX_PENDING_COUNTS as i64 + 10) {
        rules.observe(&[event("api", Severity::Error, "web", second)]);
    }
    let pending = rules.pending();
    assert!(pending.counts.len() <= MAX_PENDING_COUNTS);
    // The newest counts are the ones kept.
    let newest = MAX_PENDING_COUNTS as i64 + 9;
    let bucket = at(newest).as_microsecond().div_euclid(1_000_000 / 60);
    assert!(pending.counts.keys().any(|(_, _, slot)| *slot == bucket));
}
