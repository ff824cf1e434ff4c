//! How statuses combine: a component's from its monitors, incidents and maintenance, and the
//! page's from its components and open incidents. The page, the JSON and the banner all read
//! the page's status from [`Overall::of`], so they never disagree.

use crate::model::{ComponentStatus, Impact, IncidentStatus, MaintenanceStatus, StatusView};

/// What a monitor last said about a service of a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MonitorHealth {
    Up,
    Degraded,
    Down,
    /// Pending (never checked yet) or paused: it says nothing, so it is ignored.
    Unknown,
}

/// The status of a component from what is known about it: worst wins among the inputs; an
/// operator override (when `Some`) replaces the derived status entirely; active maintenance
/// makes an otherwise operational component under_maintenance (a failure during maintenance
/// still shows: worst wins, where under_maintenance ranks below degraded).
///
/// Monitors count together: when every monitor that has an opinion is down the component is in
/// a major outage, when only some are it is a partial one, since part of it still serves.
/// `incident_impacts` are the statuses that published incident updates set on the component.
pub fn derive_component_status(
    monitors: &[MonitorHealth],
    incident_impacts: &[ComponentStatus],
    in_maintenance: bool,
    override_status: Option<ComponentStatus>,
) -> ComponentStatus {
    if let Some(status) = override_status {
        return status;
    }
    let known = monitors
        .iter()
        .filter(|health| **health != MonitorHealth::Unknown)
        .count();
    let down = monitors
        .iter()
        .filter(|health| **health == MonitorHealth::Down)
        .count();
    let degraded = monitors.contains(&MonitorHealth::Degraded);
    let from_monitors = if down > 0 && down == known {
        ComponentStatus::MajorOutage
    } else if down > 0 {
        ComponentStatus::PartialOutage
    } else if degraded {
        ComponentStatus::DegradedPerformance
    } else {
        ComponentStatus::Operational
    };
    let from_incidents = incident_impacts
        .iter()
        .copied()
        .max()
        .unwrap_or(ComponentStatus::Operational);
    let maintenance = if in_maintenance {
        ComponentStatus::UnderMaintenance
    } else {
        ComponentStatus::Operational
    };
    from_monitors.max(from_incidents).max(maintenance)
}

/// Statuspage's page indicator. There is no "maintenance" value: consumers such as the
/// status widget know only these four.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Indicator {
    None,
    Minor,
    Major,
    Critical,
}

impl Indicator {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Indicator::None => "none",
            Indicator::Minor => "minor",
            Indicator::Major => "major",
            Indicator::Critical => "critical",
        }
    }

    fn of_component(status: ComponentStatus) -> Indicator {
        match status {
            ComponentStatus::Operational | ComponentStatus::UnderMaintenance => Indicator::None,
            ComponentStatus::DegradedPerformance => Indicator::Minor,
            ComponentStatus::PartialOutage => Indicator::Major,
            ComponentStatus::MajorOutage => Indicator::Critical,
        }
    }

    fn of_impact(impact: Impact) -> Indicator {
        match impact {
            Impact::None | Impact::Maintenance => Indicator::None,
            Impact::Minor => Indicator::Minor,
            Impact::Major => Indicator::Major,
            Impact::Critical => Indicator::Critical,
        }
    }
}

/// The page's status as a whole, in the words of the JSON and of the banner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Overall {
    pub(crate) indicator: Indicator,
    /// Statuspage's `status.description`.
    pub(crate) description: &'static str,
    /// The banner's text, which says the same in the page's sentence case.
    pub(crate) banner: &'static str,
    /// The banner's CSS class, so its colour follows the text.
    pub(crate) tone: &'static str,
}

