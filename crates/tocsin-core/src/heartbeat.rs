//! Heartbeat monitors: when a job's next ping is due, and what each ping, missed deadline or
//! config change does to the monitor's state and to its alerts.
//!
//! Pure: the caller passes `now` and the state as stored; the store writes the plan (the new
//! state, the ping, the deadline as due work and the alert events) in the transaction that
//! read the state.
//!
//! The rules:
//!
//! - A success (`/ping/<key>`, exit status 0) makes the monitor up and sets the next deadline:
//!   the next expected time strictly after the ping, plus grace. For a cron schedule the next
//!   expected time is the next cron time after the ping, so a ping that arrives before a cron
//!   time does not count for that run.
//! - A start (`/start`) begins a run: the run must end (success or failure) within grace,
//!   or the monitor is late. Starts in a row without a success beyond
//!   `max_starts_without_success` mean the job is crash-looping: an alert of its own.
//! - A failure (`/fail`, exit status 1-255) makes the monitor down at once.
//! - A log (`/log`) is stored and changes nothing.
//! - A deadline that passes without a ping makes the monitor down (late).
//! - A success after down resolves the alert; it also resolves the crash-loop alert.

use std::fmt;
use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde_json::json;

use crate::{Cron, DedupKey, Event, EventAction, Integration, ServiceId, Severity, UnknownValue};

/// The most body bytes a ping keeps as its log, and the `Ping-Body-Limit` Tocsin announces.
pub const PING_BODY_LIMIT: usize = 10_000;
/// The log excerpt an alert payload carries, at most, in characters.
pub const PAYLOAD_EXCERPT_CHARS: usize = 1_000;

/// When a job is expected to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeartbeatSchedule {
    /// A ping at least this often.
    Period(Duration),
    /// A ping after every time the cron expression fires in `zone`.
    Cron { cron: Cron, zone: TimeZone },
}

/// A heartbeat monitor's expectation, from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    pub schedule: HeartbeatSchedule,
    /// How late a ping may be.
    pub grace: Duration,
    /// Starts in a row without a success after which the job is crash-looping.
    pub max_starts_without_success: Option<u32>,
}

impl Expectation {
    /// The next time a run is expected, strictly after `at`.
    pub fn next_expected_after(&self, at: Timestamp) -> Timestamp {
        match &self.schedule {
            HeartbeatSchedule::Period(period) => add(at, *period),
            HeartbeatSchedule::Cron { cron, zone } => cron
                .next_after(&at.to_zoned(zone.clone()))
                .map_or(Timestamp::MAX, |next| next.timestamp()),
        }
    }

    /// The latest time the next success may arrive after one at `at`: the next expected time
    /// strictly after `at`, plus grace.
    pub fn deadline_after(&self, at: Timestamp) -> Timestamp {
        add(self.next_expected_after(at), self.grace)
    }
}

/// What a ping says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PingKind {
    Success,
    Start,
    Fail,
    Log,
}

impl PingKind {
    pub const ALLOWED: &'static str = "success, start, fail, log";

    pub fn as_str(self) -> &'static str {
        match self {
            PingKind::Success => "success",
            PingKind::Start => "start",
            PingKind::Fail => "fail",
            PingKind::Log => "log",
        }
    }

    pub fn parse(value: &str) -> Result<PingKind, UnknownValue> {
        match value {
            "success" => Ok(PingKind::Success),
            "start" => Ok(PingKind::Start),
            "fail" => Ok(PingKind::Fail),
            "log" => Ok(PingKind::Log),
            _ => Err(UnknownValue {
                value: value.to_owned(),
                allowed: Self::ALLOWED,
            }),
        }
    }

    /// The kind of `/ping/<key>/<exit status>`: 0 is a success, anything else a failure.
    pub fn of_exit_code(code: u8) -> PingKind {
        if code == 0 {
            PingKind::Success
        } else {
            PingKind::Fail
        }
    }
}

impl fmt::Display for PingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a heartbeat monitor stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeartbeatStatus {
    /// Watched, never pinged with a success yet (its first deadline counts from when it was
    /// first watched).
    New,
    Up,
    /// Down: the deadline passed without a success.
    Late,
    /// Down: the job reported a failure.
    Failed,
}

impl HeartbeatStatus {
    pub const ALLOWED: &'static str = "new, up, late, failed";

