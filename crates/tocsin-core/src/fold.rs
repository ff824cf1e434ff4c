//! The event -> alert -> incident fold.
//!
//! The store loads a [`KeySnapshot`] for every (service, dedup key) in a batch, calls
//! [`fold_batch`], and writes the resulting [`BatchPlan`] in the same transaction. The rules live
//! here and nowhere else:
//!
//! - A trigger with no open alert for its key opens an alert. The alert joins the open incident
//!   of the same key if there is one (a service that resolves incidents by hand keeps it open
//!   after its alerts resolve), otherwise it opens a new incident.
//! - A trigger with an open alert folds into it: count + 1, last seen, latest payload. It does not
//!   change the incident's state (an acknowledged incident is not paged again).
//! - Folds reach the timeline as `alert.folded` entries that count them, at most one per alert
//!   per [`FOLD_LOG_INTERVAL`]: a fold writes one when the alert's last entry is that old, and the
//!   folds in between wait on the alert (`unlogged_folds`). They are written before the alert is
//!   acknowledged or resolved, and the engine writes those that have waited a full interval
//!   ([`UnloggedFolds`]), so a storm of a million events leaves a handful of entries, not one per
//!   commit.
//! - An acknowledge acknowledges a triggered alert, and its incident if that was triggered.
//! - A resolve resolves the open alert; the incident resolves when its last open alert does,
//!   unless the service's policy is manual.
//! - Acknowledge and resolve with no open alert change nothing.

use std::borrow::Borrow;
use std::collections::HashMap;

use jiff::{SignedDuration, Timestamp};

use crate::{
    Actor, AlertId, AlertState, DedupKey, Event, EventAction, IncidentNumber, IncidentState,
    Priority, ServiceId, Severity, TimelineData, TimelineRecord,
};

/// Whether an incident resolves by itself when its last alert resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResolvePolicy {
    #[default]
    Auto,
    Manual,
}

/// An open (triggered or acknowledged) alert as the store holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenAlert {
    pub id: AlertId,
    pub incident: IncidentNumber,
    pub state: AlertState,
    pub count: i64,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub severity: Severity,
    pub summary: String,
    pub source: String,
    pub acknowledged_at: Option<Timestamp>,
    /// Folds not yet counted by an `alert.folded` timeline entry.
    pub unlogged_folds: i64,
    /// When the alert's last `alert.folded` entry was written (its first event's time if none).
    pub folds_logged_at: Timestamp,
}

/// An alert's folds wait at most this long for an `alert.folded` timeline entry.
pub const FOLD_LOG_INTERVAL: SignedDuration = SignedDuration::from_secs(60);

/// Folds of one open alert that no timeline entry counts yet, as a store reads them to write
/// their entry (before an acknowledgement or resolution by hand, or once they have waited
/// [`FOLD_LOG_INTERVAL`]).
#[derive(Debug, Clone, PartialEq)]
pub struct UnloggedFolds {
    pub alert: AlertId,
    pub incident: IncidentNumber,
    pub dedup_key: DedupKey,
    /// Folds since the last entry.
    pub events: i64,
    /// The alert's count.
    pub count: i64,
    pub last_summary: String,
    pub last_seen: Timestamp,
}

impl UnloggedFolds {
    /// The `alert.folded` entry that counts these folds, written at `at` by `actor`.
    pub fn entry(&self, at: Timestamp, actor: Actor) -> TimelineRecord {
        TimelineRecord {
            incident: IncidentRef::Existing(self.incident),
            at,
            actor,
            data: TimelineData::AlertFolded {
                dedup_key: self.dedup_key.clone(),
                events: self.events,
                count: self.count,
                last_summary: self.last_summary.clone(),
                last_seen: Some(self.last_seen),
            },
        }
    }
}

/// An open incident as the store holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenIncident {
    pub number: IncidentNumber,
    pub state: IncidentState,
    pub open_alerts: i64,
    pub acknowledged_at: Option<Timestamp>,
}

/// What is open for one (service, dedup key). When `open_alert` is present, `open_incident` is
/// the incident that alert belongs to.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KeySnapshot {
    pub open_alert: Option<OpenAlert>,
    pub open_incident: Option<OpenIncident>,
}

/// An alert in a plan: one that exists, or the n-th alert the plan creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertRef {
    Existing(AlertId),
    New(usize),
}

/// An incident in a plan: one that exists, or the n-th incident the plan creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IncidentRef {
    Existing(IncidentNumber),
    New(usize),
}

