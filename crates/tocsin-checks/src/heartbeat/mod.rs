//! Heartbeat monitors at run time: the deadline handler (due work of kind
//! `heartbeat.deadline`, key = monitor id) and the watcher that tells the store which
//! heartbeat monitors the config in force declares.
//!
//! Pings arrive over HTTP (`tocsin-web`'s ping routes); what a ping, a missed deadline or a
//! watch does is decided by `tocsin_core::heartbeat::plan_heartbeat` inside the ingest
//! transaction, so both paths here only submit signals to the ingest queue.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tocsin_core::heartbeat::{HeartbeatInput, HeartbeatSignal};
use tocsin_core::Timestamp;
use tocsin_engine::due::{DueError, DueHandler, DueOutcome};
use tocsin_engine::{Engine, HeartbeatEntry};
use tocsin_store::due::{ClaimedDueItem, DueKey, DueKind, NewDueItem};
use tocsin_store::heartbeat::HEARTBEAT_DEADLINE;
use tocsin_store::Inbound;
use tokio_util::sync::CancellationToken;

/// How often the watcher looks for a changed set of heartbeat monitors (a reload).
pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);
/// How often, and how long apart, a deadline tries a full ingest queue again before it
/// fails (and is retried with the runner's backoff).
const QUEUE_FULL_RETRIES: u32 = 40;
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(250);
/// Watches per ingest request at most.
const WATCH_BATCH: usize = 500;
/// How long after a paused monitor's deadline it is looked at again.
const PAUSED_RECHECK: Duration = Duration::from_secs(60);

/// Runs a heartbeat monitor's deadline: submits a [`HeartbeatSignal::Deadline`], which makes
/// the monitor late (and triggers its alert) unless a success moved the deadline meanwhile.
///
/// Restart-safe and idempotent: the deadline is a due-work row, claimed by one runner at a
/// time across replicas, and the signal decides from the state it reads in its transaction, so
/// running it twice triggers nothing more.
pub struct HeartbeatDeadlines {
    engine: Arc<Engine>,
}

impl HeartbeatDeadlines {
    pub fn new(engine: Arc<Engine>) -> HeartbeatDeadlines {
        HeartbeatDeadlines { engine }
    }
}

#[async_trait]
impl DueHandler for HeartbeatDeadlines {
    fn kind(&self) -> DueKind {
        HEARTBEAT_DEADLINE
    }

