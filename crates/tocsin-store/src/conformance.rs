//! The conformance suite: what every backend must do, run against each of them.
//!
//! A backend's tests call `tocsin_store::conformance_suite!(make_store)` where `make_store` is an
//! async fn returning `Option<(Arc<dyn Store>, guard)>`: a fresh, empty, migrated store, and
//! whatever must live as long as the case and be cleaned up after it (a temporary directory, a
//! database dropped when the guard is), or `None` when the backend is not available here (the
//! function prints why). Compiled with the `testsuite` feature only.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::json;
use tocsin_core::{
    Actor, AlertState, ChangeEvent, Command, DedupKey, Event, EventAction, EventLink,
    IncidentNumber, IncidentState, IncidentTimes, Integration, Priority, ResolvePolicy, ServiceId,
    Severity, TimelineData, TimelineKind, Timestamp, Transition,
};

use crate::{
    AlertFilter, EventFilter, Inbound, IncidentFilter, PageRequest, Store, StoreError, TokenScope,
};

pub use crate::heartbeat_conformance::*;

/// Generates one `#[tokio::test]` per conformance case.
#[macro_export]
macro_rules! conformance_suite {
    ($make:path) => {
        $crate::conformance_suite!(@cases $make;
            storm_folds_into_one_alert_and_one_incident,
            folds_reach_the_timeline_once_a_minute_and_before_commands,
            lifecycle_trigger_acknowledge_resolve_reopen,
            acknowledge_and_resolve_without_alert_are_stored_and_change_nothing,
            manual_policy_keeps_incident_open,
            change_events_never_open_incidents,
            incident_commands_follow_the_state_machine,
            priority_and_notes_are_on_the_timeline,
            incident_lists_paginate_and_filter,
            timeline_paginates_oldest_first,
            alert_and_event_lists_filter,
            an_alerts_events_page_newest_first_across_batches_and_commands,
            api_tokens_are_found_by_hash_until_revoked,
            times_derived_from_timeline_match_the_incident,
            racing_acknowledge_and_resolve_leave_a_truthful_timeline,
            text_is_stored_as_sent_and_nul_is_refused,
            missing_rows_are_not_found,
            heartbeat_pings_are_stored_and_move_the_deadline,
            missed_heartbeat_deadline_opens_an_incident_and_a_success_resolves_it,
            heartbeat_text_with_nul_is_refused,
            old_pings_are_pruned_per_monitor,
            monitor_results_roll_up_and_age_out_only_once_rolled_up,
            monitor_result_batches_and_shared_error_texts,
            checks_settle_together_and_a_lost_claim_changes_nothing,
            rule_counts_add_up_across_writes,
        );
    };
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                if let Some((store, guard)) = $make().await {
                    $crate::conformance::$case(store).await;
                    drop(guard);
                }
            }
        )*
    };
}

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + second).expect("valid timestamp")
}

fn auto(_: &ServiceId) -> ResolvePolicy {
    ResolvePolicy::Auto
}

fn manual(_: &ServiceId) -> ResolvePolicy {
    ResolvePolicy::Manual
}

fn actor() -> Actor {
    Actor::token("conformance")
}

/// An alert event for service `service` and key `key`, received at `second`.
pub fn event(service: &str, action: EventAction, key: &str, second: i64) -> Inbound {
    Inbound::Alert(Event {
        service: ServiceId::new(service),
        integration: Integration::EventsV2,
        action,
        dedup_key: DedupKey::parse(key).expect("valid key"),
        severity: Severity::Error,
        summary: format!("{key} is broken ({second})"),
        source: "db-1".to_owned(),
        occurred_at: Some(at(second - 30)),
        received_at: at(second),
        details: json!({ "second": second, "labels": { "team": "payments" } }),
    })
}

/// The events and count of an `alert.folded` entry's data.
fn folded(data: &TimelineData) -> (i64, i64) {
    match data {
        TimelineData::AlertFolded { events, count, .. } => (*events, *count),
        other => panic!("not an alert.folded entry: {other:?}"),
    }
}

/// Adds a note and returns its timeline entry.
pub async fn add_note(
    store: &dyn Store,
    number: IncidentNumber,
    text: &str,
    actor: &Actor,
    at: Timestamp,
) -> Result<crate::TimelineEntry, StoreError> {
    let outcome = store
        .command(number, &Command::AddNote(text.to_owned()), actor, at)
        .await?;
    outcome
        .entries
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::Corrupt("a note appended no entry".to_owned()))
}

async fn timeline_kinds(store: &dyn Store, number: IncidentNumber) -> Vec<TimelineKind> {
    store
        .timeline(number, PageRequest::first(500))
        .await
        .expect("timeline")
        .items
        .into_iter()
        .map(|entry| entry.kind())
        .collect()
}

pub async fn storm_folds_into_one_alert_and_one_incident(store: Arc<dyn Store>) {
    for batch in 0..4 {
        let events: Vec<_> = (0..500)
            .map(|n| event("api", EventAction::Trigger, "storm", batch * 500 + n))
            .collect();
        let report = store.ingest(&events, &auto).await.expect("ingest");
        assert_eq!(report.events, 500);
        assert_eq!(report.incidents_opened, usize::from(batch == 0));
    }
    let incidents = store
        .incidents(&IncidentFilter::default(), PageRequest::default())
        .await
        .expect("incidents");
    assert_eq!(incidents.items.len(), 1);
    let alerts = store
        .alerts(&AlertFilter::default(), PageRequest::default())
        .await
        .expect("alerts");
    assert_eq!(alerts.items.len(), 1);
    let alert = &alerts.items[0];
    assert_eq!(alert.count, 2000);
    assert_eq!(alert.first_seen, at(0));
    assert_eq!(alert.last_seen, at(1999));
    let details = store.alert(alert.id).await.expect("alert").details;
    assert_eq!(details["second"], 1999);
    assert_eq!(alert.summary, "storm is broken (1999)");
    // One event a second for 2,000 seconds: an `alert.folded` entry a minute (33), whatever
    // the commits, and the 19 folds after the last one wait for the next.
    let number = incidents.items[0].number;
    let timeline = store
        .timeline(number, PageRequest::first(500))
        .await
        .expect("timeline")
        .items;
    assert_eq!(timeline[0].kind(), TimelineKind::IncidentTriggered);
    assert_eq!(timeline.len(), 34);
    assert!(timeline[1..]
        .iter()
        .all(|entry| entry.kind() == TimelineKind::AlertFolded));
    let logged = |timeline: &[crate::TimelineEntry]| -> i64 {
        timeline
            .iter()
            .filter_map(|entry| entry.data.folded_events())
            .sum()
    };
    assert_eq!(logged(&timeline), 1980);
    assert_eq!(timeline[33].at, at(1980));
    assert_eq!(folded(&timeline[33].data).1, 1981);
    let written = store
        .log_due_folds(at(1980), at(2040), 100)
        .await
        .expect("log due folds");
    assert_eq!(written, 1);
    let timeline = store
        .timeline(number, PageRequest::first(500))
        .await
        .expect("timeline")
        .items;
    assert_eq!(logged(&timeline), 1999, "every fold is counted once");
    let events = store
        .events(
            &EventFilter {
                alert: Some(alert.id),
                ..EventFilter::default()
            },
            PageRequest::first(500),
        )
        .await
        .expect("events");
    assert_eq!(events.items.len(), 500);
    assert!(events.next.is_some());
}

