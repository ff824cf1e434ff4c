//! The `/v2/enqueue` load generator: N client tasks, each with its own keep-alive connection and
//! one request in flight, either closed loop (the next request as soon as the previous answer
//! arrives) or open loop (requests on a fixed schedule, latency counted from the scheduled time
//! so a stalled server cannot hide its stall by slowing the senders down).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::{StatusCode, Uri};
use serde_json::{json, Value};

use crate::client::{Connection, Target};
use crate::histogram::Histogram;
use crate::observe::{CommitStats, CpuShare, Snapshot};

/// Bodies for up to this many distinct dedup keys are serialized before the run; beyond it each
/// request serializes its own.
const PRESERIALIZED_KEYS: u64 = 65_536;
/// A client that cannot connect this many times in a row stops.
const MAX_CONNECT_FAILURES: u32 = 50;
/// Measured events of one run at most, whatever the options say.
const MAX_EVENTS: u64 = 1_000_000_000;
/// Pause after a 429 in a closed loop, so a full queue is not answered with a busy loop.
const THROTTLE_PAUSE: Duration = Duration::from_millis(5);

/// Which endpoint the load goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RequestKind {
    /// `POST /v2/enqueue` with a trigger; accepted means `202`.
    #[default]
    Enqueue,
    /// `POST /ping/<key_prefix>-<n>` (a heartbeat success) with an empty body; accepted means
    /// `200`.
    Ping,
}

/// What to send: PagerDuty Events API v2 triggers for one integration key, or heartbeat pings.
#[derive(Debug, Clone)]
pub struct Payload {
    pub kind: RequestKind,
    pub routing_key: String,
    /// Distinct dedup keys to cycle over; 0 sends no dedup key, so every trigger opens a new
    /// alert and incident.
    pub keys: u64,
    /// Dedup keys are `<prefix>-<n>`.
    pub key_prefix: String,
}

/// How a run stops: at the first of `duration` and `events` (counted after the warm-up), and in
/// any case after `time_limit` and a billion events.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    pub target: Target,
    pub clients: usize,
    /// Target events/s over all clients; 0 runs a closed loop.
    pub rate: f64,
    pub warmup: Duration,
    pub duration: Option<Duration>,
    pub events: Option<u64>,
    pub time_limit: Duration,
    pub request_timeout: Duration,
    pub payload: Payload,
    /// The server's process id, to report its CPU use.
    pub server_pid: Option<u32>,
    /// Print the accepted count to stderr every few seconds.
    pub progress: bool,
}

#[derive(Debug)]
pub struct LoadReport {
    pub clients: usize,
    pub rate: f64,
    pub keys: u64,
    pub warmup: Duration,
    pub sent: u64,
    pub accepted: u64,
    pub throttled: u64,
    /// Answers other than 202 and 429, by status.
    pub other_statuses: BTreeMap<u16, u64>,
    /// Requests without an answer: connection errors and timeouts.
    pub transport_errors: u64,
    pub first_error: Option<String>,
    /// From the end of the warm-up to the last answer.
    pub measured: Duration,
    /// Accepted requests only. Closed loop: from send to answer. Open loop: from the scheduled
    /// send time to the answer.
    pub latency: Histogram,
    /// Open loop only: from the actual send to the answer.
    pub service_time: Option<Histogram>,
    pub cpu: Option<CpuShare>,
    pub commits: Option<CommitStats>,
}

impl LoadReport {
    pub fn errors(&self) -> u64 {
        self.transport_errors + self.other_statuses.values().sum::<u64>()
    }

