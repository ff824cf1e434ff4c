//! Who is on call: the config's schedules (from the [`Catalog`](crate::Catalog)) combined with
//! the overrides stored at run time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use tocsin_core::{Actor, Gap, OnCallSource, Override, Roster, Schedule, Shift};
use tocsin_store::{NewOverride, OverrideFilter, OverrideRow, Page, PageRequest, StoreError};

use crate::{Engine, EngineError};

/// How far ahead gaps are looked for by default, and reported by `config check`.
pub const GAP_HORIZON: SignedDuration = SignedDuration::from_hours(30 * 24);

/// The longest range a shifts or gaps query may span.
pub const MAX_RANGE: SignedDuration = SignedDuration::from_hours(90 * 24);

/// The longest an override may last.
pub const MAX_OVERRIDE_LENGTH: SignedDuration = SignedDuration::from_hours(366 * 24);

/// The most overrides one answer takes into account for one range; more is refused rather
/// than answered wrong.
pub const MAX_OVERRIDES_IN_RANGE: usize = 5_000;

/// A schedule as the engine needs it: the config's schedule, its time zone resolved.
#[derive(Debug, Clone)]
pub struct ScheduleEntry {
    pub schedule: Schedule,
    pub time_zone: TimeZone,
}

/// A user as the on-call answers need them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    pub id: String,
    pub name: String,
    pub bot: bool,
}

/// The schedules and users declared in the config, part of the [`Catalog`](crate::Catalog)
/// and replaced with it on a reload.
#[derive(Debug, Default)]
pub struct ScheduleCatalog {
    schedules: Vec<Arc<ScheduleEntry>>,
    by_id: HashMap<String, usize>,
    users: HashMap<String, UserEntry>,
}

impl ScheduleCatalog {
    /// The config loader has already rejected duplicate ids; should one slip through, the
    /// first declaration wins.
    pub fn new(schedules: Vec<ScheduleEntry>, users: Vec<UserEntry>) -> Self {
        let mut by_id = HashMap::new();
        for (index, entry) in schedules.iter().enumerate() {
            by_id.entry(entry.schedule.id.clone()).or_insert(index);
        }
        let mut by_user = HashMap::new();
        for user in users {
            by_user.entry(user.id.clone()).or_insert(user);
        }
        ScheduleCatalog {
            schedules: schedules.into_iter().map(Arc::new).collect(),
            by_id,
            users: by_user,
        }
    }

    /// Every schedule, in config order.
    pub fn schedules(&self) -> &[Arc<ScheduleEntry>] {
        &self.schedules
    }

    pub fn schedule(&self, id: &str) -> Option<&Arc<ScheduleEntry>> {
        self.by_id.get(id).map(|index| &self.schedules[*index])
    }

    pub fn user(&self, id: &str) -> Option<&UserEntry> {
        self.users.get(id)
    }

    /// The gaps of every schedule in `[from, to)` as the config alone makes them (no
    /// overrides): what `config check` warns about.
    pub fn gaps_without_overrides(&self, from: Timestamp, to: Timestamp) -> Vec<ScheduleGaps> {
        self.schedules
            .iter()
            .map(|entry| ScheduleGaps {
                schedule: entry.schedule.id.clone(),
                gaps: Roster::new(&entry.schedule, &entry.time_zone, &[]).gaps(from, to),
            })
            .filter(|gaps| !gaps.gaps.is_empty())
            .collect()
    }
}

/// Who is on call in one schedule at an instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnCallNow {
    pub schedule: String,
    /// `None`: nobody.
    pub user: Option<String>,
    /// What puts them on call.
    pub source: Option<OnCallBy>,
    /// Until when the answer holds (within the next 30 days; `None` beyond).
    pub until: Option<Timestamp>,
}

/// What puts someone on call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnCallBy {
    /// The schedule's layer, counted from 1 as in the config file.
    Layer(usize),
    /// The stored override with this id.
    Override(i64),
}

/// A shift of one user in one schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserShift {
    pub schedule: String,
    pub start: Timestamp,
    pub end: Timestamp,
}

/// The gaps of one schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleGaps {
    pub schedule: String,
    pub gaps: Vec<Gap>,
}

/// An override as asked for, before it is checked against the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverrideRequest {
    pub schedule: String,
    pub start: Timestamp,
    pub end: Timestamp,
    pub user: String,
    pub replaces: Option<String>,
}

