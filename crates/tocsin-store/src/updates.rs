//! Incident updates for a service's channels: when an incident opens, is acknowledged, is
//! resolved or gets a note, every channel of its service gets a notification, queued in the
//! outbox by the transaction that made the change (ingest or an incident command).
//!
//! Which channels a service has comes from the config, through [`ServicePolicy`]; the
//! functions here turn what a transaction appended to the timeline into the channel
//! notifications it queues, and [`enqueue`] writes them. Unlike pages, channel updates are not
//! withdrawn when the incident is acknowledged or resolved: the channel is told that too.

use std::collections::HashMap;

use tocsin_core::{
    Actor, BatchPlan, IncidentNumber, IncidentRef, ResolvePolicy, ServiceId, TimelineData,
    Timestamp,
};

use crate::outbox::{NewNotification, Recipient};
use crate::sql::{self, Arg, Connection};
use crate::{AssignedIds, StoreError, TimelineEntry};

/// The notification kind of an incident that opened.
pub const OPENED: &str = "incident.opened";
/// ... that was acknowledged.
pub const ACKNOWLEDGED: &str = "incident.acknowledged";
/// ... that was resolved.
pub const RESOLVED: &str = "incident.resolved";
/// ... that got a note.
pub const NOTE: &str = "incident.note";

/// A channel that gets its service's incident updates.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UpdateChannel {
    /// The channel's id in the config.
    pub id: String,
    /// How it is sent: `slack`, `webhook`, `ntfy`, `email`.
    pub method: String,
}

/// What a store asks of the config about a service while it writes: how it resolves
/// incidents, and which channels get its incident updates. A plain
/// `Fn(&ServiceId) -> ResolvePolicy` is one with no channels.
pub trait ServicePolicy: Send + Sync {
    fn resolve_policy(&self, service: &ServiceId) -> ResolvePolicy;

    /// The channels that get the service's incident updates (none by default).
    fn update_channels(&self, service: &ServiceId) -> Vec<UpdateChannel> {
        let _ = service;
        Vec::new()
    }

    /// How long an acknowledged incident of the service may stay unresolved before it is
    /// triggered again (none by default).
    fn ack_timeout(&self, service: &ServiceId) -> Option<std::time::Duration> {
        let _ = service;
        None
    }
}

impl<F> ServicePolicy for F
where
    F: Fn(&ServiceId) -> ResolvePolicy + Send + Sync,
{
    fn resolve_policy(&self, service: &ServiceId) -> ResolvePolicy {
        self(service)
    }
}

/// The policies of a few services, collected ahead (for a writer that cannot borrow the
/// caller's policy, such as SQLite's ingest on the blocking pool).
#[derive(Debug, Clone, Default)]
pub struct CollectedPolicies {
    pub resolve: HashMap<ServiceId, ResolvePolicy>,
    pub channels: HashMap<ServiceId, Vec<UpdateChannel>>,
    pub ack_timeouts: HashMap<ServiceId, std::time::Duration>,
}

impl CollectedPolicies {
    /// Collects `policy` for `service`, once.
    pub fn collect(&mut self, policy: &dyn ServicePolicy, service: &ServiceId) {
        if !self.resolve.contains_key(service) {
            self.resolve
                .insert(service.clone(), policy.resolve_policy(service));
            self.channels
                .insert(service.clone(), policy.update_channels(service));
            if let Some(timeout) = policy.ack_timeout(service) {
                self.ack_timeouts.insert(service.clone(), timeout);
            }
        }
    }
}

impl ServicePolicy for CollectedPolicies {
    fn resolve_policy(&self, service: &ServiceId) -> ResolvePolicy {
        self.resolve.get(service).copied().unwrap_or_default()
    }

    fn update_channels(&self, service: &ServiceId) -> Vec<UpdateChannel> {
        self.channels.get(service).cloned().unwrap_or_default()
    }

    fn ack_timeout(&self, service: &ServiceId) -> Option<std::time::Duration> {
        self.ack_timeouts.get(service).copied()
    }
}

