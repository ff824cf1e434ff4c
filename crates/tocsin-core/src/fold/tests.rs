use std::collections::HashMap;

use proptest::prelude::*;

use super::*;
use crate::{Integration, TimelineKind};

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + seconds).expect("valid timestamp")
}

fn event(action: EventAction, key: &str, seconds: i64) -> Event {
    Event {
        service: ServiceId::new("api"),
        integration: Integration::EventsV2,
        action,
        dedup_key: DedupKey::parse(key).expect("valid key"),
        severity: Severity::Critical,
        summary: format!("{action} {key}"),
        source: "host-1".to_owned(),
        occurred_at: None,
        received_at: at(seconds),
        details: serde_json::json!({"n": seconds}),
    }
}

fn auto(_: &ServiceId) -> ResolvePolicy {
    ResolvePolicy::Auto
}

fn manual(_: &ServiceId) -> ResolvePolicy {
    ResolvePolicy::Manual
}

fn kinds(plan: &BatchPlan) -> Vec<TimelineKind> {
    plan.timeline.iter().map(|entry| entry.kind()).collect()
}

#[test]
fn first_trigger_opens_alert_and_incident_with_priority_from_severity() {
    let plan = fold_batch(
        &[event(EventAction::Trigger, "disk", 0)],
        &HashMap::new(),
        &auto,
    );
    assert_eq!(plan.incidents.len(), 1);
    let opened = plan.incidents[0].opened.as_ref().expect("new incident");
    assert_eq!(opened.priority, Priority::P1);
    assert_eq!(opened.title, "trigger disk");
    assert_eq!(plan.incidents[0].open_alerts, 1);
    assert_eq!(plan.alerts.len(), 1);
    assert_eq!(plan.alerts[0].incident, IncidentRef::New(0));
    assert_eq!(plan.events[0].outcome, EventOutcome::Opened);
    assert_eq!(kinds(&plan), vec![TimelineKind::IncidentTriggered]);
}

#[test]
fn a_burst_of_triggers_folds_into_one_alert_and_waits_for_its_timeline_entry() {
    let events: Vec<_> = (0..1000)
        .map(|_| event(EventAction::Trigger, "disk", 5))
        .collect();
    let plan = fold_batch(&events, &HashMap::new(), &auto);
    assert_eq!(plan.alerts.len(), 1);
    assert_eq!(plan.alerts[0].count, 1000);
    assert_eq!(plan.alerts[0].last_seen, at(5));
    assert_eq!(plan.alerts[0].unlogged_folds, 999);
    assert_eq!(plan.alerts[0].folds_logged_at, at(5));
    assert_eq!(plan.incidents.len(), 1);
    assert_eq!(kinds(&plan), vec![TimelineKind::IncidentTriggered]);
}

#[test]
fn folds_reach_the_timeline_at_most_once_a_minute_and_every_fold_is_counted() {
    // One trigger a second for 1,000 seconds.
    let events: Vec<_> = (0..1000)
        .map(|n| event(EventAction::Trigger, "disk", n))
        .collect();
    let plan = fold_batch(&events, &HashMap::new(), &auto);
    assert_eq!(plan.alerts[0].count, 1000);
    let folded: Vec<_> = plan
        .timeline
        .iter()
        .filter(|entry| entry.kind() == TimelineKind::AlertFolded)
        .collect();
    // At 60, 120, ... 960 seconds.
    assert_eq!(folded.len(), 16);
    for pair in folded.windows(2) {
        assert!(pair[1].at.duration_since(pair[0].at) >= FOLD_LOG_INTERVAL);
    }
    assert_eq!(folded[0].at, at(60));
    let TimelineData::AlertFolded {
        events,
        count,
        last_summary,
        ..
    } = &folded[0].data
    else {
        panic!("not a fold entry: {:?}", folded[0].data);
    };
    assert_eq!(*events, 60);
    assert_eq!(*count, 61);
    assert_eq!(last_summary, "trigger disk");
    let logged: i64 = folded
        .iter()
        .map(|entry| entry.data.folded_events().expect("events"))
        .sum();
    assert_eq!(logged + plan.alerts[0].unlogged_folds, 999);
    assert_eq!(plan.alerts[0].folds_logged_at, at(960));
}

