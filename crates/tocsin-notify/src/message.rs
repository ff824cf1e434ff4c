//! What a page says: written to be read at 3 a.m.

use serde_json::json;
use tocsin_core::{IncidentNumber, Priority, Timestamp};
use tocsin_engine::links::{LinkAction, LinkSigner, LINK_LIFETIME};
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
    pub incident: i64,
    pub priority: Priority,
    /// `[P1] Checkout API: Disk 99% on db1 (#12)`.
    pub subject: String,
    /// The plain-text body (email, ntfy).
    pub text: String,
    pub links: Links,
    /// The webhook body.
    pub json: serde_json::Value,
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
    let mut text = format!(
        "{service}: {title}\n\n\
         Incident #{n} · {priority} · {severity} · {state}\n\
         Broken since {impact} (opened {opened})\n\
         Events: {events}, latest from {source}\n",
        service = facts.service_name,
        title = incident.title,
        n = number.0,
        priority = incident.priority,
        severity = incident.severity,
        state = incident.state,
        impact = incident.impact_started_at,
        opened = incident.created_at,
        events = facts.events,
        source = facts.source,
    );
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
        links,
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
