use super::*;
use crate::TimelineKind;

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + seconds).expect("valid timestamp")
}

fn alert(id: i64, state: AlertState, unlogged_folds: i64) -> AlertSnapshot {
    AlertSnapshot {
        id: AlertId(id),
        dedup_key: DedupKey::parse(&format!("key-{id}")).expect("key"),
        state,
        acknowledged_at: (state == AlertState::Acknowledged).then(|| at(5)),
        count: unlogged_folds + 1,
        summary: format!("alert {id}"),
        last_seen: at(8),
        unlogged_folds,
        folds_logged_at: None,
    }
}

fn snapshot(state: IncidentState, open_alerts: Vec<AlertSnapshot>) -> CommandSnapshot {
    CommandSnapshot {
        incident: IncidentSnapshot {
            number: IncidentNumber(7),
            state,
            priority: Priority::P2,
            open_alerts: i64::try_from(open_alerts.len()).expect("few alerts"),
            acknowledged_at: None,
            resolved_at: None,
            updated_at: at(8),
        },
        open_alerts,
        ack_timeout: None,
    }
}

fn kinds(plan: &CommandPlan) -> Vec<TimelineKind> {
    plan.timeline.iter().map(TimelineRecord::kind).collect()
}

fn who() -> Actor {
    Actor::token("ana")
}

#[test]
fn acknowledging_logs_waiting_folds_first_and_acknowledges_triggered_alerts() {
    let snapshot = snapshot(
        IncidentState::Triggered,
        vec![
            alert(1, AlertState::Triggered, 3),
            alert(2, AlertState::Acknowledged, 0),
            alert(3, AlertState::Triggered, 0),
        ],
    );
    let plan = plan_command(&snapshot, &Command::Acknowledge, &who(), at(10)).expect("plan");
    assert_eq!(plan.transition, Transition::Changed);
    assert_eq!(
        kinds(&plan),
        vec![
            TimelineKind::AlertFolded,
            TimelineKind::IncidentAcknowledged
        ]
    );
    assert_eq!(plan.timeline[0].actor, Actor::system());
    assert_eq!(plan.timeline[0].data.folded_events(), Some(3));
    assert_eq!(
        plan.timeline[1].data,
        TimelineData::IncidentAcknowledged {
            alerts_acknowledged: Some(2)
        }
    );
    let changed: Vec<_> = plan.alerts.iter().map(|alert| alert.id.0).collect();
    assert_eq!(changed, vec![1, 3], "the acknowledged alert stays as it is");
    assert_eq!(plan.alerts[0].unlogged_folds, 0);
    assert_eq!(plan.alerts[0].folds_logged_at, Some(at(10)));
    assert_eq!(plan.alerts[1].acknowledged_at, Some(at(10)));
    let update = plan.incident_update.expect("incident changes");
    assert_eq!(update.state, IncidentState::Acknowledged);
    assert_eq!(update.acknowledged_at, Some(at(10)));
    assert_eq!(plan.due_work, [DueWorkChange::CancelEscalation]);
    assert_eq!(plan.outbox, [OutboxMessage::CancelPending]);
}

#[test]
fn resolving_resolves_every_open_alert() {
    let snapshot = snapshot(
        IncidentState::Acknowledged,
        vec![
            alert(1, AlertState::Acknowledged, 0),
            alert(2, AlertState::Triggered, 1),
        ],
    );
    let plan = plan_command(&snapshot, &Command::Resolve, &who(), at(20)).expect("plan");
    assert_eq!(
        kinds(&plan),
        vec![TimelineKind::AlertFolded, TimelineKind::IncidentResolved]
    );
    assert_eq!(
        plan.timeline[1].data,
        TimelineData::IncidentResolved {
            alerts_resolved: Some(2)
        }
    );
    assert!(plan
        .alerts
        .iter()
        .all(|alert| alert.state == AlertState::Resolved && alert.resolved_at == Some(at(20))));
    let update = plan.incident_update.expect("incident changes");
    assert_eq!(update.open_alerts, 0);
    assert_eq!(update.resolved_at, Some(at(20)));
}

