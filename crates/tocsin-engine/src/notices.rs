//! Notifications that are not pages of an incident: a test page (`tocsin page test USER`) and
//! the notice, a day ahead, that a schedule will have nobody on call.
//!
//! Both go through the outbox like pages (`tocsin_store::outbox`), with no incident: the
//! dispatcher sends them by the same channels, retries them the same way, and keeps their
//! outcome on the row (there is no timeline to put it on).
//!
//! **Gap notices.** The recurring due item [`GAP_NOTICE_SCAN`] (key `all`) runs every
//! [`GAP_NOTICE_EVERY`]. It looks for the ranges where a schedule has nobody on call, stored
//! overrides included, and for each one starting within the next [`GAP_NOTICE_AHEAD`] (and not
//! yet started) queues one notice per person of the schedule's team ([`gap_notice_recipients`]),
//! by the first of their notify rules. Its idempotency key is made of the schedule, the
//! gap's start and the person, so a rescan, a rerun of the item or another replica queues
//! nothing more; a gap that an override closes before the notice is queued gets none.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jiff::tz::TimeZone;
use jiff::SignedDuration;
use tocsin_core::{Gap, Target, Timestamp};
use tocsin_store::due::{ClaimedDueItem, DueKey, DueKind, NewDueItem};
use tocsin_store::outbox::{
    NewNotification, NotificationRow, Recipient, GAP_NOTICE_KIND, TEST_KIND,
};

use crate::due::{DueError, DueHandler, DueOutcome};
use crate::oncall::GAP_HORIZON;
use crate::paging::PagingDirectory;
use crate::{Engine, EngineError};

/// The recurring due item that queues gap notices.
pub const GAP_NOTICE_SCAN: DueKind = DueKind::from_static("schedule.gap_notice");

/// How often the gap notice scan runs.
pub const GAP_NOTICE_EVERY: Duration = Duration::from_secs(3600);

/// How far ahead a gap is noticed: a gap starting within this is noticed now.
pub const GAP_NOTICE_AHEAD: SignedDuration = SignedDuration::from_hours(24);