/// The state an alert has after the batch. New alerts (`AlertRef::New`) appear in creation
/// order, so the store can insert them in sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRecord {
    pub alert: AlertRef,
    pub incident: IncidentRef,
    pub service: ServiceId,
    pub dedup_key: DedupKey,
    pub state: AlertState,
    pub count: i64,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub severity: Severity,
    pub summary: String,
    pub source: String,
    /// The latest payload's details, when a trigger in this batch brought one.
    pub details: Option<serde_json::Value>,
    pub acknowledged_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    pub unlogged_folds: i64,
    pub folds_logged_at: Timestamp,
    /// Whether the batch acknowledged or resolved an existing alert (state and times to write),
    /// rather than only folded events into it.
    pub state_changed: bool,
}

/// What a new incident is created with.
#[derive(Debug, Clone, PartialEq)]
pub struct NewIncident {
    pub service: ServiceId,
    pub dedup_key: DedupKey,
    pub title: String,
    pub severity: Severity,
    pub priority: Priority,
    pub created_at: Timestamp,
    pub impact_started_at: Timestamp,
}

/// The state an incident has after the batch. New incidents (`IncidentRef::New`, with
/// `opened` set) appear in creation order.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentRecord {
    pub incident: IncidentRef,
    pub opened: Option<NewIncident>,
    pub state: IncidentState,
    pub open_alerts: i64,
    pub acknowledged_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
}

/// What happened to one event of the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOutcome {
    Opened,
    Folded,
    Acknowledged,
    Resolved,
    IgnoredNoOpenAlert,
    IgnoredAlreadyAcknowledged,
}

impl EventOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            EventOutcome::Opened => "opened",
            EventOutcome::Folded => "folded",
            EventOutcome::Acknowledged => "acknowledged",
            EventOutcome::Resolved => "resolved",
            EventOutcome::IgnoredNoOpenAlert => "ignored_no_open_alert",
            EventOutcome::IgnoredAlreadyAcknowledged => "ignored_already_acknowledged",
        }
    }
}

/// One event of the batch and where it went.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    /// Position in the batch.
    pub index: usize,
    pub alert: Option<AlertRef>,
    pub outcome: EventOutcome,
}

/// Everything a batch changes. Only touched rows appear.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BatchPlan {
    pub incidents: Vec<IncidentRecord>,
    pub alerts: Vec<AlertRecord>,
    pub timeline: Vec<TimelineRecord>,
    pub events: Vec<EventRecord>,
}

type Key = (ServiceId, DedupKey);

#[derive(Default)]
struct KeyState {
    open_alert: Option<usize>,
    open_incident: Option<usize>,
}

#[derive(Default)]
struct Working {
    incidents: Vec<(IncidentRecord, bool)>,
    incidents_by_number: HashMap<IncidentNumber, usize>,
    new_incidents: usize,
    alerts: Vec<(AlertRecord, bool)>,
    new_alerts: usize,
    keys: HashMap<Key, KeyState>,
    timeline: Vec<TimelineRecord>,
}

/// Folds a batch of events, in order, over the snapshots of their keys.
///
/// `snapshots` must hold an entry for every (service, dedup key) in `events`; a missing entry is
/// read as "nothing open". `policy` tells how each service resolves incidents.
pub fn fold_batch<E: Borrow<Event>>(
    events: &[E],
    snapshots: &HashMap<Key, KeySnapshot>,
    policy: &dyn Fn(&ServiceId) -> ResolvePolicy,
) -> BatchPlan {
    let mut working = Working::default();
    let mut records = Vec::with_capacity(events.len());
    for (index, event) in events.iter().enumerate() {
        let event: &Event = event.borrow();
        let key = (event.service.clone(), event.dedup_key.clone());
        working.load(&key, snapshots);
        let (alert, outcome) = match event.action {
            EventAction::Trigger => working.trigger(&key, event),
            EventAction::Acknowledge => working.acknowledge(&key, event),
            EventAction::Resolve => working.resolve(&key, event, policy(&event.service)),
        };
        records.push(EventRecord {
            index,
            alert,
            outcome,
        });
    }
    BatchPlan {
        incidents: working
            .incidents
            .into_iter()
            .filter_map(|(record, dirty)| dirty.then_some(record))
            .collect(),
        alerts: working
            .alerts
            .into_iter()
            .filter_map(|(record, dirty)| dirty.then_some(record))
            .collect(),
        timeline: working.timeline,
        events: records,
    }
}