pub async fn folds_reach_the_timeline_once_a_minute_and_before_commands(store: Arc<dyn Store>) {
    store
        .ingest(
            &[
                event("api", EventAction::Trigger, "disk", 0),
                event("api", EventAction::Trigger, "cpu", 0),
            ],
            &auto,
        )
        .await
        .expect("open");
    let folds: Vec<_> = (1..=10)
        .flat_map(|second| {
            [
                event("api", EventAction::Trigger, "disk", second),
                event("api", EventAction::Trigger, "cpu", second),
            ]
        })
        .collect();
    store.ingest(&folds, &auto).await.expect("fold");
    let number = IncidentNumber(1);
    let folded_entries = |store: Arc<dyn Store>, number| async move {
        store
            .timeline(number, PageRequest::first(500))
            .await
            .expect("timeline")
            .items
            .into_iter()
            .filter(|entry| entry.kind() == TimelineKind::AlertFolded)
            .collect::<Vec<_>>()
    };
    assert!(folded_entries(Arc::clone(&store), number).await.is_empty());

    // Not due yet: the alert opened at 0 and the interval is a minute.
    let written = store
        .log_due_folds(at(-50), at(10), 100)
        .await
        .expect("log");
    assert_eq!(written, 0);
    // Due: one entry per alert, by the system, counting the ten folds.
    let written = store.log_due_folds(at(0), at(61), 1).await.expect("log");
    assert_eq!(written, 1, "the limit holds");
    let written = store.log_due_folds(at(0), at(61), 100).await.expect("log");
    assert_eq!(written, 1);
    let written = store.log_due_folds(at(0), at(61), 100).await.expect("log");
    assert_eq!(written, 0, "logged folds are not logged twice");
    for number in [IncidentNumber(1), IncidentNumber(2)] {
        let entries = folded_entries(Arc::clone(&store), number).await;
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].at, at(61));
        assert_eq!(entries[0].actor, Actor::system());
        assert_eq!(folded(&entries[0].data).0, 10);
        assert_eq!(folded(&entries[0].data).1, 11);
    }

    // Three more folds, then an acknowledgement by hand: the folds come first.
    let folds: Vec<_> = (62..=64)
        .map(|second| event("api", EventAction::Trigger, "disk", second))
        .collect();
    store.ingest(&folds, &auto).await.expect("fold");
    store
        .command(number, &Command::Acknowledge, &actor(), at(70))
        .await
        .expect("acknowledge");
    let timeline = store
        .timeline(number, PageRequest::first(500))
        .await
        .expect("timeline")
        .items;
    let kinds: Vec<_> = timeline.iter().map(|entry| entry.kind()).collect();
    assert_eq!(
        kinds,
        vec![
            TimelineKind::IncidentTriggered,
            TimelineKind::AlertFolded,
            TimelineKind::AlertFolded,
            TimelineKind::IncidentAcknowledged,
        ]
    );
    assert_eq!(folded(&timeline[2].data).0, 3);
    assert_eq!(folded(&timeline[2].data).1, 14);
    assert_eq!(timeline[2].at, at(70));

    // The other incident: two folds after its entry, resolved by hand.
    let folds: Vec<_> = (65..=66)
        .map(|second| event("api", EventAction::Trigger, "cpu", second))
        .collect();
    store.ingest(&folds, &auto).await.expect("fold");
    store
        .command(IncidentNumber(2), &Command::Resolve, &actor(), at(80))
        .await
        .expect("resolve");
    let kinds = timeline_kinds(store.as_ref(), IncidentNumber(2)).await;
    assert_eq!(
        kinds,
        vec![
            TimelineKind::IncidentTriggered,
            TimelineKind::AlertFolded,
            TimelineKind::AlertFolded,
            TimelineKind::IncidentResolved,
        ]
    );
    // Resolved alerts have nothing left to log.
    let written = store
        .log_due_folds(at(1000), at(1000), 100)
        .await
        .expect("log");
    assert_eq!(written, 0);
}

pub async fn lifecycle_trigger_acknowledge_resolve_reopen(store: Arc<dyn Store>) {
    store
        .ingest(&[event("api", EventAction::Trigger, "disk", 0)], &auto)
        .await
        .expect("trigger");
    store
        .ingest(
            &[
                event("api", EventAction::Trigger, "disk", 5),
                event("api", EventAction::Acknowledge, "disk", 10),
            ],
            &auto,
        )
        .await
        .expect("ack");
    let incident = store.incident(IncidentNumber(1)).await.expect("incident 1");
    assert_eq!(incident.state, IncidentState::Acknowledged);
    assert_eq!(incident.title, "disk is broken (0)");
    assert_eq!(incident.priority, Priority::P2);
    assert_eq!(incident.acknowledged_at, Some(at(10)));
    assert_eq!(incident.impact_started_at, at(-30));
    assert_eq!(incident.open_alerts, 1);

    let report = store
        .ingest(&[event("api", EventAction::Resolve, "disk", 20)], &auto)
        .await
        .expect("resolve");
    assert_eq!(report.incidents_resolved, 1);
    assert_eq!(report.alerts_resolved, 1);
    let incident = store.incident(IncidentNumber(1)).await.expect("incident 1");
    assert_eq!(incident.state, IncidentState::Resolved);
    assert_eq!(incident.resolved_at, Some(at(20)));
    assert_eq!(incident.open_alerts, 0);
    assert_eq!(
        timeline_kinds(store.as_ref(), incident.number).await,
        vec![
            TimelineKind::IncidentTriggered,
            TimelineKind::AlertFolded,
            TimelineKind::AlertAcknowledged,
            TimelineKind::IncidentAcknowledged,
            TimelineKind::AlertResolved,
            TimelineKind::IncidentResolved,
        ]
    );

    // After resolution the same key opens a new alert and a new incident.
    let report = store
        .ingest(&[event("api", EventAction::Trigger, "disk", 30)], &auto)
        .await
        .expect("retrigger");
    assert_eq!(report.incidents_opened, 1);
    let second = store.incident(IncidentNumber(2)).await.expect("incident 2");
    assert_eq!(second.state, IncidentState::Triggered);
    let alerts = store
        .alerts(&AlertFilter::default(), PageRequest::default())
        .await
        .expect("alerts");
    assert_eq!(alerts.items.len(), 2);
    assert_eq!(alerts.items[0].incident, IncidentNumber(2));
    assert_eq!(alerts.items[1].state, AlertState::Resolved);
    assert_eq!(alerts.items[1].count, 2);
}

pub async fn acknowledge_and_resolve_without_alert_are_stored_and_change_nothing(
    store: Arc<dyn Store>,
) {
    let report = store
        .ingest(
            &[
                event("api", EventAction::Acknowledge, "nothing", 0),
                event("api", EventAction::Resolve, "nothing", 1),
            ],
            &auto,
        )
        .await
        .expect("ingest");
    assert_eq!(report.events, 2);
    assert_eq!(report.incidents_opened, 0);
    let incidents = store
        .incidents(&IncidentFilter::default(), PageRequest::default())
        .await
        .expect("incidents");
    assert!(incidents.items.is_empty());
    let events = store
        .events(
            &EventFilter {
                dedup_key: Some(DedupKey::parse("nothing").expect("key")),
                ..EventFilter::default()
            },
            PageRequest::default(),
        )
        .await
        .expect("events");
    assert_eq!(events.items.len(), 2);
    assert!(events
        .items
        .iter()
        .all(|event| event.outcome == "ignored_no_open_alert" && event.alert.is_none()));
    assert_eq!(events.items[0].action, EventAction::Resolve);
}

