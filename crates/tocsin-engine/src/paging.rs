//! Escalation: who is paged when, as due work.
//!
//! Ingest schedules an incident's first step (kind [`ESCALATION_STEP_KIND`], key the incident
//! number, payload `{"step":0}`) in the transaction that opens it, due at once. The
//! [`EscalationHandler`] runs a due step: while the incident is still triggered, it resolves
//! the step's level of the service's policy to people at that moment (users, whoever is on
//! call for a schedule, a team's members), queues one notification per person and contact
//! method of their notify rules, appends the timeline, and points the item at the next step
//! — in one transaction that applies only while the item still names this step and this
//! runner's claim, so a step whose runner died and that runs again pages nobody twice. The
//! steps of one claim are written together, in one transaction that also settles their items,
//! so a storm of new incidents pages at the pace of commits, not of steps. A level that resolves to nobody
//! is skipped (on the timeline) and the next one is due at once. After the last step of the
//! last repeat the item waits (far in the future) so that a manual escalation can still page
//! the last level again. Acknowledging or resolving deletes the item.
//!
//! A level with `round_robin` pages one of the people it resolves to, taking turns: the turn
//! is kept per policy and level in the store and taken in the step's transaction, so incidents
//! (and repeats of one ladder), on any replica, page the level's people one after another.
//!
//! Acknowledgement timeouts ([`AckTimeoutHandler`], kind [`ACK_TIMEOUT`]): an incident of a
//! service with `ack_timeout_minutes` that is still acknowledged, by the same acknowledgement,
//! that long after it is triggered again, and its escalation starts over (a step payload with
//! `since`, the instant it started over, so its pages are told apart from the first ladder's).
//!
//! Dependencies: when the first step of an incident comes due while a service its service
//! depends on (`depends_on`, directly or through others) has an open incident, nobody is paged:
//! the incident is noted on that incident (the one furthest up the chain, the root cause) and
//! on its own timeline, and the step looks again every [`HOLD_RECHECK`]. It pages once no such
//! incident is open, if it is still triggered; resolving it (a recovery) is never held.
//!
//! Maintenance: when the first step comes due while a maintenance window is in progress on a
//! status page component the service is part of, nobody is paged either: the incident and its
//! alerts are recorded as always, its timeline says it is suppressed by that window, and the
//! step looks again when the window ends (it pages then if the incident is still triggered).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jiff::tz::TimeZone;
use tocsin_core::{
    Actor, Command, EscalationPolicy, IncidentNumber, IncidentState, Page, Schedule, ServiceId,
    Target, TimelineData, Timestamp, ACK_TIMEOUT_KIND, ESCALATION_STEP_KIND,
};
use tocsin_store::due::{ClaimedDueItem, DueKind};
use tocsin_store::outbox::{
    EscalationStepOutcome, EscalationStepWrite, EscalationTurn, NewNotification, Recipient,
    TurnCandidate,
};
use tocsin_store::StoreError;

use crate::due::{DueError, DueHandler, DueOutcome};
use crate::Engine;

/// The due-work kind of escalation steps.
pub const ESCALATION_STEP: DueKind = DueKind::from_static(ESCALATION_STEP_KIND);

/// The due-work kind of acknowledgement timeouts.
pub const ACK_TIMEOUT: DueKind = DueKind::from_static(ACK_TIMEOUT_KIND);

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
    /// Service id to its acknowledgement timeout (`ack_timeout_minutes`), for the services
    /// that have one.
    pub ack_timeouts: HashMap<ServiceId, Duration>,
    /// Who each schedule has on call at the step's instant with the stored overrides applied,
    /// when the step looked it up; a schedule missing here is read from its layers alone.
    pub on_call_now: HashMap<String, Option<String>>,
    /// User id to every contact method of theirs, in config order (a test page tries each).
    pub contacts: HashMap<String, Vec<ContactRef>>,
    /// Service id to the id of the team that owns it (`team` of a service).
    pub service_teams: HashMap<ServiceId, String>,
    /// Service id to the status page components it is part of (`components` of a service),
    /// for the services that list some: a maintenance window on one of them holds its pages.
    pub service_components: HashMap<ServiceId, Vec<String>>,
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
    /// On a round-robin level: the people of whom the store pages the one whose turn it is
    /// (`notifications` and `timeline` are then empty).
    pub turn: Option<EscalationTurn>,
    pub next_step: usize,
    pub next_due_at: Timestamp,
}