    pub fn accepted_per_second(&self) -> f64 {
        let seconds = self.measured.as_secs_f64();
        if seconds > 0.0 {
            self.accepted as f64 / seconds
        } else {
            0.0
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "mode": if self.rate > 0.0 { "open" } else { "closed" },
            "clients": self.clients,
            "target_rate": self.rate,
            "keys": self.keys,
            "warmup_s": self.warmup.as_secs_f64(),
            "measured_s": self.measured.as_secs_f64(),
            "sent": self.sent,
            "accepted": self.accepted,
            "throttled": self.throttled,
            "errors": self.errors(),
            "transport_errors": self.transport_errors,
            "other_statuses": self.other_statuses.iter()
                .map(|(status, count)| (status.to_string(), json!(count)))
                .collect::<serde_json::Map<_, _>>(),
            "first_error": self.first_error,
            "accepted_per_s": self.accepted_per_second(),
            "latency_ms": latency_json(&self.latency),
            "service_time_ms": self.service_time.as_ref().map(latency_json),
            "cpu_cores": self.cpu.map(CpuShare::to_json),
            "group_commits": self.commits.map(CommitStats::to_json),
        })
    }

    pub fn print(&self, title: &str) {
        let mode = if self.rate > 0.0 {
            format!("open loop at {} events/s", self.rate)
        } else {
            "closed loop".to_owned()
        };
        let keys = match self.keys {
            0 => "no dedup key".to_owned(),
            1 => "1 dedup key".to_owned(),
            keys => format!("{keys} dedup keys"),
        };
        println!(
            "{title}: {mode}, {} clients, {keys}, {:.1} s measured after {:.1} s warm-up",
            self.clients,
            self.measured.as_secs_f64(),
            self.warmup.as_secs_f64()
        );
        println!(
            "  sent {}  accepted {}  throttled {}  errors {}",
            self.sent,
            self.accepted,
            self.throttled,
            self.errors()
        );
        if self.errors() > 0 {
            println!(
                "  errors: {} transport, statuses {:?}; first: {}",
                self.transport_errors,
                self.other_statuses,
                self.first_error.as_deref().unwrap_or("-")
            );
        }
        println!("  accepted/s  {:.0}", self.accepted_per_second());
        println!("  latency ms  {}", latency_line(&self.latency));
        if let Some(service) = &self.service_time {
            println!("  service ms  {}", latency_line(service));
        }
        if let Some(cpu) = self.cpu {
            println!(
                "  cpu cores   server {}  bench {}  other {}  (machine has {})",
                cores(cpu.server),
                cores(cpu.bench),
                cores(cpu.other()),
                cpu.cores
            );
        }
        if let Some(commits) = self.commits {
            println!(
                "  commits     {:.0} group commits, {:.1} events/commit, {:.2} ms/commit",
                commits.commits,
                commits.events_per_commit(),
                commits.mean_commit_ms()
            );
        }
    }
}

pub use crate::histogram::millis;

/// The percentiles the ingest benchmarks report, named for the JSON and for the text.
const PERCENTILES_JSON: &[(&str, f64)] =
    &[("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99_9", 99.9)];
const PERCENTILES_TEXT: &[(&str, f64)] =
    &[("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9)];

fn latency_json(histogram: &Histogram) -> Value {
    histogram.summary_json(PERCENTILES_JSON)
}

fn latency_line(histogram: &Histogram) -> String {
    histogram.summary_line(PERCENTILES_TEXT, 2)
}

fn cores(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| format!("{value:.2}"))
}

/// Pre-serialized request bodies.
enum Bodies {
    Table(Vec<Bytes>),
    Generated(Payload),
}

impl Bodies {
    fn new(payload: &Payload) -> Bodies {
        match payload.keys {
            0 => Bodies::Table(vec![body(payload, None)]),
            keys if keys <= PRESERIALIZED_KEYS => {
                Bodies::Table((0..keys).map(|key| body(payload, Some(key))).collect())
            }
            _ => Bodies::Generated(payload.clone()),
        }
    }

    /// The body of the `sequence`-th request overall (cycling over the keys).
    fn get(&self, sequence: u64) -> Bytes {
        match self {
            Bodies::Table(bodies) => bodies[(sequence % bodies.len() as u64) as usize].clone(),
            Bodies::Generated(payload) => body(payload, Some(sequence % payload.keys)),
        }
    }
}

fn body(payload: &Payload, key: Option<u64>) -> Bytes {
    let dedup_key = key.map(|key| format!("{}-{key}", payload.key_prefix));
    trigger_body(
        &payload.routing_key,
        dedup_key.as_deref(),
        "Benchmark event: disk usage above 90% on /var",
    )
}

/// A PagerDuty Events API v2 trigger for integration key `routing_key`; the summary becomes
/// the incident's title.
pub fn trigger_body(routing_key: &str, dedup_key: Option<&str>, summary: &str) -> Bytes {
    let mut event = json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "payload": {
            "summary": summary,
            "source": "bench-host-1",
            "severity": "error",
            "component": "disk",
        },
    });
    if let Some(key) = dedup_key {
        event["dedup_key"] = json!(key);
    }
    Bytes::from(serde_json::to_vec(&event).expect("a JSON value serializes"))
}

