//! `tocsin-bench paging ...`: from a trigger to the page, against the release `tocsin serve`
//! on a fresh SQLite store and real local peers inside this process (an SMTP sink,
//! `crate::smtp`; a webhook receiver, `crate::receiver`).
//!
//! Every trigger is a PagerDuty Events API v2 event on `/v2/enqueue` with a dedup key of its
//! own, `<run>-<n>`, which is also its summary and so the incident's title: it is in the
//! subject of the mail and in the webhook body, and matches each message to its trigger.
//!
//! - [`latency`]: incidents open on a jittered schedule (`incidents` over `over`); level 1
//!   of each service's policy is one user with an email contact. Measured: from the `202` of
//!   the trigger to the end of the mail's `DATA` at the SMTP sink.
//! - [`dispatch`]: triggers as fast as the server takes them, on services without a policy
//!   whose incident updates go to `channels` webhook channels; the ingest transaction queues
//!   one outbox row per channel, so the outbox fills faster than it drains. A channel's
//!   incident updates are never bundled, so every row is one webhook request. Measured:
//!   webhook requests received (and answered `200`) per second, and no idempotency key twice.
//! - [`escalations`]: incidents open over `over`; level 1 is a user with a webhook contact,
//!   level 2 another one `escalate_after` minutes later. The `paging escalations` command
//!   gives every incident a service, policy and users of its own (a user's contact method
//!   gets at most one message per bundling window, so incidents sharing users would go out
//!   folded into bundles and the run would not measure each step's send). Measured: level 1
//!   from the `202`,
//!   level 2 from the trigger's send time plus `escalate_after` (the earliest instant it can
//!   be due, so the figure is an upper bound of its lateness).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use hyper::StatusCode;
use serde_json::{json, Value};

use crate::client::{Connection, Target};
use crate::histogram::Histogram;
use crate::load::trigger_body;
use crate::monitors::{self, Buckets};
use crate::receiver::{self, Arrival, Inbox};
use crate::serve::{self, Served};
use crate::smtp;

/// The due-work kind of escalation steps (`tocsin_core::ESCALATION_STEP_KIND`).
const ESCALATION_STEP: &str = "escalation.step";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Triggers of one run at most.
const MAX_INCIDENTS: usize = 100_000;
/// Services (each with its users and policy) of one config at most.
const MAX_SERVICES: usize = 20_000;
const WEBHOOK_SECRET: &str = "bench-webhook-secret";

/// What every paging benchmark needs.
#[derive(Debug, Clone)]
pub struct Common {
    pub tocsin: PathBuf,
    pub work_dir: Option<PathBuf>,
    /// How long to wait for the last messages after they are due.
    pub wait: Duration,
    /// Where to copy the server's log when the run ends.
    pub keep_log: Option<PathBuf>,
    /// PostgreSQL instead of SQLite: the URL of a maintenance database, next to which the run
    /// creates a fresh database (dropped at the end).
    pub postgres: Option<String>,
}

#[derive(Debug, Clone)]
pub struct LatencyPlan {
    pub common: Common,
    pub incidents: usize,
    pub over: Duration,
    /// Incident `n` goes to service `n % services`, each with a user of its own.
    pub services: usize,
    pub connections: usize,
}

#[derive(Debug, Clone)]
pub struct DispatchPlan {
    pub common: Common,
    pub incidents: usize,
    /// Webhook channels of every service.
    pub channels: usize,
    pub services: usize,
    pub clients: usize,
}

#[derive(Debug, Clone)]
pub struct EscalationsPlan {
    pub common: Common,
    pub incidents: usize,
    pub over: Duration,
    pub services: usize,
    pub escalate_after_minutes: u32,
    pub connections: usize,
}

// ------------------------------------------------------------------ the server's config

enum Contact {
    Email { smtp: SocketAddr },
    Webhook { receiver: SocketAddr },
}

/// The config of one run: `services` services, each with `levels` users (one per level of its
/// own policy; none: no policy) and the webhook channels `channels` (count, receiver).
struct Layout {
    services: usize,
    levels: usize,
    escalate_after_minutes: u32,
    contact: Contact,
    channels: Option<(usize, SocketAddr)>,
}

/// The integration key of service `n`: 32 hex digits, distinct for every `n`.
fn routing_key(service: usize) -> String {
    format!("{:032x}", service + 1)
}

