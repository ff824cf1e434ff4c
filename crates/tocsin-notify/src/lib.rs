//! Tocsin's outbox dispatcher and its channels.
//!
//! The [`Dispatcher`] claims due notifications from the outbox (`tocsin_store::outbox`) in
//! bounded batches, renders each page (subject, what is broken, since when, how many events,
//! the source, signed acknowledge and resolve links), sends it by its method (console, webhook,
//! email, ntfy, Slack-compatible incoming webhooks), and settles it: sent, retried later with
//! exponential backoff and jitter, or failed after the last attempt. The store puts every
//! attempt on the incident's timeline. A user's contact method gets at most one message per
//! bundling window: what comes due for it meanwhile goes out together when the window ends,
//! one message listing every incident ([`bundle`]). A page that fails for good is rerouted
//! to the user's next contact method. [`Dispatcher::drain_once`] sends what is due now and
//! returns, for tests; [`Dispatcher::run_until`] does so every poll until stopped.

pub mod bundle;
pub mod channels;
pub mod message;
pub mod slack;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tocsin_config::{ChannelKind, Config, ContactKind};
use tocsin_core::Timestamp;
use tocsin_engine::Engine;
use tocsin_store::due::ClaimerId;
use tocsin_store::outbox::{
    ContactMethod, Delivery, NotificationClaim, NotificationRow, Recipient, Settlement,
};
use tocsin_store::{AlertFilter, PageRequest, StoreError};
use tokio_util::sync::CancellationToken;

pub use channels::{signature, Destination, SendError, Senders};
pub use message::{render, Message};

/// Where the notifications of the config's users go, and how the server is reached.
#[derive(Debug, Clone, Default)]
pub struct Destinations {
    /// The server's base URL for links, without a trailing slash.
    pub public_url: String,
    /// User id to contact method id to destination.
    pub users: HashMap<String, HashMap<String, Destination>>,
    /// Channel id to destination (channels of the kinds in [`CHANNEL_KINDS`]).
    pub channels: HashMap<String, Destination>,
    /// User id to their contact methods in the config's order: where a page that failed for
    /// good on one goes next.
    pub contact_order: HashMap<String, Vec<ContactMethod>>,
}

/// The `[[channels]]` kinds Tocsin posts to; channels of other kinds get nothing.
pub const CHANNEL_KINDS: &[&str] = &["slack", "mattermost", "webhook", "ntfy", "email"];

/// The destination of a channel, when it is of a kind Tocsin posts to.
fn channel_destination(kind: &ChannelKind) -> Option<Destination> {
    match kind {
        ChannelKind::Slack { url } | ChannelKind::Mattermost { url } => Some(Destination::Slack {
            url: url.expose().to_owned(),
        }),
        ChannelKind::Webhook { url, secret } => Some(Destination::Webhook {
            url: url.expose().to_owned(),
            secret: secret.as_ref().map(|secret| secret.expose().to_owned()),
        }),
        ChannelKind::Ntfy { url } => Some(Destination::Ntfy {
            url: url.expose().to_owned(),
        }),
        ChannelKind::Email { to } => Some(Destination::Email {
            address: to.join(", "),
        }),
        ChannelKind::Discord { .. } | ChannelKind::Teams { .. } => None,
    }
}

impl Destinations {
    pub fn from_config(config: &Config) -> Destinations {
        let users = config
            .users
            .iter()
            .map(|user| {
                let contacts = user
                    .contact
                    .iter()
                    .map(|method| {
                        let destination = match &method.kind {
                            ContactKind::Email { address } => Destination::Email {
                                address: address.clone(),
                            },
                            ContactKind::Webhook { url, secret } => Destination::Webhook {
                                url: url.expose().to_owned(),
                                secret: secret.as_ref().map(|secret| secret.expose().to_owned()),
                            },
                            ContactKind::Ntfy { url } => Destination::Ntfy {
                                url: url.expose().to_owned(),
                            },
                            ContactKind::Slack { url } => Destination::Slack {
                                url: url.expose().to_owned(),
                            },
                            ContactKind::Console => Destination::Console,
                        };
                        (method.id.clone(), destination)
                    })
                    .collect();
                (user.id.clone(), contacts)
            })
            .collect();
        let contact_order = config
            .users
            .iter()
            .map(|user| {
                let methods = user
                    .contact
                    .iter()
                    .map(|method| ContactMethod {
                        contact: method.id.clone(),
                        method: method.kind.name().to_owned(),
                    })
                    .collect();
                (user.id.clone(), methods)
            })
            .collect();
        let channels = config
            .channels
            .iter()
            .filter_map(|channel| Some((channel.id.clone(), channel_destination(&channel.kind)?)))
            .collect();
        Destinations {
            public_url: config.server.public_url.trim_end_matches('/').to_owned(),
            users,
            channels,
            contact_order,
        }
    }