#[test]
fn repeated_commands_change_nothing_and_a_resolved_incident_refuses_acknowledgement() {
    let acknowledged = snapshot(
        IncidentState::Acknowledged,
        vec![alert(1, AlertState::Acknowledged, 4)],
    );
    let plan = plan_command(&acknowledged, &Command::Acknowledge, &who(), at(10)).expect("plan");
    assert_eq!(plan, CommandPlan::unchanged(IncidentNumber(7)));
    let resolved = snapshot(IncidentState::Resolved, Vec::new());
    let plan = plan_command(&resolved, &Command::Resolve, &who(), at(10)).expect("plan");
    assert_eq!(plan.transition, Transition::Unchanged);
    assert!(plan.timeline.is_empty() && plan.incident_update.is_none());
    assert_eq!(
        plan_command(&resolved, &Command::Acknowledge, &who(), at(10)),
        Err(CommandError::AlreadyResolved(IncidentNumber(7)))
    );
    let plan = plan_command(
        &resolved,
        &Command::SetPriority(Priority::P2),
        &who(),
        at(10),
    )
    .expect("plan");
    assert_eq!(plan.transition, Transition::Unchanged);
}

#[test]
fn priority_and_notes_append_their_entry() {
    let snapshot = snapshot(IncidentState::Resolved, Vec::new());
    let plan = plan_command(
        &snapshot,
        &Command::SetPriority(Priority::P1),
        &who(),
        at(30),
    )
    .expect("plan");
    assert_eq!(
        plan.timeline[0].data,
        TimelineData::PriorityChanged {
            from: Priority::P2,
            to: Priority::P1
        }
    );
    assert_eq!(plan.incident_update.expect("update").priority, Priority::P1);
    let plan = plan_command(
        &snapshot,
        &Command::AddNote("rolled back".to_owned()),
        &who(),
        at(31),
    )
    .expect("plan");
    assert_eq!(plan.transition, Transition::Changed);
    assert_eq!(plan.timeline[0].actor, who());
    assert_eq!(plan.incident_update.expect("update").updated_at, at(31));
}

#[test]
fn a_command_is_never_dated_before_what_the_incident_records() {
    // Acknowledged at 50 by a command that took the lock first; a resolve decided at 40 waited.
    let mut snapshot = snapshot(
        IncidentState::Acknowledged,
        vec![alert(1, AlertState::Acknowledged, 0)],
    );
    snapshot.incident.acknowledged_at = Some(at(50));
    snapshot.incident.updated_at = at(50);
    let plan = plan_command(&snapshot, &Command::Resolve, &who(), at(40)).expect("plan");
    let update = plan.incident_update.expect("update");
    assert_eq!(update.resolved_at, Some(at(50)));
    assert!(update.acknowledged_at <= update.resolved_at);
    assert_eq!(plan.timeline[0].at, at(50));
    // A later `now` is kept as it is.
    let plan = plan_command(&snapshot, &Command::Resolve, &who(), at(60)).expect("plan");
    assert_eq!(plan.timeline[0].at, at(60));
}

#[test]
fn resolving_stops_paging_and_escalating_needs_a_triggered_incident() {
    let mut snapshot = snapshot(IncidentState::Triggered, vec![]);
    let plan = plan_command(&snapshot, &Command::Resolve, &Actor::system(), at(10)).expect("plan");
    assert_eq!(
        plan.due_work,
        [
            DueWorkChange::CancelEscalation,
            DueWorkChange::CancelAckTimeout
        ]
    );
    assert_eq!(plan.outbox, [OutboxMessage::CancelPending]);

    let plan = plan_command(&snapshot, &Command::Escalate, &Actor::system(), at(10)).expect("plan");
    assert_eq!(plan.transition, Transition::Changed);
    assert_eq!(plan.due_work, [DueWorkChange::EscalateAt(at(10))]);
    assert_eq!(plan.timeline[0].data, TimelineData::IncidentEscalated);

    snapshot.incident.state = IncidentState::Acknowledged;
    let error = plan_command(&snapshot, &Command::Escalate, &Actor::system(), at(10))
        .expect_err("an acknowledged incident does not escalate");
    assert!(matches!(error, CommandError::NotTriggered(..)), "{error}");
}

