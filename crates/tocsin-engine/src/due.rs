//! The due-work runner: claims due items (`tocsin_store::due`) in batches with a lease, runs
//! each with the handler of its kind, and settles it — done, run again later, or retried with
//! backoff after an error.
//!
//! Every process runs one; with several replicas on one database, each item is claimed by one
//! of them at a time, and an item whose claimer died is taken over when its lease ends. An item
//! can therefore run more than once (at least once): handlers make their effect idempotent.
//!
//! Items of kinds no handler is registered for (written by a newer version) are never claimed,
//! so they wait, untouched, for a runner that knows them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tocsin_core::Timestamp;
use tocsin_store::due::{
    ClaimRequest, ClaimedDueItem, ClaimerId, DueKey, DueKind, NewDueItem, Settled, WhenScheduled,
};
use tocsin_store::{Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::wake::Wakeups;
use crate::{Clock, Engine, Metrics};

/// The recurring item that writes the `alert.folded` entries of folds that have waited
/// `tocsin_core::FOLD_LOG_INTERVAL` (see [`FoldLogSweep`]).
pub const FOLD_LOG_SWEEP: DueKind = DueKind::from_static("fold_log.sweep");
/// How often the fold log sweep runs: an `alert.folded` entry comes at most this long (plus the
/// runner's poll interval) after `tocsin_core::FOLD_LOG_INTERVAL` has passed.
pub const FOLD_LOG_CHECK: Duration = Duration::from_secs(15);

/// What a handler's error is.
pub type DueError = Box<dyn std::error::Error + Send + Sync>;

/// Runs the items of one kind.
#[async_trait]
pub trait DueHandler: Send + Sync + 'static {
    fn kind(&self) -> DueKind;

    /// Runs the item at `now`. It may have run before (its claimer died before settling it):
    /// the effect must be the same whether it runs once or again.
    async fn run(&self, item: &ClaimedDueItem, now: Timestamp) -> Result<DueOutcome, DueError>;

    /// Whether the runner hands consecutive claimed items of this kind to
    /// [`DueHandler::run_many`] instead of running them one by one.
    fn runs_many(&self) -> bool {
        false
    }

    /// Runs several claimed items of this kind at once, for kinds that can do better than one
    /// at a time (one transaction for many): the outcomes in the order of `items`. Called only
    /// when [`DueHandler::runs_many`] says so. Leases are not renewed meanwhile, so it must
    /// finish well within one lease.
    async fn run_many(
        &self,
        items: &[ClaimedDueItem],
        now: Timestamp,
    ) -> Vec<Result<DueOutcome, DueError>> {
        let mut outcomes = Vec::with_capacity(items.len());
        for item in items {
            outcomes.push(self.run(item, now).await);
        }
        outcomes
    }

    /// Failed runs after which the item is parked (kept, not run again until scheduled anew);
    /// `None`: retried for ever, at the longest backoff.
    fn max_attempts(&self) -> Option<i64> {
        Some(DEFAULT_MAX_ATTEMPTS)
    }

    /// The item this kind always has, scheduled (if it is not yet) when the runner starts:
    /// the first run of recurring work.
    fn recurring(&self, _now: Timestamp) -> Option<NewDueItem> {
        None
    }
}

/// Failed runs after which an item is parked, unless its handler says otherwise.
pub const DEFAULT_MAX_ATTEMPTS: i64 = 10;

/// What a successful run leaves behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DueOutcome {
    /// The item is done and goes.
    Done,
    /// The item recurs: it runs again at this time.
    RunAgainAt(Timestamp),
    /// The handler settled the item itself, in the transaction that did its work (its lease is
    /// free and its next run, if any, is scheduled): the runner writes nothing more.
    Settled,
}

/// How a [`DueRunner`] claims and retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueRunnerSettings {
    /// Items per claim (at most `tocsin_store::due::MAX_CLAIM`).
    pub batch: usize,
    /// How long a claim holds an item; renewed while the item runs. A dead runner's items are
    /// taken over this long after its last renewal.
    pub lease: Duration,
    /// How long [`DueRunner::run_until`] waits between claims.
    pub poll: Duration,
    /// The wait before the first retry of a failed item; it doubles with every attempt...
    pub backoff_base: Duration,
    /// ...up to this.
    pub backoff_max: Duration,
}

