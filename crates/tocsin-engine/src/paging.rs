//! Escalation: who is paged when, as due work.
//!
//! Ingest schedules an incident's first step (kind [`ESCALATION_STEP_KIND`], key the incident
//! number, payload `{"step":0}`) in the transaction that opens it, due at once. The
//! [`EscalationHandler`] runs a due step: while the incident is still triggered, it resolves
//! the step's level of the service's policy to people at that moment (users, whoever is on
//! call for a schedule, a team's members), queues one notification per person and contact
//! method of their notify rules, appends the timeline, and points the item at the next step
//! — in one transaction that applies only while the item still names this step, so a step
//! whose runner died and that runs again pages nobody twice. A level that resolves to nobody
//! is skipped (on the timeline) and the next one is due at once. After the last step of the
//! last repeat the item waits (far in the future) so that a manual escalation can still page
//! the last level again. Acknowledging or resolving deletes the item.
//!
//! Dependencies: when the first step of an incident comes due while a service its service
//! depends on (`depends_on`, directly or through others) has an open incident, nobody is paged:
//! the incident is noted on that incident (the one furthest up the chain, the root cause) and
//! on its own timeline, and the step looks again every [`HOLD_RECHECK`]. It pages once no such
//! incident is open, if it is still triggered; resolving it (a recovery) is never held.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jiff::tz::TimeZone;
use tocsin_core::{
    EscalationPolicy, IncidentNumber, IncidentState, Page, Schedule, ServiceId, Target,
    TimelineData, Timestamp, ESCALATION_STEP_KIND,
};
use tocsin_store::due::{ClaimedDueItem, DueKind};
use tocsin_store::outbox::{
    EscalationStepOutcome, EscalationStepWrite, NewNotification, Recipient,
};
use tocsin_store::StoreError;

use crate::due::{DueError, DueHandler, DueOutcome};
use crate::Engine;

/// The due-work kind of escalation steps.
pub const ESCALATION_STEP: DueKind = DueKind::from_static(ESCALATION_STEP_KIND);

/// How long an escalation whose ladder has run out waits for a manual escalation.
const EXHAUSTED_WAIT: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The people and policies escalation reads, as declared in the config.
#[derive(Debug, Clone, Default)]
pub struct PagingDirectory {
    pub users: HashMap<String, PagedUser>,
    /// Team id to member user ids.
    pub teams: HashMap<String, Vec<String>>,
    pub schedules: HashMap<String, ScheduleEntry>,
    pub policies: HashMap<String, EscalationPolicy>,
    /// Service id to the id of its escalation policy.
    pub service_policies: HashMap<ServiceId, String>,
    /// Service id to the services it depends on (`depends_on`; the config has no cycles).
    pub service_depends_on: HashMap<ServiceId, Vec<ServiceId>>,
    /// Who each schedule has on call at the step's instant with the stored overrides applied,
    /// when the step looked it up; a schedule missing here is read from its layers alone.
    pub on_call_now: HashMap<String, Option<String>>,
    /// User id to every contact method of theirs, in config order (a test page tries each).
    pub contacts: HashMap<String, Vec<ContactRef>>,
    /// Service id to the id of the team that owns it (`team` of a service).
    pub service_teams: HashMap<ServiceId, String>,
}

/// A contact method of a user: its id and how it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactRef {
    pub id: String,
    /// `email`, `webhook`, `ntfy`, `slack`, `console`.
    pub method: String,
}

/// A schedule with its time zone resolved.
#[derive(Debug, Clone)]
pub struct ScheduleEntry {
    pub schedule: Schedule,
    pub time_zone: TimeZone,
}

/// A user as paging needs them.
#[derive(Debug, Clone)]
pub struct PagedUser {
    pub id: String,
    pub name: String,
    /// Bots are never paged (the config refuses them as targets; this is the second guard).
    pub bot: bool,
    /// How to reach them once paged, in order.
    pub notify: Vec<NotifyStep>,
}

/// "`after_minutes` after being paged, use contact method `contact` (sent by `method`)".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyStep {
    pub after_minutes: u32,
    pub contact: String,
    /// `email`, `webhook`, `ntfy`, `console`.
    pub method: String,
}

impl PagingDirectory {
    /// The escalation policy of a service, if it has one.
    pub fn policy_for(&self, service: &ServiceId) -> Option<&EscalationPolicy> {
        self.policies.get(self.service_policies.get(service)?)
    }

