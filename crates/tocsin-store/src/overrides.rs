//! Overrides of on-call schedules, made at run time (the schedules themselves are in the config
//! file): the interface, its rows, and the SQL both backends run.
//!
//! The store checks what it can check alone (the end is after the start, text it can keep);
//! whether the schedule and the users exist is the engine's to check against the config in
//! force, before it calls [`OverrideStore::create_override`].

use async_trait::async_trait;
use tocsin_core::Timestamp;

use crate::decode::{self, StoredRow};
use crate::sql::{check_text, Arg, Connection};
use crate::{Page, PageRequest, StoreError};

/// An override to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOverride {
    /// The schedule's id from the config.
    pub schedule: String,
    /// Inclusive.
    pub start: Timestamp,
    /// Exclusive; after `start`.
    pub end: Timestamp,
    /// The user on call instead.
    pub user: String,
    /// Only instead of this user (`None`: instead of whoever the schedule has).
    pub replaces: Option<String>,
    /// Who made it, as a timeline actor is written (`token:<name>`).
    pub created_by: String,
}

/// A stored override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverrideRow {
    pub id: i64,
    pub schedule: String,
    pub start: Timestamp,
    pub end: Timestamp,
    pub user: String,
    pub replaces: Option<String>,
    pub created_by: String,
    pub created_at: Timestamp,
}

impl OverrideRow {
    /// The override as `tocsin_core`'s schedule math takes it.
    pub fn to_core(&self) -> tocsin_core::Override {
        tocsin_core::Override {
            start: self.start,
            end: self.end,
            user: self.user.clone(),
            replaces: self.replaces.clone(),
        }
    }
}

/// Which overrides to list: those of `schedule` (all schedules when `None`) that overlap
/// `[from, to)` (each bound open when `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OverrideFilter {
    pub schedule: Option<String>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

/// Overrides of on-call schedules.
#[async_trait]
pub trait OverrideStore: Send + Sync {
    /// Stores an override, stamped `now`. An end not after the start is `Invalid`, naming the
    /// field; nothing is stored then.
    async fn create_override(
        &self,
        new: &NewOverride,
        now: Timestamp,
    ) -> Result<OverrideRow, StoreError>;

    /// Newest (last made) first, paginated by id.
    async fn overrides(
        &self,
        filter: &OverrideFilter,
        page: PageRequest,
    ) -> Result<Page<OverrideRow>, StoreError>;

    /// One override of a schedule.
    async fn schedule_override(&self, schedule: &str, id: i64) -> Result<OverrideRow, StoreError>;

    /// Deletes one override of a schedule and returns it; `NotFound` when that schedule has no
    /// override with this id.
    async fn delete_override(&self, schedule: &str, id: i64) -> Result<OverrideRow, StoreError>;
}

const OVERRIDE_COLUMNS: &str = "id, schedule_id, starts_at, ends_at, user_id, replaces_user_id, \
    created_by, created_at";

/// Refuses what no store keeps: an end not after the start, and NUL characters in text.
pub fn check_new_override(new: &NewOverride) -> Result<(), StoreError> {
    if new.end <= new.start {
        return Err(StoreError::Invalid(format!(
            "end ({}) must be after start ({})",
            new.end, new.start
        )));
    }
    check_text("schedule", &new.schedule)?;
    check_text("user", &new.user)?;
    check_text("replaces", new.replaces.as_deref().unwrap_or_default())?;
    check_text("created_by", &new.created_by)?;
    Ok(())
}

pub async fn create_override<C: Connection>(
    conn: &mut C,
    new: &NewOverride,
    now: Timestamp,
) -> Result<OverrideRow, StoreError> {
    check_new_override(new)?;
    let mut args = vec![
        Arg::Text(&new.schedule),
        Arg::Integer(new.start.as_microsecond()),
        Arg::Integer(new.end.as_microsecond()),
        Arg::Text(&new.user),
        Arg::Text(&new.created_by),
        Arg::Integer(now.as_microsecond()),
    ];
    let replaces = match &new.replaces {
        Some(replaces) => {
            args.push(Arg::Text(replaces));
            "$7"
        }
        None => "NULL",
    };
    let row = conn
        .fetch_one(
            &format!(
                "INSERT INTO schedule_overrides
                   (schedule_id, starts_at, ends_at, user_id, created_by, created_at,
                    replaces_user_id)
                 VALUES ($1, $2, $3, $4, $5, $6, {replaces})
                 RETURNING {OVERRIDE_COLUMNS}"
            ),
            &args,
        )
        .await?;
    override_row(&row)
}

