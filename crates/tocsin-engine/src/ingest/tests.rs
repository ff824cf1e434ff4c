//! The writer and the queue against a fake store whose commits can be slow or fail.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};

use tocsin_core::{DedupKey, Event, EventAction, Integration, Severity, Timestamp};

use super::*;

/// What the fake does with each ingest call, in order; once the script is used up, commits
/// succeed at once.
#[derive(Clone, Copy)]
enum Step {
    Commit { after: Duration },
    Fail { after: Duration },
}

#[derive(Default)]
struct FakeStore {
    script: Mutex<VecDeque<Step>>,
    /// Events in committed batches.
    committed: AtomicUsize,
    ingest_calls: AtomicUsize,
    count_calls: AtomicUsize,
}

impl FakeStore {
    fn scripted(steps: impl IntoIterator<Item = Step>) -> Arc<Self> {
        Arc::new(FakeStore {
            script: Mutex::new(steps.into_iter().collect()),
            ..FakeStore::default()
        })
    }
}

impl IngestTarget for FakeStore {
    async fn ingest<'a>(
        &'a self,
        batch: &'a [Inbound],
        _resolve_policy: ResolvePolicyOf<'a>,
    ) -> Result<IngestReport, StoreError> {
        self.ingest_calls.fetch_add(1, Ordering::SeqCst);
        let step = self.script.lock().unwrap().pop_front();
        match step {
            Some(Step::Fail { after }) => {
                tokio::time::sleep(after).await;
                Err(StoreError::Database("injected failure".into()))
            }
            Some(Step::Commit { after }) => {
                tokio::time::sleep(after).await;
                self.committed.fetch_add(batch.len(), Ordering::SeqCst);
                Ok(report_of(batch))
            }
            None => {
                self.committed.fetch_add(batch.len(), Ordering::SeqCst);
                Ok(report_of(batch))
            }
        }
    }

    async fn counts(&self) -> Result<Counts, StoreError> {
        self.count_calls.fetch_add(1, Ordering::SeqCst);
        Ok(Counts {
            open_incidents: 7,
            open_alerts: 9,
        })
    }
}

/// Every trigger opens an alert and an incident, every resolve closes them.
fn report_of(batch: &[Inbound]) -> IngestReport {
    let triggers = batch
        .iter()
        .filter(
            |item| matches!(item, Inbound::Alert(event) if event.action == EventAction::Trigger),
        )
        .count();
    let resolves = batch
        .iter()
        .filter(
            |item| matches!(item, Inbound::Alert(event) if event.action == EventAction::Resolve),
        )
        .count();
    IngestReport {
        events: batch.len(),
        alerts_opened: triggers,
        incidents_opened: triggers,
        alerts_resolved: resolves,
        incidents_resolved: resolves,
        ..IngestReport::default()
    }
}

fn event(service: &str, key: &str, action: EventAction) -> Inbound {
    let at: Timestamp = "2026-11-22T02:35:00Z".parse().unwrap();
    Inbound::Alert(Event {
        service: ServiceId::new(service),
        integration: Integration::EventsV2,
        action,
        dedup_key: DedupKey::parse(key).unwrap(),
        severity: Severity::Error,
        summary: "disk full".to_owned(),
        source: "probe".to_owned(),
        occurred_at: None,
        received_at: at,
        details: serde_json::json!({}),
    })
}

fn triggers(service: &str, count: usize) -> Vec<Inbound> {
    (0..count)
        .map(|n| event(service, &format!("key-{n}"), EventAction::Trigger))
        .collect()
}

fn start(store: &Arc<FakeStore>, capacity: usize) -> (Ingestor, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let (ingestor, _writer) = Ingestor::start_with(
        Arc::clone(store),
        Arc::new(Catalog::default()),
        Arc::clone(&metrics),
        IngestSettings {
            queue_capacity: capacity,
            max_batch: 2_048,
        },
    )
    .unwrap();
    (ingestor, metrics)
}

#[tokio::test]
async fn a_slow_commit_is_waited_for_and_answered_ok() {
    let store = FakeStore::scripted([Step::Commit {
        after: Duration::from_millis(400),
    }]);
    let (ingestor, _) = start(&store, 100);
    let started = Instant::now();
    ingestor.submit(triggers("api", 3)).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(store.committed.load(Ordering::SeqCst), 3);
    assert_eq!(ingestor.queue_depth(), 0);
}