fn config_file(listen: SocketAddr, layout: &Layout) -> String {
    let mut config = format!("[server]\nlisten = \"{listen}\"\npublic_url = \"http://{listen}\"\n");
    if let Contact::Email { smtp } = layout.contact {
        config.push_str(&format!(
            "\n[smtp]\nhost = \"{}\"\nport = {}\nfrom = \"Tocsin <tocsin@bench.example>\"\n\
             security = \"none\"\n",
            smtp.ip(),
            smtp.port()
        ));
    }
    let mut channel_ids = Vec::new();
    if let Some((count, receiver)) = layout.channels {
        for channel in 0..count {
            config.push_str(&format!(
                "\n[[channels]]\nid = \"hook-{channel}\"\nkind = \"webhook\"\n\
                 url = \"http://{receiver}/channel/{channel}\"\nsecret = \"{WEBHOOK_SECRET}\"\n"
            ));
            channel_ids.push(format!("\"hook-{channel}\""));
        }
    }
    for service in 0..layout.services {
        let mut levels = Vec::new();
        for level in 1..=layout.levels {
            let user = format!("s{service}-l{level}");
            let contact = match layout.contact {
                Contact::Email { .. } => {
                    format!("{{ id = \"mail\", kind = \"email\", address = \"{user}@bench.example\" }}")
                }
                Contact::Webhook { receiver } => format!(
                    "{{ id = \"hook\", kind = \"webhook\", url = \"http://{receiver}/page/{level}\" }}"
                ),
            };
            let contact_id = match layout.contact {
                Contact::Email { .. } => "mail",
                Contact::Webhook { .. } => "hook",
            };
            config.push_str(&format!(
                "\n[[users]]\nid = \"{user}\"\ncontact = [{contact}]\n\
                 notify = [{{ after_minutes = 0, contact = \"{contact_id}\" }}]\n"
            ));
            levels.push(if level < layout.levels {
                format!(
                    "{{ targets = [\"user:{user}\"], escalate_after_minutes = {} }}",
                    layout.escalate_after_minutes
                )
            } else {
                format!("{{ targets = [\"user:{user}\"] }}")
            });
        }
        if !levels.is_empty() {
            config.push_str(&format!(
                "\n[[escalation_policies]]\nid = \"p{service}\"\nlevels = [{}]\n",
                levels.join(", ")
            ));
        }
        config.push_str(&format!(
            "\n[[services]]\nid = \"s{service}\"\nname = \"Bench {service}\"\n\
             integration_keys = [\"{}\"]\n",
            routing_key(service)
        ));
        if !levels.is_empty() {
            config.push_str(&format!("escalation_policy = \"p{service}\"\n"));
        }
        if !channel_ids.is_empty() {
            config.push_str(&format!("channels = [{}]\n", channel_ids.join(", ")));
        }
    }
    config
}

// ------------------------------------------------------------------ triggers

/// When one trigger went out and when its `202` came back.
#[derive(Debug, Clone, Copy)]
struct Sent {
    sent: Instant,
    accepted: Option<Instant>,
}

/// The triggers of one run: dedup keys `<prefix>-<n>`.
struct Triggers {
    prefix: String,
    services: usize,
    /// When each is sent, from the start; all zero: as fast as the server answers.
    offsets: Vec<Duration>,
}

impl Triggers {
    fn new(count: usize, services: usize, over: Duration) -> Triggers {
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_micros());
        let mut random = XorShift::new(stamp as u64);
        let gap = over.as_secs_f64() / count.max(1) as f64;
        // Jittered: trigger n at (n + u) gaps, u uniform in [0, 1), so that the triggers do not
        // keep one phase against the server's polling.
        let offsets = (0..count)
            .map(|n| Duration::from_secs_f64((n as f64 + random.unit()) * gap))
            .collect();
        Triggers {
            prefix: format!("pb{}", stamp % 1_000_000_000),
            services: services.max(1),
            offsets,
        }
    }

    fn key(&self, n: usize) -> String {
        format!("{}-{n}", self.prefix)
    }

    /// The trigger a message names (its dedup key as a word of `text`).
    fn index_in(&self, text: &str) -> Option<usize> {
        text.split_whitespace().find_map(|word| {
            word.strip_prefix(self.prefix.as_str())?
                .strip_prefix('-')?
                .parse::<usize>()
                .ok()
                .filter(|n| *n < self.offsets.len())
        })
    }

    /// Sends every trigger at its offset from now over `connections` keep-alive connections.
    async fn send(
        self: &Arc<Self>,
        target: &Target,
        connections: usize,
    ) -> anyhow::Result<TriggerRun> {
        let started = Instant::now();
        let next = Arc::new(AtomicUsize::new(0));
        let uri = target.uri("/v2/enqueue")?;
        let workers: Vec<_> = (0..connections.max(1))
            .map(|_| {
                let triggers = Arc::clone(self);
                let next = Arc::clone(&next);
                let target = target.clone();
                let uri = uri.clone();
                tokio::spawn(async move {
                    let mut sent = Vec::new();
                    let mut first_error = None;
                    let mut connection: Option<Connection> = None;
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        let Some(offset) = triggers.offsets.get(n) else {
                            break;
                        };
                        tokio::time::sleep_until((started + *offset).into()).await;
                        let body = trigger_body(
                            &routing_key(n % triggers.services),
                            Some(&triggers.key(n)),
                            &triggers.key(n),
                        );
                        let at = Instant::now();
                        let outcome = async {
                            if connection.is_none() {
                                connection = Some(Connection::open(&target).await?);
                            }
                            let current = connection.as_mut().expect("opened above");
                            let status = tokio::time::timeout(
                                REQUEST_TIMEOUT,
                                current.post_json(&uri, body),
                            )
                            .await
                            .context("no answer")??;
                            anyhow::Ok(status)
                        }
                        .await;
                        let accepted = match outcome {
                            Ok(StatusCode::ACCEPTED) => Some(Instant::now()),
                            Ok(status) => {
                                first_error.get_or_insert(format!("answered {status}"));
                                None
                            }
                            Err(error) => {
                                connection = None;
                                first_error.get_or_insert(format!("{error:#}"));
                                None
                            }
                        };
                        sent.push((n, Sent { sent: at, accepted }));
                    }
                    (sent, first_error)
                })
            })
            .collect();
        let mut all = vec![None; self.offsets.len()];
        let mut first_error = None;
        for worker in workers {
            let (sent, error) = worker.await?;
            for (n, one) in sent {
                all[n] = Some(one);
            }
            if first_error.is_none() {
                first_error = error;
            }
        }
        Ok(TriggerRun {
            started,
            sent: all
                .into_iter()
                .map(|one| one.context("a trigger was not sent"))
                .collect::<anyhow::Result<_>>()?,
            first_error,
        })
    }
}