pub async fn manual_policy_keeps_incident_open(store: Arc<dyn Store>) {
    store
        .ingest(
            &[
                event("api", EventAction::Trigger, "disk", 0),
                event("api", EventAction::Resolve, "disk", 1),
            ],
            &manual,
        )
        .await
        .expect("ingest");
    store
        .ingest(&[event("api", EventAction::Trigger, "disk", 2)], &manual)
        .await
        .expect("ingest");
    let incidents = store
        .incidents(&IncidentFilter::default(), PageRequest::default())
        .await
        .expect("incidents");
    assert_eq!(
        incidents.items.len(),
        1,
        "the new alert joins the open incident"
    );
    assert_eq!(incidents.items[0].state, IncidentState::Triggered);
    assert_eq!(incidents.items[0].open_alerts, 1);
    let alerts = store
        .alerts(
            &AlertFilter {
                incident: Some(incidents.items[0].number),
                ..AlertFilter::default()
            },
            PageRequest::default(),
        )
        .await
        .expect("alerts");
    assert_eq!(alerts.items.len(), 2);
    let outcome = store
        .command(
            incidents.items[0].number,
            &Command::Resolve,
            &actor(),
            at(3),
        )
        .await
        .expect("resolve");
    assert_eq!(outcome.incident.state, IncidentState::Resolved);
    let open = store
        .alerts(
            &AlertFilter {
                state: Some(AlertState::Triggered),
                ..AlertFilter::default()
            },
            PageRequest::default(),
        )
        .await
        .expect("alerts");
    assert!(
        open.items.is_empty(),
        "resolving the incident resolves its alerts"
    );
}

pub async fn change_events_never_open_incidents(store: Arc<dyn Store>) {
    let change = |second: i64| {
        Inbound::Change(ChangeEvent {
            service: ServiceId::new("api"),
            summary: format!("deploy v{second}"),
            source: Some("ci".to_owned()),
            occurred_at: Some(at(second)),
            received_at: at(second),
            details: json!({ "sha": "abc" }),
            links: vec![EventLink {
                href: "https://ci.example/1".to_owned(),
                text: Some("build".to_owned()),
            }],
        })
    };
    let report = store
        .ingest(
            &[
                change(1),
                change(2),
                event("api", EventAction::Trigger, "x", 3),
            ],
            &auto,
        )
        .await
        .expect("ingest");
    assert_eq!(report.change_events, 2);
    assert_eq!(report.events, 1);
    let changes = store
        .change_events(&ServiceId::new("api"), PageRequest::first(1))
        .await
        .expect("changes");
    assert_eq!(changes.items.len(), 1);
    assert_eq!(changes.items[0].summary, "deploy v2");
    assert_eq!(changes.items[0].links[0]["href"], "https://ci.example/1");
    let rest = store
        .change_events(&ServiceId::new("api"), PageRequest::new(changes.next, 10))
        .await
        .expect("changes");
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.items[0].summary, "deploy v1");
    assert_eq!(rest.next, None);
    let other = store
        .change_events(&ServiceId::new("other"), PageRequest::default())
        .await
        .expect("changes");
    assert!(other.items.is_empty());
    let incidents = store
        .incidents(&IncidentFilter::default(), PageRequest::default())
        .await
        .expect("incidents");
    assert_eq!(incidents.items.len(), 1);
}

