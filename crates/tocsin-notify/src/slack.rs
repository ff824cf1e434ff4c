//! The body of a Slack-compatible incoming-webhook message (Slack, Mattermost).
//!
//! `text` is what a notification shows, and all that a receiver without Block Kit shows: the
//! subject and the links in Slack's `<url|label>` form. `blocks` lay the same out for Slack: a
//! header with the subject, a section with the facts and one with the extra incidents of a
//! bundle, and an actions block whose buttons open the acknowledge, resolve and incident
//! links (a GET of a signed link shows a confirmation page; the button there acts).

use serde_json::{json, Value};

use crate::message::Message;

/// Slack's limit for a header's text, in characters.
const HEADER_CHARS: usize = 150;
/// Slack's limit for a section's text, in characters.
const SECTION_CHARS: usize = 3000;

/// The JSON posted to the incoming webhook.
pub fn payload(message: &Message) -> Value {
    let links = &message.links;
    let mut text = escape(&message.subject);
    let mut labelled = Vec::new();
    if let Some(ack) = &links.acknowledge {
        labelled.push(format!("<{ack}|Acknowledge>"));
    }
    if let Some(resolve) = &links.resolve {
        labelled.push(format!("<{resolve}|Resolve>"));
    }
    labelled.push(format!("<{}|{}>", links.incident, link_label(message)));
    text.push_str(" — ");
    text.push_str(&labelled.join(" · "));

    let mut blocks = vec![
        json!({
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": clip(&message.subject, HEADER_CHARS),
                "emoji": true,
            },
        }),
        json!({
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": clip(&escape(&message.facts.join("\n")), SECTION_CHARS),
            },
        }),
    ];
    if !message.also.is_empty() {
        let lines: Vec<String> = message
            .also
            .iter()
            .map(|other| match &other.acknowledge {
                Some(ack) => format!(
                    "• <{}|{}> · <{ack}|Acknowledge>",
                    other.link,
                    escape(&other.subject)
                ),
                None => format!("• <{}|{}>", other.link, escape(&other.subject)),
            })
            .collect();
        blocks.push(json!({
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": clip(
                    &format!("*Also for you:*\n{}", lines.join("\n")),
                    SECTION_CHARS,
                ),
            },
        }));
    }
    let mut buttons = Vec::new();
    if let Some(ack) = &links.acknowledge {
        buttons.push(json!({
            "type": "button",
            "action_id": "acknowledge",
            "text": { "type": "plain_text", "text": "Acknowledge" },
            "style": "primary",
            "url": ack,
        }));
    }
    if let Some(resolve) = &links.resolve {
        buttons.push(json!({
            "type": "button",
            "action_id": "resolve",
            "text": { "type": "plain_text", "text": "Resolve" },
            "style": "danger",
            "url": resolve,
        }));
    }
    buttons.push(json!({
        "type": "button",
        "action_id": "incident",
        "text": { "type": "plain_text", "text": link_label(message) },
        "url": links.incident,
    }));
    blocks.push(json!({
        "type": "actions",
        "block_id": format!("tocsin-incident-{}", message.incident),
        "elements": buttons,
    }));
    json!({ "text": text, "blocks": blocks })
}

/// `Incident #12`, or `Details` for a notification about no incident.
fn link_label(message: &Message) -> String {
    if message.incident > 0 {
        format!("Incident #{}", message.incident)
    } else {
        "Details".to_owned()
    }
}

/// Slack reads `&`, `<` and `>` in message text as markup: they are escaped.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// At most `chars` characters, an ellipsis marking a cut.
fn clip(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        return text.to_owned();
    }
    let mut clipped: String = text.chars().take(chars.saturating_sub(1)).collect();
    clipped.push('…');
    clipped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Also, Links};
    use tocsin_core::Priority;

    fn message() -> Message {
        Message {
            incident: 12,
            priority: Priority::P1,
            subject: "[P1] Checkout API: Disk <99%> & more on db1 (#12)".to_owned(),
            text: String::new(),
            facts: vec!["Incident #12 · P1".to_owned(), "Events: 3".to_owned()],
            links: Links {
                acknowledge: Some("http://t/links/a".to_owned()),
                resolve: Some("http://t/links/r".to_owned()),
                incident: "http://t/api/v1/incidents/12".to_owned(),
            },
            also: Vec::new(),
            json: Value::Null,
        }
    }

    #[test]
    fn text_escapes_markup_and_carries_every_link() {
        let body = payload(&message());
        assert_eq!(
            body["text"],
            "[P1] Checkout API: Disk &lt;99%&gt; &amp; more on db1 (#12) — \
             <http://t/links/a|Acknowledge> · <http://t/links/r|Resolve> · \
             <http://t/api/v1/incidents/12|Incident #12>"
        );
        let blocks = body["blocks"].as_array().expect("blocks");
        assert_eq!(blocks.len(), 3);
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(
            blocks[0]["text"]["text"],
            "[P1] Checkout API: Disk <99%> & more on db1 (#12)"
        );
        assert_eq!(blocks[1]["text"]["text"], "Incident #12 · P1\nEvents: 3");
        let urls: Vec<_> = blocks[2]["elements"]
            .as_array()
            .expect("buttons")
            .iter()
            .map(|button| button["url"].as_str().expect("url").to_owned())
            .collect();
        assert_eq!(
            urls,
            [
                "http://t/links/a",
                "http://t/links/r",
                "http://t/api/v1/incidents/12"
            ]
        );
    }

    #[test]
    fn without_links_only_the_incident_button_is_left_and_long_text_is_clipped() {
        let mut message = message();
        message.links.acknowledge = None;
        message.links.resolve = None;
        message.subject = "x".repeat(400);
        message.also = vec![Also {
            number: 13,
            subject: "[P2] DB: slow (#13)".to_owned(),
            link: "http://t/api/v1/incidents/13".to_owned(),
            acknowledge: None,
        }];
        let body = payload(&message);
        let blocks = body["blocks"].as_array().expect("blocks");
        assert_eq!(
            blocks[0]["text"]["text"]
                .as_str()
                .expect("header")
                .chars()
                .count(),
            HEADER_CHARS
        );
        assert_eq!(
            blocks[2]["text"]["text"],
            "*Also for you:*\n• <http://t/api/v1/incidents/13|[P2] DB: slow (#13)>"
        );
        assert_eq!(blocks[3]["elements"].as_array().expect("buttons").len(), 1);
    }
}
