//! Incident commands (acknowledge, resolve, priority, notes) as plans.
//!
//! The store loads a [`CommandSnapshot`] of the incident inside its write transaction (locking
//! it where the database needs locks), calls [`plan_command`], and applies the resulting
//! [`CommandPlan`] in the same transaction. What a command changes, and what the timeline says
//! about it, is decided here and nowhere else:
//!
//! - Acknowledging acknowledges the incident and its triggered alerts; an acknowledged incident
//!   stays as it is, a resolved one refuses ([`CommandError::AlreadyResolved`]).
//! - Resolving resolves the incident and all of its open alerts; a resolved one stays.
//! - Before either changes anything, the folds waiting on the incident's open alerts are
//!   written as `alert.folded` entries (by [`Actor::system`]), so every fold is counted before
//!   its alert changes state.
//! - Priority can be changed in any state; setting the priority it has changes nothing.
//! - Acknowledging or resolving stops the escalation at once: the plan cancels the incident's
//!   escalation step and withdraws every notification of it still queued or waiting to be
//!   retried, in the same transaction.
//! - Acknowledging an incident whose service has an acknowledgement timeout schedules it
//!   (due work, in the same transaction) for that long after the acknowledgement; resolving
//!   cancels it. When it comes due ([`Command::AckTimeout`]) and the incident is still
//!   acknowledged by that same acknowledgement, the incident and its acknowledged alerts are
//!   triggered again and the escalation starts over at level 1; anything else (resolved,
//!   triggered, acknowledged again later) changes nothing.
//! - Escalating (a triggered incident) makes its next escalation step due at once.
//! - Reassigning an open incident withdraws its pending notifications and queues the pages the
//!   caller decided for the new assignee (one per notify rule), in the same transaction; the
//!   incident keeps its state and its escalation step. A resolved incident refuses.
//! - A note is always appended.
//! - A command that changes nothing appends nothing.
//! - Times on one incident never go backwards: a command takes effect at `now`, or at the
//!   latest time the incident already records when that is later (a command that waited for
//!   another one's lock must not be dated before it).

use jiff::Timestamp;

use crate::fold::IncidentRef;
use crate::{
    Actor, AlertId, AlertState, DedupKey, IncidentNumber, IncidentState, Priority, TimelineData,
    TimelineRecord,
};

/// Whether a command changed anything. Repeating a command that already took effect is not an
/// error (a second "resolve" is a no-op), and it appends nothing to the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Changed,
    Unchanged,
}

/// A command that the incident's state does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("incident {0} is already resolved; it cannot be acknowledged")]
    AlreadyResolved(IncidentNumber),
    #[error(
        "incident {0} is not triggered (it is {1}); only a triggered incident can be escalated"
    )]
    NotTriggered(IncidentNumber, IncidentState),
    #[error("incident {0} is resolved; it cannot be reassigned")]
    ResolvedNotReassigned(IncidentNumber),
}

/// What a person (or a tool) asks of an incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Acknowledge,
    Resolve,
    SetPriority(Priority),
    AddNote(String),
    /// Page the next escalation level now instead of waiting for the level's timeout.
    Escalate,
    /// Hand the incident to user `to` and page them at once with `pages`.
    Reassign {
        to: String,
        pages: Vec<Page>,
    },
    /// The acknowledgement timeout of the acknowledgement made at `acknowledged_at` came due:
    /// trigger the incident again if that acknowledgement still stands. Run by the system.
    AckTimeout {
        acknowledged_at: Timestamp,
        /// The service's timeout, for the timeline.
        timeout_minutes: u64,
    },
}

/// A notification a command queues: one contact method of one user, as a `page`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub user: String,
    /// The contact method's id and how it is sent (`email`, `webhook`, ...).
    pub contact: String,
    pub method: String,
    /// Not sent before this.
    pub not_before: Timestamp,
    /// Unique per notification.
    pub idempotency_key: String,
}

impl Command {
    /// A short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Acknowledge => "acknowledge_incident",
            Command::Resolve => "resolve_incident",
            Command::SetPriority(_) => "set_incident_priority",
            Command::AddNote(_) => "add_note",
            Command::Escalate => "escalate_incident",
            Command::Reassign { .. } => "reassign_incident",
            Command::AckTimeout { .. } => "ack_timeout_incident",
        }
    }
}

