//! Is the pipeline healthy? What the watchdog (which pings an external heartbeat URL while
//! the answer is yes) asks.
//!
//! [`Engine::pipeline_health`] checks three things, each against the store:
//!
//! - **The store takes writes**: it rewrites a small due-work row (kind [`WATCHDOG_WRITE`],
//!   key `all`; no runner claims that kind) and makes sure the beat below is scheduled.
//! - **Due work is not lagging**: the recurring item [`WATCHDOG_BEAT`] (key `all`), whose
//!   handler does nothing but come due again [`BEAT_EVERY`] later, is not more than
//!   [`MAX_DUE_LAG`] past its due time. A stopped or overloaded due-work runner (escalation
//!   steps run there) leaves it behind.
//! - **The outbox drains**: no notification has waited more than [`MAX_OUTBOX_WAIT`] past
//!   its due time (pending or being sent).
//!
//! With several replicas on one database any replica's runner moves the beat, and all of them
//! share the outbox: each replica's answer is about the pipeline as a whole.

use std::time::Duration;

use async_trait::async_trait;
use tocsin_core::Timestamp;
use tocsin_store::due::{ClaimedDueItem, DueKey, DueKind, NewDueItem, WhenScheduled};

use crate::due::{DueError, DueHandler, DueOutcome};
use crate::Engine;

/// The recurring due item whose lag tells whether due work runs on time.
pub const WATCHDOG_BEAT: DueKind = DueKind::from_static("watchdog.beat");

/// The due-work row the health check rewrites to tell whether the store takes writes.
pub const WATCHDOG_WRITE: DueKind = DueKind::from_static("watchdog.write");

/// How often the beat comes due.
pub const BEAT_EVERY: Duration = Duration::from_secs(15);

/// Due work this far behind (the beat this long past its due time) is lagging.
pub const MAX_DUE_LAG: Duration = Duration::from_secs(60);

/// A notification this long past its due time and still not sent means the outbox is stuck.
pub const MAX_OUTBOX_WAIT: Duration = Duration::from_secs(5 * 60);

/// How long the write row waits, unclaimed by any runner: as good as never.
const WRITE_ROW_DUE: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

fn all() -> DueKey {
    DueKey::parse("all").expect("`all` is a valid key")
}

/// What [`Engine::pipeline_health`] found wrong; empty when all is well.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PipelineHealth {
    /// One sentence per problem: what is wrong and since when.
    pub problems: Vec<String>,
}

impl PipelineHealth {
    pub fn is_healthy(&self) -> bool {
        self.problems.is_empty()
    }
}

impl std::fmt::Display for PipelineHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.problems.is_empty() {
            f.write_str("healthy")
        } else {
            f.write_str(&self.problems.join("; "))
        }
    }
}

fn seconds_behind(now: Timestamp, due: Timestamp) -> u64 {
    u64::try_from(now.duration_since(due).as_secs()).unwrap_or_default()
}

impl Engine {
    /// Checks the store, the due-work runner and the outbox at the clock's `now`; see the
    /// module documentation.
    pub async fn pipeline_health(&self) -> PipelineHealth {
        let now = self.now();
        let store = self.store();
        let mut problems = Vec::new();
        let write = NewDueItem::new(
            WATCHDOG_WRITE,
            all(),
            &serde_json::json!({ "checked_at": now.to_string() }),
            now.checked_add(WRITE_ROW_DUE).unwrap_or(Timestamp::MAX),
        )
        .expect("a small payload");
        let beat = NewDueItem::new(WATCHDOG_BEAT, all(), &serde_json::json!({}), now)
            .expect("a small payload");
        let written = match store.schedule(&write, WhenScheduled::Replace, now).await {
            Ok(_) => store.schedule(&beat, WhenScheduled::Keep, now).await,
            Err(error) => Err(error),
        };
        if let Err(error) = written {
            problems.push(format!(
                "the store does not take writes: {}",
                crate::error_chain(&error)
            ));
        }
        match store.due_item(&WATCHDOG_BEAT, &all()).await {
            Ok(Some(item)) => {
                let behind = seconds_behind(now, item.due_at);
                if behind > MAX_DUE_LAG.as_secs() {
                    problems.push(format!(
                        "due work is lagging: its beat, due at {}, has waited {behind} s (more \
                         than {} s)",
                        item.due_at,
                        MAX_DUE_LAG.as_secs()
                    ));
                }
            }
            // Not scheduled because the write failed, which is reported already.
            Ok(None) => {}
            Err(error) => problems.push(format!(
                "cannot read the due-work beat: {}",
                crate::error_chain(&error)
            )),
        }
        match store.oldest_waiting_notification().await {
            Ok(Some(due)) => {
                let behind = seconds_behind(now, due);
                if behind > MAX_OUTBOX_WAIT.as_secs() {
                    problems.push(format!(
                        "the outbox is not draining: a notification due at {due} has waited \
                         {behind} s (more than {} s)",
                        MAX_OUTBOX_WAIT.as_secs()
                    ));
                }
            }
            Ok(None) => {}
            Err(error) => problems.push(format!(
                "cannot read the outbox: {}",
                crate::error_chain(&error)
            )),
        }
        PipelineHealth { problems }
    }
}

/// The handler of [`WATCHDOG_BEAT`]: it only comes due again, so that its lag is the due-work
/// runner's.
#[derive(Debug, Default)]
pub struct WatchdogBeat;

#[async_trait]
impl DueHandler for WatchdogBeat {
    fn kind(&self) -> DueKind {
        WATCHDOG_BEAT
    }

    async fn run(&self, _item: &ClaimedDueItem, now: Timestamp) -> Result<DueOutcome, DueError> {
        Ok(DueOutcome::RunAgainAt(
            now.checked_add(BEAT_EVERY).unwrap_or(Timestamp::MAX),
        ))
    }

    fn max_attempts(&self) -> Option<i64> {
        None
    }

    fn recurring(&self, now: Timestamp) -> Option<NewDueItem> {
        NewDueItem::new(WATCHDOG_BEAT, all(), &serde_json::json!({}), now).ok()
    }
}
