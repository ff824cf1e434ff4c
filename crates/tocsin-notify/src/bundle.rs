//! Storm bundling: a user's contact method gets at most one message per bundling window
//! (`DispatcherSettings::bundle_window`, 30 s by default).
//!
//! The claimed pages of one drain are grouped by user and contact method. For each group the
//! store takes the contact method's window (`OutboxStore::take_bundle`, one statement, so two
//! dispatchers at once cannot both send): when the contact method is free, the group and its
//! other pages due by now go out as one message — the oldest page's incident, the others
//! listed in it, each with its title, priority and acknowledge link — and every row is
//! settled by that message (each incident's timeline gets its attempt). When the contact
//! method got a message less than a window ago, the group waits, `pending`, until the window
//! ends, and goes then with whatever else came due meanwhile. A message that failed does
//! not count (settling it frees the contact method). The window's end is in the
//! database: a restart or another replica keeps it. A channel's incident updates are not
//! bundled: each says what happened.

use std::collections::{HashMap, HashSet};

use serde_json::json;
use tocsin_core::IncidentNumber;
use tocsin_engine::links::{LinkAction, LINK_LIFETIME};
use tocsin_store::outbox::{Bundle, BundleClaim, NotificationRow, Recipient, MAX_BUNDLE};
use tocsin_store::StoreError;

use crate::message::{self, Also, Message};
use crate::{Dispatcher, DrainReport};

/// Groups `rows` (one claim) by recipient, bundles the pages of each user's contact method
/// and delivers every group.
pub(crate) async fn deliver_claimed(
    dispatcher: &Dispatcher,
    rows: Vec<NotificationRow>,
    report: &mut DrainReport,
) -> Result<(), StoreError> {
    let mut groups: Vec<Vec<NotificationRow>> = Vec::new();
    let mut by_contact: HashMap<(String, String), usize> = HashMap::new();
    for row in rows {
        match &row.recipient {
            // A notice about no incident (a test page, a gap notice) goes on its own.
            _ if row.incident.is_none() => groups.push(vec![row]),
            Recipient::User { user, contact } => {
                let key = (user.clone(), contact.clone());
                match by_contact.get(&key) {
                    Some(&index) => groups[index].push(row),
                    None => {
                        by_contact.insert(key, groups.len());
                        groups.push(vec![row]);
                    }
                }
            }
            Recipient::Channel { .. } => groups.push(vec![row]),
        }
    }
    let store = dispatcher.engine.store();
    for group in groups {
        if matches!(group[0].recipient, Recipient::Channel { .. }) || group[0].incident.is_none() {
            dispatcher.deliver(group, report).await?;
            continue;
        }
        let now = dispatcher.engine.now();
        let bundle = store
            .take_bundle(&BundleClaim {
                claimer: &dispatcher.claimer,
                rows: &group,
                now,
                window: dispatcher.settings.bundle_window,
                claim_until: now
                    .checked_add(dispatcher.settings.claim_for)
                    .unwrap_or(now),
                limit: MAX_BUNDLE,
            })
            .await?;
        match bundle {
            Bundle::Send(mut rows) => {
                rows.sort_by_key(|row| (row.next_attempt_at, row.id));
                dispatcher.deliver(rows, report).await?;
            }
            Bundle::Deferred { until } => {
                tracing::debug!(
                    recipient = %group[0].recipient, method = group[0].method,
                    pages = group.len(), until = %until,
                    "contact method messaged less than a bundling window ago; bundling"
                );
                report.deferred += group.len();
            }
        }
    }
    Ok(())
}

/// Lists the incidents of `others` (pages bundled with `first`) in `message`: each once,
/// highest priority first, with its subject, priority and acknowledge link; the subject
/// says how many more there are, the text and the webhook body (`also`) list them.
pub(crate) async fn fold(
    dispatcher: &Dispatcher,
    mut message: Message,
    first: &NotificationRow,
    others: &[NotificationRow],
    public_url: &str,
) -> Result<Message, tocsin_engine::EngineError> {
    let mut seen: HashSet<Option<IncidentNumber>> = HashSet::from([first.incident]);
    let user = crate::link_user(&first.recipient);
    let signer = dispatcher.engine.links();
    let now = dispatcher.engine.now();
    let expires = now.checked_add(LINK_LIFETIME).unwrap_or(now);
    let mut listed = Vec::new();
    for row in others {
        let Some(number) = row.incident else {
            continue;
        };
        if !seen.insert(row.incident) {
            continue;
        }
        let incident = dispatcher.engine.incident(number).await?;
        let service_name = dispatcher.service_name(&incident.service);
        let acknowledge = signer.as_deref().map(|signer| {
            format!(
                "{public_url}/links/{}",
                signer.sign(incident.number, LinkAction::Acknowledge, &user, expires)
            )
        });
        listed.push((
            incident,
            service_name,
            acknowledge,
            row.idempotency_key.clone(),
        ));
    }
    listed.sort_by_key(|(incident, ..)| (incident.priority, incident.number));
    let mut json_also = Vec::new();
    for (incident, service_name, acknowledge, key) in listed {
        let link = format!("{public_url}/api/v1/incidents/{}", incident.number.0);
        let subject = message::subject(
            incident.priority,
            &service_name,
            &incident.title,
            incident.number,
        );
        json_also.push(json!({
            "number": incident.number.0,
            "title": incident.title,
            "service": incident.service.as_str(),
            "service_name": service_name,
            "priority": incident.priority.as_str(),
            "state": incident.state.as_str(),
            "subject": subject,
            "idempotency_key": key,
            "links": { "acknowledge": acknowledge, "incident": link },
        }));
        message.also.push(Also {
            number: incident.number.0,
            subject,
            link,
            acknowledge,
        });
    }
    if message.also.is_empty() {
        return Ok(message);
    }
    let more = message.also.len();
    message.subject = format!("{} and {more} more", message.subject);
    let mut text = format!("\nAlso for you ({more} more):\n");
    for other in &message.also {
        text.push_str(&format!("- {}\n", other.subject));
        if let Some(ack) = &other.acknowledge {
            text.push_str(&format!("  Acknowledge: {ack}\n"));
        }
        text.push_str(&format!("  Incident: {}\n", other.link));
    }
    message.text.push_str(&text);
    message.json["also"] = json!(json_also);
    Ok(message)
}