/// Which run of a ladder's step a page belongs to, for its idempotency key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StepRound {
    /// Tells apart the pages of one step that a manual escalation repeats.
    pub round: i64,
    /// When the ladder started over after an acknowledgement timed out (microseconds); `None`
    /// for the ladder the incident started with.
    pub since: Option<i64>,
}

/// Decides step `step` (an index into `policy.steps()`; past the end: the last step again) of
/// incident `number`'s escalation at `now`.
pub fn decide_step(
    directory: &PagingDirectory,
    policy: &EscalationPolicy,
    number: IncidentNumber,
    step: usize,
    round: StepRound,
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
    let ladder = match round.since {
        Some(since) => format!("{}-s{since}", number.0),
        None => number.0.to_string(),
    };
    let round = round.round;
    let mut notifications = Vec::new();
    let mut timeline = Vec::new();
    let mut recipients = Vec::new();
    let mut candidates = Vec::new();
    for user in &ordered {
        let Some(paged) = directory.users.get(user) else {
            continue;
        };
        if paged.notify.is_empty() {
            continue;
        }
        recipients.push(user.clone());
        let mut pages = Vec::with_capacity(paged.notify.len());
        for (rule_index, rule) in paged.notify.iter().enumerate() {
            let not_before = now
                .checked_add(Duration::from_secs(u64::from(rule.after_minutes) * 60))
                .unwrap_or(now);
            pages.push(NewNotification {
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
                    "page-{ladder}-{index}-{round}-{user}-{rule_index}-{contact}",
                    contact = rule.contact
                ),
                not_before,
            });
        }
        if level.round_robin {
            candidates.push(TurnCandidate {
                user: user.clone(),
                notifications: pages,
                timeline: vec![TimelineData::EscalationNotified {
                    pass: current.pass,
                    level: level_number,
                    recipients: vec![user.clone()],
                }],
            });
        } else {
            notifications.extend(pages);
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
    } else if !level.round_robin {
        timeline.push(TimelineData::EscalationNotified {
            pass: current.pass,
            level: level_number,
            recipients,
        });
    }
    let turn = (!candidates.is_empty()).then(|| EscalationTurn {
        policy: policy.id.clone(),
        level: u32::try_from(current.level).unwrap_or(u32::MAX),
        candidates,
    });
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
        turn,
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
/// How the note of an incident suppressed by maintenance begins, so it is written once.
const MAINTENANCE_NOTE: &str = "Suppressed by maintenance: ";

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
            "Service {} depends on {}: its incident #{} ({}) opened while this one is open; it \
             is not paged separately while this incident is open.",
            incident.service, root.service, incident.number, incident.title
        );
        self.engine
            .command(root.number, &tocsin_core::Command::AddNote(on_root), &actor)
            .await?;
        let on_own = format!(
            "{HELD_NOTE}{} depends on {}, whose incident #{} ({}) is open: this incident is \
             noted there and pages only if it is still triggered once that one is resolved.",
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

impl EscalationHandler {
    /// The maintenance window in progress at `now` on a component of the incident's service,
    /// if any (of several, the one that ends last).
    async fn maintenance_of(
        &self,
        directory: &PagingDirectory,
        incident: &tocsin_store::IncidentRow,
        now: Timestamp,
    ) -> Result<Option<tocsin_store::status::MaintenanceRow>, DueError> {
        let Some(components) = directory.service_components.get(&incident.service) else {
            return Ok(None);
        };
        let windows = self
            .engine
            .store()
            .maintenances(now, tocsin_store::status::MAX_STATUS_ROWS)
            .await?;
        Ok(windows
            .into_iter()
            .filter(|window| window.is_active(now))
            .filter(|window| {
                window
                    .components
                    .iter()
                    .any(|component| components.contains(component))
            })
            .max_by_key(|window| window.ends_at))
    }

    /// Notes on the incident's timeline, once per window, that maintenance suppresses it.
    async fn suppress(
        &self,
        incident: &tocsin_store::IncidentRow,
        window: &tocsin_store::status::MaintenanceRow,
    ) -> Result<(), DueError> {
        let note = format!(
            "{MAINTENANCE_NOTE}service {} is under maintenance (window {}, \"{}\", until {}): \
             nobody is paged; if this incident is still triggered when the window ends, it pages \
             then.",
            incident.service, window.id, window.name, window.ends_at
        );
        let timeline = self
            .engine
            .timeline(incident.number, tocsin_store::PageRequest::first(500))
            .await?;
        let noted = timeline
            .items
            .iter()
            .any(|entry| matches!(&entry.data, TimelineData::NoteAdded { text } if *text == note));
        if noted {
            return Ok(());
        }
        tracing::info!(
            incident = %incident.number, service = %incident.service, maintenance = window.id,
            "incident of a service under maintenance; recorded, not paged"
        );
        self.engine
            .command(
                incident.number,
                &tocsin_core::Command::AddNote(note),
                &tocsin_core::Actor::system(),
            )
            .await?;
        Ok(())
    }
}

/// What a step of one incident comes to before anything is written.
enum Decided {
    /// Page: write this (with the others of the batch).
    Write(Box<EscalationStepWrite>),
    /// Nothing to write; the runner settles the item so.
    Outcome(DueOutcome),
}

impl EscalationHandler {
    /// The paging directory with who each schedule has on call at `now` (stored overrides
    /// applied), read once for a batch of steps.
    async fn directory_at(&self, now: Timestamp) -> PagingDirectory {
        let mut directory = (*self.engine.catalog().paging()).clone();
        // Overrides (who covers whom) live in the store; without them the layers decide. Only
        // policies with a schedule target need them.
        let targets_a_schedule = directory
            .policies
            .values()
            .flat_map(|policy| &policy.levels)
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
                    tracing::warn!(error = %error, "cannot read the schedules' overrides; escalating on their layers alone");
                }
            }
        }
        directory
    }

    /// Decides the step `item` names: a write, or an outcome without one.
    async fn decide(
        &self,
        directory: &PagingDirectory,
        item: &ClaimedDueItem,
        now: Timestamp,
    ) -> Result<Decided, DueError> {
        let Some(number) = incident_of(item) else {
            return Ok(Decided::Outcome(DueOutcome::Done));
        };
        let Some(step) = item
            .payload
            .get("step")
            .and_then(serde_json::Value::as_u64)
            .and_then(|step| usize::try_from(step).ok())
        else {
            tracing::warn!(incident = %number, "escalation step without a step number; dropped");
            return Ok(Decided::Outcome(DueOutcome::Done));
        };
        let since = item
            .payload
            .get("since")
            .and_then(serde_json::Value::as_i64);
        let incident = match self.engine.store().incident(number).await {
            Ok(incident) => incident,
            Err(StoreError::NotFound { .. }) => return Ok(Decided::Outcome(DueOutcome::Done)),
            Err(error) => return Err(Box::new(error)),
        };
        if incident.state != IncidentState::Triggered {
            return Ok(Decided::Outcome(DueOutcome::Done));
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
            return Ok(Decided::Outcome(DueOutcome::RunAgainAt(
                now.checked_add(HOLD_RECHECK).unwrap_or(Timestamp::MAX),
            )));
        }
        if step == 0 {
            if let Some(window) = self.maintenance_of(directory, &incident, now).await? {
                self.suppress(&incident, &window).await?;
                // Looked at again when it ends, or sooner in case it is cancelled.
                let again = now.checked_add(HOLD_RECHECK).unwrap_or(Timestamp::MAX);
                return Ok(Decided::Outcome(DueOutcome::RunAgainAt(
                    window.ends_at.min(again),
                )));
            }
        }
        let Some(policy) = directory.policy_for(&incident.service) else {
            return Ok(Decided::Outcome(DueOutcome::Done));
        };
        let round = StepRound {
            round: item.lease.revision,
            since,
        };
        let Some(decision) = decide_step(directory, policy, number, step, round, now) else {
            return Ok(Decided::Outcome(DueOutcome::Done));
        };
        Ok(Decided::Write(Box::new(EscalationStepWrite {
            incident: number,
            step_payload: item.payload.clone(),
            next_payload: step_payload(decision.next_step, since),
            next_due_at: decision.next_due_at,
            notifications: decision.notifications,
            timeline: decision.timeline,
            turn: decision.turn,
            now,
            settle: Some(item.lease.clone()),
        })))
    }

    /// The outcome of a written step.
    async fn written(
        &self,
        item: &ClaimedDueItem,
        write: &EscalationStepWrite,
        result: EscalationStepOutcome,
    ) -> Result<DueOutcome, DueError> {
        match result {
            EscalationStepOutcome::Written { queued, turn } => {
                tracing::info!(incident = %write.incident, step = %item.payload, queued, turn = ?turn, "escalation step paged");
                Ok(DueOutcome::Settled)
            }
            EscalationStepOutcome::NotTriggered => Ok(DueOutcome::Done),
            EscalationStepOutcome::Stale => {
                // An earlier run of this item wrote the step, or another runner holds it now;
                // keep the schedule it left (settling fails harmlessly if the claim is gone).
                match self
                    .engine
                    .store()
                    .due_item(&ESCALATION_STEP, &item.key)
                    .await?
                {
                    Some(row) => Ok(DueOutcome::RunAgainAt(row.due_at)),
                    None => Ok(DueOutcome::Done),
                }
            }
        }
    }
}