    /// The user's contact methods to try after `failed`: the config's order after it,
    /// wrapping around, without it.
    fn next_contacts(&self, recipient: &Recipient) -> Vec<ContactMethod> {
        let Recipient::User { user, contact } = recipient else {
            return Vec::new();
        };
        let Some(methods) = self.contact_order.get(user) else {
            return Vec::new();
        };
        let at = methods
            .iter()
            .position(|method| method.contact == *contact)
            .map_or(0, |index| index + 1);
        methods[at..]
            .iter()
            .chain(&methods[..at])
            .filter(|method| method.contact != *contact)
            .cloned()
            .collect()
    }

    fn find(&self, recipient: &Recipient) -> Option<&Destination> {
        match recipient {
            Recipient::User { user, contact } => self.users.get(user)?.get(contact),
            Recipient::Channel { channel } => self.channels.get(channel),
        }
    }
}

/// How a [`Dispatcher`] claims and retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DispatcherSettings {
    /// Notifications per claim (at most `tocsin_store::due::MAX_CLAIM`). A claimed page is
    /// sent even when its incident is acknowledged meanwhile, so a claim holds no more than
    /// a fraction of a second of sending.
    pub batch: usize,
    /// Messages of one claim in flight at most (at least 1): different recipients are sent
    /// to at once; one contact method's pages are one message, and one channel's updates
    /// of one incident go one after the other, in order.
    pub concurrency: usize,
    /// How long a claim holds a notification; a dispatcher that dies mid-send leaves it to
    /// be sent again this long after.
    pub claim_for: Duration,
    /// How long [`Dispatcher::run_until`] waits between drains.
    pub poll: Duration,
    /// Attempts after which a failing notification is given up.
    pub max_attempts: i64,
    /// The wait before the first retry; it doubles with every attempt, up to `backoff_max`,
    /// and a random part of up to a quarter of it is added (so retries of a storm spread).
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// A user's contact method gets at most one message per this long; pages due meanwhile
    /// wait for its end and go as one message.
    pub bundle_window: Duration,
}

impl Default for DispatcherSettings {
    fn default() -> Self {
        DispatcherSettings {
            batch: 128,
            concurrency: 64,
            claim_for: Duration::from_secs(60),
            poll: Duration::from_millis(500),
            max_attempts: 8,
            backoff_base: Duration::from_secs(10),
            backoff_max: Duration::from_secs(30 * 60),
            bundle_window: Duration::from_secs(30),
        }
    }
}

/// What one [`Dispatcher::drain_once`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DrainReport {
    pub sent: usize,
    /// Failed and to be retried.
    pub retrying: usize,
    /// Failed for good.
    pub failed: usize,
    /// Settled by someone else first (this dispatcher's claim had ended).
    pub lost: usize,
    /// Put back until their contact method's bundling window ends.
    pub deferred: usize,
    /// The drain stopped after its most claims with the last one full: more may be due
    /// now, and [`Dispatcher::run_until`] drains again at once.
    pub more_due: bool,
}

impl DrainReport {
    fn add(&mut self, other: &DrainReport) {
        self.sent += other.sent;
        self.retrying += other.retrying;
        self.failed += other.failed;
        self.lost += other.lost;
        self.deferred += other.deferred;
    }
}

