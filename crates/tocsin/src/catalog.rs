use tocsin_config::{Config, ResolveMode};
use tocsin_core::{ResolvePolicy, ServiceId};
use tocsin_engine::paging::{NotifyStep, PagedUser, PagingDirectory, ScheduleEntry};
use tocsin_engine::{Catalog, GrafanaSettings, ServiceEntry};

/// The engine's view of the services, people and policies declared in the config.
pub fn catalog_from_config(config: &Config) -> Catalog {
    let catalog = Catalog::new(services_from_config(config));
    catalog.replace_paging(paging_from_config(config));
    catalog
}

/// The people, schedules and escalation policies declared in the config, as escalation needs
/// them.
pub fn paging_from_config(config: &Config) -> PagingDirectory {
    let users = config
        .users
        .iter()
        .map(|user| {
            let method_of = |contact: &str| {
                user.contact
                    .iter()
                    .find(|method| method.id == contact)
                    .map(|method| method.kind.name().to_owned())
            };
            // Without notify rules, every contact method at once.
            let notify = if user.notify.is_empty() {
                user.contact
                    .iter()
                    .map(|method| NotifyStep {
                        after_minutes: 0,
                        contact: method.id.clone(),
                        method: method.kind.name().to_owned(),
                    })
                    .collect()
            } else {
                user.notify
                    .iter()
                    .filter_map(|rule| {
                        Some(NotifyStep {
                            after_minutes: rule.after_minutes,
                            contact: rule.contact.clone(),
                            method: method_of(&rule.contact)?,
                        })
                    })
                    .collect()
            };
            (
                user.id.clone(),
                PagedUser {
                    id: user.id.clone(),
                    name: user.name.clone(),
                    bot: user.bot,
                    notify,
                },
            )
        })
        .collect();
    let schedules = config
        .schedules
        .iter()
        .filter_map(|schedule| {
            // The config checked the zone against the time zone database already.
            let time_zone = jiff::tz::TimeZone::get(&schedule.time_zone).ok()?;
            Some((
                schedule.id.clone(),
                ScheduleEntry {
                    schedule: schedule.clone(),
                    time_zone,
                },
            ))
        })
        .collect();
    PagingDirectory {
        users,
        teams: config
            .teams
            .iter()
            .map(|team| (team.id.clone(), team.members.clone()))
            .collect(),
        schedules,
        policies: config
            .escalation_policies
            .iter()
            .map(|policy| (policy.id.clone(), policy.clone()))
            .collect(),
        service_policies: config
            .services
            .iter()
            .filter_map(|service| {
                Some((
                    ServiceId::new(service.id.clone()),
                    service.escalation_policy.clone()?,
                ))
            })
            .collect(),
    }
}

/// The services declared in the config, as the engine needs them.
pub fn services_from_config(config: &Config) -> Vec<ServiceEntry> {
    config
        .services
        .iter()
        .map(|service| ServiceEntry {
            id: ServiceId::new(service.id.clone()),
            name: service.name.clone(),
            integration_keys: service
                .integration_keys
                .iter()
                .map(|key| key.expose().to_owned())
                .collect(),
            resolve: match service.resolve {
                ResolveMode::Auto => ResolvePolicy::Auto,
                ResolveMode::Manual => ResolvePolicy::Manual,
            },
            grafana: service.grafana.as_ref().map(|grafana| GrafanaSettings {
                secret: grafana.secret.expose().as_bytes().to_vec(),
                timestamp_header: grafana.timestamp_header.clone(),
            }),
        })
        .collect()
}