/// Why an on-call call failed. Each client error names the request field at fault.
#[derive(Debug, thiserror::Error)]
pub enum OnCallError {
    #[error("schedule `{0}` is not declared in the config")]
    UnknownSchedule(String),
    #[error("user `{0}` is not declared in the config")]
    UnknownUser(String),
    /// A request field that is wrong, and why.
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl OnCallError {
    fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        OnCallError::Invalid {
            field,
            message: message.into(),
        }
    }

    /// The request field at fault, if the request is at fault.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            OnCallError::UnknownSchedule(_) => Some("schedule"),
            OnCallError::UnknownUser(_) => Some("user"),
            OnCallError::Invalid { field, .. } => Some(field),
            OnCallError::Engine(_) => None,
        }
    }
}

/// Checks a `[from, to)` range of a query: `to` after `from`, at most [`MAX_RANGE`] long.
pub fn check_range(from: Timestamp, to: Timestamp) -> Result<(), OnCallError> {
    if to <= from {
        return Err(OnCallError::invalid(
            "to",
            format!("to ({to}) must be after from ({from})"),
        ));
    }
    if to.duration_since(from) > MAX_RANGE {
        return Err(OnCallError::invalid(
            "to",
            format!(
                "the range from {from} to {to} is longer than {} days; ask for a shorter one",
                MAX_RANGE.as_hours() / 24
            ),
        ));
    }
    Ok(())
}

impl Engine {
    /// The schedules and users of the config in force.
    pub fn schedule_catalog(&self) -> Arc<ScheduleCatalog> {
        self.catalog().schedules()
    }

    /// Who is on call at `at` in one schedule, or in every schedule (config order).
    pub async fn on_call_at(
        &self,
        at: Timestamp,
        schedule: Option<&str>,
    ) -> Result<Vec<OnCallNow>, OnCallError> {
        let catalog = self.schedule_catalog();
        let entries: Vec<&Arc<ScheduleEntry>> = match schedule {
            Some(id) => vec![catalog
                .schedule(id)
                .ok_or_else(|| OnCallError::UnknownSchedule(id.to_owned()))?],
            None => catalog.schedules().iter().collect(),
        };
        let horizon = at.checked_add(GAP_HORIZON).unwrap_or(Timestamp::MAX);
        // Every override that touches the next 30 days matters for `until`.
        let overrides = self.stored_overrides(schedule, at, horizon).await?;
        let mut answers = Vec::with_capacity(entries.len());
        for entry in entries {
            let id = &entry.schedule.id;
            let rows = overrides.get(id.as_str()).map_or(&[][..], Vec::as_slice);
            let core: Vec<Override> = rows.iter().map(OverrideRow::to_core).collect();
            let roster = Roster::new(&entry.schedule, &entry.time_zone, &core);
            let timeline = roster.timeline(at, horizon);
            let first = timeline.first();
            let on_call = first.and_then(|segment| segment.on_call);
            answers.push(OnCallNow {
                schedule: id.clone(),
                user: on_call.map(|on_call| on_call.user.to_owned()),
                source: on_call.map(|on_call| match on_call.source {
                    OnCallSource::Layer(index) => OnCallBy::Layer(index + 1),
                    OnCallSource::Override(index) => OnCallBy::Override(rows[index].id),
                }),
                until: first
                    .map(|segment| segment.end)
                    .filter(|end| *end < horizon),
            });
        }
        Ok(answers)
    }

