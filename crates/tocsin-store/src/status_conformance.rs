//! The status page conformance suite: what every backend must do with published incidents,
//! maintenance windows and component overrides.
//!
//! A backend's tests call `tocsin_store::status_suite!(make_store)` with the same `make_store`
//! as `conformance_suite!`. Compiled with the `testsuite` feature only.

use std::sync::Arc;

use tocsin_core::{
    Actor, EventAction, IncidentNumber, ResolvePolicy, ServiceId, TimelineData, TimelineKind,
    Timestamp,
};

use crate::conformance::event;
use crate::status::{NewMaintenance, NewStatusUpdate};
use crate::{PageRequest, Store, StoreError};

/// Generates one `#[tokio::test]` per status conformance case.
#[macro_export]
macro_rules! status_suite {
    ($make:path) => {
        $crate::status_suite!(@cases $make;
            the_first_update_publishes_and_every_update_is_on_the_timeline,
            publishing_needs_a_name_and_an_impact_and_a_refusal_writes_nothing,
            public_incidents_are_open_ones_and_recent_ones,
            maintenance_windows_are_listed_and_cancelled,
            component_overrides_are_set_and_cleared,
        );
    };
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                if let Some((store, guard)) = $make().await {
                    $crate::status_conformance::$case(store).await;
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

fn by() -> Actor {
    Actor::token("conformance")
}

/// Opens incidents 1..=count (one per key) and returns their numbers.
async fn incidents(store: &dyn Store, count: usize) -> Vec<IncidentNumber> {
    for index in 0..count {
        store
            .ingest(
                &[event(
                    &format!("svc{index}"),
                    EventAction::Trigger,
                    "disk",
                    i64::try_from(index).expect("small"),
                )],
                &auto,
            )
            .await
            .expect("ingest");
    }
    (1..=count)
        .map(|number| IncidentNumber(i64::try_from(number).expect("small")))
        .collect()
}

fn update(incident: IncidentNumber, status: &str, message: &str) -> NewStatusUpdate {
    NewStatusUpdate {
        incident,
        status: status.to_owned(),
        message: message.to_owned(),
        affected: Vec::new(),
        name: None,
        impact: None,
        by: by(),
    }
}

fn publish(incident: IncidentNumber, message: &str) -> NewStatusUpdate {
    NewStatusUpdate {
        affected: vec![("checkout".to_owned(), "partial_outage".to_owned())],
        name: Some("Card payments fail".to_owned()),
        impact: Some("major".to_owned()),
        ..update(incident, "investigating", message)
    }
}

pub async fn the_first_update_publishes_and_every_update_is_on_the_timeline(store: Arc<dyn Store>) {
    let number = incidents(store.as_ref(), 1).await[0];
    assert_eq!(store.public_incident(number).await.expect("read"), None);

    let (published, entry) = store
        .post_status_update(&publish(number, "We are looking into it"), at(100))
        .await
        .expect("publish");
    assert_eq!(published.name, "Card payments fail");
    assert_eq!(published.impact, "major");
    assert_eq!(published.status, "investigating");
    assert_eq!(published.published_at, at(100));
    assert_eq!(
        published.started_at,
        at(-30),
        "when the first signal says it began"
    );
    assert_eq!(published.public_id.len(), 16);
    assert!(published.public_id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(published.updates.len(), 1);
    assert_eq!(
        published.updates[0].affected,
        vec![("checkout".to_owned(), "partial_outage".to_owned())]
    );
    assert_eq!(entry.kind(), TimelineKind::StatusUpdated);
    assert_eq!(
        entry.data,
        TimelineData::StatusUpdated {
            status: "investigating".to_owned(),
            message: "We are looking into it".to_owned(),
            affected: vec![("checkout".to_owned(), "partial_outage".to_owned())],
            published: true,
        }
    );

    store
        .post_status_update(&update(number, "monitoring", "A fix is out"), at(200))
        .await
        .expect("monitoring");
    let (resolved, entry) = store
        .post_status_update(
            &NewStatusUpdate {
                name: Some("Card payments failed".to_owned()),
                ..update(number, "resolved", "All good ✅")
            },
            at(300),
        )
        .await
        .expect("resolve");
    assert!(matches!(
        entry.data,
        TimelineData::StatusUpdated {
            published: false,
            ..
        }
    ));
    assert_eq!(resolved.public_id, published.public_id, "the id is stable");
    assert_eq!(resolved.name, "Card payments failed", "renamed");
    assert_eq!(resolved.impact, "major", "kept");
    assert_eq!(resolved.status, "resolved");
    assert_eq!(resolved.monitoring_at, Some(at(200)));
    assert_eq!(resolved.resolved_at, Some(at(300)));
    assert_eq!(resolved.updated_at, at(300));
    let statuses: Vec<&str> = resolved.updates.iter().map(|u| u.status.as_str()).collect();
    assert_eq!(
        statuses,
        ["resolved", "monitoring", "investigating"],
        "newest first"
    );
    assert_eq!(resolved.updates[0].message, "All good ✅");

    // An update after "resolved" reopens it.
    let (reopened, _) = store
        .post_status_update(&update(number, "identified", "It is back"), at(400))
        .await
        .expect("reopen");
    assert_eq!(reopened.resolved_at, None);
    assert_eq!(reopened.monitoring_at, Some(at(200)));

    let timeline = store
        .timeline(number, PageRequest::first(500))
        .await
        .expect("timeline");
    let updates = timeline
        .items
        .iter()
        .filter(|entry| entry.kind() == TimelineKind::StatusUpdated)
        .count();
    assert_eq!(updates, 4);
    assert_eq!(
        store.public_incident(number).await.expect("read"),
        Some(reopened)
    );
}

pub async fn publishing_needs_a_name_and_an_impact_and_a_refusal_writes_nothing(
    store: Arc<dyn Store>,
) {
    let number = incidents(store.as_ref(), 1).await[0];
    let refusals = [
        update(number, "investigating", "no name"),
        NewStatusUpdate {
            name: Some("Name".to_owned()),
            ..update(number, "investigating", "no impact")
        },
        NewStatusUpdate {
            message: " ".to_owned(),
            ..publish(number, "")
        },
        NewStatusUpdate {
            message: "nul \0 here".to_owned(),
            ..publish(number, "")
        },
    ];
    for refused in &refusals {
        let error = store
            .post_status_update(refused, at(100))
            .await
            .expect_err("refused");
        assert!(matches!(error, StoreError::Invalid(_)), "{error:?}");
    }
    assert_eq!(store.public_incident(number).await.expect("read"), None);
    let timeline = store
        .timeline(number, PageRequest::first(500))
        .await
        .expect("timeline");
    assert!(timeline
        .items
        .iter()
        .all(|entry| entry.kind() != TimelineKind::StatusUpdated));
    let missing = store
        .post_status_update(&publish(IncidentNumber(99), "nope"), at(100))
        .await
        .expect_err("no such incident");
    assert!(
        matches!(missing, StoreError::NotFound { .. }),
        "{missing:?}"
    );
}

pub async fn public_incidents_are_open_ones_and_recent_ones(store: Arc<dyn Store>) {
    let numbers = incidents(store.as_ref(), 4).await;
    // 1: published and open; 2: resolved long ago; 3: resolved recently; 4: internal.
    for (number, second) in numbers.iter().take(3).zip([100, 200, 300]) {
        store
            .post_status_update(&publish(*number, "looking"), at(second))
            .await
            .expect("publish");
    }
    store
        .post_status_update(&update(numbers[1], "resolved", "fixed"), at(1_000))
        .await
        .expect("resolve");
    store
        .post_status_update(&update(numbers[2], "resolved", "fixed"), at(5_000))
        .await
        .expect("resolve");
    let listed = store.public_incidents(at(4_000), 500).await.expect("list");
    let listed: Vec<i64> = listed.iter().map(|incident| incident.incident.0).collect();
    assert_eq!(
        listed,
        [numbers[2].0, numbers[0].0],
        "newest published first"
    );
    let all = store.public_incidents(at(0), 500).await.expect("list");
    assert_eq!(all.len(), 3, "the internal one is never listed");
    let one = store.public_incidents(at(0), 1).await.expect("list");
    assert_eq!(one.len(), 1, "the limit holds");
    assert!(all.iter().all(|incident| !incident.updates.is_empty()));
}

pub async fn maintenance_windows_are_listed_and_cancelled(store: Arc<dyn Store>) {
    let window = |name: &str, start: i64, end: i64| NewMaintenance {
        name: name.to_owned(),
        message: "Database upgrade".to_owned(),
        components: vec!["checkout".to_owned(), "search".to_owned()],
        starts_at: at(start),
        ends_at: at(end),
        by: by(),
    };
    let refused = store
        .create_maintenance(&window("backwards", 100, 100), at(0))
        .await
        .expect_err("end not after start");
    assert!(matches!(refused, StoreError::Invalid(_)), "{refused:?}");
    let soon = store
        .create_maintenance(&window("soon", 1_000, 2_000), at(0))
        .await
        .expect("create");
    let now_running = store
        .create_maintenance(&window("running", 50, 5_000), at(0))
        .await
        .expect("create");
    let past = store
        .create_maintenance(&window("past", 10, 20), at(0))
        .await
        .expect("create");
    assert_eq!(soon.components, ["checkout", "search"]);
    assert_eq!(store.maintenance(soon.id).await.expect("read"), soon);
    assert!(now_running.is_active(at(100)));
    assert!(!soon.is_active(at(100)));

    let listed = store.maintenances(at(100), 500).await.expect("list");
    let names: Vec<&str> = listed.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["running", "soon"], "by start, ended ones left out");

    // Cancelled while running: it ends now. Cancelled ahead: never shown.
    let cancelled = store
        .cancel_maintenance(now_running.id, at(150))
        .await
        .expect("cancel");
    assert_eq!(cancelled.ends_at, at(150));
    assert_eq!(cancelled.cancelled_at, Some(at(150)));
    assert!(!cancelled.is_active(at(151)));
    assert!(cancelled.starts_before_cancel());
    let ahead = store
        .cancel_maintenance(soon.id, at(150))
        .await
        .expect("cancel");
    assert_eq!(ahead.ends_at, at(2_000));
    assert!(!ahead.starts_before_cancel());
    assert!(!ahead.is_active(at(1_500)));
    let again = store
        .cancel_maintenance(soon.id, at(160))
        .await
        .expect_err("twice");
    assert!(matches!(again, StoreError::Conflict(_)), "{again:?}");
    let over = store
        .cancel_maintenance(past.id, at(160))
        .await
        .expect_err("over");
    assert!(matches!(over, StoreError::Conflict(_)), "{over:?}");
    let missing = store.maintenance(999).await.expect_err("missing");
    assert!(
        matches!(missing, StoreError::NotFound { .. }),
        "{missing:?}"
    );
}

pub async fn component_overrides_are_set_and_cleared(store: Arc<dyn Store>) {
    assert!(store.component_overrides().await.expect("read").is_empty());
    store
        .set_component_override("search", Some("major_outage"), &by(), at(1))
        .await
        .expect("set");
    let set = store
        .set_component_override("checkout", Some("degraded_performance"), &by(), at(2))
        .await
        .expect("set")
        .expect("in force");
    assert_eq!(set.status, "degraded_performance");
    store
        .set_component_override("search", Some("partial_outage"), &by(), at(3))
        .await
        .expect("replace");
    let all = store.component_overrides().await.expect("read");
    let pairs: Vec<(&str, &str)> = all
        .iter()
        .map(|o| (o.component.as_str(), o.status.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("checkout", "degraded_performance"),
            ("search", "partial_outage")
        ]
    );
    assert_eq!(all[1].set_at, at(3));
    assert_eq!(all[1].set_by, "token:conformance");
    let cleared = store
        .set_component_override("search", None, &by(), at(4))
        .await
        .expect("clear");
    assert_eq!(cleared, None);
    assert_eq!(store.component_overrides().await.expect("read").len(), 1);
}