#[test]
fn unlogged_folds_are_written_before_an_acknowledgement() {
    let plan = fold_batch(
        &[
            event(EventAction::Trigger, "disk", 0),
            event(EventAction::Trigger, "disk", 1),
            event(EventAction::Trigger, "disk", 2),
            event(EventAction::Acknowledge, "disk", 3),
        ],
        &HashMap::new(),
        &auto,
    );
    assert_eq!(
        kinds(&plan),
        vec![
            TimelineKind::IncidentTriggered,
            TimelineKind::AlertFolded,
            TimelineKind::AlertAcknowledged,
            TimelineKind::IncidentAcknowledged,
        ]
    );
    assert_eq!(plan.timeline[1].data.folded_events(), Some(2));
    assert_eq!(plan.timeline[1].at, at(3));
    assert_eq!(plan.alerts[0].unlogged_folds, 0);
    assert_eq!(plan.alerts[0].folds_logged_at, at(3));
}

#[test]
fn unlogged_folds_entry_counts_what_waited() {
    let folds = UnloggedFolds {
        alert: AlertId(4),
        incident: IncidentNumber(9),
        dedup_key: DedupKey::parse("disk").expect("key"),
        events: 12,
        count: 13,
        last_summary: "disk full".to_owned(),
        last_seen: at(30),
    };
    let entry = folds.entry(at(90), Actor::system());
    assert_eq!(entry.incident, IncidentRef::Existing(IncidentNumber(9)));
    assert_eq!(entry.kind(), TimelineKind::AlertFolded);
    assert_eq!(entry.at, at(90));
    assert_eq!(
        entry.data,
        TimelineData::AlertFolded {
            dedup_key: DedupKey::parse("disk").expect("key"),
            events: 12,
            count: 13,
            last_summary: "disk full".to_owned(),
            last_seen: Some(at(30)),
        }
    );
}

#[test]
fn resolve_of_last_alert_resolves_incident_and_next_trigger_opens_a_new_one() {
    let plan = fold_batch(
        &[
            event(EventAction::Trigger, "disk", 0),
            event(EventAction::Acknowledge, "disk", 1),
            event(EventAction::Trigger, "disk", 2),
            event(EventAction::Resolve, "disk", 3),
            event(EventAction::Trigger, "disk", 4),
        ],
        &HashMap::new(),
        &auto,
    );
    assert_eq!(plan.incidents.len(), 2);
    assert_eq!(plan.incidents[0].state, IncidentState::Resolved);
    assert_eq!(plan.incidents[0].acknowledged_at, Some(at(1)));
    assert_eq!(plan.incidents[0].resolved_at, Some(at(3)));
    assert_eq!(plan.incidents[1].state, IncidentState::Triggered);
    assert_eq!(plan.alerts.len(), 2);
    assert_eq!(plan.alerts[0].count, 2);
    assert_eq!(plan.alerts[0].state, AlertState::Resolved);
    assert_eq!(
        kinds(&plan),
        vec![
            TimelineKind::IncidentTriggered,
            TimelineKind::AlertAcknowledged,
            TimelineKind::IncidentAcknowledged,
            TimelineKind::AlertFolded,
            TimelineKind::AlertResolved,
            TimelineKind::IncidentResolved,
            TimelineKind::IncidentTriggered,
        ]
    );
}

#[test]
fn manual_policy_keeps_incident_open_and_a_new_alert_joins_it() {
    let plan = fold_batch(
        &[
            event(EventAction::Trigger, "disk", 0),
            event(EventAction::Resolve, "disk", 1),
            event(EventAction::Trigger, "disk", 2),
        ],
        &HashMap::new(),
        &manual,
    );
    assert_eq!(plan.incidents.len(), 1);
    assert_eq!(plan.incidents[0].state, IncidentState::Triggered);
    assert_eq!(plan.incidents[0].open_alerts, 1);
    assert_eq!(plan.alerts.len(), 2);
    assert_eq!(
        kinds(&plan),
        vec![
            TimelineKind::IncidentTriggered,
            TimelineKind::AlertResolved,
            TimelineKind::AllAlertsResolved,
            TimelineKind::AlertOpened,
        ]
    );
}

#[test]
fn acknowledge_and_resolve_without_open_alert_change_nothing() {
    let plan = fold_batch(
        &[
            event(EventAction::Acknowledge, "disk", 0),
            event(EventAction::Resolve, "disk", 1),
        ],
        &HashMap::new(),
        &auto,
    );
    assert!(plan.incidents.is_empty());
    assert!(plan.alerts.is_empty());
    assert!(plan.timeline.is_empty());
    assert_eq!(plan.events[0].outcome, EventOutcome::IgnoredNoOpenAlert);
    assert_eq!(plan.events[1].outcome, EventOutcome::IgnoredNoOpenAlert);
}