/// The incident an item of one of paging's kinds is for (its key), or `None` (logged: the
/// item is dropped) for a key that is not an incident number.
fn incident_of(item: &ClaimedDueItem) -> Option<IncidentNumber> {
    let number = item.key.as_str().parse::<i64>().ok().map(IncidentNumber);
    if number.is_none() {
        tracing::warn!(kind = %item.kind, key = %item.key, "due item with a key that is not an incident number; dropped");
    }
    number
}

/// The payload of step `step` of the ladder started at `since` (`None`: the first ladder).
fn step_payload(step: usize, since: Option<i64>) -> serde_json::Value {
    match since {
        Some(since) => serde_json::json!({ "step": step, "since": since }),
        None => serde_json::json!({ "step": step }),
    }
}

#[async_trait]
impl DueHandler for EscalationHandler {
    fn kind(&self) -> DueKind {
        ESCALATION_STEP
    }

    async fn run(&self, item: &ClaimedDueItem, now: Timestamp) -> Result<DueOutcome, DueError> {
        self.run_many(std::slice::from_ref(item), now)
            .await
            .pop()
            .unwrap_or(Ok(DueOutcome::Done))
    }

    fn runs_many(&self) -> bool {
        true
    }

    /// Decides each step on its own, then writes all that page in one transaction, which
    /// also settles their items: a storm of new incidents costs one commit per claim.
    async fn run_many(
        &self,
        items: &[ClaimedDueItem],
        now: Timestamp,
    ) -> Vec<Result<DueOutcome, DueError>> {
        let directory = self.directory_at(now).await;
        let mut outcomes: Vec<Option<Result<DueOutcome, DueError>>> =
            Vec::with_capacity(items.len());
        let mut writes = Vec::new();
        let mut written = Vec::new();
        for (index, item) in items.iter().enumerate() {
            match self.decide(&directory, item, now).await {
                Ok(Decided::Write(write)) => {
                    writes.push(*write);
                    written.push(index);
                    outcomes.push(None);
                }
                Ok(Decided::Outcome(outcome)) => outcomes.push(Some(Ok(outcome))),
                Err(error) => outcomes.push(Some(Err(error))),
            }
        }
        if !writes.is_empty() {
            match self.engine.store().run_escalation_steps(&writes).await {
                Ok(results) => {
                    let mut queued_any = false;
                    let mut due_now = false;
                    for ((index, write), result) in written.iter().zip(&writes).zip(results) {
                        if let EscalationStepOutcome::Written { queued, .. } = &result {
                            queued_any |= *queued > 0;
                            if write.next_due_at <= now {
                                due_now = true;
                            } else {
                                // The next level: claimed when it comes due, not at a poll.
                                self.engine.note_due_at(write.next_due_at);
                            }
                        }
                        outcomes[*index] = Some(self.written(&items[*index], write, result).await);
                    }
                    if queued_any {
                        // Level 1 at once: the dispatcher need not wait for its poll.
                        self.engine.wake_outbox();
                    }
                    if due_now {
                        // A skipped level: the next one is due at once.
                        self.engine.wake_due();
                    }
                }
                Err(error) => {
                    let text = error.to_string();
                    for index in &written {
                        outcomes[*index] = Some(Err(DueError::from(text.clone())));
                    }
                }
            }
        }
        outcomes
            .into_iter()
            .map(|outcome| outcome.unwrap_or(Ok(DueOutcome::Done)))
            .collect()
    }