impl Default for DueRunnerSettings {
    fn default() -> Self {
        DueRunnerSettings {
            batch: 32,
            lease: Duration::from_secs(60),
            poll: Duration::from_secs(1),
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(15 * 60),
        }
    }
}

/// What one [`DueRunner::run_due_once`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DueRunReport {
    /// Items whose handler succeeded.
    pub ran: usize,
    /// Items whose handler failed (retried later or parked).
    pub failed: usize,
    /// Items whose lease this runner lost before it could settle them.
    pub lost: usize,
    /// Items given back unrun because the runner is stopping.
    pub released: usize,
    /// The last claim was full: more items may be due now.
    pub more_due: bool,
}

/// Claims due items and runs them; see the module documentation.
pub struct DueRunner {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    handlers: BTreeMap<DueKind, Arc<dyn DueHandler>>,
    kinds: Vec<DueKind>,
    claimer: ClaimerId,
    settings: DueRunnerSettings,
    /// Wakes [`DueRunner::run_until`] before its poll when this process makes work due now.
    wakeups: Option<Arc<Wakeups>>,
}

impl std::fmt::Debug for DueRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DueRunner")
            .field("claimer", &self.claimer)
            .field("kinds", &self.kinds)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Claims per [`DueRunner::run_due_once`] at most, so that items that keep coming due at once
/// (a handler rescheduling to `now`) cannot keep it from returning.
const MAX_ROUNDS: usize = 8;

