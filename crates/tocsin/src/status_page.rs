//! Keeps the status page's snapshot current: every few seconds (and at once when something
//! public changes) it reads what the page shows, and when that differs from what is served it
//! renders a new snapshot off the async workers and swaps it in.
//!
//! A component's status comes from the monitors of the services that list it, from the
//! published incidents that affect it and from maintenance, worst first; an operator override
//! replaces it (see [`tocsin_status::derive_component_status`]). Incidents nobody published stay
//! internal: a failing monitor shows on its component, the incident it opened does not.
//!
//! When the store cannot be read the snapshot being served stays; the page shows when its data
//! was read.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::ToSpan;
use sha2::{Digest, Sha256};
use tocsin_checks::Monitors;
use tocsin_config::{Config, MonitorKind};
use tocsin_core::heartbeat::HeartbeatStatus;
use tocsin_core::Timestamp;
use tocsin_engine::Engine;
use tocsin_status::{
    AffectedComponent, ComponentStatus, ComponentView, DayUptime, Impact, IncidentStatus,
    IncidentView, MaintenanceStatus, MaintenanceView, MonitorHealth, PageInfo, StatusView,
    UpdateView,
};
use tocsin_store::due::DueKey;
use tocsin_store::monitor_results::{Rollup, RollupPeriod};
use tocsin_store::status::{MaintenanceRow, PublicIncident, MAX_STATUS_ROWS};
use tocsin_store::{PageRequest, StoreError};
use tocsin_web::{PublicStatus, StatusSettings};
use tokio_util::sync::CancellationToken;

/// How often the page's data is read.
pub(crate) const REFRESH: Duration = Duration::from_secs(5);
/// A snapshot is rendered again at least this often even when nothing it shows changed, so
/// that its "as of" time and its days move on.
const MAX_AGE: Duration = Duration::from_secs(60);

/// What the page is built from, out of the config in force.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PageConfig {
    page: PageInfo,
    components: Vec<ComponentConfig>,
}

#[derive(Debug, Clone, PartialEq)]
struct ComponentConfig {
    id: String,
    name: String,
    group: Option<String>,
    description: Option<String>,
    /// The monitors of the services that list the component, in config order.
    monitors: Vec<MonitorRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct MonitorRef {
    id: String,
    heartbeat: bool,
}

impl PageConfig {
    /// `None` without a `[status_page]`.
    pub(crate) fn of(config: &Config) -> Option<PageConfig> {
        let page = config.status_page.as_ref()?;
        let url = page
            .public_url
            .clone()
            .unwrap_or_else(|| config.server.public_url.clone())
            .trim_end_matches('/')
            .to_owned();
        let id = hex::encode(&Sha256::digest(url.as_bytes())[..8]);
        let components = config
            .components
            .iter()
            .map(|component| {
                let services: HashSet<&str> = config
                    .services
                    .iter()
                    .filter(|service| service.components.contains(&component.id))
                    .map(|service| service.id.as_str())
                    .collect();
                ComponentConfig {
                    id: component.id.clone(),
                    name: component.name.clone(),
                    group: component.group.clone(),
                    description: component.description.clone(),
                    monitors: config
                        .monitors
                        .iter()
                        .filter(|monitor| services.contains(monitor.service.as_str()))
                        .map(|monitor| MonitorRef {
                            id: monitor.id.clone(),
                            heartbeat: matches!(monitor.kind, MonitorKind::Heartbeat(_)),
                        })
                        .collect(),
                }
            })
            .collect();
        Some(PageConfig {
            page: PageInfo {
                id,
                title: page.title.clone(),
                url,
                logo_url: page.logo_url.clone(),
                links: page
                    .links
                    .iter()
                    .map(|link| (link.label.clone(), link.url.clone()))
                    .collect(),
                history_days: page.history_days,
                time_zone: page.time_zone.clone(),
            },
            components,
        })
    }

    fn settings(&self, config_public_url: Option<&str>) -> StatusSettings {
        StatusSettings {
            public_host: config_public_url.and_then(tocsin_web::status::host_of),
            components: self
                .components
                .iter()
                .map(|component| component.id.clone())
                .collect(),
        }
    }
}

/// Builds the snapshot the web layer serves.
pub struct StatusBuilder {
    engine: Arc<Engine>,
    monitors: Arc<Monitors>,
    public: Arc<PublicStatus>,
    config: ArcSwap<Option<PageConfig>>,
    memory: tokio::sync::Mutex<Memory>,
}

impl std::fmt::Debug for StatusBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusBuilder")
            .field("configured", &self.config.load().is_some())
            .finish()
    }
}