/// The incident a command decides on, as the store holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentSnapshot {
    pub number: IncidentNumber,
    pub state: IncidentState,
    pub priority: Priority,
    pub open_alerts: i64,
    pub acknowledged_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    pub updated_at: Timestamp,
}

/// An open (triggered or acknowledged) alert of the incident, as the store holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertSnapshot {
    pub id: AlertId,
    pub dedup_key: DedupKey,
    pub state: AlertState,
    pub acknowledged_at: Option<Timestamp>,
    pub count: i64,
    /// The latest event's summary.
    pub summary: String,
    pub last_seen: Timestamp,
    /// Folds not yet counted by an `alert.folded` entry.
    pub unlogged_folds: i64,
    /// When the alert's last `alert.folded` entry was written (`None`: never).
    pub folds_logged_at: Option<Timestamp>,
}

/// Everything a command decides from: the incident and all of its open alerts.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandSnapshot {
    pub incident: IncidentSnapshot,
    pub open_alerts: Vec<AlertSnapshot>,
    /// The acknowledgement timeout of the incident's service, if it has one.
    pub ack_timeout: Option<std::time::Duration>,
}

/// The incident's changeable fields after a command.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentUpdate {
    pub state: IncidentState,
    pub priority: Priority,
    pub open_alerts: i64,
    pub acknowledged_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    pub updated_at: Timestamp,
}

/// An alert's changeable fields after a command (the alert is one of the snapshot's).
#[derive(Debug, Clone, PartialEq)]
pub struct AlertUpdate {
    pub id: AlertId,
    pub state: AlertState,
    pub acknowledged_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    pub unlogged_folds: i64,
    pub folds_logged_at: Option<Timestamp>,
}

/// Work a command schedules or cancels; a store applies every change here in the command's
/// transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DueWorkChange {
    /// Remove the incident's escalation step (kind [`crate::ESCALATION_STEP_KIND`], key the
    /// incident number), whoever holds it: nobody is paged for it any more.
    CancelEscalation,
    /// Make the incident's escalation step due at `at` (a new schedule of it, so a runner that
    /// holds it now does not overwrite it).
    EscalateAt(Timestamp),
    /// Start the incident's escalation over: its first step, due at `at` (scheduled anew, or
    /// replacing the step it has). `at` also tells this ladder's pages apart from earlier ones.
    RestartEscalation(Timestamp),
    /// Schedule the incident's acknowledgement timeout (kind [`crate::ACK_TIMEOUT_KIND`], key
    /// the incident number) at `due_at`, for the acknowledgement made at `acknowledged_at`
    /// (replacing any earlier one).
    AckTimeoutAt {
        due_at: Timestamp,
        acknowledged_at: Timestamp,
    },
    /// Remove the incident's acknowledgement timeout.
    CancelAckTimeout,
}

/// What a command does to the incident's notifications in the outbox; a store applies every
/// change here in the command's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboxMessage {
    /// Withdraw every notification of the incident that is still pending (queued, or waiting
    /// for a retry): once someone answers, nobody is paged again, on any channel.
    CancelPending,
    /// Queue these pages (after any cancellation before it in the plan).
    Queue(Vec<Page>),
}

/// Everything one command changes, to be applied in one transaction. A plan whose
/// `transition` is `Unchanged` changes nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandPlan {
    pub incident: IncidentNumber,
    pub transition: Transition,
    /// The incident's fields afterwards, when the command changes them.
    pub incident_update: Option<IncidentUpdate>,
    /// Alerts whose fields change, in the snapshot's order.
    pub alerts: Vec<AlertUpdate>,
    /// Entries to append, in order.
    pub timeline: Vec<TimelineRecord>,
    /// Due work to schedule or cancel, in the same transaction.
    pub due_work: Vec<DueWorkChange>,
    /// Changes to the incident's notifications, in the same transaction.
    pub outbox: Vec<OutboxMessage>,
}

impl CommandPlan {
    fn unchanged(incident: IncidentNumber) -> Self {
        CommandPlan {
            incident,
            transition: Transition::Unchanged,
            incident_update: None,
            alerts: Vec::new(),
            timeline: Vec::new(),
            due_work: Vec::new(),
            outbox: Vec::new(),
        }
    }
}

