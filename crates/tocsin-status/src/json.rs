//! Statuspage's public API v2, the shapes its widget and exporters read (interop.md §5).
//!
//! The documents are built as `serde_json::Value`s here rather than by making the model
//! `Serialize`: the wire format is this module's business, and the model stays free to change.

use std::collections::HashMap;

use serde_json::{json, Value};
use tocsin_core::Timestamp;

use crate::layout::Entry;
use crate::model::{ComponentView, IncidentView, MaintenanceStatus, MaintenanceView, UpdateView};
use crate::text::{incident_path, maintenance_path, rfc3339};
use crate::Context;

/// How many incidents and maintenance windows the "most recent" lists hold, as Statuspage does.
const RECENT_LIMIT: usize = 50;

/// Every JSON document of the snapshot: (path, bytes).
pub(crate) fn documents(context: &Context<'_>) -> Vec<(&'static str, Vec<u8>)> {
    let components = Components::of(context);
    let page = page_object(context);
    let status = json!({
        "indicator": context.overall.indicator.as_str(),
        "description": context.overall.description,
    });

    let mut incidents: Vec<&IncidentView> = context.view.incidents.iter().collect();
    incidents.sort_by_key(|incident| std::cmp::Reverse(incident.created_at));
    let incident_list = |filter: &dyn Fn(&IncidentView) -> bool, limit: usize| -> Value {
        Value::Array(
            incidents
                .iter()
                .filter(|incident| filter(incident))
                .take(limit)
                .map(|incident| incident_object(context, &components, incident))
                .collect(),
        )
    };
    let recent_incidents = incident_list(&|_| true, RECENT_LIMIT);
    let unresolved = incident_list(&|incident| incident.status.is_open(), usize::MAX);

    let mut maintenances: Vec<&MaintenanceView> = context.view.maintenances.iter().collect();
    maintenances.sort_by_key(|maintenance| maintenance.scheduled_for);
    let maintenance_list = |filter: &dyn Fn(MaintenanceStatus) -> bool| -> Value {
        Value::Array(
            maintenances
                .iter()
                .filter(|maintenance| filter(maintenance.status))
                .map(|maintenance| maintenance_object(context, &components, maintenance))
                .collect(),
        )
    };
    let upcoming = maintenance_list(&|status| status == MaintenanceStatus::Scheduled);
    let active = maintenance_list(&|status| {
        matches!(
            status,
            MaintenanceStatus::InProgress | MaintenanceStatus::Verifying
        )
    });
    let not_completed = maintenance_list(&|status| status != MaintenanceStatus::Completed);
    let recent_maintenances = Value::Array(
        maintenances
            .iter()
            .rev()
            .take(RECENT_LIMIT)
            .map(|maintenance| maintenance_object(context, &components, maintenance))
            .collect(),
    );

    let all_components = Value::Array(components.objects.clone());
    let documents = [
        (
            "/api/v2/summary.json",
            json!({
                "page": page,
                "status": status,
                "components": all_components,
                "incidents": unresolved,
                "scheduled_maintenances": not_completed,
            }),
        ),
        (
            "/api/v2/status.json",
            json!({"page": page, "status": status}),
        ),
        (
            "/api/v2/components.json",
            json!({"page": page, "components": all_components}),
        ),
        (
            "/api/v2/incidents.json",
            json!({"page": page, "incidents": recent_incidents}),
        ),
        (
            "/api/v2/incidents/unresolved.json",
            json!({"page": page, "incidents": unresolved}),
        ),
        (
            "/api/v2/scheduled-maintenances.json",
            json!({"page": page, "scheduled_maintenances": recent_maintenances}),
        ),
        (
            "/api/v2/scheduled-maintenances/upcoming.json",
            json!({"page": page, "scheduled_maintenances": upcoming}),
        ),
        (
            "/api/v2/scheduled-maintenances/active.json",
            json!({"page": page, "scheduled_maintenances": active}),
        ),
    ];
    documents
        .into_iter()
        .map(|(path, document)| (path, document.to_string().into_bytes()))
        .collect()
}

fn page_object(context: &Context<'_>) -> Value {
    let page = &context.view.page;
    json!({
        "id": page.id,
        "name": page.title,
        "url": page.url,
        "time_zone": page.time_zone,
        "updated_at": rfc3339(context.updated_at),
    })
}

