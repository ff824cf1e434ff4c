//! The monitor scheduler: every probed monitor is one due-work item (`monitor.check`, key =
//! the monitor's id) whose payload is the monitor's state. A runner claims due items with a
//! lease, runs their checks concurrently (at most `concurrency` at once, at most `per_host` at
//! once against one host), folds each result into the state, sends the alert events the state
//! machine asks for through the ingest pipeline, and schedules the next check with the new
//! state — so one process or several replicas on one database run each check once, and the
//! replica that runs the next check continues where the last one stopped.
//!
//! First checks are spread over each monitor's interval by a hash of its id (the same on every
//! replica); later checks keep that phase. A reload swaps the monitors in [`Monitors`]: new ones
//! are scheduled, removed ones cancelled (their open alert resolved), changed ones keep their
//! state and pick up their new settings at their next check.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use serde_json::json;
use tocsin_config::{Monitor, MonitorKind};
use tocsin_core::{
    Actor, AlertState, Command, DedupKey, Event, EventAction, Integration, ServiceId, Severity,
    Timestamp,
};
use tocsin_engine::Engine;
use tocsin_store::due::{
    ClaimRequest, ClaimedDueItem, ClaimerId, DueKey, DueKind, NewDueItem, Settled, WhenScheduled,
};
use tocsin_store::monitor_pauses::{MonitorPause, MAX_PAUSE_ROWS};
use tocsin_store::monitor_results::{CheckSettlement, MAX_SETTLE_BATCH};
use tocsin_store::{AlertFilter, Inbound, PageRequest, Store, StoreError};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::probe::{CheckResult, CheckStatus, Prober};
use crate::state::{AlertAction, AlertLink, MonitorState, MonitorStatus, Thresholds};
use crate::stored;

/// The due-work kind of a monitor's next check.
pub const MONITOR_CHECK: DueKind = DueKind::from_static("monitor.check");

/// The dedup key of a monitor's alert: `monitor:<id>`.
pub fn dedup_key(monitor_id: &str) -> String {
    format!("monitor:{monitor_id}")
}

/// How a [`MonitorRunner`] runs checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunnerSettings {
    /// Checks running at once, at most.
    pub concurrency: usize,
    /// Checks running at once against one host, at most (politeness).
    pub per_host: usize,
    /// Items per claim, at most.
    pub batch: usize,
    /// How often due checks are claimed.
    pub poll: Duration,
    /// A failed check is tried once more after this wait before its result counts.
    pub retry_delay: Duration,
    /// How long a claim holds a check; renewed while it runs.
    pub lease: Duration,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        RunnerSettings {
            concurrency: 256,
            per_host: 4,
            batch: 128,
            poll: Duration::from_millis(250),
            retry_delay: Duration::from_secs(1),
            lease: Duration::from_secs(60),
        }
    }
}

/// The monitors in force, swapped whole on reload, and the ids of the paused ones as last read
/// from the store.
pub struct Monitors {
    current: ArcSwap<HashMap<String, Arc<Monitor>>>,
    paused: ArcSwap<HashSet<String>>,
    changed: Notify,
}

impl std::fmt::Debug for Monitors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitors")
            .field("count", &self.current.load().len())
            .finish()
    }
}

impl Monitors {
    /// The probed monitors of `monitors` (heartbeat monitors are not run here).
    pub fn new(monitors: &[Monitor]) -> Monitors {
        Monitors {
            current: ArcSwap::from_pointee(probed(monitors)),
            paused: ArcSwap::from_pointee(HashSet::new()),
            changed: Notify::new(),
        }
    }

    /// Whether the monitor was paused when the pauses were last read (at every claim of due
    /// checks, and at every pause and resume through this value).
    pub fn is_paused(&self, id: &str) -> bool {
        self.paused.load().contains(id)
    }

    /// Pauses a probed monitor: it is not checked until it is resumed; its state and its open
    /// alert stay as they are. `None` when no probed monitor has that id.
    pub async fn pause(
        &self,
        store: &dyn Store,
        id: &str,
        by: &str,
        now: Timestamp,
    ) -> Result<Option<MonitorPause>, StoreError> {
        if self.get(id).is_none() {
            return Ok(None);
        }
        let pause = store.pause_monitor(id, by, now).await?;
        self.paused.rcu(|paused| {
            let mut paused = HashSet::clone(paused);
            paused.insert(id.to_owned());
            paused
        });
        tracing::info!(monitor = %id, by = %pause.paused_by, "monitor paused; its checks stop until it is resumed");
        Ok(Some(pause))
    }

