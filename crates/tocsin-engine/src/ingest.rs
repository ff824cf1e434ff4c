use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tocsin_core::ServiceId;
use tocsin_store::{Counts, Inbound, IngestReport, ResolvePolicyOf, Store, StoreError};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::wake::Wakeups;
use crate::{Catalog, Metrics};

/// How often the writer recounts open incidents and alerts for the `/metrics` gauges. In
/// between, the gauges follow what this process commits; the recount also brings in what other
/// replicas (sharing a PostgreSQL database) changed.
pub const GAUGE_RECOUNT_INTERVAL: Duration = Duration::from_secs(60);

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

/// Why events were not committed. Every variant means that none of the request's events were
/// stored: the writer answers each request with the real outcome of its commit.
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

/// What the ingest writer needs of a store. [`Store`] provides it; tests can use a fake.
pub trait IngestTarget: Send + Sync + 'static {
    /// Commits the batch in one transaction, or nothing of it.
    fn ingest<'a>(
        &'a self,
        batch: &'a [Inbound],
        resolve_policy: ResolvePolicyOf<'a>,
    ) -> impl Future<Output = Result<IngestReport, StoreError>> + Send + 'a;

    /// Open incidents and alerts, for the gauges.
    fn counts(&self) -> impl Future<Output = Result<Counts, StoreError>> + Send + '_;
}

impl IngestTarget for dyn Store {
    async fn ingest<'a>(
        &'a self,
        batch: &'a [Inbound],
        resolve_policy: ResolvePolicyOf<'a>,
    ) -> Result<IngestReport, StoreError> {
        match tocsin_store::IncidentStore::blocking_ingest(self) {
            // The writer has a thread of its own (`spawn_writer`): blocking it holds up nothing
            // else, and the batch does not go to another thread and back.
            Some(store) => store.ingest_blocking(batch, resolve_policy),
            None => tocsin_store::IncidentStore::ingest(self, batch, resolve_policy).await,
        }
    }

    fn counts(&self) -> impl Future<Output = Result<Counts, StoreError>> + Send + '_ {
        tocsin_store::IncidentStore::counts(self)
    }
}

struct Job {
    items: Vec<Inbound>,
    reply: oneshot::Sender<Result<(), SubmitError>>,
    reservation: Reservation,
}

/// The handle request handlers use to submit events. Cheap to clone.
#[derive(Clone)]
pub struct Ingestor {
    sender: mpsc::Sender<Job>,
    queue: Arc<FairQueue>,
    closing: CancellationToken,
    /// Woken after a commit that opened or resolved incidents.
    wakeups: Arc<Wakeups>,
}