pub async fn incident_commands_follow_the_state_machine(store: Arc<dyn Store>) {
    store
        .ingest(&[event("api", EventAction::Trigger, "disk", 0)], &auto)
        .await
        .expect("ingest");
    let number = IncidentNumber(1);
    let first = store
        .command(number, &Command::Acknowledge, &actor(), at(10))
        .await
        .expect("ack");
    assert_eq!(first.transition, Transition::Changed);
    assert_eq!(first.incident.state, IncidentState::Acknowledged);
    assert_eq!(first.incident.acknowledged_at, Some(at(10)));
    let alerts = store
        .alerts(&AlertFilter::default(), PageRequest::default())
        .await
        .expect("alerts");
    assert_eq!(alerts.items[0].state, AlertState::Acknowledged);

    let again = store
        .command(number, &Command::Acknowledge, &actor(), at(11))
        .await
        .expect("ack again");
    assert_eq!(again.transition, Transition::Unchanged);
    assert_eq!(again.incident.acknowledged_at, Some(at(10)));

    let resolved = store
        .command(number, &Command::Resolve, &actor(), at(20))
        .await
        .expect("resolve");
    assert_eq!(resolved.transition, Transition::Changed);
    assert_eq!(resolved.incident.state, IncidentState::Resolved);
    assert_eq!(resolved.incident.open_alerts, 0);
    let alerts = store
        .alerts(&AlertFilter::default(), PageRequest::default())
        .await
        .expect("alerts");
    assert_eq!(alerts.items[0].state, AlertState::Resolved);
    assert_eq!(alerts.items[0].resolved_at, Some(at(20)));

    let again = store
        .command(number, &Command::Resolve, &actor(), at(21))
        .await
        .expect("resolve again");
    assert_eq!(again.transition, Transition::Unchanged);
    assert!(matches!(
        store
            .command(number, &Command::Acknowledge, &actor(), at(22))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let timeline = store
        .timeline(number, PageRequest::default())
        .await
        .expect("timeline");
    let kinds: Vec<_> = timeline.items.iter().map(|entry| entry.kind()).collect();
    assert_eq!(
        kinds,
        vec![
            TimelineKind::IncidentTriggered,
            TimelineKind::IncidentAcknowledged,
            TimelineKind::IncidentResolved,
        ]
    );
    assert_eq!(timeline.items[1].actor, actor());
    assert_eq!(timeline.items[2].at, at(20));

    // A trigger after a manual resolve opens a new incident.
    store
        .ingest(&[event("api", EventAction::Trigger, "disk", 30)], &auto)
        .await
        .expect("ingest");
    assert_eq!(
        store
            .incident(IncidentNumber(2))
            .await
            .expect("incident 2")
            .state,
        IncidentState::Triggered
    );
}

pub async fn priority_and_notes_are_on_the_timeline(store: Arc<dyn Store>) {
    store
        .ingest(&[event("api", EventAction::Trigger, "disk", 0)], &auto)
        .await
        .expect("ingest");
    let number = IncidentNumber(1);
    let changed = store
        .command(number, &Command::SetPriority(Priority::P1), &actor(), at(5))
        .await
        .expect("priority");
    assert_eq!(changed.transition, Transition::Changed);
    assert_eq!(changed.incident.priority, Priority::P1);
    let same = store
        .command(number, &Command::SetPriority(Priority::P1), &actor(), at(6))
        .await
        .expect("priority");
    assert_eq!(same.transition, Transition::Unchanged);
    let note = add_note(
        store.as_ref(),
        number,
        "rolled back to v41 ✅",
        &actor(),
        at(7),
    )
    .await
    .expect("note");
    assert_eq!(note.kind(), TimelineKind::NoteAdded);
    assert_eq!(
        note.data,
        TimelineData::NoteAdded {
            text: "rolled back to v41 ✅".to_owned()
        }
    );
    let timeline = store
        .timeline(number, PageRequest::default())
        .await
        .expect("timeline");
    assert_eq!(timeline.items.len(), 3);
    assert_eq!(timeline.items[1].kind(), TimelineKind::PriorityChanged);
    assert_eq!(
        timeline.items[1].data,
        TimelineData::PriorityChanged {
            from: Priority::P2,
            to: Priority::P1
        }
    );
    assert_eq!(timeline.items[2], note);
}

pub async fn incident_lists_paginate_and_filter(store: Arc<dyn Store>) {
    let events: Vec<_> = (0..120)
        .map(|n| {
            let service = if n % 3 == 0 { "db" } else { "api" };
            event(service, EventAction::Trigger, &format!("key-{n}"), n)
        })
        .collect();
    let report = store.ingest(&events, &auto).await.expect("ingest");
    assert_eq!(report.incidents_opened, 120);

    let mut seen = Vec::new();
    let mut page = PageRequest::first(50);
    loop {
        let result = store
            .incidents(&IncidentFilter::default(), page)
            .await
            .expect("incidents");
        assert!(result.items.len() <= 50);
        seen.extend(result.items.iter().map(|incident| incident.number.0));
        match result.next {
            Some(next) => page = PageRequest::new(Some(next), 50),
            None => break,
        }
    }
    let expected: Vec<i64> = (1..=120).rev().collect();
    assert_eq!(seen, expected, "newest first, every incident exactly once");

    let db = store
        .incidents(
            &IncidentFilter {
                service: Some(ServiceId::new("db")),
                ..IncidentFilter::default()
            },
            PageRequest::first(500),
        )
        .await
        .expect("incidents");
    assert_eq!(db.items.len(), 40);
    assert!(db
        .items
        .iter()
        .all(|incident| incident.service.as_str() == "db"));

    store
        .command(IncidentNumber(7), &Command::Resolve, &actor(), at(500))
        .await
        .expect("resolve");
    store
        .command(
            IncidentNumber(8),
            &Command::SetPriority(Priority::P5),
            &actor(),
            at(500),
        )
        .await
        .expect("priority");
    let resolved = store
        .incidents(
            &IncidentFilter {
                states: vec![IncidentState::Resolved],
                ..IncidentFilter::default()
            },
            PageRequest::default(),
        )
        .await
        .expect("incidents");
    assert_eq!(resolved.items.len(), 1);
    assert_eq!(resolved.items[0].number, IncidentNumber(7));
    let open = store
        .incidents(
            &IncidentFilter {
                states: vec![IncidentState::Triggered, IncidentState::Acknowledged],
                priority: Some(Priority::P5),
                ..IncidentFilter::default()
            },
            PageRequest::default(),
        )
        .await
        .expect("incidents");
    assert_eq!(open.items.len(), 1);
    assert_eq!(open.items[0].number, IncidentNumber(8));

    // The hard maximum holds whatever is asked.
    assert_eq!(PageRequest::first(100_000).limit(), PageRequest::MAX_LIMIT);
}

pub async fn timeline_paginates_oldest_first(store: Arc<dyn Store>) {
    store
        .ingest(&[event("api", EventAction::Trigger, "disk", 0)], &auto)
        .await
        .expect("ingest");
    for n in 0..30 {
        add_note(
            store.as_ref(),
            IncidentNumber(1),
            &format!("note {n}"),
            &actor(),
            at(n + 1),
        )
        .await
        .expect("note");
    }
    let first = store
        .timeline(IncidentNumber(1), PageRequest::first(20))
        .await
        .expect("timeline");
    assert_eq!(first.items.len(), 20);
    assert_eq!(first.items[0].kind(), TimelineKind::IncidentTriggered);
    assert_eq!(
        first.items[19].data,
        TimelineData::NoteAdded {
            text: "note 18".to_owned()
        }
    );
    let second = store
        .timeline(IncidentNumber(1), PageRequest::new(first.next, 20))
        .await
        .expect("timeline");
    assert_eq!(second.items.len(), 11);
    assert_eq!(
        second.items[0].data,
        TimelineData::NoteAdded {
            text: "note 19".to_owned()
        }
    );
    assert_eq!(second.next, None);
}

/// Every event an alert had, newest first, page by page: across batches, keys interleaved,
/// after a command wrote in between, and from a cursor that is not one of the alert's events.
pub async fn an_alerts_events_page_newest_first_across_batches_and_commands(store: Arc<dyn Store>) {
    let mut second = 0;
    let mut next = |key: &str| {
        second += 1;
        event("api", EventAction::Trigger, key, second)
    };
    let batches = [
        vec![next("a"), next("b"), next("a"), next("a")],
        vec![next("b"), next("a")],
        vec![next("c"), next("a"), next("b")],
    ];
    for batch in &batches {
        store.ingest(batch, &auto).await.expect("ingest");
    }
    let a = alert_of(&store, "a").await;
    store
        .command(a.incident, &Command::Acknowledge, &actor(), at(100))
        .await
        .expect("acknowledge");
    store
        .ingest(
            &[
                event("api", EventAction::Trigger, "a", 101),
                event("api", EventAction::Trigger, "b", 102),
                event("api", EventAction::Resolve, "a", 103),
            ],
            &auto,
        )
        .await
        .expect("ingest after the command");
    // A new alert for the key: its chain starts afresh.
    store
        .ingest(&[event("api", EventAction::Trigger, "a", 104)], &auto)
        .await
        .expect("ingest a new alert");

    let all = store
        .events(&EventFilter::default(), PageRequest::first(500))
        .await
        .expect("all events")
        .items;
    let expected: Vec<i64> = all
        .iter()
        .filter(|event| event.alert == Some(a.id))
        .map(|event| event.id)
        .collect();
    assert_eq!(
        expected.len(),
        7,
        "five triggers, one after the command, the resolve"
    );
    let filter = EventFilter {
        alert: Some(a.id),
        ..EventFilter::default()
    };
    let mut listed = Vec::new();
    let mut page = PageRequest::first(3);
    loop {
        let got = store.events(&filter, page).await.expect("page");
        assert!(got.items.len() <= 3);
        listed.extend(got.items.iter().map(|event| event.id));
        match got.next {
            Some(after) => page = PageRequest::new(Some(after), 3),
            None => break,
        }
    }
    assert_eq!(listed, expected, "newest first, each once");
    assert_eq!(
        all.iter()
            .filter(|event| event.alert == Some(a.id))
            .map(|event| event.outcome.as_str())
            .next(),
        Some("resolved")
    );

    // A cursor between two of the alert's events (one of another alert's).
    let foreign = all
        .iter()
        .find(|event| event.alert != Some(a.id) && event.id < expected[2] && event.id > expected[3])
        .map(|event| event.id)
        .unwrap_or(expected[2]);
    let got = store
        .events(&filter, PageRequest::new(Some(foreign), 2))
        .await
        .expect("from a foreign cursor");
    let below: Vec<i64> = expected
        .iter()
        .copied()
        .filter(|id| *id < foreign)
        .collect();
    assert_eq!(
        got.items.iter().map(|event| event.id).collect::<Vec<_>>(),
        below[..2].to_vec()
    );
    // A cursor above every event, and one below them all.
    let got = store
        .events(&filter, PageRequest::new(Some(i64::MAX), 500))
        .await
        .expect("from above");
    assert_eq!(got.items.len(), 7);
    let got = store
        .events(&filter, PageRequest::new(Some(expected[6]), 500))
        .await
        .expect("from the oldest");
    assert!(got.items.is_empty());
    assert_eq!(got.next, None);

    // The new alert of the key has its one event; another service's filter finds none.
    let newest = all[0].clone();
    let new_alert = newest.alert.expect("the last trigger opened an alert");
    assert_ne!(new_alert, a.id);
    let got = store
        .events(
            &EventFilter {
                alert: Some(new_alert),
                ..EventFilter::default()
            },
            PageRequest::default(),
        )
        .await
        .expect("new alert's events");
    assert_eq!(
        got.items.iter().map(|e| e.id).collect::<Vec<_>>(),
        [newest.id]
    );
    let got = store
        .events(
            &EventFilter {
                alert: Some(a.id),
                service: Some(ServiceId::new("db")),
                ..EventFilter::default()
            },
            PageRequest::default(),
        )
        .await
        .expect("another service");
    assert!(got.items.is_empty());
}

/// The alert (open or not, the newest) of a key of service "api".
async fn alert_of(store: &Arc<dyn Store>, key: &str) -> crate::AlertSummary {
    store
        .alerts(
            &AlertFilter {
                service: Some(ServiceId::new("api")),
                ..AlertFilter::default()
            },
            PageRequest::first(500),
        )
        .await
        .expect("alerts")
        .items
        .into_iter()
        .find(|alert| alert.dedup_key.as_str() == key)
        .expect("the key's alert")
}

pub async fn alert_and_event_lists_filter(store: Arc<dyn Store>) {
    store
        .ingest(
            &[
                event("api", EventAction::Trigger, "a", 0),
                event("db", EventAction::Trigger, "b", 1),
                event("db", EventAction::Trigger, "b", 2),
                event("db", EventAction::Resolve, "b", 3),
            ],
            &auto,
        )
        .await
        .expect("ingest");
    let db = store
        .alerts(
            &AlertFilter {
                service: Some(ServiceId::new("db")),
                ..AlertFilter::default()
            },
            PageRequest::default(),
        )
        .await
        .expect("alerts");
    assert_eq!(db.items.len(), 1);
    assert_eq!(db.items[0].state, AlertState::Resolved);
    assert_eq!(db.items[0].count, 2);
    let fetched = store.alert(db.items[0].id).await.expect("alert");
    assert_eq!(fetched.alert, db.items[0]);
    assert_eq!(fetched.details["second"], 2, "the latest trigger's details");
    let triggered = store
        .alerts(
            &AlertFilter {
                state: Some(AlertState::Triggered),
                ..AlertFilter::default()
            },
            PageRequest::default(),
        )
        .await
        .expect("alerts");
    assert_eq!(triggered.items.len(), 1);
    assert_eq!(triggered.items[0].service.as_str(), "api");

    let events = store
        .events(
            &EventFilter {
                service: Some(ServiceId::new("db")),
                ..EventFilter::default()
            },
            PageRequest::default(),
        )
        .await
        .expect("events");
    let outcomes: Vec<_> = events.items.iter().map(|e| e.outcome.as_str()).collect();
    assert_eq!(outcomes, vec!["resolved", "folded", "opened"]);
    assert!(events.items.iter().all(|e| e.alert == Some(db.items[0].id)));
    assert_eq!(events.items[2].occurred_at, Some(at(-29)));
    let opened = store.event(events.items[2].id).await.expect("event");
    assert_eq!(opened.event, events.items[2]);
    assert_eq!(opened.details["labels"]["team"], "payments");
}

pub async fn api_tokens_are_found_by_hash_until_revoked(store: Arc<dyn Store>) {
    let token = store
        .create_api_token("ana-laptop", TokenScope::Write, "hash-1", at(0))
        .await
        .expect("create");
    assert_eq!(token.scope, TokenScope::Write);
    store
        .create_api_token("grafana", TokenScope::Read, "hash-2", at(1))
        .await
        .expect("create");
    let found = store
        .api_token_by_hash("hash-1")
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(found.name, "ana-laptop");
    assert!(store
        .api_token_by_hash("hash-3")
        .await
        .expect("lookup")
        .is_none());
    let listed = store
        .api_tokens(PageRequest::default())
        .await
        .expect("list");
    assert_eq!(listed.items.len(), 2);
    assert_eq!(listed.items[0].name, "grafana");
    let revoked = store
        .revoke_api_token(token.id, at(5))
        .await
        .expect("revoke");
    assert_eq!(revoked.revoked_at, Some(at(5)));
    assert!(store
        .api_token_by_hash("hash-1")
        .await
        .expect("lookup")
        .is_none());
    assert!(matches!(
        store.revoke_api_token(9999, at(6)).await,
        Err(StoreError::NotFound { .. })
    ));
}

pub async fn times_derived_from_timeline_match_the_incident(store: Arc<dyn Store>) {
    store
        .ingest(&[event("api", EventAction::Trigger, "disk", 100)], &auto)
        .await
        .expect("ingest");
    store
        .ingest(
            &[event("api", EventAction::Acknowledge, "disk", 160)],
            &auto,
        )
        .await
        .expect("ingest");
    store
        .command(IncidentNumber(1), &Command::Resolve, &actor(), at(400))
        .await
        .expect("resolve");
    let incident = store.incident(IncidentNumber(1)).await.expect("incident");
    let timeline = store
        .timeline(IncidentNumber(1), PageRequest::default())
        .await
        .expect("timeline");
    let derived =
        IncidentTimes::from_timeline(timeline.items.iter().map(|entry| (entry.at, &entry.data)));
    assert_eq!(derived, incident.times());
    assert_eq!(derived.time_to_acknowledge().map(|d| d.as_secs()), Some(60));
    // Impact began 30 s before the event arrived (the sender's timestamp).
    assert_eq!(derived.time_to_resolve().map(|d| d.as_secs()), Some(330));
}

pub async fn racing_acknowledge_and_resolve_leave_a_truthful_timeline(store: Arc<dyn Store>) {
    // Many rounds: a lost race is rare, and one is enough to break the rule.
    for round in 0..20 {
        let key = format!("race-{round}");
        store
            .ingest(&[event("api", EventAction::Trigger, &key, round)], &auto)
            .await
            .expect("ingest");
        let number = IncidentNumber(round + 1);
        let mut tasks = Vec::new();
        for n in 0..16 {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                let who = Actor::token(&format!("client-{n}"));
                if n % 2 == 0 {
                    store
                        .command(number, &Command::Acknowledge, &who, at(100 + n))
                        .await
                        .map(|outcome| outcome.transition)
                } else {
                    store
                        .command(number, &Command::Resolve, &who, at(100 + n))
                        .await
                        .map(|outcome| outcome.transition)
                }
            }));
        }
        let mut changed = HashMap::new();
        for (n, task) in tasks.into_iter().enumerate() {
            match task.await.expect("task") {
                Ok(Transition::Changed) => *changed.entry(n % 2 == 0).or_insert(0) += 1,
                Ok(Transition::Unchanged) => {}
                Err(StoreError::Conflict(_)) => assert_eq!(n % 2, 0, "only acks conflict"),
                Err(other) => panic!("unexpected error: {other}"),
            }
        }
        assert_eq!(
            changed.get(&false),
            Some(&1),
            "exactly one resolve takes effect"
        );
        assert!(changed.get(&true).copied().unwrap_or(0) <= 1);
        let incident = store.incident(number).await.expect("incident");
        assert_eq!(incident.state, IncidentState::Resolved);
        assert_eq!(incident.open_alerts, 0);
        let kinds = timeline_kinds(store.as_ref(), number).await;
        let resolved = kinds
            .iter()
            .filter(|kind| **kind == TimelineKind::IncidentResolved)
            .count();
        let acknowledged = kinds
            .iter()
            .filter(|kind| **kind == TimelineKind::IncidentAcknowledged)
            .count();
        assert_eq!(resolved, 1);
        assert_eq!(acknowledged, changed.get(&true).copied().unwrap_or(0));
        assert_eq!(kinds.last(), Some(&TimelineKind::IncidentResolved));
        // Times on one incident never go backwards, whichever command won the lock first.
        if let (Some(acknowledged), Some(resolved)) =
            (incident.acknowledged_at, incident.resolved_at)
        {
            assert!(
                acknowledged <= resolved,
                "round {round}: acknowledged at {acknowledged}, resolved at {resolved}"
            );
        }
        let timeline = store
            .timeline(number, PageRequest::first(500))
            .await
            .expect("timeline")
            .items;
        assert!(
            timeline.windows(2).all(|pair| pair[0].at <= pair[1].at),
            "round {round}: the timeline goes back in time: {timeline:?}"
        );
        assert_eq!(timeline.last().map(|entry| entry.at), incident.resolved_at);
        let open = store
            .alerts(
                &AlertFilter {
                    incident: Some(number),
                    ..AlertFilter::default()
                },
                PageRequest::default(),
            )
            .await
            .expect("alerts");
        assert!(open
            .items
            .iter()
            .all(|alert| alert.state == AlertState::Resolved));
    }
}

