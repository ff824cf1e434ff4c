//! Tocsin's domain model and rules.
//!
//! Everything here is a pure function of its inputs: no IO, no clock reads (`now` is always an
//! argument), no wire formats. The store crates execute what these functions decide inside one
//! transaction, so the rules for folding events into alerts and incidents live in one place.

mod command;
mod cron;
mod escalation;
mod event;
mod fold;
pub mod heartbeat;
mod ids;
mod oncall;
mod schedule;
mod severity;
mod state;
mod timeline;

pub use command::{
    acknowledge_incident, plan_command, resolve_incident, set_priority, AlertSnapshot, AlertUpdate,
    Command, CommandError, CommandPlan, CommandSnapshot, DueWorkChange, IncidentSnapshot,
    IncidentUpdate, OutboxMessage, Page, Transition,
};
pub use cron::{Cron, CronError};
pub use escalation::{
    EscalationLevel, EscalationPolicy, EscalationStep, Target, ACK_TIMEOUT_KIND,
    ESCALATION_STEP_KIND,
};
pub use event::{ChangeEvent, Event, EventAction, EventLink, Integration};
pub use fold::{
    fold_batch, AlertRecord, AlertRef, BatchPlan, EventOutcome, EventRecord, IncidentRecord,
    IncidentRef, KeySnapshot, OpenAlert, OpenIncident, ResolvePolicy, UnloggedFolds,
    FOLD_LOG_INTERVAL,
};
pub use ids::{AlertId, DedupKey, IdError, IncidentNumber, ServiceId};
pub use jiff::Timestamp;
pub use oncall::{Gap, OnCall, OnCallSource, Override, Roster, Segment, Shift, MAX_CHANGE_POINTS};
pub use schedule::{first_instant_at_or_after, Layer, Restriction, Schedule};
pub use severity::{Priority, Severity, UnknownValue};
pub use state::{AlertState, IncidentState};
pub use timeline::{Actor, IncidentTimes, TimelineData, TimelineKind, TimelineRecord};