/// What [`Triggers::send`] did.
struct TriggerRun {
    started: Instant,
    sent: Vec<Sent>,
    first_error: Option<String>,
}

impl TriggerRun {
    fn accepted(&self) -> usize {
        self.sent
            .iter()
            .filter(|one| one.accepted.is_some())
            .count()
    }

    fn last_accepted(&self) -> Option<Instant> {
        self.sent.iter().filter_map(|one| one.accepted).max()
    }
}

/// A small pseudo-random generator for the schedule's jitter (not for anything secret).
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        XorShift(seed | 1)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Waits until `inbox` holds `expected` messages or `deadline` passes, printing progress.
async fn wait_for(inbox: &Inbox, expected: usize, deadline: Instant) {
    let mut reported = Instant::now();
    while inbox.len() < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if reported.elapsed() >= Duration::from_secs(10) {
            eprintln!("  received {} of {expected}", inbox.len());
            reported = Instant::now();
        }
    }
}

// ------------------------------------------------------------------ reading the arrivals

/// The messages of a run matched to their triggers.
#[derive(Debug, Default)]
struct Matched {
    /// Per trigger, its first message's arrival, by destination (see `slot`).
    first: Vec<Vec<Option<Instant>>>,
    /// Messages whose idempotency key had been seen before.
    repeated_keys: usize,
    /// Messages that named no trigger of this run.
    unmatched: usize,
    /// Messages for a trigger that already had one at that destination (another key).
    extra: usize,
}

impl Matched {
    /// `slot` tells apart destinations of one trigger (a level, a channel); None: ignore.
    fn new(
        triggers: &Triggers,
        arrivals: &[Arrival],
        slots: usize,
        slot: impl Fn(&Arrival) -> Option<usize>,
    ) -> Matched {
        let mut matched = Matched {
            first: vec![vec![None; slots]; triggers.offsets.len()],
            ..Matched::default()
        };
        let mut keys = HashSet::new();
        for arrival in arrivals {
            if !keys.insert(arrival.key.as_str()) {
                matched.repeated_keys += 1;
            }
            let (Some(n), Some(slot)) = (triggers.index_in(&arrival.text), slot(arrival)) else {
                matched.unmatched += 1;
                continue;
            };
            let Some(first) = matched.first[n].get_mut(slot) else {
                matched.unmatched += 1;
                continue;
            };
            if first.is_some() {
                matched.extra += 1;
            } else {
                *first = Some(arrival.at);
            }
        }
        matched
    }

    /// Triggers accepted whose message at `slot` never came.
    fn missing(&self, sent: &TriggerRun, slot: usize) -> usize {
        sent.sent
            .iter()
            .zip(&self.first)
            .filter(|(one, first)| one.accepted.is_some() && first[slot].is_none())
            .count()
    }

    /// From `from(trigger)` to the arrival at `slot`, over the triggers that have both.
    fn delays(
        &self,
        sent: &TriggerRun,
        slot: usize,
        from: impl Fn(&Sent) -> Option<Instant>,
    ) -> Vec<Duration> {
        sent.sent
            .iter()
            .zip(&self.first)
            .filter_map(|(one, first)| Some(first[slot]?.saturating_duration_since(from(one)?)))
            .collect()
    }
}

fn histogram(values: &[Duration]) -> Histogram {
    let mut histogram = Histogram::default();
    for value in values {
        histogram.record(*value);
    }
    histogram
}