struct Shared {
    target: Target,
    uri: Uri,
    /// Ping URIs, one per key (pings only).
    ping_uris: Vec<Uri>,
    accepted_status: StatusCode,
    bodies: Bodies,
    clients: u64,
    /// Seconds between two requests of one client (open loop), or zero.
    interval: Duration,
    started: Instant,
    warmup_end: Instant,
    deadline: Instant,
    limit: u64,
    claimed: AtomicU64,
    accepted: AtomicU64,
    request_timeout: Duration,
    stop: AtomicBool,
}

#[derive(Default)]
struct ClientResult {
    sent: u64,
    accepted: u64,
    throttled: u64,
    other_statuses: BTreeMap<u16, u64>,
    transport_errors: u64,
    first_error: Option<String>,
    last_answer: Option<Instant>,
    latency: Histogram,
    service_time: Histogram,
}

impl ClientResult {
    fn error(&mut self, error: String) {
        self.transport_errors += 1;
        self.first_error.get_or_insert(error);
    }
}

pub async fn run(plan: LoadPlan) -> anyhow::Result<LoadReport> {
    anyhow::ensure!(plan.clients > 0, "--clients must be at least 1");
    anyhow::ensure!(
        plan.rate >= 0.0 && plan.rate.is_finite(),
        "--rate must be 0 (closed loop) or a positive number"
    );
    let measured_for = match (plan.duration, plan.events) {
        (Some(duration), _) => duration.min(plan.time_limit),
        (None, _) => plan.time_limit,
    };
    let interval = if plan.rate > 0.0 {
        Duration::from_secs_f64(plan.clients as f64 / plan.rate)
    } else {
        Duration::ZERO
    };
    let started = Instant::now();
    let warmup_end = started + plan.warmup;
    let shared = Arc::new(Shared {
        uri: plan.target.uri("/v2/enqueue")?,
        ping_uris: match plan.payload.kind {
            RequestKind::Enqueue => Vec::new(),
            RequestKind::Ping => (0..plan.payload.keys.clamp(1, PRESERIALIZED_KEYS))
                .map(|key| {
                    plan.target
                        .uri(&format!("/ping/{}-{key}", plan.payload.key_prefix))
                })
                .collect::<anyhow::Result<_>>()?,
        },
        accepted_status: match plan.payload.kind {
            RequestKind::Enqueue => StatusCode::ACCEPTED,
            RequestKind::Ping => StatusCode::OK,
        },
        target: plan.target.clone(),
        bodies: Bodies::new(&plan.payload),
        clients: plan.clients as u64,
        interval,
        started,
        warmup_end,
        deadline: warmup_end + measured_for,
        limit: plan.events.unwrap_or(MAX_EVENTS).min(MAX_EVENTS),
        claimed: AtomicU64::new(0),
        accepted: AtomicU64::new(0),
        request_timeout: plan.request_timeout,
        stop: AtomicBool::new(false),
    });

    let first_snapshot = {
        let target = plan.target.clone();
        let pid = plan.server_pid;
        tokio::spawn(async move {
            tokio::time::sleep_until(warmup_end.into()).await;
            Snapshot::take(pid, &target).await
        })
    };
    let progress = plan
        .progress
        .then(|| tokio::spawn(progress(Arc::clone(&shared))));
    let tasks: Vec<_> = (0..plan.clients as u64)
        .map(|index| tokio::spawn(client(index, Arc::clone(&shared))))
        .collect();
    let mut total = ClientResult::default();
    let mut open_loop_service = Histogram::default();
    for task in tasks {
        let result = task.await?;
        total.sent += result.sent;
        total.accepted += result.accepted;
        total.throttled += result.throttled;
        total.transport_errors += result.transport_errors;
        for (status, count) in result.other_statuses {
            *total.other_statuses.entry(status).or_default() += count;
        }
        if total.first_error.is_none() {
            total.first_error = result.first_error;
        }
        total.last_answer = total.last_answer.max(result.last_answer);
        total.latency.merge(&result.latency);
        open_loop_service.merge(&result.service_time);
    }
    shared.stop.store(true, Ordering::Relaxed);
    if let Some(progress) = progress {
        progress.abort();
    }
    let end_snapshot = Snapshot::take(plan.server_pid, &plan.target).await;
    let first_snapshot = first_snapshot.await?;

    Ok(LoadReport {
        clients: plan.clients,
        rate: plan.rate,
        keys: plan.payload.keys,
        warmup: plan.warmup,
        sent: total.sent,
        accepted: total.accepted,
        throttled: total.throttled,
        other_statuses: total.other_statuses,
        transport_errors: total.transport_errors,
        first_error: total.first_error,
        measured: total.last_answer.map_or(Duration::ZERO, |last| {
            last.saturating_duration_since(warmup_end)
        }),
        latency: total.latency,
        service_time: (plan.rate > 0.0).then_some(open_loop_service),
        cpu: Some(CpuShare::between(&first_snapshot, &end_snapshot)),
        commits: CommitStats::between(&first_snapshot, &end_snapshot),
    })
}

