//! The heartbeat monitors declared in the config, as the ping route and the deadline handler
//! need them (part of the [`Catalog`](crate::Catalog)).

use std::collections::HashMap;
use std::sync::Arc;

use tocsin_core::heartbeat::Expectation;
use tocsin_core::ServiceId;

/// A heartbeat monitor.
#[derive(Clone)]
pub struct HeartbeatEntry {
    /// The monitor's id.
    pub id: String,
    pub service: ServiceId,
    /// A secret: whoever knows it may ping. `Debug` never shows it.
    pub ping_key: String,
    /// Only `POST` pings count (link previews and crawlers fetch URLs with `GET`).
    pub post_only: bool,
    pub expectation: Expectation,
}

impl std::fmt::Debug for HeartbeatEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeartbeatEntry")
            .field("id", &self.id)
            .field("service", &self.service)
            .field("ping_key", &"<redacted>")
            .field("post_only", &self.post_only)
            .field("expectation", &self.expectation)
            .finish()
    }
}

/// One immutable set of heartbeat monitors and its indexes.
#[derive(Default)]
pub(crate) struct Heartbeats {
    pub(crate) entries: Arc<[Arc<HeartbeatEntry>]>,
    by_key: HashMap<String, usize>,
    by_id: HashMap<String, usize>,
}

impl Heartbeats {
    /// The config loader has already rejected duplicate ids and keys; should one slip
    /// through, the first declaration wins.
    pub(crate) fn new(entries: Vec<HeartbeatEntry>) -> Self {
        let mut by_key = HashMap::new();
        let mut by_id = HashMap::new();
        for (index, entry) in entries.iter().enumerate() {
            by_id.entry(entry.id.clone()).or_insert(index);
            by_key.entry(entry.ping_key.clone()).or_insert(index);
        }
        Heartbeats {
            entries: entries.into_iter().map(Arc::new).collect(),
            by_key,
            by_id,
        }
    }

    pub(crate) fn by_key(&self, key: &str) -> Option<Arc<HeartbeatEntry>> {
        self.by_key
            .get(key)
            .map(|index| Arc::clone(&self.entries[*index]))
    }

    pub(crate) fn by_id(&self, id: &str) -> Option<Arc<HeartbeatEntry>> {
        self.by_id
            .get(id)
            .map(|index| Arc::clone(&self.entries[*index]))
    }
}

/// Heartbeat reads, for the API.
impl crate::Engine {
    /// The stored states of these monitors (those that have one; at most
    /// `PageRequest::MAX_LIMIT` per call).
    pub async fn heartbeat_states(
        &self,
        monitors: &[String],
    ) -> Result<Vec<tocsin_store::heartbeat::HeartbeatStateRow>, crate::EngineError> {
        let started = std::time::Instant::now();
        let result = self.store().heartbeat_states(monitors).await;
        self.metrics()
            .observe_store("heartbeat_states", started.elapsed().as_secs_f64());
        result.map_err(|source| crate::EngineError::store("heartbeat_states", source))
    }

    /// A monitor's pings, newest first.
    pub async fn pings(
        &self,
        monitor: &str,
        page: tocsin_store::PageRequest,
    ) -> Result<tocsin_store::Page<tocsin_store::heartbeat::PingRow>, crate::EngineError> {
        let started = std::time::Instant::now();
        let result = self.store().pings(monitor, page).await;
        self.metrics()
            .observe_store("pings", started.elapsed().as_secs_f64());
        result.map_err(|source| crate::EngineError::store("pings", source))
    }
}
