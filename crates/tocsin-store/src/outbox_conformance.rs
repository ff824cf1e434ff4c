//! The outbox conformance suite: what every backend's outbox and escalation writes must do,
//! with two stores on one database, as two processes or two replicas would have.
//!
//! A backend's tests call `tocsin_store::outbox_suite!(make_pair)` where `make_pair` is an
//! async fn returning `Option<OutboxPair>` (`None` when the backend is not available here).

use std::any::Any;
use std::collections::HashSet;
use std::sync::Arc;

use serde_json::json;
use tocsin_core::{
    Actor, Command, EventAction, IncidentNumber, ResolvePolicy, ServiceId, TimelineData,
    TimelineKind, Timestamp, ESCALATION_STEP_KIND,
};

use crate::conformance::event;
use crate::due::{ClaimRequest, ClaimerId, DueKey, DueKind, FIRST_ESCALATION_STEP};
use crate::outbox::{
    Bundle, BundleClaim, ContactMethod, Delivery, EscalationStepOutcome, EscalationStepWrite,
    EscalationTurn, NewNotification, NotificationClaim, NotificationRow, NotificationState,
    Recipient, Settlement, TurnCandidate, GAP_NOTICE_KIND, MAX_SETTLE_BATCH_ROWS, TEST_KIND,
};
use crate::{PageRequest, Store, StoreError};

/// Two stores on one database, and what removes that database.
pub struct OutboxPair {
    pub first: Arc<dyn Store>,
    pub second: Arc<dyn Store>,
    /// Dropped after the stores: removes the database.
    pub guard: Box<dyn Any + Send>,
}

/// Generates one `#[tokio::test]` per outbox conformance case.
#[macro_export]
macro_rules! outbox_suite {
    ($make:path) => {
        $crate::outbox_suite!(@cases $make;
            opening_an_incident_schedules_its_first_escalation_step,
            notifications_are_claimed_once_and_settled_on_the_timeline,
            duplicate_pending_notifications_collapse,
            expired_claims_are_reclaimed_and_stale_settlements_change_nothing,
            acknowledging_cancels_pending_notifications_and_the_escalation,
            an_escalation_step_is_written_once_and_not_after_an_acknowledgement,
            two_stores_claim_many_notifications_and_send_each_once,
            steps_written_together_settle_their_claims_in_the_same_transaction,
            server_keys_are_created_once_and_rotate,
            a_round_robin_level_takes_turns_across_incidents_and_stores,
            an_acknowledgement_timeout_is_set_by_acknowledging_and_restarts_the_escalation,
            acknowledging_or_resolving_by_event_stops_paging_and_sets_the_timeout,
            a_contact_method_gets_one_message_per_window_and_the_rest_bundled,
            a_page_that_fails_for_good_is_rerouted_to_the_next_untried_contact_method,
            a_notification_about_no_incident_is_settled_on_its_row_only,
            a_batch_of_settlements_is_one_write_and_counts_rows_settled_elsewhere,
            a_settlement_batch_after_an_acknowledgement_settles_only_the_claimed_rows,
            bundles_of_many_contact_methods_are_taken_in_one_write,
        );
    };
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                if let Some(pair) = $make().await {
                    $crate::outbox_conformance::$case(pair).await;
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

fn claimer(name: &str) -> ClaimerId {
    ClaimerId::parse(name).expect("claimer")
}

fn escalation() -> DueKind {
    DueKind::parse(ESCALATION_STEP_KIND).expect("kind")
}

/// Opens incident 1 (service `api`, key `disk`) at second 0.
async fn open_incident(store: &dyn Store) -> IncidentNumber {
    store
        .ingest(&[event("api", EventAction::Trigger, "disk", 0)], &auto)
        .await
        .expect("ingest");
    IncidentNumber(1)
}

fn page(incident: IncidentNumber, user: &str, contact: &str, key: &str) -> NewNotification {
    NewNotification {
        incident: Some(incident),
        recipient: Recipient::User {
            user: user.to_owned(),
            contact: contact.to_owned(),
        },
        method: "email".to_owned(),
        kind: "page".to_owned(),
        payload: json!({"level": 1}),
        idempotency_key: key.to_owned(),
        not_before: at(0),
    }
}

fn claim<'a>(claimer: &'a ClaimerId, now: Timestamp, limit: usize) -> NotificationClaim<'a> {
    NotificationClaim {
        claimer,
        now,
        claim_until: now + std::time::Duration::from_secs(60),
        limit,
    }
}

pub async fn opening_an_incident_schedules_its_first_escalation_step(pair: OutboxPair) {
    let store = pair.first.as_ref();
    let number = open_incident(store).await;
    let item = store
        .due_item(&escalation(), &DueKey::parse("1").expect("key"))
        .await
        .expect("read")
        .expect("the first step is scheduled with the incident");
    assert_eq!(item.due_at, at(0), "due at once");
    assert_eq!(item.payload.to_string(), FIRST_ESCALATION_STEP);
    // A second trigger of the same alert folds: no second item, the first unchanged.
    store
        .ingest(&[event("api", EventAction::Trigger, "disk", 5)], &auto)
        .await
        .expect("fold");
    let again = store
        .due_item(
            &escalation(),
            &DueKey::parse(&number.0.to_string()).expect("key"),
        )
        .await
        .expect("read")
        .expect("still there");
    assert_eq!(again.id, item.id);
    // An alert opened and resolved in one batch schedules nothing.
    store
        .ingest(
            &[
                event("api", EventAction::Trigger, "blip", 10),
                event("api", EventAction::Resolve, "blip", 10),
            ],
            &auto,
        )
        .await
        .expect("ingest");
    assert!(store
        .due_item(&escalation(), &DueKey::parse("2").expect("key"))
        .await
        .expect("read")
        .is_none());
    drop(pair);
}