#[test]
fn existing_open_alert_from_snapshot_is_folded_not_reopened() {
    let key = (ServiceId::new("api"), DedupKey::parse("disk").expect("key"));
    let snapshot = KeySnapshot {
        open_alert: Some(OpenAlert {
            id: AlertId(7),
            incident: IncidentNumber(3),
            state: AlertState::Acknowledged,
            count: 41,
            first_seen: at(-100),
            last_seen: at(-1),
            severity: Severity::Error,
            summary: "old".to_owned(),
            source: "host-0".to_owned(),
            acknowledged_at: Some(at(-50)),
            unlogged_folds: 5,
            folds_logged_at: at(-30),
        }),
        open_incident: Some(OpenIncident {
            number: IncidentNumber(3),
            state: IncidentState::Acknowledged,
            open_alerts: 1,
            acknowledged_at: Some(at(-50)),
        }),
    };
    let snapshots = HashMap::from([(key, snapshot)]);
    let plan = fold_batch(
        &[
            event(EventAction::Trigger, "disk", 0),
            event(EventAction::Acknowledge, "disk", 1),
        ],
        &snapshots,
        &auto,
    );
    assert_eq!(plan.alerts.len(), 1);
    assert_eq!(plan.alerts[0].alert, AlertRef::Existing(AlertId(7)));
    assert_eq!(plan.alerts[0].count, 42);
    assert_eq!(plan.alerts[0].state, AlertState::Acknowledged);
    // A fold only: 30 s after the last entry, the fold waits with the five before it.
    assert_eq!(plan.alerts[0].unlogged_folds, 6);
    assert!(!plan.alerts[0].state_changed);
    assert!(plan.timeline.is_empty());
    // The incident was not touched: nothing to write.
    assert!(plan.incidents.is_empty());
    assert_eq!(
        plan.events[1].outcome,
        EventOutcome::IgnoredAlreadyAcknowledged
    );
}

fn arbitrary_action() -> impl Strategy<Value = EventAction> {
    prop_oneof![
        3 => Just(EventAction::Trigger),
        1 => Just(EventAction::Acknowledge),
        1 => Just(EventAction::Resolve),
    ]
}

proptest! {
    /// Whatever the order of events, every trigger is counted on exactly one alert, every
    /// incident's open-alert count matches its open alerts, and resolved incidents hold none.
    #[test]
    fn fold_conserves_triggers_and_open_counts(
        actions in proptest::collection::vec((arbitrary_action(), 0..4usize), 0..200),
        manual_policy in any::<bool>(),
    ) {
        let events: Vec<_> = actions
            .iter()
            .enumerate()
            .map(|(n, (action, key))| event(*action, &format!("k{key}"), n as i64))
            .collect();
        let policy: &dyn Fn(&ServiceId) -> ResolvePolicy = if manual_policy { &manual } else { &auto };
        let plan = fold_batch(&events, &HashMap::new(), policy);
        let triggers = events.iter().filter(|e| e.action == EventAction::Trigger).count() as i64;
        prop_assert_eq!(plan.alerts.iter().map(|a| a.count).sum::<i64>(), triggers);
        prop_assert_eq!(plan.events.len(), events.len());
        // Every fold is counted once: by an `alert.folded` entry or as still unlogged.
        let folds = plan.events.iter().filter(|e| e.outcome == EventOutcome::Folded).count() as i64;
        let logged: i64 = plan
            .timeline
            .iter()
            .filter(|entry| entry.kind() == TimelineKind::AlertFolded)
            .map(|entry| entry.data.folded_events().unwrap_or(0))
            .sum();
        prop_assert_eq!(logged + plan.alerts.iter().map(|a| a.unlogged_folds).sum::<i64>(), folds);
        // A resolved alert has nothing left to log.
        prop_assert!(plan.alerts.iter().all(|a| a.state.is_open() || a.unlogged_folds == 0));
        for incident in &plan.incidents {
            let open = plan
                .alerts
                .iter()
                .filter(|a| a.incident == incident.incident && a.state.is_open())
                .count() as i64;
            prop_assert_eq!(incident.open_alerts, open);
            if incident.state == IncidentState::Resolved {
                prop_assert_eq!(open, 0);
                prop_assert!(incident.resolved_at.is_some());
            }
        }
        // At most one open alert per key.
        for key in 0..4 {
            let name = format!("k{key}");
            let open = plan.alerts.iter().filter(|a| a.dedup_key.as_str() == name && a.state.is_open()).count();
            prop_assert!(open <= 1);
        }
    }
}