    /// The users a target stands for at `now`, pageable ones only, in a stable order.
    pub fn resolve(&self, target: &Target, now: Timestamp) -> Vec<String> {
        let ids: Vec<String> = match target {
            Target::User(user) => vec![user.clone()],
            Target::Team(team) => self.teams.get(team).cloned().unwrap_or_default(),
            Target::Schedule(schedule) => on_call(self, schedule, now).into_iter().collect(),
        };
        ids.into_iter()
            .filter(|id| self.users.get(id).is_some_and(|user| !user.bot))
            .collect()
    }
}

/// Who is on call for `schedule` at `now`: the one place escalation asks it.
pub fn on_call(directory: &PagingDirectory, schedule: &str, now: Timestamp) -> Option<String> {
    if let Some(answer) = directory.on_call_now.get(schedule) {
        return answer.clone();
    }
    let entry = directory.schedules.get(schedule)?;
    entry
        .schedule
        .on_call_at(&entry.time_zone, now)
        .map(str::to_owned)
}

/// Why a reassignment was refused before anything was stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReassignRefusal {
    #[error("user `{0}` is not declared in the config")]
    UnknownUser(String),
    #[error("user `{0}` is a bot; a bot is never paged")]
    Bot(String),
    #[error("user `{0}` has no notify rules; there is no way to page them")]
    Unreachable(String),
}

/// The pages that hand incident `number` to `user` at `now`: one per notify rule, each due
/// its `after_minutes` after `now`, under keys of their own (a second reassignment to the
/// same user pages them again).
pub fn reassignment_pages(
    directory: &PagingDirectory,
    user: &str,
    number: IncidentNumber,
    now: Timestamp,
) -> Result<Vec<Page>, ReassignRefusal> {
    let paged = directory
        .users
        .get(user)
        .ok_or_else(|| ReassignRefusal::UnknownUser(user.to_owned()))?;
    if paged.bot {
        return Err(ReassignRefusal::Bot(user.to_owned()));
    }
    if paged.notify.is_empty() {
        return Err(ReassignRefusal::Unreachable(user.to_owned()));
    }
    let stamp = now.as_microsecond();
    Ok(paged
        .notify
        .iter()
        .enumerate()
        .map(|(rule_index, rule)| Page {
            user: user.to_owned(),
            contact: rule.contact.clone(),
            method: rule.method.clone(),
            not_before: now
                .checked_add(Duration::from_secs(u64::from(rule.after_minutes) * 60))
                .unwrap_or(now),
            idempotency_key: format!(
                "reassign-{number}-{stamp}-{user}-{rule_index}-{contact}",
                number = number.0,
                contact = rule.contact
            ),
        })
        .collect())
}

/// What a step decides, before it is written.
#[derive(Debug, Clone, PartialEq)]
pub struct StepDecision {
    pub notifications: Vec<NewNotification>,
    pub timeline: Vec<TimelineData>,
    pub next_step: usize,
    pub next_due_at: Timestamp,
}

