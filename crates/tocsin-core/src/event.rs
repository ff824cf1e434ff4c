use std::fmt;

use jiff::Timestamp;

use crate::{DedupKey, ServiceId, Severity};

/// What an event asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventAction {
    Trigger,
    Acknowledge,
    Resolve,
}

impl EventAction {
    pub fn as_str(self) -> &'static str {
        match self {
            EventAction::Trigger => "trigger",
            EventAction::Acknowledge => "acknowledge",
            EventAction::Resolve => "resolve",
        }
    }
}

impl fmt::Display for EventAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which door an event came in through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Integration {
    EventsV2,
    Alertmanager,
    Grafana,
    Generic,
    /// A heartbeat monitor's pings and deadlines.
    Heartbeat,
    /// A rule over a service's event stream.
    Rule,
    /// Tocsin's own monitors (http, tcp, dns and tls checks).
    Monitor,
}

impl Integration {
    pub fn as_str(self) -> &'static str {
        match self {
            Integration::EventsV2 => "events-v2",
            Integration::Alertmanager => "alertmanager",
            Integration::Grafana => "grafana",
            Integration::Generic => "generic",
            Integration::Heartbeat => "heartbeat",
            Integration::Rule => "rule",
            Integration::Monitor => "monitor",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "events-v2" => Some(Integration::EventsV2),
            "alertmanager" => Some(Integration::Alertmanager),
            "grafana" => Some(Integration::Grafana),
            "generic" => Some(Integration::Generic),
            "heartbeat" => Some(Integration::Heartbeat),
            "rule" => Some(Integration::Rule),
            "monitor" => Some(Integration::Monitor),
            _ => None,
        }
    }
}

impl fmt::Display for Integration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One inbound alert signal, validated and bound to a service.
///
/// `severity`, `summary` and `source` are always present: parsers fill them from the event, or,
/// for acknowledge and resolve events that carry no payload, with neutral values that the fold
/// never copies onto an alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub service: ServiceId,
    pub integration: Integration,
    pub action: EventAction,
    pub dedup_key: DedupKey,
    pub severity: Severity,
    pub summary: String,
    pub source: String,
    /// When the sender says it happened (`payload.timestamp`, `startsAt`), if it said.
    pub occurred_at: Option<Timestamp>,
    /// When Tocsin accepted it.
    pub received_at: Timestamp,
    /// Everything else the sender said (custom details, labels, links, images), as sent.
    pub details: serde_json::Value,
}

/// A link attached to a change event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventLink {
    pub href: String,
    pub text: Option<String>,
}

/// A change (deploy, config push, migration) on a service. Never opens an incident; shown on
/// the service's timeline to answer "what changed just before this broke?".
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    pub service: ServiceId,
    pub summary: String,
    pub source: Option<String>,
    pub occurred_at: Option<Timestamp>,
    pub received_at: Timestamp,
    pub details: serde_json::Value,
    pub links: Vec<EventLink>,
}