    async fn run(&self, item: &ClaimedDueItem, now: Timestamp) -> Result<DueOutcome, DueError> {
        let Some(monitor) = self.engine.catalog().heartbeat(item.key.as_str()) else {
            // The monitor is no longer in the config: its deadline goes with it.
            tracing::debug!(monitor = %item.key, "deadline of a heartbeat monitor that is no longer configured");
            return Ok(DueOutcome::Done);
        };
        // A paused monitor does not go late; its deadline looks again a minute later (a resume
        // watches the monitor, which brings the deadline back to where its schedule puts it).
        if self
            .engine
            .store()
            .monitor_pause(&monitor.id)
            .await?
            .is_some()
        {
            return Ok(DueOutcome::RunAgainAt(
                now.checked_add(PAUSED_RECHECK).unwrap_or(Timestamp::MAX),
            ));
        }
        // A full queue (a storm of events) is waited out here, briefly, rather than left to
        // the runner's backoff, which would delay the alert by seconds to minutes.
        let mut attempt = 0;
        loop {
            match self
                .engine
                .submit(vec![signal(&monitor, HeartbeatSignal::Deadline, now)])
                .await
            {
                Ok(()) => return Ok(DueOutcome::Done),
                Err(tocsin_engine::SubmitError::QueueFull) if attempt < QUEUE_FULL_RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(QUEUE_FULL_WAIT).await;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// A deadline is never given up on: it retries at the longest backoff.
    fn max_attempts(&self) -> Option<i64> {
        None
    }
}

fn signal(monitor: &HeartbeatEntry, signal: HeartbeatSignal, now: Timestamp) -> Inbound {
    Inbound::Heartbeat(HeartbeatInput {
        monitor: monitor.id.clone(),
        service: monitor.service.clone(),
        expectation: monitor.expectation.clone(),
        signal,
        now,
    })
}

/// The recurring item that prunes old pings (see [`PingRetention`]).
pub const PING_RETENTION: DueKind = DueKind::from_static("heartbeat.ping_retention");
/// Pings kept per heartbeat monitor, the newest.
pub const PINGS_KEPT: u32 = 1_000;
/// How often old pings are pruned.
pub const PING_RETENTION_INTERVAL: Duration = Duration::from_secs(10 * 60);
/// Pings deleted per statement at most, so one prune never holds the write lock long.
const PRUNE_BATCH: u32 = 5_000;

/// Keeps the newest [`PINGS_KEPT`] pings of every configured heartbeat monitor, every
/// [`PING_RETENTION_INTERVAL`], as one recurring item (`heartbeat.ping_retention`/`all`).
/// The pings of a monitor no longer in the config are kept: a config change alone never
/// deletes history.
pub struct PingRetention {
    engine: Arc<Engine>,
}

impl PingRetention {
    pub fn new(engine: Arc<Engine>) -> PingRetention {
        PingRetention { engine }
    }
}

#[async_trait]
impl DueHandler for PingRetention {
    fn kind(&self) -> DueKind {
        PING_RETENTION
    }

    async fn run(&self, _item: &ClaimedDueItem, now: Timestamp) -> Result<DueOutcome, DueError> {
        let store = self.engine.store();
        let mut pruned = 0;
        for monitor in self.engine.catalog().heartbeats().iter() {
            loop {
                let deleted = store
                    .prune_pings(&monitor.id, PINGS_KEPT, PRUNE_BATCH)
                    .await?;
                pruned += deleted;
                if deleted < u64::from(PRUNE_BATCH) {
                    break;
                }
            }
        }
        if pruned > 0 {
            tracing::debug!(pruned, "pruned old heartbeat pings");
        }
        Ok(DueOutcome::RunAgainAt(
            now.checked_add(PING_RETENTION_INTERVAL)
                .unwrap_or(Timestamp::MAX),
        ))
    }

    /// Pruning never gives up: it retries at the longest backoff.
    fn max_attempts(&self) -> Option<i64> {
        None
    }

    fn recurring(&self, now: Timestamp) -> Option<NewDueItem> {
        let key = DueKey::parse("all").ok()?;
        NewDueItem::new(PING_RETENTION, key, &serde_json::json!({}), now).ok()
    }
}

/// Submits a [`HeartbeatSignal::Watch`] for every heartbeat monitor of the config in force
/// at start-up and after every reload that changes them: a new monitor gets its state and
/// first deadline, a changed expectation moves the deadline.
pub struct HeartbeatWatcher {
    engine: Arc<Engine>,
}

impl HeartbeatWatcher {
    pub fn new(engine: Arc<Engine>) -> HeartbeatWatcher {
        HeartbeatWatcher { engine }
    }

    /// Watches one heartbeat monitor (after a resume: its deadline goes back to where its
    /// schedule puts it, so a monitor that missed its deadline while paused goes late at once).
    /// `false` when no heartbeat monitor has that id.
    pub async fn watch_one(&self, id: &str) -> Result<bool, tocsin_engine::SubmitError> {
        let Some(monitor) = self.engine.catalog().heartbeat(id) else {
            return Ok(false);
        };
        let now = self.engine.now();
        self.engine
            .submit(vec![signal(&monitor, HeartbeatSignal::Watch, now)])
            .await?;
        Ok(true)
    }

    /// Watches every configured heartbeat monitor once.
    pub async fn watch_all(&self) -> Result<usize, tocsin_engine::SubmitError> {
        let monitors = self.engine.catalog().heartbeats();
        let now = self.engine.now();
        for chunk in monitors.chunks(WATCH_BATCH) {
            let batch = chunk
                .iter()
                .map(|monitor| signal(monitor, HeartbeatSignal::Watch, now))
                .collect();
            self.engine.submit(batch).await?;
        }
        Ok(monitors.len())
    }

    /// Watches at once, then again whenever the set of heartbeat monitors changes, until
    /// `stop` is cancelled. A failed watch is tried again at the next look.
    pub async fn run_until(&self, stop: CancellationToken) {
        let mut watched: Option<Arc<[Arc<HeartbeatEntry>]>> = None;
        loop {
            let current = self.engine.catalog().heartbeats();
            let changed = watched
                .as_ref()
                .is_none_or(|seen| !Arc::ptr_eq(seen, &current));
            if changed {
                match self.watch_all().await {
                    Ok(count) => {
                        if count > 0 {
                            tracing::info!(monitors = count, "watching heartbeat monitors");
                        }
                        watched = Some(current);
                    }
                    Err(error) => tracing::warn!(
                        error = %tocsin_engine::error_chain(&error),
                        "cannot record the heartbeat monitors of the config; will retry"
                    ),
                }
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(WATCH_INTERVAL) => {}
            }
        }
    }
}