/// Share of `total` whose value is at most `limit`.
fn share_within(values: &[Duration], limit: Duration, total: usize) -> f64 {
    if total == 0 {
        return 0.0;
    }
    values.iter().filter(|value| **value <= limit).count() as f64 / total as f64
}

/// The percentiles the paging benchmarks report.
const PERCENTILES: &[(&str, f64)] = &[("p50", 50.0), ("p95", 95.0), ("p99", 99.0)];

fn latency_json(histogram: &Histogram) -> Value {
    histogram.summary_json(PERCENTILES)
}

fn latency_line(histogram: &Histogram) -> String {
    format!(
        "{}  (n = {})",
        histogram.summary_line(PERCENTILES, 1),
        histogram.count()
    )
}

/// ` (first error: ...)`, or nothing.
fn error_note(first_error: Option<&str>) -> String {
    first_error.map_or_else(String::new, |error| format!(" (first error: {error})"))
}

/// The server's escalation-step claim lag and CPU use over a run, for "where the time goes".
#[derive(Debug, Clone)]
struct ServerSide {
    step_lag: Option<Buckets>,
    cpu_seconds: Option<f64>,
    bench_cpu_seconds: Option<f64>,
    rss: Option<(u64, u64)>,
}

impl ServerSide {
    fn print(&self, wall: Duration) {
        match &self.step_lag {
            Some(lag) => {
                println!(
                    "  server: escalation steps claimed {:.0}, lag after due mean {} ms, p50 {}, p99 {}",
                    lag.count,
                    lag.mean_ms_text(),
                    lag.quantile_text(0.5),
                    lag.quantile_text(0.99)
                );
            }
            None => println!("  server: no escalation steps in /metrics"),
        }
        let share = |seconds: Option<f64>| {
            seconds.map_or_else(
                || "-".to_owned(),
                |s| format!("{:.0} %", s / wall.as_secs_f64().max(1e-9) * 100.0),
            )
        };
        println!(
            "  CPU of one core over {:.1} s: server {}, bench {}; server RSS {}",
            wall.as_secs_f64(),
            share(self.cpu_seconds),
            share(self.bench_cpu_seconds),
            self.rss.map_or_else(
                || "-".to_owned(),
                |(rss, _)| format!("{:.0} MB", rss as f64 / 1e6)
            ),
        );
    }

    fn to_json(&self, wall: Duration) -> Value {
        let lag = self.step_lag.as_ref();
        json!({
            "escalation_steps_claimed": lag.map(|lag| lag.count),
            "escalation_step_lag_mean_s": lag.and_then(Buckets::mean),
            "escalation_step_lag_p50_s": lag.and_then(|lag| lag.quantile(0.5)).map(|q| q.1),
            "escalation_step_lag_p99_s": lag.and_then(|lag| lag.quantile(0.99)).map(|q| q.1),
            "server_cpu_seconds": self.cpu_seconds,
            "bench_cpu_seconds": self.bench_cpu_seconds,
            "wall_seconds": wall.as_secs_f64(),
            "server_rss_bytes": self.rss.map(|(rss, _)| rss),
        })
    }
}

/// Starts the server with `layout`, runs `body` against it, reads the server side, stops it.
async fn with_server<T>(
    common: &Common,
    layout: Layout,
    body: impl AsyncFnOnce(&Served) -> anyhow::Result<T>,
) -> anyhow::Result<(T, ServerSide, Duration)> {
    let database = match &common.postgres {
        Some(admin) => Some(crate::runner::Database::create(admin, 0).await?),
        None => None,
    };
    let started = Served::start_on(
        &common.tocsin,
        common.work_dir.as_deref(),
        database.as_ref().map(|database| database.url.as_str()),
        |listen| config_file(listen, &layout),
    )
    .await;
    let server = match started {
        Ok(server) => server,
        Err(error) => {
            if let Some(database) = database {
                let _ = database.drop_database().await;
            }
            return Err(error);
        }
    };
    let pid = server.pid;
    let cpu_before = pid.and_then(serve::cpu_seconds);
    let bench_before = serve::cpu_seconds(std::process::id());
    let started = Instant::now();
    let outcome = body(&server).await;
    let wall = started.elapsed();
    let side = ServerSide {
        step_lag: monitors::lag_histogram(&server.target, ESCALATION_STEP).await,
        cpu_seconds: pid
            .and_then(serve::cpu_seconds)
            .zip(cpu_before)
            .map(|(after, before)| after - before),
        bench_cpu_seconds: serve::cpu_seconds(std::process::id())
            .zip(bench_before)
            .map(|(after, before)| after - before),
        rss: pid.and_then(serve::memory),
    };
    if outcome.is_err() {
        eprintln!("server log:\n{}", server.log_tail());
    }
    // The log outlives the stop (it is flushed by then); the data directory goes after.
    let log = server.log_path();
    let data = server.stop_keeping_data().await?;
    if let Some(keep) = &common.keep_log {
        std::fs::copy(&log, keep)
            .with_context(|| format!("cannot copy the server log to {}", keep.display()))?;
    }
    drop(data);
    if let Some(database) = database {
        database.drop_database().await?;
    }
    Ok((outcome?, side, wall))
}

