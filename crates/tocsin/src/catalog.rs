use std::collections::HashMap;

use tocsin_config::{Config, MonitorKind, ResolveMode};
use tocsin_core::heartbeat::{Expectation, HeartbeatSchedule};
use tocsin_core::{ResolvePolicy, ServiceId};
use tocsin_engine::oncall::{ScheduleCatalog, ScheduleEntry, UserEntry};
use tocsin_engine::paging::{
    ContactRef, NotifyStep, PagedUser, PagingDirectory, ScheduleEntry as PagingSchedule,
};
use tocsin_engine::{Catalog, GrafanaSettings, HeartbeatEntry, ServiceEntry, UpdateChannels};
use tocsin_store::updates::UpdateChannel;

/// The engine's view of the services, schedules, people, policies and heartbeat monitors
/// declared in the config.
pub fn catalog_from_config(config: &Config) -> Catalog {
    let catalog =
        Catalog::with_schedules(services_from_config(config), schedules_from_config(config));
    catalog.replace_heartbeats(heartbeats_from_config(config));
    catalog.replace_paging(paging_from_config(config));
    catalog.replace_update_channels(update_channels_from_config(config));
    catalog
}

/// The channels each service's incident updates go to: those of a kind Tocsin sends
/// (`tocsin_notify::CHANNEL_KINDS`), in the order the service lists them.
pub fn update_channels_from_config(config: &Config) -> UpdateChannels {
    let by_service = config
        .services
        .iter()
        .map(|service| {
            let channels = service
                .channels
                .iter()
                .filter_map(|id| config.channel(id))
                .filter(|channel| tocsin_notify::CHANNEL_KINDS.contains(&channel.kind.name()))
                .map(|channel| UpdateChannel {
                    id: channel.id.clone(),
                    method: channel.kind.name().to_owned(),
                })
                .collect();
            (ServiceId::new(service.id.clone()), channels)
        })
        .collect();
    UpdateChannels { by_service }
}

/// The schedules (their time zones resolved) and users declared in the config. The config
/// loader has checked every time zone name; one that no longer resolves (the time zone
/// database changed under a running server) is read as UTC, with a warning.
pub fn schedules_from_config(config: &Config) -> ScheduleCatalog {
    let schedules = config
        .schedules
        .iter()
        .map(|schedule| ScheduleEntry {
            time_zone: jiff::tz::TimeZone::get(&schedule.time_zone).unwrap_or_else(|error| {
                tracing::warn!(schedule = %schedule.id, time_zone = %schedule.time_zone, error = %error, "unknown time zone; reading the schedule in UTC");
                jiff::tz::TimeZone::UTC
            }),
            schedule: schedule.clone(),
        })
        .collect();
    let users = config
        .users
        .iter()
        .map(|user| UserEntry {
            id: user.id.clone(),
            name: user.name.clone(),
            bot: user.bot,
        })
        .collect();
    ScheduleCatalog::new(schedules, users)
}

/// The heartbeat monitors declared in the config, as the engine needs them.
pub fn heartbeats_from_config(config: &Config) -> Vec<HeartbeatEntry> {
    config
        .monitors
        .iter()
        .filter_map(|monitor| {
            let MonitorKind::Heartbeat(check) = &monitor.kind else {
                return None;
            };
            let schedule = match &check.expected {
                tocsin_config::HeartbeatSchedule::Period(period) => {
                    HeartbeatSchedule::Period(*period)
                }
                tocsin_config::HeartbeatSchedule::Cron { cron, time_zone } => {
                    // The config loader has checked the zone; should the host lack it now,
                    // UTC is the documented default.
                    let zone = jiff::tz::TimeZone::get(time_zone).unwrap_or_else(|error| {
                        tracing::warn!(monitor = %monitor.id, time_zone, error = %error, "unknown time zone; using UTC");
                        jiff::tz::TimeZone::UTC
                    });
                    HeartbeatSchedule::Cron {
                        cron: cron.clone(),
                        zone,
                    }
                }
            };
            Some(HeartbeatEntry {
                id: monitor.id.clone(),
                service: ServiceId::new(monitor.service.clone()),
                ping_key: check.ping_key.expose().to_owned(),
                post_only: check.post_only,
                expectation: Expectation {
                    schedule,
                    grace: check.grace,
                    max_starts_without_success: check.max_starts_without_success,
                },
            })
        })
        .collect()
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
                PagingSchedule {
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
        service_components: config
            .services
            .iter()
            .filter(|service| !service.components.is_empty())
            .map(|service| {
                (
                    ServiceId::new(service.id.clone()),
                    service.components.clone(),
                )
            })
            .collect(),
        service_depends_on: config
            .services
            .iter()
            .filter(|service| !service.depends_on.is_empty())
            .map(|service| {
                (
                    ServiceId::new(service.id.clone()),
                    service
                        .depends_on
                        .iter()
                        .map(|parent| ServiceId::new(parent.clone()))
                        .collect(),
                )
            })
            .collect(),
        ack_timeouts: config
            .services
            .iter()
            .filter_map(|service| {
                let minutes = service.ack_timeout_minutes?;
                Some((
                    ServiceId::new(service.id.clone()),
                    std::time::Duration::from_secs(u64::from(minutes) * 60),
                ))
            })
            .collect(),
        on_call_now: HashMap::new(),
        contacts: config
            .users
            .iter()
            .map(|user| {
                let contacts = user
                    .contact
                    .iter()
                    .map(|method| ContactRef {
                        id: method.id.clone(),
                        method: method.kind.name().to_owned(),
                    })
                    .collect();
                (user.id.clone(), contacts)
            })
            .collect(),
        service_teams: config
            .services
            .iter()
            .filter_map(|service| Some((ServiceId::new(service.id.clone()), service.team.clone()?)))
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

/// The `[[rules]]` of the config, as the engine evaluates them.
pub fn rules_from_config(config: &Config) -> Vec<tocsin_engine::rules::RuleDefinition> {
    use tocsin_engine::rules::{Baseline, EventMatch, RuleCondition, RuleDefinition};
    config
        .rules
        .iter()
        .map(|rule| RuleDefinition {
            id: rule.id.clone(),
            service: ServiceId::new(rule.service.clone()),
            condition: match &rule.kind {
                tocsin_config::RuleKind::Rate { above, baseline } => RuleCondition::Rate {
                    above: *above,
                    baseline: baseline.map(|baseline| Baseline {
                        factor: baseline.factor,
                        window: baseline.window,
                    }),
                },
                tocsin_config::RuleKind::Absence => RuleCondition::Absence,
            },
            matches: EventMatch {
                severity: rule.matches.severity,
                source: rule.matches.source.clone(),
                component: rule.matches.component.clone(),
                group: rule.matches.group.clone(),
                class: rule.matches.class.clone(),
            },
            window: rule.window,
        })
        .collect()
}
