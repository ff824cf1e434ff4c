//! What the public status page shows beyond monitors: published incidents and their public
//! updates, maintenance windows, and operators' overrides of component statuses. The
//! interface, its rows, and the SQL both backends run.
//!
//! Statuses, impacts and component ids are text here; the web layer checks them against
//! Statuspage's names and the config in force before it calls the store. The store checks
//! what it can check alone (text it can keep, a window that ends after it starts, an incident
//! that exists).

use async_trait::async_trait;
use tocsin_core::{Actor, IncidentNumber, IncidentRef, TimelineData, TimelineRecord, Timestamp};

use crate::decode::{self, StoredRow};
use crate::sql::{append_timeline, check_text, Arg, Connection};
use crate::{StoreError, TimelineEntry};

/// The most incidents or maintenance windows one read returns.
pub const MAX_STATUS_ROWS: usize = 500;
/// The most updates read per incident (the newest).
pub const MAX_UPDATES_PER_INCIDENT: usize = 200;
/// The most component overrides one read returns (components are declared in the config).
pub const MAX_COMPONENT_OVERRIDES: usize = 1_000;

/// A public update to post on an incident; the first one publishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewStatusUpdate {
    pub incident: IncidentNumber,
    /// `investigating`, `identified`, `monitoring` or `resolved`.
    pub status: String,
    pub message: String,
    /// The components it sets, with the status each is in because of the incident.
    pub affected: Vec<(String, String)>,
    /// The public title: required to publish, and renames a published incident when given.
    pub name: Option<String>,
    /// `none`, `minor`, `major` or `critical`: required to publish, changes it when given.
    pub impact: Option<String>,
    pub by: Actor,
}

/// A published incident, as the status page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicIncident {
    pub incident: IncidentNumber,
    /// Opaque and stable: the incident's id on the status page.
    pub public_id: String,
    pub name: String,
    pub impact: String,
    /// The status of its latest update.
    pub status: String,
    /// When the incident began (its first alert), as the status page says.
    pub started_at: Timestamp,
    pub published_at: Timestamp,
    pub updated_at: Timestamp,
    /// When an update first said `monitoring`.
    pub monitoring_at: Option<Timestamp>,
    /// When an update said `resolved` (cleared by a later update that reopens it).
    pub resolved_at: Option<Timestamp>,
    /// Newest first, at most [`MAX_UPDATES_PER_INCIDENT`].
    pub updates: Vec<StatusUpdateRow>,
}

/// One public update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdateRow {
    pub id: i64,
    pub status: String,
    pub message: String,
    pub affected: Vec<(String, String)>,
    pub created_at: Timestamp,
}

/// A maintenance window to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMaintenance {
    pub name: String,
    /// What readers are told.
    pub message: String,
    /// Component ids.
    pub components: Vec<String>,
    pub starts_at: Timestamp,
    /// After `starts_at`.
    pub ends_at: Timestamp,
    pub by: Actor,
}

/// A stored maintenance window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenanceRow {
    pub id: i64,
    pub name: String,
    pub message: String,
    pub components: Vec<String>,
    pub starts_at: Timestamp,
    /// When it ends: as scheduled, or when it was cancelled while it ran.
    pub ends_at: Timestamp,
    pub created_at: Timestamp,
    pub created_by: String,
    pub updated_at: Timestamp,
    /// When it was cancelled; a window cancelled before it began never shows.
    pub cancelled_at: Option<Timestamp>,
}

impl MaintenanceRow {
    /// Whether it is in force at `now`.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.starts_at <= now && now < self.ends_at && self.starts_before_cancel()
    }

    /// Whether it was not cancelled before it began (so it is shown).
    pub fn starts_before_cancel(&self) -> bool {
        self.cancelled_at.is_none_or(|at| at > self.starts_at)
    }
}

/// An operator's override of a component's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentOverride {
    pub component: String,
    pub status: String,
    pub set_at: Timestamp,
    pub set_by: String,
}

/// Published incidents, maintenance windows and component overrides.
#[async_trait]
pub trait StatusStore: Send + Sync {
    /// Posts a public update in one transaction with its timeline entry (`status.updated`);
    /// the first update publishes the incident and needs `name` and `impact`. `NotFound` for
    /// an incident that does not exist; `Invalid` (naming the field) when publishing without a
    /// name or an impact, or for text the store cannot keep.
    async fn post_status_update(
        &self,
        update: &NewStatusUpdate,
        now: Timestamp,
    ) -> Result<(PublicIncident, TimelineEntry), StoreError>;

