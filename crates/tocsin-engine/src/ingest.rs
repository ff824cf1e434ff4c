use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tocsin_core::ServiceId;
use tocsin_store::{Inbound, Store, StoreError};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{Catalog, Metrics};

/// Sizes of the ingest path.
#[derive(Debug, Clone, Copy)]
pub struct IngestSettings {
    /// Events accepted but not yet committed, at most. Beyond it, submitters get
    /// [`SubmitError::QueueFull`] (HTTP 429).
    pub queue_capacity: usize,
    /// Events per transaction, at most.
    pub max_batch: usize,
}

impl Default for IngestSettings {
    fn default() -> Self {
        IngestSettings {
            queue_capacity: 20_000,
            max_batch: 2_048,
        }
    }
}

/// Why events were not committed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SubmitError {
    #[error("the ingest queue is full; retry shortly")]
    QueueFull,
    #[error("more events in one request ({events}) than the ingest queue holds ({capacity})")]
    TooLarge { events: usize, capacity: usize },
    #[error("tocsin is shutting down")]
    ShuttingDown,
    /// Shared by every waiter of the failed batch.
    #[error("the store could not commit the events")]
    Store(#[source] Arc<StoreError>),
}

impl PartialEq for SubmitError {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (SubmitError::QueueFull, SubmitError::QueueFull)
            | (SubmitError::ShuttingDown, SubmitError::ShuttingDown) => true,
            (
                SubmitError::TooLarge { events, capacity },
                SubmitError::TooLarge {
                    events: other_events,
                    capacity: other_capacity,
                },
            ) => events == other_events && capacity == other_capacity,
            // The same failed batch.
            (SubmitError::Store(error), SubmitError::Store(other)) => Arc::ptr_eq(error, other),
            _ => false,
        }
    }
}

struct Job {
    items: Vec<Inbound>,
    reply: oneshot::Sender<Result<(), SubmitError>>,
    permits: OwnedSemaphorePermit,
}

/// The handle request handlers use to submit events. Cheap to clone.
#[derive(Clone)]
pub struct Ingestor {
    sender: mpsc::Sender<Job>,
    slots: Arc<Semaphore>,
    capacity: usize,
    closing: CancellationToken,
}

impl std::fmt::Debug for Ingestor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingestor")
            .field("capacity", &self.capacity)
            .field("depth", &self.queue_depth())
            .finish()
    }
}

impl Ingestor {
    /// Starts the writer (on its own thread). It runs until [`Ingestor::close`] is called or
    /// every `Ingestor` handle is dropped, and then until the queue is drained, so a graceful
    /// shutdown commits what was accepted. Fails only when the operating system refuses a
    /// thread. The returned task panics if the writer did.
    pub fn start(
        store: Arc<dyn Store>,
        catalog: Arc<Catalog>,
        metrics: Arc<Metrics>,
        settings: IngestSettings,
    ) -> std::io::Result<(Ingestor, JoinHandle<()>)> {
        let capacity = settings.queue_capacity.max(1);
        let (sender, receiver) = mpsc::channel(capacity);
        metrics.queue_capacity.set(capacity as i64);
        let closing = CancellationToken::new();
        let writer = spawn_writer(write_loop(
            receiver,
            closing.clone(),
            store,
            catalog,
            metrics,
            settings.max_batch.max(1),
        ))?;
        Ok((
            Ingestor {
                sender,
                slots: Arc::new(Semaphore::new(capacity)),
                capacity,
                closing,
            },
            writer,
        ))
    }

    /// Queues the events and waits until they are committed. Fails at once when the queue has
    /// no room for all of them.
    pub async fn submit(&self, items: Vec<Inbound>) -> Result<(), SubmitError> {
        if items.is_empty() {
            return Ok(());
        }
        let count = u32::try_from(items.len()).unwrap_or(u32::MAX);
        if items.len() > self.capacity {
            return Err(SubmitError::TooLarge {
                events: items.len(),
                capacity: self.capacity,
            });
        }
        let permits = Arc::clone(&self.slots)
            .try_acquire_many_owned(count)
            .map_err(|error| match error {
                tokio::sync::TryAcquireError::NoPermits => SubmitError::QueueFull,
                tokio::sync::TryAcquireError::Closed => SubmitError::ShuttingDown,
            })?;
        let (reply, answer) = oneshot::channel();
        let job = Job {
            items,
            reply,
            permits,
        };
        self.sender.try_send(job).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => SubmitError::QueueFull,
            mpsc::error::TrySendError::Closed(_) => SubmitError::ShuttingDown,
        })?;
        answer.await.map_err(|_| SubmitError::ShuttingDown)?
    }

    /// Events accepted and not yet committed.
    pub fn queue_depth(&self) -> usize {
        self.capacity - self.slots.available_permits()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Refuses new events ([`SubmitError::ShuttingDown`]) from now on; the writer commits what
    /// is queued and stops.
    pub fn close(&self) {
        self.closing.cancel();
    }
}

