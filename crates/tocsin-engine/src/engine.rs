use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use tocsin_core::{
    Actor, AlertId, Command, IncidentNumber, ServiceId, Timestamp, FOLD_LOG_INTERVAL,
};
use tocsin_store::{
    AlertFilter, AlertRow, AlertSummary, ApiToken, ChangeEventRow, CommandOutcome, Counts,
    EventFilter, EventSummary, Inbound, IncidentFilter, IncidentRow, Page, PageRequest, Store,
    StoreError, StoredEvent, TimelineEntry, TokenScope,
};

use crate::due::{DueRunner, DueRunnerSettings, FoldLogSweep};
use crate::links::{new_key_hex, LinkAction, LinkClaims, LinkError, LinkSigner, LINK_KEY_PURPOSE};
use crate::wake::{Wakeup, Wakeups};
use crate::{Catalog, Clock, EngineError, Ingestor, Metrics, SubmitError};

/// Alerts per `Store::log_due_folds` call.
const FOLD_LOG_BATCH: usize = 500;

/// Why following a link did nothing.
#[derive(Debug, thiserror::Error)]
pub enum LinkFollowError {
    #[error(transparent)]
    Link(LinkError),
    #[error(transparent)]
    Engine(EngineError),
}

/// Why a reassignment did nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReassignError {
    /// The user cannot be paged; nothing was stored.
    #[error(transparent)]
    Refused(crate::paging::ReassignRefusal),
    #[error(transparent)]
    Engine(EngineError),
}

/// What request handlers and the CLI call: one function per action.
pub struct Engine {
    store: Arc<dyn Store>,
    catalog: Arc<Catalog>,
    ingestor: Ingestor,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    /// Signs and checks acknowledge and resolve links; loaded by [`Engine::load_link_keys`].
    links: arc_swap::ArcSwapOption<LinkSigner>,
    /// Shared with the ingest writer.
    wakeups: Arc<Wakeups>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("store", &self.store.backend())
            .field("ingestor", &self.ingestor)
            .finish_non_exhaustive()
    }
}

impl Engine {
    pub fn new(
        store: Arc<dyn Store>,
        catalog: Arc<Catalog>,
        ingestor: Ingestor,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let wakeups = ingestor.wakeups();
        Engine {
            store,
            catalog,
            ingestor,
            clock,
            metrics,
            links: arc_swap::ArcSwapOption::empty(),
            wakeups,
        }
    }

    /// What an outbox dispatcher waits on besides its poll: woken after this process commits
    /// notifications (an escalation step that pages, a command or an ingest batch that queues
    /// a channel's updates), so level 1 is sent at once. Each call is a new subscriber.
    pub fn outbox_wakeup(&self) -> Wakeup {
        self.wakeups.outbox.subscribe()
    }

    /// Wakes this process's outbox dispatchers (after a write that queued notifications).
    pub fn wake_outbox(&self) {
        self.wakeups.outbox.wake();
    }

    /// Wakes this process's due-work runners (after a write that made an item due now).
    pub fn wake_due(&self) {
        self.wakeups.due.wake();
    }

    /// Notes that an item this process scheduled comes due at `at`, so that its due-work
    /// runner claims it then rather than at its next poll.
    pub fn note_due_at(&self, at: Timestamp) {
        self.wakeups.upcoming.note(at);
    }

    /// Loads the link keys from the store, creating the first one on first start.
    pub async fn load_link_keys(&self) -> Result<(), EngineError> {
        let keys = self
            .timed(
                "server_key",
                self.store
                    .server_key(LINK_KEY_PURPOSE, &new_key_hex(), self.clock.now()),
            )
            .await?;
        self.set_link_keys(keys.iter().map(|key| key.secret.as_str()));
        Ok(())
    }

    /// Replaces the link key: links signed with the old one stop working.
    pub async fn rotate_link_key(&self) -> Result<(), EngineError> {
        let key = self
            .timed(
                "rotate_server_key",
                self.store
                    .rotate_server_key(LINK_KEY_PURPOSE, &new_key_hex(), self.clock.now()),
            )
            .await?;
        self.set_link_keys(std::iter::once(key.secret.as_str()));
        Ok(())
    }