    /// The incident as published, `None` while it is internal.
    async fn public_incident(
        &self,
        incident: IncidentNumber,
    ) -> Result<Option<PublicIncident>, StoreError>;

    /// Published incidents that are not resolved, or were updated at or after `since`; newest
    /// published first, at most `limit` (and [`MAX_STATUS_ROWS`]).
    async fn public_incidents(
        &self,
        since: Timestamp,
        limit: usize,
    ) -> Result<Vec<PublicIncident>, StoreError>;

    /// Stores a window, stamped `now`. An end not after the start is `Invalid`.
    async fn create_maintenance(
        &self,
        new: &NewMaintenance,
        now: Timestamp,
    ) -> Result<MaintenanceRow, StoreError>;

    /// Cancels a window: one that has not begun never shows; one in force ends now. `NotFound`
    /// for no such window; `Conflict` when it is over or cancelled already.
    async fn cancel_maintenance(
        &self,
        id: i64,
        now: Timestamp,
    ) -> Result<MaintenanceRow, StoreError>;

    async fn maintenance(&self, id: i64) -> Result<MaintenanceRow, StoreError>;

    /// Windows that end after `ending_after` (cancelled ones included), by start, at most
    /// `limit` (and [`MAX_STATUS_ROWS`]).
    async fn maintenances(
        &self,
        ending_after: Timestamp,
        limit: usize,
    ) -> Result<Vec<MaintenanceRow>, StoreError>;

    /// Sets (`Some`) or clears (`None`) the override of a component; returns the override in
    /// force afterwards.
    async fn set_component_override(
        &self,
        component: &str,
        status: Option<&str>,
        by: &Actor,
        now: Timestamp,
    ) -> Result<Option<ComponentOverride>, StoreError>;

    /// Every override, by component id (at most [`MAX_COMPONENT_OVERRIDES`]).
    async fn component_overrides(&self) -> Result<Vec<ComponentOverride>, StoreError>;
}

const INCIDENT_COLUMNS: &str = "incident_number, public_id, name, impact, status, started_at, \
    published_at, updated_at, monitoring_at, resolved_at";
const UPDATE_COLUMNS: &str = "id, incident_number, status, message, affected, created_at";
const MAINTENANCE_COLUMNS: &str = "id, name, message, components, starts_at, ends_at, \
    created_at, created_by, updated_at, cancelled_at";

fn encode_affected(affected: &[(String, String)]) -> String {
    let list: Vec<serde_json::Value> = affected
        .iter()
        .map(|(component, status)| serde_json::json!({"component": component, "status": status}))
        .collect();
    serde_json::Value::Array(list).to_string()
}

fn decode_affected(text: &str) -> Result<Vec<(String, String)>, StoreError> {
    let value = decode::json("affected", text)?;
    let corrupt = || StoreError::Corrupt(format!("status_updates.affected is not a list: {text}"));
    value
        .as_array()
        .ok_or_else(corrupt)?
        .iter()
        .map(|item| {
            let pair = || {
                Some((
                    item.get("component")?.as_str()?.to_owned(),
                    item.get("status")?.as_str()?.to_owned(),
                ))
            };
            pair().ok_or_else(corrupt)
        })
        .collect()
}

fn encode_list(items: &[String]) -> String {
    serde_json::Value::from(items.to_vec()).to_string()
}

fn decode_list(column: &str, text: &str) -> Result<Vec<String>, StoreError> {
    let value = decode::json(column, text)?;
    value
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .map(|item| item.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| StoreError::Corrupt(format!("{column} is not a list of text: {text}")))
}

fn read_incident(row: &impl StoredRow) -> Result<PublicIncident, StoreError> {
    Ok(PublicIncident {
        incident: IncidentNumber(row.integer("incident_number")?),
        public_id: row.text("public_id")?,
        name: row.text("name")?,
        impact: row.text("impact")?,
        status: row.text("status")?,
        started_at: decode::timestamp("started_at", row.integer("started_at")?)?,
        published_at: decode::timestamp("published_at", row.integer("published_at")?)?,
        updated_at: decode::timestamp("updated_at", row.integer("updated_at")?)?,
        monitoring_at: decode::optional_timestamp(
            "monitoring_at",
            row.optional_integer("monitoring_at")?,
        )?,
        resolved_at: decode::optional_timestamp(
            "resolved_at",
            row.optional_integer("resolved_at")?,
        )?,
        updates: Vec::new(),
    })
}