/// Decides what `command` by `actor` at `now` does to the incident of `snapshot`.
pub fn plan_command(
    snapshot: &CommandSnapshot,
    command: &Command,
    actor: &Actor,
    now: Timestamp,
) -> Result<CommandPlan, CommandError> {
    let incident = &snapshot.incident;
    let at = effective_time(snapshot, now);
    let mut plan = CommandPlan::unchanged(incident.number);
    let mut update = IncidentUpdate {
        state: incident.state,
        priority: incident.priority,
        open_alerts: incident.open_alerts,
        acknowledged_at: incident.acknowledged_at,
        resolved_at: incident.resolved_at,
        updated_at: at,
    };
    let data = match command {
        Command::Acknowledge => {
            if acknowledge_incident(incident.number, incident.state)? == Transition::Unchanged {
                return Ok(plan);
            }
            let mut alerts = log_waiting_folds(snapshot, at, &mut plan);
            let mut acknowledged = 0;
            for alert in alerts.iter_mut() {
                if alert.state == AlertState::Triggered {
                    alert.state = AlertState::Acknowledged;
                    alert.acknowledged_at = Some(at);
                    acknowledged += 1;
                }
            }
            plan.alerts = changed_alerts(snapshot, alerts);
            update.state = IncidentState::Acknowledged;
            update.acknowledged_at = Some(at);
            stop_paging(&mut plan);
            if let Some(timeout) = snapshot.ack_timeout {
                plan.due_work.push(DueWorkChange::AckTimeoutAt {
                    due_at: at.checked_add(timeout).unwrap_or(Timestamp::MAX),
                    acknowledged_at: at,
                });
            }
            TimelineData::IncidentAcknowledged {
                alerts_acknowledged: Some(acknowledged),
            }
        }
        Command::Resolve => {
            if resolve_incident(incident.state) == Transition::Unchanged {
                return Ok(plan);
            }
            let mut alerts = log_waiting_folds(snapshot, at, &mut plan);
            for alert in alerts.iter_mut() {
                alert.state = AlertState::Resolved;
                alert.resolved_at = Some(at);
            }
            let resolved = i64::try_from(alerts.len()).unwrap_or(i64::MAX);
            plan.alerts = changed_alerts(snapshot, alerts);
            update.state = IncidentState::Resolved;
            update.open_alerts = 0;
            update.resolved_at = Some(at);
            stop_paging(&mut plan);
            plan.due_work.push(DueWorkChange::CancelAckTimeout);
            TimelineData::IncidentResolved {
                alerts_resolved: Some(resolved),
            }
        }
        Command::SetPriority(priority) => {
            if set_priority(incident.priority, *priority) == Transition::Unchanged {
                return Ok(plan);
            }
            update.priority = *priority;
            TimelineData::PriorityChanged {
                from: incident.priority,
                to: *priority,
            }
        }
        Command::AddNote(text) => TimelineData::NoteAdded { text: text.clone() },
        Command::Escalate => {
            if incident.state != IncidentState::Triggered {
                return Err(CommandError::NotTriggered(incident.number, incident.state));
            }
            plan.due_work.push(DueWorkChange::EscalateAt(at));
            TimelineData::IncidentEscalated
        }
        Command::Reassign { to, pages } => {
            if incident.state == IncidentState::Resolved {
                return Err(CommandError::ResolvedNotReassigned(incident.number));
            }
            plan.outbox.push(OutboxMessage::CancelPending);
            plan.outbox.push(OutboxMessage::Queue(pages.clone()));
            TimelineData::IncidentReassigned { to: to.clone() }
        }
        Command::AckTimeout {
            acknowledged_at,
            timeout_minutes,
        } => {
            // Only the acknowledgement it was scheduled for: a later one has its own timer.
            if incident.state != IncidentState::Acknowledged
                || incident.acknowledged_at != Some(*acknowledged_at)
            {
                return Ok(plan);
            }
            let mut alerts = log_waiting_folds(snapshot, at, &mut plan);
            for alert in alerts.iter_mut() {
                if alert.state == AlertState::Acknowledged {
                    alert.state = AlertState::Triggered;
                    alert.acknowledged_at = None;
                }
            }
            plan.alerts = changed_alerts(snapshot, alerts);
            update.state = IncidentState::Triggered;
            update.acknowledged_at = None;
            // The timeout item itself is settled by its runner once this command is done.
            plan.due_work.push(DueWorkChange::RestartEscalation(at));
            TimelineData::IncidentAckTimeout {
                timeout_minutes: *timeout_minutes,
            }
        }
    };
    plan.transition = Transition::Changed;
    plan.incident_update = Some(update);
    plan.timeline.push(TimelineRecord {
        incident: IncidentRef::Existing(incident.number),
        at,
        actor: actor.clone(),
        data,
    });
    Ok(plan)
}

