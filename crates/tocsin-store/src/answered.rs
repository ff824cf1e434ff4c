//! Incidents that events of an ingest batch acknowledged or resolved, and what that stops.
//!
//! An acknowledgement or resolution sent as an event (PagerDuty `acknowledge` / `resolve`,
//! Alertmanager's resolved alerts) stops paging exactly as the incident commands do
//! (`tocsin_core::command`), in the batch's transaction: the incident's escalation step is
//! removed, and every page of it still queued or waiting for a retry is cancelled. An
//! acknowledgement of an incident whose service has an acknowledgement timeout starts that
//! timer (due work of kind [`ACK_TIMEOUT_KIND`]); a resolution removes it.

use std::collections::HashSet;

use tocsin_core::{
    BatchPlan, IncidentNumber, IncidentRef, IncidentState, TimelineData, Timestamp,
    ACK_TIMEOUT_KIND, ESCALATION_STEP_KIND,
};

use crate::sql::{Arg, Connection};
use crate::updates::ServicePolicy;
use crate::{AssignedIds, StoreError};

/// One incident a batch acknowledged or resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    pub incident: IncidentNumber,
    /// When it was acknowledged or resolved.
    pub at: Timestamp,
    pub answer: Answer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Acknowledged (and still so at the end of the batch); `ack_timeout_due` when the
    /// service has an acknowledgement timeout.
    Acknowledged {
        ack_timeout_due: Option<Timestamp>,
    },
    Resolved,
}

/// The incidents `plan` acknowledged or resolved, in the state they end the batch in, once
/// its new incidents have numbers.
pub fn batch_answers(
    plan: &BatchPlan,
    ids: &AssignedIds,
    policy: &dyn ServicePolicy,
) -> Result<Vec<Answered>, StoreError> {
    let answered: HashSet<IncidentRef> = plan
        .timeline
        .iter()
        .filter(|record| {
            matches!(
                record.data,
                TimelineData::IncidentAcknowledged { .. } | TimelineData::IncidentResolved { .. }
            )
        })
        .map(|record| record.incident)
        .collect();
    if answered.is_empty() {
        return Ok(Vec::new());
    }
    let service_of = crate::updates::services_of(plan);
    let mut answers = Vec::new();
    for record in &plan.incidents {
        if !answered.contains(&record.incident) {
            continue;
        }
        let incident = IncidentNumber(ids.incident(record.incident)?);
        let missing = |what: &str| {
            StoreError::Corrupt(format!(
                "incident {incident} is {} without a time {what}",
                record.state.as_str()
            ))
        };
        match record.state {
            IncidentState::Acknowledged => {
                let at = record
                    .acknowledged_at
                    .ok_or_else(|| missing("acknowledged"))?;
                let ack_timeout_due = service_of
                    .get(&record.incident)
                    .and_then(|service| policy.ack_timeout(service))
                    .and_then(|timeout| at.checked_add(timeout).ok());
                answers.push(Answered {
                    incident,
                    at,
                    answer: Answer::Acknowledged { ack_timeout_due },
                });
            }
            IncidentState::Resolved => {
                let at = record.resolved_at.ok_or_else(|| missing("resolved"))?;
                answers.push(Answered {
                    incident,
                    at,
                    answer: Answer::Resolved,
                });
            }
            IncidentState::Triggered => {}
        }
    }
    Ok(answers)
}

/// Writes what `answers` stop and start (see the module documentation). The caller commits.
pub async fn apply<C: Connection>(conn: &mut C, answers: &[Answered]) -> Result<(), StoreError> {
    for answered in answers {
        let key = answered.incident.0.to_string();
        conn.execute(
            "DELETE FROM due_work WHERE kind = $1 AND key = $2",
            &[Arg::Text(ESCALATION_STEP_KIND), Arg::Text(&key)],
        )
        .await?;
        crate::outbox::cancel(conn, answered.incident, answered.at).await?;
        match answered.answer {
            Answer::Acknowledged {
                ack_timeout_due: Some(due_at),
            } => {
                let payload = crate::due::ack_timeout_payload(answered.at);
                // Replacing the incident's timer: a new revision, so a runner holding the old
                // one does not overwrite it.
                conn.execute(
                    "INSERT INTO due_work (kind, key, payload, due_at, created_at)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (kind, key) DO UPDATE SET payload = excluded.payload,
                         due_at = excluded.due_at, revision = due_work.revision + 1,
                         parked_at = NULL, attempts = 0",
                    &[
                        Arg::Text(ACK_TIMEOUT_KIND),
                        Arg::Text(&key),
                        Arg::Text(&payload),
                        Arg::Integer(due_at.as_microsecond()),
                        Arg::Integer(answered.at.as_microsecond()),
                    ],
                )
                .await?;
            }
            Answer::Acknowledged {
                ack_timeout_due: None,
            } => {}
            Answer::Resolved => {
                conn.execute(
                    "DELETE FROM due_work WHERE kind = $1 AND key = $2",
                    &[Arg::Text(ACK_TIMEOUT_KIND), Arg::Text(&key)],
                )
                .await?;
            }
        }
    }
    Ok(())
}