/// The component objects in page order, with a lookup by component id so that incidents can
/// embed the same objects.
struct Components {
    objects: Vec<Value>,
    by_id: HashMap<String, usize>,
}

impl Components {
    fn of(context: &Context<'_>) -> Components {
        let page_id = context.view.page.id.as_str();
        let mut objects = Vec::new();
        let mut by_id = HashMap::new();
        let mut push_component =
            |objects: &mut Vec<Value>, component: &ComponentView, group_id: Option<&str>| {
                let position = objects.len() + 1;
                by_id.insert(component.id.clone(), objects.len());
                objects.push(json!({
                    "id": component.id,
                    "page_id": page_id,
                    "group_id": group_id,
                    "name": component.name,
                    "description": component.description,
                    "status": component.status.as_str(),
                    "position": position,
                    "showcase": true,
                    "only_show_if_degraded": false,
                    "group": false,
                    "start_date": Value::Null,
                    // The server knows no creation time of a component, only its last change.
                    "created_at": rfc3339(component.updated_at),
                    "updated_at": rfc3339(component.updated_at),
                }));
            };
        for entry in &context.layout {
            match entry {
                Entry::Single(component) => push_component(&mut objects, component, None),
                Entry::Group(group) => {
                    let times = group.members.iter().map(|member| member.updated_at);
                    let created_at = times.clone().min().unwrap_or(context.updated_at);
                    let updated_at = times.max().unwrap_or(context.updated_at);
                    objects.push(json!({
                        "id": group.id,
                        "page_id": page_id,
                        "group_id": Value::Null,
                        "name": group.name,
                        "description": Value::Null,
                        "status": group.status().as_str(),
                        "position": objects.len() + 1,
                        "showcase": false,
                        "only_show_if_degraded": false,
                        "group": true,
                        "start_date": Value::Null,
                        "created_at": rfc3339(created_at),
                        "updated_at": rfc3339(updated_at),
                        "components": group.members.iter().map(|member| member.id.as_str()).collect::<Vec<_>>(),
                    }));
                    for member in &group.members {
                        push_component(&mut objects, member, Some(&group.id));
                    }
                }
            }
        }
        Components { objects, by_id }
    }

    fn embedded(&self, ids: &[String]) -> Value {
        Value::Array(
            ids.iter()
                .filter_map(|id| self.by_id.get(id))
                .map(|index| self.objects[*index].clone())
                .collect(),
        )
    }
}

fn timestamp_or_null(timestamp: Option<Timestamp>) -> Value {
    timestamp.map_or(Value::Null, |timestamp| Value::String(rfc3339(timestamp)))
}

fn incident_object(
    context: &Context<'_>,
    components: &Components,
    incident: &IncidentView,
) -> Value {
    json!({
        "id": incident.id,
        "page_id": context.view.page.id,
        "name": incident.name,
        "status": incident.status.as_str(),
        "impact": incident.impact.as_str(),
        "shortlink": context.url(&incident_path(&incident.id)),
        "created_at": rfc3339(incident.created_at),
        "updated_at": rfc3339(incident.updated_at),
        "started_at": rfc3339(incident.started_at),
        "monitoring_at": timestamp_or_null(incident.monitoring_at),
        "resolved_at": timestamp_or_null(incident.resolved_at),
        "incident_updates": incident
            .updates
            .iter()
            .map(|update| update_object(&incident.id, update))
            .collect::<Vec<_>>(),
        "components": components.embedded(&incident.components),
    })
}

fn update_object(incident_id: &str, update: &UpdateView) -> Value {
    let affected = if update.affected.is_empty() {
        Value::Null
    } else {
        update
            .affected
            .iter()
            .map(|affected| {
                json!({
                    "code": affected.id,
                    "name": affected.name,
                    "old_status": affected.old_status.as_str(),
                    "new_status": affected.new_status.as_str(),
                })
            })
            .collect()
    };
    json!({
        "id": update.id,
        "incident_id": incident_id,
        "status": update.status,
        "body": update.body,
        "created_at": rfc3339(update.created_at),
        "updated_at": rfc3339(update.created_at),
        "display_at": rfc3339(update.created_at),
        "affected_components": affected,
    })
}