impl std::fmt::Debug for Ingestor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingestor")
            .field("capacity", &self.queue.capacity)
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
        Self::start_with(store, catalog, metrics, settings)
    }

    /// [`Ingestor::start`] with any [`IngestTarget`].
    pub fn start_with<T: IngestTarget + ?Sized>(
        target: Arc<T>,
        catalog: Arc<Catalog>,
        metrics: Arc<Metrics>,
        settings: IngestSettings,
    ) -> std::io::Result<(Ingestor, JoinHandle<()>)> {
        let capacity = settings.queue_capacity.max(1);
        // Every job holds at least one event of the queue, so the channel never fills first.
        let (sender, receiver) = mpsc::channel(capacity);
        metrics.queue_capacity.set(capacity as i64);
        let closing = CancellationToken::new();
        let wakeups = Arc::new(Wakeups::default());
        let writer = spawn_writer(write_loop(
            receiver,
            closing.clone(),
            target,
            catalog,
            metrics,
            Arc::clone(&wakeups),
            settings.max_batch.max(1),
        ))?;
        Ok((
            Ingestor {
                sender,
                queue: Arc::new(FairQueue::new(capacity)),
                closing,
                wakeups,
            },
            writer,
        ))
    }

    /// Queues the events and waits until the writer reports the outcome of their commit: `Ok`
    /// once they are durable, an error when none of them were stored. Fails at once when the
    /// queue has no room for them: see [`FairQueue`] for how room is shared among services.
    pub async fn submit(&self, items: Vec<Inbound>) -> Result<(), SubmitError> {
        if items.is_empty() {
            return Ok(());
        }
        if items.len() > self.queue.capacity {
            return Err(SubmitError::TooLarge {
                events: items.len(),
                capacity: self.queue.capacity,
            });
        }
        let reservation = self.queue.reserve(&items)?;
        let (reply, answer) = oneshot::channel();
        let job = Job {
            items,
            reply,
            reservation,
        };
        self.sender.try_send(job).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => SubmitError::QueueFull,
            mpsc::error::TrySendError::Closed(_) => SubmitError::ShuttingDown,
        })?;
        // The writer answers every job it takes; a dropped reply means it stopped before
        // taking this one, so nothing of it was stored.
        answer.await.map_err(|_| SubmitError::ShuttingDown)?
    }

    /// Events accepted and not yet committed.
    pub fn queue_depth(&self) -> usize {
        self.queue.depth()
    }

    pub fn capacity(&self) -> usize {
        self.queue.capacity
    }

    /// Refuses new events ([`SubmitError::ShuttingDown`]) from now on; the writer commits what
    /// is queued and stops.
    pub fn close(&self) {
        self.closing.cancel();
    }

    /// The wake-ups the writer gives after its commits; the engine built on this ingestor
    /// shares them.
    pub(crate) fn wakeups(&self) -> Arc<Wakeups> {
        Arc::clone(&self.wakeups)
    }
}

/// The ingest queue's room, shared fairly among services.
///
/// At most `capacity` events wait in all. A service that already has events waiting may add
/// more only while it holds no more than `capacity / (services waiting + 1)` of them: there is
/// always room for one more service's share, so a noisy source saturating the writer cannot
/// starve a quiet one, and a source alone may still use half of the queue. A service with
/// nothing waiting is refused only when the queue as a whole is full, so a single request as
/// large as the queue is never refused for fairness alone.
struct FairQueue {
    capacity: usize,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    total: usize,
    by_service: HashMap<ServiceId, usize>,
}

/// Events of one request, counted in the queue until the writer has its outcome.
struct Reservation {
    queue: Arc<FairQueue>,
    by_service: Vec<(ServiceId, usize)>,
}

impl FairQueue {
    fn new(capacity: usize) -> Self {
        FairQueue {
            capacity,
            held: Mutex::new(Held::default()),
        }
    }

