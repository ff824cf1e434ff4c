use tocsin_config::{Config, ResolveMode};
use tocsin_core::{ResolvePolicy, ServiceId};
use tocsin_engine::{Catalog, GrafanaSettings, ServiceEntry};

/// The engine's view of the services declared in the config.
pub fn catalog_from_config(config: &Config) -> Catalog {
    Catalog::new(services_from_config(config))
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