/// What one round remembers for the next.
#[derive(Default)]
struct Memory {
    /// The view the served snapshot was rendered from.
    rendered: Option<StatusView>,
    rendered_at: Option<Instant>,
    /// Each component's status and since when it has had it.
    statuses: HashMap<String, (ComponentStatus, Timestamp)>,
    /// Whether the last round failed to read the store (so a long failure is logged once).
    failing: bool,
}

impl StatusBuilder {
    pub fn new(
        engine: Arc<Engine>,
        monitors: Arc<Monitors>,
        public: Arc<PublicStatus>,
        config: &Config,
    ) -> StatusBuilder {
        let builder = StatusBuilder {
            engine,
            monitors,
            public,
            config: ArcSwap::from_pointee(None),
            memory: tokio::sync::Mutex::new(Memory::default()),
        };
        builder.replace_config(config);
        builder
    }

    /// What the handlers serve from.
    pub fn public(&self) -> &Arc<PublicStatus> {
        &self.public
    }

    /// Takes a new config (at start-up and on reload) and asks for a rebuild.
    pub fn replace_config(&self, config: &Config) {
        let page = PageConfig::of(config);
        let public_url = config
            .status_page
            .as_ref()
            .and_then(|page| page.public_url.as_deref());
        self.public
            .configure(page.as_ref().map(|page| page.settings(public_url)));
        self.config.store(Arc::new(page));
        self.public.request_rebuild();
    }

    /// Reads the page's data and, when it changed (or the served snapshot is a minute old),
    /// renders and publishes a new snapshot. `Ok(true)` when it published one.
    pub async fn refresh(&self) -> Result<bool, StoreError> {
        let config = self.config.load_full();
        let Some(config) = config.as_ref() else {
            return Ok(false);
        };
        let mut memory = self.memory.lock().await;
        let now = self.engine.now();
        let view = match self.collect(config, now, &mut memory).await {
            Ok(view) => view,
            Err(error) => {
                if !memory.failing {
                    tracing::warn!(
                        error = %error,
                        "cannot read the status page's data; the last snapshot stays served"
                    );
                }
                memory.failing = true;
                return Err(error);
            }
        };
        if memory.failing {
            tracing::info!("the status page's data can be read again");
            memory.failing = false;
        }
        let fresh = memory.rendered_at.is_some_and(|at| at.elapsed() < MAX_AGE);
        if fresh
            && memory
                .rendered
                .as_ref()
                .is_some_and(|last| same_data(last, &view))
        {
            return Ok(false);
        }
        let previous = self.public.snapshot();
        let rendered = view.clone();
        let snapshot = tokio::task::spawn_blocking(move || {
            tocsin_status::render_reusing(&rendered, previous.as_deref())
        })
        .await
        .map_err(|error| {
            StoreError::Invalid(format!("rendering the status page failed: {error}"))
        })?;
        self.public.publish(snapshot);
        memory.rendered = Some(view);
        memory.rendered_at = Some(Instant::now());
        Ok(true)
    }