async fn client(index: u64, shared: Arc<Shared>) -> ClientResult {
    let mut result = ClientResult::default();
    let mut connection: Option<Connection> = None;
    let mut connect_failures = 0;
    // Open loop: the clients' schedules are spread evenly over one interval.
    let mut scheduled = shared.started
        + shared
            .interval
            .mul_f64(index as f64 / shared.clients as f64);
    let mut sequence = 0u64;
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        if shared.interval > Duration::ZERO {
            if scheduled >= shared.deadline {
                break;
            }
            tokio::time::sleep_until(scheduled.into()).await;
        } else if Instant::now() >= shared.deadline {
            break;
        }
        let send_time = Instant::now();
        let start = if shared.interval > Duration::ZERO {
            scheduled
        } else {
            send_time
        };
        let measured = start >= shared.warmup_end;
        if measured && shared.claimed.fetch_add(1, Ordering::Relaxed) >= shared.limit {
            break;
        }

        let current = match connection.as_mut() {
            Some(current) => current,
            None => match Connection::open(&shared.target).await {
                Ok(opened) => {
                    connect_failures = 0;
                    connection.insert(opened)
                }
                Err(error) => {
                    connect_failures += 1;
                    if measured {
                        result.sent += 1;
                        result.error(format!("{error:#}"));
                    }
                    if connect_failures >= MAX_CONNECT_FAILURES {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    scheduled += shared.interval;
                    continue;
                }
            },
        };
        let request = index + sequence * shared.clients;
        let (uri, body) = if shared.ping_uris.is_empty() {
            (&shared.uri, shared.bodies.get(request))
        } else {
            (
                &shared.ping_uris[(request % shared.ping_uris.len() as u64) as usize],
                Bytes::new(),
            )
        };
        sequence += 1;
        let answer =
            tokio::time::timeout(shared.request_timeout, current.post_json(uri, body)).await;
        let answered = Instant::now();
        scheduled += shared.interval;
        let status = match answer {
            Ok(Ok(status)) => Some(status),
            Ok(Err(error)) => {
                connection = None;
                if measured {
                    result.error(format!("request failed: {error}"));
                }
                None
            }
            Err(_) => {
                connection = None;
                if measured {
                    result.error(format!("no answer within {:?}", shared.request_timeout));
                }
                None
            }
        };
        if status == Some(shared.accepted_status) {
            shared.accepted.fetch_add(1, Ordering::Relaxed);
        }
        if !measured {
            continue;
        }
        result.sent += 1;
        result.last_answer = Some(answered);
        match status {
            Some(status) if status == shared.accepted_status => {
                result.accepted += 1;
                result.latency.record(answered - start);
                result.service_time.record(answered - send_time);
            }
            Some(StatusCode::TOO_MANY_REQUESTS) => {
                result.throttled += 1;
                if shared.interval.is_zero() {
                    tokio::time::sleep(THROTTLE_PAUSE).await;
                }
            }
            Some(status) => {
                *result.other_statuses.entry(status.as_u16()).or_default() += 1;
                result
                    .first_error
                    .get_or_insert_with(|| format!("answered {status}"));
            }
            None => {}
        }
    }
    result
}