impl Working {
    fn load(&mut self, key: &Key, snapshots: &HashMap<Key, KeySnapshot>) {
        if self.keys.contains_key(key) {
            return;
        }
        let mut state = KeyState::default();
        if let Some(snapshot) = snapshots.get(key) {
            if let Some(incident) = &snapshot.open_incident {
                let slot = match self.incidents_by_number.get(&incident.number) {
                    Some(slot) => *slot,
                    None => {
                        self.incidents.push((
                            IncidentRecord {
                                incident: IncidentRef::Existing(incident.number),
                                opened: None,
                                state: incident.state,
                                open_alerts: incident.open_alerts,
                                acknowledged_at: incident.acknowledged_at,
                                resolved_at: None,
                            },
                            false,
                        ));
                        self.incidents_by_number
                            .insert(incident.number, self.incidents.len() - 1);
                        self.incidents.len() - 1
                    }
                };
                state.open_incident = Some(slot);
            }
            if let (Some(alert), Some(incident_slot)) = (&snapshot.open_alert, state.open_incident)
            {
                self.alerts.push((
                    AlertRecord {
                        alert: AlertRef::Existing(alert.id),
                        incident: self.incidents[incident_slot].0.incident,
                        service: key.0.clone(),
                        dedup_key: key.1.clone(),
                        state: alert.state,
                        count: alert.count,
                        first_seen: alert.first_seen,
                        last_seen: alert.last_seen,
                        severity: alert.severity,
                        summary: alert.summary.clone(),
                        source: alert.source.clone(),
                        details: None,
                        acknowledged_at: alert.acknowledged_at,
                        resolved_at: None,
                        unlogged_folds: alert.unlogged_folds,
                        folds_logged_at: alert.folds_logged_at,
                        state_changed: false,
                    },
                    false,
                ));
                state.open_alert = Some(self.alerts.len() - 1);
            }
        }
        self.keys.insert(key.clone(), state);
    }

    fn key_state(&mut self, key: &Key) -> &mut KeyState {
        self.keys.entry(key.clone()).or_default()
    }

    fn trigger(&mut self, key: &Key, event: &Event) -> (Option<AlertRef>, EventOutcome) {
        if let Some(slot) = self.key_state(key).open_alert {
            let (alert, dirty) = &mut self.alerts[slot];
            *dirty = true;
            alert.count += 1;
            alert.last_seen = alert.last_seen.max(event.received_at);
            alert.severity = event.severity;
            alert.summary.clone_from(&event.summary);
            alert.source.clone_from(&event.source);
            alert.details = Some(event.details.clone());
            alert.unlogged_folds += 1;
            let alert_ref = alert.alert;
            if event.received_at.duration_since(alert.folds_logged_at) >= FOLD_LOG_INTERVAL {
                self.log_folds(slot, event);
            }
            return (Some(alert_ref), EventOutcome::Folded);
        }

        let existing_incident = self.key_state(key).open_incident;
        let incident_slot = match existing_incident {
            Some(slot) => slot,
            None => {
                // Kept to the microsecond, the precision the stores keep.
                let impact_started_at = event
                    .occurred_at
                    .map_or(event.received_at, |at| at.min(event.received_at));
                let impact_started_at =
                    Timestamp::from_microsecond(impact_started_at.as_microsecond())
                        .unwrap_or(impact_started_at);
                let incident_ref = IncidentRef::New(self.new_incidents);
                self.new_incidents += 1;
                self.incidents.push((
                    IncidentRecord {
                        incident: incident_ref,
                        opened: Some(NewIncident {
                            service: event.service.clone(),
                            dedup_key: event.dedup_key.clone(),
                            title: event.summary.clone(),
                            severity: event.severity,
                            priority: event.severity.default_priority(),
                            created_at: event.received_at,
                            impact_started_at,
                        }),
                        state: IncidentState::Triggered,
                        open_alerts: 0,
                        acknowledged_at: None,
                        resolved_at: None,
                    },
                    true,
                ));
                let slot = self.incidents.len() - 1;
                self.key_state(key).open_incident = Some(slot);
                self.append(
                    incident_ref,
                    event,
                    TimelineData::IncidentTriggered {
                        dedup_key: event.dedup_key.clone(),
                        severity: event.severity,
                        summary: event.summary.clone(),
                        source: event.source.clone(),
                        impact_started_at,
                    },
                );
                slot
            }
        };

        let (incident, dirty) = &mut self.incidents[incident_slot];
        *dirty = true;
        incident.open_alerts += 1;
        let incident_ref = incident.incident;
        let alert_ref = AlertRef::New(self.new_alerts);
        self.new_alerts += 1;
        self.alerts.push((
            AlertRecord {
                alert: alert_ref,
                incident: incident_ref,
                service: event.service.clone(),
                dedup_key: event.dedup_key.clone(),
                state: AlertState::Triggered,
                count: 1,
                first_seen: event.received_at,
                last_seen: event.received_at,
                severity: event.severity,
                summary: event.summary.clone(),
                source: event.source.clone(),
                details: Some(event.details.clone()),
                acknowledged_at: None,
                resolved_at: None,
                unlogged_folds: 0,
                folds_logged_at: event.received_at,
                state_changed: true,
            },
            true,
        ));
        self.key_state(key).open_alert = Some(self.alerts.len() - 1);
        if existing_incident.is_some() {
            self.append(
                incident_ref,
                event,
                TimelineData::AlertOpened {
                    dedup_key: event.dedup_key.clone(),
                    severity: event.severity,
                    summary: event.summary.clone(),
                    source: event.source.clone(),
                },
            );
        }
        (Some(alert_ref), EventOutcome::Opened)
    }

