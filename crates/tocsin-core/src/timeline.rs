use std::fmt;

use jiff::{SignedDuration, Timestamp};

use crate::fold::IncidentRef;

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

/// What a timeline entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimelineKind {
    /// An alert opened this incident. Data: `alert`, `dedup_key`, `severity`, `summary`,
    /// `impact_started_at`.
    IncidentTriggered,
    /// A new alert joined the open incident. Data: `alert`, `severity`, `summary`.
    AlertOpened,
    /// Events folded into an existing alert. Data: `alert`, `events` (how many), `count` (the
    /// alert's total after the fold), `last_summary`.
    AlertFolded,
    /// Data: `alert`.
    AlertAcknowledged,
    /// Data: `alert`.
    AlertResolved,
    IncidentAcknowledged,
    IncidentResolved,
    /// Every alert resolved, but the service resolves incidents by hand. Data: none.
    AllAlertsResolved,
    /// Data: `from`, `to`.
    PriorityChanged,
    /// Data: `text`.
    NoteAdded,
}

impl TimelineKind {
    pub const ALL: [TimelineKind; 10] = [
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

/// A timeline entry to append, decided by the fold or a command.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineRecord {
    pub incident: IncidentRef,
    pub at: Timestamp,
    pub actor: Actor,
    pub kind: TimelineKind,
    pub data: serde_json::Value,
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
    /// Reads the times from timeline entries in the order they were appended.
    pub fn from_timeline<'a>(
        entries: impl IntoIterator<Item = (TimelineKind, Timestamp, &'a serde_json::Value)>,
    ) -> Self {
        let mut times = IncidentTimes::default();
        for (kind, at, data) in entries {
            match kind {
                TimelineKind::IncidentTriggered if times.triggered_at.is_none() => {
                    times.triggered_at = Some(at);
                    times.impact_started_at = data
                        .get("impact_started_at")
                        .and_then(|value| value.as_str())
                        .and_then(|value| value.parse().ok())
                        .or(Some(at));
                }
                TimelineKind::IncidentAcknowledged if times.acknowledged_at.is_none() => {
                    times.acknowledged_at = Some(at);
                }
                TimelineKind::IncidentResolved => times.resolved_at = Some(at),
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