impl DueRunner {
    /// A runner with no handlers, claiming under a new, unique claimer id.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        settings: DueRunnerSettings,
    ) -> DueRunner {
        let claimer = format!("runner-{}", uuid::Uuid::new_v4().simple());
        DueRunner {
            store,
            clock,
            metrics,
            handlers: BTreeMap::new(),
            kinds: Vec::new(),
            claimer: ClaimerId::parse(&claimer).expect("a simple uuid is a valid claimer id"),
            settings,
            wakeups: None,
        }
    }

    /// Runs due work as soon as `wakeups.due` is woken, not only every poll; an item a handler
    /// makes due again at once (a skipped escalation level) wakes it too, and it claims again
    /// when a time noted in `wakeups.upcoming` comes, if that is before the next poll.
    pub fn with_wakeups(mut self, wakeups: Arc<Wakeups>) -> DueRunner {
        self.wakeups = Some(wakeups);
        self
    }

    /// Runs the items of `handler.kind()` with `handler` (replacing a handler of that kind).
    pub fn with_handler(mut self, handler: Arc<dyn DueHandler>) -> DueRunner {
        self.handlers.insert(handler.kind(), handler);
        self.kinds = self.handlers.keys().cloned().collect();
        self
    }

    pub fn claimer(&self) -> &ClaimerId {
        &self.claimer
    }

    /// Schedules the recurring item of every handler that has one, unless it is scheduled
    /// already (another replica, or an earlier run of this version, did it).
    pub async fn schedule_recurring(&self) -> Result<(), StoreError> {
        let now = self.clock.now();
        for handler in self.handlers.values() {
            if let Some(item) = handler.recurring(now) {
                self.store.schedule(&item, WhenScheduled::Keep, now).await?;
            }
        }
        Ok(())
    }

    /// Claims and runs what is due now, batch after batch, until nothing due is left (or
    /// [`MAX_ROUNDS`] claims were made). For tests and for [`DueRunner::run_until`].
    pub async fn run_due_once(&self) -> Result<DueRunReport, StoreError> {
        self.run_due(&CancellationToken::new()).await
    }

    /// Schedules the recurring items, then runs what is due every `poll` (and whenever its
    /// wake-up is woken) until `stop` is cancelled. Store errors are logged and retried at the
    /// next poll.
    pub async fn run_until(&self, stop: CancellationToken) {
        let mut scheduled = false;
        let mut wakeup = self.wakeups.as_ref().map(|wakeups| wakeups.due.subscribe());
        loop {
            if !scheduled {
                match self.schedule_recurring().await {
                    Ok(()) => scheduled = true,
                    Err(error) => tracing::warn!(
                        error = %crate::error_chain(&error),
                        "cannot schedule recurring due work; will retry"
                    ),
                }
            }
            match self.run_due(&stop).await {
                Ok(report) if report == DueRunReport::default() => {}
                Ok(report) if report.more_due => {
                    // A backlog (a storm of new incidents): go on at once, between other tasks.
                    tokio::task::yield_now().await;
                    continue;
                }
                Ok(report) => tracing::debug!(
                    ran = report.ran,
                    failed = report.failed,
                    lost = report.lost,
                    released = report.released,
                    "ran due work"
                ),
                Err(error) => tracing::warn!(
                    error = %crate::error_chain(&error),
                    "cannot claim due work; will retry"
                ),
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(self.next_wait()) => {}
                () = async {
                    match wakeup.as_mut() {
                        Some(wakeup) => wakeup.woken().await,
                        None => std::future::pending().await,
                    }
                } => {}
            }
        }
    }

    /// How long to wait before the next claim: the poll interval, or less when an item this
    /// process scheduled comes due sooner (see [`crate::wake::Upcoming`]).
    fn next_wait(&self) -> Duration {
        let poll = self.settings.poll;
        let Some(wakeups) = &self.wakeups else {
            return poll;
        };
        let now = self.clock.now();
        match wakeups.upcoming.next_after(now) {
            Some(next) => poll.min(next.duration_since(now).unsigned_abs()),
            None => poll,
        }
    }

    async fn run_due(&self, stop: &CancellationToken) -> Result<DueRunReport, StoreError> {
        let mut report = DueRunReport::default();
        let batch = self.settings.batch.max(1);
        for _ in 0..MAX_ROUNDS {
            if stop.is_cancelled() {
                break;
            }
            let now = self.clock.now();
            let items = self
                .store
                .claim(&ClaimRequest {
                    kinds: &self.kinds,
                    claimer: &self.claimer,
                    now,
                    lease_until: after(now, self.settings.lease),
                    limit: batch,
                })
                .await?;
            let claimed = items.len();
            let mut items = items.into_iter().peekable();
            while let Some(item) = items.next() {
                if stop.is_cancelled() {
                    // Not started: give it back now rather than make another runner wait for
                    // the lease to end.
                    self.store.release(&item).await?;
                    report.released += 1;
                    continue;
                }
                // The claim is oldest due first; consecutive items of one kind may run at once.
                let mut group = vec![item];
                while let Some(next) = items.next_if(|next| next.kind == group[0].kind) {
                    group.push(next);
                }
                if group.len() > 1 {
                    group = self.run_group(group, &mut report).await?;
                }
                for item in group {
                    self.run_item(item, &mut report).await?;
                }
            }
            report.more_due = claimed == batch;
            if claimed < batch {
                break;
            }
        }
        Ok(report)
    }

    /// Runs the items (of one kind) with [`DueHandler::run_many`] and settles them; returns
    /// them untouched when the handler runs items one at a time (see
    /// [`DueHandler::runs_many`]).
    async fn run_group(
        &self,
        group: Vec<ClaimedDueItem>,
        report: &mut DueRunReport,
    ) -> Result<Vec<ClaimedDueItem>, StoreError> {
        let Some(handler) = self.handlers.get(&group[0].kind).cloned() else {
            return Ok(group);
        };
        if !handler.runs_many() {
            return Ok(group);
        }
        let mut ready = Vec::with_capacity(group.len());
        for item in group {
            if let Some(item) = self.prepare(item, report).await? {
                ready.push(item);
            }
        }
        if ready.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        let outcomes = handler.run_many(&ready, now).await;
        if outcomes.len() != ready.len() {
            // A handler bug; the items' leases end and they run again.
            tracing::error!(
                kind = %ready[0].kind, items = ready.len(), outcomes = outcomes.len(),
                "due handler gave a different number of outcomes than items; not settled"
            );
            return Ok(Vec::new());
        }
        for (item, outcome) in ready.iter().zip(outcomes) {
            self.settle(handler.as_ref(), item, outcome, report).await?;
        }
        Ok(Vec::new())
    }

    /// Counts the item's lag and renews a lease that ran out before it started; `None` when
    /// another runner took it over meanwhile (counted as lost).
    async fn prepare(
        &self,
        mut item: ClaimedDueItem,
        report: &mut DueRunReport,
    ) -> Result<Option<ClaimedDueItem>, StoreError> {
        let now = self.clock.now();
        self.metrics.observe_due_lag(
            item.kind.as_str(),
            now.duration_since(item.due_at).as_secs_f64(),
        );
        // Items later in a batch wait for the earlier ones: renew a lease that ran out before
        // its item started, unless another runner took the item over meanwhile.
        if item.lease.until <= now {
            let until = after(now, self.settings.lease);
            if !self.store.renew(&item, until).await? {
                self.lost(&item, report, "before it ran")?;
                return Ok(None);
            }
            item.lease.until = until;
        }
        Ok(Some(item))
    }

    async fn run_item(
        &self,
        item: ClaimedDueItem,
        report: &mut DueRunReport,
    ) -> Result<(), StoreError> {
        let Some(handler) = self.handlers.get(&item.kind).cloned() else {
            // Only registered kinds are claimed; should one come back anyway, it is given back
            // untouched, never dropped.
            self.store.release(&item).await?;
            report.released += 1;
            return Ok(());
        };
        let Some(item) = self.prepare(item, report).await? else {
            return Ok(());
        };
        let now = self.clock.now();
        let outcome = match self.run_with_renewals(handler.as_ref(), &item, now).await? {
            Some(outcome) => outcome,
            None => return self.lost(&item, report, "while it ran"),
        };
        self.settle(handler.as_ref(), &item, outcome, report).await
    }

    /// Writes what the run of `item` left behind.
    async fn settle(
        &self,
        handler: &dyn DueHandler,
        item: &ClaimedDueItem,
        outcome: Result<DueOutcome, DueError>,
        report: &mut DueRunReport,
    ) -> Result<(), StoreError> {
        let kind = item.kind.as_str();
        let done = matches!(outcome, Ok(DueOutcome::Done));
        let settled = match outcome {
            Ok(DueOutcome::Done) => {
                report.ran += 1;
                self.metrics.count_due(&self.metrics.due_items_run, kind);
                self.store.complete(item).await?
            }
            Ok(DueOutcome::RunAgainAt(at)) => {
                report.ran += 1;
                self.metrics.count_due(&self.metrics.due_items_run, kind);
                let settled = self.store.reschedule(item, at).await?;
                if at <= self.clock.now() {
                    if let Some(wakeups) = &self.wakeups {
                        wakeups.due.wake();
                    }
                }
                settled
            }
            Ok(DueOutcome::Settled) => {
                report.ran += 1;
                self.metrics.count_due(&self.metrics.due_items_run, kind);
                Settled::Applied
            }
            Err(error) => {
                report.failed += 1;
                self.metrics.count_due(&self.metrics.due_items_failed, kind);
                let message = error_text(error.as_ref());
                let now = self.clock.now();
                match handler.max_attempts() {
                    Some(max) if item.attempts >= max => {
                        tracing::error!(
                            kind, key = %item.key, attempts = item.attempts, error = %message,
                            "due item failed too often; parked until scheduled anew"
                        );
                        self.store.retry(item, None, &message, now).await?
                    }
                    _ => {
                        let retry_at = after(now, self.backoff(item.attempts));
                        tracing::warn!(
                            kind, key = %item.key, attempts = item.attempts, error = %message,
                            retry_at = %retry_at, "due item failed; will retry"
                        );
                        self.store
                            .retry(item, Some(retry_at), &message, now)
                            .await?
                    }
                }
            }
        };
        match settled {
            Settled::Applied | Settled::Superseded => Ok(()),
            // The item went while it ran (acknowledging an incident removes its escalation),
            // and gone is what a finished run asks for: nothing was lost.
            Settled::LeaseLost
                if done && self.store.due_item(&item.kind, &item.key).await?.is_none() =>
            {
                tracing::debug!(kind, key = %item.key, "due item removed while it ran");
                Ok(())
            }
            Settled::LeaseLost => self.lost(item, report, "before it was settled"),
        }
    }

    /// Runs the handler, renewing the lease every third of it meanwhile. `None`: the lease was
    /// lost (another runner took the item over), and the run was abandoned.
    async fn run_with_renewals(
        &self,
        handler: &dyn DueHandler,
        item: &ClaimedDueItem,
        now: Timestamp,
    ) -> Result<Option<Result<DueOutcome, DueError>>, StoreError> {
        let every = (self.settings.lease / 3).max(Duration::from_millis(10));
        let run = handler.run(item, now);
        tokio::pin!(run);
        let mut renewals = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tokio::select! {
                outcome = &mut run => return Ok(Some(outcome)),
                _ = renewals.tick() => {
                    let until = after(self.clock.now(), self.settings.lease);
                    if !self.store.renew(item, until).await? {
                        return Ok(None);
                    }
                }
            }
        }
    }

    fn lost(
        &self,
        item: &ClaimedDueItem,
        report: &mut DueRunReport,
        when: &str,
    ) -> Result<(), StoreError> {
        report.lost += 1;
        self.metrics
            .count_due(&self.metrics.due_leases_lost, item.kind.as_str());
        tracing::warn!(
            kind = %item.kind, key = %item.key, when,
            "lost the lease of a due item; another runner took it over"
        );
        Ok(())
    }

    /// The wait before retrying an item that failed its `attempts`-th run.
    fn backoff(&self, attempts: i64) -> Duration {
        let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        self.settings
            .backoff_base
            .saturating_mul(2_u32.saturating_pow(doublings))
            .min(self.settings.backoff_max)
    }
}

