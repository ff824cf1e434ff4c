use std::fmt;
use std::str::FromStr;

use tocsin_core::{
    Actor, AlertId, AlertState, ChangeEvent, DedupKey, Event, EventAction, IncidentNumber,
    IncidentSnapshot, IncidentState, IncidentTimes, Integration, Priority, ServiceId, Severity,
    TimelineData, TimelineKind, Timestamp, Transition, UnknownValue,
};

/// One item of an ingest batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    Alert(Event),
    Change(ChangeEvent),
    /// A heartbeat monitor's ping, deadline or watch (see [`crate::heartbeat`]).
    Heartbeat(tocsin_core::heartbeat::HeartbeatInput),
}

impl Inbound {
    /// The service the item belongs to.
    pub fn service(&self) -> &ServiceId {
        match self {
            Inbound::Alert(event) => &event.service,
            Inbound::Change(change) => &change.service,
            Inbound::Heartbeat(input) => &input.service,
        }
    }
}

/// What one ingest batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IngestReport {
    pub events: usize,
    pub change_events: usize,
    /// Heartbeat signals (pings, deadlines, watches) applied.
    pub heartbeat_signals: usize,
    pub alerts_opened: usize,
    /// Alerts resolved by the batch (one opened and resolved in the same batch counts in both).
    pub alerts_resolved: usize,
    pub incidents_opened: usize,
    pub incidents_resolved: usize,
}

/// A page of a list. `next` is the cursor for the following page, absent on the last one.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<i64>,
}

/// Which page to read: items after the cursor `after` (exclusive, in the list's order), at most
/// `limit` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub after: Option<i64>,
    limit: u32,
}

impl PageRequest {
    pub const DEFAULT_LIMIT: u32 = 50;
    /// No list returns more than this many items at once, whatever the caller asks.
    pub const MAX_LIMIT: u32 = 500;

    /// `limit` is clamped to 1..=MAX_LIMIT.
    pub fn new(after: Option<i64>, limit: u32) -> Self {
        PageRequest {
            after,
            limit: limit.clamp(1, Self::MAX_LIMIT),
        }
    }

    pub fn first(limit: u32) -> Self {
        Self::new(None, limit)
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Builds the page from up to `limit + 1` rows fetched in list order: the extra row only
    /// says that there is a next page.
    pub fn finish<T>(&self, mut rows: Vec<T>, cursor_of: impl Fn(&T) -> i64) -> Page<T> {
        let limit = self.limit as usize;
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(&cursor_of)
        } else {
            None
        };
        Page { items: rows, next }
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        Self::first(Self::DEFAULT_LIMIT)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct IncidentRow {
    pub number: IncidentNumber,
    pub service: ServiceId,
    pub dedup_key: DedupKey,
    pub title: String,
    pub severity: Severity,
    pub priority: Priority,
    pub state: IncidentState,
    pub open_alerts: i64,
    pub created_at: Timestamp,
    pub impact_started_at: Timestamp,
    pub acknowledged_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    pub updated_at: Timestamp,
}

impl IncidentRow {
    /// What an incident command decides from.
    pub fn snapshot(&self) -> IncidentSnapshot {
        IncidentSnapshot {
            number: self.number,
            state: self.state,
            priority: self.priority,
            open_alerts: self.open_alerts,
            acknowledged_at: self.acknowledged_at,
            resolved_at: self.resolved_at,
            updated_at: self.updated_at,
        }
    }

    /// The incident's times, as recorded with its state changes.
    pub fn times(&self) -> IncidentTimes {
        IncidentTimes {
            impact_started_at: Some(self.impact_started_at),
            triggered_at: Some(self.created_at),
            acknowledged_at: self.acknowledged_at,
            resolved_at: self.resolved_at,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct IncidentFilter {
    /// Empty means every state.
    pub states: Vec<IncidentState>,
    pub service: Option<ServiceId>,
    pub priority: Option<Priority>,
}

/// An alert as lists show it: everything but the latest payload's details.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertSummary {
    pub id: AlertId,
    pub incident: IncidentNumber,
    pub service: ServiceId,
    pub dedup_key: DedupKey,
    pub state: AlertState,
    pub count: i64,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub severity: Severity,
    pub summary: String,
    pub source: String,
    pub acknowledged_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
}

/// One alert with the latest payload's details (which can be large: lists leave them out).
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRow {
    pub alert: AlertSummary,
    /// The latest payload's details.
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertFilter {
    pub state: Option<AlertState>,
    pub service: Option<ServiceId>,
    pub incident: Option<IncidentNumber>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TimelineEntry {
    pub id: i64,
    pub incident: IncidentNumber,
    pub at: Timestamp,
    pub actor: Actor,
    pub data: TimelineData,
}

impl TimelineEntry {
    pub fn kind(&self) -> TimelineKind {
        self.data.kind()
    }
}

/// An event as stored, with what the fold did with it, as lists show it: without its details.
#[derive(Debug, Clone, PartialEq)]
pub struct EventSummary {
    pub id: i64,
    pub service: ServiceId,
    pub integration: Integration,
    pub action: EventAction,
    pub dedup_key: DedupKey,
    pub severity: Severity,
    pub summary: String,
    pub source: String,
    pub occurred_at: Option<Timestamp>,
    pub received_at: Timestamp,
    pub alert: Option<AlertId>,
    /// `tocsin_core::EventOutcome::as_str` of what the fold did.
    pub outcome: String,
}

/// One stored event with its details.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub event: EventSummary,
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFilter {
    pub service: Option<ServiceId>,
    pub dedup_key: Option<DedupKey>,
    pub alert: Option<AlertId>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEventRow {
    pub id: i64,
    pub service: ServiceId,
    pub summary: String,
    pub source: Option<String>,
    pub occurred_at: Option<Timestamp>,
    pub received_at: Timestamp,
    pub details: serde_json::Value,
    /// `[{href, text?}]` as sent.
    pub links: serde_json::Value,
}

/// The result of an incident command: the incident afterwards, whether it changed, and the
/// timeline entries it appended (in order; none when it changed nothing).
#[derive(Debug, Clone, PartialEq)]
pub struct CommandOutcome {
    pub incident: IncidentRow,
    pub transition: Transition,
    pub entries: Vec<TimelineEntry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub open_incidents: i64,
    pub open_alerts: i64,
}

/// What an API token may do. `Write` includes `Read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenScope {
    Read,
    Write,
}

impl TokenScope {
    pub const ALLOWED: &'static str = "read, write";

    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Read => "read",
            TokenScope::Write => "write",
        }
    }

    pub fn allows(self, needed: TokenScope) -> bool {
        matches!(
            (self, needed),
            (TokenScope::Write, _) | (TokenScope::Read, TokenScope::Read)
        )
    }
}

impl FromStr for TokenScope {
    type Err = UnknownValue;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "read" => Ok(TokenScope::Read),
            "write" => Ok(TokenScope::Write),
            _ => Err(UnknownValue {
                value: value.to_owned(),
                allowed: Self::ALLOWED,
            }),
        }
    }
}

impl fmt::Display for TokenScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    pub scope: TokenScope,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}
