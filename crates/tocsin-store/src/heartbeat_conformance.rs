//! Conformance cases of heartbeat monitors (see `conformance_suite!`).

use std::sync::Arc;
use std::time::Duration;

use tocsin_core::heartbeat::{
    Expectation, HeartbeatInput, HeartbeatSchedule, HeartbeatSignal, HeartbeatStatus, Ping,
    PingKind,
};
use tocsin_core::{AlertState, IncidentState, ResolvePolicy, ServiceId, Timestamp};

use crate::due::DueKey;
use crate::heartbeat::HEARTBEAT_DEADLINE;
use crate::{AlertFilter, Inbound, IncidentFilter, PageRequest, Store, StoreError};

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + second).expect("valid timestamp")
}

fn auto(_: &ServiceId) -> ResolvePolicy {
    ResolvePolicy::Auto
}

/// A ping at least every minute, ten seconds of grace, two starts without a success allowed.
fn expectation() -> Expectation {
    Expectation {
        schedule: HeartbeatSchedule::Period(Duration::from_secs(60)),
        grace: Duration::from_secs(10),
        max_starts_without_success: Some(2),
    }
}

fn signal(monitor: &str, signal: HeartbeatSignal, second: i64) -> Inbound {
    Inbound::Heartbeat(HeartbeatInput {
        monitor: monitor.to_owned(),
        service: ServiceId::new("backups"),
        expectation: expectation(),
        signal,
        now: at(second),
    })
}

fn ping(monitor: &str, kind: PingKind, rid: Option<&str>, body: &str, second: i64) -> Inbound {
    signal(
        monitor,
        HeartbeatSignal::Ping(Ping {
            kind,
            rid: rid.map(str::to_owned),
            exit_code: None,
            body: body.to_owned(),
            remote: Some("192.0.2.7".to_owned()),
            method: "POST".to_owned(),
        }),
        second,
    )
}

async fn deadline_of(store: &dyn Store, monitor: &str) -> Option<Timestamp> {
    store
        .due_item(&HEARTBEAT_DEADLINE, &DueKey::parse(monitor).expect("key"))
        .await
        .expect("due item")
        .map(|item| item.due_at)
}

async fn state_of(store: &dyn Store, monitor: &str) -> tocsin_core::heartbeat::HeartbeatState {
    let mut states = store
        .heartbeat_states(&[monitor.to_owned()])
        .await
        .expect("states");
    assert_eq!(states.len(), 1, "{monitor} has a state");
    states.remove(0).state
}

