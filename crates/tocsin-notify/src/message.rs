//! What a page says: written to be read at 3 a.m.

use serde_json::json;
use tocsin_core::{IncidentNumber, IncidentState, Priority, Timestamp};
use tocsin_engine::links::{LinkAction, LinkSigner, LINK_LIFETIME};
use tocsin_store::outbox::{NotificationRow, GAP_NOTICE_KIND, TEST_KIND};
use tocsin_store::IncidentRow;

/// The links a page carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Links {
    /// A signed link that acknowledges the incident (absent when links are not available).
    pub acknowledge: Option<String>,
    pub resolve: Option<String>,
    /// The incident in the API.
    pub incident: String,
}

/// A rendered notification.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The incident's number; 0 for a notification about no incident (a test page, a notice).
    pub incident: i64,
    pub priority: Priority,
    /// `[P1] Checkout API: Disk 99% on db1 (#12)`.
    pub subject: String,
    /// The plain-text body (email, ntfy).
    pub text: String,
    /// The body's facts, one per line, without the links (for chat messages that lay them
    /// out themselves).
    pub facts: Vec<String>,
    pub links: Links,
    /// Other incidents folded into this message (a storm bundled for one person).
    pub also: Vec<Also>,
    /// The webhook body.
    pub json: serde_json::Value,
}

/// Another incident a bundled message lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Also {
    pub number: i64,
    /// Its subject line.
    pub subject: String,
    /// The incident in the API.
    pub link: String,
    /// A signed link that acknowledges it (absent when links are not available).
    pub acknowledge: Option<String>,
}

/// What a page is about, besides the incident row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageFacts {
    pub service_name: String,
    /// Events folded into the incident's alerts.
    pub events: i64,
    /// Where the latest signal came from.
    pub source: String,
    /// `user:ana`.
    pub recipient: String,
    pub idempotency_key: String,
}

/// Renders the page of `incident` for one recipient. `user` (for signed links) is the paged
/// user's id, `public_url` the server's base URL without a trailing slash.
pub fn render(
    incident: &IncidentRow,
    facts: &PageFacts,
    links: Option<(&LinkSigner, &str)>,
    public_url: &str,
    now: Timestamp,
) -> Message {
    let number = incident.number;
    let link = |signer: &LinkSigner, user: &str, action| {
        let expires = now.checked_add(LINK_LIFETIME).unwrap_or(now);
        format!(
            "{public_url}/links/{}",
            signer.sign(number, action, user, expires)
        )
    };
    let acknowledge = links.map(|(signer, user)| link(signer, user, LinkAction::Acknowledge));
    let resolve = links.map(|(signer, user)| link(signer, user, LinkAction::Resolve));
    let links = Links {
        acknowledge,
        resolve,
        incident: format!("{public_url}/api/v1/incidents/{}", number.0),
    };
    let subject = subject(
        incident.priority,
        &facts.service_name,
        &incident.title,
        number,
    );
    let lines = vec![
        format!(
            "Incident #{n} · {priority} · {severity} · {state}",
            n = number.0,
            priority = incident.priority,
            severity = incident.severity,
            state = incident.state,
        ),
        format!(
            "Broken since {impact} (opened {opened})",
            impact = incident.impact_started_at,
            opened = incident.created_at,
        ),
        format!(
            "Events: {events}, latest from {source}",
            events = facts.events,
            source = facts.source,
        ),
    ];
    let mut text = format!("{}: {}\n\n", facts.service_name, incident.title);
    for line in &lines {
        text.push_str(line);
        text.push('\n');
    }
    text.push('\n');
    if let Some(ack) = &links.acknowledge {
        text.push_str(&format!("Acknowledge: {ack}\n"));
    }
    if let Some(resolve) = &links.resolve {
        text.push_str(&format!("Resolve: {resolve}\n"));
    }
    text.push_str(&format!("Incident: {}\n", links.incident));
    let json = json!({
        "type": "incident.page",
        "idempotency_key": facts.idempotency_key,
        "recipient": facts.recipient,
        "incident": {
            "number": number.0,
            "title": incident.title,
            "service": incident.service.as_str(),
            "service_name": facts.service_name,
            "priority": incident.priority.as_str(),
            "severity": incident.severity.as_str(),
            "state": incident.state.as_str(),
            "created_at": incident.created_at.to_string(),
            "impact_started_at": incident.impact_started_at.to_string(),
            "events": facts.events,
            "source": facts.source,
        },
        "links": {
            "acknowledge": links.acknowledge,
            "resolve": links.resolve,
            "incident": links.incident,
        },
    });
    Message {
        incident: number.0,
        priority: incident.priority,
        subject,
        text,
        facts: lines,
        links,
        also: Vec::new(),
        json,
    }
}