pub async fn text_is_stored_as_sent_and_nul_is_refused(store: Arc<dyn Store>) {
    // Unusual but valid text comes back byte for byte.
    let unusual =
        "tab\tnewline\n\u{7f}\u{1b}[31m ümlaut 🚨 \u{200b} \u{fffd} 'quote' \"double\" \\";
    let Inbound::Alert(mut sent) = event("api", EventAction::Trigger, "text", 0) else {
        unreachable!("an alert event");
    };
    sent.summary = unusual.to_owned();
    sent.source = unusual.to_owned();
    sent.details = json!({ "text": unusual, "nul": "\u{0}" });
    store
        .ingest(&[Inbound::Alert(sent)], &auto)
        .await
        .expect("ingest");
    let incident = store.incident(IncidentNumber(1)).await.expect("incident");
    assert_eq!(incident.title, unusual);
    let alerts = store
        .alerts(&AlertFilter::default(), PageRequest::default())
        .await
        .expect("alerts");
    let alert = store.alert(alerts.items[0].id).await.expect("alert");
    assert_eq!(alert.alert.summary, unusual);
    assert_eq!(alert.alert.source, unusual);
    assert_eq!(alert.details["text"], unusual);
    // A NUL inside JSON details is an escape (`\u0000`) and is kept as sent.
    assert_eq!(alert.details["nul"], "\u{0}");
    let note = add_note(store.as_ref(), IncidentNumber(1), unusual, &actor(), at(1))
        .await
        .expect("note");
    let timeline = store
        .timeline(IncidentNumber(1), PageRequest::default())
        .await
        .expect("timeline");
    assert_eq!(timeline.items.last(), Some(&note));

    // A NUL in text is refused, naming the field, and nothing of the batch is written.
    let Inbound::Alert(mut bad) = event("api", EventAction::Trigger, "other", 2) else {
        unreachable!("an alert event");
    };
    bad.summary = "disk\0full".to_owned();
    let error = store
        .ingest(
            &[
                event("api", EventAction::Trigger, "fine", 2),
                Inbound::Alert(bad),
            ],
            &auto,
        )
        .await
        .expect_err("NUL refused");
    assert!(
        matches!(&error, StoreError::Invalid(message) if message.contains("summary")),
        "{error}"
    );
    let incidents = store
        .incidents(&IncidentFilter::default(), PageRequest::default())
        .await
        .expect("incidents");
    assert_eq!(incidents.items.len(), 1, "nothing of the batch was written");
    let error = add_note(store.as_ref(), IncidentNumber(1), "a\0b", &actor(), at(3))
        .await
        .expect_err("NUL refused");
    assert!(matches!(&error, StoreError::Invalid(message) if message.contains("text")));
    let error = store
        .create_api_token("bad\0name", TokenScope::Read, "hash", at(3))
        .await
        .expect_err("NUL refused");
    assert!(matches!(&error, StoreError::Invalid(message) if message.contains("name")));
    assert_eq!(
        store
            .timeline(IncidentNumber(1), PageRequest::default())
            .await
            .expect("timeline")
            .items
            .len(),
        timeline.items.len()
    );
}