    /// Refreshes every [`REFRESH`], and at once when asked to, until `stop`.
    pub async fn run_until(&self, stop: CancellationToken) {
        loop {
            // Errors are logged by `refresh`; the next round tries again.
            let _ = self.refresh().await;
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(REFRESH) => {}
                () = self.public.rebuild_requested() => {}
            }
        }
    }

    async fn collect(
        &self,
        config: &PageConfig,
        now: Timestamp,
        memory: &mut Memory,
    ) -> Result<StatusView, StoreError> {
        let store = self.engine.store();
        let days = config.page.history_days.max(1);
        let today = now.to_zoned(TimeZone::UTC).date();
        let first_day = today
            .checked_sub(i64::from(days - 1).days())
            .unwrap_or(today);
        let day_start = |day: Date| {
            day.to_zoned(TimeZone::UTC)
                .map_or(now, |zoned| zoned.timestamp())
        };

        let mut monitors: Vec<&MonitorRef> = Vec::new();
        let mut seen = HashSet::new();
        for component in &config.components {
            for monitor in &component.monitors {
                if seen.insert(&monitor.id) {
                    monitors.push(monitor);
                }
            }
        }
        let mut health: HashMap<&str, MonitorHealth> = HashMap::new();
        // Per monitor: checks by UTC day.
        let mut by_day: HashMap<&str, BTreeMap<Date, (i64, i64, i64)>> = HashMap::new();
        let heartbeats: Vec<String> = monitors
            .iter()
            .filter(|monitor| monitor.heartbeat)
            .map(|monitor| monitor.id.clone())
            .collect();
        for chunk in heartbeats.chunks(PageRequest::MAX_LIMIT as usize) {
            for row in store.heartbeat_states(chunk).await? {
                let said = match row.state.status {
                    HeartbeatStatus::New => MonitorHealth::Unknown,
                    HeartbeatStatus::Up => MonitorHealth::Up,
                    HeartbeatStatus::Late | HeartbeatStatus::Failed => MonitorHealth::Down,
                };
                if let Some(monitor) = monitors.iter().find(|monitor| monitor.id == row.monitor) {
                    health.insert(monitor.id.as_str(), said);
                }
            }
        }
        for monitor in monitors.iter().filter(|monitor| !monitor.heartbeat) {
            let id = monitor.id.as_str();
            let key = DueKey::parse(id).map_err(|error| StoreError::Invalid(error.to_string()))?;
            let state = store
                .due_item(&tocsin_checks::MONITOR_CHECK, &key)
                .await?
                .map(|row| tocsin_checks::stored::decode(&row.payload));
            let said = match state.map(|state| state.status) {
                _ if self.monitors.is_paused(id) => MonitorHealth::Unknown,
                Some(tocsin_checks::MonitorStatus::Up) => MonitorHealth::Up,
                Some(tocsin_checks::MonitorStatus::Degraded) => MonitorHealth::Degraded,
                Some(tocsin_checks::MonitorStatus::Down) => MonitorHealth::Down,
                Some(tocsin_checks::MonitorStatus::Pending) | None => MonitorHealth::Unknown,
            };
            health.insert(id, said);
            let mut counts = BTreeMap::new();
            let mut add = |rollup: &Rollup| {
                let day = rollup.start.to_zoned(TimeZone::UTC).date();
                let entry: &mut (i64, i64, i64) = counts.entry(day).or_default();
                entry.0 += rollup.up;
                entry.1 += rollup.degraded;
                entry.2 += rollup.down;
            };
            let daily = store
                .rollups(id, RollupPeriod::Day, day_start(first_day), days as usize)
                .await?;
            daily
                .iter()
                .filter(|r| r.start < day_start(today))
                .for_each(&mut add);
            // Today has no daily rollup yet: its finished hours stand in for it.
            let hourly = store
                .rollups(id, RollupPeriod::Hour, day_start(today), 24)
                .await?;
            hourly.iter().for_each(&mut add);
            by_day.insert(id, counts);
        }

        // What operators published: incidents, maintenance, overrides.
        let history_start = day_start(first_day);
        let names: HashMap<&str, &str> = config
            .components
            .iter()
            .map(|component| (component.id.as_str(), component.name.as_str()))
            .collect();
        let order: HashMap<&str, usize> = config
            .components
            .iter()
            .enumerate()
            .map(|(index, component)| (component.id.as_str(), index))
            .collect();
        let published = store
            .public_incidents(history_start, MAX_STATUS_ROWS)
            .await?;
        let incidents: Vec<IncidentView> = published
            .iter()
            .map(|incident| incident_view(incident, &names, &order))
            .collect();
        let windows: Vec<MaintenanceRow> = store
            .maintenances(history_start, MAX_STATUS_ROWS)
            .await?
            .into_iter()
            .filter(MaintenanceRow::starts_before_cancel)
            .collect();
        let overrides: HashMap<String, ComponentStatus> = store
            .component_overrides()
            .await?
            .into_iter()
            .filter_map(|row| Some((row.component, ComponentStatus::parse(&row.status)?)))
            .collect();

        let mut components = Vec::with_capacity(config.components.len());
        for component in &config.components {
            let healths: Vec<MonitorHealth> = component
                .monitors
                .iter()
                .map(|monitor| {
                    health
                        .get(monitor.id.as_str())
                        .copied()
                        .unwrap_or(MonitorHealth::Unknown)
                })
                .collect();
            // Each open incident's latest word on the component.
            let impacts: Vec<ComponentStatus> = incidents
                .iter()
                .filter(|incident| incident.status.is_open())
                .filter_map(|incident| {
                    incident.updates.iter().find_map(|update| {
                        update
                            .affected
                            .iter()
                            .find(|affected| affected.id == component.id)
                            .map(|affected| affected.new_status)
                    })
                })
                .collect();
            let in_maintenance = windows
                .iter()
                .any(|window| window.is_active(now) && window.components.contains(&component.id));
            let status = tocsin_status::derive_component_status(
                &healths,
                &impacts,
                in_maintenance,
                overrides.get(&component.id).copied(),
            );
            let since = match memory.statuses.get(&component.id) {
                Some((previous, since)) if *previous == status => *since,
                _ => now,
            };
            memory
                .statuses
                .insert(component.id.clone(), (status, since));
            let days_list = (0..days)
                .filter_map(|age| today.checked_sub(i64::from(days - 1 - age).days()).ok())
                .map(|day| {
                    let (up, degraded, down) = component
                        .monitors
                        .iter()
                        .filter_map(|monitor| by_day.get(monitor.id.as_str())?.get(&day))
                        .fold((0, 0, 0), |sum, counts| {
                            (sum.0 + counts.0, sum.1 + counts.1, sum.2 + counts.2)
                        });
                    let (start, end) = (day_start(day), day_start(day.tomorrow().unwrap_or(day)));
                    let on_day = incidents
                        .iter()
                        .filter(|incident| incident.components.contains(&component.id))
                        .filter(|incident| {
                            incident.started_at < end
                                && incident.resolved_at.unwrap_or(now) >= start
                        })
                        .map(|incident| (incident.id.clone(), incident.name.clone()))
                        .collect();
                    DayUptime {
                        day,
                        up,
                        degraded,
                        down,
                        incidents: on_day,
                    }
                })
                .collect();
            components.push(ComponentView {
                id: component.id.clone(),
                name: component.name.clone(),
                group: component.group.clone(),
                description: component.description.clone(),
                status,
                updated_at: since,
                days: days_list,
            });
        }
        Ok(StatusView {
            page: config.page.clone(),
            data_as_of: now,
            components,
            maintenances: windows
                .iter()
                .map(|window| maintenance_view(window, now, &order))
                .collect(),
            incidents,
        })
    }
}