impl Overall {
    /// The worst component decides, raised by the impact of any open incident (an incident can
    /// be declared before any component is marked); maintenance is named only when nothing
    /// worse is going on.
    pub(crate) fn of(view: &StatusView) -> Overall {
        let worst_component = view
            .components
            .iter()
            .map(|component| component.status)
            .max()
            .unwrap_or(ComponentStatus::Operational);
        let from_incidents = view
            .incidents
            .iter()
            .filter(|incident| incident.status.is_open())
            .map(|incident| Indicator::of_impact(incident.impact))
            .max()
            .unwrap_or(Indicator::None);
        let indicator = Indicator::of_component(worst_component).max(from_incidents);
        let in_maintenance = worst_component == ComponentStatus::UnderMaintenance
            || view.maintenances.iter().any(|maintenance| {
                matches!(
                    maintenance.status,
                    MaintenanceStatus::InProgress | MaintenanceStatus::Verifying
                )
            });
        let (description, banner, tone) = match indicator {
            Indicator::None if in_maintenance => {
                ("Service Under Maintenance", "Under maintenance", "maint")
            }
            Indicator::None => ("All Systems Operational", "All systems operational", "ok"),
            Indicator::Minor => ("Minor Service Outage", "Degraded performance", "minor"),
            Indicator::Major => ("Partial System Outage", "Partial outage", "major"),
            Indicator::Critical => ("Major System Outage", "Major outage", "crit"),
        };
        Overall {
            indicator,
            description,
            banner,
            tone,
        }
    }
}

/// The CSS class that colours a component status's label and icon.
pub(crate) fn component_tone(status: ComponentStatus) -> &'static str {
    match status {
        ComponentStatus::Operational => "ok",
        ComponentStatus::UnderMaintenance => "maint",
        ComponentStatus::DegradedPerformance => "minor",
        ComponentStatus::PartialOutage => "major",
        ComponentStatus::MajorOutage => "crit",
    }
}

/// The CSS class for an incident's impact.
pub(crate) fn impact_tone(impact: Impact) -> &'static str {
    match impact {
        Impact::None => "ok",
        Impact::Maintenance => "maint",
        Impact::Minor => "minor",
        Impact::Major => "major",
        Impact::Critical => "crit",
    }
}

/// How the page names an update's status: an incident status's label, or the name as stored
/// when it is not one.
pub(crate) fn update_status_label(status: &str) -> &str {
    match IncidentStatus::parse(status) {
        Some(parsed) => parsed.label(),
        None => status,
    }
}

