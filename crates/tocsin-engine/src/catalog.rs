use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tocsin_core::{ResolvePolicy, ServiceId};

pub use crate::heartbeats::HeartbeatEntry;
use crate::heartbeats::Heartbeats;
use crate::oncall::ScheduleCatalog;
use crate::paging::PagingDirectory;
use crate::updates::UpdateChannels;

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
#[derive(Clone)]
pub struct ServiceEntry {
    pub id: ServiceId,
    pub name: String,
    /// Secrets: whoever knows one may post events for the service. `Debug` shows only how many
    /// there are.
    pub integration_keys: Vec<String>,
    pub resolve: ResolvePolicy,
    pub grafana: Option<GrafanaSettings>,
}

impl std::fmt::Debug for ServiceEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceEntry")
            .field("id", &self.id)
            .field("name", &self.name)
            .field(
                "integration_keys",
                &format_args!("<{} redacted>", self.integration_keys.len()),
            )
            .field("resolve", &self.resolve)
            .field("grafana", &self.grafana)
            .finish()
    }
}

/// The services declared in the config, indexed for the ingest path.
///
/// The index is replaced whole by [`Catalog::replace`] (a config reload): every lookup sees
/// either the old set of services or the new one, never a mix, and a lookup costs an atomic
/// load, not a lock.
pub struct Catalog {
    current: ArcSwap<Services>,
    heartbeats: ArcSwap<Heartbeats>,
    /// The people, schedules and escalation policies, replaced whole like the services.
    paging: ArcSwap<PagingDirectory>,
    /// The channels of each service, replaced whole like the services.
    update_channels: ArcSwap<UpdateChannels>,
}

/// One immutable set of services and its indexes.
#[derive(Default)]
struct Services {
    services: Arc<[Arc<ServiceEntry>]>,
    by_key: HashMap<String, usize>,
    by_id: HashMap<ServiceId, usize>,
    /// Swapped with the services, so a lookup never sees the schedules of another config.
    schedules: Arc<ScheduleCatalog>,
}

impl Services {
    /// The config loader has already rejected duplicate ids and keys; should one slip through,
    /// the first declaration wins.
    fn new(services: Vec<ServiceEntry>) -> Self {
        let mut by_key = HashMap::new();
        let mut by_id = HashMap::new();
        for (index, service) in services.iter().enumerate() {
            by_id.entry(service.id.clone()).or_insert(index);
            for key in &service.integration_keys {
                by_key.entry(key.clone()).or_insert(index);
            }
        }
        Services {
            services: services.into_iter().map(Arc::new).collect(),
            by_key,
            by_id,
            schedules: Arc::default(),
        }
    }
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog::new(Vec::new())
    }
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("services", &self.current.load().services)
            .finish()
    }
}

impl Catalog {
    pub fn new(services: Vec<ServiceEntry>) -> Self {
        Catalog {
            current: ArcSwap::from_pointee(Services::new(services)),
            heartbeats: ArcSwap::from_pointee(Heartbeats::default()),
            paging: ArcSwap::from_pointee(PagingDirectory::default()),
            update_channels: ArcSwap::from_pointee(UpdateChannels::default()),
        }
    }

    /// Swaps in the channels of each service (a config reload).
    pub fn replace_update_channels(&self, channels: UpdateChannels) {
        self.update_channels.store(Arc::new(channels));
    }

    /// The channels of each service, as of this call.
    pub fn update_channels_now(&self) -> Arc<UpdateChannels> {
        self.update_channels.load_full()
    }

    /// Swaps in new people, schedules and escalation policies at once.
    pub fn replace_paging(&self, directory: PagingDirectory) {
        self.paging.store(Arc::new(directory));
    }

    /// The people, schedules and escalation policies as of this call.
    pub fn paging(&self) -> Arc<PagingDirectory> {
        self.paging.load_full()
    }

    /// A catalog of services and of the schedules and users of the same config.
    pub fn with_schedules(services: Vec<ServiceEntry>, schedules: ScheduleCatalog) -> Self {
        let mut current = Services::new(services);
        current.schedules = Arc::new(schedules);
        Catalog {
            current: ArcSwap::from_pointee(current),
            heartbeats: ArcSwap::from_pointee(Heartbeats::default()),
            paging: ArcSwap::from_pointee(PagingDirectory::default()),
            update_channels: ArcSwap::from_pointee(UpdateChannels::default()),
        }
    }

    /// Swaps in the services, schedules and users of a new config at once.
    pub fn replace_with_schedules(&self, services: Vec<ServiceEntry>, schedules: ScheduleCatalog) {
        let mut current = Services::new(services);
        current.schedules = Arc::new(schedules);
        self.current.store(Arc::new(current));
    }