/// A published incident as the page shows it: only what its updates said.
fn incident_view(
    incident: &PublicIncident,
    names: &HashMap<&str, &str>,
    order: &HashMap<&str, usize>,
) -> IncidentView {
    // Oldest first, to know each component's status before an update set it.
    let mut before: HashMap<&str, ComponentStatus> = HashMap::new();
    let mut updates = Vec::with_capacity(incident.updates.len());
    for update in incident.updates.iter().rev() {
        let affected = update
            .affected
            .iter()
            .filter_map(|(id, status)| {
                let new_status = ComponentStatus::parse(status)?;
                let old_status = before
                    .insert(id.as_str(), new_status)
                    .unwrap_or(ComponentStatus::Operational);
                Some(AffectedComponent {
                    id: id.clone(),
                    name: names
                        .get(id.as_str())
                        .map_or(id.as_str(), |name| name)
                        .to_owned(),
                    old_status,
                    new_status,
                })
            })
            .collect();
        updates.push(UpdateView {
            id: update.id.to_string(),
            status: update.status.clone(),
            body: update.message.clone(),
            created_at: update.created_at,
            affected,
        });
    }
    updates.reverse();
    let mut components: Vec<String> = before.keys().map(|id| (*id).to_owned()).collect();
    components.sort_by_key(|id| order.get(id.as_str()).copied().unwrap_or(usize::MAX));
    IncidentView {
        id: incident.public_id.clone(),
        name: incident.name.clone(),
        status: IncidentStatus::parse(&incident.status).unwrap_or(IncidentStatus::Investigating),
        impact: Impact::parse(&incident.impact).unwrap_or(Impact::None),
        created_at: incident.published_at,
        updated_at: incident.updated_at,
        started_at: incident.started_at,
        monitoring_at: incident.monitoring_at,
        resolved_at: incident.resolved_at,
        updates,
        components,
    }
}

fn maintenance_view(
    window: &MaintenanceRow,
    now: Timestamp,
    order: &HashMap<&str, usize>,
) -> MaintenanceView {
    let status = if window.ends_at <= now {
        MaintenanceStatus::Completed
    } else if window.starts_at <= now {
        MaintenanceStatus::InProgress
    } else {
        MaintenanceStatus::Scheduled
    };
    let mut components = window.components.clone();
    components.sort_by_key(|id| order.get(id.as_str()).copied().unwrap_or(usize::MAX));
    MaintenanceView {
        id: window.id.to_string(),
        name: window.name.clone(),
        body: window.message.clone(),
        status,
        scheduled_for: window.starts_at,
        scheduled_until: window.ends_at,
        created_at: window.created_at,
        updated_at: window.updated_at,
        components,
    }
}

/// Whether two views show the same, whenever each was read.
fn same_data(a: &StatusView, b: &StatusView) -> bool {
    a.page == b.page
        && a.components == b.components
        && a.incidents == b.incidents
        && a.maintenances == b.maintenances
}