pub async fn heartbeat_pings_are_stored_and_move_the_deadline(store: Arc<dyn Store>) {
    let rid = "5f1c2a3e-8d0f-4d6e-9b2a-0c7d1e2f3a4b";
    let report = store
        .ingest(&[signal("nightly", HeartbeatSignal::Watch, 0)], &auto)
        .await
        .expect("watch");
    assert_eq!(report.heartbeat_signals, 1);
    assert_eq!(
        state_of(store.as_ref(), "nightly").await.status,
        HeartbeatStatus::New
    );
    assert_eq!(deadline_of(store.as_ref(), "nightly").await, Some(at(70)));

    store
        .ingest(
            &[ping("nightly", PingKind::Success, None, "all good", 5)],
            &auto,
        )
        .await
        .expect("ping");
    let state = state_of(store.as_ref(), "nightly").await;
    assert_eq!(state.status, HeartbeatStatus::Up);
    assert_eq!(state.last_success_at, Some(at(5)));
    assert_eq!(state.deadline, Some(at(75)));
    assert_eq!(
        state.last_ping.as_ref().map(|ping| ping.body.as_str()),
        Some("all good")
    );
    // A success that moves the deadline later leaves the item earlier: it comes due first,
    // finds the monitor on time and moves itself to the state's deadline.
    assert_eq!(deadline_of(store.as_ref(), "nightly").await, Some(at(70)));
    store
        .ingest(&[signal("nightly", HeartbeatSignal::Deadline, 70)], &auto)
        .await
        .expect("early deadline");
    assert_eq!(
        state_of(store.as_ref(), "nightly").await.status,
        HeartbeatStatus::Up
    );
    assert_eq!(deadline_of(store.as_ref(), "nightly").await, Some(at(75)));

    // A start and its success in one batch: applied in order, the run's duration measured.
    store
        .ingest(
            &[
                ping("nightly", PingKind::Start, Some(rid), "", 20),
                ping("nightly", PingKind::Success, Some(rid), "done", 32),
                ping("other", PingKind::Log, None, "unrelated", 32),
            ],
            &auto,
        )
        .await
        .expect("run");
    let pings = store
        .pings("nightly", PageRequest::first(2))
        .await
        .expect("pings");
    assert_eq!(pings.items.len(), 2);
    assert_eq!(pings.items[0].kind, PingKind::Success);
    assert_eq!(pings.items[0].rid.as_deref(), Some(rid));
    assert_eq!(pings.items[0].duration, Some(Duration::from_secs(12)));
    assert_eq!(pings.items[0].body, "done");
    assert_eq!(pings.items[0].remote.as_deref(), Some("192.0.2.7"));
    assert_eq!(pings.items[0].method, "POST");
    assert_eq!(pings.items[1].kind, PingKind::Start);
    let rest = store
        .pings("nightly", PageRequest::new(pings.next, 2))
        .await
        .expect("next page");
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.items[0].body, "all good");
    assert_eq!(rest.next, None);
    // Within the batch the start brought the deadline to 30 (its grace) and the success moved
    // it on to 102: later than before, so the item stays at 75 until it comes due.
    assert_eq!(
        state_of(store.as_ref(), "nightly").await.deadline,
        Some(at(102))
    );
    assert_eq!(deadline_of(store.as_ref(), "nightly").await, Some(at(75)));
    store
        .ingest(&[signal("nightly", HeartbeatSignal::Deadline, 75)], &auto)
        .await
        .expect("early deadline");
    assert_eq!(deadline_of(store.as_ref(), "nightly").await, Some(at(102)));
    // A start on its own brings the deadline earlier (40 + 10 s of grace), and the item with it.
    store
        .ingest(&[ping("nightly", PingKind::Start, None, "", 40)], &auto)
        .await
        .expect("start");
    assert_eq!(deadline_of(store.as_ref(), "nightly").await, Some(at(50)));
    store
        .ingest(&[ping("nightly", PingKind::Success, None, "", 45)], &auto)
        .await
        .expect("success");
    assert_eq!(deadline_of(store.as_ref(), "nightly").await, Some(at(50)));
    assert_eq!(
        state_of(store.as_ref(), "nightly").await.deadline,
        Some(at(115))
    );
    // Another monitor's pings are its own.
    let other = store
        .pings("other", PageRequest::default())
        .await
        .expect("other");
    assert_eq!(other.items.len(), 1);
    assert_eq!(other.items[0].kind, PingKind::Log);
    let states = store
        .heartbeat_states(&["nightly".to_owned(), "other".to_owned(), "none".to_owned()])
        .await
        .expect("states");
    assert_eq!(states.len(), 2);
    // No alert for any of it.
    let incidents = store
        .incidents(&IncidentFilter::default(), PageRequest::default())
        .await
        .expect("incidents");
    assert!(incidents.items.is_empty());
}