    pub fn as_str(self) -> &'static str {
        match self {
            HeartbeatStatus::New => "new",
            HeartbeatStatus::Up => "up",
            HeartbeatStatus::Late => "late",
            HeartbeatStatus::Failed => "failed",
        }
    }

    pub fn parse(value: &str) -> Result<HeartbeatStatus, UnknownValue> {
        match value {
            "new" => Ok(HeartbeatStatus::New),
            "up" => Ok(HeartbeatStatus::Up),
            "late" => Ok(HeartbeatStatus::Late),
            "failed" => Ok(HeartbeatStatus::Failed),
            _ => Err(UnknownValue {
                value: value.to_owned(),
                allowed: Self::ALLOWED,
            }),
        }
    }

    pub fn is_down(self) -> bool {
        matches!(self, HeartbeatStatus::Late | HeartbeatStatus::Failed)
    }
}

impl fmt::Display for HeartbeatStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The latest ping that was not a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastPing {
    pub kind: PingKind,
    pub at: Timestamp,
    pub exit_code: Option<u8>,
    /// The ping's log (its body, cut to [`PING_BODY_LIMIT`] bytes).
    pub body: String,
}

/// A heartbeat monitor's state, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatState {
    pub status: HeartbeatStatus,
    /// When the status began.
    pub since: Timestamp,
    /// When the monitor becomes late without a success; none while it is down.
    pub deadline: Option<Timestamp>,
    pub last_ping: Option<LastPing>,
    pub last_success_at: Option<Timestamp>,
    /// The run in progress: when it started and its run id.
    pub started_at: Option<Timestamp>,
    pub started_rid: Option<String>,
    pub starts_without_success: u32,
    pub crash_looping: bool,
    /// When the monitor was first watched.
    pub created_at: Timestamp,
}

impl HeartbeatState {
    /// A monitor first watched at `now`.
    pub fn new(now: Timestamp) -> HeartbeatState {
        HeartbeatState {
            status: HeartbeatStatus::New,
            since: now,
            deadline: None,
            last_ping: None,
            last_success_at: None,
            started_at: None,
            started_rid: None,
            starts_without_success: 0,
            crash_looping: false,
            created_at: now,
        }
    }

    /// The deadline this state has under `expectation`: none while down; else the schedule's
    /// deadline after the last success (or after the monitor was first watched), and, while a
    /// run is in progress, no later than its start plus grace.
    pub fn deadline_under(&self, expectation: &Expectation) -> Option<Timestamp> {
        if self.status.is_down() {
            return None;
        }
        let scheduled = expectation.deadline_after(self.last_success_at.unwrap_or(self.created_at));
        Some(match self.started_at {
            Some(started) => scheduled.min(add(started, expectation.grace)),
            None => scheduled,
        })
    }
}

/// A ping as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ping {
    pub kind: PingKind,
    /// `?rid=`: a UUID that ties a start to the ping that ends the run.
    pub rid: Option<String>,
    /// `/ping/<key>/<exit status>`.
    pub exit_code: Option<u8>,
    /// The first [`PING_BODY_LIMIT`] bytes of the body, as text.
    pub body: String,
    /// The client's address.
    pub remote: Option<String>,
    /// `GET`, `HEAD` or `POST`.
    pub method: String,
}

/// What happened to a heartbeat monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeartbeatSignal {
    Ping(Ping),
    /// Its due-work deadline came: late unless a success arrived meanwhile.
    Deadline,
    /// It is in the config in force (at start-up and after a reload): create its state, or
    /// derive its deadline anew from an expectation that may have changed.
    Watch,
}

/// One signal for one heartbeat monitor, with what the config says of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatInput {
    /// The monitor's id.
    pub monitor: String,
    pub service: ServiceId,
    pub expectation: Expectation,
    pub signal: HeartbeatSignal,
    /// When Tocsin received it.
    pub now: Timestamp,
}

/// A ping to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingRecord {
    pub kind: PingKind,
    pub at: Timestamp,
    pub rid: Option<String>,
    pub exit_code: Option<u8>,
    /// How long the run took, when the ping ends a run whose start was seen.
    pub duration: Option<Duration>,
    pub body: String,
    pub remote: Option<String>,
    pub method: String,
}

/// What one signal does.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatPlan {
    /// The state afterwards (its `deadline` is the due-work deadline to schedule, or to
    /// cancel when none).
    pub state: HeartbeatState,
    /// The ping to store, if the signal was one.
    pub ping: Option<PingRecord>,
    /// Alert events for the ingest fold: triggers and resolves of the monitor's alerts.
    pub events: Vec<Event>,
}