pub async fn missing_rows_are_not_found(store: Arc<dyn Store>) {
    let number = IncidentNumber(404);
    assert!(matches!(
        store.incident(number).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store
            .command(number, &Command::Acknowledge, &actor(), at(0))
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store
            .command(number, &Command::Resolve, &actor(), at(0))
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        add_note(store.as_ref(), number, "x", &actor(), at(0)).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.alert(tocsin_core::AlertId(404)).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.timeline(number, PageRequest::default()).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.event(404).await,
        Err(StoreError::NotFound { .. })
    ));
    store.ping().await.expect("ping");
    let counts = store.counts().await.expect("counts");
    assert_eq!(counts.open_incidents, 0);
}

/// Results are stored once per (monitor, time), read by range, rolled up per hour and day
/// (again and again to the same numbers), and deleted only where their day's rollup exists.
pub async fn monitor_results_roll_up_and_age_out_only_once_rolled_up(store: Arc<dyn Store>) {
    use crate::monitor_results::{CheckResultRow, ResultStatus, RollupPeriod};
    let day_start: Timestamp = "2026-11-02T00:00:00Z".parse().expect("time");
    let result =
        |monitor: &str, seconds: i64, latency_ms: i64, status: ResultStatus| CheckResultRow {
            monitor: monitor.to_owned(),
            at: Timestamp::from_second(day_start.as_second() + seconds).expect("time"),
            status,
            latency_ms,
            http_status: (status != ResultStatus::Up).then_some(500),
            error: (status != ResultStatus::Up).then(|| "HTTP 500, expected 2xx".to_owned()),
        };
    // Day 1: 10 results of `web` in the first hour (one down, one degraded), 1 in the second.
    for i in 0..10 {
        let status = match i {
            3 => ResultStatus::Down,
            4 => ResultStatus::Degraded,
            _ => ResultStatus::Up,
        };
        store
            .record_result(&result("web", i * 60, (i + 1) * 10, status))
            .await
            .expect("record");
    }
    store
        .record_result(&result("web", 3_600, 7, ResultStatus::Up))
        .await
        .expect("record");
    // The same time again is ignored; another monitor is separate.
    store
        .record_result(&result("web", 0, 999, ResultStatus::Down))
        .await
        .expect("record again");
    store
        .record_result(&result("db", 0, 1, ResultStatus::Up))
        .await
        .expect("record db");
    // Day 2: one result, never rolled up.
    store
        .record_result(&result("web", 86_400 + 5, 3, ResultStatus::Up))
        .await
        .expect("record day 2");

    let hour_end = Timestamp::from_second(day_start.as_second() + 3_600).expect("time");
    let first_hour = store
        .results("web", day_start, hour_end, 100)
        .await
        .expect("results");
    assert_eq!(first_hour.len(), 10);
    assert_eq!(first_hour[0].latency_ms, 10, "the first write stands");
    assert_eq!(first_hour[3].status, ResultStatus::Down);
    assert_eq!(
        first_hour[3].error.as_deref(),
        Some("HTTP 500, expected 2xx")
    );
    assert_eq!(first_hour[3].http_status, Some(500));
    assert_eq!(
        store
            .results("web", day_start, hour_end, 3)
            .await
            .expect("page")
            .len(),
        3
    );

    let hour = store
        .roll_up("web", RollupPeriod::Hour, day_start)
        .await
        .expect("roll up")
        .expect("a rollup");
    assert_eq!(
        (hour.checks, hour.up, hour.degraded, hour.down),
        (10, 8, 1, 1)
    );
    assert_eq!((hour.p50_ms, hour.p95_ms, hour.p99_ms), (50, 100, 100));
    let again = store
        .roll_up(
            "web",
            RollupPeriod::Hour,
            Timestamp::from_second(hour_end.as_second() - 1).expect("time"),
        )
        .await
        .expect("roll up again")
        .expect("a rollup");
    assert_eq!(again, hour, "any time in the hour rolls up the same hour");
    let empty_hour = Timestamp::from_second(day_start.as_second() + 5 * 3_600).expect("time");
    assert_eq!(
        store
            .roll_up("web", RollupPeriod::Hour, empty_hour)
            .await
            .expect("roll up an empty hour"),
        None
    );
    let hours = store
        .rollups("web", RollupPeriod::Hour, day_start, 10)
        .await
        .expect("rollups");
    assert_eq!(hours, vec![hour]);

    // Retention before any daily rollup deletes nothing, however old the results are.
    let far_future = Timestamp::from_second(day_start.as_second() + 400 * 86_400).expect("time");
    assert_eq!(
        store
            .delete_rolled_up_results(far_future, 1_000)
            .await
            .expect("retention"),
        0
    );
    let day = store
        .roll_up("web", RollupPeriod::Day, day_start)
        .await
        .expect("roll up the day")
        .expect("a rollup");
    assert_eq!(day.checks, 11);
    // Now day 1 of `web` goes; its day 2 (no rollup) and `db` (no rollup) stay.
    assert_eq!(
        store
            .delete_rolled_up_results(far_future, 1_000)
            .await
            .expect("retention"),
        11
    );
    assert_eq!(
        store
            .results("web", day_start, far_future, 100)
            .await
            .expect("results")
            .len(),
        1
    );
    assert_eq!(
        store
            .results("db", day_start, far_future, 100)
            .await
            .expect("results")
            .len(),
        1
    );
    // Rollups age out by their start.
    assert_eq!(
        store
            .delete_rollups(day_start, 100)
            .await
            .expect("none before"),
        0
    );
    assert_eq!(store.delete_rollups(far_future, 100).await.expect("all"), 2);
    assert!(store
        .rollups("web", RollupPeriod::Hour, day_start, 10)
        .await
        .expect("rollups")
        .is_empty());
}