/// A maintenance window in Statuspage's shape. The model holds its text as one body rather
/// than updates, so it is published as a single update carrying the current status.
fn maintenance_object(
    context: &Context<'_>,
    components: &Components,
    maintenance: &MaintenanceView,
) -> Value {
    let status = maintenance.status.as_str();
    let resolved_at =
        (maintenance.status == MaintenanceStatus::Completed).then_some(maintenance.updated_at);
    json!({
        "id": maintenance.id,
        "page_id": context.view.page.id,
        "name": maintenance.name,
        "status": status,
        "impact": "maintenance",
        "shortlink": context.url(&maintenance_path(&maintenance.id)),
        "created_at": rfc3339(maintenance.created_at),
        "updated_at": rfc3339(maintenance.updated_at),
        "started_at": rfc3339(maintenance.scheduled_for),
        "monitoring_at": Value::Null,
        "resolved_at": timestamp_or_null(resolved_at),
        "scheduled_for": rfc3339(maintenance.scheduled_for),
        "scheduled_until": rfc3339(maintenance.scheduled_until),
        "incident_updates": [{
            "id": maintenance_update_id(&maintenance.id),
            "incident_id": maintenance.id,
            "status": status,
            "body": maintenance.body,
            "created_at": rfc3339(maintenance.created_at),
            "updated_at": rfc3339(maintenance.updated_at),
            "display_at": rfc3339(maintenance.created_at),
            "affected_components": Value::Null,
        }],
        "components": components.embedded(&maintenance.components),
    })
}