    /// The schedules and users, as of this call.
    pub fn schedules(&self) -> Arc<ScheduleCatalog> {
        Arc::clone(&self.current.load().schedules)
    }

    /// Swaps in a new set of heartbeat monitors at once (a config reload).
    pub fn replace_heartbeats(&self, heartbeats: Vec<HeartbeatEntry>) {
        self.heartbeats.store(Arc::new(Heartbeats::new(heartbeats)));
    }

    /// The heartbeat monitor pinged at `/ping/<key>`.
    pub fn heartbeat_for_key(&self, ping_key: &str) -> Option<Arc<HeartbeatEntry>> {
        self.heartbeats.load().by_key(ping_key)
    }

    pub fn heartbeat(&self, id: &str) -> Option<Arc<HeartbeatEntry>> {
        self.heartbeats.load().by_id(id)
    }

    /// Every heartbeat monitor, in config order, as of this call.
    pub fn heartbeats(&self) -> Arc<[Arc<HeartbeatEntry>]> {
        Arc::clone(&self.heartbeats.load().entries)
    }

    /// Swaps in a new set of services at once: from the next lookup on, new integration keys
    /// are known and removed ones are not.
    /// The schedules and users stay as they are.
    pub fn replace(&self, services: Vec<ServiceEntry>) {
        let mut next = Services::new(services);
        next.schedules = Arc::clone(&self.current.load().schedules);
        self.current.store(Arc::new(next));
    }

    pub fn service_for_key(&self, integration_key: &str) -> Option<Arc<ServiceEntry>> {
        let current = self.current.load();
        current
            .by_key
            .get(integration_key)
            .map(|index| Arc::clone(&current.services[*index]))
    }

    pub fn service(&self, id: &ServiceId) -> Option<Arc<ServiceEntry>> {
        let current = self.current.load();
        current
            .by_id
            .get(id)
            .map(|index| Arc::clone(&current.services[*index]))
    }

    /// Every service, in config order, as of this call.
    pub fn services(&self) -> Arc<[Arc<ServiceEntry>]> {
        Arc::clone(&self.current.load().services)
    }

    /// Unknown services (events stored before a service was removed from the config) resolve
    /// automatically.
    pub fn resolve_policy(&self, id: &ServiceId) -> ResolvePolicy {
        let current = self.current.load();
        current.by_id.get(id).map_or(ResolvePolicy::Auto, |index| {
            current.services[*index].resolve
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef";
    const SECRET: &str = "grafana-shared-secret";

    fn entry(id: &str, key: &str) -> ServiceEntry {
        ServiceEntry {
            id: ServiceId::new(id.to_owned()),
            name: id.to_owned(),
            integration_keys: vec![key.to_owned()],
            resolve: ResolvePolicy::Manual,
            grafana: Some(GrafanaSettings {
                secret: SECRET.as_bytes().to_vec(),
                timestamp_header: None,
            }),
        }
    }

    #[test]
    fn debug_never_shows_integration_keys_or_secrets() {
        let catalog = Catalog::new(vec![entry("api", KEY)]);
        let printed = format!("{catalog:?}");
        assert!(!printed.contains(KEY), "{printed}");
        assert!(!printed.contains(SECRET), "{printed}");
        assert!(printed.contains("api"), "{printed}");
        let service = catalog.service_for_key(KEY).expect("known key");
        let printed = format!("{service:?} {:#?}", *service);
        assert!(!printed.contains(KEY), "{printed}");
        assert!(printed.contains("redacted"), "{printed}");
    }

    #[test]
    fn replace_swaps_every_index_at_once() {
        let catalog = Catalog::new(vec![entry("api", KEY)]);
        assert_eq!(
            catalog.resolve_policy(&ServiceId::new("api".to_owned())),
            ResolvePolicy::Manual
        );
        let before = catalog.services();
        catalog.replace(vec![entry("db", "fedcba9876543210fedcba9876543210")]);
        assert!(catalog.service_for_key(KEY).is_none());
        assert!(catalog
            .service_for_key("fedcba9876543210fedcba9876543210")
            .is_some());
        assert!(catalog.service(&ServiceId::new("api".to_owned())).is_none());
        assert_eq!(
            catalog.resolve_policy(&ServiceId::new("api".to_owned())),
            ResolvePolicy::Auto
        );
        // A reader that took the old list keeps a consistent view of it.
        assert_eq!(before.len(), 1);
        assert_eq!(before[0].id.as_str(), "api");
        assert_eq!(catalog.services()[0].id.as_str(), "db");
    }
}
