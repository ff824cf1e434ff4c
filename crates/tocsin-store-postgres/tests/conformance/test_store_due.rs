//! The due-work queue of the conformance suite's `TestStore`: its store's own.

use async_trait::async_trait;
use tocsin_core::Timestamp;
use tocsin_store::due::{
    ClaimRequest, ClaimedDueItem, DueItemRow, DueKey, DueKind, DueWorkStore, NewDueItem, Scheduled,
    Settled, WhenScheduled,
};
use tocsin_store::StoreError;

use crate::TestStore;

#[async_trait]
impl DueWorkStore for TestStore {
    async fn schedule(
        &self,
        item: &NewDueItem,
        when_scheduled: WhenScheduled,
        now: Timestamp,
    ) -> Result<Scheduled, StoreError> {
        self.store.schedule(item, when_scheduled, now).await
    }

    async fn claim(&self, request: &ClaimRequest<'_>) -> Result<Vec<ClaimedDueItem>, StoreError> {
        self.store.claim(request).await
    }

    async fn renew(&self, item: &ClaimedDueItem, until: Timestamp) -> Result<bool, StoreError> {
        self.store.renew(item, until).await
    }

    async fn complete(&self, item: &ClaimedDueItem) -> Result<Settled, StoreError> {
        self.store.complete(item).await
    }

    async fn reschedule(
        &self,
        item: &ClaimedDueItem,
        due_at: Timestamp,
    ) -> Result<Settled, StoreError> {
        self.store.reschedule(item, due_at).await
    }

    async fn retry(
        &self,
        item: &ClaimedDueItem,
        retry_at: Option<Timestamp>,
        error: &str,
        now: Timestamp,
    ) -> Result<Settled, StoreError> {
        self.store.retry(item, retry_at, error, now).await
    }

    async fn release(&self, item: &ClaimedDueItem) -> Result<Settled, StoreError> {
        self.store.release(item).await
    }

    async fn cancel(&self, kind: &DueKind, key: &DueKey) -> Result<bool, StoreError> {
        self.store.cancel(kind, key).await
    }

    async fn due_item(
        &self,
        kind: &DueKind,
        key: &DueKey,
    ) -> Result<Option<DueItemRow>, StoreError> {
        self.store.due_item(kind, key).await
    }
}