pub async fn notifications_are_claimed_once_and_settled_on_the_timeline(pair: OutboxPair) {
    let store = pair.first.as_ref();
    let number = open_incident(store).await;
    let mut later = page(number, "ben", "mail", "page-1-ben");
    later.not_before = at(120);
    let added = store
        .enqueue_notifications(&[page(number, "ana", "mail", "page-1-ana"), later], at(0))
        .await
        .expect("enqueue");
    assert_eq!(added, 2);

    let one = claimer("dispatcher-one");
    let claimed = store
        .claim_notifications(&claim(&one, at(1), 10))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1, "ben's is not due yet");
    let row = &claimed[0];
    assert_eq!(row.state, NotificationState::Sending);
    assert_eq!(row.attempts, 1);
    assert_eq!(row.idempotency_key, "page-1-ana");
    assert!(store
        .claim_notifications(&claim(&one, at(2), 10))
        .await
        .expect("claim again")
        .is_empty());

    // A failure is retried later, and is on the timeline.
    let entry = store
        .settle_notification(
            row,
            &Delivery::Retry {
                at: at(30),
                error: "connection refused".to_owned(),
            },
            12,
            at(2),
        )
        .await
        .expect("settle")
        .expect("held the claim")
        .timeline
        .expect("on the timeline");
    match &entry.data {
        TimelineData::NotificationAttempted {
            recipient,
            method,
            result,
            attempt,
            latency_ms,
            error,
            ..
        } => {
            assert_eq!(recipient, "user:ana");
            assert_eq!(method, "email");
            assert_eq!(result, "retrying");
            assert_eq!((*attempt, *latency_ms), (1, 12));
            assert_eq!(error.as_deref(), Some("connection refused"));
        }
        other => panic!("unexpected entry {other:?}"),
    }
    assert!(store
        .claim_notifications(&claim(&one, at(29), 10))
        .await
        .expect("claim")
        .is_empty());
    let retried = store
        .claim_notifications(&claim(&one, at(30), 10))
        .await
        .expect("claim");
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].attempts, 2);
    store
        .settle_notification(&retried[0], &Delivery::Sent, 3, at(31))
        .await
        .expect("settle")
        .expect("held");

    let rows = store.notifications(number, 50).await.expect("list");
    assert_eq!(rows[0].state, NotificationState::Sent);
    assert_eq!(rows[0].settled_at, Some(at(31)));
    assert_eq!(rows[1].state, NotificationState::Pending);
    let timeline = store
        .timeline(number, PageRequest::default())
        .await
        .expect("timeline");
    let attempts = timeline
        .items
        .iter()
        .filter(|entry| entry.kind() == TimelineKind::NotificationAttempted)
        .count();
    assert_eq!(attempts, 2, "every attempt is on the timeline");

    // The last failure fails for good.
    let ben = store
        .claim_notifications(&claim(&one, at(120), 10))
        .await
        .expect("claim");
    store
        .settle_notification(
            &ben[0],
            &Delivery::Failed {
                error: "550 no such user".to_owned(),
            },
            5,
            at(121),
        )
        .await
        .expect("settle")
        .expect("held");
    let rows = store.notifications(number, 50).await.expect("list");
    assert_eq!(rows[1].state, NotificationState::Failed);
    assert_eq!(rows[1].last_error.as_deref(), Some("550 no such user"));
    assert!(store
        .claim_notifications(&claim(&one, at(10_000), 10))
        .await
        .expect("claim")
        .is_empty());
    drop(pair);
}

pub async fn duplicate_pending_notifications_collapse(pair: OutboxPair) {
    let store = pair.first.as_ref();
    let number = open_incident(store).await;
    let added = store
        .enqueue_notifications(
            &[
                page(number, "ana", "mail", "page-1-0-ana"),
                // The same key again.
                page(number, "ana", "mail", "page-1-0-ana"),
                // Another step paging ana on the same contact while the first is pending.
                page(number, "ana", "mail", "page-1-1-ana"),
                // Ana's other contact method is another notification.
                page(number, "ana", "push", "page-1-1-ana-push"),
                // So is a reminder on the same contact method half an hour later.
                NewNotification {
                    not_before: at(1_800),
                    ..page(number, "ana", "mail", "page-1-0-ana-reminder")
                },
            ],
            at(0),
        )
        .await
        .expect("enqueue");
    assert_eq!(added, 3);
    let one = claimer("dispatcher-one");
    let claimed = store
        .claim_notifications(&claim(&one, at(0), 10))
        .await
        .expect("claim");
    for row in &claimed {
        store
            .settle_notification(row, &Delivery::Sent, 1, at(1))
            .await
            .expect("settle");
    }
    // Once sent, a later page is a new notification.
    let added = store
        .enqueue_notifications(&[page(number, "ana", "mail", "page-1-2-ana")], at(2))
        .await
        .expect("enqueue");
    assert_eq!(added, 1);
    // Text a store cannot keep is refused before anything is written.
    let error = store
        .enqueue_notifications(
            &[
                page(number, "ben", "mail", "page-1-ben"),
                page(number, "ben\0", "mail", "page-1-nul"),
            ],
            at(2),
        )
        .await
        .expect_err("NUL refused");
    assert!(error.to_string().contains("NUL"), "{error}");
    assert_eq!(
        store.notifications(number, 50).await.expect("list").len(),
        4
    );
    drop(pair);
}

pub async fn expired_claims_are_reclaimed_and_stale_settlements_change_nothing(pair: OutboxPair) {
    let number = open_incident(pair.first.as_ref()).await;
    pair.first
        .enqueue_notifications(&[page(number, "ana", "mail", "page-1-ana")], at(0))
        .await
        .expect("enqueue");
    let dead = claimer("dispatcher-dead");
    let taken = pair
        .first
        .claim_notifications(&claim(&dead, at(0), 10))
        .await
        .expect("claim");
    assert_eq!(taken.len(), 1);
    let alive = claimer("dispatcher-alive");
    assert!(pair
        .second
        .claim_notifications(&claim(&alive, at(59), 10))
        .await
        .expect("claim")
        .is_empty());
    let again = pair
        .second
        .claim_notifications(&claim(&alive, at(60), 10))
        .await
        .expect("claim");
    assert_eq!(again.len(), 1, "the dead dispatcher's claim ended");
    assert_eq!(again[0].attempts, 2);
    assert_eq!(
        pair.first
            .settle_notification(&taken[0], &Delivery::Sent, 1, at(61))
            .await
            .expect("stale settle"),
        None,
        "the dead dispatcher no longer holds it"
    );
    assert!(pair
        .second
        .settle_notification(&again[0], &Delivery::Sent, 1, at(61))
        .await
        .expect("settle")
        .is_some());
    drop(pair);
}

/// Three pages of `incident`: ana's being sent (claimed by `claimer`, returned first), ben's
/// failed once and waiting for a retry, chen's queued.
async fn sending_retrying_and_queued(
    store: &dyn Store,
    incident: IncidentNumber,
    claimer: &ClaimerId,
) -> Vec<NotificationRow> {
    store
        .enqueue_notifications(
            &[
                page(incident, "ana", "mail", "page-1-ana"),
                page(incident, "ben", "mail", "page-1-ben"),
                page(incident, "chen", "mail", "page-1-chen"),
            ],
            at(0),
        )
        .await
        .expect("enqueue");
    let claimed = store
        .claim_notifications(&claim(claimer, at(1), 2))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 2);
    store
        .settle_notification(
            &claimed[1],
            &Delivery::Retry {
                at: at(100),
                error: "timeout".to_owned(),
            },
            1,
            at(2),
        )
        .await
        .expect("settle");
    claimed
}

pub async fn acknowledging_cancels_pending_notifications_and_the_escalation(pair: OutboxPair) {
    let store = pair.first.as_ref();
    let number = open_incident(store).await;
    let one = claimer("dispatcher-one");
    let claimed = sending_retrying_and_queued(store, number, &one).await;

    store
        .command(number, &Command::Acknowledge, &Actor::token("ana"), at(3))
        .await
        .expect("acknowledge");
    let rows = store.notifications(number, 50).await.expect("list");
    let states: Vec<_> = rows.iter().map(|row| row.state).collect();
    assert_eq!(
        states,
        [
            NotificationState::Sending,
            NotificationState::Cancelled,
            NotificationState::Cancelled
        ]
    );
    assert!(store
        .due_item(&escalation(), &DueKey::parse("1").expect("key"))
        .await
        .expect("read")
        .is_none());
    // Nothing is left to claim but ana's message in flight, still held by its dispatcher.
    assert!(store
        .claim_notifications(&claim(&one, at(50), 10))
        .await
        .expect("claim")
        .is_empty());
    // The message in flight finishes its attempt.
    assert!(store
        .settle_notification(&claimed[0], &Delivery::Sent, 1, at(4))
        .await
        .expect("settle")
        .is_some());
    drop(pair);
}