/// The update kind a timeline entry is, if it is one channels are told about.
pub fn update_kind(data: &TimelineData) -> Option<&'static str> {
    match data {
        TimelineData::IncidentTriggered { .. } => Some(OPENED),
        TimelineData::IncidentAcknowledged { .. } => Some(ACKNOWLEDGED),
        TimelineData::IncidentResolved { .. } => Some(RESOLVED),
        TimelineData::NoteAdded { .. } => Some(NOTE),
        _ => None,
    }
}

/// The channel notifications of what an ingest batch plan appends to the timeline (incidents
/// opened, acknowledged or resolved by events), once the plan's new incidents have numbers.
pub fn batch_updates(
    plan: &BatchPlan,
    ids: &AssignedIds,
    policy: &dyn ServicePolicy,
) -> Result<Vec<NewNotification>, StoreError> {
    if !plan
        .timeline
        .iter()
        .any(|record| update_kind(&record.data).is_some())
    {
        return Ok(Vec::new());
    }
    let service_of = services_of(plan);
    let mut channels: HashMap<&ServiceId, Vec<UpdateChannel>> = HashMap::new();
    let mut notifications = Vec::new();
    for record in &plan.timeline {
        let Some(kind) = update_kind(&record.data) else {
            continue;
        };
        let Some(service) = service_of.get(&record.incident).copied() else {
            continue;
        };
        let channels = channels
            .entry(service)
            .or_insert_with(|| policy.update_channels(service));
        if channels.is_empty() {
            continue;
        }
        let number = IncidentNumber(ids.incident(record.incident)?);
        // An incident changes state at most once per kind and instant.
        let discriminator = format!("{kind}-{}", record.at.as_microsecond());
        notifications.extend(updates(
            number,
            kind,
            &record.data,
            &record.actor,
            record.at,
            channels,
            &discriminator,
        ));
    }
    Ok(notifications)
}

/// The service of each incident a batch plan touches.
pub(crate) fn services_of(plan: &BatchPlan) -> HashMap<IncidentRef, &ServiceId> {
    let mut service_of: HashMap<IncidentRef, &ServiceId> = HashMap::new();
    for record in &plan.alerts {
        service_of.insert(record.incident, &record.service);
    }
    for record in &plan.incidents {
        if let Some(opened) = &record.opened {
            service_of.insert(record.incident, &opened.service);
        }
    }
    service_of
}

/// The channel notifications of the timeline entries an incident command appended.
pub fn command_updates(
    service: &ServiceId,
    entries: &[TimelineEntry],
    policy: &dyn ServicePolicy,
) -> Vec<NewNotification> {
    if !entries
        .iter()
        .any(|entry| update_kind(&entry.data).is_some())
    {
        return Vec::new();
    }
    let channels = policy.update_channels(service);
    let mut notifications = Vec::new();
    for entry in entries {
        let Some(kind) = update_kind(&entry.data) else {
            continue;
        };
        notifications.extend(updates(
            entry.incident,
            kind,
            &entry.data,
            &entry.actor,
            entry.at,
            &channels,
            &format!("{kind}-entry-{}", entry.id),
        ));
    }
    notifications
}

fn updates(
    number: IncidentNumber,
    kind: &str,
    data: &TimelineData,
    actor: &Actor,
    at: Timestamp,
    channels: &[UpdateChannel],
    discriminator: &str,
) -> Vec<NewNotification> {
    let mut payload = serde_json::json!({
        "actor": actor.as_str(),
        "at": at.to_string(),
    });
    if let TimelineData::NoteAdded { text } = data {
        payload["note"] = serde_json::Value::String(text.clone());
    }
    channels
        .iter()
        .map(|channel| NewNotification {
            incident: Some(number),
            recipient: Recipient::Channel {
                channel: channel.id.clone(),
            },
            method: channel.method.clone(),
            kind: kind.to_owned(),
            payload: payload.clone(),
            idempotency_key: idempotency_key(number, discriminator, &channel.id),
            not_before: at,
        })
        .collect()
}

/// `update-<incident>-<what>-<channel>`, cut to the longest key the outbox takes.
fn idempotency_key(number: IncidentNumber, discriminator: &str, channel: &str) -> String {
    let key = format!("update-{}-{discriminator}-{channel}", number.0);
    key.chars()
        .take(crate::outbox::MAX_IDEMPOTENCY_KEY_CHARS)
        .collect()
}