    fn depth(&self) -> usize {
        self.lock().total
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        // The counts stay consistent whatever panicked while holding the lock: every change
        // is a single addition or subtraction.
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn reserve(self: &Arc<Self>, items: &[Inbound]) -> Result<Reservation, SubmitError> {
        let mut by_service: Vec<(ServiceId, usize)> = Vec::with_capacity(1);
        for item in items {
            let service = item.service();
            match by_service.iter_mut().find(|(id, _)| id == service) {
                Some((_, count)) => *count += 1,
                None => by_service.push((service.clone(), 1)),
            }
        }
        let events = items.len();
        let mut held = self.lock();
        if held.total + events > self.capacity {
            return Err(SubmitError::QueueFull);
        }
        let waiting = held.by_service.len();
        for (service, count) in &by_service {
            let already = held.by_service.get(service).copied().unwrap_or(0);
            let others = waiting - usize::from(already > 0);
            // This service plus the others waiting, plus room for one more.
            let share = self.capacity / (others + 2);
            if already > 0 && already + count > share {
                return Err(SubmitError::QueueFull);
            }
        }
        held.total += events;
        for (service, count) in &by_service {
            *held.by_service.entry(service.clone()).or_default() += count;
        }
        Ok(Reservation {
            queue: Arc::clone(self),
            by_service,
        })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut held = self.queue.lock();
        for (service, count) in self.by_service.drain(..) {
            held.total = held.total.saturating_sub(count);
            if let Some(waiting) = held.by_service.get_mut(&service) {
                *waiting = waiting.saturating_sub(count);
                if *waiting == 0 {
                    held.by_service.remove(&service);
                }
            }
        }
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

async fn write_loop<T: IngestTarget + ?Sized>(
    mut receiver: mpsc::Receiver<Job>,
    closing: CancellationToken,
    target: Arc<T>,
    catalog: Arc<Catalog>,
    metrics: Arc<Metrics>,
    wakeups: Arc<Wakeups>,
    max_batch: usize,
) {
    // How each service resolves and which channels get its updates, as of each batch.
    let policy = catalog;
    let mut jobs: Vec<Job> = Vec::new();
    let mut batch: Vec<Inbound> = Vec::with_capacity(max_batch);
    // The gauges start from one count, taken here so that no commit of this writer can slip
    // in between the count and the first adjustment.
    recount(target.as_ref(), &metrics).await;
    let mut recount_at = tokio::time::Instant::now() + GAUGE_RECOUNT_INTERVAL;
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
            () = tokio::time::sleep_until(recount_at) => {
                recount(target.as_ref(), &metrics).await;
                recount_at = tokio::time::Instant::now() + GAUGE_RECOUNT_INTERVAL;
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
            replies.push((job.reply, job.reservation));
        }
        let result = commit(target.as_ref(), &batch, policy.as_ref(), &metrics).await;
        let outcome = match result {
            Ok(report) => {
                // Once per batch: a new triggered incident's first escalation step is due now,
                // and opening or resolving queued updates for the service's channels.
                if report.incidents_opened > 0 {
                    wakeups.due.wake();
                }
                if report.incidents_opened > 0 || report.incidents_resolved > 0 {
                    wakeups.outbox.wake();
                }
                Ok(())
            }
            Err(error) => Err(SubmitError::Store(Arc::new(error))),
        };
        batch.clear();
        for (reply, reservation) in replies {
            // The room frees up once the outcome is known, not before: the queue bounds events
            // accepted and not yet committed.
            drop(reservation);
            // A waiter that went away (client disconnected) does not matter: the outcome is
            // the same either way.
            let _ = reply.send(outcome.clone());
        }
        if tokio::time::Instant::now() >= recount_at {
            recount(target.as_ref(), &metrics).await;
            recount_at = tokio::time::Instant::now() + GAUGE_RECOUNT_INTERVAL;
        }
    }
    tracing::info!("ingest writer stopped: queue closed and drained");
}

/// Sets the open incident and alert gauges from the store. A failure keeps the gauges as they
/// are until the next recount.
async fn recount<T: IngestTarget + ?Sized>(target: &T, metrics: &Metrics) {
    let started = Instant::now();
    let result = target.counts().await;
    metrics.observe_store("counts", started.elapsed().as_secs_f64());
    match result {
        Ok(counts) => metrics.set_open(counts),
        Err(error) => {
            tracing::warn!(error = %crate::error_chain(&error), "cannot count open incidents and alerts; the gauges stay as they are")
        }
    }
}

async fn commit<T: IngestTarget + ?Sized>(
    target: &T,
    batch: &[Inbound],
    policy: &dyn tocsin_store::updates::ServicePolicy,
    metrics: &Metrics,
) -> Result<IngestReport, StoreError> {
    let mut attempt = 0;
    loop {
        let started = Instant::now();
        let result = target.ingest(batch, policy).await;
        metrics.observe_store("ingest", started.elapsed().as_secs_f64());
        match result {
            Ok(report) => {
                metrics.ingest_batches.inc();
                metrics.ingest_batch_events.observe(batch.len() as f64);
                metrics.record_ingest(&report);
                let mut by_integration: HashMap<&'static str, u64> = HashMap::new();
                for item in batch {
                    let integration = match item {
                        Inbound::Alert(event) => event.integration.as_str(),
                        Inbound::Change(_) => "change",
                        Inbound::Heartbeat(_) => "heartbeat",
                    };
                    *by_integration.entry(integration).or_default() += 1;
                }
                for (integration, count) in by_integration {
                    metrics
                        .events_accepted
                        .get_or_create(&vec![("integration".to_owned(), integration.to_owned())])
                        .inc_by(count);
                }
                return Ok(report);
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

#[cfg(test)]
mod tests;