/// What every paging report offers.
pub trait PagingReport {
    /// Every accepted trigger got its messages, once.
    fn complete(&self) -> bool;
    fn to_json(&self) -> Value;
    fn print(&self);
}

fn check(incidents: usize, services: usize) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=MAX_INCIDENTS).contains(&incidents),
        "--incidents must be between 1 and {MAX_INCIDENTS}"
    );
    anyhow::ensure!(
        (1..=MAX_SERVICES).contains(&services),
        "--services must be between 1 and {MAX_SERVICES}"
    );
    Ok(())
}

// ------------------------------------------------------------------ (a) trigger to mail

#[derive(Debug)]
pub struct LatencyReport {
    pub plan: LatencyPlan,
    pub accepted: usize,
    pub first_error: Option<String>,
    pub mails: usize,
    pub missing: usize,
    pub repeated_keys: usize,
    pub unmatched: usize,
    pub extra: usize,
    pub latency: Histogram,
    server: ServerSide,
    wall: Duration,
}

impl PagingReport for LatencyReport {
    fn complete(&self) -> bool {
        self.accepted == self.plan.incidents
            && self.missing == 0
            && self.repeated_keys == 0
            && self.extra == 0
    }

    fn print(&self) {
        let plan = &self.plan;
        println!(
            "paging latency: {} incidents over {:.0} s ({:.2}/s), {} service(s), level 1 = one user by email to a local SMTP sink",
            plan.incidents,
            plan.over.as_secs_f64(),
            plan.incidents as f64 / plan.over.as_secs_f64().max(1e-9),
            plan.services
        );
        println!(
            "  triggers accepted {}/{}{}; mails {} (missing {}, repeated idempotency keys {}, extra {}, unmatched {})",
            self.accepted,
            plan.incidents,
            error_note(self.first_error.as_deref()),
            self.mails,
            self.missing,
            self.repeated_keys,
            self.extra,
            self.unmatched
        );
        println!("  202 -> SMTP accept, ms  {}", latency_line(&self.latency));
        self.server.print(self.wall);
    }

    fn to_json(&self) -> Value {
        json!({
            "benchmark": "paging latency",
            "incidents": self.plan.incidents,
            "over_s": self.plan.over.as_secs_f64(),
            "services": self.plan.services,
            "accepted": self.accepted,
            "first_error": self.first_error,
            "mails": self.mails,
            "missing": self.missing,
            "repeated_keys": self.repeated_keys,
            "extra": self.extra,
            "unmatched": self.unmatched,
            "latency": latency_json(&self.latency),
            "server": self.server.to_json(self.wall),
        })
    }
}

pub async fn latency(plan: LatencyPlan) -> anyhow::Result<LatencyReport> {
    check(plan.incidents, plan.services)?;
    let inbox = Arc::new(Inbox::default());
    let smtp = smtp::serve_smtp(Arc::clone(&inbox)).await?;
    let triggers = Arc::new(Triggers::new(plan.incidents, plan.services, plan.over));
    let layout = Layout {
        services: plan.services,
        levels: 1,
        escalate_after_minutes: 1,
        contact: Contact::Email { smtp },
        channels: None,
    };
    let (sent, server, wall) = with_server(&plan.common, layout, async |server: &Served| {
        eprintln!(
            "sending {} triggers over {:.0} s",
            plan.incidents,
            plan.over.as_secs_f64()
        );
        let sent = triggers.send(&server.target, plan.connections).await?;
        wait_for(&inbox, sent.accepted(), Instant::now() + plan.common.wait).await;
        Ok(sent)
    })
    .await?;
    let arrivals = inbox.take();
    let matched = Matched::new(&triggers, &arrivals, 1, |_| Some(0));
    Ok(LatencyReport {
        accepted: sent.accepted(),
        first_error: sent.first_error.clone(),
        mails: arrivals.len(),
        missing: matched.missing(&sent, 0),
        repeated_keys: matched.repeated_keys,
        unmatched: matched.unmatched,
        extra: matched.extra,
        latency: histogram(&matched.delays(&sent, 0, |one| one.accepted)),
        plan,
        server,
        wall,
    })
}

// ------------------------------------------------------------------ (b) outbox dispatch

#[derive(Debug)]
pub struct DispatchReport {
    pub plan: DispatchPlan,
    pub accepted: usize,
    pub first_error: Option<String>,
    pub expected: usize,
    pub received: usize,
    pub repeated_keys: usize,
    pub unmatched: usize,
    pub missing: usize,
    /// From the first trigger to the last `202`.
    pub ingest: Duration,
    /// From the first to the last webhook.
    pub first_to_last: Duration,
    /// Webhooks that arrived after the last `202`, and over how long.
    pub after_ingest: (usize, Duration),
    /// The most webhooks in one second (a sliding window over the arrivals).
    pub best_second: usize,
    server: ServerSide,
    wall: Duration,
}