pub async fn overrides<C: Connection>(
    conn: &mut C,
    filter: &OverrideFilter,
    page: PageRequest,
) -> Result<Page<OverrideRow>, StoreError> {
    let mut sql = format!("SELECT {OVERRIDE_COLUMNS} FROM schedule_overrides WHERE 1 = 1");
    let mut args = Vec::new();
    let mut bind = |sql: &mut String, condition: &str, arg| {
        args.push(arg);
        sql.push_str(&format!(" AND {condition} ${}", args.len()));
    };
    if let Some(schedule) = &filter.schedule {
        if schedule.contains('\0') {
            return Ok(Page {
                items: Vec::new(),
                next: None,
            });
        }
        bind(&mut sql, "schedule_id =", Arg::Text(schedule));
    }
    if let Some(from) = filter.from {
        bind(&mut sql, "ends_at >", Arg::Integer(from.as_microsecond()));
    }
    if let Some(to) = filter.to {
        bind(&mut sql, "starts_at <", Arg::Integer(to.as_microsecond()));
    }
    if let Some(after) = page.after {
        bind(&mut sql, "id <", Arg::Integer(after));
    }
    args.push(Arg::Integer(i64::from(page.limit()) + 1));
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", args.len()));
    let rows = conn.fetch_all(&sql, &args).await?;
    let items = rows
        .iter()
        .map(override_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(page.finish(items, |row| row.id))
}

pub async fn schedule_override<C: Connection>(
    conn: &mut C,
    schedule: &str,
    id: i64,
) -> Result<OverrideRow, StoreError> {
    let not_found = || StoreError::not_found(format!("override {id} of schedule {schedule}"));
    if schedule.contains('\0') {
        return Err(not_found());
    }
    let row = conn
        .fetch_optional(
            &format!(
                "SELECT {OVERRIDE_COLUMNS} FROM schedule_overrides
                 WHERE id = $1 AND schedule_id = $2"
            ),
            &[Arg::Integer(id), Arg::Text(schedule)],
        )
        .await?
        .ok_or_else(not_found)?;
    override_row(&row)
}

pub async fn delete_override<C: Connection>(
    conn: &mut C,
    schedule: &str,
    id: i64,
) -> Result<OverrideRow, StoreError> {
    let not_found = || StoreError::not_found(format!("override {id} of schedule {schedule}"));
    if schedule.contains('\0') {
        return Err(not_found());
    }
    let row = conn
        .fetch_optional(
            &format!(
                "DELETE FROM schedule_overrides WHERE id = $1 AND schedule_id = $2
                 RETURNING {OVERRIDE_COLUMNS}"
            ),
            &[Arg::Integer(id), Arg::Text(schedule)],
        )
        .await?
        .ok_or_else(not_found)?;
    override_row(&row)
}

fn override_row(row: &impl StoredRow) -> Result<OverrideRow, StoreError> {
    Ok(OverrideRow {
        id: row.integer("id")?,
        schedule: row.text("schedule_id")?,
        start: decode::timestamp("starts_at", row.integer("starts_at")?)?,
        end: decode::timestamp("ends_at", row.integer("ends_at")?)?,
        user: row.text("user_id")?,
        replaces: row.optional_text("replaces_user_id")?,
        created_by: row.text("created_by")?,
        created_at: decode::timestamp("created_at", row.integer("created_at")?)?,
    })
}

/// Implements [`OverrideStore`] for a backend with the functions of this module, with the
/// backend's `read!` and `write!` macros in scope (see `impl_store_with_shared_sql!`).
#[macro_export]
macro_rules! impl_override_store_with_shared_sql {
    ($store:ty) => {
        #[$crate::async_trait]
        impl $crate::overrides::OverrideStore for $store {
            #[tracing::instrument(skip_all, fields(schedule = %new.schedule), err(level = "debug"))]
            async fn create_override(
                &self,
                new: &$crate::overrides::NewOverride,
                now: tocsin_core::Timestamp,
            ) -> Result<$crate::overrides::OverrideRow, $crate::StoreError> {
                $crate::overrides::check_new_override(new)?;
                write!(self, "creating an override", |conn| {
                    $crate::overrides::create_override(conn, new, now)
                })
            }

            async fn overrides(
                &self,
                filter: &$crate::overrides::OverrideFilter,
                page: $crate::PageRequest,
            ) -> Result<$crate::Page<$crate::overrides::OverrideRow>, $crate::StoreError> {
                read!(self, |conn| $crate::overrides::overrides(
                    conn, filter, page
                ))
            }

            async fn schedule_override(
                &self,
                schedule: &str,
                id: i64,
            ) -> Result<$crate::overrides::OverrideRow, $crate::StoreError> {
                read!(self, |conn| $crate::overrides::schedule_override(
                    conn, schedule, id
                ))
            }

            #[tracing::instrument(skip_all, fields(schedule = %schedule, id), err(level = "debug"))]
            async fn delete_override(
                &self,
                schedule: &str,
                id: i64,
            ) -> Result<$crate::overrides::OverrideRow, $crate::StoreError> {
                write!(self, "deleting an override", |conn| {
                    $crate::overrides::delete_override(conn, schedule, id)
                })
            }
        }
    };
}