pub async fn an_escalation_step_is_written_once_and_not_after_an_acknowledgement(pair: OutboxPair) {
    let number = open_incident(pair.first.as_ref()).await;
    let step = EscalationStepWrite {
        incident: number,
        step_payload: json!({"step": 0}),
        next_payload: json!({"step": 1}),
        next_due_at: at(300),
        notifications: vec![page(number, "ana", "mail", "page-1-0-0-ana-mail")],
        timeline: vec![TimelineData::EscalationNotified {
            pass: 0,
            level: 1,
            recipients: vec!["ana".to_owned()],
        }],
        turn: None,
        now: at(1),
        settle: None,
    };
    assert_eq!(
        pair.first.run_escalation_step(&step).await.expect("step"),
        EscalationStepOutcome::Written {
            queued: 1,
            turn: None
        }
    );
    // The same step again (its runner died before settling; another replica runs it).
    assert_eq!(
        pair.second
            .run_escalation_step(&step)
            .await
            .expect("step again"),
        EscalationStepOutcome::Stale
    );
    let item = pair
        .first
        .due_item(&escalation(), &DueKey::parse("1").expect("key"))
        .await
        .expect("read")
        .expect("item");
    assert_eq!(item.payload, json!({"step": 1}));
    assert_eq!(item.due_at, at(300));
    let timeline = pair
        .first
        .timeline(number, PageRequest::default())
        .await
        .expect("timeline");
    let notified = timeline
        .items
        .iter()
        .filter(|entry| entry.kind() == TimelineKind::EscalationNotified)
        .count();
    assert_eq!(notified, 1);

    // Escalating makes the step due now, as a new schedule of it.
    pair.first
        .command(number, &Command::Escalate, &Actor::token("ana"), at(10))
        .await
        .expect("escalate");
    let escalated = pair
        .first
        .due_item(&escalation(), &DueKey::parse("1").expect("key"))
        .await
        .expect("read")
        .expect("item");
    assert_eq!(escalated.due_at, at(10));
    assert_eq!(escalated.revision, item.revision + 1);

    pair.first
        .command(number, &Command::Acknowledge, &Actor::token("ana"), at(20))
        .await
        .expect("acknowledge");
    let next = EscalationStepWrite {
        step_payload: json!({"step": 1}),
        next_payload: json!({"step": 2}),
        notifications: vec![page(number, "ben", "mail", "page-1-1-0-ben-mail")],
        now: at(21),
        ..step
    };
    assert_eq!(
        pair.second.run_escalation_step(&next).await.expect("step"),
        EscalationStepOutcome::NotTriggered
    );
    let error = pair
        .first
        .command(number, &Command::Escalate, &Actor::token("ana"), at(30))
        .await
        .expect_err("an acknowledged incident does not escalate");
    assert!(matches!(error, crate::StoreError::Conflict(_)), "{error}");
    assert_eq!(
        pair.first
            .notifications(number, 50)
            .await
            .expect("list")
            .len(),
        1
    );
    drop(pair);
}

pub async fn steps_written_together_settle_their_claims_in_the_same_transaction(pair: OutboxPair) {
    let mut numbers = Vec::new();
    for (second, key) in ["batch-a", "batch-b", "batch-c"].into_iter().enumerate() {
        pair.first
            .ingest(&[event("api", EventAction::Trigger, key, 0)], &auto)
            .await
            .expect("ingest");
        numbers.push(IncidentNumber(second as i64 + 1));
    }
    let one = claimer("one");
    let claimed = pair
        .first
        .claim(&ClaimRequest {
            kinds: &[escalation()],
            claimer: &one,
            now: at(1),
            lease_until: at(61),
            limit: 10,
        })
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 3);
    // The third incident is acknowledged before its step is written.
    let acknowledged = IncidentNumber(claimed[2].key.as_str().parse().expect("number"));
    pair.first
        .command(
            acknowledged,
            &Command::Acknowledge,
            &Actor::token("ana"),
            at(2),
        )
        .await
        .expect("acknowledge");
    let writes: Vec<EscalationStepWrite> = claimed
        .iter()
        .map(|item| {
            let number = IncidentNumber(item.key.as_str().parse().expect("number"));
            EscalationStepWrite {
                incident: number,
                step_payload: item.payload.clone(),
                next_payload: json!({"step": 1}),
                next_due_at: at(300),
                notifications: vec![page(
                    number,
                    "ana",
                    "mail",
                    &format!("page-{}-0-0-ana-mail", number.0),
                )],
                timeline: vec![TimelineData::EscalationNotified {
                    pass: 0,
                    level: 1,
                    recipients: vec!["ana".to_owned()],
                }],
                turn: None,
                now: at(3),
                settle: Some(item.lease.clone()),
            }
        })
        .collect();
    let outcomes = pair
        .second
        .run_escalation_steps(&writes)
        .await
        .expect("steps");
    assert_eq!(
        outcomes,
        [
            EscalationStepOutcome::Written {
                queued: 1,
                turn: None
            },
            EscalationStepOutcome::Written {
                queued: 1,
                turn: None
            },
            EscalationStepOutcome::NotTriggered,
        ]
    );
    for item in &claimed[..2] {
        let row = pair
            .first
            .due_item(&escalation(), &item.key)
            .await
            .expect("read")
            .expect("the next step stays scheduled");
        assert_eq!(row.payload, json!({"step": 1}));
        assert_eq!(row.due_at, at(300));
        assert_eq!(row.claimed_by, None, "the claim was settled with the step");
        assert_eq!(row.lease_until, None);
        assert_eq!(row.attempts, 0);
    }
    // Written again under the same claim (a runner that died after the commit): nothing.
    let again = pair
        .first
        .run_escalation_steps(&writes[..2])
        .await
        .expect("steps again");
    assert_eq!(
        again,
        [EscalationStepOutcome::Stale, EscalationStepOutcome::Stale]
    );
    // A claim that was taken over (the step is due again and claimed by another runner)
    // no longer settles anything.
    let mut stale = writes[0].clone();
    stale.step_payload = json!({"step": 1});
    stale.next_payload = json!({"step": 2});
    assert_eq!(
        pair.first
            .run_escalation_steps(std::slice::from_ref(&stale))
            .await
            .expect("stale claim"),
        [EscalationStepOutcome::Stale]
    );
    for number in &numbers[..2] {
        let pages = pair
            .first
            .notifications(*number, 50)
            .await
            .expect("list")
            .len();
        assert!(pages <= 1, "incident {number} paged {pages} times");
    }
    let total: usize = {
        let mut total = 0;
        for number in &numbers {
            total += pair
                .first
                .notifications(*number, 50)
                .await
                .expect("list")
                .len();
        }
        total
    };
    assert_eq!(total, 2, "one page for each incident still triggered");
    drop(pair);
}

pub async fn two_stores_claim_many_notifications_and_send_each_once(pair: OutboxPair) {
    let number = open_incident(pair.first.as_ref()).await;
    let notifications: Vec<_> = (0..300)
        .map(|n| page(number, &format!("user-{n}"), "mail", &format!("page-{n}")))
        .collect();
    pair.first
        .enqueue_notifications(&notifications, at(0))
        .await
        .expect("enqueue");
    let drain = |store: Arc<dyn Store>, name: &'static str| async move {
        let me = claimer(name);
        let mut sent = Vec::new();
        loop {
            let claimed = store
                .claim_notifications(&claim(&me, at(1), 7))
                .await
                .expect("claim");
            if claimed.is_empty() {
                return sent;
            }
            for row in claimed {
                store
                    .settle_notification(&row, &Delivery::Sent, 1, at(2))
                    .await
                    .expect("settle")
                    .expect("held");
                sent.push(row.idempotency_key);
            }
        }
    };
    let (first, second) = tokio::join!(
        tokio::spawn(drain(Arc::clone(&pair.first), "dispatcher-a")),
        tokio::spawn(drain(Arc::clone(&pair.second), "dispatcher-b")),
    );
    let (first, second) = (first.expect("a"), second.expect("b"));
    let mut all: Vec<_> = first.iter().chain(&second).cloned().collect();
    let unique: HashSet<_> = all.iter().cloned().collect();
    assert_eq!(all.len(), 300, "every notification sent");
    assert_eq!(unique.len(), 300, "none sent twice");
    all.sort();
    drop(pair);
}