    /// A step that cannot be written is retried for ever: giving up would leave an incident
    /// unpaged.
    fn max_attempts(&self) -> Option<i64> {
        None
    }
}

/// Runs due acknowledgement timeouts: an incident still acknowledged by the acknowledgement
/// that set the timeout is triggered again (`incident.ack_timeout` on its timeline, by the
/// system) and escalates from level 1 at once; see [`tocsin_core::Command::AckTimeout`].
pub struct AckTimeoutHandler {
    engine: Arc<Engine>,
}

impl AckTimeoutHandler {
    pub fn new(engine: Arc<Engine>) -> AckTimeoutHandler {
        AckTimeoutHandler { engine }
    }
}

#[async_trait]
impl DueHandler for AckTimeoutHandler {
    fn kind(&self) -> DueKind {
        ACK_TIMEOUT
    }

    async fn run(&self, item: &ClaimedDueItem, _now: Timestamp) -> Result<DueOutcome, DueError> {
        let Some(number) = incident_of(item) else {
            return Ok(DueOutcome::Done);
        };
        let Some(acknowledged_at) = item
            .payload
            .get("acknowledged_at")
            .and_then(serde_json::Value::as_i64)
            .and_then(|micros| Timestamp::from_microsecond(micros).ok())
        else {
            tracing::warn!(incident = %number, "acknowledgement timeout without its acknowledgement; dropped");
            return Ok(DueOutcome::Done);
        };
        let incident = match self.engine.store().incident(number).await {
            Ok(incident) => incident,
            Err(StoreError::NotFound { .. }) => return Ok(DueOutcome::Done),
            Err(error) => return Err(Box::new(error)),
        };
        let timeout_minutes = self
            .engine
            .catalog()
            .paging()
            .ack_timeouts
            .get(&incident.service)
            .map_or(0, |timeout| timeout.as_secs() / 60);
        let command = Command::AckTimeout {
            acknowledged_at,
            timeout_minutes,
        };
        // Resolved meanwhile, or acknowledged again later (that acknowledgement has a timer of
        // its own): the command changes nothing.
        let outcome = self
            .engine
            .command(number, &command, &Actor::system())
            .await?;
        if outcome.transition == tocsin_core::Transition::Changed {
            tracing::info!(incident = %number, timeout_minutes, "acknowledged incident not resolved in time; triggered again");
        }
        Ok(DueOutcome::Done)
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
                    round_robin: false,
                },
                EscalationLevel {
                    targets: vec![Target::Schedule("nobody".to_owned())],
                    escalate_after_minutes: Some(10),
                    round_robin: false,
                },
                EscalationLevel {
                    targets: vec![
                        Target::Team("db".to_owned()),
                        Target::User("ana".to_owned()),
                    ],
                    escalate_after_minutes: None,
                    round_robin: false,
                },
            ],
        }
    }

    fn round(round: i64) -> StepRound {
        StepRound { round, since: None }
    }

    fn at(minutes: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + minutes * 60).expect("valid")
    }

    #[test]
    fn the_first_step_pages_level_one_by_every_notify_rule() {
        let decision = decide_step(
            &directory(),
            &policy(),
            IncidentNumber(7),
            0,
            round(0),
            at(0),
        )
        .expect("a step");
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
        let decision = decide_step(
            &directory(),
            &policy(),
            IncidentNumber(7),
            1,
            round(0),
            at(5),
        )
        .expect("a step");
        assert!(decision.notifications.is_empty());
        assert!(matches!(
            decision.timeline[0],
            TimelineData::EscalationSkipped { level: 2, .. }
        ));
        assert_eq!((decision.next_step, decision.next_due_at), (2, at(5)));
    }

    #[test]
    fn teams_page_their_humans_once_each_and_the_ladder_repeats_then_waits() {
        let decision = decide_step(
            &directory(),
            &policy(),
            IncidentNumber(7),
            2,
            round(0),
            at(15),
        )
        .expect("a step");
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
        let last = decide_step(
            &directory(),
            &policy(),
            IncidentNumber(7),
            5,
            round(0),
            at(90),
        )
        .expect("the last step");
        assert_eq!(last.next_step, 6);
        assert!(last.next_due_at > at(60 * 24 * 365));
        // Past the end (a manual escalation): the last level again, under new keys.
        let again = decide_step(
            &directory(),
            &policy(),
            IncidentNumber(7),
            6,
            round(3),
            at(91),
        )
        .expect("the last level again");
        assert_eq!(again.notifications.len(), 4);
        assert_ne!(
            again.notifications[0].idempotency_key,
            last.notifications[0].idempotency_key
        );
    }

    #[test]
    fn a_round_robin_level_leaves_whose_turn_it_is_to_the_store() {
        let mut policy = policy();
        policy.levels[2].round_robin = true;
        let decision = decide_step(
            &directory(),
            &policy,
            IncidentNumber(7),
            2,
            round(0),
            at(15),
        )
        .expect("a step");
        assert!(decision.notifications.is_empty() && decision.timeline.is_empty());
        let turn = decision.turn.expect("a turn");
        assert_eq!((turn.policy.as_str(), turn.level), ("p", 2));
        let users: Vec<_> = turn
            .candidates
            .iter()
            .map(|candidate| candidate.user.as_str())
            .collect();
        assert_eq!(users, ["ana", "ben"], "humans only, each once, in order");
        let ben = &turn.candidates[1];
        assert_eq!(
            ben.timeline,
            [TimelineData::EscalationNotified {
                pass: 0,
                level: 3,
                recipients: vec!["ben".to_owned()]
            }]
        );
        assert_eq!(ben.notifications.len(), 2);
        assert!(ben
            .notifications
            .iter()
            .all(|page| page.recipient.to_string() == "user:ben"));
        // The same step of a ladder that started over has pages of its own.
        let first = decide_step(&directory(), &policy, IncidentNumber(7), 0, round(0), at(0))
            .expect("a step");
        let again = StepRound {
            round: 0,
            since: Some(at(40).as_microsecond()),
        };
        let restarted = decide_step(&directory(), &policy, IncidentNumber(7), 0, again, at(40))
            .expect("a step");
        assert_ne!(
            first.notifications[0].idempotency_key,
            restarted.notifications[0].idempotency_key
        );
    }
}