    /// Resumes a probed monitor: its checks go on from the state it had. `None` when no probed
    /// monitor has that id, else whether it was paused.
    pub async fn resume(&self, store: &dyn Store, id: &str) -> Result<Option<bool>, StoreError> {
        if self.get(id).is_none() {
            return Ok(None);
        }
        let was_paused = store.resume_monitor(id).await?;
        self.paused.rcu(|paused| {
            let mut paused = HashSet::clone(paused);
            paused.remove(id);
            paused
        });
        if was_paused {
            tracing::info!(monitor = %id, "monitor resumed; its checks go on");
        }
        Ok(Some(was_paused))
    }

    /// Reads the paused monitors from the store (every replica's pauses and resumes).
    pub async fn refresh_paused(&self, store: &dyn Store) -> Result<(), StoreError> {
        let mut paused = HashSet::new();
        let mut after: Option<String> = None;
        loop {
            let page = store
                .monitor_pauses(after.as_deref(), MAX_PAUSE_ROWS)
                .await?;
            let full = page.len() >= MAX_PAUSE_ROWS;
            after = page.last().map(|pause| pause.monitor.clone());
            paused.extend(page.into_iter().map(|pause| pause.monitor));
            if !full {
                break;
            }
        }
        self.paused.store(Arc::new(paused));
        Ok(())
    }

    /// Swaps in a new set; the runner schedules and cancels accordingly.
    pub fn replace(&self, monitors: &[Monitor]) {
        let monitors = probed(monitors);
        for monitor in monitors.values() {
            warn_if_unverified(monitor);
        }
        self.current.store(Arc::new(monitors));
        self.changed.notify_one();
    }

    pub fn get(&self, id: &str) -> Option<Arc<Monitor>> {
        self.current.load().get(id).cloned()
    }

    /// Every probed monitor, by id.
    pub fn all(&self) -> Vec<Arc<Monitor>> {
        let mut all: Vec<Arc<Monitor>> = self.current.load().values().cloned().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }
}

fn probed(monitors: &[Monitor]) -> HashMap<String, Arc<Monitor>> {
    monitors
        .iter()
        .filter(|monitor| monitor.probe().is_some())
        .map(|monitor| (monitor.id.clone(), Arc::new(monitor.clone())))
        .collect()
}

/// `skip_tls_verify` is logged at start and on every reload: it checks nothing.
pub fn warn_if_unverified(monitor: &Monitor) {
    let skips = match &monitor.kind {
        MonitorKind::Http(check) => check.tls == tocsin_config::TlsTrust::SkipVerify,
        MonitorKind::Tcp(check) => check.tls_trust == tocsin_config::TlsTrust::SkipVerify,
        MonitorKind::Tls(check) => check.tls_trust == tocsin_config::TlsTrust::SkipVerify,
        _ => false,
    };
    if skips {
        tracing::warn!(
            monitor = %monitor.id,
            "TLS CERTIFICATE VERIFICATION IS OFF for this monitor (skip_tls_verify = true): it \
             accepts any certificate, so it cannot tell the real server from an impostor; use \
             ca_file with your CA instead"
        );
    }
}

/// Runs the checks; see the module documentation.
#[derive(Clone)]
pub struct MonitorRunner {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MonitorRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonitorRunner")
            .field("claimer", &self.inner.claimer)
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

struct Inner {
    engine: Arc<Engine>,
    store: Arc<dyn Store>,
    monitors: Arc<Monitors>,
    prober: Prober,
    claimer: ClaimerId,
    settings: RunnerSettings,
    slots: Arc<Semaphore>,
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// The monitors (and their intervals) scheduled by the last sync.
    scheduled: tokio::sync::Mutex<HashMap<String, Duration>>,
    settlements: GroupCommit,
}

type Answer = tokio::sync::oneshot::Sender<Result<Settled, String>>;

/// Settles finished checks together: a check queues its settlement and waits for the commit
/// lock; whoever holds it writes everything queued in one transaction and answers each. While
/// one transaction commits, the checks finishing meanwhile queue up for the next, so the
/// transactions grow with the rate of checks instead of their number.
#[derive(Default)]
struct GroupCommit {
    queue: Mutex<Vec<(CheckSettlement, Answer)>>,
    commit: tokio::sync::Mutex<()>,
}

impl GroupCommit {
    async fn settle(
        &self,
        store: &dyn Store,
        settlement: CheckSettlement,
    ) -> Result<Settled, String> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.lock_queue().push((settlement, answer));
        {
            let _commit = self.commit.lock().await;
            // Empty when an earlier holder of the lock already took this one.
            let batch = {
                let mut queue = self.lock_queue();
                let take = queue.len().min(MAX_SETTLE_BATCH);
                queue.drain(..take).collect::<Vec<_>>()
            };
            if !batch.is_empty() {
                let (settlements, answers): (Vec<CheckSettlement>, Vec<Answer>) =
                    batch.into_iter().unzip();
                match store.settle_checks(&settlements).await {
                    Ok(settled) => {
                        for (answer, settled) in answers.into_iter().zip(settled) {
                            let _ = answer.send(Ok(settled));
                        }
                    }
                    Err(error) => {
                        let error = tocsin_engine::error_chain(&error);
                        for answer in answers {
                            let _ = answer.send(Err(error.clone()));
                        }
                    }
                }
            }
        }
        answered
            .await
            .unwrap_or_else(|_| Err("the settlement of the check was dropped".to_owned()))
    }