pub async fn server_keys_are_created_once_and_rotate(pair: OutboxPair) {
    let first = pair
        .first
        .server_key("links", "aa", at(0))
        .await
        .expect("key");
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].secret, "aa");
    let again = pair
        .second
        .server_key("links", "bb", at(1))
        .await
        .expect("key");
    assert_eq!(again, first, "created once");
    let rotated = pair
        .first
        .rotate_server_key("links", "cc", at(2))
        .await
        .expect("rotate");
    assert_eq!(rotated.secret, "cc");
    let now = pair
        .second
        .server_key("links", "dd", at(3))
        .await
        .expect("key");
    assert_eq!(
        now.iter()
            .map(|key| key.secret.as_str())
            .collect::<Vec<_>>(),
        ["cc"]
    );
    // Claiming due work of the escalation kind is unaffected by the outbox.
    let claimed = pair
        .first
        .claim(&ClaimRequest {
            kinds: &[escalation()],
            claimer: &claimer("runner"),
            now: at(3),
            lease_until: at(63),
            limit: 5,
        })
        .await
        .expect("claim");
    assert!(claimed.is_empty());
    drop(pair);
}

/// The first step of incident `number`, on a round-robin level of ana, ben and cy.
fn round_robin_step(number: IncidentNumber) -> EscalationStepWrite {
    let candidates = ["ana", "ben", "cy"]
        .into_iter()
        .map(|user| TurnCandidate {
            user: user.to_owned(),
            notifications: vec![page(
                number,
                user,
                "mail",
                &format!("page-{}-0-0-{user}-mail", number.0),
            )],
            timeline: vec![TimelineData::EscalationNotified {
                pass: 0,
                level: 1,
                recipients: vec![user.to_owned()],
            }],
        })
        .collect();
    EscalationStepWrite {
        incident: number,
        step_payload: json!({"step": 0}),
        next_payload: json!({"step": 1}),
        next_due_at: at(300),
        notifications: Vec::new(),
        timeline: Vec::new(),
        turn: Some(EscalationTurn {
            policy: "api".to_owned(),
            level: 0,
            candidates,
        }),
        now: at(1),
        settle: None,
    }
}

/// Whose turn a written step took.
fn turn_of(outcome: EscalationStepOutcome) -> String {
    match outcome {
        EscalationStepOutcome::Written {
            queued: 1,
            turn: Some(user),
        } => user,
        other => panic!("not a step that paged one person: {other:?}"),
    }
}

pub async fn a_round_robin_level_takes_turns_across_incidents_and_stores(pair: OutboxPair) {
    let keys: Vec<String> = (1..=9).map(|n| format!("disk-{n}")).collect();
    let events: Vec<_> = keys
        .iter()
        .map(|key| event("api", EventAction::Trigger, key, 0))
        .collect();
    let report = pair.first.ingest(&events, &auto).await.expect("ingest");
    assert_eq!(report.incidents_opened, 9);
    let stores = [&pair.first, &pair.second];
    // Three incidents, on alternating stores, page ana, ben and cy in turn.
    let mut turns = Vec::new();
    for n in 1..=3 {
        let store = stores[n % 2];
        let outcome = store
            .run_escalation_step(&round_robin_step(IncidentNumber(n as i64)))
            .await
            .expect("step");
        turns.push(turn_of(outcome));
    }
    assert_eq!(turns, ["ana", "ben", "cy"]);
    // A step written already takes no turn when it runs again.
    assert_eq!(
        pair.second
            .run_escalation_step(&round_robin_step(IncidentNumber(1)))
            .await
            .expect("step again"),
        EscalationStepOutcome::Stale
    );
    let timeline = pair
        .first
        .timeline(IncidentNumber(2), PageRequest::default())
        .await
        .expect("timeline");
    assert!(
        timeline.items.iter().any(|entry| entry.data
            == TimelineData::EscalationNotified {
                pass: 0,
                level: 1,
                recipients: vec!["ben".to_owned()],
            }),
        "the timeline says who: {:?}",
        timeline.items
    );
    let paged: Vec<_> = pair
        .first
        .notifications(IncidentNumber(3), 50)
        .await
        .expect("list")
        .into_iter()
        .map(|row| row.recipient.to_string())
        .collect();
    assert_eq!(paged, ["user:cy"]);

    // Six more, three on each store at once: every turn is taken once.
    let run = |store: &Arc<dyn Store>, numbers: [i64; 3]| {
        let store = Arc::clone(store);
        async move {
            let mut turns = Vec::new();
            for number in numbers {
                let outcome = store
                    .run_escalation_step(&round_robin_step(IncidentNumber(number)))
                    .await
                    .expect("step");
                turns.push(turn_of(outcome));
            }
            turns
        }
    };
    let (one, two) = tokio::join!(
        tokio::spawn(run(&pair.first, [4, 6, 8])),
        tokio::spawn(run(&pair.second, [5, 7, 9]))
    );
    let mut concurrent: Vec<String> = one
        .expect("first store")
        .into_iter()
        .chain(two.expect("second store"))
        .collect();
    concurrent.sort();
    assert_eq!(concurrent, ["ana", "ana", "ben", "ben", "cy", "cy"]);
    drop(pair);
}

/// Every service resolves automatically and has a ten-minute acknowledgement timeout.
struct Timeouts;

impl crate::updates::ServicePolicy for Timeouts {
    fn resolve_policy(&self, _: &ServiceId) -> ResolvePolicy {
        ResolvePolicy::Auto
    }
    fn ack_timeout(&self, _: &ServiceId) -> Option<std::time::Duration> {
        Some(std::time::Duration::from_secs(600))
    }
}