impl DispatchReport {
    pub fn overall_rate(&self) -> f64 {
        self.received as f64 / self.first_to_last.as_secs_f64().max(1e-9)
    }

    pub fn drain_rate(&self) -> f64 {
        self.after_ingest.0 as f64 / self.after_ingest.1.as_secs_f64().max(1e-9)
    }
}

impl PagingReport for DispatchReport {
    fn complete(&self) -> bool {
        self.received >= self.expected && self.missing == 0 && self.repeated_keys == 0
    }

    fn print(&self) {
        let plan = &self.plan;
        println!(
            "paging dispatch: {} incidents on {} service(s) with {} webhook channel(s) each (one outbox row per channel), {} trigger clients",
            plan.incidents, plan.services, plan.channels, plan.clients
        );
        println!(
            "  triggers accepted {}/{} in {:.2} s{}",
            self.accepted,
            plan.incidents,
            self.ingest.as_secs_f64(),
            error_note(self.first_error.as_deref()),
        );
        println!(
            "  webhooks received {} of {} (missing {}, repeated idempotency keys {}, unmatched {})",
            self.received, self.expected, self.missing, self.repeated_keys, self.unmatched
        );
        println!(
            "  dispatch rate: {:.0}/s first to last webhook ({:.1} s); {:.0}/s after the last 202 ({} in {:.1} s); best second {}",
            self.overall_rate(),
            self.first_to_last.as_secs_f64(),
            self.drain_rate(),
            self.after_ingest.0,
            self.after_ingest.1.as_secs_f64(),
            self.best_second
        );
        self.server.print(self.wall);
    }

    fn to_json(&self) -> Value {
        json!({
            "benchmark": "paging dispatch",
            "incidents": self.plan.incidents,
            "services": self.plan.services,
            "channels": self.plan.channels,
            "clients": self.plan.clients,
            "accepted": self.accepted,
            "first_error": self.first_error,
            "expected": self.expected,
            "received": self.received,
            "missing": self.missing,
            "repeated_keys": self.repeated_keys,
            "unmatched": self.unmatched,
            "ingest_s": self.ingest.as_secs_f64(),
            "first_to_last_s": self.first_to_last.as_secs_f64(),
            "overall_per_s": self.overall_rate(),
            "after_ingest": self.after_ingest.0,
            "after_ingest_s": self.after_ingest.1.as_secs_f64(),
            "after_ingest_per_s": self.drain_rate(),
            "best_second": self.best_second,
            "server": self.server.to_json(self.wall),
        })
    }
}

pub async fn dispatch(plan: DispatchPlan) -> anyhow::Result<DispatchReport> {
    check(plan.incidents, plan.services)?;
    anyhow::ensure!(
        (1..=64).contains(&plan.channels),
        "--channels must be between 1 and 64"
    );
    let inbox = Arc::new(Inbox::default());
    let receiver = receiver::serve_webhooks(Arc::clone(&inbox)).await?;
    let triggers = Arc::new(Triggers::new(plan.incidents, plan.services, Duration::ZERO));
    let layout = Layout {
        services: plan.services,
        levels: 0,
        escalate_after_minutes: 1,
        contact: Contact::Webhook { receiver },
        channels: Some((plan.channels, receiver)),
    };
    let (sent, server, wall) = with_server(&plan.common, layout, async |server: &Served| {
        eprintln!(
            "sending {} triggers with {} clients",
            plan.incidents, plan.clients
        );
        let sent = triggers.send(&server.target, plan.clients).await?;
        let expected = sent.accepted() * plan.channels;
        wait_for(&inbox, expected, Instant::now() + plan.common.wait).await;
        Ok(sent)
    })
    .await?;
    let arrivals = inbox.take();
    let channel_of = |arrival: &Arrival| {
        arrival
            .to
            .strip_prefix("/channel/")
            .and_then(|n| n.parse::<usize>().ok())
    };
    let matched = Matched::new(&triggers, &arrivals, plan.channels, channel_of);
    let missing = (0..plan.channels)
        .map(|channel| matched.missing(&sent, channel))
        .sum();
    let mut times: Vec<Instant> = arrivals.iter().map(|arrival| arrival.at).collect();
    times.sort();
    let last_accepted = sent.last_accepted().unwrap_or(sent.started);
    let (first, last) = match (times.first(), times.last()) {
        (Some(first), Some(last)) => (*first, *last),
        _ => (last_accepted, last_accepted),
    };
    let after = times.iter().filter(|at| **at > last_accepted).count();
    let mut best_second = 0;
    let mut start = 0;
    for (end, at) in times.iter().enumerate() {
        while at.duration_since(times[start]) >= Duration::from_secs(1) {
            start += 1;
        }
        best_second = best_second.max(end + 1 - start);
    }
    Ok(DispatchReport {
        accepted: sent.accepted(),
        first_error: sent.first_error.clone(),
        expected: sent.accepted() * plan.channels,
        received: arrivals.len(),
        repeated_keys: matched.repeated_keys,
        unmatched: matched.unmatched,
        missing,
        ingest: last_accepted.saturating_duration_since(sent.started),
        first_to_last: last.saturating_duration_since(first),
        after_ingest: (after, last.saturating_duration_since(last_accepted)),
        best_second,
        plan,
        server,
        wall,
    })
}