/// What a channel is told about an incident (an outbox row of an update kind).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateFacts {
    /// `incident.opened`, `incident.acknowledged`, `incident.resolved` or `incident.note`.
    pub kind: String,
    /// Who did it, as the timeline names them (`user:ana`, `link:ana`, `system`).
    pub actor: String,
    /// The note's text, for a note.
    pub note: Option<String>,
}

/// Turns a rendered page into a channel's update: the subject says what happened and who
/// did it, the facts say who and the note, the webhook body's `type` is the update's kind,
/// and only the links that still act on the incident's current state are kept (acknowledge
/// while triggered, resolve while open).
pub fn into_update(mut message: Message, update: &UpdateFacts, state: IncidentState) -> Message {
    let by = |verb: &str| format!("{verb} by {}: {}", update.actor, message.subject);
    let subject = match update.kind.as_str() {
        tocsin_store::updates::OPENED => format!("Opened: {}", message.subject),
        tocsin_store::updates::ACKNOWLEDGED => by("Acknowledged"),
        tocsin_store::updates::RESOLVED => by("Resolved"),
        tocsin_store::updates::NOTE => by("Note"),
        _ => message.subject.clone(),
    };
    message.subject = subject;
    if state != IncidentState::Triggered {
        message.links.acknowledge = None;
    }
    if state == IncidentState::Resolved {
        message.links.resolve = None;
    }
    let mut facts = Vec::new();
    if let Some(note) = &update.note {
        facts.push(format!("Note: {note}"));
    }
    if update.kind != tocsin_store::updates::OPENED {
        facts.push(format!("By: {}", update.actor));
    }
    facts.append(&mut message.facts);
    message.facts = facts;
    let mut text = format!("{}\n\n", message.subject);
    for line in &message.facts {
        text.push_str(line);
        text.push('\n');
    }
    text.push('\n');
    if let Some(ack) = &message.links.acknowledge {
        text.push_str(&format!("Acknowledge: {ack}\n"));
    }
    if let Some(resolve) = &message.links.resolve {
        text.push_str(&format!("Resolve: {resolve}\n"));
    }
    text.push_str(&format!("Incident: {}\n", message.links.incident));
    message.text = text;
    message.json["type"] = json!(update.kind);
    message.json["update"] = json!({
        "actor": update.actor,
        "note": update.note,
    });
    message.json["links"] = json!({
        "acknowledge": message.links.acknowledge,
        "resolve": message.links.resolve,
        "incident": message.links.incident,
    });
    message
}

