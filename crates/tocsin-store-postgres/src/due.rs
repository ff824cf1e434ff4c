//! The due-work queue on PostgreSQL (`tocsin_store::due`), shared by every replica.
//!
//! A claim locks the due items it takes with `FOR UPDATE SKIP LOCKED` and leases them in the
//! same statement: replicas claiming at once each take different items instead of waiting for
//! one another, and an item another replica leased a moment ago is seen as leased (its row is
//! checked again once its lock is free). Settlements name the claim they settle, so a replica
//! whose lease expired and was taken over changes nothing.

use async_trait::async_trait;
use sqlx::postgres::PgArguments;
use sqlx::{PgConnection, Postgres, Row};
use tocsin_core::Timestamp;
use tocsin_store::due::{
    claim_limit, read_claimed_due_item, read_due_item, stored_error_text, ClaimRequest,
    ClaimedDueItem, DueItemRow, DueKey, DueKind, DueWorkStore, NewDueItem, Scheduled, Settled,
    WhenScheduled, DUE_ITEM_COLUMNS,
};
use tocsin_store::{decode, StoreError};

use crate::rows::{db, micros, Stored};
use crate::PostgresStore;

type Query<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

/// The condition of a settlement that applies: the caller's claim is the item's current one,
/// and the item has not been scheduled anew since it was claimed. Binds $1 to $4: id, claim,
/// claimer, revision; a settlement's own parameters start at $5.
const HELD_UNCHANGED: &str = "id = $1 AND claims = $2 AND claimed_by = $3 AND revision = $4";

#[async_trait]
impl DueWorkStore for PostgresStore {
    #[tracing::instrument(skip_all, fields(kind = %item.kind, key = %item.key), err)]
    async fn schedule(
        &self,
        item: &NewDueItem,
        when_scheduled: WhenScheduled,
        now: Timestamp,
    ) -> Result<Scheduled, StoreError> {
        let row = schedule_query(&schedule_sql(when_scheduled), item, now)
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        read_scheduled(&row)
    }

    #[tracing::instrument(skip_all, fields(items = items.len()), err)]
    async fn schedule_many(
        &self,
        items: &[NewDueItem],
        when_scheduled: WhenScheduled,
        now: Timestamp,
    ) -> Result<Vec<Scheduled>, StoreError> {
        tocsin_store::due::check_schedule_many(items)?;
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let sql = schedule_sql(when_scheduled);
        let mut tx = self.pool.begin().await.map_err(db)?;
        let mut scheduled = Vec::with_capacity(items.len());
        for item in items {
            let row = schedule_query(&sql, item, now)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
            scheduled.push(read_scheduled(&row)?);
        }
        tx.commit().await.map_err(db)?;
        Ok(scheduled)
    }

