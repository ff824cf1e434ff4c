//! The due-work queue on SQLite (`tocsin_store::due`).
//!
//! Every write is a `BEGIN IMMEDIATE` transaction on the writer connection, so SQLite's write
//! lock orders it with every other writer of the file, in this process or another one. A claim
//! is one conditional `UPDATE ... RETURNING` over the due items whose lease is free or expired:
//! two claimers can never both see an item as free, because the second runs only after the
//! first has committed its lease.

use async_trait::async_trait;
use sqlx::sqlite::SqliteArguments;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use tocsin_core::Timestamp;
use tocsin_store::due::{
    claim_limit, read_claimed_due_item, read_due_item, stored_error_text, ClaimRequest,
    ClaimedDueItem, DueItemRow, DueKey, DueKind, DueWorkStore, NewDueItem, Scheduled, Settled,
    WhenScheduled, DUE_ITEM_COLUMNS,
};
use tocsin_store::StoreError;

use crate::rows::{db, micros, Stored};
use crate::SqliteStore;

type Query<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>>;

/// The condition of a settlement that applies: the caller's claim is the item's current one,
/// and the item has not been scheduled anew since it was claimed. Binds id, claim, claimer,
/// revision.
const HELD_UNCHANGED: &str = "id = ? AND claims = ? AND claimed_by = ? AND revision = ?";

#[async_trait]
impl DueWorkStore for SqliteStore {
    #[tracing::instrument(skip_all, fields(kind = %item.kind, key = %item.key), err)]
    async fn schedule(
        &self,
        item: &NewDueItem,
        when_scheduled: WhenScheduled,
        now: Timestamp,
    ) -> Result<Scheduled, StoreError> {
        let mut tx = self.begin_write().await?;
        let scheduled = schedule_in(&mut tx, item, when_scheduled, now).await?;
        tx.commit().await.map_err(db)?;
        Ok(scheduled)
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
        let mut tx = self.begin_write().await?;
        let mut scheduled = Vec::with_capacity(items.len());
        for item in items {
            scheduled.push(schedule_in(&mut tx, item, when_scheduled, now).await?);
        }
        tx.commit().await.map_err(db)?;
        Ok(scheduled)
    }

    #[tracing::instrument(skip_all, fields(claimer = %request.claimer, limit = request.limit), err)]
    async fn claim(&self, request: &ClaimRequest<'_>) -> Result<Vec<ClaimedDueItem>, StoreError> {
        if request.kinds.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = QueryBuilder::<Sqlite>::new(
            "UPDATE due_work SET attempts = attempts + 1, claims = claims + 1, claimed_by = ",
        );
        query
            .push_bind(request.claimer.as_str())
            .push(", lease_until = ")
            .push_bind(micros(request.lease_until))
            .push(
                " WHERE id IN (SELECT id FROM due_work INDEXED BY due_work_by_due_at
                   WHERE parked_at IS NULL AND due_at <= ",
            )
            .push_bind(micros(request.now))
            .push(" AND (lease_until IS NULL OR lease_until <= ")
            .push_bind(micros(request.now))
            .push(") AND kind IN (");
        let mut kinds = query.separated(", ");
        for kind in request.kinds {
            kinds.push_bind(kind.as_str());
        }
        kinds.push_unseparated(")");
        query
            .push(" ORDER BY due_at, id LIMIT ")
            .push_bind(claim_limit(request.limit))
            .push(format!(") RETURNING {DUE_ITEM_COLUMNS}"));
        let mut tx = self.begin_write().await?;
        let rows = query.build().fetch_all(&mut *tx).await.map_err(db)?;
        let mut items = rows
            .into_iter()
            .map(|row| read_claimed_due_item(&Stored(row), request.claimer))
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit().await.map_err(db)?;
        // RETURNING follows no order: hand them out oldest due first.
        items.sort_by_key(|item| (item.due_at, item.id));
        Ok(items)
    }

    async fn renew(&self, item: &ClaimedDueItem, until: Timestamp) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let renewed = sqlx::query(
            "UPDATE due_work SET lease_until = ? WHERE id = ? AND claims = ? AND claimed_by = ?",
        )
        .bind(micros(until))
        .bind(item.id)
        .bind(item.lease.claim)
        .bind(item.lease.claimer.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        tx.commit().await.map_err(db)?;
        Ok(renewed == 1)
    }

    async fn complete(&self, item: &ClaimedDueItem) -> Result<Settled, StoreError> {
        let sql = format!("DELETE FROM due_work WHERE {HELD_UNCHANGED}");
        self.settle(item, held(sqlx::query(&sql), item)).await
    }

    async fn reschedule(
        &self,
        item: &ClaimedDueItem,
        due_at: Timestamp,
    ) -> Result<Settled, StoreError> {
        let sql = format!(
            "UPDATE due_work SET due_at = ?, attempts = 0, last_error = NULL, claimed_by = NULL,
             lease_until = NULL WHERE {HELD_UNCHANGED}"
        );
        let query = sqlx::query(&sql).bind(micros(due_at));
        self.settle(item, held(query, item)).await
    }