#[tokio::test]
async fn an_error_answer_means_nothing_was_stored_so_a_retry_counts_once() {
    // Every attempt of the first submission fails (the writer tries three times).
    let failure = Step::Fail {
        after: Duration::from_millis(100),
    };
    let store = FakeStore::scripted([failure, failure, failure]);
    let (ingestor, _) = start(&store, 100);
    let error = ingestor.submit(triggers("api", 1)).await.unwrap_err();
    assert!(matches!(error, SubmitError::Store(_)), "{error:?}");
    assert_eq!(store.committed.load(Ordering::SeqCst), 0, "nothing stored");
    assert_eq!(store.ingest_calls.load(Ordering::SeqCst), 3);
    // The sender retries after the error answer: stored exactly once.
    ingestor.submit(triggers("api", 1)).await.unwrap();
    assert_eq!(store.committed.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_commit_that_fails_then_succeeds_on_retry_is_answered_ok_and_stored_once() {
    let store = FakeStore::scripted([Step::Fail {
        after: Duration::from_millis(10),
    }]);
    let (ingestor, _) = start(&store, 100);
    ingestor.submit(triggers("api", 2)).await.unwrap();
    assert_eq!(store.committed.load(Ordering::SeqCst), 2);
    assert_eq!(store.ingest_calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn gauges_start_from_one_count_and_follow_each_commit() {
    let store = FakeStore::scripted([]);
    let (ingestor, metrics) = start(&store, 100);
    ingestor.submit(triggers("api", 3)).await.unwrap();
    assert_eq!(store.count_calls.load(Ordering::SeqCst), 1);
    assert_eq!(metrics.open_incidents.get(), 7 + 3);
    assert_eq!(metrics.open_alerts.get(), 9 + 3);
    ingestor
        .submit(vec![event("api", "key-0", EventAction::Resolve)])
        .await
        .unwrap();
    assert_eq!(metrics.open_incidents.get(), 7 + 2);
    assert_eq!(metrics.open_alerts.get(), 9 + 2);
    metrics.record_resolved_incident(2);
    assert_eq!(metrics.open_incidents.get(), 7 + 1);
    assert_eq!(metrics.open_alerts.get(), 9);
    assert_eq!(
        store.count_calls.load(Ordering::SeqCst),
        1,
        "no further counts"
    );
}

fn alerts_of(service: &str, count: usize) -> Vec<Inbound> {
    triggers(service, count)
}

#[test]
fn a_service_alone_may_hold_half_the_queue_and_always_leaves_room_for_another() {
    let queue = Arc::new(FairQueue::new(100));
    let first = queue.reserve(&alerts_of("noisy", 40)).unwrap();
    let second = queue.reserve(&alerts_of("noisy", 10)).unwrap();
    assert_eq!(
        queue.reserve(&alerts_of("noisy", 1)).err(),
        Some(SubmitError::QueueFull),
        "a service holding half the queue gets no more"
    );
    let quiet = queue.reserve(&alerts_of("quiet", 5)).unwrap();
    assert_eq!(queue.depth(), 55);
    drop((first, second, quiet));
    assert_eq!(queue.depth(), 0);
    assert!(queue.lock().by_service.is_empty());
}

#[test]
fn with_two_services_waiting_each_holds_at_most_a_third() {
    let queue = Arc::new(FairQueue::new(90));
    let _a = queue.reserve(&alerts_of("a", 20)).unwrap();
    let _b = queue.reserve(&alerts_of("b", 20)).unwrap();
    let _a2 = queue.reserve(&alerts_of("a", 10)).unwrap();
    assert_eq!(
        queue.reserve(&alerts_of("a", 1)).err(),
        Some(SubmitError::QueueFull)
    );
    let _c = queue.reserve(&alerts_of("c", 30)).unwrap();
    assert_eq!(queue.depth(), 80);
}

#[test]
fn a_service_with_nothing_waiting_may_send_a_request_as_large_as_the_room_left() {
    let queue = Arc::new(FairQueue::new(100));
    let big = queue.reserve(&alerts_of("batch", 90)).unwrap();
    assert_eq!(
        queue.reserve(&alerts_of("other", 11)).err(),
        Some(SubmitError::QueueFull),
        "the queue as a whole is still bounded"
    );
    let _other = queue.reserve(&alerts_of("other", 10)).unwrap();
    drop(big);
    assert_eq!(queue.depth(), 10);
}