/// Why a test page was not queued; nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum TestPageError {
    #[error("user `{0}` is not declared in the config")]
    UnknownUser(String),
    #[error("user `{0}` is a bot; a bot is never paged, so there is nothing to test")]
    Bot(String),
    #[error("user `{0}` has no contact methods; add a [[users.contact]] to the config")]
    NoContact(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl Engine {
    /// Queues one test page per contact method of `user`, in one transaction, due now; returns
    /// the rows queued (in the order of the config's contact methods), to follow by id.
    pub async fn test_page(&self, user: &str) -> Result<Vec<NotificationRow>, TestPageError> {
        let directory = self.catalog().paging();
        let paged = directory
            .users
            .get(user)
            .ok_or_else(|| TestPageError::UnknownUser(user.to_owned()))?;
        if paged.bot {
            return Err(TestPageError::Bot(user.to_owned()));
        }
        let contacts = directory
            .contacts
            .get(user)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if contacts.is_empty() {
            return Err(TestPageError::NoContact(user.to_owned()));
        }
        let now = self.now();
        let run = uuid::Uuid::new_v4().simple().to_string();
        let notices: Vec<NewNotification> = contacts
            .iter()
            .map(|contact| NewNotification {
                incident: None,
                recipient: Recipient::User {
                    user: user.to_owned(),
                    contact: contact.id.clone(),
                },
                method: contact.method.clone(),
                kind: TEST_KIND.to_owned(),
                payload: serde_json::json!({ "name": paged.name, "contact": contact.id }),
                idempotency_key: format!("test-{run}-{user}-{}", contact.id),
                not_before: now,
            })
            .collect();
        let started = std::time::Instant::now();
        let rows = self.store().enqueue_notices(&notices, now).await;
        self.metrics()
            .observe_store("enqueue_notices", started.elapsed().as_secs_f64());
        rows.map_err(|source| TestPageError::Engine(EngineError::store("enqueue_notices", source)))
    }
}

impl Engine {
    /// One notification of the outbox by id (a page, an update, a test page or a notice).
    pub async fn notification(&self, id: i64) -> Result<NotificationRow, EngineError> {
        let started = std::time::Instant::now();
        let row = self.store().notification(id).await;
        self.metrics()
            .observe_store("notification", started.elapsed().as_secs_f64());
        row.map_err(|source| EngineError::store("notification", source))
    }
}

/// Who is told that `schedule` will have nobody on call: the members of the teams that own
/// the services whose escalation policies target the schedule (at any level), or, when no
/// such team has a member, the members of the schedule's layers. Bots and users the config
/// does not declare are left out. Sorted by user id, each once.
pub fn gap_notice_recipients(directory: &PagingDirectory, schedule: &str) -> Vec<String> {
    let targets_schedule = |policy: &str| {
        directory.policies.get(policy).is_some_and(|policy| {
            policy
                .levels
                .iter()
                .flat_map(|level| &level.targets)
                .any(|target| matches!(target, Target::Schedule(id) if id == schedule))
        })
    };
    let mut people = BTreeSet::new();
    for (service, policy) in &directory.service_policies {
        if !targets_schedule(policy) {
            continue;
        }
        let Some(team) = directory.service_teams.get(service) else {
            continue;
        };
        people.extend(directory.teams.get(team).into_iter().flatten().cloned());
    }
    let pageable = |id: &String| directory.users.get(id).is_some_and(|user| !user.bot);
    people.retain(pageable);
    if people.is_empty() {
        if let Some(entry) = directory.schedules.get(schedule) {
            people.extend(
                entry
                    .schedule
                    .layers
                    .iter()
                    .flat_map(|layer| &layer.members)
                    .cloned(),
            );
        }
        people.retain(pageable);
    }
    people.into_iter().collect()
}

/// `15 h`, `45 min`, `1 day 2 h 30 min`: a gap's length as a person reads it.
pub fn human_duration(duration: SignedDuration) -> String {
    let minutes = duration.as_mins().max(0);
    let (days, hours, minutes) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    let mut parts = Vec::new();
    match days {
        0 => {}
        1 => parts.push("1 day".to_owned()),
        days => parts.push(format!("{days} days")),
    }
    if hours > 0 {
        parts.push(format!("{hours} h"));
    }
    if minutes > 0 || parts.is_empty() {
        parts.push(format!("{minutes} min"));
    }
    parts.join(" ")
}

/// `Sat 2026-12-05 18:00 CET`: an instant in the schedule's time zone.
fn local(at: Timestamp, time_zone: &TimeZone) -> String {
    at.to_zoned(time_zone.clone())
        .strftime("%a %Y-%m-%d %H:%M %Z")
        .to_string()
}

/// What a gap notice says: when, in the schedule's time zone, for how long, and the command
/// that closes the gap.
pub fn gap_message(
    schedule_id: &str,
    schedule_name: &str,
    time_zone: &TimeZone,
    gap: &Gap,
) -> String {
    format!(
        "Nobody is on call for {schedule_name} from {start} to {end} ({length}); add an \
         override: tocsin override create --schedule {schedule_id} --user USER --start {from} \
         --end {to}",
        start = local(gap.start, time_zone),
        end = local(gap.end, time_zone),
        length = human_duration(gap.end.duration_since(gap.start)),
        from = gap.start,
        to = gap.end,
    )
}

/// Queues the notices of the gaps that start within [`GAP_NOTICE_AHEAD`]; see the module
/// documentation.
pub struct GapNoticeScan {
    engine: Arc<Engine>,
}

impl GapNoticeScan {
    pub fn new(engine: Arc<Engine>) -> GapNoticeScan {
        GapNoticeScan { engine }
    }

    fn key() -> DueKey {
        DueKey::parse("all").expect("`all` is a valid key")
    }

    /// The notices of the gaps starting after `now` and within [`GAP_NOTICE_AHEAD`] of it.
    pub async fn notices(&self, now: Timestamp) -> Result<Vec<NewNotification>, DueError> {
        let horizon = now.checked_add(GAP_HORIZON).unwrap_or(Timestamp::MAX);
        let ahead = now.checked_add(GAP_NOTICE_AHEAD).unwrap_or(Timestamp::MAX);
        let gaps = self.engine.gaps_between(now, horizon).await?;
        let directory = self.engine.catalog().paging();
        let catalog = self.engine.schedule_catalog();
        let mut notices = Vec::new();
        for schedule_gaps in gaps {
            let Some(entry) = catalog.schedule(&schedule_gaps.schedule) else {
                continue;
            };
            let id = entry.schedule.id.as_str();
            // A gap under way when the scan looks (its start is the scan's `now`) was noticed
            // before it began, or began before Tocsin could.
            let coming = schedule_gaps
                .gaps
                .iter()
                .filter(|gap| gap.start > now && gap.start <= ahead);
            for gap in coming {
                let message = gap_message(id, &entry.schedule.name, &entry.time_zone, gap);
                let recipients = gap_notice_recipients(&directory, id);
                if recipients.is_empty() {
                    tracing::warn!(schedule = id, start = %gap.start, "a gap in a schedule whose team has nobody to tell");
                }
                for user in recipients {
                    let Some(rule) = directory
                        .users
                        .get(&user)
                        .and_then(|paged| paged.notify.first())
                    else {
                        tracing::warn!(
                            schedule = id,
                            user,
                            "cannot tell a user of a gap: they have no way to be reached"
                        );
                        continue;
                    };
                    notices.push(NewNotification {
                        incident: None,
                        recipient: Recipient::User {
                            user: user.clone(),
                            contact: rule.contact.clone(),
                        },
                        method: rule.method.clone(),
                        kind: GAP_NOTICE_KIND.to_owned(),
                        payload: serde_json::json!({
                            "schedule": id,
                            "schedule_name": entry.schedule.name,
                            "start": gap.start.to_string(),
                            "end": gap.end.to_string(),
                            "message": message,
                        }),
                        idempotency_key: format!(
                            "gap-{id}-{start}-{user}",
                            start = gap.start.as_microsecond()
                        ),
                        not_before: now,
                    });
                }
            }
        }
        Ok(notices)
    }
}

#[async_trait]
impl DueHandler for GapNoticeScan {
    fn kind(&self) -> DueKind {
        GAP_NOTICE_SCAN
    }

    async fn run(&self, _item: &ClaimedDueItem, now: Timestamp) -> Result<DueOutcome, DueError> {
        let notices = self.notices(now).await?;
        if !notices.is_empty() {
            let queued = self.engine.store().enqueue_notices(&notices, now).await?;
            if !queued.is_empty() {
                tracing::info!(queued = queued.len(), "queued notices of gaps in schedules");
            }
        }
        Ok(DueOutcome::RunAgainAt(
            now.checked_add(GAP_NOTICE_EVERY).unwrap_or(Timestamp::MAX),
        ))
    }

    /// The scan never gives up: it retries at the longest backoff.
    fn max_attempts(&self) -> Option<i64> {
        None
    }

    fn recurring(&self, now: Timestamp) -> Option<NewDueItem> {
        NewDueItem::new(GAP_NOTICE_SCAN, Self::key(), &serde_json::json!({}), now).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_days_hours_and_minutes() {
        assert_eq!(human_duration(SignedDuration::from_mins(45)), "45 min");
        assert_eq!(human_duration(SignedDuration::from_hours(15)), "15 h");
        assert_eq!(
            human_duration(SignedDuration::from_mins(26 * 60 + 30)),
            "1 day 2 h 30 min"
        );
        assert_eq!(human_duration(SignedDuration::from_hours(72)), "3 days");
        assert_eq!(human_duration(SignedDuration::ZERO), "0 min");
    }

    #[test]
    fn the_message_says_when_in_local_time_and_how_to_close_the_gap() {
        let zone = TimeZone::get("Europe/Berlin").expect("zone");
        let gap = Gap {
            start: "2026-12-05T17:00:00Z".parse().expect("time"),
            end: "2026-12-06T08:00:00Z".parse().expect("time"),
        };
        assert_eq!(
            gap_message("primary", "Primary", &zone, &gap),
            "Nobody is on call for Primary from Sat 2026-12-05 18:00 CET to Sun 2026-12-06 \
             09:00 CET (15 h); add an override: tocsin override create --schedule primary \
             --user USER --start 2026-12-05T17:00:00Z --end 2026-12-06T08:00:00Z"
        );
    }
}