/// Prints the accepted count every five seconds until the run ends.
async fn progress(shared: Arc<Shared>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(5));
    ticker.tick().await;
    let mut previous = (Instant::now(), 0u64);
    while Instant::now() < shared.deadline + shared.request_timeout {
        ticker.tick().await;
        let now = Instant::now();
        let accepted = shared.accepted.load(Ordering::Relaxed);
        let rate = (accepted - previous.1) as f64 / now.duration_since(previous.0).as_secs_f64();
        eprintln!(
            "  {:>6.1} s  accepted {accepted}  ({rate:.0}/s)",
            now.duration_since(shared.started).as_secs_f64()
        );
        previous = (now, accepted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(keys: u64) -> Payload {
        Payload {
            kind: RequestKind::Enqueue,
            routing_key: "0123456789abcdef0123456789abcdef".to_owned(),
            keys,
            key_prefix: "k".to_owned(),
        }
    }

    fn dedup_key(body: &Bytes) -> Option<String> {
        let value: Value = serde_json::from_slice(body).unwrap();
        value["dedup_key"].as_str().map(str::to_owned)
    }

    #[test]
    fn bodies_cycle_over_the_keys() {
        let bodies = Bodies::new(&payload(3));
        let keys: Vec<_> = (0..4).map(|n| dedup_key(&bodies.get(n)).unwrap()).collect();
        assert_eq!(keys, ["k-0", "k-1", "k-2", "k-0"]);
    }

    #[test]
    fn zero_keys_sends_no_dedup_key() {
        let bodies = Bodies::new(&payload(0));
        assert_eq!(dedup_key(&bodies.get(5)), None);
    }

    #[test]
    fn many_keys_are_generated_per_request() {
        let bodies = Bodies::new(&payload(1_000_000));
        assert!(matches!(bodies, Bodies::Generated(_)));
        assert_eq!(dedup_key(&bodies.get(1_000_007)).unwrap(), "k-7");
    }

    /// A stand-in for the server: answers every tenth request with 429, the others with 202.
    async fn fake_server() -> Target {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicU64::new(0));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let requests = Arc::clone(&requests);
                tokio::spawn(async move {
                    let mut stream = BufReader::new(stream);
                    loop {
                        let mut length = 0;
                        let mut line = String::new();
                        loop {
                            line.clear();
                            if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if line == "\r\n" {
                                break;
                            }
                            if let Some((name, value)) = line.split_once(':') {
                                if name.eq_ignore_ascii_case("content-length") {
                                    length = value.trim().parse().unwrap();
                                }
                            }
                        }
                        let mut body = vec![0; length];
                        stream.read_exact(&mut body).await.unwrap();
                        let answer = if requests.fetch_add(1, Ordering::Relaxed) % 10 == 9 {
                            "HTTP/1.1 429 Too Many Requests\r\ncontent-length: 2\r\n\r\n{}"
                        } else {
                            "HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}"
                        };
                        stream.get_mut().write_all(answer.as_bytes()).await.unwrap();
                    }
                });
            }
        });
        Target::from_address(address)
    }

    fn plan(target: Target, rate: f64, events: Option<u64>) -> LoadPlan {
        LoadPlan {
            target,
            clients: 4,
            rate,
            warmup: Duration::from_millis(50),
            duration: Some(Duration::from_millis(500)),
            events,
            time_limit: Duration::from_secs(10),
            request_timeout: Duration::from_secs(5),
            payload: payload(10),
            server_pid: None,
            progress: false,
        }
    }

    #[tokio::test]
    async fn a_closed_loop_stops_at_the_event_count() {
        let target = fake_server().await;
        let report = run(plan(target, 0.0, Some(500))).await.unwrap();
        assert_eq!(report.sent, 500);
        assert_eq!(report.accepted + report.throttled, 500);
        assert!(report.throttled >= 40, "{report:?}");
        assert_eq!(report.errors(), 0);
        assert_eq!(report.latency.count(), report.accepted);
        assert!(report.accepted_per_second() > 0.0);
    }

    #[tokio::test]
    async fn an_open_loop_keeps_to_its_rate() {
        let target = fake_server().await;
        let report = run(plan(target, 400.0, None)).await.unwrap();
        // 400 events/s for half a second, give or take the edges of the window.
        assert!((180..=220).contains(&report.sent), "{report:?}");
        assert!(report.service_time.is_some());
        assert_eq!(report.errors(), 0);
    }

    #[test]
    fn a_body_is_a_valid_trigger() {
        let value: Value = serde_json::from_slice(&body(&payload(1), Some(0))).unwrap();
        assert_eq!(value["event_action"], "trigger");
        assert_eq!(value["payload"]["severity"], "error");
        assert_eq!(value["routing_key"].as_str().unwrap().len(), 32);
    }
}