fn read_update(row: &impl StoredRow) -> Result<StatusUpdateRow, StoreError> {
    Ok(StatusUpdateRow {
        id: row.integer("id")?,
        status: row.text("status")?,
        message: row.text("message")?,
        affected: decode_affected(&row.text("affected")?)?,
        created_at: decode::timestamp("created_at", row.integer("created_at")?)?,
    })
}

fn read_maintenance(row: &impl StoredRow) -> Result<MaintenanceRow, StoreError> {
    Ok(MaintenanceRow {
        id: row.integer("id")?,
        name: row.text("name")?,
        message: row.text("message")?,
        components: decode_list("components", &row.text("components")?)?,
        starts_at: decode::timestamp("starts_at", row.integer("starts_at")?)?,
        ends_at: decode::timestamp("ends_at", row.integer("ends_at")?)?,
        created_at: decode::timestamp("created_at", row.integer("created_at")?)?,
        created_by: row.text("created_by")?,
        updated_at: decode::timestamp("updated_at", row.integer("updated_at")?)?,
        cancelled_at: decode::optional_timestamp(
            "cancelled_at",
            row.optional_integer("cancelled_at")?,
        )?,
    })
}

fn limit_arg(limit: usize, max: usize) -> i64 {
    i64::try_from(limit.clamp(1, max)).unwrap_or(1)
}

/// Refuses what no store keeps, before anything is written.
pub fn check_new_status_update(update: &NewStatusUpdate) -> Result<(), StoreError> {
    check_text("status", &update.status)?;
    check_text("message", &update.message)?;
    check_text("name", update.name.as_deref().unwrap_or_default())?;
    check_text("impact", update.impact.as_deref().unwrap_or_default())?;
    for (component, status) in &update.affected {
        check_text("components", component)?;
        check_text("components", status)?;
    }
    if update.message.trim().is_empty() {
        return Err(StoreError::Invalid(
            "message is empty: say what readers should know".to_owned(),
        ));
    }
    if update
        .name
        .as_deref()
        .is_some_and(|name| name.trim().is_empty())
    {
        return Err(StoreError::Invalid(
            "name is empty: give the incident a public title".to_owned(),
        ));
    }
    Ok(())
}

async fn read_updates<C: Connection>(
    conn: &mut C,
    incident: &mut PublicIncident,
) -> Result<(), StoreError> {
    let rows = conn
        .fetch_all(
            &format!(
                "SELECT {UPDATE_COLUMNS} FROM status_updates WHERE incident_number = $1
                 ORDER BY id DESC LIMIT $2"
            ),
            &[
                Arg::Integer(incident.incident.0),
                Arg::Integer(limit_arg(
                    MAX_UPDATES_PER_INCIDENT,
                    MAX_UPDATES_PER_INCIDENT,
                )),
            ],
        )
        .await?;
    incident.updates = rows.iter().map(read_update).collect::<Result<_, _>>()?;
    Ok(())
}

pub async fn public_incident<C: Connection>(
    conn: &mut C,
    number: IncidentNumber,
) -> Result<Option<PublicIncident>, StoreError> {
    let Some(row) = conn
        .fetch_optional(
            &format!("SELECT {INCIDENT_COLUMNS} FROM status_incidents WHERE incident_number = $1"),
            &[Arg::Integer(number.0)],
        )
        .await?
    else {
        return Ok(None);
    };
    let mut incident = read_incident(&row)?;
    read_updates(conn, &mut incident).await?;
    Ok(Some(incident))
}

pub async fn public_incidents<C: Connection>(
    conn: &mut C,
    since: Timestamp,
    limit: usize,
) -> Result<Vec<PublicIncident>, StoreError> {
    let rows = conn
        .fetch_all(
            &format!(
                "SELECT {INCIDENT_COLUMNS} FROM status_incidents
                 WHERE resolved_at IS NULL OR updated_at >= $1
                 ORDER BY published_at DESC, incident_number DESC LIMIT $2"
            ),
            &[
                Arg::Integer(since.as_microsecond()),
                Arg::Integer(limit_arg(limit, MAX_STATUS_ROWS)),
            ],
        )
        .await?;
    let mut incidents: Vec<PublicIncident> =
        rows.iter().map(read_incident).collect::<Result<_, _>>()?;
    for incident in &mut incidents {
        read_updates(conn, incident).await?;
    }
    Ok(incidents)
}

