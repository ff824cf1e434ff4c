//! The Atom 1.0 feed (RFC 4287): one entry per incident update and per maintenance notice,
//! newest first, so a feed reader learns of each change once.
//!
//! Atom is XML, not HTML, so it is written by a small writer here that escapes every text and
//! attribute value it is given; no value is ever pasted in unescaped.

use tocsin_core::Timestamp;

use crate::json::maintenance_update_id;
use crate::model::MaintenanceStatus;
use crate::status::update_status_label;
use crate::text::{human_time, incident_path, maintenance_path, rfc3339, update_anchor};
use crate::Context;

/// Feed readers poll; a hundred entries cover weeks of a busy page.
const ENTRY_LIMIT: usize = 100;

struct FeedEntry {
    /// Stable: the page the entry is about and the update's anchor on it.
    id: String,
    title: String,
    link: String,
    updated: Timestamp,
    content: String,
}

pub(crate) fn feed(context: &Context<'_>) -> String {
    let view = context.view;
    let mut entries = Vec::new();
    for incident in &view.incidents {
        let link = context.url(&incident_path(&incident.id));
        for update in &incident.updates {
            let status = update_status_label(&update.status);
            let mut content = update.body.clone();
            if !update.affected.is_empty() {
                content.push_str("\n\nAffected components:");
                for affected in &update.affected {
                    content.push_str("\n- ");
                    content.push_str(&affected.name);
                    content.push_str(": ");
                    content.push_str(affected.old_status.label());
                    content.push_str(" → ");
                    content.push_str(affected.new_status.label());
                }
            }
            entries.push(FeedEntry {
                id: fragment_url(&link, &update.id),
                title: titled(&incident.name, status),
                link: link.clone(),
                updated: update.created_at,
                content,
            });
        }
    }
    for maintenance in &view.maintenances {
        let link = context.url(&maintenance_path(&maintenance.id));
        let mut content = String::from("Scheduled from ");
        content.push_str(&human_time(maintenance.scheduled_for, &context.zone));
        content.push_str(" to ");
        content.push_str(&human_time(maintenance.scheduled_until, &context.zone));
        if !maintenance.components.is_empty() {
            content.push_str("\nComponents: ");
            let names: Vec<&str> = maintenance
                .components
                .iter()
                .map(|id| context.component_name(id))
                .collect();
            content.push_str(&names.join(", "));
        }
        content.push_str("\n\n");
        content.push_str(&maintenance.body);
        entries.push(FeedEntry {
            id: fragment_url(&link, &maintenance_update_id(&maintenance.id)),
            title: titled(&maintenance.name, maintenance_label(maintenance.status)),
            link,
            updated: maintenance.updated_at,
            content,
        });
    }
    // Newest first; ties broken by id so that equal views give equal bytes.
    entries.sort_by(|a, b| b.updated.cmp(&a.updated).then_with(|| a.id.cmp(&b.id)));
    entries.truncate(ENTRY_LIMIT);

    let feed_updated = entries
        .first()
        .map_or(context.updated_at, |entry| entry.updated);
    let mut xml = Xml::default();
    xml.raw("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    xml.open("feed", &[("xmlns", "http://www.w3.org/2005/Atom")]);
    xml.element("id", &[], &context.url("/status"));
    let title = &view.page.title;
    xml.element("title", &[], title);
    xml.element("updated", &[], &rfc3339(feed_updated));
    xml.empty(
        "link",
        &[("rel", "self"), ("href", &context.url("/status/feed.atom"))],
    );
    xml.empty(
        "link",
        &[
            ("rel", "alternate"),
            ("type", "text/html"),
            ("href", &context.url("/status")),
        ],
    );
    xml.open("author", &[]);
    xml.element("name", &[], &view.page.title);
    xml.close("author");
    xml.element("generator", &[], "Tocsin");
    for entry in &entries {
        xml.open("entry", &[]);
        xml.element("id", &[], &entry.id);
        xml.element("title", &[], &entry.title);
        xml.empty(
            "link",
            &[
                ("rel", "alternate"),
                ("type", "text/html"),
                ("href", &entry.link),
            ],
        );
        xml.element("published", &[], &rfc3339(entry.updated));
        xml.element("updated", &[], &rfc3339(entry.updated));
        xml.element("content", &[("type", "text")], &entry.content);
        xml.close("entry");
    }
    xml.close("feed");
    xml.out
}

fn titled(name: &str, status: &str) -> String {
    let mut title = name.to_owned();
    title.push_str(": ");
    title.push_str(status);
    title
}

fn fragment_url(page_url: &str, update_id: &str) -> String {
    let mut url = page_url.to_owned();
    url.push('#');
    url.push_str(&update_anchor(update_id));
    url
}

fn maintenance_label(status: MaintenanceStatus) -> &'static str {
    match status {
        MaintenanceStatus::Scheduled => "Maintenance scheduled",
        MaintenanceStatus::InProgress => "Maintenance in progress",
        MaintenanceStatus::Verifying => "Maintenance verifying",
        MaintenanceStatus::Completed => "Maintenance completed",
    }
}

/// An XML writer that escapes whatever text and attribute values it is given.
#[derive(Default)]
struct Xml {
    out: String,
}