/// The id of the one update a maintenance window is published as; the feed uses it too.
pub(crate) fn maintenance_update_id(maintenance_id: &str) -> String {
    let mut id = maintenance_id.to_owned();
    id.push_str("-0");
    id
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use crate::model::{ComponentStatus, Impact, IncidentStatus, MaintenanceStatus, StatusView};
    use crate::{fixture, render};

    const PAGE_KEYS: &[&str] = &["id", "name", "url", "time_zone", "updated_at"];
    const STATUS_KEYS: &[&str] = &["indicator", "description"];
    const COMPONENT_KEYS: &[&str] = &[
        "id",
        "page_id",
        "group_id",
        "name",
        "description",
        "status",
        "position",
        "showcase",
        "only_show_if_degraded",
        "group",
        "start_date",
        "created_at",
        "updated_at",
    ];
    const INCIDENT_KEYS: &[&str] = &[
        "id",
        "page_id",
        "name",
        "status",
        "impact",
        "shortlink",
        "created_at",
        "updated_at",
        "started_at",
        "monitoring_at",
        "resolved_at",
        "incident_updates",
        "components",
    ];
    const UPDATE_KEYS: &[&str] = &[
        "id",
        "incident_id",
        "status",
        "body",
        "created_at",
        "updated_at",
        "display_at",
        "affected_components",
    ];
    const AFFECTED_KEYS: &[&str] = &["code", "name", "old_status", "new_status"];
    const COMPONENT_STATUSES: &[&str] = &[
        "operational",
        "degraded_performance",
        "partial_outage",
        "major_outage",
        "under_maintenance",
    ];
    const INCIDENT_STATUSES: &[&str] = &[
        "investigating",
        "identified",
        "monitoring",
        "resolved",
        "postmortem",
    ];
    const MAINTENANCE_STATUSES: &[&str] = &["scheduled", "in_progress", "verifying", "completed"];

    fn document(view: &StatusView, path: &str) -> Value {
        let snapshot = render(view);
        serde_json::from_slice(&snapshot.get(path).unwrap().identity).unwrap()
    }

    fn assert_keys(value: &Value, expected: &[&str], what: &str) {
        let keys: BTreeSet<&str> = value
            .as_object()
            .unwrap_or_else(|| panic!("{what} is not an object: {value}"))
            .keys()
            .map(String::as_str)
            .collect();
        let expected: BTreeSet<&str> = expected.iter().copied().collect();
        assert_eq!(keys, expected, "keys of {what}");
    }

    fn assert_time(value: &Value, what: &str) {
        let text = value
            .as_str()
            .unwrap_or_else(|| panic!("{what} is not a string"));
        assert!(text.parse::<jiff::Timestamp>().is_ok(), "{what}: {text}");
        assert!(text.ends_with('Z'), "{what} has no offset: {text}");
    }

    fn assert_time_or_null(value: &Value, what: &str) {
        if !value.is_null() {
            assert_time(value, what);
        }
    }

    fn check_page(value: &Value) {
        assert_keys(value, PAGE_KEYS, "page");
        assert_eq!(value["id"], "page1");
        assert_eq!(value["name"], "Example status");
        assert_eq!(value["url"], "https://status.example.com");
        assert_eq!(value["time_zone"], "UTC");
        assert_time(&value["updated_at"], "page.updated_at");
    }

    fn check_status(value: &Value) {
        assert_keys(value, STATUS_KEYS, "status");
        let indicator = value["indicator"].as_str().unwrap();
        assert!(["none", "minor", "major", "critical"].contains(&indicator));
        assert!(value["description"].is_string());
    }

    fn check_component(value: &Value) {
        let is_group = value["group"].as_bool().unwrap();
        let mut keys = COMPONENT_KEYS.to_vec();
        if is_group {
            keys.push("components");
            assert!(value["group_id"].is_null());
            assert!(value["components"]
                .as_array()
                .unwrap()
                .iter()
                .all(Value::is_string));
        }
        assert_keys(value, &keys, "component");
        assert!(value["id"].is_string());
        assert_eq!(value["page_id"], "page1");
        assert!(value["group_id"].is_null() || value["group_id"].is_string());
        assert!(value["name"].is_string());
        assert!(value["description"].is_null() || value["description"].is_string());
        assert!(COMPONENT_STATUSES.contains(&value["status"].as_str().unwrap()));
        assert!(value["position"].as_u64().unwrap() >= 1);
        assert!(value["showcase"].is_boolean());
        assert!(value["only_show_if_degraded"].is_boolean());
        assert!(value["start_date"].is_null() || value["start_date"].is_string());
        assert_time(&value["created_at"], "component.created_at");
        assert_time(&value["updated_at"], "component.updated_at");
    }

    fn check_incident(value: &Value, maintenance: bool) {
        let mut keys = INCIDENT_KEYS.to_vec();
        if maintenance {
            keys.extend(["scheduled_for", "scheduled_until"]);
            assert_time(&value["scheduled_for"], "scheduled_for");
            assert_time(&value["scheduled_until"], "scheduled_until");
            assert!(MAINTENANCE_STATUSES.contains(&value["status"].as_str().unwrap()));
            assert_eq!(value["impact"], "maintenance");
        } else {
            assert!(INCIDENT_STATUSES.contains(&value["status"].as_str().unwrap()));
            assert!(
                ["none", "minor", "major", "critical"].contains(&value["impact"].as_str().unwrap())
            );
        }
        assert_keys(value, &keys, "incident");
        assert_eq!(value["page_id"], "page1");
        assert!(value["name"].is_string());
        let id = value["id"].as_str().unwrap();
        let shortlink = value["shortlink"].as_str().unwrap();
        assert!(shortlink.starts_with("https://status.example.com/status/"));
        assert!(shortlink.ends_with(id));
        for key in ["created_at", "updated_at", "started_at"] {
            assert_time(&value[key], key);
        }
        assert_time_or_null(&value["monitoring_at"], "monitoring_at");
        assert_time_or_null(&value["resolved_at"], "resolved_at");
        for update in value["incident_updates"].as_array().unwrap() {
            assert_keys(update, UPDATE_KEYS, "incident_update");
            assert_eq!(update["incident_id"], id);
            assert!(update["id"].is_string() && update["body"].is_string());
            for key in ["created_at", "updated_at", "display_at"] {
                assert_time(&update[key], key);
            }
            match &update["affected_components"] {
                Value::Null => {}
                Value::Array(affected) => {
                    assert!(!affected.is_empty());
                    for item in affected {
                        assert_keys(item, AFFECTED_KEYS, "affected component");
                        assert!(COMPONENT_STATUSES.contains(&item["old_status"].as_str().unwrap()));
                        assert!(COMPONENT_STATUSES.contains(&item["new_status"].as_str().unwrap()));
                    }
                }
                other => panic!("affected_components is {other}"),
            }
        }
        for component in value["components"].as_array().unwrap() {
            check_component(component);
        }
    }

    fn check_list(value: &Value, key: &str, maintenance: bool) -> usize {
        let list = value[key]
            .as_array()
            .unwrap_or_else(|| panic!("{key} is not a list"));
        for item in list {
            check_incident(item, maintenance);
        }
        list.len()
    }

    #[test]
    fn every_document_has_the_statuspage_shape() {
        let mut view = fixture::view(5, 10, 3, 3);
        view.components[2].status = ComponentStatus::PartialOutage;
        let summary = document(&view, "/api/v2/summary.json");
        assert_keys(
            &summary,
            &[
                "page",
                "status",
                "components",
                "incidents",
                "scheduled_maintenances",
            ],
            "summary",
        );
        check_page(&summary["page"]);
        check_status(&summary["status"]);
        summary["components"]
            .as_array()
            .unwrap()
            .iter()
            .for_each(check_component);
        assert_eq!(check_list(&summary, "incidents", false), 1);
        assert_eq!(check_list(&summary, "scheduled_maintenances", true), 2);

        let status = document(&view, "/api/v2/status.json");
        assert_keys(&status, &["page", "status"], "status.json");
        check_page(&status["page"]);
        check_status(&status["status"]);
        assert_eq!(status["status"]["indicator"], "major");
        assert_eq!(status["status"]["description"], "Partial System Outage");

        let components = document(&view, "/api/v2/components.json");
        assert_keys(&components, &["page", "components"], "components.json");
        check_page(&components["page"]);
        components["components"]
            .as_array()
            .unwrap()
            .iter()
            .for_each(check_component);

        let incidents = document(&view, "/api/v2/incidents.json");
        assert_keys(&incidents, &["page", "incidents"], "incidents.json");
        check_page(&incidents["page"]);
        assert_eq!(check_list(&incidents, "incidents", false), 3);

        let unresolved = document(&view, "/api/v2/incidents/unresolved.json");
        assert_keys(&unresolved, &["page", "incidents"], "unresolved.json");
        assert_eq!(check_list(&unresolved, "incidents", false), 1);
        assert_eq!(unresolved["incidents"][0]["id"], "inc0");

        for (path, statuses) in [
            (
                "/api/v2/scheduled-maintenances.json",
                vec!["completed", "in_progress", "scheduled"],
            ),
            (
                "/api/v2/scheduled-maintenances/upcoming.json",
                vec!["scheduled"],
            ),
            (
                "/api/v2/scheduled-maintenances/active.json",
                vec!["in_progress"],
            ),
        ] {
            let value = document(&view, path);
            assert_keys(&value, &["page", "scheduled_maintenances"], path);
            check_page(&value["page"]);
            check_list(&value, "scheduled_maintenances", true);
            let mut found: Vec<&str> = value["scheduled_maintenances"]
                .as_array()
                .unwrap()
                .iter()
                .map(|item| item["status"].as_str().unwrap())
                .collect();
            found.sort_unstable();
            assert_eq!(found, statuses, "{path}");
        }
    }

    #[test]
    fn groups_are_components_with_their_children() {
        let view = fixture::view(6, 3, 0, 0);
        let mut view = view;
        view.components[4].status = ComponentStatus::MajorOutage;
        let components = document(&view, "/api/v2/components.json");
        let list = components["components"].as_array().unwrap();
        let summary: Vec<(&str, Option<&str>, u64)> = list
            .iter()
            .map(|item| {
                (
                    item["id"].as_str().unwrap(),
                    item["group_id"].as_str(),
                    item["position"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("c0", None, 1),
                ("group-group-0", None, 2),
                ("c1", Some("group-group-0"), 3),
                ("c2", Some("group-group-0"), 4),
                ("c3", None, 5),
                ("group-group-1", None, 6),
                ("c4", Some("group-group-1"), 7),
                ("c5", Some("group-group-1"), 8),
            ]
        );
        let group = &list[5];
        assert_eq!(group["group"], true);
        assert_eq!(group["name"], "Group 1");
        assert_eq!(group["components"], serde_json::json!(["c4", "c5"]));
        assert_eq!(group["status"], "major_outage");
        assert_eq!(list[1]["status"], "operational");
        assert_eq!(list[0]["group"], false);
        assert!(list[0].get("components").is_none());
        assert_eq!(list[0]["description"], "What component 0 does");
        assert!(list[2]["description"].is_null());
    }

    #[test]
    fn indicator_and_description_follow_components_and_open_incidents() {
        let mut view = fixture::view(3, 3, 1, 1);
        view.maintenances.clear();
        let status = |view: &StatusView| {
            let value = document(view, "/api/v2/status.json");
            (
                value["status"]["indicator"].as_str().unwrap().to_owned(),
                value["status"]["description"].as_str().unwrap().to_owned(),
            )
        };
        view.incidents[0].impact = Impact::None;
        assert_eq!(
            status(&view),
            ("none".into(), "All Systems Operational".into())
        );
        view.components[0].status = ComponentStatus::UnderMaintenance;
        assert_eq!(
            status(&view),
            ("none".into(), "Service Under Maintenance".into())
        );
        view.components[1].status = ComponentStatus::DegradedPerformance;
        assert_eq!(
            status(&view),
            ("minor".into(), "Minor Service Outage".into())
        );
        view.incidents[0].impact = Impact::Major;
        assert_eq!(
            status(&view),
            ("major".into(), "Partial System Outage".into())
        );
        view.components[2].status = ComponentStatus::MajorOutage;
        assert_eq!(
            status(&view),
            ("critical".into(), "Major System Outage".into())
        );
        view.components[2].status = ComponentStatus::Operational;
        view.incidents[0].status = IncidentStatus::Resolved;
        assert_eq!(
            status(&view),
            ("minor".into(), "Minor Service Outage".into())
        );
    }

    #[test]
    fn incidents_embed_components_and_updates() {
        let view = fixture::view(3, 3, 2, 2);
        let incidents = document(&view, "/api/v2/incidents.json");
        let first = &incidents["incidents"][0];
        assert_eq!(first["id"], "inc0");
        assert_eq!(
            first["shortlink"],
            "https://status.example.com/status/incidents/inc0"
        );
        assert_eq!(first["components"][0]["id"], "c0");
        assert_eq!(first["components"][0]["position"], 1);
        assert!(first["resolved_at"].is_null());
        let updates = first["incident_updates"].as_array().unwrap();
        assert_eq!(updates.len(), 2);
        assert_eq!(updates[0]["id"], "u0-1");
        assert_eq!(updates[0]["status"], "identified");
        assert!(updates[0]["affected_components"].is_null());
        assert_eq!(
            updates[1]["affected_components"],
            serde_json::json!([{
                "code": "c0",
                "name": "Component 0",
                "old_status": "operational",
                "new_status": "partial_outage",
            }])
        );
        assert_eq!(updates[1]["created_at"], "2026-12-05T10:00:00Z");
        assert!(incidents["incidents"][1]["resolved_at"].is_string());
    }

    #[test]
    fn maintenance_is_published_as_one_update_with_its_body() {
        let mut view = fixture::view(3, 3, 0, 0);
        view.maintenances[1].status = MaintenanceStatus::Verifying;
        let active = document(&view, "/api/v2/scheduled-maintenances/active.json");
        let window = &active["scheduled_maintenances"][0];
        assert_eq!(window["id"], "m1");
        assert_eq!(window["status"], "verifying");
        assert_eq!(
            window["shortlink"],
            "https://status.example.com/status/maintenance/m1"
        );
        assert_eq!(window["scheduled_for"], "2026-12-05T11:00:00Z");
        assert_eq!(window["scheduled_until"], "2026-12-05T13:00:00Z");
        assert_eq!(window["components"][0]["id"], "c1");
        assert_eq!(window["components"][0]["group_id"], "group-group-0");
        let updates = window["incident_updates"].as_array().unwrap();
        assert_eq!(updates.len(), 1);
        assert_eq!(updates[0]["id"], "m1-0");
        assert_eq!(updates[0]["status"], "verifying");
        assert_eq!(updates[0]["body"], "Work on m1.\nNo downtime expected.");
        let all = document(&view, "/api/v2/scheduled-maintenances.json");
        let completed = &all["scheduled_maintenances"][2];
        assert_eq!(completed["id"], "m0");
        assert!(completed["resolved_at"].is_string());
    }

    #[test]
    fn lists_are_capped_at_fifty_most_recent() {
        let view = fixture::view(2, 3, 60, 1);
        let incidents = document(&view, "/api/v2/incidents.json");
        let list = incidents["incidents"].as_array().unwrap();
        assert_eq!(list.len(), 50);
        assert_eq!(list[0]["id"], "inc0");
        assert_eq!(list[49]["id"], "inc49");
    }
}