    fn set_link_keys<'a>(&self, secrets: impl Iterator<Item = &'a str>) {
        let keys = secrets
            .map(|secret| hex::decode(secret).unwrap_or_else(|_| secret.as_bytes().to_vec()))
            .collect();
        self.links.store(LinkSigner::new(keys).map(Arc::new));
    }

    /// Checks a link against the keys the store holds now (so a key rotated by another
    /// process or replica is honoured at once), at the clock's `now`.
    pub async fn verify_link(&self, token: &str) -> Result<LinkClaims, LinkFollowError> {
        self.load_link_keys()
            .await
            .map_err(LinkFollowError::Engine)?;
        let signer = self
            .links()
            .ok_or(LinkFollowError::Link(LinkError::NoKey))?;
        signer
            .verify(token, self.clock.now())
            .map_err(LinkFollowError::Link)
    }

    /// The link signer, once [`Engine::load_link_keys`] has run.
    pub fn links(&self) -> Option<Arc<LinkSigner>> {
        self.links.load_full()
    }

    /// Acts on a signed link: checks it at the clock's `now` and runs its command as the user
    /// it was sent to (`link:<user>` on the timeline).
    pub async fn follow_link(&self, token: &str) -> Result<CommandOutcome, LinkFollowError> {
        let claims = self.verify_link(token).await?;
        let command = match claims.action {
            LinkAction::Acknowledge => Command::Acknowledge,
            LinkAction::Resolve => Command::Resolve,
        };
        self.command(claims.incident, &command, &Actor::link(&claims.user))
            .await
            .map_err(LinkFollowError::Engine)
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn ingestor(&self) -> &Ingestor {
        &self.ingestor
    }

    pub fn now(&self) -> tocsin_core::Timestamp {
        self.clock.now()
    }

    /// The clock [`Engine::now`] reads, for the parts that keep time beside the engine.
    pub fn clock(&self) -> Arc<dyn Clock> {
        Arc::clone(&self.clock)
    }

    pub fn backend(&self) -> &'static str {
        self.store.backend()
    }

    /// The store, to close it (`Store::close`) at shutdown once the ingest writer has drained.
    pub fn store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store)
    }

    /// Commits the events (group commit) and returns once they are durable.
    pub async fn submit(&self, items: Vec<Inbound>) -> Result<(), SubmitError> {
        self.ingestor.submit(items).await
    }

    async fn timed<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, EngineError> {
        let started = Instant::now();
        let result = call.await;
        self.metrics
            .observe_store(operation, started.elapsed().as_secs_f64());
        result.map_err(|source| EngineError::store(operation, source))
    }

    /// Writes the `alert.folded` timeline entries of folds that have waited
    /// [`FOLD_LOG_INTERVAL`] since their alert's last one, and returns how many it wrote.
    pub async fn log_due_folds(&self) -> Result<usize, EngineError> {
        let now = self.clock.now();
        let due = now.checked_sub(FOLD_LOG_INTERVAL).unwrap_or(now);
        let mut written = 0;
        loop {
            // Each call marks the alerts it logs, so the loop ends when none are left.
            let logged = self
                .timed(
                    "log_due_folds",
                    self.store.log_due_folds(due, now, FOLD_LOG_BATCH),
                )
                .await?;
            written += logged;
            if logged < FOLD_LOG_BATCH {
                return Ok(written);
            }
        }
    }

    /// The due-work runner of this engine, with the handlers of the work it does later (the
    /// fold log sweep and escalation steps). The server adds the others (heartbeat deadlines,
    /// monitor results, gap notices, the watchdog's beat).
    pub fn due_runner(self: &Arc<Self>, settings: DueRunnerSettings) -> DueRunner {
        DueRunner::new(
            Arc::clone(&self.store),
            Arc::clone(&self.clock),
            Arc::clone(&self.metrics),
            settings,
        )
        .with_wakeups(Arc::clone(&self.wakeups))
        .with_handler(Arc::new(FoldLogSweep::new(Arc::clone(self))))
        .with_handler(Arc::new(crate::EscalationHandler::new(Arc::clone(self))))
        .with_handler(Arc::new(crate::paging::AckTimeoutHandler::new(Arc::clone(
            self,
        ))))
    }

    /// Whether the store answers.
    pub async fn ready(&self) -> Result<(), EngineError> {
        self.timed("ping", self.store.ping()).await
    }

    /// Runs an incident command (acknowledge, resolve, priority, note) at the clock's `now`;
    /// the same transaction queues the updates for the channels of the incident's service.
    pub async fn command(
        &self,
        number: IncidentNumber,
        command: &Command,
        actor: &Actor,
    ) -> Result<CommandOutcome, EngineError> {
        let now = self.clock.now();
        let policy: &dyn tocsin_store::updates::ServicePolicy = self.catalog.as_ref();
        let outcome = self
            .timed(
                command.name(),
                self.store
                    .command_with_updates(number, command, actor, now, policy),
            )
            .await?;
        self.wake_after(command, &outcome);
        Ok(outcome)
    }

    /// Wakes whoever has work the command made due now: the due-work runner for an escalation
    /// step (escalating, an acknowledgement that timed out), the dispatcher for anything that
    /// may have queued notifications (pages, a channel's updates).
    fn wake_after(&self, command: &Command, outcome: &CommandOutcome) {
        if outcome.transition != tocsin_core::Transition::Changed {
            return;
        }
        if matches!(command, Command::Escalate | Command::AckTimeout { .. }) {
            self.wake_due();
        }
        self.wake_outbox();
    }

    /// Hands the incident to `user` and pages them at once by each of their notify rules, in
    /// the command's transaction (see [`crate::paging::reassignment_pages`]).
    pub async fn reassign(
        &self,
        number: IncidentNumber,
        user: &str,
        actor: &Actor,
    ) -> Result<CommandOutcome, ReassignError> {
        let now = self.clock.now();
        let pages = crate::paging::reassignment_pages(&self.catalog.paging(), user, number, now)
            .map_err(ReassignError::Refused)?;
        let command = Command::Reassign {
            to: user.to_owned(),
            pages,
        };
        let outcome = self
            .timed(
                command.name(),
                self.store.command(number, &command, actor, now),
            )
            .await
            .map_err(ReassignError::Engine)?;
        self.wake_after(&command, &outcome);
        Ok(outcome)
    }

    pub async fn incident(&self, number: IncidentNumber) -> Result<IncidentRow, EngineError> {
        self.timed("incident", self.store.incident(number)).await
    }

    pub async fn incidents(
        &self,
        filter: &IncidentFilter,
        page: PageRequest,
    ) -> Result<Page<IncidentRow>, EngineError> {
        self.timed("incidents", self.store.incidents(filter, page))
            .await
    }

    pub async fn alert(&self, id: AlertId) -> Result<AlertRow, EngineError> {
        self.timed("alert", self.store.alert(id)).await
    }

    pub async fn alerts(
        &self,
        filter: &AlertFilter,
        page: PageRequest,
    ) -> Result<Page<AlertSummary>, EngineError> {
        self.timed("alerts", self.store.alerts(filter, page)).await
    }

    pub async fn timeline(
        &self,
        number: IncidentNumber,
        page: PageRequest,
    ) -> Result<Page<TimelineEntry>, EngineError> {
        self.timed("timeline", self.store.timeline(number, page))
            .await
    }

    pub async fn event(&self, id: i64) -> Result<StoredEvent, EngineError> {
        self.timed("event", self.store.event(id)).await
    }

    pub async fn events(
        &self,
        filter: &EventFilter,
        page: PageRequest,
    ) -> Result<Page<EventSummary>, EngineError> {
        self.timed("events", self.store.events(filter, page)).await
    }

    pub async fn change_events(
        &self,
        service: &ServiceId,
        page: PageRequest,
    ) -> Result<Page<ChangeEventRow>, EngineError> {
        self.timed("change_events", self.store.change_events(service, page))
            .await
    }

    pub async fn counts(&self) -> Result<Counts, EngineError> {
        self.timed("counts", self.store.counts()).await
    }

    /// Creates an API token and returns its secret (shown once, stored only as a hash).
    pub async fn create_token(
        &self,
        name: &str,
        scope: TokenScope,
    ) -> Result<(String, ApiToken), EngineError> {
        crate::tokens::create_token(self.store.as_ref(), name, scope, self.clock.now())
            .await
            .map_err(|source| EngineError::store("create_token", source))
    }

    /// The unrevoked token whose secret this is.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<ApiToken>, EngineError> {
        self.timed(
            "api_token_by_hash",
            crate::tokens::authenticate(self.store.as_ref(), secret),
        )
        .await
    }

    pub async fn tokens(&self, page: PageRequest) -> Result<Page<ApiToken>, EngineError> {
        self.store
            .api_tokens(page)
            .await
            .map_err(|source| EngineError::store("api_tokens", source))
    }

    pub async fn revoke_token(&self, id: i64) -> Result<ApiToken, EngineError> {
        self.store
            .revoke_api_token(id, self.clock.now())
            .await
            .map_err(|source| EngineError::store("revoke_api_token", source))
    }
}