/// How often [`Dispatcher::run_until`] reloads the link keys.
const LINK_KEY_REFRESH: Duration = Duration::from_secs(60);

/// Claims per [`Dispatcher::drain_once`] at most: it always returns.
const MAX_ROUNDS: usize = 64;

/// Rows settled per write transaction at most: the outcomes of one claim, with the pages
/// their bundles brought, are settled in as few transactions as this allows.
const SETTLE_ROWS: usize = 1_000;

/// Sends the outbox; see the crate documentation.
pub struct Dispatcher {
    engine: Arc<Engine>,
    destinations: ArcSwap<Destinations>,
    senders: Senders,
    claimer: ClaimerId,
    settings: DispatcherSettings,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("claimer", &self.claimer)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    pub fn new(
        engine: Arc<Engine>,
        destinations: Destinations,
        senders: Senders,
        settings: DispatcherSettings,
    ) -> Dispatcher {
        let claimer = format!("dispatcher-{}", uuid::Uuid::new_v4().simple());
        Dispatcher {
            engine,
            destinations: ArcSwap::from_pointee(destinations),
            senders,
            claimer: ClaimerId::parse(&claimer).expect("a simple uuid is a valid claimer id"),
            settings,
        }
    }

    /// Swaps in new destinations (a config reload).
    pub fn replace_destinations(&self, destinations: Destinations) {
        self.destinations.store(Arc::new(destinations));
    }

    /// Sends what is due now, claim after claim without pausing, until a claim comes back
    /// short (nothing due is left) or a bounded number of claims was made (then
    /// [`DrainReport::more_due`] says so).
    pub async fn drain_once(&self) -> Result<DrainReport, StoreError> {
        let mut report = DrainReport::default();
        let batch = self.settings.batch.clamp(1, tocsin_store::due::MAX_CLAIM);
        let store = self.engine.store();
        for round in 1..=MAX_ROUNDS {
            let now = self.engine.now();
            let rows = store
                .claim_notifications(&NotificationClaim {
                    claimer: &self.claimer,
                    now,
                    claim_until: now.checked_add(self.settings.claim_for).unwrap_or(now),
                    limit: batch,
                })
                .await?;
            let claimed = rows.len();
            bundle::deliver_claimed(self, rows, &mut report).await?;
            if claimed < batch {
                break;
            }
            report.more_due = round == MAX_ROUNDS;
        }
        Ok(report)
    }

    /// Drains every `poll`, and whenever the engine commits notifications, until `stop` is
    /// cancelled. Store errors are logged and retried at the next poll.
    pub async fn run_until(&self, stop: CancellationToken) {
        let mut keys_loaded = Instant::now();
        let mut wakeup = self.engine.outbox_wakeup();
        loop {
            // A link key rotated by another process is used for new links within a minute.
            if keys_loaded.elapsed() >= LINK_KEY_REFRESH {
                if let Err(error) = self.engine.load_link_keys().await {
                    tracing::warn!(
                        error = %tocsin_engine::error_chain(&error),
                        "cannot reload the link key; keeping the one loaded"
                    );
                }
                keys_loaded = Instant::now();
            }
            let mut more_due = false;
            match self.drain_once().await {
                Ok(report) if report == DrainReport::default() => {}
                Ok(report) => {
                    more_due = report.more_due;
                    tracing::debug!(
                        sent = report.sent,
                        retrying = report.retrying,
                        failed = report.failed,
                        lost = report.lost,
                        deferred = report.deferred,
                        more_due,
                        "dispatched notifications"
                    );
                }
                Err(error) => tracing::warn!(
                    error = %tocsin_engine::error_chain(&error),
                    "cannot dispatch notifications; will retry"
                ),
            }
            if more_due {
                // Still behind: drain again at once (a stop is seen there).
                if stop.is_cancelled() {
                    return;
                }
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(self.settings.poll) => {}
                () = wakeup.woken() => {}
            }
        }
    }