/// Runs the writer on a thread of its own, with a single-threaded runtime: the commit path is
/// serial, and every step of it (each statement a store runs, each reply) would otherwise wait
/// its turn behind the request handlers on the shared runtime's workers. The returned handle
/// finishes when the writer does.
fn spawn_writer(
    writer: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<JoinHandle<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (done, finished) = oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("tocsin-ingest".to_owned())
        .spawn(move || {
            runtime.block_on(writer);
            let _ = done.send(());
        })?;
    Ok(tokio::spawn(async move {
        // The thread drops `done` without sending only when the writer panicked.
        if finished.await.is_err() {
            panic!("the ingest writer thread panicked");
        }
    }))
}

async fn write_loop(
    mut receiver: mpsc::Receiver<Job>,
    closing: CancellationToken,
    store: Arc<dyn Store>,
    catalog: Arc<Catalog>,
    metrics: Arc<Metrics>,
    max_batch: usize,
) {
    let policy = move |service: &ServiceId| catalog.resolve_policy(service);
    let mut jobs: Vec<Job> = Vec::new();
    let mut batch: Vec<Inbound> = Vec::with_capacity(max_batch);
    let mut closed = false;
    loop {
        let first = tokio::select! {
            biased;
            job = receiver.recv() => match job {
                Some(job) => job,
                None => break,
            },
            // Closing the receiver refuses new jobs; those already queued are still received.
            () = closing.cancelled(), if !closed => {
                receiver.close();
                closed = true;
                continue;
            }
        };
        let mut events = first.items.len();
        jobs.push(first);
        while events < max_batch {
            match receiver.try_recv() {
                Ok(job) => {
                    events += job.items.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let mut replies = Vec::with_capacity(jobs.len());
        for job in jobs.drain(..) {
            batch.extend(job.items);
            replies.push((job.reply, job.permits));
        }
        let result = commit(store.as_ref(), &batch, &policy, &metrics).await;
        let outcome = match result {
            Ok(()) => Ok(()),
            Err(error) => Err(SubmitError::Store(Arc::new(error))),
        };
        batch.clear();
        for (reply, permits) in replies {
            // The slots free up once the outcome is known, not before: the queue bounds events
            // accepted and not yet committed.
            drop(permits);
            // A waiter that went away (client disconnected) does not matter: the events are
            // committed either way.
            let _ = reply.send(outcome.clone());
        }
    }
    tracing::info!("ingest writer stopped: queue closed and drained");
}

async fn commit(
    store: &dyn Store,
    batch: &[Inbound],
    policy: &(dyn Fn(&ServiceId) -> tocsin_core::ResolvePolicy + Send + Sync),
    metrics: &Metrics,
) -> Result<(), StoreError> {
    let mut attempt = 0;
    loop {
        let started = Instant::now();
        let result = store.ingest(batch, policy).await;
        metrics.observe_store("ingest", started.elapsed().as_secs_f64());
        match result {
            Ok(report) => {
                metrics.ingest_batches.inc();
                metrics.ingest_batch_events.observe(batch.len() as f64);
                metrics.alerts_opened.inc_by(report.alerts_opened as u64);
                metrics
                    .incidents_opened
                    .inc_by(report.incidents_opened as u64);
                let mut by_integration: HashMap<&'static str, u64> = HashMap::new();
                for item in batch {
                    let integration = match item {
                        Inbound::Alert(event) => event.integration.as_str(),
                        Inbound::Change(_) => "change",
                    };
                    *by_integration.entry(integration).or_default() += 1;
                }
                for (integration, count) in by_integration {
                    metrics
                        .events_accepted
                        .get_or_create(&vec![("integration".to_owned(), integration.to_owned())])
                        .inc_by(count);
                }
                return Ok(());
            }
            Err(error) if attempt < 2 => {
                attempt += 1;
                tracing::warn!(error = %error, attempt, events = batch.len(), "ingest commit failed; retrying");
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            Err(error) => {
                let chain = crate::error_chain(&error);
                tracing::error!(error = %chain, events = batch.len(), "ingest commit failed; events refused");
                return Err(error);
            }
        }
    }
}