pub async fn missed_heartbeat_deadline_opens_an_incident_and_a_success_resolves_it(
    store: Arc<dyn Store>,
) {
    store
        .ingest(
            &[ping("nightly", PingKind::Success, None, "night 1 ok", 0)],
            &auto,
        )
        .await
        .expect("ping");
    // Early: nothing.
    store
        .ingest(&[signal("nightly", HeartbeatSignal::Deadline, 69)], &auto)
        .await
        .expect("early deadline");
    assert_eq!(
        state_of(store.as_ref(), "nightly").await.status,
        HeartbeatStatus::Up
    );
    let report = store
        .ingest(&[signal("nightly", HeartbeatSignal::Deadline, 70)], &auto)
        .await
        .expect("deadline");
    assert_eq!(report.incidents_opened, 1);
    // Run twice (a runner died before settling): nothing more.
    let again = store
        .ingest(&[signal("nightly", HeartbeatSignal::Deadline, 71)], &auto)
        .await
        .expect("deadline again");
    assert_eq!(again.events, 0);
    let state = state_of(store.as_ref(), "nightly").await;
    assert_eq!(state.status, HeartbeatStatus::Late);
    assert_eq!(state.deadline, None);
    let alerts = store
        .alerts(&AlertFilter::default(), PageRequest::default())
        .await
        .expect("alerts");
    assert_eq!(alerts.items.len(), 1);
    let alert = &alerts.items[0];
    assert_eq!(alert.dedup_key.as_str(), "heartbeat:nightly");
    assert_eq!(alert.service.as_str(), "backups");
    assert!(alert.summary.contains("late"), "{}", alert.summary);
    let details = store.alert(alert.id).await.expect("alert").details;
    assert_eq!(details["what"], "late");
    assert_eq!(details["last_ping"]["log"], "night 1 ok");

    let report = store
        .ingest(&[ping("nightly", PingKind::Success, None, "", 90)], &auto)
        .await
        .expect("recovery");
    assert_eq!(report.incidents_resolved, 1);
    let alert = store.alert(alert.id).await.expect("alert").alert;
    assert_eq!(alert.state, AlertState::Resolved);
    assert_eq!(deadline_of(store.as_ref(), "nightly").await, Some(at(160)));

    // A failure is down at once; crash loops page on a key of their own.
    let report = store
        .ingest(
            &[ping("nightly", PingKind::Fail, None, "exit 1", 100)],
            &auto,
        )
        .await
        .expect("failure");
    assert_eq!(report.incidents_opened, 1);
    store
        .ingest(
            &[
                ping("nightly", PingKind::Start, None, "", 110),
                ping("nightly", PingKind::Start, None, "", 111),
                ping("nightly", PingKind::Start, None, "", 112),
            ],
            &auto,
        )
        .await
        .expect("starts");
    let open = store
        .incidents(
            &IncidentFilter {
                states: vec![IncidentState::Triggered],
                ..IncidentFilter::default()
            },
            PageRequest::default(),
        )
        .await
        .expect("open incidents");
    let mut keys: Vec<_> = open
        .items
        .iter()
        .map(|incident| incident.dedup_key.to_string())
        .collect();
    keys.sort();
    assert_eq!(keys, ["heartbeat:nightly", "heartbeat:nightly:crash-loop"]);
    let report = store
        .ingest(&[ping("nightly", PingKind::Success, None, "", 120)], &auto)
        .await
        .expect("success");
    assert_eq!(report.incidents_resolved, 2);
}

pub async fn heartbeat_text_with_nul_is_refused(store: Arc<dyn Store>) {
    let error = store
        .ingest(&[ping("nightly", PingKind::Log, None, "a\0b", 0)], &auto)
        .await
        .expect_err("NUL refused");
    assert!(matches!(error, StoreError::Invalid(_)), "{error:?}");
    assert!(store
        .heartbeat_states(&["nightly".to_owned()])
        .await
        .expect("states")
        .is_empty());
}

pub async fn old_pings_are_pruned_per_monitor(store: Arc<dyn Store>) {
    let batch: Vec<Inbound> = (0..10)
        .map(|n| ping("nightly", PingKind::Log, None, &format!("log {n}"), n))
        .chain([ping("other", PingKind::Log, None, "keep me", 0)])
        .collect();
    store.ingest(&batch, &auto).await.expect("pings");
    assert_eq!(
        store.prune_pings("nightly", 20, 100).await.expect("prune"),
        0
    );
    assert_eq!(store.prune_pings("nightly", 4, 3).await.expect("prune"), 3);
    assert_eq!(
        store.prune_pings("nightly", 4, 100).await.expect("prune"),
        3
    );
    assert_eq!(
        store.prune_pings("nightly", 4, 100).await.expect("prune"),
        0
    );
    let kept = store
        .pings("nightly", PageRequest::default())
        .await
        .expect("pings");
    let bodies: Vec<&str> = kept.items.iter().map(|ping| ping.body.as_str()).collect();
    assert_eq!(bodies, ["log 9", "log 8", "log 7", "log 6"]);
    let other = store
        .pings("other", PageRequest::default())
        .await
        .expect("other");
    assert_eq!(other.items.len(), 1);
}