/// The opaque id an incident gets when it is published.
fn public_id(number: IncidentNumber, now: Timestamp) -> String {
    use std::hash::{Hash, Hasher};
    // Stored once, so the hash needs to be stable only within this call.
    let mut hasher = std::hash::DefaultHasher::new();
    (number.0, now.as_microsecond()).hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

pub async fn post_status_update<C: Connection>(
    conn: &mut C,
    update: &NewStatusUpdate,
    now: Timestamp,
) -> Result<(PublicIncident, TimelineEntry), StoreError> {
    check_new_status_update(update)?;
    let number = update.incident;
    let started = conn
        .fetch_optional(
            "SELECT impact_started_at FROM incidents WHERE number = $1",
            &[Arg::Integer(number.0)],
        )
        .await?
        .ok_or_else(|| StoreError::not_found(format!("incident {}", number.0)))?;
    let started_at = started.integer("impact_started_at")?;
    let micros = now.as_microsecond();
    let resolved = update.status == "resolved";
    let existing = public_incident(conn, number).await?;
    let published = existing.is_none();
    match existing {
        None => {
            let name = update.name.as_deref().ok_or_else(|| {
                StoreError::Invalid(format!(
                    "incident {} is not published yet: give it a public title (name) to publish it",
                    number.0
                ))
            })?;
            let impact = update.impact.as_deref().ok_or_else(|| {
                StoreError::Invalid(format!(
                    "incident {} is not published yet: give its impact (none, minor, major or \
                     critical) to publish it",
                    number.0
                ))
            })?;
            conn.execute(
                &format!(
                    "INSERT INTO status_incidents ({INCIDENT_COLUMNS})
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9)"
                ),
                &[
                    Arg::Integer(number.0),
                    Arg::Text(&public_id(number, now)),
                    Arg::Text(name),
                    Arg::Text(impact),
                    Arg::Text(&update.status),
                    Arg::Integer(started_at),
                    Arg::Integer(micros),
                    Arg::OptionalInteger((update.status == "monitoring").then_some(micros)),
                    Arg::OptionalInteger(resolved.then_some(micros)),
                ],
            )
            .await?;
        }
        Some(_) => {
            conn.execute(
                "UPDATE status_incidents SET status = $2, updated_at = $3,
                     name = COALESCE($4, name), impact = COALESCE($5, impact),
                     monitoring_at = CASE WHEN $2 = 'monitoring' AND monitoring_at IS NULL
                                          THEN $3 ELSE monitoring_at END,
                     resolved_at = CASE WHEN $2 = 'resolved' THEN COALESCE(resolved_at, $3)
                                        ELSE NULL END
                 WHERE incident_number = $1",
                &[
                    Arg::Integer(number.0),
                    Arg::Text(&update.status),
                    Arg::Integer(micros),
                    Arg::OptionalText(update.name.as_deref()),
                    Arg::OptionalText(update.impact.as_deref()),
                ],
            )
            .await?;
        }
    }
    conn.execute(
        "INSERT INTO status_updates (incident_number, status, message, affected, created_at,
             created_by)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            Arg::Integer(number.0),
            Arg::Text(&update.status),
            Arg::Text(&update.message),
            Arg::Text(&encode_affected(&update.affected)),
            Arg::Integer(micros),
            Arg::Text(update.by.as_str()),
        ],
    )
    .await?;
    let entries = append_timeline(
        conn,
        &[TimelineRecord {
            incident: IncidentRef::Existing(number),
            at: now,
            actor: update.by.clone(),
            data: TimelineData::StatusUpdated {
                status: update.status.clone(),
                message: update.message.clone(),
                affected: update.affected.clone(),
                published,
            },
        }],
    )
    .await?;
    let incident = public_incident(conn, number)
        .await?
        .ok_or_else(|| StoreError::Corrupt("a published incident did not read back".to_owned()))?;
    let entry = entries
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::Corrupt("a timeline entry did not read back".to_owned()))?;
    Ok((incident, entry))
}