/// Queues channel updates (a repeated idempotency key adds nothing). The caller commits.
pub async fn enqueue<C: Connection>(
    conn: &mut C,
    notifications: &[NewNotification],
    now: Timestamp,
) -> Result<usize, StoreError> {
    let mut added = 0;
    for notification in notifications {
        let Recipient::Channel { channel } = &notification.recipient else {
            return Err(StoreError::Invalid(
                "an incident update is for a channel".to_owned(),
            ));
        };
        let payload = notification.payload.to_string();
        sql::check_text("payload", &payload)?;
        sql::check_text("channel", channel)?;
        added += conn
            .execute(
                "INSERT INTO outbox (incident_number, recipient_kind, recipient, contact, method,
                     kind, payload, idempotency_key, state, attempts, next_attempt_at, created_at)
                 VALUES ($1, 'channel', $2, '', $3, $4, $5, $6, 'pending', 0, $7, $8)
                 ON CONFLICT (idempotency_key) DO NOTHING",
                &[
                    Arg::OptionalInteger(notification.incident.map(|number| number.0)),
                    Arg::Text(channel),
                    Arg::Text(&notification.method),
                    Arg::Text(&notification.kind),
                    Arg::Text(&payload),
                    Arg::Text(&notification.idempotency_key),
                    Arg::Integer(notification.not_before.as_microsecond()),
                    Arg::Integer(now.as_microsecond()),
                ],
            )
            .await?;
    }
    Ok(usize::try_from(added).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Chat;

    impl ServicePolicy for Chat {
        fn resolve_policy(&self, _: &ServiceId) -> ResolvePolicy {
            ResolvePolicy::Auto
        }

        fn update_channels(&self, service: &ServiceId) -> Vec<UpdateChannel> {
            if service.as_str() == "db" {
                vec![UpdateChannel {
                    id: "db-chat".to_owned(),
                    method: "slack".to_owned(),
                }]
            } else {
                Vec::new()
            }
        }
    }

    fn entry(id: i64, data: TimelineData) -> TimelineEntry {
        TimelineEntry {
            id,
            incident: IncidentNumber(4),
            at: Timestamp::from_second(1_800_000_000).expect("valid"),
            actor: Actor::system(),
            data,
        }
    }

    #[test]
    fn a_command_tells_the_services_channels_of_state_changes_and_notes_only() {
        let entries = [
            entry(
                10,
                TimelineData::IncidentAcknowledged {
                    alerts_acknowledged: Some(1),
                },
            ),
            entry(
                11,
                TimelineData::PriorityChanged {
                    from: tocsin_core::Priority::P1,
                    to: tocsin_core::Priority::P2,
                },
            ),
            entry(
                12,
                TimelineData::NoteAdded {
                    text: "on it".to_owned(),
                },
            ),
        ];
        let updates = command_updates(&ServiceId::new("db"), &entries, &Chat);
        let kinds: Vec<_> = updates.iter().map(|n| n.kind.as_str()).collect();
        assert_eq!(kinds, [ACKNOWLEDGED, NOTE]);
        assert_eq!(updates[1].payload["note"], "on it");
        assert_eq!(updates[0].recipient.to_string(), "channel:db-chat");
        assert_eq!(
            updates[0].idempotency_key,
            "update-4-incident.acknowledged-entry-10-db-chat"
        );
        assert_ne!(updates[0].idempotency_key, updates[1].idempotency_key);
        assert!(command_updates(&ServiceId::new("web"), &entries, &Chat).is_empty());
        let plain = |_: &ServiceId| ResolvePolicy::Auto;
        assert!(command_updates(&ServiceId::new("db"), &entries, &plain).is_empty());
    }

    #[test]
    fn keys_stay_within_the_outbox_limit() {
        let key = idempotency_key(IncidentNumber(1), "x", &"c".repeat(400));
        assert_eq!(
            key.chars().count(),
            crate::outbox::MAX_IDEMPOTENCY_KEY_CHARS
        );
    }
}