#[test]
fn reassigning_withdraws_what_is_pending_and_queues_the_new_pages() {
    let page = Page {
        user: "ben".to_owned(),
        contact: "phone".to_owned(),
        method: "ntfy".to_owned(),
        not_before: at(10),
        idempotency_key: "reassign-1-ben-0".to_owned(),
    };
    let command = Command::Reassign {
        to: "ben".to_owned(),
        pages: vec![page.clone()],
    };
    let mut snapshot = snapshot(IncidentState::Acknowledged, vec![]);
    let plan = plan_command(&snapshot, &command, &Actor::token("ana"), at(10)).expect("plan");
    assert_eq!(plan.transition, Transition::Changed);
    assert_eq!(
        plan.outbox,
        [
            OutboxMessage::CancelPending,
            OutboxMessage::Queue(vec![page])
        ]
    );
    assert!(plan.due_work.is_empty(), "the escalation step is kept");
    assert_eq!(
        plan.incident_update.as_ref().map(|update| update.state),
        Some(IncidentState::Acknowledged)
    );
    assert_eq!(plan.timeline[0].actor, Actor::token("ana"));
    assert_eq!(
        plan.timeline[0].data,
        TimelineData::IncidentReassigned {
            to: "ben".to_owned()
        }
    );

    snapshot.incident.state = IncidentState::Resolved;
    let error = plan_command(&snapshot, &command, &Actor::token("ana"), at(10))
        .expect_err("a resolved incident is not reassigned");
    assert!(
        matches!(error, CommandError::ResolvedNotReassigned(..)),
        "{error}"
    );
}

#[test]
fn an_acknowledgement_timeout_retriggers_only_the_acknowledgement_it_was_set_for() {
    let mut snapshot = snapshot(
        IncidentState::Triggered,
        vec![alert(1, AlertState::Triggered, 0)],
    );
    snapshot.ack_timeout = Some(std::time::Duration::from_secs(30 * 60));
    let plan = plan_command(&snapshot, &Command::Acknowledge, &who(), at(10)).expect("plan");
    assert_eq!(
        plan.due_work,
        [
            DueWorkChange::CancelEscalation,
            DueWorkChange::AckTimeoutAt {
                due_at: at(10 + 30 * 60),
                acknowledged_at: at(10),
            }
        ]
    );

    // Acknowledged at second 10, as that plan left it.
    snapshot.incident.state = IncidentState::Acknowledged;
    snapshot.incident.acknowledged_at = Some(at(10));
    snapshot.open_alerts[0].state = AlertState::Acknowledged;
    snapshot.open_alerts[0].acknowledged_at = Some(at(10));
    let timeout = |acknowledged_at| Command::AckTimeout {
        acknowledged_at,
        timeout_minutes: 30,
    };
    let plan = plan_command(&snapshot, &timeout(at(10)), &Actor::system(), at(1810)).expect("plan");
    assert_eq!(plan.transition, Transition::Changed);
    let update = plan.incident_update.as_ref().expect("an update");
    assert_eq!(
        (update.state, update.acknowledged_at),
        (IncidentState::Triggered, None)
    );
    assert_eq!(
        plan.alerts
            .iter()
            .map(|alert| (alert.id, alert.state, alert.acknowledged_at))
            .collect::<Vec<_>>(),
        [(AlertId(1), AlertState::Triggered, None)]
    );
    assert_eq!(plan.due_work, [DueWorkChange::RestartEscalation(at(1810))]);
    assert_eq!(
        plan.timeline[0].data,
        TimelineData::IncidentAckTimeout {
            timeout_minutes: 30
        }
    );
    assert_eq!(plan.timeline[0].actor, Actor::system());

    // Another acknowledgement (a later one), or none at all: nothing changes.
    let plan = plan_command(&snapshot, &timeout(at(5)), &Actor::system(), at(1810)).expect("plan");
    assert_eq!(plan.transition, Transition::Unchanged);
    assert!(plan.timeline.is_empty() && plan.due_work.is_empty());
    for state in [IncidentState::Triggered, IncidentState::Resolved] {
        snapshot.incident.state = state;
        let plan =
            plan_command(&snapshot, &timeout(at(10)), &Actor::system(), at(1810)).expect("plan");
        assert_eq!(plan.transition, Transition::Unchanged, "{state:?}");
    }
}
