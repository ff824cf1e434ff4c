use crate::{IncidentNumber, IncidentState, Priority};

/// Whether a command changed anything. Repeating a command that already took effect is not an
/// error (a second "resolve" is a no-op), and it appends nothing to the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Changed,
    Unchanged,
}

/// A command that the incident's state does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("incident {0} is already resolved; it cannot be acknowledged")]
    AlreadyResolved(IncidentNumber),
}

/// Triggered becomes acknowledged; acknowledged stays; resolved refuses.
pub fn acknowledge_incident(
    number: IncidentNumber,
    state: IncidentState,
) -> Result<Transition, CommandError> {
    match state {
        IncidentState::Triggered => Ok(Transition::Changed),
        IncidentState::Acknowledged => Ok(Transition::Unchanged),
        IncidentState::Resolved => Err(CommandError::AlreadyResolved(number)),
    }
}

/// Any open incident becomes resolved, with all of its open alerts; resolved stays.
pub fn resolve_incident(state: IncidentState) -> Transition {
    match state {
        IncidentState::Triggered | IncidentState::Acknowledged => Transition::Changed,
        IncidentState::Resolved => Transition::Unchanged,
    }
}

/// Priority can be changed in any state (triage continues after resolution).
pub fn set_priority(from: Priority, to: Priority) -> Transition {
    if from == to {
        Transition::Unchanged
    } else {
        Transition::Changed
    }
}