    /// Sends `rows` (claimed, for one recipient; the first is the message's incident, the
    /// others are listed in it) as one message and says how to settle them: all sent, or
    /// each retried (together, so they stay bundled) unless it had its last attempt. The
    /// caller settles the outcomes of a whole claim in one write.
    async fn deliver(&self, rows: Vec<NotificationRow>, report: &mut DrainReport) -> Vec<Outcome> {
        let Some(row) = rows.first() else {
            return Vec::new();
        };
        let started = Instant::now();
        let outcome = self.attempt(&rows).await;
        let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let now = self.engine.now();
        let bundled = rows.len();
        let transient = matches!(outcome, Err(SendError::Transient(_)));
        let mut outcomes = Vec::new();
        let mut settle = |rows: Vec<NotificationRow>, delivery: Delivery| {
            let next = match &delivery {
                Delivery::Failed { .. } => {
                    self.destinations.load().next_contacts(&rows[0].recipient)
                }
                _ => Vec::new(),
            };
            outcomes.push(Outcome {
                rows,
                delivery,
                latency_ms,
                now,
                next,
            });
        };
        match outcome {
            Ok(()) => {
                report.sent += rows.len();
                tracing::info!(
                    incident = row.incident.map(|number| number.0), recipient = %row.recipient, method = row.method,
                    attempt = row.attempts, bundled, latency_ms, "notification sent"
                );
                settle(rows, Delivery::Sent);
            }
            Err(SendError::Transient(error) | SendError::Permanent(error)) => {
                let (retry, last): (Vec<_>, Vec<_>) = if transient {
                    rows.iter()
                        .cloned()
                        .partition(|row| row.attempts < self.settings.max_attempts)
                } else {
                    (Vec::new(), rows.clone())
                };
                if !retry.is_empty() {
                    let attempts = retry.iter().map(|row| row.attempts).max().unwrap_or(1);
                    let at = now
                        .checked_add(self.backoff(attempts))
                        .unwrap_or(Timestamp::MAX);
                    report.retrying += retry.len();
                    tracing::warn!(
                        incident = row.incident.map(|number| number.0), recipient = %row.recipient, method = row.method,
                        attempt = row.attempts, bundled, error, retry_at = %at,
                        "notification failed; will retry"
                    );
                    settle(
                        retry,
                        Delivery::Retry {
                            at,
                            error: error.clone(),
                        },
                    );
                }
                if !last.is_empty() {
                    report.failed += last.len();
                    tracing::error!(
                        incident = row.incident.map(|number| number.0), recipient = %row.recipient, method = row.method,
                        attempt = row.attempts, bundled, error, "notification failed; giving up"
                    );
                    settle(last, Delivery::Failed { error });
                }
            }
        }
        outcomes
    }

    /// Settles `outcomes` (of one claim) in as few write transactions as [`SETTLE_ROWS`]
    /// allows, and counts the rows someone else had settled first as lost.
    async fn settle(
        &self,
        outcomes: &[Outcome],
        report: &mut DrainReport,
    ) -> Result<(), StoreError> {
        let mut start = 0;
        while start < outcomes.len() {
            let mut end = start;
            let mut rows = 0;
            while end < outcomes.len()
                && (end == start || rows + outcomes[end].rows.len() <= SETTLE_ROWS)
            {
                rows += outcomes[end].rows.len();
                end += 1;
            }
            let chunk = &outcomes[start..end];
            let settlements: Vec<Settlement<'_>> = chunk
                .iter()
                .map(|outcome| Settlement {
                    rows: &outcome.rows,
                    delivery: &outcome.delivery,
                    latency_ms: outcome.latency_ms,
                    now: outcome.now,
                    next: &outcome.next,
                })
                .collect();
            let settled = self
                .engine
                .store()
                .settle_notification_batch(&settlements)
                .await?;
            for (outcome, settled) in chunk.iter().zip(settled) {
                report.lost += outcome.rows.len().saturating_sub(settled);
            }
            start = end;
        }
        Ok(())
    }