pub async fn an_acknowledgement_timeout_is_set_by_acknowledging_and_restarts_the_escalation(
    pair: OutboxPair,
) {
    let store = pair.first.as_ref();
    let number = open_incident(store).await;
    let key = DueKey::parse("1").expect("key");
    let ack_timeout = DueKind::parse(tocsin_core::ACK_TIMEOUT_KIND).expect("kind");
    store
        .command_with_updates(
            number,
            &Command::Acknowledge,
            &Actor::token("ana"),
            at(20),
            &Timeouts,
        )
        .await
        .expect("acknowledge");
    let item = store
        .due_item(&ack_timeout, &key)
        .await
        .expect("read")
        .expect("set in the acknowledging transaction");
    assert_eq!(item.due_at, at(620));
    assert_eq!(
        item.payload,
        json!({ "acknowledged_at": at(20).as_microsecond() })
    );
    assert!(store
        .due_item(&escalation(), &key)
        .await
        .expect("read")
        .is_none());

    let outcome = pair
        .second
        .command_with_updates(
            number,
            &Command::AckTimeout {
                acknowledged_at: at(20),
                timeout_minutes: 10,
            },
            &Actor::system(),
            at(620),
            &Timeouts,
        )
        .await
        .expect("time out");
    assert_eq!(
        outcome.incident.state,
        tocsin_core::IncidentState::Triggered
    );
    assert_eq!(outcome.incident.acknowledged_at, None);
    let step = store
        .due_item(&escalation(), &key)
        .await
        .expect("read")
        .expect("the escalation starts over");
    assert_eq!(step.due_at, at(620));
    assert_eq!(
        step.payload,
        json!({ "step": 0, "since": at(620).as_microsecond() })
    );
    let last = outcome.entries.last().expect("an entry");
    assert_eq!(
        last.data,
        TimelineData::IncidentAckTimeout {
            timeout_minutes: 10
        }
    );

    // Acknowledged again, then resolved: resolving removes the new timeout.
    store
        .command_with_updates(
            number,
            &Command::Acknowledge,
            &Actor::token("ben"),
            at(700),
            &Timeouts,
        )
        .await
        .expect("acknowledge again");
    assert_eq!(
        store
            .due_item(&ack_timeout, &key)
            .await
            .expect("read")
            .map(|item| item.due_at),
        Some(at(1300)),
        "a new acknowledgement restarts the timer"
    );
    store
        .command_with_updates(
            number,
            &Command::Resolve,
            &Actor::token("ben"),
            at(800),
            &Timeouts,
        )
        .await
        .expect("resolve");
    assert!(store
        .due_item(&ack_timeout, &key)
        .await
        .expect("read")
        .is_none());
    drop(pair);
}

fn bundle_claim<'a>(
    claimer: &'a ClaimerId,
    rows: &'a [NotificationRow],
    now: Timestamp,
) -> BundleClaim<'a> {
    BundleClaim {
        claimer,
        rows,
        now,
        window: std::time::Duration::from_secs(30),
        claim_until: now + std::time::Duration::from_secs(60),
        limit: 100,
    }
}

pub async fn acknowledging_or_resolving_by_event_stops_paging_and_sets_the_timeout(
    pair: OutboxPair,
) {
    let store = pair.first.as_ref();
    let number = open_incident(store).await;
    let key = DueKey::parse("1").expect("key");
    let ack_timeout = DueKind::parse(tocsin_core::ACK_TIMEOUT_KIND).expect("kind");
    sending_retrying_and_queued(store, number, &claimer("dispatcher-one")).await;

    // The monitoring tool acknowledges: the same stop as a command, in the batch.
    pair.second
        .ingest(
            &[event("api", EventAction::Acknowledge, "disk", 3)],
            &Timeouts,
        )
        .await
        .expect("acknowledge by event");
    let incident = store.incident(number).await.expect("incident");
    assert_eq!(incident.state, tocsin_core::IncidentState::Acknowledged);
    let acknowledged_at = incident.acknowledged_at.expect("acknowledged");
    let states: Vec<_> = store
        .notifications(number, 50)
        .await
        .expect("list")
        .iter()
        .map(|row| row.state)
        .collect();
    assert_eq!(
        states,
        [
            NotificationState::Sending,
            NotificationState::Cancelled,
            NotificationState::Cancelled
        ]
    );
    assert!(store
        .due_item(&escalation(), &key)
        .await
        .expect("read")
        .is_none());
    let timer = store
        .due_item(&ack_timeout, &key)
        .await
        .expect("read")
        .expect("the acknowledgement timeout starts with an event too");
    assert_eq!(
        timer.due_at,
        acknowledged_at + std::time::Duration::from_secs(600)
    );
    assert_eq!(
        timer.payload,
        json!({ "acknowledged_at": acknowledged_at.as_microsecond() })
    );

    // Resolved by an event: the timer goes.
    store
        .ingest(&[event("api", EventAction::Resolve, "disk", 20)], &Timeouts)
        .await
        .expect("resolve by event");
    assert!(store
        .due_item(&ack_timeout, &key)
        .await
        .expect("read")
        .is_none());

    // Opened and acknowledged in one batch: no escalation, a timer.
    store
        .ingest(
            &[
                event("api", EventAction::Trigger, "cpu", 30),
                event("api", EventAction::Acknowledge, "cpu", 30),
            ],
            &Timeouts,
        )
        .await
        .expect("ingest");
    let second = DueKey::parse("2").expect("key");
    assert!(store
        .due_item(&escalation(), &second)
        .await
        .expect("read")
        .is_none());
    assert_eq!(
        store
            .due_item(&ack_timeout, &second)
            .await
            .expect("read")
            .map(|item| item.due_at),
        Some(at(630))
    );
    // Without a timeout in the policy, an acknowledgement by event starts none.
    store
        .ingest(
            &[
                event("api", EventAction::Trigger, "net", 40),
                event("api", EventAction::Acknowledge, "net", 41),
            ],
            &auto,
        )
        .await
        .expect("ingest");
    assert!(store
        .due_item(&ack_timeout, &DueKey::parse("3").expect("key"))
        .await
        .expect("read")
        .is_none());
    drop(pair);
}

pub async fn a_contact_method_gets_one_message_per_window_and_the_rest_bundled(pair: OutboxPair) {
    let number = open_incident(pair.first.as_ref()).await;
    pair.first
        .ingest(&[event("api", EventAction::Trigger, "cpu", 0)], &auto)
        .await
        .expect("ingest");
    let other = IncidentNumber(2);
    pair.first
        .enqueue_notifications(
            &[
                page(number, "ana", "mail", "page-1-ana-mail"),
                page(other, "ana", "mail", "page-2-ana-mail"),
                page(number, "ana", "phone", "page-1-ana-phone"),
            ],
            at(0),
        )
        .await
        .expect("enqueue");

    // One claimed page takes the window and brings the contact method's other due page.
    let one = claimer("dispatcher-one");
    let claimed = pair
        .first
        .claim_notifications(&claim(&one, at(1), 1))
        .await
        .expect("claim");
    assert_eq!(claimed[0].idempotency_key, "page-1-ana-mail");
    let Bundle::Send(rows) = pair
        .first
        .take_bundle(&bundle_claim(&one, &claimed, at(1)))
        .await
        .expect("bundle")
    else {
        panic!("the contact method is free");
    };
    let keys: Vec<_> = rows
        .iter()
        .map(|row| row.idempotency_key.as_str())
        .collect();
    assert_eq!(keys, ["page-1-ana-mail", "page-2-ana-mail"]);
    assert!(rows
        .iter()
        .all(|row| row.state == NotificationState::Sending));
    let settled = pair
        .first
        .settle_notifications(&Settlement {
            rows: &rows,
            delivery: &Delivery::Sent,
            latency_ms: 3,
            now: at(2),
            next: &[],
        })
        .await
        .expect("settle");
    assert_eq!(settled, 2);
    for incident in [number, other] {
        let timeline = pair
            .first
            .timeline(incident, PageRequest::default())
            .await
            .expect("timeline");
        assert_eq!(
            timeline
                .items
                .iter()
                .filter(|entry| entry.data.kind() == TimelineKind::NotificationAttempted)
                .count(),
            1,
            "each bundled incident has its attempt"
        );
    }

    // Another page for the same contact method, claimed by the other store within the
    // window, waits for the window's end; another contact method does not.
    pair.second
        .enqueue_notifications(
            &[NewNotification {
                not_before: at(10),
                ..page(other, "ana", "mail", "reminder-2-ana-mail")
            }],
            at(10),
        )
        .await
        .expect("enqueue");
    let two = claimer("dispatcher-two");
    let claimed = pair
        .second
        .claim_notifications(&claim(&two, at(10), 10))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 2, "{claimed:?}");
    let (mail, phone): (Vec<_>, Vec<_>) = claimed.into_iter().partition(|row| {
        row.recipient
            == Recipient::User {
                user: "ana".to_owned(),
                contact: "mail".to_owned(),
            }
    });
    assert_eq!(
        pair.second
            .take_bundle(&bundle_claim(&two, &mail, at(10)))
            .await
            .expect("bundle"),
        Bundle::Deferred { until: at(31) }
    );
    assert!(matches!(
        pair.second
            .take_bundle(&bundle_claim(&two, &phone, at(10)))
            .await
            .expect("bundle"),
        Bundle::Send(rows) if rows.len() == 1
    ));
    let deferred = pair
        .first
        .notifications(other, 10)
        .await
        .expect("list")
        .into_iter()
        .find(|row| row.idempotency_key == "reminder-2-ana-mail")
        .expect("the reminder");
    assert_eq!(deferred.state, NotificationState::Pending);
    assert_eq!(deferred.attempts, 0, "a deferral is not an attempt");
    assert_eq!(deferred.next_attempt_at, at(31));
    assert!(pair
        .first
        .claim_notifications(&claim(&one, at(30), 10))
        .await
        .expect("claim")
        .is_empty());
    let claimed = pair
        .first
        .claim_notifications(&claim(&one, at(31), 10))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    assert!(matches!(
        pair.first
            .take_bundle(&bundle_claim(&one, &claimed, at(31)))
            .await
            .expect("bundle"),
        Bundle::Send(rows) if rows.len() == 1
    ));
    drop(pair);
}