impl Xml {
    fn raw(&mut self, markup: &'static str) {
        self.out.push_str(markup);
    }

    fn start(&mut self, name: &str, attributes: &[(&str, &str)]) {
        self.out.push('<');
        self.out.push_str(name);
        for (attribute, value) in attributes {
            self.out.push(' ');
            self.out.push_str(attribute);
            self.out.push_str("=\"");
            escape_into(&mut self.out, value);
            self.out.push('"');
        }
    }

    fn open(&mut self, name: &str, attributes: &[(&str, &str)]) {
        self.start(name, attributes);
        self.out.push_str(">\n");
    }

    fn empty(&mut self, name: &str, attributes: &[(&str, &str)]) {
        self.start(name, attributes);
        self.out.push_str("/>\n");
    }

    fn element(&mut self, name: &str, attributes: &[(&str, &str)], text: &str) {
        self.start(name, attributes);
        self.out.push('>');
        escape_into(&mut self.out, text);
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
    }

    fn close(&mut self, name: &str) {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
    }
}

/// Escapes markup characters and drops the characters XML 1.0 cannot carry at all (most C0
/// controls), which would otherwise make the whole feed unreadable.
fn escape_into(out: &mut String, text: &str) {
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(character),
            '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => {}
            _ => out.push(character),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{fixture, render};

    /// A light well-formedness check: tags balance, attributes are quoted, and every `&` starts
    /// an entity.
    pub(crate) fn assert_well_formed_xml(xml: &str) {
        let mut stack: Vec<&str> = Vec::new();
        let mut rest = xml;
        assert!(rest.starts_with("<?xml "), "no XML declaration");
        rest = &rest[rest.find("?>").unwrap() + 2..];
        while let Some(start) = rest.find('<') {
            check_text(&rest[..start]);
            let end = rest[start..].find('>').expect("unclosed tag") + start;
            let tag = &rest[start + 1..end];
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop(), Some(name), "mismatched </{name}>");
            } else {
                let self_closing = tag.ends_with('/');
                let name = tag
                    .trim_end_matches('/')
                    .split_whitespace()
                    .next()
                    .expect("empty tag");
                assert!(
                    name.chars().all(|c| c.is_ascii_alphanumeric() || c == ':'),
                    "bad tag name {name:?}"
                );
                assert_eq!(
                    tag.matches('"').count() % 2,
                    0,
                    "unbalanced quotes in <{tag}>"
                );
                assert!(!tag.contains('<'), "'<' inside <{tag}>");
                if !self_closing {
                    stack.push(name);
                }
            }
            rest = &rest[end + 1..];
        }
        check_text(rest);
        assert!(stack.is_empty(), "unclosed elements {stack:?}");
    }

    fn check_text(text: &str) {
        for (index, _) in text.match_indices('&') {
            let entity = &text[index..];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                    .iter()
                    .any(|known| entity.starts_with(known)),
                "bare & in {text:?}"
            );
        }
    }

    fn feed_of(view: &crate::StatusView) -> String {
        let snapshot = render(view);
        String::from_utf8(snapshot.get("/status/feed.atom").unwrap().identity.to_vec()).unwrap()
    }

    #[test]
    fn feed_is_well_formed_and_has_one_entry_per_update() {
        let view = fixture::view(3, 5, 4, 3);
        let feed = feed_of(&view);
        assert_well_formed_xml(&feed);
        assert_eq!(feed.matches("<entry>").count(), 4 * 3 + 3);
        assert!(
            feed.contains("<id>https://status.example.com/status/incidents/inc1#update-u1-2</id>")
        );
        assert!(feed.contains(
            "<link rel=\"alternate\" type=\"text/html\" href=\"https://status.example.com/status/incidents/inc1\"/>"
        ));
        assert!(feed.contains("<updated>2026-12-05T10:20:00Z</updated>"));
        assert!(feed.contains("Component 0: Operational → Partial outage"));
    }

    #[test]
    fn entries_are_newest_first_and_at_most_a_hundred() {
        let view = fixture::view(2, 5, 30, 5);
        let feed = feed_of(&view);
        assert_well_formed_xml(&feed);
        assert_eq!(feed.matches("<entry>").count(), 100);
        let times: Vec<Timestamp> = feed
            .split("<entry>")
            .skip(1)
            .map(|entry| {
                let start = entry.find("<updated>").unwrap() + "<updated>".len();
                let end = entry.find("</updated>").unwrap();
                entry[start..end].parse().unwrap()
            })
            .collect();
        assert!(times.windows(2).all(|pair| pair[0] >= pair[1]));
    }

    #[test]
    fn markup_and_controls_in_text_are_escaped() {
        let mut view = fixture::view(2, 5, 1, 1);
        view.incidents[0].name = "<script>alert(1)</script> & \"x\"".to_owned();
        view.incidents[0].updates[0].body = "a\u{1}b <b>".to_owned();
        view.page.title = "A&B".to_owned();
        let feed = feed_of(&view);
        assert_well_formed_xml(&feed);
        assert!(!feed.contains("<script>"));
        assert!(feed.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;x&quot;"));
        assert!(feed.contains("ab &lt;b&gt;"));
        assert!(!feed.contains('\u{1}'));
    }
}
