//! What the status page shows, as plain data: the input of [`crate::render`].
//!
//! Everything here is public by construction. The builder that fills it (in the server) copies
//! only what a reader may see: component names and statuses, uptime counts, and the incidents,
//! updates and maintenance windows an operator published. Alert payloads, notes and people's
//! names have no field to go into.

use jiff::civil::Date;
use tocsin_core::Timestamp;

/// The page as a whole.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusView {
    pub page: PageInfo,
    /// When the data below was read from the store. When the store cannot be read, the server
    /// keeps serving the last snapshot, and the page says how old it is.
    pub data_as_of: Timestamp,
    /// Components in the config's order (groups are formed from `group`, in order of first
    /// appearance).
    pub components: Vec<ComponentView>,
    /// Published incidents that are open, or resolved within `history_days`; newest first.
    pub incidents: Vec<IncidentView>,
    /// Maintenance windows that have not ended, or ended within `history_days`; by start.
    pub maintenances: Vec<MaintenanceView>,
}

/// `[status_page]` as the page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct PageInfo {
    /// An opaque, stable id (Statuspage's `page.id`).
    pub id: String,
    pub title: String,
    /// Where readers reach the page, without a trailing slash: the links in the feed and the
    /// JSON are under it.
    pub url: String,
    /// An image shown beside the title, when configured.
    pub logo_url: Option<String>,
    /// Links shown in the header (label, URL), in order.
    pub links: Vec<(String, String)>,
    /// Days of uptime bars and history. 1–365.
    pub history_days: u32,
    /// The time zone the page shows days and times in (an IANA name; `UTC` by default).
    pub time_zone: String,
}

/// A component's status, worst last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ComponentStatus {
    Operational,
    UnderMaintenance,
    DegradedPerformance,
    PartialOutage,
    MajorOutage,
}

impl ComponentStatus {
    /// Statuspage's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentStatus::Operational => "operational",
            ComponentStatus::UnderMaintenance => "under_maintenance",
            ComponentStatus::DegradedPerformance => "degraded_performance",
            ComponentStatus::PartialOutage => "partial_outage",
            ComponentStatus::MajorOutage => "major_outage",
        }
    }

    pub fn parse(text: &str) -> Option<ComponentStatus> {
        Some(match text {
            "operational" => ComponentStatus::Operational,
            "under_maintenance" => ComponentStatus::UnderMaintenance,
            "degraded_performance" => ComponentStatus::DegradedPerformance,
            "partial_outage" => ComponentStatus::PartialOutage,
            "major_outage" => ComponentStatus::MajorOutage,
            _ => return None,
        })
    }

    /// What a reader is told, e.g. "Degraded performance".
    pub fn label(self) -> &'static str {
        match self {
            ComponentStatus::Operational => "Operational",
            ComponentStatus::UnderMaintenance => "Under maintenance",
            ComponentStatus::DegradedPerformance => "Degraded performance",
            ComponentStatus::PartialOutage => "Partial outage",
            ComponentStatus::MajorOutage => "Major outage",
        }
    }
}

/// One component on the page.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentView {
    /// The config's id (Statuspage's `id` and the `code` of affected components).
    pub id: String,
    pub name: String,
    pub group: Option<String>,
    pub description: Option<String>,
    pub status: ComponentStatus,
    /// When its status last changed, as far as the server knows (its start time otherwise).
    pub updated_at: Timestamp,
    /// One entry per day of `history_days`, oldest first, ending today (in the page's zone).
    pub days: Vec<DayUptime>,
}

/// A component's day, from the daily rollups of the monitors of its services.
#[derive(Debug, Clone, PartialEq)]
pub struct DayUptime {
    pub day: Date,
    /// Checks on the day, by outcome, summed over the component's monitors. All zero when no
    /// monitor ran that day (the bar says "no data").
    pub up: i64,
    pub degraded: i64,
    pub down: i64,
    /// Published incidents that affected the component on that day: (id, name).
    pub incidents: Vec<(String, String)>,
}

impl DayUptime {
    /// `(up + degraded) / (up + degraded + down)` in percent, `None` without checks: the
    /// formula the page states.
    pub fn percent(&self) -> Option<f64> {
        let checks = self.up + self.degraded + self.down;
        (checks > 0).then(|| (self.up + self.degraded) as f64 * 100.0 / checks as f64)
    }
}