// ------------------------------------------------------------------ (c) escalations

#[derive(Debug)]
pub struct EscalationsReport {
    pub plan: EscalationsPlan,
    pub accepted: usize,
    pub first_error: Option<String>,
    pub received: usize,
    pub missing: [usize; 2],
    pub repeated_keys: usize,
    pub unmatched: usize,
    pub extra: usize,
    /// Level 1: from the `202`. Level 2: from the trigger's send time plus the wait.
    pub late: [Histogram; 2],
    /// Share of the accepted triggers whose message of that level came within 1 s.
    pub within_1s: [f64; 2],
    server: ServerSide,
    wall: Duration,
}

impl PagingReport for EscalationsReport {
    fn complete(&self) -> bool {
        self.accepted == self.plan.incidents
            && self.missing == [0, 0]
            && self.repeated_keys == 0
            && self.extra == 0
    }

    fn print(&self) {
        let plan = &self.plan;
        println!(
            "paging escalations: {} incidents over {:.0} s on {} service(s); level 1 at once, level 2 after {} min; webhooks to a local receiver",
            plan.incidents,
            plan.over.as_secs_f64(),
            plan.services,
            plan.escalate_after_minutes
        );
        println!(
            "  triggers accepted {}/{}{}; webhooks {} (missing level 1 {}, level 2 {}; repeated idempotency keys {}, extra {}, unmatched {})",
            self.accepted,
            plan.incidents,
            error_note(self.first_error.as_deref()),
            self.received,
            self.missing[0],
            self.missing[1],
            self.repeated_keys,
            self.extra,
            self.unmatched
        );
        for (level, late) in self.late.iter().enumerate() {
            println!(
                "  level {} late, ms  {}; within 1 s: {:.1} %",
                level + 1,
                latency_line(late),
                self.within_1s[level] * 100.0
            );
        }
        self.server.print(self.wall);
    }

    fn to_json(&self) -> Value {
        json!({
            "benchmark": "paging escalations",
            "incidents": self.plan.incidents,
            "over_s": self.plan.over.as_secs_f64(),
            "services": self.plan.services,
            "escalate_after_minutes": self.plan.escalate_after_minutes,
            "accepted": self.accepted,
            "first_error": self.first_error,
            "received": self.received,
            "missing": self.missing,
            "repeated_keys": self.repeated_keys,
            "extra": self.extra,
            "unmatched": self.unmatched,
            "level_1_late": latency_json(&self.late[0]),
            "level_1_within_1s": self.within_1s[0],
            "level_2_late": latency_json(&self.late[1]),
            "level_2_within_1s": self.within_1s[1],
            "server": self.server.to_json(self.wall),
        })
    }
}

