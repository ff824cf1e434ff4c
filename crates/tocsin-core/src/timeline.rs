use std::fmt;

use jiff::{SignedDuration, Timestamp};

use crate::fold::IncidentRef;
use crate::{DedupKey, Priority, Severity};

/// Who did something: an integration, an API token's owner, the CLI, or Tocsin itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Actor(String);

impl Actor {
    /// An inbound integration, e.g. `integration:events-v2`.
    pub fn integration(integration: crate::Integration) -> Self {
        Actor(format!("integration:{integration}"))
    }

    /// The holder of an API token, by the token's name, e.g. `token:ana-laptop`.
    pub fn token(name: &str) -> Self {
        Actor(format!("token:{name}"))
    }

    /// A user who followed a signed link sent to them, e.g. `link:ana`.
    pub fn link(user: &str) -> Self {
        Actor(format!("link:{user}"))
    }

    /// Tocsin itself (rules, timers).
    pub fn system() -> Self {
        Actor("tocsin".to_owned())
    }

    /// An actor string read back from storage.
    pub fn from_stored(value: String) -> Self {
        Actor(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a timeline entry records: the `kind` stored and shown with every entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimelineKind {
    IncidentTriggered,
    AlertOpened,
    AlertFolded,
    AlertAcknowledged,
    AlertResolved,
    IncidentAcknowledged,
    IncidentResolved,
    AllAlertsResolved,
    PriorityChanged,
    NoteAdded,
    EscalationNotified,
    EscalationSkipped,
    IncidentEscalated,
    NotificationAttempted,
    IncidentReassigned,
    IncidentAckTimeout,
    NotificationRerouted,
    StatusUpdated,
}

impl TimelineKind {
    pub const ALL: [TimelineKind; 18] = [
        TimelineKind::IncidentTriggered,
        TimelineKind::AlertOpened,
        TimelineKind::AlertFolded,
        TimelineKind::AlertAcknowledged,
        TimelineKind::AlertResolved,
        TimelineKind::IncidentAcknowledged,
        TimelineKind::IncidentResolved,
        TimelineKind::AllAlertsResolved,
        TimelineKind::PriorityChanged,
        TimelineKind::NoteAdded,
        TimelineKind::EscalationNotified,
        TimelineKind::EscalationSkipped,
        TimelineKind::IncidentEscalated,
        TimelineKind::NotificationAttempted,
        TimelineKind::IncidentReassigned,
        TimelineKind::IncidentAckTimeout,
        TimelineKind::NotificationRerouted,
        TimelineKind::StatusUpdated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TimelineKind::IncidentTriggered => "incident.triggered",
            TimelineKind::AlertOpened => "alert.opened",
            TimelineKind::AlertFolded => "alert.folded",
            TimelineKind::AlertAcknowledged => "alert.acknowledged",
            TimelineKind::AlertResolved => "alert.resolved",
            TimelineKind::IncidentAcknowledged => "incident.acknowledged",
            TimelineKind::IncidentResolved => "incident.resolved",
            TimelineKind::AllAlertsResolved => "incident.all_alerts_resolved",
            TimelineKind::PriorityChanged => "incident.priority_changed",
            TimelineKind::NoteAdded => "note.added",
            TimelineKind::EscalationNotified => "escalation.notified",
            TimelineKind::EscalationSkipped => "escalation.skipped",
            TimelineKind::IncidentEscalated => "incident.escalated",
            TimelineKind::NotificationAttempted => "notification.attempted",
            TimelineKind::IncidentReassigned => "incident.reassigned",
            TimelineKind::IncidentAckTimeout => "incident.ack_timeout",
            TimelineKind::NotificationRerouted => "notification.rerouted",
            TimelineKind::StatusUpdated => "status.updated",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == value)
    }
}

impl fmt::Display for TimelineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a timeline entry says: one variant per [`TimelineKind`], with the fields the entry
/// carries. The stores keep it as a JSON object with these field names (times as RFC 3339
/// text, severities and priorities by name), and the API shows that object as the entry's
/// `data`.
#[derive(Debug, Clone, PartialEq)]
pub enum TimelineData {
    /// An alert opened this incident.
    IncidentTriggered {
        dedup_key: DedupKey,
        severity: Severity,
        /// The opening event's summary.
        summary: String,
        source: String,
        /// When the first signal says the problem began.
        impact_started_at: Timestamp,
    },
    /// A new alert (a new dedup key, or the key again after its alert resolved) joined the
    /// open incident.
    AlertOpened {
        dedup_key: DedupKey,
        severity: Severity,
        summary: String,
        source: String,
    },
    /// Events folded into an open alert since its previous `alert.folded` entry.
    AlertFolded {
        dedup_key: DedupKey,
        /// How many folds this entry counts.
        events: i64,
        /// The alert's total count of events after them.
        count: i64,
        /// The summary of the latest of them.
        last_summary: String,
        /// When the latest of them arrived; absent in entries written before it was recorded.
        last_seen: Option<Timestamp>,
    },
    /// An acknowledge event acknowledged the key's alert.
    AlertAcknowledged {
        dedup_key: DedupKey,
    },
    /// A resolve event resolved the key's alert.
    AlertResolved {
        dedup_key: DedupKey,
    },
    /// The incident was acknowledged: by an event (`alerts_acknowledged` absent; its
    /// `alert.acknowledged` entry comes just before) or by a command, which acknowledges every
    /// triggered alert of the incident and says how many.
    IncidentAcknowledged {
        alerts_acknowledged: Option<i64>,
    },
    /// The incident was resolved: by the event that resolved its last alert
    /// (`alerts_resolved` absent) or by a command, which resolves every open alert and says how
    /// many.
    IncidentResolved {
        alerts_resolved: Option<i64>,
    },
    /// Every alert resolved, but the service resolves incidents by hand.
    AllAlertsResolved,
    PriorityChanged {
        from: Priority,
        to: Priority,
    },
    NoteAdded {
        text: String,
    },
    /// An escalation level was paged: the people it resolved to at that moment, each as
    /// `user` (one notification per contact method of their notify rules was queued).
    EscalationNotified {
        /// 0 for the first run of the ladder, 1 for the first repeat, and so on.
        pass: u32,
        /// 1 for the first level.
        level: u32,
        recipients: Vec<String>,
    },
    /// An escalation level resolved to nobody (an empty schedule, a team without pageable
    /// members) and was skipped.
    EscalationSkipped {
        pass: u32,
        level: u32,
        /// Why, in words.
        reason: String,
    },
    /// Someone asked for the next escalation level now.
    IncidentEscalated,
    /// One attempt to deliver a notification.
    NotificationAttempted {
        /// `user:<id>` or `channel:<id>`.
        recipient: String,
        /// How: `email`, `webhook`, `ntfy`, `slack`, `console`, ...
        method: String,
        /// The contact method's id (empty for a channel).
        contact: String,
        /// `sent`, `retrying` (it will be tried again) or `failed` (given up).
        result: String,
        /// 1 for the first attempt.
        attempt: i64,
        latency_ms: i64,
        error: Option<String>,
    },
    /// Someone handed the incident to `to` (a user id), who was paged at once by each of
    /// their notify rules.
    IncidentReassigned {
        to: String,
    },
    /// The incident stayed acknowledged and unresolved for its service's `ack_timeout`: it is
    /// triggered again and its escalation starts over at level 1.
    IncidentAckTimeout {
        /// The service's acknowledgement timeout, in minutes.
        timeout_minutes: u64,
    },
    /// A page to a user failed for good on one contact method (after its last retry, or
    /// refused): the user's next contact method in the config's order that this page has not
    /// tried yet is paged instead, or none is left.
    NotificationRerouted {
        /// `user:<id>`.
        recipient: String,
        /// The contact method that failed, and how it sends.
        failed_contact: String,
        failed_method: String,
        /// The contact method paged instead (`None`: every one was tried).
        next_contact: Option<String>,
        next_method: Option<String>,
    },
    /// A public update was posted on the status page: `published` when it was the first,
    /// which made the incident public.
    StatusUpdated {
        /// `investigating`, `identified`, `monitoring` or `resolved`.
        status: String,
        message: String,
        /// The components it set, each with the status it set: (component id, status).
        affected: Vec<(String, String)>,
        published: bool,
    },
}

impl TimelineData {
    pub fn kind(&self) -> TimelineKind {
        match self {
            TimelineData::IncidentTriggered { .. } => TimelineKind::IncidentTriggered,
            TimelineData::AlertOpened { .. } => TimelineKind::AlertOpened,
            TimelineData::AlertFolded { .. } => TimelineKind::AlertFolded,
            TimelineData::AlertAcknowledged { .. } => TimelineKind::AlertAcknowledged,
            TimelineData::AlertResolved { .. } => TimelineKind::AlertResolved,
            TimelineData::IncidentAcknowledged { .. } => TimelineKind::IncidentAcknowledged,
            TimelineData::IncidentResolved { .. } => TimelineKind::IncidentResolved,
            TimelineData::AllAlertsResolved => TimelineKind::AllAlertsResolved,
            TimelineData::PriorityChanged { .. } => TimelineKind::PriorityChanged,
            TimelineData::NoteAdded { .. } => TimelineKind::NoteAdded,
            TimelineData::EscalationNotified { .. } => TimelineKind::EscalationNotified,
            TimelineData::EscalationSkipped { .. } => TimelineKind::EscalationSkipped,
            TimelineData::IncidentEscalated => TimelineKind::IncidentEscalated,
            TimelineData::NotificationAttempted { .. } => TimelineKind::NotificationAttempted,
            TimelineData::IncidentReassigned { .. } => TimelineKind::IncidentReassigned,
            TimelineData::IncidentAckTimeout { .. } => TimelineKind::IncidentAckTimeout,
            TimelineData::NotificationRerouted { .. } => TimelineKind::NotificationRerouted,
            TimelineData::StatusUpdated { .. } => TimelineKind::StatusUpdated,
        }
    }

    /// How many folds an `alert.folded` entry counts (`None` for other kinds).
    pub fn folded_events(&self) -> Option<i64> {
        match self {
            TimelineData::AlertFolded { events, .. } => Some(*events),
            _ => None,
        }
    }
}

/// A timeline entry to append, decided by the fold or a command.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineRecord {
    pub incident: IncidentRef,
    pub at: Timestamp,
    pub actor: Actor,
    pub data: TimelineData,
}

impl TimelineRecord {
    pub fn kind(&self) -> TimelineKind {
        self.data.kind()
    }
}

/// The times people ask about after an incident, derived from its timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IncidentTimes {
    /// When the first signal says the problem began (the sender's timestamp when it gave one
    /// and it is not later than when Tocsin heard of it).
    pub impact_started_at: Option<Timestamp>,
    pub triggered_at: Option<Timestamp>,
    pub acknowledged_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
}

impl IncidentTimes {
    /// Reads the times from timeline entries (when each was appended, and what it says) in
    /// the order they were appended.
    pub fn from_timeline<'a>(
        entries: impl IntoIterator<Item = (Timestamp, &'a TimelineData)>,
    ) -> Self {
        let mut times = IncidentTimes::default();
        for (at, data) in entries {
            match data {
                TimelineData::IncidentTriggered {
                    impact_started_at, ..
                } if times.triggered_at.is_none() => {
                    times.triggered_at = Some(at);
                    times.impact_started_at = Some(*impact_started_at);
                }
                TimelineData::IncidentAcknowledged { .. } if times.acknowledged_at.is_none() => {
                    times.acknowledged_at = Some(at);
                }
                TimelineData::IncidentResolved { .. } => times.resolved_at = Some(at),
                _ => {}
            }
        }
        times
    }

    /// From the incident opening to the first acknowledgement.
    pub fn time_to_acknowledge(&self) -> Option<SignedDuration> {
        Some(self.acknowledged_at?.duration_since(self.triggered_at?))
    }

    /// From the start of impact to resolution.
    pub fn time_to_resolve(&self) -> Option<SignedDuration> {
        Some(self.resolved_at?.duration_since(self.impact_started_at?))
    }
}