/// The dedup key of a heartbeat monitor's down alert: `heartbeat:<monitor>`.
pub fn down_dedup_key(monitor: &str) -> String {
    format!("heartbeat:{monitor}")
}

/// The dedup key of a heartbeat monitor's crash-loop alert: `heartbeat:<monitor>:crash-loop`.
pub fn crash_loop_dedup_key(monitor: &str) -> String {
    format!("heartbeat:{monitor}:crash-loop")
}

/// Decides what `input` does to a monitor whose stored state is `current` (none: never
/// watched before).
pub fn plan_heartbeat(current: Option<&HeartbeatState>, input: &HeartbeatInput) -> HeartbeatPlan {
    let now = input.now;
    let expectation = &input.expectation;
    let before = current.cloned();
    let mut state = before.clone().unwrap_or_else(|| HeartbeatState::new(now));
    let mut ping_record = None;
    let mut alerts = Vec::new();
    match &input.signal {
        HeartbeatSignal::Watch => {}
        HeartbeatSignal::Deadline => {
            if let Some(deadline) = state.deadline_under(expectation) {
                if deadline <= now {
                    state.status = HeartbeatStatus::Late;
                    state.since = deadline;
                    alerts.push(Alert::Late { deadline });
                }
            }
        }
        HeartbeatSignal::Ping(ping) => {
            let mut duration = None;
            match ping.kind {
                PingKind::Log => {}
                PingKind::Start => {
                    state.started_at = Some(now);
                    state.started_rid = ping.rid.clone();
                    state.starts_without_success = state.starts_without_success.saturating_add(1);
                    if let Some(max) = expectation.max_starts_without_success {
                        if state.starts_without_success > max && !state.crash_looping {
                            state.crash_looping = true;
                            alerts.push(Alert::CrashLoop);
                        }
                    }
                }
                PingKind::Success | PingKind::Fail => {
                    duration = run_duration(&state, ping.rid.as_deref(), now);
                    state.started_at = None;
                    state.started_rid = None;
                    if ping.kind == PingKind::Success {
                        if state.status.is_down() {
                            alerts.push(Alert::Recovered);
                        }
                        if state.crash_looping {
                            state.crash_looping = false;
                            alerts.push(Alert::CrashLoopEnded);
                        }
                        if state.status != HeartbeatStatus::Up {
                            state.status = HeartbeatStatus::Up;
                            state.since = now;
                        }
                        state.last_success_at = Some(now);
                        state.starts_without_success = 0;
                    } else {
                        if state.status != HeartbeatStatus::Failed {
                            state.status = HeartbeatStatus::Failed;
                            state.since = now;
                        }
                        alerts.push(Alert::Failed);
                    }
                }
            }
            if ping.kind != PingKind::Log {
                state.last_ping = Some(LastPing {
                    kind: ping.kind,
                    at: now,
                    exit_code: ping.exit_code,
                    body: ping.body.clone(),
                });
            }
            ping_record = Some(PingRecord {
                kind: ping.kind,
                at: now,
                rid: ping.rid.clone(),
                exit_code: ping.exit_code,
                duration,
                body: ping.body.clone(),
                remote: ping.remote.clone(),
                method: ping.method.clone(),
            });
        }
    }
    state.deadline = state.deadline_under(expectation);
    let events = alerts
        .into_iter()
        .filter_map(|alert| alert_event(input, &state, before.as_ref(), alert))
        .collect();
    HeartbeatPlan {
        state,
        ping: ping_record,
        events,
    }
}

/// How long the run that a success or failure ends took: from the start with the same run id,
/// or, without one, from the latest start without a run id.
fn run_duration(state: &HeartbeatState, rid: Option<&str>, now: Timestamp) -> Option<Duration> {
    let started = state.started_at?;
    if state.started_rid.as_deref() != rid {
        return None;
    }
    Duration::try_from(now.duration_since(started)).ok()
}

enum Alert {
    Late { deadline: Timestamp },
    Failed,
    Recovered,
    CrashLoop,
    CrashLoopEnded,
}