pub async fn escalations(plan: EscalationsPlan) -> anyhow::Result<EscalationsReport> {
    check(plan.incidents, plan.services)?;
    anyhow::ensure!(
        (1..=60).contains(&plan.escalate_after_minutes),
        "--escalate-after must be between 1 and 60 minutes"
    );
    let inbox = Arc::new(Inbox::default());
    let receiver = receiver::serve_webhooks(Arc::clone(&inbox)).await?;
    let triggers = Arc::new(Triggers::new(plan.incidents, plan.services, plan.over));
    let wait = Duration::from_secs(u64::from(plan.escalate_after_minutes) * 60);
    let layout = Layout {
        services: plan.services,
        levels: 2,
        escalate_after_minutes: plan.escalate_after_minutes,
        contact: Contact::Webhook { receiver },
        channels: None,
    };
    let (sent, server, wall) = with_server(&plan.common, layout, async |server: &Served| {
        eprintln!(
            "sending {} triggers over {:.0} s; level 2 comes {:.0} s after each",
            plan.incidents,
            plan.over.as_secs_f64(),
            wait.as_secs_f64()
        );
        let sent = triggers.send(&server.target, plan.connections).await?;
        eprintln!("all sent; waiting for level 2");
        let last = sent
            .sent
            .iter()
            .map(|one| one.sent)
            .max()
            .unwrap_or(sent.started);
        wait_for(&inbox, sent.accepted() * 2, last + wait + plan.common.wait).await;
        Ok(sent)
    })
    .await?;
    let arrivals = inbox.take();
    let level_of = |arrival: &Arrival| match arrival.to.as_str() {
        "/page/1" => Some(0),
        "/page/2" => Some(1),
        _ => None,
    };
    let matched = Matched::new(&triggers, &arrivals, 2, level_of);
    let late = [
        matched.delays(&sent, 0, |one| one.accepted),
        matched.delays(&sent, 1, |one| one.accepted.map(|_| one.sent + wait)),
    ];
    let accepted = sent.accepted();
    Ok(EscalationsReport {
        accepted: sent.accepted(),
        first_error: sent.first_error.clone(),
        received: arrivals.len(),
        missing: [matched.missing(&sent, 0), matched.missing(&sent, 1)],
        repeated_keys: matched.repeated_keys,
        unmatched: matched.unmatched,
        extra: matched.extra,
        late: [histogram(&late[0]), histogram(&late[1])],
        within_1s: [
            share_within(&late[0], Duration::from_secs(1), accepted),
            share_within(&late[1], Duration::from_secs(1), accepted),
        ],
        plan,
        server,
        wall,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(levels: usize, channels: Option<(usize, SocketAddr)>) -> Layout {
        Layout {
            services: 2,
            levels,
            escalate_after_minutes: 1,
            contact: Contact::Webhook {
                receiver: "127.0.0.1:9000".parse().unwrap(),
            },
            channels,
        }
    }

    #[test]
    fn the_config_gives_every_service_its_ladder() {
        let config = config_file("127.0.0.1:8080".parse().unwrap(), &layout(2, None));
        assert_eq!(config.matches("[[users]]").count(), 4);
        assert_eq!(config.matches("[[escalation_policies]]").count(), 2);
        assert!(config.contains(
            "levels = [{ targets = [\"user:s1-l1\"], escalate_after_minutes = 1 }, { targets = [\"user:s1-l2\"] }]"
        ));
        assert!(config.contains("url = \"http://127.0.0.1:9000/page/2\""));
        assert!(config.contains(&format!("integration_keys = [\"{}\"]", routing_key(1))));
        assert_eq!(routing_key(1).len(), 32);
        assert!(!config.contains("[smtp]"));
    }

    #[test]
    fn a_config_without_levels_has_channels_and_no_policy() {
        let receiver = "127.0.0.1:9000".parse().unwrap();
        let config = config_file(
            "127.0.0.1:8080".parse().unwrap(),
            &layout(0, Some((2, receiver))),
        );
        assert!(!config.contains("escalation_polic"));
        assert_eq!(config.matches("[[channels]]").count(), 2);
        assert_eq!(
            config
                .matches("channels = [\"hook-0\", \"hook-1\"]")
                .count(),
            2
        );
    }

    #[test]
    fn messages_find_their_trigger_by_the_dedup_key_in_the_title() {
        let triggers = Triggers::new(20, 3, Duration::from_secs(20));
        let key = triggers.key(17);
        assert_eq!(
            triggers.index_in(&format!("[P3] Bench 2: {key} (#5)")),
            Some(17)
        );
        assert_eq!(triggers.index_in(&key), Some(17));
        assert_eq!(triggers.index_in(&triggers.key(20)), None);
        assert_eq!(triggers.index_in("pbother-3"), None);
        let offsets = &triggers.offsets;
        assert!(offsets.windows(2).all(|pair| pair[1] >= pair[0]));
        assert!(offsets
            .iter()
            .all(|offset| *offset < Duration::from_secs(20)));
    }

    #[test]
    fn matching_counts_repeats_extras_and_strangers() {
        let triggers = Triggers::new(2, 1, Duration::ZERO);
        let now = Instant::now();
        let arrival = |text: String, key: &str, after: u64| Arrival {
            at: now + Duration::from_millis(after),
            to: "/page/1".to_owned(),
            text,
            key: key.to_owned(),
        };
        let arrivals = [
            arrival(triggers.key(0), "a", 10),
            arrival(triggers.key(0), "a", 20),
            arrival(triggers.key(0), "b", 30),
            arrival("someone else".to_owned(), "c", 40),
        ];
        let matched = Matched::new(&triggers, &arrivals, 1, |_| Some(0));
        assert_eq!(matched.repeated_keys, 1);
        assert_eq!(matched.extra, 2);
        assert_eq!(matched.unmatched, 1);
        let sent = TriggerRun {
            started: now,
            sent: vec![
                Sent {
                    sent: now,
                    accepted: Some(now),
                },
                Sent {
                    sent: now,
                    accepted: Some(now),
                },
            ],
            first_error: None,
        };
        assert_eq!(matched.missing(&sent, 0), 1);
        let delays = matched.delays(&sent, 0, |one| one.accepted);
        assert_eq!(delays, [Duration::from_millis(10)]);
        assert!((share_within(&delays, Duration::from_millis(10), 2) - 0.5).abs() < 0.01);
        assert_eq!(share_within(&delays, Duration::from_millis(5), 2), 0.0);
    }
}