/// Decides step `step` (an index into `policy.steps()`; past the end: the last step again) of
/// incident `number`'s escalation at `now`. `round` tells apart the pages of one step that a
/// manual escalation repeats.
pub fn decide_step(
    directory: &PagingDirectory,
    policy: &EscalationPolicy,
    number: IncidentNumber,
    step: usize,
    round: i64,
    now: Timestamp,
) -> Option<StepDecision> {
    let steps: Vec<_> = policy.steps().collect();
    let last = steps.len().checked_sub(1)?;
    let index = step.min(last);
    let current = steps[index];
    let level = policy.levels.get(current.level)?;
    let mut people = BTreeSet::new();
    let mut ordered = Vec::new();
    for target in &level.targets {
        for user in directory.resolve(target, now) {
            if people.insert(user.clone()) {
                ordered.push(user);
            }
        }
    }
    let level_number = u32::try_from(current.level + 1).unwrap_or(u32::MAX);
    let mut notifications = Vec::new();
    let mut timeline = Vec::new();
    let mut recipients = Vec::new();
    for user in &ordered {
        let Some(paged) = directory.users.get(user) else {
            continue;
        };
        if paged.notify.is_empty() {
            continue;
        }
        recipients.push(user.clone());
        for (rule_index, rule) in paged.notify.iter().enumerate() {
            let not_before = now
                .checked_add(Duration::from_secs(u64::from(rule.after_minutes) * 60))
                .unwrap_or(now);
            notifications.push(NewNotification {
                incident: Some(number),
                recipient: Recipient::User {
                    user: user.clone(),
                    contact: rule.contact.clone(),
                },
                method: rule.method.clone(),
                kind: "page".to_owned(),
                payload: serde_json::json!({
                    "pass": current.pass,
                    "level": level_number,
                }),
                idempotency_key: format!(
                    "page-{number}-{index}-{round}-{user}-{rule_index}-{contact}",
                    number = number.0,
                    contact = rule.contact
                ),
                not_before,
            });
        }
    }
    let skipped = recipients.is_empty();
    if skipped {
        let targets: Vec<String> = level.targets.iter().map(ToString::to_string).collect();
        timeline.push(TimelineData::EscalationSkipped {
            pass: current.pass,
            level: level_number,
            reason: format!(
                "nobody to page: {} resolved to no one with a way to reach them",
                targets.join(", ")
            ),
        });
    } else {
        timeline.push(TimelineData::EscalationNotified {
            pass: current.pass,
            level: level_number,
            recipients,
        });
    }
    let (next_step, next_due_at) = match steps.get(index + 1) {
        Some(next) if index == step => {
            let wait = if skipped {
                0
            } else {
                next.since_minutes.saturating_sub(current.since_minutes)
            };
            (
                index + 1,
                now.checked_add(Duration::from_secs(wait * 60))
                    .unwrap_or(now),
            )
        }
        _ => (
            steps.len(),
            now.checked_add(EXHAUSTED_WAIT).unwrap_or(Timestamp::MAX),
        ),
    };
    Some(StepDecision {
        notifications,
        timeline,
        next_step,
        next_due_at,
    })
}

/// Runs due escalation steps; see the module documentation.
pub struct EscalationHandler {
    engine: Arc<Engine>,
}

impl EscalationHandler {
    pub fn new(engine: Arc<Engine>) -> EscalationHandler {
        EscalationHandler { engine }
    }
}

/// How often an incident held back by a dependency looks whether it should page after all.
pub const HOLD_RECHECK: Duration = Duration::from_secs(5);
/// The start of the note a held incident gets on its own timeline (written once).
const HELD_NOTE: &str = "Not paged: service ";

impl EscalationHandler {
    /// The open (triggered or acknowledged) incident of a service `incident`'s service depends
    /// on, directly or through others; of several, the one furthest up the chain (the root
    /// cause), and of one service's several, the oldest.
    async fn open_ancestor(
        &self,
        incident: &tocsin_store::IncidentRow,
    ) -> Result<Option<tocsin_store::IncidentRow>, DueError> {
        let directory = self.engine.catalog().paging();
        let mut frontier = vec![incident.service.clone()];
        let mut seen = std::collections::HashSet::from([incident.service.clone()]);
        let mut found = None;
        // Breadth first: a later level is further up the chain.
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for service in &frontier {
                for parent in directory
                    .service_depends_on
                    .get(service)
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                {
                    if seen.insert(parent.clone()) {
                        next.push(parent.clone());
                    }
                }
            }
            for parent in &next {
                let filter = tocsin_store::IncidentFilter {
                    states: vec![IncidentState::Triggered, IncidentState::Acknowledged],
                    service: Some(parent.clone()),
                    priority: None,
                };
                let open = self
                    .engine
                    .incidents(&filter, tocsin_store::PageRequest::first(50))
                    .await?;
                // Newest first: the last is the oldest.
                if let Some(oldest) = open
                    .items
                    .into_iter()
                    .rev()
                    .find(|open| open.number != incident.number)
                {
                    found = Some(oldest);
                }
            }
            frontier = next;
        }
        Ok(found)
    }

    /// Notes a held incident on the root cause's incident and on its own timeline, once.
    async fn hold(
        &self,
        incident: &tocsin_store::IncidentRow,
        root: &tocsin_store::IncidentRow,
    ) -> Result<(), DueError> {
        let timeline = self
            .engine
            .timeline(incident.number, tocsin_store::PageRequest::first(500))
            .await?;
        let noted = timeline.items.iter().any(|entry| {
            matches!(&entry.data, TimelineData::NoteAdded { text } if text.starts_with(HELD_NOTE))
        });
        if noted {
            return Ok(());
        }
        tracing::info!(
            incident = %incident.number, service = %incident.service, root = %root.number,
            "incident of a service whose dependency has an open incident; noted there, not paged"
        );
        let actor = tocsin_core::Actor::system();
        let on_root = format!(
            "Service {} depends on {}: its incident #{} ({}) opened while this one is open; it              is not paged separately while this incident is open.",
            incident.service, root.service, incident.number, incident.title
        );
        self.engine
            .command(root.number, &tocsin_core::Command::AddNote(on_root), &actor)
            .await?;
        let on_own = format!(
            "{HELD_NOTE}{} depends on {}, whose incident #{} ({}) is open: this incident is              noted there and pages only if it is still triggered once that one is resolved.",
            incident.service, root.service, root.number, root.title
        );
        self.engine
            .command(
                incident.number,
                &tocsin_core::Command::AddNote(on_own),
                &actor,
            )
            .await?;
        Ok(())
    }
}