/// Acknowledged or resolved: the escalation stops and nothing queued is sent.
fn stop_paging(plan: &mut CommandPlan) {
    plan.due_work.push(DueWorkChange::CancelEscalation);
    plan.outbox.push(OutboxMessage::CancelPending);
}

/// `now`, or the latest time the incident or its open alerts record when that is later.
fn effective_time(snapshot: &CommandSnapshot, now: Timestamp) -> Timestamp {
    let incident = &snapshot.incident;
    let recorded = [
        Some(incident.updated_at),
        incident.acknowledged_at,
        incident.resolved_at,
    ]
    .into_iter()
    .flatten()
    .chain(
        snapshot
            .open_alerts
            .iter()
            .flat_map(|alert| {
                [
                    Some(alert.last_seen),
                    alert.folds_logged_at,
                    alert.acknowledged_at,
                ]
            })
            .flatten(),
    );
    recorded.fold(now, Timestamp::max)
}

/// The open alerts as updates, with the `alert.folded` entries of their waiting folds appended
/// to the plan (at `at`, by the system) and those folds marked logged.
fn log_waiting_folds(
    snapshot: &CommandSnapshot,
    at: Timestamp,
    plan: &mut CommandPlan,
) -> Vec<AlertUpdate> {
    snapshot
        .open_alerts
        .iter()
        .map(|alert| {
            let mut update = AlertUpdate {
                id: alert.id,
                state: alert.state,
                acknowledged_at: alert.acknowledged_at,
                resolved_at: None,
                unlogged_folds: alert.unlogged_folds,
                folds_logged_at: alert.folds_logged_at,
            };
            if alert.unlogged_folds > 0 {
                plan.timeline.push(TimelineRecord {
                    incident: IncidentRef::Existing(snapshot.incident.number),
                    at,
                    actor: Actor::system(),
                    data: TimelineData::AlertFolded {
                        dedup_key: alert.dedup_key.clone(),
                        events: alert.unlogged_folds,
                        count: alert.count,
                        last_summary: alert.summary.clone(),
                        last_seen: Some(alert.last_seen),
                    },
                });
                update.unlogged_folds = 0;
                update.folds_logged_at = Some(at);
            }
            update
        })
        .collect()
}

/// The updates that differ from the snapshot.
fn changed_alerts(snapshot: &CommandSnapshot, updates: Vec<AlertUpdate>) -> Vec<AlertUpdate> {
    updates
        .into_iter()
        .zip(&snapshot.open_alerts)
        .filter(|(update, alert)| {
            update.state != alert.state
                || update.unlogged_folds != alert.unlogged_folds
                || update.folds_logged_at != alert.folds_logged_at
        })
        .map(|(update, _)| update)
        .collect()
}

/// Triggered becomes acknowledged; acknowledged stays; resolved refuses.
pub fn acknowledge_incident(
    number: IncidentNumber,
    state: IncidentState,
) -> Result<Transition, CommandError> {
    match state {
        IncidentState::Triggered => Ok(Transition::Changed),
        IncidentState::Acknowledged => Ok(Transition::Unchanged),
        IncidentState::Resolved => Err(CommandError::AlreadyResolved(number)),
    }
}

/// Any open incident becomes resolved, with all of its open alerts; resolved stays.
pub fn resolve_incident(state: IncidentState) -> Transition {
    match state {
        IncidentState::Triggered | IncidentState::Acknowledged => Transition::Changed,
        IncidentState::Resolved => Transition::Unchanged,
    }
}

/// Priority can be changed in any state (triage continues after resolution).
pub fn set_priority(from: Priority, to: Priority) -> Transition {
    if from == to {
        Transition::Unchanged
    } else {
        Transition::Changed
    }
}

#[cfg(test)]
mod tests;
