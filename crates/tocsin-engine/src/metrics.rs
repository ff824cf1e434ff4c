use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

fn lag_histogram() -> Histogram {
    // 1 ms .. ~35 min
    Histogram::new(exponential_buckets(0.001, 2.0, 22))
}

fn latency_histogram() -> Histogram {
    // 0.25 ms .. ~4 s
    Histogram::new(exponential_buckets(0.000_25, 2.0, 15))
}

/// Tocsin's Prometheus metrics, all kept in memory: a scrape of `/metrics` never reaches the
/// store. The gauges of stored state (open incidents and alerts) start from one count when the
/// ingest writer starts, follow every batch it commits and every incident command of this
/// process, and are recounted by the writer every
/// [`GAUGE_RECOUNT_INTERVAL`](crate::GAUGE_RECOUNT_INTERVAL) (which also brings in the changes of
/// other replicas).
pub struct Metrics {
    pub registry: Registry,
    pub events_accepted: Family<Labels, Counter>,
    pub events_rejected: Family<Labels, Counter>,
    pub alerts_opened: Counter,
    pub incidents_opened: Counter,
    pub ingest_batches: Counter,
    pub ingest_batch_events: Histogram,
    pub store_latency: Family<Labels, Histogram, fn() -> Histogram>,
    pub queue_depth: Gauge,
    pub queue_capacity: Gauge,
    pub open_incidents: Gauge,
    pub open_alerts: Gauge,
    pub due_items_run: Family<Labels, Counter>,
    pub due_items_failed: Family<Labels, Counter>,
    pub due_leases_lost: Family<Labels, Counter>,
    pub due_item_lag: Family<Labels, Histogram, fn() -> Histogram>,
    /// `tocsin_config_info{sha256="..."} 1`: the hash of the config file in force.
    pub config_info: Family<Labels, Gauge>,
    pub config_loaded_at: Gauge<f64, AtomicU64>,
    pub config_reloads: Family<Labels, Counter>,
    pub http_connections: Gauge,
    pub http_connections_closed: Family<Labels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tocsin");
        let events_accepted = Family::<Labels, Counter>::default();
        registry.register(
            "events_accepted",
            "Events committed to the store, by integration",
            events_accepted.clone(),
        );
        let events_rejected = Family::<Labels, Counter>::default();
        registry.register(
            "events_rejected",
            "Requests to ingestion endpoints that were refused, by integration and reason",
            events_rejected.clone(),
        );
        let alerts_opened = Counter::default();
        registry.register("alerts_opened", "Alerts opened", alerts_opened.clone());
        let incidents_opened = Counter::default();
        registry.register(
            "incidents_opened",
            "Incidents opened",
            incidents_opened.clone(),
        );
        let ingest_batches = Counter::default();
        registry.register(
            "ingest_batches",
            "Group commits of the ingest writer",
            ingest_batches.clone(),
        );
        let ingest_batch_events = Histogram::new(exponential_buckets(1.0, 2.0, 17));
        registry.register(
            "ingest_batch_events",
            "Events per group commit",
            ingest_batch_events.clone(),
        );
        let store_latency =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        registry.register(
            "store_latency_seconds",
            "Time spent in store calls, by operation",
            store_latency.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "ingest_queue_depth",
            "Events waiting for the ingest writer",
            queue_depth.clone(),
        );
        let queue_capacity = Gauge::default();
        registry.register(
            "ingest_queue_capacity",
            "Events the ingest queue holds before answering 429",
            queue_capacity.clone(),
        );
        let open_incidents = Gauge::default();
        registry.register(
            "open_incidents",
            "Incidents not yet resolved",
            open_incidents.clone(),
        );
        let open_alerts = Gauge::default();
        registry.register(
            "open_alerts",
            "Alerts not yet resolved",
            open_alerts.clone(),
        );
        let due_items_run = Family::<Labels, Counter>::default();
        registry.register(
            "due_items_run",
            "Due-work items whose handler succeeded, by kind",
            due_items_run.clone(),
        );
        let due_items_failed = Family::<Labels, Counter>::default();
        registry.register(
            "due_items_failed",
            "Due-work items whose handler failed (retried later or parked), by kind",
            due_items_failed.clone(),
        );
        let due_leases_lost = Family::<Labels, Counter>::default();
        registry.register(
            "due_leases_lost",
            "Due-work items whose lease ended and was taken over before this process settled them, by kind",
            due_leases_lost.clone(),
        );
        let due_item_lag =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(lag_histogram);
        registry.register(
            "due_item_lag_seconds",
            "How long after its due time a due-work item started to run, by kind",
            due_item_lag.clone(),
        );
        let config_info = Family::<Labels, Gauge>::default();
        registry.register(
            "config_info",
            "The config in force, by SHA-256 of its file (absent without a file)",
            config_info.clone(),
        );
        let config_loaded_at = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "config_loaded_timestamp_seconds",
            "When the config in force was loaded, as a Unix time",
            config_loaded_at.clone(),
        );
        let config_reloads = Family::<Labels, Counter>::default();
        registry.register(
            "config_reloads",
            "Config reloads, by result (success, failure)",
            config_reloads.clone(),
        );
        let http_connections = Gauge::default();
        registry.register(
            "http_connections",
            "HTTP connections open",
            http_connections.clone(),
        );
        let http_connections_closed = Family::<Labels, Counter>::default();
        registry.register(
            "http_connections_closed",
            "HTTP connections the server closed, by reason (idle, evicted, shutdown)",
            http_connections_closed.clone(),
        );
        Metrics {
            registry,
            events_accepted,
            events_rejected,
            alerts_opened,
            incidents_opened,
            ingest_batches,
            ingest_batch_events,
            store_latency,
            queue_depth,
            queue_capacity,
            open_incidents,
            open_alerts,
            due_items_run,
            due_items_failed,
            due_leases_lost,
            due_item_lag,
            config_info,
            config_loaded_at,
            config_reloads,
            http_connections,
            http_connections_closed,
        }
    }

    /// Counts one due-work item of `kind` in `counter` (one of the `due_*` families).
    pub fn count_due(&self, counter: &Family<Labels, Counter>, kind: &str) {
        counter
            .get_or_create(&vec![("kind".to_owned(), kind.to_owned())])
            .inc();
    }

    /// Records how late (in seconds, never below 0) an item of `kind` started.
    pub fn observe_due_lag(&self, kind: &str, seconds: f64) {
        self.due_item_lag
            .get_or_create(&vec![("kind".to_owned(), kind.to_owned())])
            .observe(seconds.max(0.0));
    }

    /// Records the config now in force: its file's SHA-256 (hex) and when it was loaded.
    pub fn config_loaded(&self, sha256: &str, unix_seconds: f64) {
        self.config_info.clear();
        self.config_info
            .get_or_create(&vec![("sha256".to_owned(), sha256.to_owned())])
            .set(1);
        self.config_loaded_at.set(unix_seconds);
    }

    /// Counts a reload attempt: `success` or `failure`.
    pub fn count_reload(&self, result: &str) {
        self.config_reloads
            .get_or_create(&vec![("result".to_owned(), result.to_owned())])
            .inc();
    }

    /// Counts a connection the server closed: `idle`, `evicted` or `shutdown`.
    pub fn count_connection_closed(&self, reason: &str) {
        self.http_connections_closed
            .get_or_create(&vec![("reason".to_owned(), reason.to_owned())])
            .inc();
    }

    /// Sets the open incident and alert gauges from a count of the store.
    pub fn set_open(&self, counts: tocsin_store::Counts) {
        self.open_incidents.set(counts.open_incidents);
        self.open_alerts.set(counts.open_alerts);
    }

    /// Follows what a committed ingest batch did.
    pub fn record_ingest(&self, report: &tocsin_store::IngestReport) {
        self.alerts_opened.inc_by(report.alerts_opened as u64);
        self.incidents_opened.inc_by(report.incidents_opened as u64);
        self.open_incidents
            .inc_by(report.incidents_opened as i64 - report.incidents_resolved as i64);
        self.open_alerts
            .inc_by(report.alerts_opened as i64 - report.alerts_resolved as i64);
    }

    /// Follows an incident command that resolved an incident which had `open_alerts` alerts
    /// open just before.
    pub fn record_resolved_incident(&self, open_alerts: i64) {
        self.open_incidents.dec();
        self.open_alerts.dec_by(open_alerts.max(0));
    }

    /// Records how long a store call took.
    pub fn observe_store(&self, operation: &str, seconds: f64) {
        self.store_latency
            .get_or_create(&vec![("operation".to_owned(), operation.to_owned())])
            .observe(seconds);
    }

    pub fn count_rejected(&self, integration: &str, reason: &str) {
        self.events_rejected
            .get_or_create(&vec![
                ("integration".to_owned(), integration.to_owned()),
                ("reason".to_owned(), reason.to_owned()),
            ])
            .inc();
    }
}