    #[tracing::instrument(skip_all, fields(claimer = %request.claimer, limit = request.limit), err)]
    async fn claim(&self, request: &ClaimRequest<'_>) -> Result<Vec<ClaimedDueItem>, StoreError> {
        if request.kinds.is_empty() {
            return Ok(Vec::new());
        }
        let kinds: Vec<&str> = request.kinds.iter().map(DueKind::as_str).collect();
        let rows = sqlx::query(&format!(
            "UPDATE due_work AS d
             SET attempts = d.attempts + 1, claims = d.claims + 1, claimed_by = $1,
                 lease_until = $2
             FROM (SELECT id AS picked_id FROM due_work
                   WHERE parked_at IS NULL AND due_at <= $3
                     AND (lease_until IS NULL OR lease_until <= $3) AND kind = ANY($4)
                   ORDER BY due_at, id LIMIT $5
                   FOR UPDATE SKIP LOCKED) AS picked
             WHERE d.id = picked.picked_id
             RETURNING {DUE_ITEM_COLUMNS}"
        ))
        .bind(request.claimer.as_str())
        .bind(micros(request.lease_until))
        .bind(micros(request.now))
        .bind(&kinds)
        .bind(claim_limit(request.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let mut items = rows
            .iter()
            .map(|row| read_claimed_due_item(&Stored(row), request.claimer))
            .collect::<Result<Vec<_>, _>>()?;
        // RETURNING follows no order: hand them out oldest due first.
        items.sort_by_key(|item| (item.due_at, item.id));
        Ok(items)
    }

    async fn renew(&self, item: &ClaimedDueItem, until: Timestamp) -> Result<bool, StoreError> {
        let renewed = sqlx::query(
            "UPDATE due_work SET lease_until = $4 WHERE id = $1 AND claims = $2 AND claimed_by = $3",
        )
        .bind(item.id)
        .bind(item.lease.claim)
        .bind(item.lease.claimer.as_str())
        .bind(micros(until))
        .execute(&self.pool)
        .await
        .map_err(db)?
        .rows_affected();
        Ok(renewed == 1)
    }

    async fn complete(&self, item: &ClaimedDueItem) -> Result<Settled, StoreError> {
        let sql = format!("DELETE FROM due_work WHERE {HELD_UNCHANGED}");
        self.settle(item, held(&sql, item)).await
    }

    async fn reschedule(
        &self,
        item: &ClaimedDueItem,
        due_at: Timestamp,
    ) -> Result<Settled, StoreError> {
        let sql = format!(
            "UPDATE due_work SET due_at = $5, attempts = 0, last_error = NULL, claimed_by = NULL,
             lease_until = NULL WHERE {HELD_UNCHANGED}"
        );
        self.settle(item, held(&sql, item).bind(micros(due_at)))
            .await
    }

    async fn retry(
        &self,
        item: &ClaimedDueItem,
        retry_at: Option<Timestamp>,
        error: &str,
        now: Timestamp,
    ) -> Result<Settled, StoreError> {
        let sql = match retry_at {
            Some(_) => format!(
                "UPDATE due_work SET due_at = $5, last_error = $6, claimed_by = NULL,
                 lease_until = NULL WHERE {HELD_UNCHANGED}"
            ),
            None => format!(
                "UPDATE due_work SET parked_at = $5, last_error = $6, claimed_by = NULL,
                 lease_until = NULL WHERE {HELD_UNCHANGED}"
            ),
        };
        let query = held(&sql, item)
            .bind(micros(retry_at.unwrap_or(now)))
            .bind(stored_error_text(error));
        self.settle(item, query).await
    }

    async fn release(&self, item: &ClaimedDueItem) -> Result<Settled, StoreError> {
        let sql = format!(
            "UPDATE due_work SET attempts = GREATEST(attempts - 1, 0), claimed_by = NULL,
             lease_until = NULL WHERE {HELD_UNCHANGED}"
        );
        self.settle(item, held(&sql, item)).await
    }

    async fn cancel(&self, kind: &DueKind, key: &DueKey) -> Result<bool, StoreError> {
        let removed = sqlx::query("DELETE FROM due_work WHERE kind = $1 AND key = $2")
            .bind(kind.as_str())
            .bind(key.as_str())
            .execute(&self.pool)
            .await
            .map_err(db)?
            .rows_affected();
        Ok(removed == 1)
    }

    async fn due_item(
        &self,
        kind: &DueKind,
        key: &DueKey,
    ) -> Result<Option<DueItemRow>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        item_in(&mut conn, kind, key).await
    }
}

impl PostgresStore {
    /// Runs `applied` (a settlement whose condition is [`HELD_UNCHANGED`]); when it changes
    /// nothing, frees the lease if the caller still holds it (the item was scheduled anew while
    /// claimed, and that schedule stands). One transaction, so the two steps see one claim.
    async fn settle(
        &self,
        item: &ClaimedDueItem,
        applied: Query<'_>,
    ) -> Result<Settled, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let settled = if applied.execute(&mut *tx).await.map_err(db)?.rows_affected() == 1 {
            Settled::Applied
        } else {
            let freed = sqlx::query(
                "UPDATE due_work SET claimed_by = NULL, lease_until = NULL
                 WHERE id = $1 AND claims = $2 AND claimed_by = $3",
            )
            .bind(item.id)
            .bind(item.lease.claim)
            .bind(item.lease.claimer.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
            if freed == 1 {
                Settled::Superseded
            } else {
                Settled::LeaseLost
            }
        };
        tx.commit().await.map_err(db)?;
        Ok(settled)
    }
}

/// `sql` with the parameters of [`HELD_UNCHANGED`] bound ($1 to $4).
fn held<'q>(sql: &'q str, item: &'q ClaimedDueItem) -> Query<'q> {
    sqlx::query(sql)
        .bind(item.id)
        .bind(item.lease.claim)
        .bind(item.lease.claimer.as_str())
        .bind(item.lease.revision)
}

async fn item_in(
    conn: &mut PgConnection,
    kind: &DueKind,
    key: &DueKey,
) -> Result<Option<DueItemRow>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {DUE_ITEM_COLUMNS} FROM due_work WHERE kind = $1 AND key = $2"
    ))
    .bind(kind.as_str())
    .bind(key.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    row.as_ref()
        .map(|row| read_due_item(&Stored(row)))
        .transpose()
}

/// The upsert of [`DueWorkStore::schedule`]: binds kind, key, payload, due, now.
fn schedule_sql(when_scheduled: WhenScheduled) -> String {
    // What the row becomes when the (kind, key) exists, and whether that changes it (only a
    // change makes a new revision).
    let (due_at, payload, parked_at, changed) = match when_scheduled {
        WhenScheduled::Keep => ("d.due_at", "d.payload", "d.parked_at", "FALSE"),
        WhenScheduled::Replace => (
            "EXCLUDED.due_at",
            "EXCLUDED.payload",
            "NULL",
            "(d.due_at <> EXCLUDED.due_at OR d.payload <> EXCLUDED.payload OR d.parked_at IS NOT NULL)",
        ),
        WhenScheduled::Earlier => (
            "LEAST(d.due_at, EXCLUDED.due_at)",
            "EXCLUDED.payload",
            "NULL",
            "(EXCLUDED.due_at < d.due_at OR d.payload <> EXCLUDED.payload OR d.parked_at IS NOT NULL)",
        ),
    };
    format!(
        "INSERT INTO due_work AS d (kind, key, payload, due_at, created_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (kind, key) DO UPDATE SET
             due_at = {due_at}, payload = {payload}, parked_at = {parked_at},
             attempts = CASE WHEN {changed} THEN 0 ELSE d.attempts END,
             revision = d.revision + CASE WHEN {changed} THEN 1 ELSE 0 END
         RETURNING id, due_at, (xmax = 0) AS inserted"
    )
}

fn schedule_query<'q>(
    sql: &'q str,
    item: &'q NewDueItem,
    now: Timestamp,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    sqlx::query(sql)
        .bind(item.kind.as_str())
        .bind(item.key.as_str())
        .bind(item.payload_text())
        .bind(micros(item.due_at))
        .bind(micros(now))
}

fn read_scheduled(row: &sqlx::postgres::PgRow) -> Result<Scheduled, StoreError> {
    Ok(Scheduled {
        id: row.try_get("id").map_err(db)?,
        due_at: decode::timestamp("due_at", row.try_get("due_at").map_err(db)?)?,
        inserted: row.try_get("inserted").map_err(db)?,
    })
}