pub async fn a_page_that_fails_for_good_is_rerouted_to_the_next_untried_contact_method(
    pair: OutboxPair,
) {
    let store = pair.first.as_ref();
    let number = open_incident(store).await;
    let mut mail = page(number, "ana", "mail", "page-1-ana-mail");
    mail.payload = json!({"pass": 0, "level": 1});
    store
        .enqueue_notifications(&[mail], at(0))
        .await
        .expect("enqueue");
    let methods = |contacts: &[&str]| -> Vec<ContactMethod> {
        contacts
            .iter()
            .map(|contact| ContactMethod {
                contact: (*contact).to_owned(),
                method: "webhook".to_owned(),
            })
            .collect()
    };
    let one = claimer("dispatcher-one");
    let fail = |rows: Vec<NotificationRow>, next: Vec<ContactMethod>, now: Timestamp| async move {
        store
            .settle_notifications(&Settlement {
                rows: &rows,
                delivery: &Delivery::Failed {
                    error: "http 500: down".to_owned(),
                },
                latency_ms: 1,
                now,
                next: &next,
            })
            .await
            .expect("settle")
    };
    let claimed = store
        .claim_notifications(&claim(&one, at(1), 10))
        .await
        .expect("claim");
    assert_eq!(fail(claimed, methods(&["phone", "pager"]), at(2)).await, 1);
    let rows = store.notifications(number, 10).await.expect("list");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].state, NotificationState::Failed);
    let next = &rows[1];
    assert_eq!(
        next.recipient,
        Recipient::User {
            user: "ana".to_owned(),
            contact: "phone".to_owned()
        }
    );
    assert_eq!(next.state, NotificationState::Pending);
    assert_eq!(next.method, "webhook");
    assert_eq!(next.next_attempt_at, at(2));
    assert_eq!(next.payload["level"], 1);

    // Phone fails too: pager is next (mail, tried, is skipped when the order wraps).
    let claimed = store
        .claim_notifications(&claim(&one, at(3), 10))
        .await
        .expect("claim");
    assert_eq!(fail(claimed, methods(&["pager", "mail"]), at(4)).await, 1);
    // Pager fails: mail and phone were tried, nothing is left.
    let claimed = store
        .claim_notifications(&claim(&one, at(5), 10))
        .await
        .expect("claim");
    assert_eq!(claimed[0].recipient.to_string(), "user:ana");
    assert_eq!(fail(claimed, methods(&["mail", "phone"]), at(6)).await, 1);
    let rows = store.notifications(number, 10).await.expect("list");
    assert_eq!(rows.len(), 3, "nothing left to try");
    let timeline = store
        .timeline(number, PageRequest::default())
        .await
        .expect("timeline");
    let rerouted: Vec<_> = timeline
        .items
        .iter()
        .filter_map(|entry| match &entry.data {
            TimelineData::NotificationRerouted {
                recipient,
                failed_contact,
                next_contact,
                ..
            } => Some((
                recipient.clone(),
                failed_contact.clone(),
                next_contact.clone(),
            )),
            _ => None,
        })
        .collect();
    let ana = "user:ana".to_owned();
    assert_eq!(
        rerouted,
        [
            (ana.clone(), "mail".to_owned(), Some("phone".to_owned())),
            (ana.clone(), "phone".to_owned(), Some("pager".to_owned())),
            (ana, "pager".to_owned(), None),
        ]
    );

    // Once acknowledged, a page that fails is not rerouted.
    let mut late = page(number, "ben", "mail", "page-1-ben-mail");
    late.payload = json!({"pass": 0, "level": 2});
    store
        .enqueue_notifications(&[late], at(7))
        .await
        .expect("enqueue");
    let claimed = store
        .claim_notifications(&claim(&one, at(7), 10))
        .await
        .expect("claim");
    store
        .command(number, &Command::Acknowledge, &Actor::token("ana"), at(8))
        .await
        .expect("acknowledge");
    assert_eq!(fail(claimed, methods(&["phone"]), at(9)).await, 1);
    let rows = store.notifications(number, 10).await.expect("list");
    assert_eq!(rows.len(), 4, "not rerouted after the acknowledgement");
    drop(pair);
}