    fn lock_queue(&self) -> std::sync::MutexGuard<'_, Vec<(CheckSettlement, Answer)>> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What one [`MonitorRunner::run_due_once`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RunReport {
    /// Checks run and settled.
    pub checked: usize,
    /// Checks that could not be settled (a store or ingest error; retried later).
    pub failed: usize,
    /// Items of monitors no longer configured, removed.
    pub retired: usize,
    /// Turns of paused monitors, skipped.
    pub paused: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ItemOutcome {
    Checked,
    Paused,
    Failed,
    Retired,
    Lost,
}

impl MonitorRunner {
    pub fn new(
        engine: Arc<Engine>,
        monitors: Arc<Monitors>,
        settings: RunnerSettings,
    ) -> MonitorRunner {
        let claimer = format!("monitors-{}", uuid::Uuid::new_v4().simple());
        for monitor in monitors.all() {
            warn_if_unverified(&monitor);
        }
        MonitorRunner {
            inner: Arc::new(Inner {
                store: engine.store(),
                engine,
                monitors,
                prober: Prober::new(),
                claimer: ClaimerId::parse(&claimer).expect("a simple uuid is a valid claimer id"),
                slots: Arc::new(Semaphore::new(settings.concurrency.max(1))),
                settings,
                hosts: Mutex::new(HashMap::new()),
                scheduled: tokio::sync::Mutex::new(HashMap::new()),
                settlements: GroupCommit::default(),
            }),
        }
    }

    pub fn monitors(&self) -> &Arc<Monitors> {
        &self.inner.monitors
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Schedules the first check of every monitor not scheduled yet (spread over its interval),
    /// brings forward those whose interval shrank, and cancels the monitors removed since the
    /// last sync (resolving their open alert).
    pub async fn sync(&self) -> Result<(), StoreError> {
        self.inner.sync().await
    }

    /// Syncs, then claims and runs every check due now, and waits for them. For tests.
    pub async fn run_due_once(&self) -> Result<RunReport, StoreError> {
        self.inner.sync().await?;
        let mut report = RunReport::default();
        loop {
            let mut tasks = JoinSet::new();
            let claimed = self.inner.claim_and_spawn(&mut tasks).await?;
            while let Some(done) = tasks.join_next().await {
                match done {
                    Ok(ItemOutcome::Checked) => report.checked += 1,
                    Ok(ItemOutcome::Retired) => report.retired += 1,
                    Ok(ItemOutcome::Paused) => report.paused += 1,
                    Ok(ItemOutcome::Failed | ItemOutcome::Lost) => report.failed += 1,
                    Err(error) => std::panic::resume_unwind(error.into_panic()),
                }
            }
            if claimed < self.inner.settings.batch.max(1) {
                return Ok(report);
            }
        }
    }

    /// Runs checks as they come due until `stop` is cancelled; then lets the checks in flight
    /// finish for up to 5 s (the rest are abandoned: their leases end and another runner takes
    /// them over).
    pub async fn run_until(&self, stop: CancellationToken) {
        let mut tasks: JoinSet<ItemOutcome> = JoinSet::new();
        let mut synced = false;
        loop {
            if !synced {
                match self.inner.sync().await {
                    Ok(()) => synced = true,
                    Err(error) => tracing::warn!(
                        error = %tocsin_engine::error_chain(&error),
                        "cannot schedule monitor checks; will retry"
                    ),
                }
            }
            while let Some(done) = tasks.try_join_next() {
                if let Err(error) = done {
                    if error.is_panic() {
                        tracing::error!(error = %error, "a monitor check panicked");
                    }
                }
            }
            if let Err(error) = self.inner.claim_and_spawn(&mut tasks).await {
                tracing::warn!(
                    error = %tocsin_engine::error_chain(&error),
                    "cannot claim monitor checks; will retry"
                );
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = self.inner.monitors.changed.notified() => synced = false,
                () = tokio::time::sleep(self.inner.settings.poll) => {}
            }
        }
        let drained = tokio::time::timeout(Duration::from_secs(5), async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::info!(
                abandoned = tasks.len(),
                "stopping with monitor checks in flight; another runner takes them over"
            );
            tasks.abort_all();
        }
    }
}

impl Inner {
    fn now(&self) -> Timestamp {
        self.engine.now()
    }