    /// The shifts of `user` in every schedule over `[from, to)`, by start time.
    pub async fn shifts_of_user(
        &self,
        user: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<UserShift>, OnCallError> {
        check_range(from, to)?;
        let catalog = self.schedule_catalog();
        if catalog.user(user).is_none() {
            return Err(OnCallError::UnknownUser(user.to_owned()));
        }
        let overrides = self.stored_overrides(None, from, to).await?;
        let mut shifts = Vec::new();
        for entry in catalog.schedules() {
            let id = entry.schedule.id.as_str();
            let core: Vec<Override> = overrides
                .get(id)
                .map_or(&[][..], Vec::as_slice)
                .iter()
                .map(OverrideRow::to_core)
                .collect();
            let roster = Roster::new(&entry.schedule, &entry.time_zone, &core);
            shifts.extend(roster.shifts_of(user, from, to).into_iter().map(
                |Shift { start, end, .. }| UserShift {
                    schedule: id.to_owned(),
                    start,
                    end,
                },
            ));
        }
        shifts.sort_by(|a, b| (a.start, &a.schedule).cmp(&(b.start, &b.schedule)));
        Ok(shifts)
    }

    /// The ranges of `[from, to)` where `schedule` has nobody on call, overrides included.
    pub async fn schedule_gaps(
        &self,
        schedule: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Gap>, OnCallError> {
        check_range(from, to)?;
        let catalog = self.schedule_catalog();
        let entry = catalog
            .schedule(schedule)
            .ok_or_else(|| OnCallError::UnknownSchedule(schedule.to_owned()))?;
        let overrides = self.stored_overrides(Some(schedule), from, to).await?;
        let core: Vec<Override> = overrides
            .get(schedule)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .map(OverrideRow::to_core)
            .collect();
        Ok(Roster::new(&entry.schedule, &entry.time_zone, &core).gaps(from, to))
    }

    /// The gaps of every schedule in `[from, to)`, overrides included; schedules without
    /// gaps are left out. `gaps_in_next(SignedDuration::from_hours(24))` is what a notice
    /// "nobody is on call tomorrow from ... to ..." needs.
    pub async fn gaps_between(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<ScheduleGaps>, OnCallError> {
        check_range(from, to)?;
        let catalog = self.schedule_catalog();
        let overrides = self.stored_overrides(None, from, to).await?;
        let mut all = Vec::new();
        for entry in catalog.schedules() {
            let id = entry.schedule.id.as_str();
            let core: Vec<Override> = overrides
                .get(id)
                .map_or(&[][..], Vec::as_slice)
                .iter()
                .map(OverrideRow::to_core)
                .collect();
            let gaps = Roster::new(&entry.schedule, &entry.time_zone, &core).gaps(from, to);
            if !gaps.is_empty() {
                all.push(ScheduleGaps {
                    schedule: id.to_owned(),
                    gaps,
                });
            }
        }
        Ok(all)
    }

    /// The gaps of every schedule from the clock's `now` for `ahead` (at most 90 days).
    pub async fn gaps_in_next(
        &self,
        ahead: SignedDuration,
    ) -> Result<Vec<ScheduleGaps>, OnCallError> {
        let now = self.now();
        let to = now.checked_add(ahead).unwrap_or(Timestamp::MAX);
        self.gaps_between(now, to).await
    }

    /// Checks an override against the config in force (the schedule exists; the users exist,
    /// are not bots, and the replaced one is a member of the schedule) and the clock (it
    /// ends after now, lasts at most a year), then stores it.
    pub async fn create_override(
        &self,
        request: &OverrideRequest,
        actor: &Actor,
    ) -> Result<OverrideRow, OnCallError> {
        let catalog = self.schedule_catalog();
        let entry = catalog
            .schedule(&request.schedule)
            .ok_or_else(|| OnCallError::UnknownSchedule(request.schedule.clone()))?;
        if request.end <= request.start {
            return Err(OnCallError::invalid(
                "end",
                format!(
                    "end ({}) must be after start ({})",
                    request.end, request.start
                ),
            ));
        }
        let now = self.now();
        if request.end <= now {
            return Err(OnCallError::invalid(
                "end",
                format!(
                    "end ({}) is in the past; an override can only change who is on call from now on",
                    request.end
                ),
            ));
        }
        if request.end.duration_since(request.start) > MAX_OVERRIDE_LENGTH {
            return Err(OnCallError::invalid(
                "end",
                format!(
                    "an override lasts at most {} days; change the schedule in the config for longer",
                    MAX_OVERRIDE_LENGTH.as_hours() / 24
                ),
            ));
        }
        check_person(&catalog, "user", &request.user)?;
        if let Some(replaced) = &request.replaces {
            check_person(&catalog, "replaces", replaced)?;
            if replaced == &request.user {
                return Err(OnCallError::invalid(
                    "replaces",
                    format!("`{replaced}` cannot replace themselves; leave replaces out or name someone else"),
                ));
            }
            let member = entry
                .schedule
                .layers
                .iter()
                .any(|layer| layer.members.iter().any(|member| member == replaced));
            if !member {
                return Err(OnCallError::invalid(
                    "replaces",
                    format!(
                        "`{replaced}` is not a member of schedule `{}`, so there is nobody to replace",
                        request.schedule
                    ),
                ));
            }
        }
        let new = NewOverride {
            schedule: request.schedule.clone(),
            start: request.start,
            end: request.end,
            user: request.user.clone(),
            replaces: request.replaces.clone(),
            created_by: actor.to_string(),
        };
        self.timed_store("create_override", self.store().create_override(&new, now))
            .await
    }

    /// The overrides of a schedule that overlap `[from, to)` (each bound open when `None`),
    /// newest first.
    pub async fn schedule_overrides(
        &self,
        schedule: &str,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        page: PageRequest,
    ) -> Result<Page<OverrideRow>, OnCallError> {
        if self.schedule_catalog().schedule(schedule).is_none() {
            return Err(OnCallError::UnknownSchedule(schedule.to_owned()));
        }
        let filter = OverrideFilter {
            schedule: Some(schedule.to_owned()),
            from,
            to,
        };
        self.timed_store("overrides", self.store().overrides(&filter, page))
            .await
    }

    /// One override of a schedule (in the config in force).
    pub async fn schedule_override(
        &self,
        schedule: &str,
        id: i64,
    ) -> Result<OverrideRow, OnCallError> {
        if self.schedule_catalog().schedule(schedule).is_none() {
            return Err(OnCallError::UnknownSchedule(schedule.to_owned()));
        }
        self.timed_store(
            "schedule_override",
            self.store().schedule_override(schedule, id),
        )
        .await
    }

    /// Deletes an override of a schedule. The schedule must be in the config in force; an
    /// unknown override id is the store's `NotFound`.
    pub async fn delete_override(
        &self,
        schedule: &str,
        id: i64,
    ) -> Result<OverrideRow, OnCallError> {
        if self.schedule_catalog().schedule(schedule).is_none() {
            return Err(OnCallError::UnknownSchedule(schedule.to_owned()));
        }
        self.timed_store(
            "delete_override",
            self.store().delete_override(schedule, id),
        )
        .await
    }

    async fn timed_store<T>(
        &self,
        operation: &'static str,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, OnCallError> {
        let started = Instant::now();
        let result = call.await;
        self.metrics()
            .observe_store(operation, started.elapsed().as_secs_f64());
        result.map_err(|source| match source {
            StoreError::Invalid(message) => OnCallError::Invalid {
                field: "body",
                message,
            },
            source => OnCallError::Engine(EngineError::store(operation, source)),
        })
    }

    /// The stored overrides overlapping `[from, to)` of one schedule or all, by schedule, in
    /// the order they were made (oldest first, as [`Roster`] takes them).
    async fn stored_overrides(
        &self,
        schedule: Option<&str>,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<HashMap<String, Vec<OverrideRow>>, OnCallError> {
        let filter = OverrideFilter {
            schedule: schedule.map(str::to_owned),
            from: Some(from),
            to: Some(to),
        };
        let mut rows = Vec::new();
        let mut page = PageRequest::first(PageRequest::MAX_LIMIT);
        loop {
            let listed = self
                .timed_store("overrides", self.store().overrides(&filter, page))
                .await?;
            rows.extend(listed.items);
            if rows.len() > MAX_OVERRIDES_IN_RANGE {
                return Err(OnCallError::invalid(
                    "to",
                    format!(
                        "more than {MAX_OVERRIDES_IN_RANGE} overrides overlap {from} to {to}; ask for a shorter range or delete old overrides"
                    ),
                ));
            }
            match listed.next {
                Some(next) => page = PageRequest::new(Some(next), PageRequest::MAX_LIMIT),
                None => break,
            }
        }
        let mut by_schedule: HashMap<String, Vec<OverrideRow>> = HashMap::new();
        // Newest first from the store; the roster wants them in the order they were made.
        for row in rows.into_iter().rev() {
            by_schedule
                .entry(row.schedule.clone())
                .or_default()
                .push(row);
        }
        Ok(by_schedule)
    }
}

fn check_person(
    catalog: &ScheduleCatalog,
    field: &'static str,
    id: &str,
) -> Result<(), OnCallError> {
    match catalog.user(id) {
        None => Err(OnCallError::invalid(
            field,
            format!("user `{id}` is not declared in the config"),
        )),
        Some(user) if user.bot => Err(OnCallError::invalid(
            field,
            format!("`{id}` is a bot and can never be on call; name a person"),
        )),
        Some(_) => Ok(()),
    }
}