/// Writes the `alert.folded` entries of folds that have waited long enough, every
/// [`FOLD_LOG_CHECK`], as one recurring item (`fold_log.sweep`/`all`).
///
/// One item for all alerts rather than one per alert, because a per-alert item would have to
/// be scheduled by the ingest path whenever a fold starts to wait — a write per alert on the
/// serial commit path — while the sweep finds due alerts through the open-alert index. With
/// several replicas one of them runs each sweep. A sweep is idempotent: it logs and marks the
/// folds it counts in one transaction, so a sweep run again (its runner died before settling)
/// finds nothing left to log, and every fold is counted by exactly one entry.
pub struct FoldLogSweep {
    engine: Arc<Engine>,
}

impl FoldLogSweep {
    pub fn new(engine: Arc<Engine>) -> FoldLogSweep {
        FoldLogSweep { engine }
    }

    fn key() -> DueKey {
        DueKey::parse("all").expect("`all` is a valid key")
    }
}

#[async_trait]
impl DueHandler for FoldLogSweep {
    fn kind(&self) -> DueKind {
        FOLD_LOG_SWEEP
    }

    async fn run(&self, _item: &ClaimedDueItem, now: Timestamp) -> Result<DueOutcome, DueError> {
        let written = self.engine.log_due_folds().await?;
        if written > 0 {
            tracing::debug!(written, "logged waiting folds");
        }
        Ok(DueOutcome::RunAgainAt(after(now, FOLD_LOG_CHECK)))
    }

    /// Fold logging never gives up: it retries at the longest backoff.
    fn max_attempts(&self) -> Option<i64> {
        None
    }

    fn recurring(&self, now: Timestamp) -> Option<NewDueItem> {
        NewDueItem::new(FOLD_LOG_SWEEP, Self::key(), &serde_json::json!({}), now).ok()
    }
}

/// `now` plus `duration`, or the latest time there is.
fn after(now: Timestamp, duration: Duration) -> Timestamp {
    now.checked_add(duration).unwrap_or(Timestamp::MAX)
}

fn error_text(error: &(dyn std::error::Error + Send + Sync)) -> String {
    crate::error_chain(error)
}
