//! One supervisor for every background task of the server.
//!
//! Each task is started with a name and a [`Stage`], and gets a stop token. When the shutdown
//! future completes — or an essential task ends before it was asked to — the supervisor stops
//! the stages in order, each within a bound: first HTTP (stop accepting, drain requests in
//! flight), then the ingest writer (commit what is queued), then everything else; and only then
//! runs the finisher that closes the store. Every task's end is logged with its name and why:
//! ok, its error with the whole cause chain, or its panic.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::task::{AbortHandle, Id, JoinSet};
use tokio_util::sync::CancellationToken;

/// When a task is stopped, relative to the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// Serving HTTP: stopped first, so nothing new comes in.
    Http,
    /// The ingest writer: stopped once no request can submit any more, so it drains.
    Ingest,
    /// Everything else (due work, later checks and the outbox): stopped last, before the
    /// store closes.
    Background,
}

impl Stage {
    const ORDER: [Stage; 3] = [Stage::Http, Stage::Ingest, Stage::Background];
}

/// Whether the process can go on without a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Importance {
    /// Its end before shutdown stops the whole process with an error.
    Essential,
    /// Its end is logged; the rest keeps running.
    Optional,
}

type Finisher = Pin<Box<dyn Future<Output = ()> + Send>>;

struct Task {
    name: &'static str,
    stage: Stage,
    importance: Importance,
    abort: AbortHandle,
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Ok,
    Failed(String),
    Panicked(String),
    /// Aborted because it did not stop within its stage's bound.
    Aborted,
}

/// A task's end as the supervisor saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEnd {
    pub name: &'static str,
    pub ending: Ending,
    /// Whether it ended before the supervisor asked it to stop.
    pub unexpected: bool,
}