fn alert_event(
    input: &HeartbeatInput,
    state: &HeartbeatState,
    before: Option<&HeartbeatState>,
    alert: Alert,
) -> Option<Event> {
    let monitor = &input.monitor;
    let last_ping = before.and_then(|before| before.last_ping.as_ref());
    let last_ping_json = |ping: Option<&LastPing>| match ping {
        Some(ping) => json!({
            "kind": ping.kind.as_str(),
            "at": ping.at.to_string(),
            "exit_code": ping.exit_code,
            "log": excerpt(&ping.body),
        }),
        None => serde_json::Value::Null,
    };
    let common = |what: &str, since: Timestamp| {
        json!({
            "monitor": monitor,
            "what": what,
            "since": since.to_string(),
            "expected": describe(&input.expectation),
            "last_success_at": state.last_success_at.map(|at| at.to_string()),
            "starts_without_success": state.starts_without_success,
        })
    };
    let (action, key, summary, details, occurred_at) = match alert {
        Alert::Late { deadline } => {
            let since = match last_ping {
                Some(ping) => format!("last ping {} at {}", ping.kind, ping.at),
                None => "no ping received yet".to_owned(),
            };
            let mut details = common("late", deadline);
            details["deadline"] = json!(deadline.to_string());
            details["last_ping"] = last_ping_json(last_ping);
            (
                EventAction::Trigger,
                down_dedup_key(monitor),
                format!("Heartbeat {monitor} is late: no success by {deadline} ({since})"),
                details,
                Some(deadline),
            )
        }
        Alert::Failed => {
            let code = state
                .last_ping
                .as_ref()
                .and_then(|ping| ping.exit_code)
                .map(|code| format!(" with exit status {code}"))
                .unwrap_or_default();
            let mut details = common("failed", state.since);
            details["last_ping"] = last_ping_json(state.last_ping.as_ref());
            (
                EventAction::Trigger,
                down_dedup_key(monitor),
                format!("Heartbeat {monitor} failed{code}"),
                details,
                Some(input.now),
            )
        }
        Alert::Recovered => (
            EventAction::Resolve,
            down_dedup_key(monitor),
            format!("Heartbeat {monitor} is up again"),
            json!({ "monitor": monitor, "what": "recovered" }),
            Some(input.now),
        ),
        Alert::CrashLoop => {
            let mut details = common("crash-loop", input.now);
            details["max_starts_without_success"] =
                json!(input.expectation.max_starts_without_success);
            details["last_ping"] = last_ping_json(last_ping);
            (
                EventAction::Trigger,
                crash_loop_dedup_key(monitor),
                format!(
                    "Heartbeat {monitor} is crash-looping: {} starts without a success",
                    state.starts_without_success
                ),
                details,
                Some(input.now),
            )
        }
        Alert::CrashLoopEnded => (
            EventAction::Resolve,
            crash_loop_dedup_key(monitor),
            format!("Heartbeat {monitor} succeeded again"),
            json!({ "monitor": monitor, "what": "recovered" }),
            Some(input.now),
        ),
    };
    // Monitor ids are short (the config checks them); a key that does not fit is no alert.
    let dedup_key = DedupKey::parse(&key).ok()?;
    Some(Event {
        service: input.service.clone(),
        integration: Integration::Heartbeat,
        action,
        dedup_key,
        severity: Severity::Error,
        summary,
        source: format!("heartbeat {monitor}"),
        occurred_at,
        received_at: input.now,
        details,
    })
}

/// `period 1h, grace 30m` or `cron 0 3 * * * (UTC), grace 30m`.
fn describe(expectation: &Expectation) -> String {
    let grace = format_duration(expectation.grace);
    match &expectation.schedule {
        HeartbeatSchedule::Period(period) => {
            format!("period {}, grace {grace}", format_duration(*period))
        }
        HeartbeatSchedule::Cron { cron, zone } => format!(
            "cron {cron} ({}), grace {grace}",
            zone.iana_name().unwrap_or("UTC")
        ),
    }
}

/// `1h`, `30m`, `45s` or `1500ms`: a duration as the config writes it.
pub fn format_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    if seconds > 0 && seconds % 3600 == 0 {
        format!("{}h", seconds / 3600)
    } else if seconds > 0 && seconds % 60 == 0 {
        format!("{}m", seconds / 60)
    } else if duration.subsec_millis() == 0 {
        format!("{seconds}s")
    } else {
        format!("{}ms", duration.as_millis())
    }
}

/// The start of a log, for a payload.
fn excerpt(body: &str) -> String {
    body.chars().take(PAYLOAD_EXCERPT_CHARS).collect()
}

/// `at` plus `duration`, or the latest time there is.
fn add(at: Timestamp, duration: Duration) -> Timestamp {
    jiff::SignedDuration::try_from(duration)
        .ok()
        .and_then(|duration| at.checked_add(duration).ok())
        .unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests;