    /// One attempt to send `rows` as one message: the first one's page, listing the others.
    async fn attempt(&self, rows: &[NotificationRow]) -> Result<(), SendError> {
        let Some(row) = rows.first() else {
            return Ok(());
        };
        let destinations = self.destinations.load();
        let Some(destination) = destinations.find(&row.recipient) else {
            return Err(SendError::Permanent(format!(
                "{} has no contact method {:?} in the config any more",
                row.recipient, row.method
            )));
        };
        let unreadable = |error: tocsin_engine::EngineError| {
            SendError::Transient(format!(
                "cannot read the incident: {}",
                tocsin_engine::error_chain(&error)
            ))
        };
        let mut message = self
            .render(row, &destinations.public_url)
            .await
            .map_err(unreadable)?;
        if rows.len() > 1 {
            message = bundle::fold(self, message, row, &rows[1..], &destinations.public_url)
                .await
                .map_err(unreadable)?;
        }
        match tokio::time::timeout(
            channels::SEND_TIMEOUT + Duration::from_secs(1),
            self.senders
                .send(destination, &message, &row.idempotency_key),
        )
        .await
        {
            Ok(outcome) => outcome,
            Err(_) => Err(SendError::Transient("timed out".to_owned())),
        }
    }

    async fn render(
        &self,
        row: &NotificationRow,
        public_url: &str,
    ) -> Result<Message, tocsin_engine::EngineError> {
        // A test page or a notice is about no incident.
        let Some(number) = row.incident else {
            return Ok(message::render_notice(row, public_url));
        };
        let incident = self.engine.incident(number).await?;
        let alerts = self
            .engine
            .alerts(
                &AlertFilter {
                    incident: Some(number),
                    ..AlertFilter::default()
                },
                PageRequest::first(PageRequest::MAX_LIMIT),
            )
            .await?;
        let events = alerts.items.iter().map(|alert| alert.count).sum();
        let source = alerts
            .items
            .first()
            .map(|alert| alert.source.clone())
            .unwrap_or_default();
        let service_name = self.service_name(&incident.service);
        let signer = self.engine.links();
        let user = link_user(&row.recipient);
        let links = signer.as_deref().map(|signer| (signer, user.as_str()));
        let message = render(
            &incident,
            &message::PageFacts {
                service_name,
                events,
                source,
                recipient: row.recipient.to_string(),
                idempotency_key: row.idempotency_key.clone(),
            },
            links,
            public_url,
            self.engine.now(),
        );
        if !matches!(row.recipient, Recipient::Channel { .. }) {
            return Ok(message);
        }
        let text = |field: &str| {
            row.payload
                .get(field)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        };
        let update = message::UpdateFacts {
            kind: row.kind.clone(),
            actor: text("actor").unwrap_or_else(|| "system".to_owned()),
            note: text("note"),
        };
        Ok(message::into_update(message, &update, incident.state))
    }

    /// The service's name from the config (its id when the config no longer has it).
    fn service_name(&self, service: &tocsin_core::ServiceId) -> String {
        self.engine
            .catalog()
            .service(service)
            .map_or_else(|| service.to_string(), |entry| entry.name.clone())
    }

    /// The wait before retrying a notification whose `attempts`-th attempt failed.
    fn backoff(&self, attempts: i64) -> Duration {
        let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        let base = self
            .settings
            .backoff_base
            .saturating_mul(2_u32.saturating_pow(doublings))
            .min(self.settings.backoff_max);
        let quarter = u64::try_from(base.as_millis() / 4)
            .unwrap_or(u64::MAX)
            .max(1);
        let jitter =
            u64::try_from(uuid::Uuid::new_v4().as_u128() % u128::from(quarter)).unwrap_or_default();
        base + Duration::from_millis(jitter)
    }
}

/// How to settle the rows of one attempt (see [`Dispatcher::deliver`]).
#[derive(Debug)]
struct Outcome {
    rows: Vec<NotificationRow>,
    delivery: Delivery,
    latency_ms: i64,
    now: Timestamp,
    next: Vec<ContactMethod>,
}

/// Who a page's signed links act as: the paged user, or `channel:<id>` (a channel's links
/// are `link:channel:<id>` on the timeline).
fn link_user(recipient: &Recipient) -> String {
    match recipient {
        Recipient::User { user, .. } => user.clone(),
        Recipient::Channel { .. } => recipient.to_string(),
    }
}