/// Starts, watches and stops the server's tasks.
pub struct Supervisor {
    tasks: JoinSet<anyhow::Result<()>>,
    running: HashMap<Id, Task>,
    stops: HashMap<Stage, CancellationToken>,
    bounds: HashMap<Stage, Duration>,
    finisher: Option<Finisher>,
    ended: Vec<TaskEnd>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field(
                "running",
                &self
                    .running
                    .values()
                    .map(|task| task.name)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Default for Supervisor {
    fn default() -> Self {
        Self::new()
    }
}

impl Supervisor {
    pub fn new() -> Self {
        Supervisor {
            tasks: JoinSet::new(),
            running: HashMap::new(),
            stops: Stage::ORDER
                .iter()
                .map(|stage| (*stage, CancellationToken::new()))
                .collect(),
            bounds: Stage::ORDER
                .iter()
                .map(|stage| (*stage, Duration::from_secs(30)))
                .collect(),
            finisher: None,
            ended: Vec::new(),
        }
    }

    /// How long the tasks of `stage` may take to stop once asked (30 s unless set).
    pub fn bound(&mut self, stage: Stage, bound: Duration) {
        self.bounds.insert(stage, bound);
    }

    /// Runs `task` with the stop token of its stage.
    pub fn spawn<F, Fut>(
        &mut self,
        name: &'static str,
        stage: Stage,
        importance: Importance,
        task: F,
    ) where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let stop = self.stops[&stage].clone();
        let abort = self.tasks.spawn(task(stop));
        tracing::debug!(task = name, ?stage, "task started");
        self.running.insert(
            abort.id(),
            Task {
                name,
                stage,
                importance,
                abort,
            },
        );
    }

    /// Runs once every task has stopped (closing the store).
    pub fn finally(&mut self, finisher: impl Future<Output = ()> + Send + 'static) {
        self.finisher = Some(Box::pin(finisher));
    }

    /// Runs until `shutdown` completes or an essential task ends, then stops every stage in
    /// order and runs the finisher. Errors when an essential task ended before shutdown, naming
    /// it; returns how every task ended.
    pub async fn run(
        mut self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<Vec<TaskEnd>> {
        tokio::pin!(shutdown);
        let mut failure: Option<anyhow::Error> = None;
        loop {
            if self.running.is_empty() {
                break;
            }
            tokio::select! {
                () = &mut shutdown => {
                    tracing::info!("shutting down");
                    break;
                }
                Some(joined) = self.tasks.join_next_with_id() => {
                    if let Some(end) = self.record(joined) {
                        if end.1 == Importance::Essential {
                            let reason = anyhow::anyhow!(
                                "the essential task `{}` ended unexpectedly ({})",
                                end.0.name,
                                describe(&end.0.ending)
                            );
                            tracing::error!(task = end.0.name, "essential task ended unexpectedly; shutting down");
                            failure = Some(reason);
                            break;
                        }
                    }
                }
            }
        }
        for stage in Stage::ORDER {
            self.stop_stage(stage).await;
        }
        if let Some(finisher) = self.finisher.take() {
            finisher.await;
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(self.ended),
        }
    }

    async fn stop_stage(&mut self, stage: Stage) {
        self.stops[&stage].cancel();
        let bound = self.bounds[&stage];
        let deadline = tokio::time::Instant::now() + bound;
        while self.running.values().any(|task| task.stage == stage) {
            match tokio::time::timeout_at(deadline, self.tasks.join_next_with_id()).await {
                Ok(Some(joined)) => {
                    self.record(joined);
                }
                Ok(None) => break,
                Err(_) => {
                    let late: Vec<Id> = self
                        .running
                        .iter()
                        .filter(|(_, task)| task.stage == stage)
                        .map(|(id, _)| *id)
                        .collect();
                    for id in late {
                        if let Some(task) = self.running.remove(&id) {
                            task.abort.abort();
                            tracing::error!(
                                task = task.name,
                                bound_s = bound.as_secs(),
                                "task did not stop in time; aborted"
                            );
                            self.ended.push(TaskEnd {
                                name: task.name,
                                ending: Ending::Aborted,
                                unexpected: false,
                            });
                        }
                    }
                    break;
                }
            }
        }
    }

    /// Logs a task's end; returns it with its importance when it was unexpected.
    fn record(
        &mut self,
        joined: Result<(Id, anyhow::Result<()>), tokio::task::JoinError>,
    ) -> Option<(TaskEnd, Importance)> {
        let (id, ending) = match joined {
            Ok((id, Ok(()))) => (id, Ending::Ok),
            Ok((id, Err(error))) => (id, Ending::Failed(format!("{error:#}"))),
            Err(error) => {
                let id = error.id();
                if error.is_panic() {
                    let payload = error.into_panic();
                    let message = payload
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| {
                            payload
                                .downcast_ref::<&str>()
                                .map(|text| (*text).to_owned())
                        })
                        .unwrap_or_else(|| "unknown panic".to_owned());
                    (id, Ending::Panicked(message))
                } else {
                    (id, Ending::Aborted)
                }
            }
        };
        let task = self.running.remove(&id)?;
        let unexpected = !self.stops[&task.stage].is_cancelled();
        match &ending {
            Ending::Ok if unexpected => {
                tracing::warn!(task = task.name, "task ended before it was asked to stop")
            }
            Ending::Ok => tracing::info!(task = task.name, "task stopped"),
            Ending::Failed(error) => {
                tracing::error!(task = task.name, error = %error, "task failed")
            }
            Ending::Panicked(panic) => {
                tracing::error!(task = task.name, panic = %panic, "task panicked")
            }
            Ending::Aborted => tracing::error!(task = task.name, "task was aborted"),
        }
        let end = TaskEnd {
            name: task.name,
            ending,
            unexpected,
        };
        self.ended.push(end.clone());
        unexpected.then_some((end, task.importance))
    }
}

fn describe(ending: &Ending) -> String {
    match ending {
        Ending::Ok => "it returned".to_owned(),
        Ending::Failed(error) => format!("failed: {error}"),
        Ending::Panicked(panic) => format!("panicked: {panic}"),
        Ending::Aborted => "aborted".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    use super::*;

    #[tokio::test]
    async fn a_clean_shutdown_stops_every_stage_in_order_then_finishes() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut supervisor = Supervisor::new();
        for (name, stage) in [
            ("background", Stage::Background),
            ("ingest", Stage::Ingest),
            ("http", Stage::Http),
        ] {
            let order = Arc::clone(&order);
            supervisor.spawn(name, stage, Importance::Essential, move |stop| async move {
                stop.cancelled().await;
                order.lock().unwrap().push(name);
                Ok(())
            });
        }
        let closed = Arc::new(AtomicBool::new(false));
        supervisor.finally({
            let closed = Arc::clone(&closed);
            let order = Arc::clone(&order);
            async move {
                order.lock().unwrap().push("store closed");
                closed.store(true, Ordering::SeqCst);
            }
        });
        let ends = supervisor.run(async {}).await.expect("a clean shutdown");
        assert_eq!(
            *order.lock().unwrap(),
            ["http", "ingest", "background", "store closed"]
        );
        assert!(closed.load(Ordering::SeqCst));
        assert_eq!(ends.len(), 3);
        assert!(ends
            .iter()
            .all(|end| end.ending == Ending::Ok && !end.unexpected));
    }

    #[tokio::test]
    async fn a_failing_essential_task_is_named_and_stops_the_rest() {
        let mut supervisor = Supervisor::new();
        let stopped = Arc::new(AtomicBool::new(false));
        supervisor.spawn("http", Stage::Http, Importance::Essential, {
            let stopped = Arc::clone(&stopped);
            move |stop| async move {
                stop.cancelled().await;
                stopped.store(true, Ordering::SeqCst);
                Ok(())
            }
        });
        supervisor.spawn(
            "due-work",
            Stage::Background,
            Importance::Essential,
            |_| async { Err(anyhow::anyhow!("disk full").context("cannot claim due work")) },
        );
        let closed = Arc::new(AtomicBool::new(false));
        supervisor.finally({
            let closed = Arc::clone(&closed);
            async move { closed.store(true, Ordering::SeqCst) }
        });
        let error = supervisor
            .run(std::future::pending())
            .await
            .expect_err("an essential task failed");
        let text = format!("{error:#}");
        assert!(text.contains("`due-work`"), "{text}");
        assert!(text.contains("cannot claim due work: disk full"), "{text}");
        assert!(stopped.load(Ordering::SeqCst), "the other task was stopped");
        assert!(closed.load(Ordering::SeqCst), "the store was closed");
    }

    #[tokio::test]
    async fn a_panic_is_reported_and_a_task_that_will_not_stop_is_aborted() {
        let mut supervisor = Supervisor::new();
        supervisor.bound(Stage::Background, Duration::from_millis(50));
        supervisor.spawn(
            "stubborn",
            Stage::Background,
            Importance::Optional,
            |_| async {
                std::future::pending::<()>().await;
                Ok(())
            },
        );
        supervisor.spawn("writer", Stage::Ingest, Importance::Essential, |_| async {
            panic!("the ingest writer thread panicked");
        });
        let error = supervisor
            .run(std::future::pending())
            .await
            .expect_err("an essential task panicked");
        let text = format!("{error:#}");
        assert!(text.contains("`writer`"), "{text}");
        assert!(
            text.contains("panicked: the ingest writer thread panicked"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn an_optional_task_may_end_without_stopping_the_process() {
        let mut supervisor = Supervisor::new();
        supervisor.spawn("once", Stage::Background, Importance::Optional, |_| async {
            Ok(())
        });
        supervisor.spawn(
            "http",
            Stage::Http,
            Importance::Essential,
            |stop| async move {
                stop.cancelled().await;
                Ok(())
            },
        );
        let ends = supervisor
            .run(tokio::time::sleep(Duration::from_millis(50)))
            .await
            .expect("clean");
        let once = ends.iter().find(|end| end.name == "once").expect("logged");
        assert!(once.unexpected);
        assert_eq!(once.ending, Ending::Ok);
    }
}