    async fn retry(
        &self,
        item: &ClaimedDueItem,
        retry_at: Option<Timestamp>,
        error: &str,
        now: Timestamp,
    ) -> Result<Settled, StoreError> {
        let error = stored_error_text(error);
        let sql = match retry_at {
            Some(_) => format!(
                "UPDATE due_work SET due_at = ?, last_error = ?, claimed_by = NULL,
                 lease_until = NULL WHERE {HELD_UNCHANGED}"
            ),
            None => format!(
                "UPDATE due_work SET parked_at = ?, last_error = ?, claimed_by = NULL,
                 lease_until = NULL WHERE {HELD_UNCHANGED}"
            ),
        };
        let query = sqlx::query(&sql)
            .bind(micros(retry_at.unwrap_or(now)))
            .bind(error);
        self.settle(item, held(query, item)).await
    }

    async fn release(&self, item: &ClaimedDueItem) -> Result<Settled, StoreError> {
        let sql = format!(
            "UPDATE due_work SET attempts = MAX(attempts - 1, 0), claimed_by = NULL,
             lease_until = NULL WHERE {HELD_UNCHANGED}"
        );
        self.settle(item, held(sqlx::query(&sql), item)).await
    }

    async fn cancel(&self, kind: &DueKind, key: &DueKey) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let removed = sqlx::query("DELETE FROM due_work WHERE kind = ? AND key = ?")
            .bind(kind.as_str())
            .bind(key.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
        tx.commit().await.map_err(db)?;
        Ok(removed == 1)
    }

    async fn due_item(
        &self,
        kind: &DueKind,
        key: &DueKey,
    ) -> Result<Option<DueItemRow>, StoreError> {
        let mut conn = self.reader.acquire().await.map_err(db)?;
        item_in(&mut conn, kind, key).await
    }
}

impl SqliteStore {
    /// Runs `applied` (a settlement whose condition is [`HELD_UNCHANGED`]); when it changes
    /// nothing, frees the lease if the caller still holds it (the item was scheduled anew while
    /// claimed, and that schedule stands).
    async fn settle(
        &self,
        item: &ClaimedDueItem,
        applied: Query<'_>,
    ) -> Result<Settled, StoreError> {
        let mut tx = self.begin_write().await?;
        let settled = if applied.execute(&mut *tx).await.map_err(db)?.rows_affected() == 1 {
            Settled::Applied
        } else {
            let freed = sqlx::query(
                "UPDATE due_work SET claimed_by = NULL, lease_until = NULL
                 WHERE id = ? AND claims = ? AND claimed_by = ?",
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

/// Binds the parameters of [`HELD_UNCHANGED`], after those of the settlement itself.
fn held<'q>(query: Query<'q>, item: &'q ClaimedDueItem) -> Query<'q> {
    query
        .bind(item.id)
        .bind(item.lease.claim)
        .bind(item.lease.claimer.as_str())
        .bind(item.lease.revision)
}

async fn item_in(
    conn: &mut SqliteConnection,
    kind: &DueKind,
    key: &DueKey,
) -> Result<Option<DueItemRow>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {DUE_ITEM_COLUMNS} FROM due_work WHERE kind = ? AND key = ?"
    ))
    .bind(kind.as_str())
    .bind(key.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    row.map(|row| read_due_item(&Stored(row))).transpose()
}

/// [`DueWorkStore::schedule`] inside the caller's transaction.
async fn schedule_in(
    tx: &mut sqlx::SqliteConnection,
    item: &NewDueItem,
    when_scheduled: WhenScheduled,
    now: Timestamp,
) -> Result<Scheduled, StoreError> {
    let existing = item_in(tx, &item.kind, &item.key).await?;
    let scheduled = match existing {
        None => {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO due_work (kind, key, payload, due_at, created_at)
                 VALUES (?, ?, ?, ?, ?) RETURNING id",
            )
            .bind(item.kind.as_str())
            .bind(item.key.as_str())
            .bind(item.payload_text())
            .bind(micros(item.due_at))
            .bind(micros(now))
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            Scheduled {
                id,
                due_at: item.due_at,
                inserted: true,
            }
        }
        Some(existing) => {
            let due_at = match when_scheduled {
                WhenScheduled::Keep => existing.due_at,
                WhenScheduled::Replace => item.due_at,
                WhenScheduled::Earlier => existing.due_at.min(item.due_at),
            };
            if when_scheduled != WhenScheduled::Keep {
                // Only a schedule that changes the item makes it a new revision.
                sqlx::query(
                    "UPDATE due_work SET due_at = ?, payload = ?, parked_at = NULL,
                     attempts = 0, revision = revision + 1
                     WHERE id = ? AND (due_at <> ? OR payload <> ? OR parked_at IS NOT NULL)",
                )
                .bind(micros(due_at))
                .bind(item.payload_text())
                .bind(existing.id)
                .bind(micros(due_at))
                .bind(item.payload_text())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            }
            Scheduled {
                id: existing.id,
                due_at,
                inserted: false,
            }
        }
    };
    Ok(scheduled)
}