    async fn sync(&self) -> Result<(), StoreError> {
        let mut scheduled = self.scheduled.lock().await;
        let now = self.now();
        let current = self.monitors.all();
        let ids: HashSet<&str> = current.iter().map(|monitor| monitor.id.as_str()).collect();
        // The first check of each new monitor, many in one transaction (10,000 monitors at
        // start are ten commits, not ten thousand).
        for chunk in current.chunks(tocsin_store::due::MAX_SCHEDULE_MANY) {
            let mut planned = Vec::with_capacity(chunk.len());
            let mut items = Vec::with_capacity(chunk.len());
            for monitor in chunk {
                let interval = interval_of(monitor);
                let key = due_key(&monitor.id)?;
                let first = after(now, phase(&monitor.id, interval));
                items.push(new_item(&key, &MonitorState::default(), first)?);
                planned.push((monitor, interval, key, first));
            }
            let placed = self
                .store
                .schedule_many(&items, WhenScheduled::Keep, now)
                .await?;
            for ((monitor, interval, key, first), placed) in planned.into_iter().zip(placed) {
                // A shorter interval takes effect now, not after the longer wait already
                // scheduled.
                if !placed.inserted && placed.due_at > after(now, interval) {
                    if let Some(row) = self.store.due_item(&MONITOR_CHECK, &key).await? {
                        let state = stored::decode(&row.payload);
                        let moved = new_item(&key, &state, first)?;
                        self.store
                            .schedule(&moved, WhenScheduled::Earlier, now)
                            .await?;
                    }
                }
                scheduled.insert(monitor.id.clone(), interval);
            }
        }
        let removed: Vec<String> = scheduled
            .keys()
            .filter(|id| !ids.contains(id.as_str()))
            .cloned()
            .collect();
        for id in removed {
            let key = due_key(&id)?;
            if let Some(row) = self.store.due_item(&MONITOR_CHECK, &key).await? {
                self.resolve_removed(&id, &stored::decode(&row.payload))
                    .await;
            }
            self.store.cancel(&MONITOR_CHECK, &key).await?;
            scheduled.remove(&id);
            tracing::info!(monitor = %id, "monitor removed from the config; its checks stop");
        }
        let all: Vec<Monitor> = current.iter().map(|monitor| (**monitor).clone()).collect();
        self.prober.retain_for(&all);
        Ok(())
    }

    /// Claims as many due checks as there are free slots and starts them.
    async fn claim_and_spawn(
        self: &Arc<Self>,
        tasks: &mut JoinSet<ItemOutcome>,
    ) -> Result<usize, StoreError> {
        let free = self.slots.available_permits();
        if free == 0 {
            return Ok(0);
        }
        let now = self.now();
        let items = self
            .store
            .claim(&ClaimRequest {
                kinds: std::slice::from_ref(&MONITOR_CHECK),
                claimer: &self.claimer,
                now,
                lease_until: after(now, self.settings.lease),
                limit: free.min(self.settings.batch.max(1)),
            })
            .await?;
        let claimed = items.len();
        if claimed > 0 {
            // Pauses and resumes of every replica count from the next claim on; when they
            // cannot be read, the pauses last read stay in force.
            if let Err(error) = self.monitors.refresh_paused(self.store.as_ref()).await {
                tracing::warn!(error = %tocsin_engine::error_chain(&error), "cannot read the paused monitors; keeping the pauses last read");
            }
        }
        for item in items {
            let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() else {
                // Cannot happen (this task is the only one taking slots); give it back.
                self.store.release(&item).await?;
                continue;
            };
            let inner = Arc::clone(self);
            tasks.spawn(async move { inner.run_item(item, permit).await });
        }
        Ok(claimed)
    }

    async fn run_item(
        self: Arc<Self>,
        item: ClaimedDueItem,
        _slot: OwnedSemaphorePermit,
    ) -> ItemOutcome {
        let Some(monitor) = self.monitors.get(item.key.as_str()) else {
            return self.retire(&item).await;
        };
        if self.monitors.is_paused(&monitor.id) {
            return self.skip_paused(&monitor, &item).await;
        }
        let work = self.check_and_settle(&monitor, &item);
        tokio::pin!(work);
        let every = (self.settings.lease / 3).max(Duration::from_millis(10));
        let mut renewals = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let outcome = loop {
            tokio::select! {
                outcome = &mut work => break outcome,
                _ = renewals.tick() => {
                    match self.store.renew(&item, after(self.now(), self.settings.lease)).await {
                        Ok(true) => {}
                        Ok(false) => break Ok(ItemOutcome::Lost),
                        Err(error) => tracing::warn!(
                            monitor = %monitor.id, error = %tocsin_engine::error_chain(&error),
                            "cannot renew the lease of a monitor check"
                        ),
                    }
                }
            }
        };
        match outcome {
            Ok(ItemOutcome::Lost) => {
                tracing::warn!(monitor = %monitor.id, "lost the lease of a monitor check; another runner took it over");
                ItemOutcome::Lost
            }
            Ok(outcome) => outcome,
            Err(error) => {
                tracing::warn!(monitor = %monitor.id, error = %error, "monitor check not settled; will retry");
                let retry_at = after(
                    self.now(),
                    interval_of(&monitor).min(Duration::from_secs(30)),
                );
                if let Err(error) = self
                    .store
                    .retry(&item, Some(retry_at), &error, self.now())
                    .await
                {
                    tracing::warn!(monitor = %monitor.id, error = %tocsin_engine::error_chain(&error), "cannot reschedule a monitor check");
                }
                ItemOutcome::Failed
            }
        }
    }