/// Refuses what no store keeps.
pub fn check_new_maintenance(new: &NewMaintenance) -> Result<(), StoreError> {
    if new.ends_at <= new.starts_at {
        return Err(StoreError::Invalid(format!(
            "end ({}) must be after start ({})",
            new.ends_at, new.starts_at
        )));
    }
    if new.name.trim().is_empty() {
        return Err(StoreError::Invalid(
            "name is empty: say what the maintenance is".to_owned(),
        ));
    }
    check_text("name", &new.name)?;
    check_text("message", &new.message)?;
    for component in &new.components {
        check_text("components", component)?;
    }
    Ok(())
}

pub async fn create_maintenance<C: Connection>(
    conn: &mut C,
    new: &NewMaintenance,
    now: Timestamp,
) -> Result<MaintenanceRow, StoreError> {
    check_new_maintenance(new)?;
    let row = conn
        .fetch_one(
            &format!(
                "INSERT INTO status_maintenances
                   (name, message, components, starts_at, ends_at, created_at, created_by,
                    updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $6)
                 RETURNING {MAINTENANCE_COLUMNS}"
            ),
            &[
                Arg::Text(&new.name),
                Arg::Text(&new.message),
                Arg::Text(&encode_list(&new.components)),
                Arg::Integer(new.starts_at.as_microsecond()),
                Arg::Integer(new.ends_at.as_microsecond()),
                Arg::Integer(now.as_microsecond()),
                Arg::Text(new.by.as_str()),
            ],
        )
        .await?;
    read_maintenance(&row)
}

pub async fn maintenance<C: Connection>(
    conn: &mut C,
    id: i64,
) -> Result<MaintenanceRow, StoreError> {
    let row = conn
        .fetch_optional(
            &format!("SELECT {MAINTENANCE_COLUMNS} FROM status_maintenances WHERE id = $1"),
            &[Arg::Integer(id)],
        )
        .await?
        .ok_or_else(|| StoreError::not_found(format!("maintenance {id}")))?;
    read_maintenance(&row)
}

pub async fn cancel_maintenance<C: Connection>(
    conn: &mut C,
    id: i64,
    now: Timestamp,
) -> Result<MaintenanceRow, StoreError> {
    let window = maintenance(conn, id).await?;
    if window.cancelled_at.is_some() {
        return Err(StoreError::Conflict(format!(
            "maintenance {id} was cancelled already"
        )));
    }
    if window.ends_at <= now {
        return Err(StoreError::Conflict(format!(
            "maintenance {id} is over (it ended at {})",
            window.ends_at
        )));
    }
    let micros = now.as_microsecond();
    let row = conn
        .fetch_one(
            &format!(
                "UPDATE status_maintenances SET cancelled_at = $2, updated_at = $2,
                     ends_at = CASE WHEN starts_at <= $2 THEN $2 ELSE ends_at END
                 WHERE id = $1 RETURNING {MAINTENANCE_COLUMNS}"
            ),
            &[Arg::Integer(id), Arg::Integer(micros)],
        )
        .await?;
    read_maintenance(&row)
}

pub async fn maintenances<C: Connection>(
    conn: &mut C,
    ending_after: Timestamp,
    limit: usize,
) -> Result<Vec<MaintenanceRow>, StoreError> {
    let rows = conn
        .fetch_all(
            &format!(
                "SELECT {MAINTENANCE_COLUMNS} FROM status_maintenances WHERE ends_at > $1
                 ORDER BY starts_at, id LIMIT $2"
            ),
            &[
                Arg::Integer(ending_after.as_microsecond()),
                Arg::Integer(limit_arg(limit, MAX_STATUS_ROWS)),
            ],
        )
        .await?;
    rows.iter().map(read_maintenance).collect()
}

pub async fn set_component_override<C: Connection>(
    conn: &mut C,
    component: &str,
    status: Option<&str>,
    by: &Actor,
    now: Timestamp,
) -> Result<Option<ComponentOverride>, StoreError> {
    check_text("component", component)?;
    match status {
        None => {
            conn.execute(
                "DELETE FROM status_component_overrides WHERE component_id = $1",
                &[Arg::Text(component)],
            )
            .await?;
            Ok(None)
        }
        Some(status) => {
            check_text("status", status)?;
            conn.execute(
                "INSERT INTO status_component_overrides (component_id, status, set_at, set_by)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (component_id) DO UPDATE SET status = excluded.status,
                     set_at = excluded.set_at, set_by = excluded.set_by",
                &[
                    Arg::Text(component),
                    Arg::Text(status),
                    Arg::Integer(now.as_microsecond()),
                    Arg::Text(by.as_str()),
                ],
            )
            .await?;
            Ok(Some(ComponentOverride {
                component: component.to_owned(),
                status: status.to_owned(),
                set_at: now,
                set_by: by.as_str().to_owned(),
            }))
        }
    }
}