fn step_payload(step: usize) -> serde_json::Value {
    serde_json::json!({ "step": step })
}

#[async_trait]
impl DueHandler for EscalationHandler {
    fn kind(&self) -> DueKind {
        ESCALATION_STEP
    }

    async fn run(&self, item: &ClaimedDueItem, now: Timestamp) -> Result<DueOutcome, DueError> {
        let Ok(number) = item.key.as_str().parse::<i64>() else {
            tracing::warn!(key = %item.key, "escalation step with a key that is not an incident number; dropped");
            return Ok(DueOutcome::Done);
        };
        let number = IncidentNumber(number);
        let Some(step) = item
            .payload
            .get("step")
            .and_then(serde_json::Value::as_u64)
            .and_then(|step| usize::try_from(step).ok())
        else {
            tracing::warn!(incident = %number, "escalation step without a step number; dropped");
            return Ok(DueOutcome::Done);
        };
        let store = self.engine.store();
        let incident = match store.incident(number).await {
            Ok(incident) => incident,
            Err(StoreError::NotFound { .. }) => return Ok(DueOutcome::Done),
            Err(error) => return Err(Box::new(error)),
        };
        if incident.state != IncidentState::Triggered {
            return Ok(DueOutcome::Done);
        }
        // Only the first page waits: an incident that paged keeps escalating.
        let held_by = if step == 0 {
            self.open_ancestor(&incident).await?
        } else {
            None
        };
        if let Some(root) = held_by {
            // A service it depends on has an open incident: that one is the root cause and
            // pages; this one is noted there and waits.
            self.hold(&incident, &root).await?;
            return Ok(DueOutcome::RunAgainAt(
                now.checked_add(HOLD_RECHECK).unwrap_or(Timestamp::MAX),
            ));
        }
        let mut directory = (*self.engine.catalog().paging()).clone();
        let Some(policy) = directory.policy_for(&incident.service).cloned() else {
            return Ok(DueOutcome::Done);
        };
        // Overrides (who covers whom) live in the store; without them the layers decide. Only a
        // policy with a schedule target needs them.
        let targets_a_schedule = policy
            .levels
            .iter()
            .flat_map(|level| &level.targets)
            .any(|target| matches!(target, Target::Schedule(_)));
        if targets_a_schedule {
            match self.engine.on_call_at(now, None).await {
                Ok(answers) => {
                    directory.on_call_now = answers
                        .into_iter()
                        .map(|answer| (answer.schedule, answer.user))
                        .collect();
                }
                Err(error) => {
                    tracing::warn!(incident = %number, error = %error, "cannot read the schedules' overrides; escalating on their layers alone");
                }
            }
        }
        let Some(decision) =
            decide_step(&directory, &policy, number, step, item.lease.revision, now)
        else {
            return Ok(DueOutcome::Done);
        };
        let write = EscalationStepWrite {
            incident: number,
            step_payload: item.payload.clone(),
            next_payload: step_payload(decision.next_step),
            next_due_at: decision.next_due_at,
            notifications: decision.notifications,
            timeline: decision.timeline,
            now,
        };
        match store.run_escalation_step(&write).await? {
            EscalationStepOutcome::Written { queued } => {
                tracing::info!(incident = %number, step, queued, "escalation step paged");
                Ok(DueOutcome::RunAgainAt(decision.next_due_at))
            }
            EscalationStepOutcome::NotTriggered => Ok(DueOutcome::Done),
            EscalationStepOutcome::Stale => {
                // An earlier run of this item wrote the step; keep the schedule it left.
                match store.due_item(&ESCALATION_STEP, &item.key).await? {
                    Some(row) => Ok(DueOutcome::RunAgainAt(row.due_at)),
                    None => Ok(DueOutcome::Done),
                }
            }
        }
    }

