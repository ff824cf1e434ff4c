use std::collections::HashMap;

use tocsin_core::{AlertRef, IncidentRef};

use crate::StoreError;

/// The numbers and ids a store gave to the incidents and alerts a `tocsin_core::BatchPlan`
/// creates, so the rest of the plan (alerts of new incidents, timeline entries, events) can refer
/// to them.
#[derive(Debug, Default)]
pub struct AssignedIds {
    incidents: HashMap<usize, i64>,
    alerts: HashMap<usize, i64>,
}

impl AssignedIds {
    /// Records the number of the plan's `n`-th new incident.
    pub fn assign_incident(&mut self, n: usize, number: i64) {
        self.incidents.insert(n, number);
    }

    /// Records the id of the plan's `n`-th new alert.
    pub fn assign_alert(&mut self, n: usize, id: i64) {
        self.alerts.insert(n, id);
    }

    /// The stored number of an incident of the plan.
    pub fn incident(&self, incident: IncidentRef) -> Result<i64, StoreError> {
        match incident {
            IncidentRef::Existing(number) => Ok(number.0),
            IncidentRef::New(n) => self
                .incidents
                .get(&n)
                .copied()
                .ok_or_else(|| StoreError::Corrupt(format!("unknown new incident {n}"))),
        }
    }

    /// The stored id of an alert of the plan, if the event has one.
    pub fn alert(&self, alert: Option<AlertRef>) -> Option<i64> {
        match alert? {
            AlertRef::Existing(id) => Some(id.0),
            AlertRef::New(n) => self.alerts.get(&n).copied(),
        }
    }
}