    /// A paused monitor's turn: no check, no result, the state (and any open alert) left as it
    /// is; its item moves on to the next time on its grid, so a resume takes effect within one
    /// interval.
    async fn skip_paused(&self, monitor: &Monitor, item: &ClaimedDueItem) -> ItemOutcome {
        let now = self.now();
        let next = next_due(item.due_at, interval_of(monitor), now);
        let skipped = async {
            let key = due_key(&monitor.id)?;
            let state = stored::decode(&item.payload);
            let scheduled = new_item(&key, &state, next)?;
            self.store
                .schedule(&scheduled, WhenScheduled::Replace, now)
                .await?;
            self.store.complete(item).await
        };
        match skipped.await {
            Ok(Settled::Applied | Settled::Superseded) => ItemOutcome::Paused,
            Ok(Settled::LeaseLost) => ItemOutcome::Lost,
            Err(error) => {
                tracing::warn!(monitor = %monitor.id, error = %tocsin_engine::error_chain(&error), "cannot move on the schedule of a paused monitor");
                ItemOutcome::Failed
            }
        }
    }

    /// Runs the probe, holding one of the host's politeness slots only while it runs. The
    /// first try of a turn reports how late it started after `due_at` (including any wait for
    /// the host's slot).
    async fn probe(
        &self,
        monitor: &Monitor,
        host: &Semaphore,
        due_at: Option<Timestamp>,
    ) -> CheckResult {
        let _host_slot = host.acquire().await;
        let started = self.now();
        if let Some(due_at) = due_at {
            self.engine.metrics().observe_due_lag(
                MONITOR_CHECK.as_str(),
                started.duration_since(due_at).as_secs_f64(),
            );
        }
        self.prober.check(monitor, started).await
    }

    /// Checks (retrying a failure once), decides, alerts, and stores the result with the next
    /// check's schedule and the new state in one transaction.
    async fn check_and_settle(
        &self,
        monitor: &Monitor,
        item: &ClaimedDueItem,
    ) -> Result<ItemOutcome, String> {
        let mut state = stored::decode(&item.payload);
        let host = self.host_slot(&host_of(monitor));
        let mut result = self.probe(monitor, &host, Some(item.due_at)).await;
        if result.status == CheckStatus::Down {
            tokio::time::sleep(self.settings.retry_delay).await;
            result = self.probe(monitor, &host, None).await;
        }
        let now = self.now();
        let probe = monitor.probe().expect("only probed monitors are scheduled");
        let decision = state.observe(&result, now, Thresholds::from(probe));
        if decision.before != decision.after {
            tracing::info!(
                monitor = %monitor.id,
                from = decision.before.as_str(),
                to = decision.after.as_str(),
                error = result.error.as_deref().unwrap_or(""),
                "monitor changed state"
            );
        }
        self.alert(monitor, &mut state, decision.alert, &result, now)
            .await?;
        // The newest config decides the next time (a reload may have changed the interval).
        let interval = self
            .monitors
            .get(&monitor.id)
            .map_or_else(|| interval_of(monitor), |current| interval_of(&current));
        let next = next_due(item.due_at, interval, now);
        let key = due_key(&monitor.id).map_err(|error| error.to_string())?;
        let scheduled = new_item(&key, &state, next).map_err(|error| error.to_string())?;
        let row = crate::results::result_row(&monitor.id, &result, now);
        match self
            .settlements
            .settle(
                self.store.as_ref(),
                CheckSettlement {
                    item: item.clone(),
                    next: scheduled,
                    result: row,
                },
            )
            .await?
        {
            Settled::Applied | Settled::Superseded => Ok(ItemOutcome::Checked),
            Settled::LeaseLost => Ok(ItemOutcome::Lost),
        }
    }

