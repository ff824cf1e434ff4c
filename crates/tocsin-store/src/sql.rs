//! The SQL both backends run, written once.
//!
//! A backend implements [`Connection`] for its database connection (binding [`Arg`]s and
//! reading rows as [`StoredRow`]s) and calls the functions here for everything but ingest,
//! whose hot path each backend writes for its own driver. The dialects agree on all of this
//! text: parameters are `$1`, `$2`, ... (SQLite reads `$N` as the N-th argument); where they do
//! not, [`Dialect`] holds the two spellings.

use async_trait::async_trait;
use tocsin_core::{
    plan_command, Actor, AlertId, Command, CommandPlan, CommandSnapshot, DueWorkChange,
    IncidentNumber, IncidentRef, OutboxMessage, ServiceId, Timestamp, UnloggedFolds,
    ACK_TIMEOUT_KIND, ESCALATION_STEP_KIND,
};

use crate::decode::{self, StoredRow};
use crate::{
    AlertFilter, AlertRow, AlertSummary, ApiToken, ChangeEventRow, CommandOutcome, Counts,
    EventFilter, EventSummary, IncidentFilter, IncidentRow, Page, PageRequest, StoreError,
    StoredEvent, TimelineEntry, TokenScope,
};

/// A value bound to a statement parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arg<'a> {
    Integer(i64),
    OptionalInteger(Option<i64>),
    Text(&'a str),
    OptionalText(Option<&'a str>),
}

/// What differs between the backends' SQL.
#[derive(Debug, Clone, Copy)]
pub struct Dialect {
    /// Appended to a `SELECT` that reads rows the transaction is about to change: PostgreSQL
    /// `FOR UPDATE`; nothing on SQLite, whose write transaction holds the database's one lock.
    pub lock_rows: &'static str,
    /// Follows `FROM alerts` in a query of open alerts across keys: SQLite's planner is told
    /// to use the partial index of open alerts; PostgreSQL picks it by itself.
    pub open_alerts_index: &'static str,
    /// Ends a subquery that picks rows to claim: PostgreSQL `FOR UPDATE SKIP LOCKED`, so
    /// claimers running at once take different rows instead of waiting for each other;
    /// nothing on SQLite.
    pub skip_locked: &'static str,
    /// Whether an alert's events are found by walking its event chain (`alerts.last_event`,
    /// then each event's `prev_event`), as on SQLite, which keeps no index of events by alert;
    /// PostgreSQL keeps one.
    pub alert_event_chains: bool,
}

/// A connection (or a transaction on one) that runs statements.
#[async_trait]
pub trait Connection: Send {
    type Row: StoredRow + Send;

    fn dialect(&self) -> Dialect;

    /// Runs a statement and returns how many rows it changed.
    async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, StoreError>;

    async fn fetch_all(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Vec<Self::Row>, StoreError>;

    async fn fetch_optional(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Option<Self::Row>, StoreError>;

    async fn fetch_one(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Self::Row, StoreError> {
        self.fetch_optional(sql, args).await?.ok_or_else(|| {
            StoreError::Corrupt("a statement that returns a row returned none".to_owned())
        })
    }
}

pub const INCIDENT_COLUMNS: &str = "number, service_id, dedup_key, title, severity, priority, \
    state, open_alerts, created_at, impact_started_at, acknowledged_at, resolved_at, updated_at";

/// Every column of an alert but `details`.
pub const ALERT_SUMMARY_COLUMNS: &str = "id, incident_number, service_id, dedup_key, state, \
    count, first_seen, last_seen, severity, summary, source, acknowledged_at, resolved_at";

/// Every column of an event but `details`.
pub const EVENT_SUMMARY_COLUMNS: &str = "id, service_id, integration, action, dedup_key, \
    severity, summary, source, occurred_at, received_at, alert_id, outcome";

const TIMELINE_COLUMNS: &str = "id, incident_number, at, actor, kind, data";

const TOKEN_COLUMNS: &str = "id, name, scope, created_at, revoked_at";

/// What `decode::unlogged_folds` reads of an alert.
const UNLOGGED_FOLDS_COLUMNS: &str =
    "id, incident_number, dedup_key, unlogged_folds, count, summary, last_seen";

/// A statement with its arguments, built a piece at a time.
struct Query<'a> {
    sql: String,
    args: Vec<Arg<'a>>,
}

impl<'a> Query<'a> {
    fn new(sql: impl Into<String>) -> Self {
        Query {
            sql: sql.into(),
            args: Vec::new(),
        }
    }

    fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends the next parameter's placeholder and binds `arg` to it.
    fn bind(&mut self, arg: Arg<'a>) -> &mut Self {
        self.args.push(arg);
        self.sql.push_str(&format!("${}", self.args.len()));
        self
    }

    /// ` AND column = $n` when there is a value.
    fn filter(&mut self, column: &str, arg: Option<Arg<'a>>) -> &mut Self {
        if let Some(arg) = arg {
            self.push(" AND ").push(column).push(" = ").bind(arg);
        }
        self
    }

    /// Newest first, after the cursor, one more than the page holds.
    fn newest_first(&mut self, column: &str, page: PageRequest) -> &mut Self {
        if let Some(after) = page.after {
            self.push(" AND ")
                .push(column)
                .push(" < ")
                .bind(Arg::Integer(after));
        }
        self.push(" ORDER BY ")
            .push(column)
            .push(" DESC LIMIT ")
            .bind(Arg::Integer(i64::from(page.limit()) + 1))
    }

    async fn fetch_all<C: Connection>(&self, conn: &mut C) -> Result<Vec<C::Row>, StoreError> {
        conn.fetch_all(&self.sql, &self.args).await
    }
}

fn micros(at: Timestamp) -> i64 {
    at.as_microsecond()
}

fn decode_all<R, T>(
    rows: &[R],
    decode: impl Fn(&R) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    rows.iter().map(decode).collect()
}

/// The incident, locked until the transaction ends when `lock` is set (where the dialect locks
/// rows).
pub async fn incident<C: Connection>(
    conn: &mut C,
    number: IncidentNumber,
    lock: bool,
) -> Result<IncidentRow, StoreError> {
    let lock = if lock { conn.dialect().lock_rows } else { "" };
    let row = conn
        .fetch_optional(
            &format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE number = $1{lock}"),
            &[Arg::Integer(number.0)],
        )
        .await?
        .ok_or_else(|| StoreError::not_found(format!("incident {number}")))?;
    decode::incident(&row)
}

/// Newest first.
pub async fn incidents<C: Connection>(
    conn: &mut C,
    filter: &IncidentFilter,
    page: PageRequest,
) -> Result<Page<IncidentRow>, StoreError> {
    let mut query = Query::new(format!(
        "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE 1 = 1"
    ));
    if !filter.states.is_empty() {
        query.push(" AND state IN (");
        for (n, state) in filter.states.iter().enumerate() {
            if n > 0 {
                query.push(", ");
            }
            query.bind(Arg::Text(state.as_str()));
        }
        query.push(")");
    }
    query
        .filter(
            "service_id",
            filter
                .service
                .as_ref()
                .map(|service| Arg::Text(service.as_str())),
        )
        .filter(
            "priority",
            filter.priority.map(|priority| Arg::Text(priority.as_str())),
        )
        .newest_first("number", page);
    let rows = query.fetch_all(conn).await?;
    let items = decode_all(&rows, decode::incident)?;
    Ok(page.finish(items, |incident| incident.number.0))
}

/// One alert with its details.
pub async fn alert<C: Connection>(conn: &mut C, id: AlertId) -> Result<AlertRow, StoreError> {
    let row = conn
        .fetch_optional(
            &format!("SELECT {ALERT_SUMMARY_COLUMNS}, details FROM alerts WHERE id = $1"),
            &[Arg::Integer(id.0)],
        )
        .await?
        .ok_or_else(|| StoreError::not_found(format!("alert {id}")))?;
    decode::alert(&row)
}

/// Newest first, without details.
pub async fn alerts<C: Connection>(
    conn: &mut C,
    filter: &AlertFilter,
    page: PageRequest,
) -> Result<Page<AlertSummary>, StoreError> {
    let mut query = Query::new(format!(
        "SELECT {ALERT_SUMMARY_COLUMNS} FROM alerts WHERE 1 = 1"
    ));
    query
        .filter("state", filter.state.map(|state| Arg::Text(state.as_str())))
        .filter(
            "service_id",
            filter
                .service
                .as_ref()
                .map(|service| Arg::Text(service.as_str())),
        )
        .filter(
            "incident_number",
            filter.incident.map(|incident| Arg::Integer(incident.0)),
        )
        .newest_first("id", page);
    let rows = query.fetch_all(conn).await?;
    let items = decode_all(&rows, decode::alert_summary)?;
    Ok(page.finish(items, |alert| alert.id.0))
}

/// One stored event with its details.
pub async fn event<C: Connection>(conn: &mut C, id: i64) -> Result<StoredEvent, StoreError> {
    let row = conn
        .fetch_optional(
            &format!("SELECT {EVENT_SUMMARY_COLUMNS}, details FROM events WHERE id = $1"),
            &[Arg::Integer(id)],
        )
        .await?
        .ok_or_else(|| StoreError::not_found(format!("event {id}")))?;
    decode::event(&row)
}

/// Newest first, without details.
pub async fn events<C: Connection>(
    conn: &mut C,
    filter: &EventFilter,
    page: PageRequest,
) -> Result<Page<EventSummary>, StoreError> {
    if let (Some(alert), true) = (filter.alert, conn.dialect().alert_event_chains) {
        return alert_events_by_chain(conn, alert, filter, page).await;
    }
    let mut query = Query::new(format!(
        "SELECT {EVENT_SUMMARY_COLUMNS} FROM events WHERE 1 = 1"
    ));
    key_filters(&mut query, filter)
        .filter("alert_id", filter.alert.map(|alert| Arg::Integer(alert.0)))
        .newest_first("id", page);
    let rows = query.fetch_all(conn).await?;
    let items = decode_all(&rows, decode::event_summary)?;
    Ok(page.finish(items, |event| event.id))
}

/// An alert's events, newest first, read by walking its chain. A page that goes on from one of
/// the alert's events (the cursor this function hands out) starts at that event's predecessor
/// and reads only the page; any other cursor walks from the newest event.
async fn alert_events_by_chain<C: Connection>(
    conn: &mut C,
    alert: tocsin_core::AlertId,
    filter: &EventFilter,
    page: PageRequest,
) -> Result<Page<EventSummary>, StoreError> {
    let wanted = i64::from(page.limit()) + 1;
    let start = match page.after {
        None => conn
            .fetch_optional(
                "SELECT last_event AS id FROM alerts WHERE id = $1",
                &[Arg::Integer(alert.0)],
            )
            .await?
            .map(|row| row.optional_integer("id"))
            .transpose()?
            .flatten(),
        Some(after) => {
            let cursor = conn
                .fetch_optional(
                    "SELECT prev_event AS id FROM events WHERE id = $1 AND alert_id = $2",
                    &[Arg::Integer(after), Arg::Integer(alert.0)],
                )
                .await?;
            match cursor {
                Some(row) => row.optional_integer("id")?,
                None => {
                    // Not one of the alert's events: skip along the chain to below it.
                    conn.fetch_optional(
                        "WITH RECURSIVE chain(id) AS (
                             SELECT last_event FROM alerts WHERE id = $1
                             UNION ALL
                             SELECT e.prev_event FROM chain JOIN events e ON e.id = chain.id
                             WHERE chain.id >= $2
                         )
                         SELECT MAX(id) AS id FROM chain WHERE id < $2",
                        &[Arg::Integer(alert.0), Arg::Integer(after)],
                    )
                    .await?
                    .map(|row| row.optional_integer("id"))
                    .transpose()?
                    .flatten()
                }
            }
        }
    };
    let Some(start) = start else {
        return Ok(page.finish(Vec::new(), |event: &EventSummary| event.id));
    };
    let mut query = Query::new(format!(
        // CROSS JOIN keeps SQLite on the chain's rows, each found by its rowid.
        "WITH RECURSIVE chain(event_id, n) AS (
             SELECT $1, 1
             UNION ALL
             SELECT e.prev_event, chain.n + 1 FROM chain JOIN events e ON e.id = chain.event_id
             WHERE e.prev_event IS NOT NULL AND chain.n < $2
         )
         SELECT {EVENT_SUMMARY_COLUMNS} FROM chain CROSS JOIN events ON events.id = chain.event_id
         WHERE 1 = 1"
    ));
    query.args = vec![Arg::Integer(start), Arg::Integer(wanted)];
    key_filters(&mut query, filter)
        .filter("alert_id", Some(Arg::Integer(alert.0)))
        .push(" ORDER BY id DESC LIMIT ")
        .bind(Arg::Integer(wanted));
    let rows = query.fetch_all(conn).await?;
    let items = decode_all(&rows, decode::event_summary)?;
    Ok(page.finish(items, |event| event.id))
}

/// An event list's service and dedup key filters.
fn key_filters<'a, 'q>(query: &'q mut Query<'a>, filter: &'a EventFilter) -> &'q mut Query<'a> {
    query
        .filter(
            "service_id",
            filter
                .service
                .as_ref()
                .map(|service| Arg::Text(service.as_str())),
        )
        .filter(
            "dedup_key",
            filter.dedup_key.as_ref().map(|key| Arg::Text(key.as_str())),
        )
}

/// Oldest first.
pub async fn timeline<C: Connection>(
    conn: &mut C,
    number: IncidentNumber,
    page: PageRequest,
) -> Result<Page<TimelineEntry>, StoreError> {
    incident(conn, number, false).await?;
    let rows = conn
        .fetch_all(
            &format!(
                "SELECT {TIMELINE_COLUMNS} FROM timeline_entries
                 WHERE incident_number = $1 AND id > $2 ORDER BY id LIMIT $3"
            ),
            &[
                Arg::Integer(number.0),
                Arg::Integer(page.after.unwrap_or(0)),
                Arg::Integer(i64::from(page.limit()) + 1),
            ],
        )
        .await?;
    let items = decode_all(&rows, decode::timeline_entry)?;
    Ok(page.finish(items, |entry| entry.id))
}

/// A service's change events, newest first.
pub async fn change_events<C: Connection>(
    conn: &mut C,
    service: &ServiceId,
    page: PageRequest,
) -> Result<Page<ChangeEventRow>, StoreError> {
    let mut query = Query::new(
        "SELECT id, service_id, summary, source, occurred_at, received_at, details, links
         FROM change_events WHERE 1 = 1",
    );
    query
        .filter("service_id", Some(Arg::Text(service.as_str())))
        .newest_first("id", page);
    let rows = query.fetch_all(conn).await?;
    let items = decode_all(&rows, decode::change_event)?;
    Ok(page.finish(items, |change| change.id))
}

/// Open incidents and alerts.
pub async fn counts<C: Connection>(conn: &mut C) -> Result<Counts, StoreError> {
    let row = conn
        .fetch_one(
            "SELECT (SELECT COUNT(*) FROM incidents WHERE state <> 'resolved') AS open_incidents,
                    (SELECT COUNT(*) FROM alerts WHERE state <> 'resolved') AS open_alerts",
            &[],
        )
        .await?;
    Ok(Counts {
        open_incidents: row.integer("open_incidents")?,
        open_alerts: row.integer("open_alerts")?,
    })
}

/// Loads the incident and its open alerts (locked, incident first and alerts in the order
/// ingest locks them), lets `tocsin_core::plan_command` decide, applies the plan, and queues
/// the updates for the channels `policy` gives the incident's service. The caller commits.
pub async fn run_command<C: Connection>(
    conn: &mut C,
    number: IncidentNumber,
    command: &Command,
    actor: &Actor,
    now: Timestamp,
    policy: &dyn crate::updates::ServicePolicy,
) -> Result<CommandOutcome, StoreError> {
    if let Command::AddNote(text) = command {
        check_text("text", text)?;
    }
    check_text("actor", actor.as_str())?;
    let incident = incident(conn, number, true).await?;
    let lock = conn.dialect().lock_rows;
    let rows = conn
        .fetch_all(
            &format!(
                "SELECT id, dedup_key, state, acknowledged_at, count, summary, last_seen,
                        unlogged_folds, folds_logged_at
                 FROM alerts WHERE incident_number = $1 AND state <> 'resolved'
                 ORDER BY service_id, dedup_key, id{lock}"
            ),
            &[Arg::Integer(number.0)],
        )
        .await?;
    let snapshot = CommandSnapshot {
        incident: incident.snapshot(),
        open_alerts: decode_all(&rows, decode::alert_snapshot)?,
        ack_timeout: policy.ack_timeout(&incident.service),
    };
    let plan = plan_command(&snapshot, command, actor, now)
        .map_err(|error| StoreError::Conflict(error.to_string()))?;
    apply_command(conn, &plan).await?;
    let entries = append_timeline(conn, &plan.timeline).await?;
    let updates = crate::updates::command_updates(&incident.service, &entries, policy);
    crate::updates::enqueue(conn, &updates, now).await?;
    Ok(CommandOutcome {
        incident: self::incident(conn, number, false).await?,
        transition: plan.transition,
        entries,
    })
}

/// Writes the row changes of a command plan (its timeline is appended by the caller).
async fn apply_command<C: Connection>(conn: &mut C, plan: &CommandPlan) -> Result<(), StoreError> {
    if let Some(update) = &plan.incident_update {
        conn.execute(
            "UPDATE incidents SET state = $2, priority = $3, open_alerts = $4,
                 acknowledged_at = $5, resolved_at = $6, updated_at = $7
             WHERE number = $1",
            &[
                Arg::Integer(plan.incident.0),
                Arg::Text(update.state.as_str()),
                Arg::Text(update.priority.as_str()),
                Arg::Integer(update.open_alerts),
                Arg::OptionalInteger(update.acknowledged_at.map(micros)),
                Arg::OptionalInteger(update.resolved_at.map(micros)),
                Arg::Integer(micros(update.updated_at)),
            ],
        )
        .await?;
    }
    for alert in &plan.alerts {
        conn.execute(
            "UPDATE alerts SET state = $2, acknowledged_at = $3, resolved_at = $4,
                 unlogged_folds = $5, folds_logged_at = $6
             WHERE id = $1",
            &[
                Arg::Integer(alert.id.0),
                Arg::Text(alert.state.as_str()),
                Arg::OptionalInteger(alert.acknowledged_at.map(micros)),
                Arg::OptionalInteger(alert.resolved_at.map(micros)),
                Arg::Integer(alert.unlogged_folds),
                Arg::OptionalInteger(alert.folds_logged_at.map(micros)),
            ],
        )
        .await?;
    }
    let key = plan.incident.0.to_string();
    // When the command takes effect (what the item records as its creation).
    let effective = plan
        .incident_update
        .as_ref()
        .map_or(Timestamp::UNIX_EPOCH, |update| update.updated_at);
    for change in &plan.due_work {
        match change {
            DueWorkChange::CancelEscalation => {
                conn.execute(
                    "DELETE FROM due_work WHERE kind = $1 AND key = $2",
                    &[Arg::Text(ESCALATION_STEP_KIND), Arg::Text(&key)],
                )
                .await?;
            }
            DueWorkChange::EscalateAt(at) => {
                // A new revision: a runner holding the item now does not overwrite it.
                conn.execute(
                    "UPDATE due_work SET due_at = $1, revision = revision + 1, parked_at = NULL,
                         attempts = 0
                     WHERE kind = $2 AND key = $3",
                    &[
                        Arg::Integer(micros(*at)),
                        Arg::Text(ESCALATION_STEP_KIND),
                        Arg::Text(&key),
                    ],
                )
                .await?;
            }
            DueWorkChange::RestartEscalation(at) => {
                let payload = crate::due::restarted_escalation_step(*at);
                schedule_replacing(conn, ESCALATION_STEP_KIND, &key, &payload, *at, effective)
                    .await?;
            }
            DueWorkChange::AckTimeoutAt {
                due_at,
                acknowledged_at,
            } => {
                let payload = crate::due::ack_timeout_payload(*acknowledged_at);
                schedule_replacing(conn, ACK_TIMEOUT_KIND, &key, &payload, *due_at, effective)
                    .await?;
            }
            DueWorkChange::CancelAckTimeout => {
                conn.execute(
                    "DELETE FROM due_work WHERE kind = $1 AND key = $2",
                    &[Arg::Text(ACK_TIMEOUT_KIND), Arg::Text(&key)],
                )
                .await?;
            }
        }
    }
    for message in &plan.outbox {
        match message {
            OutboxMessage::CancelPending => {
                let at = plan
                    .incident_update
                    .as_ref()
                    .map_or(Timestamp::UNIX_EPOCH, |update| update.updated_at);
                crate::outbox::cancel(conn, plan.incident, at).await?;
            }
            OutboxMessage::Queue(pages) => {
                let at = plan
                    .incident_update
                    .as_ref()
                    .map_or(Timestamp::UNIX_EPOCH, |update| update.updated_at);
                let notifications: Vec<_> = pages
                    .iter()
                    .map(|page| crate::outbox::NewNotification {
                        incident: Some(plan.incident),
                        recipient: crate::outbox::Recipient::User {
                            user: page.user.clone(),
                            contact: page.contact.clone(),
                        },
                        method: page.method.clone(),
                        kind: "page".to_owned(),
                        payload: serde_json::json!({ "reassigned": true }),
                        idempotency_key: page.idempotency_key.clone(),
                        not_before: page.not_before,
                    })
                    .collect();
                crate::outbox::enqueue(conn, &notifications, at).await?;
            }
        }
    }
    Ok(())
}

/// Schedules the (kind, key) item at `due_at` with `payload`, or replaces the schedule it has
/// (a new revision, so a runner that holds it now does not overwrite it; un-parked).
async fn schedule_replacing<C: Connection>(
    conn: &mut C,
    kind: &str,
    key: &str,
    payload: &str,
    due_at: Timestamp,
    now: Timestamp,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO due_work (kind, key, payload, due_at, created_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (kind, key) DO UPDATE SET payload = excluded.payload,
             due_at = excluded.due_at, revision = due_work.revision + 1, parked_at = NULL,
             attempts = 0",
        &[
            Arg::Text(kind),
            Arg::Text(key),
            Arg::Text(payload),
            Arg::Integer(micros(due_at)),
            Arg::Integer(micros(now)),
        ],
    )
    .await?;
    Ok(())
}

/// Appends timeline entries of existing incidents, in order.
pub(crate) async fn append_timeline<C: Connection>(
    conn: &mut C,
    records: &[tocsin_core::TimelineRecord],
) -> Result<Vec<TimelineEntry>, StoreError> {
    let mut entries = Vec::with_capacity(records.len());
    for record in records {
        let IncidentRef::Existing(number) = record.incident else {
            return Err(StoreError::Corrupt(
                "a timeline entry of an incident not yet created".to_owned(),
            ));
        };
        let row = conn
            .fetch_one(
                "INSERT INTO timeline_entries (incident_number, at, actor, kind, data)
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
                &[
                    Arg::Integer(number.0),
                    Arg::Integer(micros(record.at)),
                    Arg::Text(record.actor.as_str()),
                    Arg::Text(record.kind().as_str()),
                    Arg::Text(&crate::encode::timeline_data(&record.data)),
                ],
            )
            .await?;
        entries.push(TimelineEntry {
            id: row.integer("id")?,
            incident: number,
            at: record.at,
            actor: record.actor.clone(),
            data: record.data.clone(),
        });
    }
    Ok(entries)
}

/// Alerts marked logged per statement by [`log_due_folds`].
const LOG_FOLDS_CHUNK: usize = 500;

/// Writes one `alert.folded` entry (by the system, at `now`) for each open alert whose
/// unlogged folds have waited since `due` or longer, at most `limit` alerts, locked in the
/// order ingest locks alerts. Returns how many it wrote. The caller commits.
pub async fn log_due_folds<C: Connection>(
    conn: &mut C,
    due: Timestamp,
    now: Timestamp,
    limit: usize,
) -> Result<usize, StoreError> {
    let Dialect {
        lock_rows,
        open_alerts_index,
        ..
    } = conn.dialect();
    // A row another writer changed while this one waited for its lock is checked again (on
    // PostgreSQL), and skipped when it is no longer due.
    let rows = conn
        .fetch_all(
            &format!(
                "SELECT {UNLOGGED_FOLDS_COLUMNS} FROM alerts{open_alerts_index}
                 WHERE state <> 'resolved' AND unlogged_folds > 0
                   AND COALESCE(folds_logged_at, first_seen) <= $1
                 ORDER BY service_id, dedup_key, id LIMIT $2{lock_rows}"
            ),
            &[
                Arg::Integer(micros(due)),
                Arg::Integer(i64::try_from(limit).unwrap_or(i64::MAX)),
            ],
        )
        .await?;
    let folds: Vec<UnloggedFolds> = decode_all(&rows, decode::unlogged_folds)?;
    let records: Vec<_> = folds
        .iter()
        .map(|fold| fold.entry(now, Actor::system()))
        .collect();
    append_timeline(conn, &records).await?;
    // One statement marks the alerts of a chunk logged, not one per alert.
    for chunk in folds.chunks(LOG_FOLDS_CHUNK) {
        let placeholders = (0..chunk.len())
            .map(|index| format!("${}", index + 2))
            .collect::<Vec<_>>()
            .join(", ");
        let mut args = Vec::with_capacity(chunk.len() + 1);
        args.push(Arg::Integer(micros(now)));
        args.extend(chunk.iter().map(|fold| Arg::Integer(fold.alert.0)));
        conn.execute(
            &format!(
                "UPDATE alerts SET unlogged_folds = 0, folds_logged_at = $1 WHERE id IN ({placeholders})"
            ),
            &args,
        )
        .await?;
    }
    Ok(folds.len())
}

/// Stores a new API token by the hash of its secret.
pub async fn create_api_token<C: Connection>(
    conn: &mut C,
    name: &str,
    scope: TokenScope,
    secret_hash: &str,
    now: Timestamp,
) -> Result<ApiToken, StoreError> {
    check_text("name", name)?;
    let row = conn
        .fetch_one(
            &format!(
                "INSERT INTO api_tokens (name, scope, secret_hash, created_at)
                 VALUES ($1, $2, $3, $4) RETURNING {TOKEN_COLUMNS}"
            ),
            &[
                Arg::Text(name),
                Arg::Text(scope.as_str()),
                Arg::Text(secret_hash),
                Arg::Integer(micros(now)),
            ],
        )
        .await?;
    decode::api_token(&row)
}

/// The unrevoked token with this secret hash, if any.
pub async fn api_token_by_hash<C: Connection>(
    conn: &mut C,
    secret_hash: &str,
) -> Result<Option<ApiToken>, StoreError> {
    if secret_hash.contains('\0') {
        return Ok(None);
    }
    let row = conn
        .fetch_optional(
            &format!(
                "SELECT {TOKEN_COLUMNS} FROM api_tokens
                 WHERE secret_hash = $1 AND revoked_at IS NULL"
            ),
            &[Arg::Text(secret_hash)],
        )
        .await?;
    row.as_ref().map(decode::api_token).transpose()
}

/// Newest first.
pub async fn api_tokens<C: Connection>(
    conn: &mut C,
    page: PageRequest,
) -> Result<Page<ApiToken>, StoreError> {
    let mut query = Query::new(format!(
        "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE 1 = 1"
    ));
    query.newest_first("id", page);
    let rows = query.fetch_all(conn).await?;
    let items = decode_all(&rows, decode::api_token)?;
    Ok(page.finish(items, |token| token.id))
}

/// Revokes the token (once: revoking it again keeps the first time).
pub async fn revoke_api_token<C: Connection>(
    conn: &mut C,
    id: i64,
    now: Timestamp,
) -> Result<ApiToken, StoreError> {
    let row = conn
        .fetch_optional(
            &format!(
                "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2
                 RETURNING {TOKEN_COLUMNS}"
            ),
            &[Arg::Integer(micros(now)), Arg::Integer(id)],
        )
        .await?
        .ok_or_else(|| StoreError::not_found(format!("API token {id}")))?;
    decode::api_token(&row)
}

/// A policy without channels, for commands that tell none (the resolve policy it answers is
/// not consulted by commands).
pub fn no_channels(_: &ServiceId) -> tocsin_core::ResolvePolicy {
    tocsin_core::ResolvePolicy::Auto
}

/// Refuses text that a store could not keep as it is: PostgreSQL cannot hold NUL characters
/// in text, and both stores keep the same bytes, so neither stores them (nor rewrites them).
pub fn check_text(field: &str, value: &str) -> Result<(), StoreError> {
    if value.contains('\0') {
        return Err(StoreError::Invalid(format!(
            "{field} contains a NUL character (U+0000), which tocsin does not store; remove it"
        )));
    }
    Ok(())
}

/// [`check_text`] over every text an ingest batch stores, before anything is written.
pub fn check_batch(batch: &[crate::Inbound]) -> Result<(), StoreError> {
    for inbound in batch {
        match inbound {
            crate::Inbound::Alert(event) => {
                check_text("service", event.service.as_str())?;
                check_text("dedup_key", event.dedup_key.as_str())?;
                check_text("summary", &event.summary)?;
                check_text("source", &event.source)?;
            }
            crate::Inbound::Change(change) => {
                check_text("service", change.service.as_str())?;
                check_text("summary", &change.summary)?;
                check_text("source", change.source.as_deref().unwrap_or_default())?;
            }
            crate::Inbound::Heartbeat(input) => {
                check_text("service", input.service.as_str())?;
                check_text("monitor", &input.monitor)?;
                crate::heartbeat::deadline_key(&input.monitor)?;
                if let tocsin_core::heartbeat::HeartbeatSignal::Ping(ping) = &input.signal {
                    check_text("ping body", &ping.body)?;
                    check_text("ping rid", ping.rid.as_deref().unwrap_or_default())?;
                    check_text("ping remote", ping.remote.as_deref().unwrap_or_default())?;
                    check_text("ping method", &ping.method)?;
                }
            }
        }
    }
    Ok(())
}

/// Implements [`IncidentStore`](crate::IncidentStore), [`TokenStore`](crate::TokenStore) and
/// [`MonitorResultStore`](crate::MonitorResultStore) for a backend with the functions of this module. The backend defines, before invoking it:
/// `read!(self, |conn| body)` (runs `body` on a [`Connection`] of its reader),
/// `write!(self, "what", |conn| body)` (runs it in a write transaction and commits), and an
/// inherent `async fn ingest_batch(&self, batch, resolve_policy)`, its own ingest path, and
/// `fn blocking_ingest_path(&self) -> Option<&dyn BlockingIngest>`, that path as a blocking
/// call where it is one (see [`IncidentStore::blocking_ingest`](crate::IncidentStore::blocking_ingest)).
#[macro_export]
macro_rules! impl_store_with_shared_sql {
    ($store:ty) => {
        #[$crate::async_trait]
        impl $crate::IncidentStore for $store {
            #[tracing::instrument(skip_all, fields(batch = batch.len()), err)]
            async fn ingest(
                &self,
                batch: &[$crate::Inbound],
                resolve_policy: $crate::ResolvePolicyOf<'_>,
            ) -> Result<$crate::IngestReport, $crate::StoreError> {
                $crate::sql::check_batch(batch)?;
                self.ingest_batch(batch, resolve_policy).await
            }

            fn blocking_ingest(&self) -> Option<&dyn $crate::BlockingIngest> {
                self.blocking_ingest_path()
            }

            async fn incident(
                &self,
                number: tocsin_core::IncidentNumber,
            ) -> Result<$crate::IncidentRow, $crate::StoreError> {
                read!(self, |conn| $crate::sql::incident(conn, number, false))
            }

            async fn incidents(
                &self,
                filter: &$crate::IncidentFilter,
                page: $crate::PageRequest,
            ) -> Result<$crate::Page<$crate::IncidentRow>, $crate::StoreError> {
                read!(self, |conn| $crate::sql::incidents(conn, filter, page))
            }

            async fn alert(
                &self,
                id: tocsin_core::AlertId,
            ) -> Result<$crate::AlertRow, $crate::StoreError> {
                read!(self, |conn| $crate::sql::alert(conn, id))
            }

            async fn alerts(
                &self,
                filter: &$crate::AlertFilter,
                page: $crate::PageRequest,
            ) -> Result<$crate::Page<$crate::AlertSummary>, $crate::StoreError> {
                read!(self, |conn| $crate::sql::alerts(conn, filter, page))
            }

            async fn timeline(
                &self,
                number: tocsin_core::IncidentNumber,
                page: $crate::PageRequest,
            ) -> Result<$crate::Page<$crate::TimelineEntry>, $crate::StoreError> {
                read!(self, |conn| $crate::sql::timeline(conn, number, page))
            }

            async fn event(&self, id: i64) -> Result<$crate::StoredEvent, $crate::StoreError> {
                read!(self, |conn| $crate::sql::event(conn, id))
            }

            async fn events(
                &self,
                filter: &$crate::EventFilter,
                page: $crate::PageRequest,
            ) -> Result<$crate::Page<$crate::EventSummary>, $crate::StoreError> {
                read!(self, |conn| $crate::sql::events(conn, filter, page))
            }

            async fn change_events(
                &self,
                service: &tocsin_core::ServiceId,
                page: $crate::PageRequest,
            ) -> Result<$crate::Page<$crate::ChangeEventRow>, $crate::StoreError> {
                read!(self, |conn| $crate::sql::change_events(conn, service, page))
            }

            #[tracing::instrument(skip_all, fields(limit = limit), err)]
            async fn log_due_folds(
                &self,
                due: tocsin_core::Timestamp,
                now: tocsin_core::Timestamp,
                limit: usize,
            ) -> Result<usize, $crate::StoreError> {
                if limit == 0 {
                    return Ok(0);
                }
                write!(self, "logging due folds", |conn| $crate::sql::log_due_folds(
                    conn, due, now, limit
                ))
            }

            #[tracing::instrument(skip_all, fields(incident = %number, command = command.name()), err(level = "debug"))]
            async fn command(
                &self,
                number: tocsin_core::IncidentNumber,
                command: &tocsin_core::Command,
                actor: &tocsin_core::Actor,
                now: tocsin_core::Timestamp,
            ) -> Result<$crate::CommandOutcome, $crate::StoreError> {
                write!(self, "an incident command", |conn| $crate::sql::run_command(
                    conn, number, command, actor, now, &$crate::sql::no_channels
                ))
            }

            #[tracing::instrument(skip_all, fields(incident = %number, command = command.name()), err(level = "debug"))]
            async fn command_with_updates(
                &self,
                number: tocsin_core::IncidentNumber,
                command: &tocsin_core::Command,
                actor: &tocsin_core::Actor,
                now: tocsin_core::Timestamp,
                policy: $crate::ResolvePolicyOf<'_>,
            ) -> Result<$crate::CommandOutcome, $crate::StoreError> {
                write!(self, "an incident command", |conn| $crate::sql::run_command(
                    conn, number, command, actor, now, policy
                ))
            }

            async fn counts(&self) -> Result<$crate::Counts, $crate::StoreError> {
                read!(self, |conn| $crate::sql::counts(conn))
            }
        }

        #[$crate::async_trait]
        impl $crate::OutboxStore for $store {
            async fn enqueue_notifications(
                &self,
                notifications: &[$crate::outbox::NewNotification],
                now: tocsin_core::Timestamp,
            ) -> Result<usize, $crate::StoreError> {
                write!(self, "queueing notifications", |conn| $crate::outbox::enqueue(
                    conn,
                    notifications,
                    now
                ))
            }

            async fn enqueue_notices(
                &self,
                notices: &[$crate::outbox::NewNotification],
                now: tocsin_core::Timestamp,
            ) -> Result<Vec<$crate::outbox::NotificationRow>, $crate::StoreError> {
                write!(self, "queueing notices", |conn| $crate::outbox::enqueue_notices(
                    conn, notices, now
                ))
            }

            #[tracing::instrument(skip_all, fields(claimer = %claim.claimer, limit = claim.limit), err)]
            async fn claim_notifications(
                &self,
                claim: &$crate::outbox::NotificationClaim<'_>,
            ) -> Result<Vec<$crate::outbox::NotificationRow>, $crate::StoreError> {
                write!(self, "claiming notifications", |conn| $crate::outbox::claim(
                    conn, claim
                ))
            }

            async fn settle_notification(
                &self,
                row: &$crate::outbox::NotificationRow,
                delivery: &$crate::outbox::Delivery,
                latency_ms: i64,
                now: tocsin_core::Timestamp,
            ) -> Result<Option<$crate::outbox::SettledNotification>, $crate::StoreError> {
                write!(self, "settling a notification", |conn| $crate::outbox::settle(
                    conn, row, delivery, latency_ms, now
                ))
            }

            async fn settle_notifications(
                &self,
                settlement: &$crate::outbox::Settlement<'_>,
            ) -> Result<usize, $crate::StoreError> {
                if settlement.rows.is_empty() {
                    return Ok(0);
                }
                write!(self, "settling notifications", |conn| $crate::outbox::settle_all(
                    conn, settlement
                ))
            }

            #[tracing::instrument(skip_all, fields(messages = settlements.len()), err)]
            async fn settle_notification_batch(
                &self,
                settlements: &[$crate::outbox::Settlement<'_>],
            ) -> Result<Vec<usize>, $crate::StoreError> {
                if settlements.iter().all(|settlement| settlement.rows.is_empty()) {
                    return Ok(vec![0; settlements.len()]);
                }
                write!(self, "settling notifications", |conn| $crate::outbox::settle_batch(
                    conn,
                    settlements
                ))
            }

            #[tracing::instrument(skip_all, fields(claimer = %claim.claimer, rows = claim.rows.len()), err)]
            async fn take_bundle(
                &self,
                claim: &$crate::outbox::BundleClaim<'_>,
            ) -> Result<$crate::outbox::Bundle, $crate::StoreError> {
                write!(self, "bundling notifications", |conn| $crate::outbox::take_bundle(
                    conn, claim
                ))
            }

            #[tracing::instrument(skip_all, fields(bundles = claims.len()), err)]
            async fn take_bundles(
                &self,
                claims: &[$crate::outbox::BundleClaim<'_>],
            ) -> Result<Vec<$crate::outbox::Bundle>, $crate::StoreError> {
                if claims.is_empty() {
                    return Ok(Vec::new());
                }
                write!(self, "bundling notifications", |conn| $crate::outbox::take_bundles(
                    conn, claims
                ))
            }

            async fn cancel_notifications(
                &self,
                incident: tocsin_core::IncidentNumber,
                now: tocsin_core::Timestamp,
            ) -> Result<u64, $crate::StoreError> {
                write!(self, "cancelling notifications", |conn| $crate::outbox::cancel(
                    conn, incident, now
                ))
            }

            async fn notifications(
                &self,
                incident: tocsin_core::IncidentNumber,
                limit: u32,
            ) -> Result<Vec<$crate::outbox::NotificationRow>, $crate::StoreError> {
                read!(self, |conn| $crate::outbox::list(conn, incident, limit))
            }

            async fn notification(
                &self,
                id: i64,
            ) -> Result<$crate::outbox::NotificationRow, $crate::StoreError> {
                read!(self, |conn| $crate::outbox::get(conn, id))
            }

            async fn oldest_waiting_notification(
                &self,
            ) -> Result<Option<tocsin_core::Timestamp>, $crate::StoreError> {
                read!(self, |conn| $crate::outbox::oldest_waiting(conn))
            }

            #[tracing::instrument(skip_all, fields(incident = %step.incident), err)]
            async fn run_escalation_step(
                &self,
                step: &$crate::outbox::EscalationStepWrite,
            ) -> Result<$crate::outbox::EscalationStepOutcome, $crate::StoreError> {
                write!(self, "an escalation step", |conn| $crate::outbox::escalation_step(
                    conn, step
                ))
            }

            #[tracing::instrument(skip_all, fields(steps = steps.len()), err)]
            async fn run_escalation_steps(
                &self,
                steps: &[$crate::outbox::EscalationStepWrite],
            ) -> Result<Vec<$crate::outbox::EscalationStepOutcome>, $crate::StoreError> {
                if steps.is_empty() {
                    return Ok(Vec::new());
                }
                write!(self, "escalation steps", |conn| $crate::outbox::escalation_steps(
                    conn, steps
                ))
            }

            async fn server_key(
                &self,
                purpose: &str,
                new_secret: &str,
                now: tocsin_core::Timestamp,
            ) -> Result<Vec<$crate::outbox::ServerKey>, $crate::StoreError> {
                write!(self, "reading the server key", |conn| $crate::outbox::server_key(
                    conn, purpose, new_secret, now
                ))
            }

            async fn rotate_server_key(
                &self,
                purpose: &str,
                new_secret: &str,
                now: tocsin_core::Timestamp,
            ) -> Result<$crate::outbox::ServerKey, $crate::StoreError> {
                write!(self, "rotating the server key", |conn| $crate::outbox::rotate_server_key(
                    conn, purpose, new_secret, now
                ))
            }
        }

        #[$crate::async_trait]
        impl $crate::MonitorResultStore for $store {
            async fn record_results(
                &self,
                results: &[$crate::monitor_results::CheckResultRow],
            ) -> Result<(), $crate::StoreError> {
                if results.is_empty() {
                    return Ok(());
                }
                write!(self, "recording check results", |conn| {
                    $crate::monitor_results::record_results(conn, results)
                })
            }

            async fn settle_checks(
                &self,
                checks: &[$crate::monitor_results::CheckSettlement],
            ) -> Result<Vec<$crate::due::Settled>, $crate::StoreError> {
                if checks.is_empty() {
                    return Ok(Vec::new());
                }
                write!(self, "settling checks", |conn| {
                    $crate::monitor_results::settle_checks(conn, checks)
                })
            }

            async fn roll_up_many(
                &self,
                monitors: &[String],
                period: $crate::monitor_results::RollupPeriod,
                start: tocsin_core::Timestamp,
            ) -> Result<usize, $crate::StoreError> {
                if monitors.len() > $crate::monitor_results::MAX_ROLLUP_BATCH {
                    return Err($crate::StoreError::Invalid(format!(
                        "{} monitors in one rollup; at most {}",
                        monitors.len(),
                        $crate::monitor_results::MAX_ROLLUP_BATCH
                    )));
                }
                let mut computed = Vec::with_capacity(monitors.len());
                for monitor in monitors {
                    if let Some(rollup) = read!(self, |conn| {
                        $crate::monitor_results::compute_rollup(conn, monitor, period, start)
                    })? {
                        computed.push(rollup);
                    }
                }
                if computed.is_empty() {
                    return Ok(0);
                }
                write!(self, "storing rollups", |conn| async {
                    for (key, rollup) in &computed {
                        $crate::monitor_results::store_rollup(&mut *conn, *key, rollup).await?;
                    }
                    Ok::<usize, $crate::StoreError>(computed.len())
                })
            }

            async fn results(
                &self,
                monitor: &str,
                from: tocsin_core::Timestamp,
                to: tocsin_core::Timestamp,
                limit: usize,
            ) -> Result<Vec<$crate::monitor_results::CheckResultRow>, $crate::StoreError> {
                read!(self, |conn| $crate::monitor_results::results(
                    conn, monitor, from, to, limit
                ))
            }

            async fn roll_up(
                &self,
                monitor: &str,
                period: $crate::monitor_results::RollupPeriod,
                start: tocsin_core::Timestamp,
            ) -> Result<Option<$crate::monitor_results::Rollup>, $crate::StoreError> {
                write!(self, "rolling up check results", |conn| {
                    $crate::monitor_results::roll_up(conn, monitor, period, start)
                })
            }

            async fn rollups(
                &self,
                monitor: &str,
                period: $crate::monitor_results::RollupPeriod,
                from: tocsin_core::Timestamp,
                limit: usize,
            ) -> Result<Vec<$crate::monitor_results::Rollup>, $crate::StoreError> {
                read!(self, |conn| $crate::monitor_results::rollups(
                    conn, monitor, period, from, limit
                ))
            }

            async fn delete_rolled_up_results(
                &self,
                before: tocsin_core::Timestamp,
                limit: usize,
            ) -> Result<usize, $crate::StoreError> {
                write!(self, "deleting old check results", |conn| {
                    $crate::monitor_results::delete_rolled_up_results(conn, before, limit)
                })
            }

            async fn delete_rollups(
                &self,
                before: tocsin_core::Timestamp,
                limit: usize,
            ) -> Result<usize, $crate::StoreError> {
                write!(self, "deleting old rollups", |conn| {
                    $crate::monitor_results::delete_rollups(conn, before, limit)
                })
            }
        }

        #[$crate::async_trait]
        impl $crate::TokenStore for $store {
            async fn create_api_token(
                &self,
                name: &str,
                scope: $crate::TokenScope,
                secret_hash: &str,
                now: tocsin_core::Timestamp,
            ) -> Result<$crate::ApiToken, $crate::StoreError> {
                write!(self, "creating a token", |conn| $crate::sql::create_api_token(
                    conn,
                    name,
                    scope,
                    secret_hash,
                    now
                ))
            }

            async fn api_token_by_hash(
                &self,
                secret_hash: &str,
            ) -> Result<Option<$crate::ApiToken>, $crate::StoreError> {
                read!(self, |conn| $crate::sql::api_token_by_hash(conn, secret_hash))
            }

            async fn api_tokens(
                &self,
                page: $crate::PageRequest,
            ) -> Result<$crate::Page<$crate::ApiToken>, $crate::StoreError> {
                read!(self, |conn| $crate::sql::api_tokens(conn, page))
            }

            async fn revoke_api_token(
                &self,
                id: i64,
                now: tocsin_core::Timestamp,
            ) -> Result<$crate::ApiToken, $crate::StoreError> {
                write!(self, "revoking a token", |conn| $crate::sql::revoke_api_token(
                    conn, id, now
                ))
            }
        }
    };
}