/// Statuspage's incident statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IncidentStatus {
    Investigating,
    Identified,
    Monitoring,
    Resolved,
    Postmortem,
}

impl IncidentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentStatus::Investigating => "investigating",
            IncidentStatus::Identified => "identified",
            IncidentStatus::Monitoring => "monitoring",
            IncidentStatus::Resolved => "resolved",
            IncidentStatus::Postmortem => "postmortem",
        }
    }

    pub fn parse(text: &str) -> Option<IncidentStatus> {
        Some(match text {
            "investigating" => IncidentStatus::Investigating,
            "identified" => IncidentStatus::Identified,
            "monitoring" => IncidentStatus::Monitoring,
            "resolved" => IncidentStatus::Resolved,
            "postmortem" => IncidentStatus::Postmortem,
            _ => return None,
        })
    }

    pub fn label(self) -> &'static str {
        match self {
            IncidentStatus::Investigating => "Investigating",
            IncidentStatus::Identified => "Identified",
            IncidentStatus::Monitoring => "Monitoring",
            IncidentStatus::Resolved => "Resolved",
            IncidentStatus::Postmortem => "Postmortem",
        }
    }

    /// Resolved and postmortem incidents are over.
    pub fn is_open(self) -> bool {
        !matches!(self, IncidentStatus::Resolved | IncidentStatus::Postmortem)
    }
}

/// Statuspage's impact levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Impact {
    None,
    Maintenance,
    Minor,
    Major,
    Critical,
}

impl Impact {
    pub fn as_str(self) -> &'static str {
        match self {
            Impact::None => "none",
            Impact::Maintenance => "maintenance",
            Impact::Minor => "minor",
            Impact::Major => "major",
            Impact::Critical => "critical",
        }
    }

    pub fn parse(text: &str) -> Option<Impact> {
        Some(match text {
            "none" => Impact::None,
            "maintenance" => Impact::Maintenance,
            "minor" => Impact::Minor,
            "major" => Impact::Major,
            "critical" => Impact::Critical,
            _ => return None,
        })
    }
}

/// A published incident.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentView {
    /// Opaque and stable (Statuspage's incident `id`; the page's URL is `/status/incidents/<id>`).
    pub id: String,
    pub name: String,
    pub status: IncidentStatus,
    pub impact: Impact,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub started_at: Timestamp,
    pub monitoring_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    /// Newest first; at least one (publishing posts the first).
    pub updates: Vec<UpdateView>,
    /// Ids of the components any update affected, in the config's order.
    pub components: Vec<String>,
}

/// One public update of an incident or a maintenance window.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateView {
    pub id: String,
    /// For an incident, an [`IncidentStatus`] name; for maintenance, a [`MaintenanceStatus`]
    /// name.
    pub status: String,
    pub body: String,
    pub created_at: Timestamp,
    /// Components whose status this update set, with the status each had before.
    pub affected: Vec<AffectedComponent>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AffectedComponent {
    pub id: String,
    pub name: String,
    pub old_status: ComponentStatus,
    pub new_status: ComponentStatus,
}

/// Statuspage's scheduled-maintenance statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MaintenanceStatus {
    Scheduled,
    InProgress,
    Verifying,
    Completed,
}

impl MaintenanceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MaintenanceStatus::Scheduled => "scheduled",
            MaintenanceStatus::InProgress => "in_progress",
            MaintenanceStatus::Verifying => "verifying",
            MaintenanceStatus::Completed => "completed",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            MaintenanceStatus::Scheduled => "Scheduled",
            MaintenanceStatus::InProgress => "In progress",
            MaintenanceStatus::Verifying => "Verifying",
            MaintenanceStatus::Completed => "Completed",
        }
    }
}

/// A maintenance window.
#[derive(Debug, Clone, PartialEq)]
pub struct MaintenanceView {
    pub id: String,
    pub name: String,
    /// What readers are told about it.
    pub body: String,
    pub status: MaintenanceStatus,
    pub scheduled_for: Timestamp,
    pub scheduled_until: Timestamp,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Ids of the components it takes down for maintenance, in the config's order.
    pub components: Vec<String>,
}