    /// Carries out what the state machine decided about the alert, and what the monitor's
    /// dependencies change about it.
    async fn alert(
        &self,
        monitor: &Monitor,
        state: &mut MonitorState,
        action: AlertAction,
        result: &CheckResult,
        now: Timestamp,
    ) -> Result<(), String> {
        let failing = state.status.is_failing();
        match action {
            AlertAction::Trigger => {
                if let Some(parent) = self.down_parent(monitor).await {
                    if state.alert == AlertLink::Own {
                        // It paged before its parent went down: its alert stays its own.
                        self.send(monitor, state, EventAction::Trigger, result, now)
                            .await?;
                    } else if state.alert != AlertLink::Parent(parent.clone()) {
                        self.note_on_parent(monitor, &parent, state).await;
                        state.alert = AlertLink::Parent(parent);
                    }
                } else {
                    self.send(monitor, state, EventAction::Trigger, result, now)
                        .await?;
                    state.alert = AlertLink::Own;
                }
            }
            AlertAction::Resolve => {
                if state.alert == AlertLink::Own {
                    self.send(monitor, state, EventAction::Resolve, result, now)
                        .await?;
                }
                state.alert = AlertLink::None;
            }
            AlertAction::None => {
                // A failure recorded on a parent's incident pages on its own once the parent is
                // no longer down.
                if let (true, AlertLink::Parent(_)) = (failing, &state.alert) {
                    match self.down_parent(monitor).await {
                        Some(parent) => state.alert = AlertLink::Parent(parent),
                        None => {
                            self.send(monitor, state, EventAction::Trigger, result, now)
                                .await?;
                            state.alert = AlertLink::Own;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The monitor (root cause) whose incident a failure of `monitor` belongs to: a parent
    /// (through `depends_on`) that is down or whose last check failed, or that parent's own
    /// root.
    async fn down_parent(&self, monitor: &Monitor) -> Option<String> {
        for parent in &monitor.depends_on {
            let key = due_key(parent).ok()?;
            let row = match self.store.due_item(&MONITOR_CHECK, &key).await {
                Ok(row) => row?,
                Err(error) => {
                    tracing::warn!(monitor = %monitor.id, parent = %parent, error = %tocsin_engine::error_chain(&error), "cannot read the state of a parent monitor");
                    continue;
                }
            };
            let state = stored::decode(&row.payload);
            let last_failed = state
                .last_result
                .as_ref()
                .is_some_and(|last| last.status == CheckStatus::Down);
            if state.status == MonitorStatus::Down || last_failed {
                return Some(match state.alert {
                    AlertLink::Parent(root) => root,
                    _ => parent.clone(),
                });
            }
        }
        None
    }

    /// Records a dependent monitor's failure on the incident of the monitor it depends on.
    async fn note_on_parent(&self, monitor: &Monitor, parent: &str, state: &MonitorState) {
        let Some(parent_monitor) = self.monitors.get(parent) else {
            return;
        };
        let key = dedup_key(parent);
        let filter = AlertFilter {
            state: Some(AlertState::Triggered),
            service: Some(ServiceId::new(parent_monitor.service.clone())),
            incident: None,
        };
        let mut incident = None;
        for filter in [
            filter.clone(),
            AlertFilter {
                state: Some(AlertState::Acknowledged),
                ..filter
            },
        ] {
            if let Ok(page) = self
                .engine
                .alerts(&filter, PageRequest::new(None, PageRequest::MAX_LIMIT))
                .await
            {
                if let Some(alert) = page
                    .items
                    .iter()
                    .find(|alert| alert.dedup_key.as_str() == key)
                {
                    incident = Some(alert.incident);
                    break;
                }
            }
        }
        let error = state
            .last_failure
            .as_ref()
            .and_then(|failure| failure.error.clone())
            .unwrap_or_default();
        tracing::info!(
            monitor = %monitor.id, parent = %parent,
            "monitor failing while a monitor it depends on is down; recorded, not paged"
        );
        let Some(incident) = incident else { return };
        let note = format!(
            "Monitor {} ({}), which depends on {parent}, is {} too: {error}. It is not paged \
             separately while {parent} is down.",
            monitor.id,
            target_of(monitor),
            state.status.as_str(),
        );
        if let Err(error) = self
            .engine
            .command(incident, &Command::AddNote(note), &Actor::system())
            .await
        {
            tracing::warn!(monitor = %monitor.id, error = %tocsin_engine::error_chain(&error), "cannot record a dependent failure on the parent's incident");
        }
    }

    async fn send(
        &self,
        monitor: &Monitor,
        state: &MonitorState,
        action: EventAction,
        result: &CheckResult,
        now: Timestamp,
    ) -> Result<(), String> {
        let event = alert_event(monitor, state, action, result, now)?;
        self.engine
            .submit(vec![Inbound::Alert(event)])
            .await
            .map_err(|error| tocsin_engine::error_chain(&error))
    }

    /// The item of a monitor no longer configured: resolve its alert, remove it.
    async fn retire(&self, item: &ClaimedDueItem) -> ItemOutcome {
        let state = stored::decode(&item.payload);
        self.resolve_removed(item.key.as_str(), &state).await;
        match self.store.complete(item).await {
            Ok(_) => ItemOutcome::Retired,
            Err(error) => {
                tracing::warn!(monitor = %item.key, error = %tocsin_engine::error_chain(&error), "cannot remove the checks of a removed monitor");
                ItemOutcome::Failed
            }
        }
    }

    async fn resolve_removed(&self, id: &str, state: &MonitorState) {
        if state.alert != AlertLink::Own {
            return;
        }
        // The service is no longer known from the config: find the open alert by its key.
        let key = dedup_key(id);
        let filter = AlertFilter {
            state: Some(AlertState::Triggered),
            service: None,
            incident: None,
        };
        let Ok(page) = self
            .engine
            .alerts(&filter, PageRequest::new(None, PageRequest::MAX_LIMIT))
            .await
        else {
            return;
        };
        let Some(alert) = page
            .items
            .iter()
            .find(|alert| alert.dedup_key.as_str() == key)
        else {
            return;
        };
        let Ok(dedup) = DedupKey::parse(&key) else {
            return;
        };
        let now = self.now();
        let event = Event {
            service: alert.service.clone(),
            integration: Integration::Monitor,
            action: EventAction::Resolve,
            dedup_key: dedup,
            severity: Severity::Info,
            summary: format!("monitor {id} was removed from the config"),
            source: format!("tocsin monitor {id}"),
            occurred_at: Some(now),
            received_at: now,
            details: json!({ "monitor": id, "removed": true }),
        };
        if let Err(error) = self.engine.submit(vec![Inbound::Alert(event)]).await {
            tracing::warn!(monitor = %id, error = %tocsin_engine::error_chain(&error), "cannot resolve the alert of a removed monitor");
        }
    }

    fn host_slot(&self, host: &str) -> Arc<Semaphore> {
        let mut hosts = self
            .hosts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Forget idle hosts now and then, so the map does not grow with removed monitors.
        if hosts.len() > 4 * self.settings.concurrency.max(64) {
            let per_host = self.settings.per_host.max(1);
            hosts.retain(|_, slot| slot.available_permits() < per_host);
        }
        Arc::clone(
            hosts
                .entry(host.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.settings.per_host.max(1)))),
        )
    }
}

/// The alert event for a monitor's state: what failed, since when, the last error and the last
/// good result.
fn alert_event(
    monitor: &Monitor,
    state: &MonitorState,
    action: EventAction,
    result: &CheckResult,
    now: Timestamp,
) -> Result<Event, String> {
    let dedup = DedupKey::parse(&dedup_key(&monitor.id)).map_err(|error| error.to_string())?;
    let target = target_of(monitor);
    let error = state
        .last_failure
        .as_ref()
        .and_then(|failure| failure.error.clone())
        .unwrap_or_default();
    let (severity, summary) = match action {
        EventAction::Resolve => (
            Severity::Info,
            format!("{} ({}) is up again", monitor.id, target),
        ),
        _ => {
            let severity = if state.status == MonitorStatus::Down {
                Severity::Critical
            } else {
                Severity::Warning
            };
            let mut summary = format!(
                "{} ({}) is {}: {error}",
                monitor.id,
                target,
                state.status.as_str()
            );
            if state.flapping {
                summary = format!(
                    "{} ({}) is flapping ({} changes in the last hour); now {}: {error}",
                    monitor.id,
                    target,
                    state.flips.len(),
                    state.status.as_str()
                );
            }
            (severity, summary.chars().take(1024).collect())
        }
    };
    let last_good = state.last_good.as_ref().map(stored::encode_result);
    let details = json!({
        "monitor": monitor.id,
        "kind": monitor.kind.name(),
        "target": target,
        "status": state.status.as_str(),
        "failing_since": state.failing_since.map(|at| at.to_string()),
        "status_since": state.since.map(|at| at.to_string()),
        "last_error": (!error.is_empty()).then_some(error),
        "last_result": stored::encode_result(&crate::state::ResultSummary::of(result, now)),
        "last_good": last_good,
        "flapping": state.flapping,
    });
    Ok(Event {
        service: ServiceId::new(monitor.service.clone()),
        integration: Integration::Monitor,
        action,
        dedup_key: dedup,
        severity,
        summary,
        source: format!("tocsin monitor {}", monitor.id),
        occurred_at: Some(match action {
            EventAction::Resolve => now,
            _ => state.failing_since.unwrap_or(now),
        }),
        received_at: now,
        details,
    })
}

/// What a monitor checks, for people: a URL without credentials or query, an address, a name.
pub fn target_of(monitor: &Monitor) -> String {
    match &monitor.kind {
        MonitorKind::Http(check) => {
            let url = check.url.split(['?', '#']).next().unwrap_or_default();
            match url.split_once("://") {
                Some((scheme, rest)) => {
                    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
                    let host = authority.rsplit('@').next().unwrap_or(authority);
                    let path = if path.is_empty() {
                        String::new()
                    } else {
                        format!("/{path}")
                    };
                    format!("{} {scheme}://{host}{path}", check.method.as_str())
                }
                None => url.to_owned(),
            }
        }
        MonitorKind::Tcp(check) => format!("tcp {}", check.address),
        MonitorKind::Tls(check) => format!("tls {}", check.address),
        MonitorKind::Dns(check) => format!("dns {} {}", check.record.as_str(), check.name),
        MonitorKind::Heartbeat(_) => "heartbeat".to_owned(),
    }
}

/// The host a monitor's checks go to, for politeness.
fn host_of(monitor: &Monitor) -> String {
    let host_port = |address: &str| {
        address
            .rsplit_once(':')
            .map_or(address, |(host, _)| host)
            .to_ascii_lowercase()
    };
    match &monitor.kind {
        MonitorKind::Http(check) => {
            let rest = check.url.split_once("://").map_or("", |(_, rest)| rest);
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let host = authority.rsplit('@').next().unwrap_or(authority);
            if host.starts_with('[') {
                host.split(']').next().unwrap_or(host).to_ascii_lowercase()
            } else {
                host_port(host)
            }
        }
        MonitorKind::Tcp(check) => host_port(&check.address),
        MonitorKind::Tls(check) => host_port(&check.address),
        MonitorKind::Dns(check) => check
            .resolver
            .map_or_else(|| "dns".to_owned(), |server| server.ip().to_string()),
        MonitorKind::Heartbeat(_) => String::new(),
    }
}

fn interval_of(monitor: &Monitor) -> Duration {
    monitor
        .probe()
        .map_or(Duration::from_secs(60), |probe| probe.interval)
        .max(Duration::from_secs(1))
}

/// Where in its interval a monitor's checks fall: a stable hash of its id (FNV-1a), the same
/// on every replica and after every restart, so checks are spread evenly.
fn phase(id: &str, interval: Duration) -> Duration {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let millis = u64::try_from(interval.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    Duration::from_millis(hash % millis)
}

/// The first time after `now` on the grid `due_at + k * interval`: late checks do not pile up,
/// and the phase is kept.
fn next_due(due_at: Timestamp, interval: Duration, now: Timestamp) -> Timestamp {
    let step = i128::try_from(interval.as_micros())
        .unwrap_or(i128::MAX)
        .max(1);
    let late = i128::from(now.as_microsecond()) - i128::from(due_at.as_microsecond());
    let steps = if late < 0 { 1 } else { late / step + 1 };
    let micros = i128::from(due_at.as_microsecond()) + steps * step;
    i64::try_from(micros)
        .ok()
        .and_then(|micros| Timestamp::from_microsecond(micros).ok())
        .unwrap_or(Timestamp::MAX)
}

fn after(now: Timestamp, duration: Duration) -> Timestamp {
    now.checked_add(duration).unwrap_or(Timestamp::MAX)
}

fn due_key(id: &str) -> Result<DueKey, StoreError> {
    DueKey::parse(id).map_err(|error| StoreError::Invalid(error.to_string()))
}

fn new_item(
    key: &DueKey,
    state: &MonitorState,
    due_at: Timestamp,
) -> Result<NewDueItem, StoreError> {
    NewDueItem::new(MONITOR_CHECK, key.clone(), &stored::encode(state), due_at)
        .map_err(|error| StoreError::Invalid(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_checks_keep_their_phase_and_skip_what_was_missed() {
        let at = |s: i64| Timestamp::from_second(1_800_000_000 + s).unwrap();
        let minute = Duration::from_secs(60);
        assert_eq!(next_due(at(0), minute, at(1)), at(60));
        assert_eq!(next_due(at(0), minute, at(60)), at(120));
        assert_eq!(next_due(at(0), minute, at(601)), at(660));
        // A check run early (due later than now) is next due one interval after its due time.
        assert_eq!(next_due(at(100), minute, at(50)), at(160));
    }

    #[test]
    fn phases_are_stable_and_spread() {
        let interval = Duration::from_secs(30);
        assert_eq!(
            phase("checkout-health", interval),
            phase("checkout-health", interval)
        );
        let phases: HashSet<u128> = (0..100)
            .map(|i| phase(&format!("monitor-{i}"), interval).as_millis() / 3000)
            .collect();
        // 100 monitors over 10 buckets of 3 s: every bucket gets some.
        assert_eq!(phases.len(), 10, "{phases:?}");
        assert!(phase("x", interval) < interval);
    }
}