    /// A step that cannot be written is retried for ever: giving up would leave an incident
    /// unpaged.
    fn max_attempts(&self) -> Option<i64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tocsin_core::EscalationLevel;

    fn user(id: &str, bot: bool) -> PagedUser {
        PagedUser {
            id: id.to_owned(),
            name: id.to_owned(),
            bot,
            notify: vec![
                NotifyStep {
                    after_minutes: 0,
                    contact: "push".to_owned(),
                    method: "webhook".to_owned(),
                },
                NotifyStep {
                    after_minutes: 2,
                    contact: "mail".to_owned(),
                    method: "email".to_owned(),
                },
            ],
        }
    }

    fn directory() -> PagingDirectory {
        let mut directory = PagingDirectory::default();
        for (id, bot) in [("ana", false), ("ben", false), ("bot", true)] {
            directory.users.insert(id.to_owned(), user(id, bot));
        }
        directory.teams.insert(
            "db".to_owned(),
            vec!["ana".to_owned(), "ben".to_owned(), "bot".to_owned()],
        );
        directory
    }

    fn policy() -> EscalationPolicy {
        EscalationPolicy {
            id: "p".to_owned(),
            name: "p".to_owned(),
            repeat: 1,
            levels: vec![
                EscalationLevel {
                    targets: vec![Target::User("ana".to_owned())],
                    escalate_after_minutes: Some(5),
                },
                EscalationLevel {
                    targets: vec![Target::Schedule("nobody".to_owned())],
                    escalate_after_minutes: Some(10),
                },
                EscalationLevel {
                    targets: vec![
                        Target::Team("db".to_owned()),
                        Target::User("ana".to_owned()),
                    ],
                    escalate_after_minutes: None,
                },
            ],
        }
    }

    fn at(minutes: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + minutes * 60).expect("valid")
    }

    #[test]
    fn the_first_step_pages_level_one_by_every_notify_rule() {
        let decision =
            decide_step(&directory(), &policy(), IncidentNumber(7), 0, 0, at(0)).expect("a step");
        let sent: Vec<_> = decision
            .notifications
            .iter()
            .map(|n| (n.recipient.to_string(), n.method.as_str(), n.not_before))
            .collect();
        assert_eq!(
            sent,
            [
                ("user:ana".to_owned(), "webhook", at(0)),
                ("user:ana".to_owned(), "email", at(2)),
            ]
        );
        assert_eq!((decision.next_step, decision.next_due_at), (1, at(5)));
        assert_eq!(
            decision.timeline,
            [TimelineData::EscalationNotified {
                pass: 0,
                level: 1,
                recipients: vec!["ana".to_owned()]
            }]
        );
    }

    #[test]
    fn a_level_of_nobody_is_skipped_and_the_next_is_due_at_once() {
        let decision =
            decide_step(&directory(), &policy(), IncidentNumber(7), 1, 0, at(5)).expect("a step");
        assert!(decision.notifications.is_empty());
        assert!(matches!(
            decision.timeline[0],
            TimelineData::EscalationSkipped { level: 2, .. }
        ));
        assert_eq!((decision.next_step, decision.next_due_at), (2, at(5)));
    }

    #[test]
    fn teams_page_their_humans_once_each_and_the_ladder_repeats_then_waits() {
        let decision =
            decide_step(&directory(), &policy(), IncidentNumber(7), 2, 0, at(15)).expect("a step");
        let people: BTreeSet<_> = decision
            .notifications
            .iter()
            .map(|n| n.recipient.to_string())
            .collect();
        assert_eq!(
            people.into_iter().collect::<Vec<_>>(),
            ["user:ana", "user:ben"]
        );
        assert_eq!(decision.notifications.len(), 4, "two rules each, ana once");
        // The repeat starts after the last level's default wait.
        assert_eq!((decision.next_step, decision.next_due_at), (3, at(15 + 30)));
        let last = decide_step(&directory(), &policy(), IncidentNumber(7), 5, 0, at(90))
            .expect("the last step");
        assert_eq!(last.next_step, 6);
        assert!(last.next_due_at > at(60 * 24 * 365));
        // Past the end (a manual escalation): the last level again, under new keys.
        let again = decide_step(&directory(), &policy(), IncidentNumber(7), 6, 3, at(91))
            .expect("the last level again");
        assert_eq!(again.notifications.len(), 4);
        assert_ne!(
            again.notifications[0].idempotency_key,
            last.notifications[0].idempotency_key
        );
    }
}