/// Renders a notification about no incident: a test page ([`TEST_KIND`], payload `name` and
/// `contact`) or a notice ([`GAP_NOTICE_KIND`] and any other kind, payload `message` and
/// `schedule`). It carries no acknowledge or resolve link; its link is the notification in
/// the API (a test page) or the schedule's gaps (a gap notice). `public_url` is the server's
/// base URL without a trailing slash.
pub fn render_notice(row: &NotificationRow, public_url: &str) -> Message {
    let text_of = |field: &str| {
        row.payload
            .get(field)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let recipient = row.recipient.to_string();
    let (subject, body, link) = if row.kind == TEST_KIND {
        let name = text_of("name");
        let contact = text_of("contact");
        (
            format!("[Tocsin] Test page for {name} via {contact}"),
            format!("Test page from Tocsin for {name} via {contact}; no incident."),
            format!("{public_url}/api/v1/notifications/{}", row.id),
        )
    } else {
        let message = text_of("message");
        let schedule = text_of("schedule");
        let subject = if row.kind == GAP_NOTICE_KIND {
            format!(
                "[Tocsin] Nobody on call soon for {}",
                text_of("schedule_name")
            )
        } else {
            format!("[Tocsin] {}", row.kind)
        };
        (
            subject,
            message,
            format!("{public_url}/api/v1/schedules/{schedule}/gaps"),
        )
    };
    let text = format!(
        "{body}

Details: {link}
"
    );
    let json = json!({
        "type": row.kind,
        "idempotency_key": row.idempotency_key,
        "recipient": recipient,
        "subject": subject,
        "text": body,
        "notice": row.payload,
        "links": {
            "acknowledge": null,
            "resolve": null,
            "incident": null,
            "details": link,
        },
    });
    Message {
        incident: 0,
        priority: Priority::P3,
        subject,
        text,
        facts: vec![body],
        links: Links {
            acknowledge: None,
            resolve: None,
            incident: link,
        },
        also: Vec::new(),
        json,
    }
}

/// `[P1] Checkout API: Disk 99% on db1 (#12)`.
pub fn subject(priority: Priority, service: &str, title: &str, number: IncidentNumber) -> String {
    format!("[{priority}] {service}: {title} (#{})", number.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tocsin_store::outbox::{NotificationState, Recipient};

    fn notice_row(kind: &str, payload: serde_json::Value) -> NotificationRow {
        NotificationRow {
            id: 41,
            incident: None,
            recipient: Recipient::User {
                user: "ana".to_owned(),
                contact: "mail".to_owned(),
            },
            method: "email".to_owned(),
            kind: kind.to_owned(),
            payload,
            idempotency_key: "test-ana-1".to_owned(),
            state: NotificationState::Sending,
            attempts: 1,
            next_attempt_at: Timestamp::UNIX_EPOCH,
            claimed_by: None,
            claim_until: None,
            last_error: None,
            created_at: Timestamp::UNIX_EPOCH,
            settled_at: None,
        }
    }

    #[test]
    fn a_test_page_says_who_and_how_and_that_there_is_no_incident() {
        let row = notice_row(TEST_KIND, json!({"name": "Ana Lima", "contact": "mail"}));
        let message = render_notice(&row, "http://t");
        assert_eq!(message.subject, "[Tocsin] Test page for Ana Lima via mail");
        assert!(message
            .text
            .starts_with("Test page from Tocsin for Ana Lima via mail; no incident."));
        assert_eq!(message.links.incident, "http://t/api/v1/notifications/41");
        assert_eq!(message.links.acknowledge, None);
        assert_eq!(message.json["type"], "test");
        assert_eq!(message.json["recipient"], "user:ana");
        assert_eq!(message.incident, 0);
    }

    #[test]
    fn a_gap_notice_carries_the_message_it_was_queued_with() {
        let row = notice_row(
            GAP_NOTICE_KIND,
            json!({"schedule": "primary", "schedule_name": "Primary", "message": "Nobody is on call for Primary from ..."}),
        );
        let message = render_notice(&row, "http://t");
        assert_eq!(message.subject, "[Tocsin] Nobody on call soon for Primary");
        assert_eq!(message.facts, ["Nobody is on call for Primary from ..."]);
        assert_eq!(
            message.links.incident,
            "http://t/api/v1/schedules/primary/gaps"
        );
        assert_eq!(message.json["type"], "gap_notice");
    }

    #[test]
    fn the_subject_says_priority_service_title_and_number() {
        assert_eq!(
            subject(
                Priority::P1,
                "Checkout API",
                "Disk 99% on db1",
                IncidentNumber(12)
            ),
            "[P1] Checkout API: Disk 99% on db1 (#12)"
        );
    }
}
