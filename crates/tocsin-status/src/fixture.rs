//! A sample view for the tests: sized by the caller, with open and resolved incidents, groups,
//! days with and without checks, and maintenance past, present and future.

use jiff::civil::date;
use jiff::SignedDuration;
use tocsin_core::Timestamp;

use crate::model::*;

pub(crate) fn as_of() -> Timestamp {
    "2026-12-05T12:00:00Z".parse().unwrap()
}

fn hours(count: i64) -> SignedDuration {
    SignedDuration::from_hours(count)
}

pub(crate) fn view(components: usize, days: usize, incidents: usize, updates: usize) -> StatusView {
    let now = as_of();
    let today = date(2026, 12, 5);
    let components: Vec<ComponentView> = (0..components)
        .map(|index| ComponentView {
            id: format!("c{index}"),
            name: format!("Component {index}"),
            group: (index % 3 != 0).then(|| format!("Group {}", index / 3)),
            description: (index % 2 == 0).then(|| format!("What component {index} does")),
            status: ComponentStatus::Operational,
            updated_at: now - hours(1),
            days: (0..days)
                .map(|age| {
                    let age = (days - 1 - age) as i64;
                    let no_data = age % 11 == 10;
                    DayUptime {
                        day: today - jiff::Span::new().days(age),
                        up: if no_data { 0 } else { 1440 - age % 5 },
                        degraded: if no_data { 0 } else { age % 3 },
                        down: if no_data || age % 7 != 3 { 0 } else { 10 + age },
                        incidents: if age % 13 == 4 {
                            vec![("inc0".to_owned(), "Incident 0".to_owned())]
                        } else {
                            Vec::new()
                        },
                    }
                })
                .collect(),
        })
        .collect();
    let incidents = (0..incidents)
        .map(|index| {
            let status = if index == 0 {
                IncidentStatus::Identified
            } else {
                IncidentStatus::Resolved
            };
            let started_at = now - hours(2 + 17 * index as i64);
            let step = SignedDuration::from_mins(10);
            let update_at = |order: usize| started_at + step * (order as i32);
            let newest_at = update_at(updates.saturating_sub(1));
            IncidentView {
                id: format!("inc{index}"),
                name: format!("Incident {index}"),
                status,
                impact: Impact::Minor,
                created_at: started_at,
                updated_at: newest_at,
                started_at,
                monitoring_at: None,
                resolved_at: (!status.is_open()).then_some(newest_at),
                updates: (0..updates)
                    .map(|newest_first| {
                        let order = updates - 1 - newest_first;
                        UpdateView {
                            id: format!("u{index}-{order}"),
                            status: if newest_first == 0 {
                                status.as_str().to_owned()
                            } else {
                                "investigating".to_owned()
                            },
                            body: format!("Update {order} of incident {index}.\nSecond line."),
                            created_at: update_at(order),
                            affected: if order == 0 && !components.is_empty() {
                                vec![AffectedComponent {
                                    id: "c0".to_owned(),
                                    name: "Component 0".to_owned(),
                                    old_status: ComponentStatus::Operational,
                                    new_status: ComponentStatus::PartialOutage,
                                }]
                            } else {
                                Vec::new()
                            },
                        }
                    })
                    .collect(),
                components: if components.is_empty() {
                    Vec::new()
                } else {
                    vec!["c0".to_owned()]
                },
            }
        })
        .collect();
    let maintenance_components = if components.len() > 1 {
        vec!["c1".to_owned()]
    } else {
        Vec::new()
    };
    let maintenance = |id: &str, status, from: Timestamp| MaintenanceView {
        id: id.to_owned(),
        name: format!("Maintenance {id}"),
        body: format!("Work on {id}.\nNo downtime expected."),
        status,
        scheduled_for: from,
        scheduled_until: from + hours(2),
        created_at: now - hours(24 * 7),
        updated_at: now - hours(24 * 6),
        components: maintenance_components.clone(),
    };
    StatusView {
        page: PageInfo {
            id: "page1".to_owned(),
            title: "Example status".to_owned(),
            url: "https://status.example.com".to_owned(),
            logo_url: None,
            links: vec![("Home".to_owned(), "https://example.com".to_owned())],
            history_days: days as u32,
            time_zone: "UTC".to_owned(),
        },
        data_as_of: now,
        components,
        incidents,
        maintenances: vec![
            maintenance("m0", MaintenanceStatus::Completed, now - hours(72)),
            maintenance("m1", MaintenanceStatus::InProgress, now - hours(1)),
            maintenance("m2", MaintenanceStatus::Scheduled, now + hours(48)),
        ],
    }
}
