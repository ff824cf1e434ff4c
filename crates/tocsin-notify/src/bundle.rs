//! Storm bundling: a user's contact method gets at most one message per bundling window
//! (`DispatcherSettings::bundle_window`, 30 s by default).
//!
//! The claimed pages of one claim are grouped by user and contact method. For each group the
//! store takes the contact method's window (`OutboxStore::take_bundles`, one write for every
//! group of the claim, one statement per window, so two dispatchers at once cannot both
//! send): when the contact method is free, the group and its
//! other pages due by now go out as one message — the oldest page's incident, the others
//! listed in it, each with its title, priority and acknowledge link — and every row is
//! settled by that message (each incident's timeline gets its attempt). When the contact
//! method got a message less than a window ago, the group waits, `pending`, until the window
//! ends, and goes then with whatever else came due meanwhile. A message that failed does
//! not count (settling it frees the contact method). The window's end is in the
//! database: a restart or another replica keeps it. A channel's incident updates are not
//! bundled: each says what happened.

use std::collections::{HashMap, HashSet};

use futures_util::stream::{self, StreamExt};
use serde_json::json;
use tocsin_core::IncidentNumber;
use tocsin_engine::links::{LinkAction, LINK_LIFETIME};
use tocsin_store::outbox::{Bundle, BundleClaim, NotificationRow, Recipient, MAX_BUNDLE};
use tocsin_store::StoreError;

use crate::message::{self, Also, Message};
use crate::{Dispatcher, DrainReport, Outcome};

/// Groups `rows` (one claim) into lanes, delivers the lanes concurrently (at most
/// `DispatcherSettings::concurrency` at once) and settles every outcome of the claim in one
/// write.
///
/// A lane is what must go one after the other: the pages of one user's contact method
/// (bundled into one message), one channel's updates of one incident (in the order they
/// were claimed, which is the order they were queued), or a notice about no incident (on
/// its own). Different lanes reach different recipients, or say different things, so they
/// go at once. The contact methods' bundling windows are taken first, in one write for the
/// whole claim; when that write fails nothing of the claim is sent (its rows go out when
/// their claim ends).
pub(crate) async fn deliver_claimed(
    dispatcher: &Dispatcher,
    rows: Vec<NotificationRow>,
    report: &mut DrainReport,
) -> Result<(), StoreError> {
    let lanes = take_bundles(dispatcher, lanes(rows), report).await?;
    let concurrency = dispatcher.settings.concurrency.max(1);
    let finished: Vec<Lane> = stream::iter(lanes)
        .map(|lane| deliver_lane(dispatcher, lane))
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut outcomes = Vec::new();
    for lane in finished {
        report.add(&lane.report);
        outcomes.extend(lane.outcomes);
    }
    dispatcher.settle(&outcomes, report).await
}

/// Takes the bundling window of every contact method with pages in `lanes`, in one write:
/// the lanes whose contact method is free get their bundles (their pages and the contact
/// method's other pages due by now); the others wait, `pending`, and are left out.
async fn take_bundles(
    dispatcher: &Dispatcher,
    lanes: Vec<Work>,
    report: &mut DrainReport,
) -> Result<Vec<Work>, StoreError> {
    let now = dispatcher.engine.now();
    let claim_until = now
        .checked_add(dispatcher.settings.claim_for)
        .unwrap_or(now);
    let claims: Vec<BundleClaim<'_>> = lanes
        .iter()
        .filter_map(|lane| match lane {
            Work::Bundle(rows) => Some(BundleClaim {
                claimer: &dispatcher.claimer,
                rows,
                now,
                window: dispatcher.settings.bundle_window,
                claim_until,
                limit: MAX_BUNDLE,
            }),
            Work::EachInOrder(_) => None,
        })
        .collect();
    let mut bundles = dispatcher
        .engine
        .store()
        .take_bundles(&claims)
        .await?
        .into_iter();
    drop(claims);
    let mut ready = Vec::with_capacity(lanes.len());
    for lane in lanes {
        let Work::Bundle(group) = lane else {
            ready.push(lane);
            continue;
        };
        match bundles.next() {
            Some(Bundle::Send(mut rows)) => {
                rows.sort_by_key(|row| (row.next_attempt_at, row.id));
                ready.push(Work::Bundle(rows));
            }
            Some(Bundle::Deferred { until }) => {
                tracing::debug!(
                    recipient = %group[0].recipient, method = group[0].method,
                    pages = group.len(), until = %until,
                    "contact method messaged less than a bundling window ago; bundling"
                );
                report.deferred += group.len();
            }
            None => {
                return Err(StoreError::Corrupt(
                    "the store returned fewer bundles than asked for".to_owned(),
                ))
            }
        }
    }
    Ok(ready)
}

/// What to send one after the other.
#[derive(Debug)]
enum Work {
    /// Claimed pages of incidents for one user's contact method: one message (once its
    /// bundling window is taken, with the pages the bundle brought).
    Bundle(Vec<NotificationRow>),
    /// Claimed rows each sent on its own, in this order: a channel's updates of one
    /// incident, or a notice.
    EachInOrder(Vec<NotificationRow>),
}

/// What one lane did.
#[derive(Debug, Default)]
struct Lane {
    outcomes: Vec<Outcome>,
    report: DrainReport,
}

/// Splits a claim into lanes, in the order of their first rows.
fn lanes(rows: Vec<NotificationRow>) -> Vec<Work> {
    #[derive(PartialEq, Eq, Hash)]
    enum Key {
        Contact(String, String),
        Channel(String, IncidentNumber),
    }
    let mut lanes: Vec<Work> = Vec::new();
    let mut by_key: HashMap<Key, usize> = HashMap::new();
    for row in rows {
        let key = match (&row.recipient, row.incident) {
            // A notice about no incident (a test page, a gap notice) goes on its own.
            (_, None) => None,
            (Recipient::User { user, contact }, Some(_)) => {
                Some(Key::Contact(user.clone(), contact.clone()))
            }
            (Recipient::Channel { channel }, Some(number)) => {
                Some(Key::Channel(channel.clone(), number))
            }
        };
        let Some(key) = key else {
            lanes.push(Work::EachInOrder(vec![row]));
            continue;
        };
        match by_key.get(&key) {
            Some(&index) => match &mut lanes[index] {
                Work::Bundle(rows) | Work::EachInOrder(rows) => rows.push(row),
            },
            None => {
                by_key.insert(key, lanes.len());
                lanes.push(match row.recipient {
                    Recipient::User { .. } => Work::Bundle(vec![row]),
                    Recipient::Channel { .. } => Work::EachInOrder(vec![row]),
                });
            }
        }
    }
    lanes
}

/// Sends a lane's messages one after the other.
async fn deliver_lane(dispatcher: &Dispatcher, work: Work) -> Lane {
    let mut lane = Lane::default();
    match work {
        Work::EachInOrder(rows) => {
            for row in rows {
                let outcomes = dispatcher.deliver(vec![row], &mut lane.report).await;
                lane.outcomes.extend(outcomes);
            }
        }
        Work::Bundle(rows) => lane.outcomes = dispatcher.deliver(rows, &mut lane.report).await,
    }
    lane
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
