use std::collections::HashMap;

use tocsin_core::{ResolvePolicy, ServiceId};

/// How a service's Grafana contact point signs its requests.
#[derive(Clone)]
pub struct GrafanaSettings {
    pub secret: Vec<u8>,
    /// The header carrying the Unix timestamp that is signed with the body, if configured.
    pub timestamp_header: Option<String>,
}

impl std::fmt::Debug for GrafanaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrafanaSettings")
            .field("secret", &"<redacted>")
            .field("timestamp_header", &self.timestamp_header)
            .finish()
    }
}

/// A service as the engine needs it.
#[derive(Clone, Debug)]
pub struct ServiceEntry {
    pub id: ServiceId,
    pub name: String,
    pub integration_keys: Vec<String>,
    pub resolve: ResolvePolicy,
    pub grafana: Option<GrafanaSettings>,
}

/// The services declared in the config, indexed for the ingest path.
#[derive(Debug, Default)]
pub struct Catalog {
    services: Vec<ServiceEntry>,
    by_key: HashMap<String, usize>,
    by_id: HashMap<ServiceId, usize>,
}

impl Catalog {
    /// The config loader has already rejected duplicate ids and keys; should one slip through,
    /// the first declaration wins.
    pub fn new(services: Vec<ServiceEntry>) -> Self {
        let mut by_key = HashMap::new();
        let mut by_id = HashMap::new();
        for (index, service) in services.iter().enumerate() {
            by_id.entry(service.id.clone()).or_insert(index);
            for key in &service.integration_keys {
                by_key.entry(key.clone()).or_insert(index);
            }
        }
        Catalog {
            services,
            by_key,
            by_id,
        }
    }

    pub fn service_for_key(&self, integration_key: &str) -> Option<&ServiceEntry> {
        self.by_key
            .get(integration_key)
            .map(|index| &self.services[*index])
    }

    pub fn service(&self, id: &ServiceId) -> Option<&ServiceEntry> {
        self.by_id.get(id).map(|index| &self.services[*index])
    }

    pub fn services(&self) -> &[ServiceEntry] {
        &self.services
    }

    /// Unknown services (events stored before a service was removed from the config) resolve
    /// automatically.
    pub fn resolve_policy(&self, id: &ServiceId) -> ResolvePolicy {
        self.service(id)
            .map_or(ResolvePolicy::Auto, |service| service.resolve)
    }
}