/// A batch of results is stored at once (duplicates in it ignored); an error text shared by
/// results of two days is kept for the result that stays when the other day's results age out;
/// times keep their milliseconds.
pub async fn monitor_result_batches_and_shared_error_texts(store: Arc<dyn Store>) {
    use crate::monitor_results::{CheckResultRow, ResultStatus, RollupPeriod};
    let day_start: Timestamp = "2026-11-02T00:00:00Z".parse().expect("time");
    let result = |monitor: &str, millis: i64, error: Option<&str>| CheckResultRow {
        monitor: monitor.to_owned(),
        at: Timestamp::from_millisecond(day_start.as_millisecond() + millis).expect("time"),
        status: if error.is_some() {
            ResultStatus::Down
        } else {
            ResultStatus::Up
        },
        latency_ms: 12,
        http_status: error.is_none().then_some(200),
        error: error.map(str::to_owned),
    };
    let refused = "connect: connection refused";
    let batch = vec![
        result("api", 1_250, Some(refused)),
        result("db", 1_250, None),
        result("api", 31_250, None),
        result("api", 31_250, Some("a duplicate, ignored")),
        result("api", 86_400_000 + 5, Some(refused)),
    ];
    store.record_results(&batch).await.expect("batch");
    store.record_results(&[]).await.expect("empty batch");
    let end = Timestamp::from_second(day_start.as_second() + 2 * 86_400).expect("time");
    let api = store
        .results("api", day_start, end, 100)
        .await
        .expect("api");
    assert_eq!(api.len(), 3);
    assert_eq!(api[0].at, batch[0].at, "milliseconds are kept");
    assert_eq!(api[0].error.as_deref(), Some(refused));
    assert_eq!(api[1].error, None, "the first write of a time stands");
    assert_eq!(api[1].http_status, Some(200));
    assert_eq!(api[2].error.as_deref(), Some(refused));
    // A range that starts inside a millisecond holds only later results.
    let inside = Timestamp::from_microsecond(batch[0].at.as_microsecond() + 1).expect("time");
    assert_eq!(
        store
            .results("api", inside, end, 100)
            .await
            .expect("later")
            .len(),
        2
    );
    assert_eq!(
        store
            .results("db", day_start, end, 100)
            .await
            .expect("db")
            .len(),
        1
    );
    assert!(store
        .results("nobody", day_start, end, 100)
        .await
        .expect("unknown monitor")
        .is_empty());

    store
        .roll_up("api", RollupPeriod::Day, day_start)
        .await
        .expect("roll up")
        .expect("a rollup");
    assert_eq!(
        store
            .delete_rolled_up_results(end, 100)
            .await
            .expect("retention"),
        2
    );
    let kept = store
        .results("api", day_start, end, 100)
        .await
        .expect("kept");
    assert_eq!(kept.len(), 1);
    assert_eq!(
        kept[0].error.as_deref(),
        Some(refused),
        "the text is still there"
    );
    // Once the second day goes as well, nothing refers to the text; a new result with it
    // stores it again.
    store
        .roll_up("api", RollupPeriod::Day, end)
        .await
        .expect("roll up an empty day");
    let second_day = Timestamp::from_second(day_start.as_second() + 86_400).expect("time");
    store
        .roll_up("api", RollupPeriod::Day, second_day)
        .await
        .expect("roll up")
        .expect("a rollup");
    let far = Timestamp::from_second(day_start.as_second() + 30 * 86_400).expect("time");
    assert_eq!(
        store.delete_rolled_up_results(far, 100).await.expect("all"),
        1
    );
    store
        .record_result(&result("api", 40 * 86_400_000, Some(refused)))
        .await
        .expect("again");
    let again = store
        .results(
            "api",
            far,
            Timestamp::from_second(far.as_second() + 20 * 86_400).expect("time"),
            10,
        )
        .await
        .expect("again");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].error.as_deref(), Some(refused));
}