pub async fn a_notification_about_no_incident_is_settled_on_its_row_only(pair: OutboxPair) {
    let store = pair.first.as_ref();
    let notice = |kind: &str, key: &str, not_before: Timestamp| NewNotification {
        incident: None,
        recipient: Recipient::User {
            user: "ana".to_owned(),
            contact: "mail".to_owned(),
        },
        method: "email".to_owned(),
        kind: kind.to_owned(),
        payload: json!({"name": "Ana"}),
        idempotency_key: key.to_owned(),
        not_before,
    };
    assert_eq!(
        store.oldest_waiting_notification().await.expect("oldest"),
        None
    );
    // Two notices to one person and contact method within a minute are both kept; the same
    // key twice (a rescan, another replica) is one row.
    let added = store
        .enqueue_notices(
            &[
                notice(TEST_KIND, "test-1", at(5)),
                notice(GAP_NOTICE_KIND, "gap-1", at(3)),
                notice(GAP_NOTICE_KIND, "gap-1", at(3)),
            ],
            at(0),
        )
        .await
        .expect("enqueue");
    let keys: Vec<_> = added
        .iter()
        .map(|row| row.idempotency_key.as_str())
        .collect();
    assert_eq!(keys, ["test-1", "gap-1"]);
    assert!(added
        .iter()
        .all(|row| row.state == NotificationState::Pending));
    let again = pair
        .second
        .enqueue_notices(&[notice(GAP_NOTICE_KIND, "gap-1", at(3))], at(1))
        .await
        .expect("enqueue again");
    assert!(again.is_empty(), "a repeated key adds nothing");
    // A page is not a notice: refused whole, nothing stored.
    let mut page_like = notice(TEST_KIND, "test-2", at(5));
    page_like.incident = Some(IncidentNumber(1));
    assert!(matches!(
        store
            .enqueue_notices(&[notice(TEST_KIND, "test-3", at(5)), page_like], at(1))
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(
        store.oldest_waiting_notification().await.expect("oldest"),
        Some(at(3))
    );
    let one = claimer("dispatcher-one");
    let claimed = store
        .claim_notifications(&claim(&one, at(10), 10))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 2);
    assert!(claimed.iter().all(|row| row.incident.is_none()));
    let test = claimed
        .iter()
        .find(|row| row.kind == TEST_KIND)
        .expect("the test page");
    let settled = store
        .settle_notification(test, &Delivery::Sent, 4, at(11))
        .await
        .expect("settle")
        .expect("held the claim");
    assert_eq!(settled.timeline, None, "no incident, no timeline");
    let gap = claimed
        .iter()
        .find(|row| row.kind == GAP_NOTICE_KIND)
        .expect("the notice");
    store
        .settle_notification(
            gap,
            &Delivery::Failed {
                error: "550 no such user".to_owned(),
            },
            2,
            at(12),
        )
        .await
        .expect("settle")
        .expect("held the claim");
    let read = pair
        .second
        .notification(test.id)
        .await
        .expect("read the test page");
    assert_eq!(read.state, NotificationState::Sent);
    assert_eq!(read.incident, None);
    assert_eq!(read.settled_at, Some(at(11)));
    assert_eq!(read.payload, json!({"name": "Ana"}));
    let failed = store.notification(gap.id).await.expect("read the notice");
    assert_eq!(failed.state, NotificationState::Failed);
    assert_eq!(failed.last_error.as_deref(), Some("550 no such user"));
    assert!(matches!(
        store.notification(gap.id + 1000).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(
        store.oldest_waiting_notification().await.expect("oldest"),
        None,
        "nothing waits any more"
    );
    drop(pair);
}

/// The attempts on the incident's timeline: (recipient, result, attempt, latency).
async fn attempts_of(store: &dyn Store, number: IncidentNumber) -> Vec<(String, String, i64, i64)> {
    store
        .timeline(number, PageRequest::default())
        .await
        .expect("timeline")
        .items
        .into_iter()
        .filter_map(|entry| match entry.data {
            TimelineData::NotificationAttempted {
                recipient,
                result,
                attempt,
                latency_ms,
                ..
            } => Some((recipient, result, attempt, latency_ms)),
            _ => None,
        })
        .collect()
}

pub async fn a_batch_of_settlements_is_one_write_and_counts_rows_settled_elsewhere(
    pair: OutboxPair,
) {
    let number = open_incident(pair.first.as_ref()).await;
    let mut chen = page(number, "chen", "mail", "page-1-chen");
    chen.payload = json!({"pass": 0, "level": 1});
    pair.first
        .enqueue_notifications(
            &[
                page(number, "ana", "mail", "page-1-ana"),
                page(number, "ben", "mail", "page-1-ben"),
                chen,
                page(number, "dan", "mail", "page-1-dan"),
            ],
            at(0),
        )
        .await
        .expect("enqueue");
    let one = claimer("dispatcher-one");
    let claimed = pair
        .first
        .claim_notifications(&claim(&one, at(1), 10))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 4);
    let ana = claimed
        .iter()
        .find(|row| row.idempotency_key == "page-1-ana")
        .cloned()
        .expect("ana's row");
    // Dan's claim ended and another dispatcher sent and settled it meanwhile.
    let other = claimer("dispatcher-two");
    let taken = pair
        .second
        .claim_notifications(&claim(&other, at(61), 10))
        .await
        .expect("claim the expired ones");
    assert_eq!(taken.len(), 4, "every claim ended at second 61");
    let dan_again = taken
        .iter()
        .find(|row| row.idempotency_key == "page-1-dan")
        .expect("dan's row");
    pair.second
        .settle_notification(dan_again, &Delivery::Sent, 9, at(62))
        .await
        .expect("settle")
        .expect("held");
    // The first dispatcher's claim is gone for all four: nothing it settles counts.
    let sent = Delivery::Sent;
    let stale = pair
        .first
        .settle_notification_batch(&[Settlement {
            rows: std::slice::from_ref(&ana),
            delivery: &sent,
            latency_ms: 1,
            now: at(63),
            next: &[],
        }])
        .await
        .expect("stale batch");
    assert_eq!(stale, [0], "a lost claim settles nothing");

    // The second dispatcher settles the other three in one batch, each its own way, with
    // dan's row (settled already) among them.
    let held = |user: &str| {
        taken
            .iter()
            .find(|row| row.recipient.to_string() == format!("user:{user}"))
            .cloned()
            .expect("taken")
    };
    let (ana, ben, chen) = (held("ana"), held("ben"), held("chen"));
    let retry = Delivery::Retry {
        at: at(100),
        error: "http 503".to_owned(),
    };
    let failed = Delivery::Failed {
        error: "http 404".to_owned(),
    };
    let backup = [ContactMethod {
        contact: "phone".to_owned(),
        method: "webhook".to_owned(),
    }];
    let settled = pair
        .second
        .settle_notification_batch(&[
            Settlement {
                rows: std::slice::from_ref(&ana),
                delivery: &sent,
                latency_ms: 2,
                now: at(64),
                next: &[],
            },
            Settlement {
                rows: std::slice::from_ref(&ben),
                delivery: &retry,
                latency_ms: 3,
                now: at(64),
                next: &[],
            },
            Settlement {
                rows: std::slice::from_ref(&chen),
                delivery: &failed,
                latency_ms: 4,
                now: at(65),
                next: &backup,
            },
            Settlement {
                rows: std::slice::from_ref(dan_again),
                delivery: &sent,
                latency_ms: 5,
                now: at(65),
                next: &[],
            },
        ])
        .await
        .expect("batch");
    assert_eq!(settled, [1, 1, 1, 0], "dan's row was settled already");

    let rows = pair.first.notifications(number, 50).await.expect("list");
    let states: Vec<_> = rows
        .iter()
        .map(|row| (row.idempotency_key.as_str(), row.state))
        .collect();
    assert_eq!(
        states,
        [
            ("page-1-ana", NotificationState::Sent),
            ("page-1-ben", NotificationState::Pending),
            ("page-1-chen", NotificationState::Failed),
            ("page-1-dan", NotificationState::Sent),
            (
                format!("reroute-{}-phone", rows[2].id).as_str(),
                NotificationState::Pending
            ),
        ]
    );
    assert_eq!(rows[0].settled_at, Some(at(64)));
    assert_eq!(rows[1].next_attempt_at, at(100));
    assert_eq!(rows[1].last_error.as_deref(), Some("http 503"));
    assert_eq!(
        rows[3].settled_at,
        Some(at(62)),
        "left as the other one settled it"
    );
    assert_eq!(
        rows[4].recipient,
        Recipient::User {
            user: "chen".to_owned(),
            contact: "phone".to_owned()
        }
    );
    let mut attempts = attempts_of(pair.first.as_ref(), number).await;
    attempts.sort();
    assert_eq!(
        attempts,
        [
            ("user:ana".to_owned(), "sent".to_owned(), 2, 2),
            ("user:ben".to_owned(), "retrying".to_owned(), 2, 3),
            ("user:chen".to_owned(), "failed".to_owned(), 2, 4),
            ("user:dan".to_owned(), "sent".to_owned(), 2, 9),
        ],
        "every attempt that held its claim is on the timeline, once"
    );
    let timeline = pair
        .first
        .timeline(number, PageRequest::default())
        .await
        .expect("timeline");
    assert_eq!(
        timeline
            .items
            .iter()
            .filter(|entry| entry.kind() == TimelineKind::NotificationRerouted)
            .count(),
        1
    );

    // Too many rows at once are refused before anything is written; none at all is a no-op.
    let claimed = pair
        .first
        .claim_notifications(&claim(&one, at(100), 10))
        .await
        .expect("claim ben's retry and chen's backup");
    assert_eq!(claimed.len(), 2);
    let many: Vec<NotificationRow> =
        std::iter::repeat_n(claimed[0].clone(), MAX_SETTLE_BATCH_ROWS + 1).collect();
    let error = pair
        .first
        .settle_notification_batch(&[Settlement {
            rows: &many,
            delivery: &sent,
            latency_ms: 1,
            now: at(101),
            next: &[],
        }])
        .await
        .expect_err("too many rows");
    assert!(matches!(error, StoreError::Invalid(_)), "{error}");
    assert!(error.to_string().contains("at most 5000"), "{error}");
    assert_eq!(
        pair.first
            .notification(claimed[0].id)
            .await
            .expect("row")
            .state,
        NotificationState::Sending,
        "nothing was written"
    );
    assert!(pair
        .first
        .settle_notification_batch(&[])
        .await
        .expect("empty")
        .is_empty());
    drop(pair);
}

pub async fn a_settlement_batch_after_an_acknowledgement_settles_only_the_claimed_rows(
    pair: OutboxPair,
) {
    let number = open_incident(pair.first.as_ref()).await;
    let users = ["ana", "ben", "chen", "dan", "eve"];
    let pages: Vec<_> = users
        .iter()
        .map(|user| page(number, user, "mail", &format!("page-1-{user}")))
        .collect();
    pair.first
        .enqueue_notifications(&pages, at(0))
        .await
        .expect("enqueue");
    let one = claimer("dispatcher-one");
    let claimed = pair
        .first
        .claim_notifications(&claim(&one, at(1), 2))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 2);
    // Acknowledged while the two claimed pages are being sent.
    pair.second
        .command(number, &Command::Acknowledge, &Actor::token("ana"), at(2))
        .await
        .expect("acknowledge");
    let sent = Delivery::Sent;
    let settlements: Vec<_> = claimed
        .iter()
        .map(|row| Settlement {
            rows: std::slice::from_ref(row),
            delivery: &sent,
            latency_ms: 7,
            now: at(3),
            next: &[],
        })
        .collect();
    assert_eq!(
        pair.first
            .settle_notification_batch(&settlements)
            .await
            .expect("batch"),
        [1, 1],
        "the messages in flight finish their attempts"
    );
    let rows = pair.first.notifications(number, 50).await.expect("list");
    let claimed_ids: HashSet<i64> = claimed.iter().map(|row| row.id).collect();
    for row in &rows {
        let expected = if claimed_ids.contains(&row.id) {
            NotificationState::Sent
        } else {
            NotificationState::Cancelled
        };
        assert_eq!(row.state, expected, "{}", row.idempotency_key);
    }
    assert_eq!(rows.len(), users.len());
    assert_eq!(attempts_of(pair.first.as_ref(), number).await.len(), 2);
    assert!(pair
        .first
        .claim_notifications(&claim(&one, at(10), 10))
        .await
        .expect("claim")
        .is_empty());
    drop(pair);
}

pub async fn bundles_of_many_contact_methods_are_taken_in_one_write(pair: OutboxPair) {
    let number = open_incident(pair.first.as_ref()).await;
    pair.first
        .ingest(&[event("api", EventAction::Trigger, "cpu", 0)], &auto)
        .await
        .expect("ingest");
    let other = IncidentNumber(2);
    let one = claimer("dispatcher-one");
    // Chen got a message at second 1: chen's mail is busy until second 31.
    pair.first
        .enqueue_notifications(&[page(number, "chen", "mail", "page-1-chen-first")], at(0))
        .await
        .expect("enqueue");
    let first = pair
        .first
        .claim_notifications(&claim(&one, at(1), 10))
        .await
        .expect("claim");
    let bundles = pair
        .first
        .take_bundles(&[bundle_claim(&one, &first, at(1))])
        .await
        .expect("bundle");
    let [Bundle::Send(rows)] = bundles.as_slice() else {
        panic!("chen's mail was free: {bundles:?}");
    };
    pair.first
        .settle_notification_batch(&[Settlement {
            rows,
            delivery: &Delivery::Sent,
            latency_ms: 1,
            now: at(1),
            next: &[],
        }])
        .await
        .expect("settle");

    let later = |incident, user: &str, key: &str| {
        let mut notification = page(incident, user, "mail", key);
        notification.not_before = at(2);
        notification
    };
    pair.first
        .enqueue_notifications(
            &[
                later(number, "ana", "page-1-ana"),
                later(other, "ana", "page-2-ana"),
                later(number, "ben", "page-1-ben"),
                later(other, "chen", "page-2-chen"),
            ],
            at(2),
        )
        .await
        .expect("enqueue");
    // One of ana's pages is claimed; the bundle brings the other.
    let claimed = pair
        .second
        .claim_notifications(&claim(&one, at(2), 10))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 4);
    let of = |user: &str| -> Vec<NotificationRow> {
        claimed
            .iter()
            .filter(|row| row.recipient.to_string() == format!("user:{user}"))
            .take(1)
            .cloned()
            .collect()
    };
    let (ana, ben, chen) = (of("ana"), of("ben"), of("chen"));
    // Ana's second page goes back to pending first, as if claimed by nobody yet.
    let ana_second = claimed
        .iter()
        .find(|row| row.idempotency_key == "page-2-ana")
        .expect("ana's second page");
    pair.second
        .settle_notification(
            ana_second,
            &Delivery::Retry {
                at: at(2),
                error: "not sent".to_owned(),
            },
            0,
            at(2),
        )
        .await
        .expect("settle")
        .expect("held");
    let bundles = pair
        .second
        .take_bundles(&[
            bundle_claim(&one, &ana, at(3)),
            bundle_claim(&one, &ben, at(3)),
            bundle_claim(&one, &chen, at(3)),
        ])
        .await
        .expect("bundles");
    assert_eq!(bundles.len(), 3);
    let keys = |bundle: &Bundle| -> Vec<String> {
        match bundle {
            Bundle::Send(rows) => rows.iter().map(|row| row.idempotency_key.clone()).collect(),
            Bundle::Deferred { .. } => Vec::new(),
        }
    };
    assert_eq!(keys(&bundles[0]), ["page-1-ana", "page-2-ana"]);
    assert_eq!(keys(&bundles[1]), ["page-1-ben"]);
    assert_eq!(bundles[2], Bundle::Deferred { until: at(31) });
    let chen_row = pair
        .first
        .notification(chen[0].id)
        .await
        .expect("chen's row");
    assert_eq!(chen_row.state, NotificationState::Pending);
    assert_eq!(chen_row.next_attempt_at, at(31));
    assert_eq!(chen_row.attempts, 0, "a deferral is no attempt");
    // A claim mixing two contact methods is refused, and nothing of the call is kept.
    let mixed: Vec<NotificationRow> = ana.iter().chain(&ben).cloned().collect();
    let error = pair
        .first
        .take_bundles(&[bundle_claim(&one, &mixed, at(5))])
        .await
        .expect_err("mixed");
    assert!(matches!(error, StoreError::Invalid(_)), "{error}");
    assert!(pair.first.take_bundles(&[]).await.expect("none").is_empty());
    drop(pair);
}
