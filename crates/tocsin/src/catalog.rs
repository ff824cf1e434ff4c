use tocsin_config::{Config, ResolveMode};
use tocsin_core::{ResolvePolicy, ServiceId};
use tocsin_engine::oncall::{ScheduleCatalog, ScheduleEntry, UserEntry};
use tocsin_engine::{Catalog, GrafanaSettings, ServiceEntry};

/// The engine's view of the services, schedules and users declared in the config.
pub fn catalog_from_config(config: &Config) -> Catalog {
    Catalog::with_schedules(services_from_config(config), schedules_from_config(config))
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