/// How the page names an impact.
pub(crate) fn impact_label(impact: Impact) -> &'static str {
    match impact {
        Impact::None => "No impact",
        Impact::Maintenance => "Maintenance",
        Impact::Minor => "Minor impact",
        Impact::Major => "Major impact",
        Impact::Critical => "Critical impact",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture;
    use ComponentStatus::*;
    use MonitorHealth::*;

    #[test]
    fn no_input_is_operational() {
        assert_eq!(derive_component_status(&[], &[], false, None), Operational);
        assert_eq!(
            derive_component_status(&[Up, Up], &[], false, None),
            Operational
        );
    }

    #[test]
    fn every_monitor_down_is_a_major_outage_and_some_a_partial_one() {
        assert_eq!(
            derive_component_status(&[Down], &[], false, None),
            MajorOutage
        );
        assert_eq!(
            derive_component_status(&[Down, Down], &[], false, None),
            MajorOutage
        );
        assert_eq!(
            derive_component_status(&[Down, Up], &[], false, None),
            PartialOutage
        );
        assert_eq!(
            derive_component_status(&[Down, Degraded], &[], false, None),
            PartialOutage
        );
    }

    #[test]
    fn degraded_monitor_degrades_the_component() {
        assert_eq!(
            derive_component_status(&[Up, Degraded], &[], false, None),
            DegradedPerformance
        );
    }

    #[test]
    fn unknown_monitors_are_ignored() {
        assert_eq!(
            derive_component_status(&[Unknown], &[], false, None),
            Operational
        );
        assert_eq!(
            derive_component_status(&[Down, Unknown], &[], false, None),
            MajorOutage
        );
        assert_eq!(
            derive_component_status(&[Unknown, Degraded], &[], false, None),
            DegradedPerformance
        );
    }

    #[test]
    fn worst_wins_between_monitors_and_incidents() {
        assert_eq!(
            derive_component_status(&[Up], &[PartialOutage], false, None),
            PartialOutage
        );
        assert_eq!(
            derive_component_status(&[Down], &[DegradedPerformance], false, None),
            MajorOutage
        );
        assert_eq!(
            derive_component_status(
                &[],
                &[DegradedPerformance, MajorOutage, Operational],
                false,
                None
            ),
            MajorOutage
        );
    }

    #[test]
    fn maintenance_marks_only_an_otherwise_operational_component() {
        assert_eq!(
            derive_component_status(&[Up], &[], true, None),
            UnderMaintenance
        );
        assert_eq!(
            derive_component_status(&[Degraded], &[], true, None),
            DegradedPerformance
        );
        assert_eq!(
            derive_component_status(&[Down, Up], &[], true, None),
            PartialOutage
        );
        assert_eq!(
            derive_component_status(&[], &[MajorOutage], true, None),
            MajorOutage
        );
    }

    #[test]
    fn override_replaces_everything() {
        assert_eq!(
            derive_component_status(&[Down], &[MajorOutage], true, Some(Operational)),
            Operational
        );
        assert_eq!(
            derive_component_status(&[Up], &[], false, Some(DegradedPerformance)),
            DegradedPerformance
        );
        assert_eq!(
            derive_component_status(&[Up], &[], true, Some(MajorOutage)),
            MajorOutage
        );
    }

    fn overall_with(statuses: &[ComponentStatus]) -> Overall {
        let mut view = fixture::view(statuses.len(), 3, 0, 0);
        for (component, status) in view.components.iter_mut().zip(statuses) {
            component.status = *status;
        }
        view.maintenances.clear();
        Overall::of(&view)
    }

    #[test]
    fn indicator_follows_the_worst_component() {
        let cases = [
            (
                vec![Operational, Operational],
                "none",
                "All Systems Operational",
            ),
            (
                vec![Operational, UnderMaintenance],
                "none",
                "Service Under Maintenance",
            ),
            (
                vec![UnderMaintenance, DegradedPerformance],
                "minor",
                "Minor Service Outage",
            ),
            (
                vec![PartialOutage, DegradedPerformance],
                "major",
                "Partial System Outage",
            ),
            (
                vec![PartialOutage, MajorOutage],
                "critical",
                "Major System Outage",
            ),
        ];
        for (statuses, indicator, description) in cases {
            let overall = overall_with(&statuses);
            assert_eq!(overall.indicator.as_str(), indicator, "{statuses:?}");
            assert_eq!(overall.description, description, "{statuses:?}");
        }
        assert_eq!(
            overall_with(&[Operational]).banner,
            "All systems operational"
        );
        assert_eq!(
            overall_with(&[UnderMaintenance]).banner,
            "Under maintenance"
        );
        assert_eq!(
            overall_with(&[DegradedPerformance]).banner,
            "Degraded performance"
        );
        assert_eq!(overall_with(&[PartialOutage]).banner, "Partial outage");
        assert_eq!(overall_with(&[MajorOutage]).banner, "Major outage");
    }

    #[test]
    fn open_incidents_raise_the_indicator_and_resolved_ones_do_not() {
        let mut view = fixture::view(2, 3, 1, 1);
        view.maintenances.clear();
        for component in &mut view.components {
            component.status = DegradedPerformance;
        }
        view.incidents[0].status = IncidentStatus::Identified;
        view.incidents[0].impact = Impact::Critical;
        assert_eq!(Overall::of(&view).indicator, Indicator::Critical);
        assert_eq!(Overall::of(&view).description, "Major System Outage");

        view.incidents[0].impact = Impact::Maintenance;
        assert_eq!(Overall::of(&view).indicator, Indicator::Minor);

        view.incidents[0].impact = Impact::Major;
        view.incidents[0].status = IncidentStatus::Resolved;
        assert_eq!(Overall::of(&view).indicator, Indicator::Minor);
    }

    #[test]
    fn active_maintenance_window_is_named_when_nothing_is_worse() {
        let mut view = fixture::view(2, 3, 0, 0);
        for component in &mut view.components {
            component.status = Operational;
        }
        for maintenance in &mut view.maintenances {
            maintenance.status = MaintenanceStatus::Scheduled;
        }
        view.maintenances[0].status = MaintenanceStatus::InProgress;
        assert_eq!(Overall::of(&view).description, "Service Under Maintenance");
        assert_eq!(Overall::of(&view).indicator, Indicator::None);
        view.maintenances[0].status = MaintenanceStatus::Scheduled;
        assert_eq!(Overall::of(&view).description, "All Systems Operational");
    }
}