    fn acknowledge(&mut self, key: &Key, event: &Event) -> (Option<AlertRef>, EventOutcome) {
        let state = self.key_state(key);
        let (Some(alert_slot), Some(incident_slot)) = (state.open_alert, state.open_incident)
        else {
            return (None, EventOutcome::IgnoredNoOpenAlert);
        };
        let (alert, _) = &self.alerts[alert_slot];
        let alert_ref = alert.alert;
        if alert.state != AlertState::Triggered {
            return (Some(alert_ref), EventOutcome::IgnoredAlreadyAcknowledged);
        }
        self.log_folds(alert_slot, event);
        let (alert, dirty) = &mut self.alerts[alert_slot];
        *dirty = true;
        alert.state_changed = true;
        alert.state = AlertState::Acknowledged;
        alert.acknowledged_at = Some(event.received_at);
        let (incident, dirty) = &mut self.incidents[incident_slot];
        let incident_ref = incident.incident;
        let incident_changes = incident.state == IncidentState::Triggered;
        if incident_changes {
            *dirty = true;
            incident.state = IncidentState::Acknowledged;
            incident.acknowledged_at = Some(event.received_at);
        }
        self.append(
            incident_ref,
            event,
            TimelineData::AlertAcknowledged {
                dedup_key: event.dedup_key.clone(),
            },
        );
        if incident_changes {
            self.append(
                incident_ref,
                event,
                TimelineData::IncidentAcknowledged {
                    alerts_acknowledged: None,
                },
            );
        }
        (Some(alert_ref), EventOutcome::Acknowledged)
    }

    fn resolve(
        &mut self,
        key: &Key,
        event: &Event,
        policy: ResolvePolicy,
    ) -> (Option<AlertRef>, EventOutcome) {
        let state = self.key_state(key);
        let (Some(alert_slot), Some(incident_slot)) = (state.open_alert, state.open_incident)
        else {
            return (None, EventOutcome::IgnoredNoOpenAlert);
        };
        state.open_alert = None;
        self.log_folds(alert_slot, event);
        let (alert, dirty) = &mut self.alerts[alert_slot];
        *dirty = true;
        alert.state_changed = true;
        alert.state = AlertState::Resolved;
        alert.resolved_at = Some(event.received_at);
        let alert_ref = alert.alert;
        let (incident, dirty) = &mut self.incidents[incident_slot];
        *dirty = true;
        incident.open_alerts = (incident.open_alerts - 1).max(0);
        let incident_ref = incident.incident;
        let last_alert = incident.open_alerts == 0;
        let resolves_incident = last_alert && policy == ResolvePolicy::Auto;
        if resolves_incident {
            incident.state = IncidentState::Resolved;
            incident.resolved_at = Some(event.received_at);
            self.key_state(key).open_incident = None;
        }
        self.append(
            incident_ref,
            event,
            TimelineData::AlertResolved {
                dedup_key: event.dedup_key.clone(),
            },
        );
        if resolves_incident {
            self.append(
                incident_ref,
                event,
                TimelineData::IncidentResolved {
                    alerts_resolved: None,
                },
            );
        } else if last_alert {
            self.append(incident_ref, event, TimelineData::AllAlertsResolved);
        }
        (Some(alert_ref), EventOutcome::Resolved)
    }

    fn append(&mut self, incident: IncidentRef, event: &Event, data: TimelineData) {
        self.timeline.push(TimelineRecord {
            incident,
            at: event.received_at,
            actor: Actor::integration(event.integration),
            data,
        });
    }

    /// Writes the alert's unlogged folds, if any, as one `alert.folded` entry at the event's time.
    fn log_folds(&mut self, alert_slot: usize, event: &Event) {
        let (alert, dirty) = &mut self.alerts[alert_slot];
        if alert.unlogged_folds == 0 {
            return;
        }
        *dirty = true;
        let data = TimelineData::AlertFolded {
            dedup_key: alert.dedup_key.clone(),
            events: alert.unlogged_folds,
            count: alert.count,
            last_summary: alert.summary.clone(),
            last_seen: Some(alert.last_seen),
        };
        alert.unlogged_folds = 0;
        alert.folds_logged_at = event.received_at;
        let incident = alert.incident;
        self.append(incident, event, data);
    }
}

#[cfg(test)]
mod tests;