pub async fn component_overrides<C: Connection>(
    conn: &mut C,
) -> Result<Vec<ComponentOverride>, StoreError> {
    let rows = conn
        .fetch_all(
            "SELECT component_id, status, set_at, set_by FROM status_component_overrides
             ORDER BY component_id LIMIT $1",
            &[Arg::Integer(limit_arg(
                MAX_COMPONENT_OVERRIDES,
                MAX_COMPONENT_OVERRIDES,
            ))],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(ComponentOverride {
                component: row.text("component_id")?,
                status: row.text("status")?,
                set_at: decode::timestamp("set_at", row.integer("set_at")?)?,
                set_by: row.text("set_by")?,
            })
        })
        .collect()
}

/// Implements [`StatusStore`] for a backend with the functions of this module, with the
/// backend's `read!` and `write!` macros in scope.
#[macro_export]
macro_rules! impl_status_store {
    ($store:ty) => {
        #[$crate::async_trait]
        impl $crate::status::StatusStore for $store {
            #[tracing::instrument(skip_all, fields(incident = update.incident.0), err(level = "debug"))]
            async fn post_status_update(
                &self,
                update: &$crate::status::NewStatusUpdate,
                now: tocsin_core::Timestamp,
            ) -> Result<($crate::status::PublicIncident, $crate::TimelineEntry), $crate::StoreError>
            {
                $crate::status::check_new_status_update(update)?;
                write!(self, "posting a status update", |conn| {
                    $crate::status::post_status_update(conn, update, now)
                })
            }

            async fn public_incident(
                &self,
                incident: tocsin_core::IncidentNumber,
            ) -> Result<Option<$crate::status::PublicIncident>, $crate::StoreError> {
                read!(self, |conn| $crate::status::public_incident(conn, incident))
            }

            async fn public_incidents(
                &self,
                since: tocsin_core::Timestamp,
                limit: usize,
            ) -> Result<Vec<$crate::status::PublicIncident>, $crate::StoreError> {
                read!(self, |conn| $crate::status::public_incidents(
                    conn, since, limit
                ))
            }

            async fn create_maintenance(
                &self,
                new: &$crate::status::NewMaintenance,
                now: tocsin_core::Timestamp,
            ) -> Result<$crate::status::MaintenanceRow, $crate::StoreError> {
                $crate::status::check_new_maintenance(new)?;
                write!(self, "creating a maintenance window", |conn| {
                    $crate::status::create_maintenance(conn, new, now)
                })
            }

            async fn cancel_maintenance(
                &self,
                id: i64,
                now: tocsin_core::Timestamp,
            ) -> Result<$crate::status::MaintenanceRow, $crate::StoreError> {
                write!(self, "cancelling a maintenance window", |conn| {
                    $crate::status::cancel_maintenance(conn, id, now)
                })
            }

            async fn maintenance(
                &self,
                id: i64,
            ) -> Result<$crate::status::MaintenanceRow, $crate::StoreError> {
                read!(self, |conn| $crate::status::maintenance(conn, id))
            }

            async fn maintenances(
                &self,
                ending_after: tocsin_core::Timestamp,
                limit: usize,
            ) -> Result<Vec<$crate::status::MaintenanceRow>, $crate::StoreError> {
                read!(self, |conn| $crate::status::maintenances(
                    conn,
                    ending_after,
                    limit
                ))
            }

            async fn set_component_override(
                &self,
                component: &str,
                status: Option<&str>,
                by: &tocsin_core::Actor,
                now: tocsin_core::Timestamp,
            ) -> Result<Option<$crate::status::ComponentOverride>, $crate::StoreError> {
                write!(self, "setting a component override", |conn| {
                    $crate::status::set_component_override(conn, component, status, by, now)
                })
            }

            async fn component_overrides(
                &self,
            ) -> Result<Vec<$crate::status::ComponentOverride>, $crate::StoreError> {
                read!(self, |conn| $crate::status::component_overrides(conn))
            }
        }
    };
}