/// Several checks settle in one call: each whose claim is held stores its result and moves its
/// item on (new due time and payload, lease freed); one whose item another claimer took over
/// changes nothing. Rollups of several monitors are written together.
pub async fn checks_settle_together_and_a_lost_claim_changes_nothing(store: Arc<dyn Store>) {
    use crate::due::{
        ClaimRequest, ClaimerId, DueKey, DueKind, NewDueItem, Settled, WhenScheduled,
    };
    use crate::monitor_results::{CheckResultRow, CheckSettlement, ResultStatus, RollupPeriod};
    const CHECK: DueKind = DueKind::from_static("conformance.check");
    let at = |second: i64| Timestamp::from_second(1_800_000_000 + second).expect("time");
    let item = |name: &str, due: i64, payload: serde_json::Value| {
        NewDueItem::new(CHECK, DueKey::parse(name).expect("key"), &payload, at(due)).expect("item")
    };
    for name in ["a", "b", "c"] {
        store
            .schedule(&item(name, 0, json!({})), WhenScheduled::Keep, at(0))
            .await
            .expect("schedule");
    }
    let claim = |who: &'static str, now: i64| {
        let store = Arc::clone(&store);
        async move {
            let claimer = ClaimerId::parse(who).expect("claimer");
            store
                .claim(&ClaimRequest {
                    kinds: &[CHECK],
                    claimer: &claimer,
                    now: at(now),
                    lease_until: at(now + 10),
                    limit: 10,
                })
                .await
                .expect("claim")
        }
    };
    let mine = claim("runner-a", 0).await;
    assert_eq!(mine.len(), 3);
    // b's lease ends unsettled and another runner takes it over.
    store.renew(&mine[0], at(100)).await.expect("renew a");
    store.renew(&mine[2], at(100)).await.expect("renew c");
    let theirs = claim("runner-b", 10).await;
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].key.as_str(), "b");
    let settlements: Vec<CheckSettlement> = mine
        .iter()
        .map(|claimed| CheckSettlement {
            item: claimed.clone(),
            next: item(
                claimed.key.as_str(),
                30,
                json!({ "checked": claimed.key.as_str() }),
            ),
            result: CheckResultRow {
                monitor: claimed.key.as_str().to_owned(),
                at: at(5),
                status: ResultStatus::Up,
                latency_ms: 7,
                http_status: Some(200),
                error: None,
            },
        })
        .collect();
    assert_eq!(
        store.settle_checks(&settlements).await.expect("settle"),
        vec![Settled::Applied, Settled::LeaseLost, Settled::Applied]
    );
    assert_eq!(store.settle_checks(&[]).await.expect("none"), Vec::new());
    for name in ["a", "c"] {
        let row = store
            .due_item(&CHECK, &DueKey::parse(name).expect("key"))
            .await
            .expect("read")
            .expect("kept");
        assert_eq!(row.due_at, at(30), "{name}");
        assert_eq!(row.payload, json!({ "checked": name }));
        assert_eq!(row.claimed_by, None, "{name}: lease freed");
        assert_eq!(row.attempts, 0);
        let results = store
            .results(name, at(0), at(60), 10)
            .await
            .expect("results");
        assert_eq!(results.len(), 1, "{name}");
        assert_eq!(results[0].latency_ms, 7);
    }
    let b = store
        .due_item(&CHECK, &DueKey::parse("b").expect("key"))
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(
        b.claimed_by.as_deref(),
        Some("runner-b"),
        "the new claim stands"
    );
    assert_eq!(b.due_at, at(0));
    assert!(store
        .results("b", at(0), at(60), 10)
        .await
        .expect("results")
        .is_empty());
    // Settling the same claims again: they are no longer held.
    assert_eq!(
        store.settle_checks(&settlements[..1]).await.expect("again"),
        vec![Settled::LeaseLost]
    );

    let monitors = vec!["a".to_owned(), "c".to_owned(), "never-checked".to_owned()];
    assert_eq!(
        store
            .roll_up_many(&monitors, RollupPeriod::Hour, at(5))
            .await
            .expect("roll up"),
        2
    );
    let hour = RollupPeriod::Hour.start_of(at(5));
    for name in ["a", "c"] {
        let rollups = store
            .rollups(name, RollupPeriod::Hour, hour, 10)
            .await
            .expect("rollups");
        assert_eq!(rollups.len(), 1, "{name}");
        assert_eq!((rollups[0].checks, rollups[0].p99_ms), (1, 7));
    }
}

/// Rule counts written in several transactions add up per slot; last-seen times only move
/// forward; a rule's watch keeps the time it was first watched; forgetting removes the rules
/// not kept.
pub async fn rule_counts_add_up_across_writes(store: Arc<dyn Store>) {
    use crate::rule_counts::{CountScale, RuleCountDelta, RuleSeen};
    let at = |second: i64| Timestamp::from_second(1_800_000_000 + second).expect("time");
    let delta = |rule: &str, scale, slot, count| RuleCountDelta {
        rule: rule.to_owned(),
        scale,
        slot,
        count,
    };
    let seen = |rule: &str, second| RuleSeen {
        rule: rule.to_owned(),
        at: at(second),
    };
    let watch = store.watch_rule("storm@1", at(0)).await.expect("watch");
    assert_eq!(
        (watch.watched_since, watch.last_seen, watch.reported),
        (at(0), None, None)
    );
    store
        .add_rule_counts(
            &[
                delta("storm@1", CountScale::Bucket, 10, 2),
                delta("storm@1", CountScale::Window, 1, 2),
            ],
            &[seen("storm@1", 20)],
            at(21),
        )
        .await
        .expect("add");
    store
        .add_rule_counts(
            &[
                delta("storm@1", CountScale::Bucket, 10, 3),
                delta("storm@1", CountScale::Bucket, 11, 1),
                delta("other@2", CountScale::Bucket, 10, 9),
            ],
            &[seen("storm@1", 15), seen("other@2", 30)],
            at(31),
        )
        .await
        .expect("add again");
    store
        .add_rule_counts(&[], &[], at(32))
        .await
        .expect("nothing");
    let count = |rule: &'static str, scale, from, to| {
        let store = Arc::clone(&store);
        async move {
            store
                .rule_count(rule, scale, from, to)
                .await
                .expect("count")
        }
    };
    assert_eq!(count("storm@1", CountScale::Bucket, 0, 100).await, 6);
    assert_eq!(count("storm@1", CountScale::Bucket, 11, 12).await, 1);
    assert_eq!(count("storm@1", CountScale::Window, 0, 100).await, 2);
    assert_eq!(count("missing@0", CountScale::Bucket, 0, 100).await, 0);
    let watch = store.watch_rule("storm@1", at(40)).await.expect("watch");
    assert_eq!(watch.watched_since, at(0), "first watched at 0");
    assert_eq!(
        watch.last_seen,
        Some(at(20)),
        "an older event does not move it back"
    );
    store
        .set_rule_reported("storm@1", true)
        .await
        .expect("report");
    assert_eq!(
        store
            .watch_rule("storm@1", at(41))
            .await
            .expect("watch")
            .reported,
        Some(true)
    );
    assert_eq!(
        store
            .prune_rule_counts("storm@1", CountScale::Bucket, 11)
            .await
            .expect("prune"),
        1
    );
    assert_eq!(count("storm@1", CountScale::Bucket, 0, 100).await, 1);
    assert_eq!(
        store
            .forget_rules_except(&["storm@1".to_owned()])
            .await
            .expect("forget"),
        1
    );
    assert_eq!(count("other@2", CountScale::Bucket, 0, 100).await, 0);
    assert_eq!(count("storm@1", CountScale::Bucket, 0, 100).await, 1);
}
