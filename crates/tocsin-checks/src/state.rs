//! A monitor's state machine, as a pure function of (state, check result, now).
//!
//! - A monitor is `Up`, `Degraded` or `Down` once confirmed; `Pending` before its first result.
//! - A result worse than the confirmed status counts towards `confirm` consecutive results
//!   before the status changes; a better one towards `confirm_up`. The new status is that of
//!   the latest result. A first result that is up confirms at once.
//! - Each change between up and not up is a flip. More than `flap_threshold` flips within an
//!   hour make the monitor flapping: its alert opens once (if it is not open) and stays open,
//!   whatever the flips, until the flips of the last hour fall to half the threshold; then it
//!   resolves if the monitor is up.
//! - Otherwise: a change to degraded or down opens (or updates) the alert; a change to up
//!   resolves it.

use std::time::Duration;

use tocsin_core::Timestamp;

use crate::probe::{CheckResult, CheckStatus};

/// The window in which flips are counted.
pub const FLAP_WINDOW: Duration = Duration::from_secs(3600);

/// A monitor's confirmed status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MonitorStatus {
    /// No result yet.
    Pending,
    Up,
    Degraded,
    Down,
}

impl MonitorStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MonitorStatus::Pending => "pending",
            MonitorStatus::Up => "up",
            MonitorStatus::Degraded => "degraded",
            MonitorStatus::Down => "down",
        }
    }

    pub fn parse(text: &str) -> Option<MonitorStatus> {
        match text {
            "pending" => Some(MonitorStatus::Pending),
            "up" => Some(MonitorStatus::Up),
            "degraded" => Some(MonitorStatus::Degraded),
            "down" => Some(MonitorStatus::Down),
            _ => None,
        }
    }

    fn rank(self) -> u8 {
        match self {
            MonitorStatus::Pending | MonitorStatus::Up => 0,
            MonitorStatus::Degraded => 1,
            MonitorStatus::Down => 2,
        }
    }

    pub fn is_failing(self) -> bool {
        matches!(self, MonitorStatus::Degraded | MonitorStatus::Down)
    }
}

impl From<CheckStatus> for MonitorStatus {
    fn from(status: CheckStatus) -> Self {
        match status {
            CheckStatus::Up => MonitorStatus::Up,
            CheckStatus::Degraded => MonitorStatus::Degraded,
            CheckStatus::Down => MonitorStatus::Down,
        }
    }
}

/// The thresholds of one monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Consecutive worse results before the status worsens (at least 1).
    pub confirm: u32,
    /// Consecutive better results before the status improves (at least 1).
    pub confirm_up: u32,
    /// Flips within [`FLAP_WINDOW`] beyond which the monitor is flapping.
    pub flap_threshold: u32,
}

impl From<&tocsin_config::Probe> for Thresholds {
    fn from(probe: &tocsin_config::Probe) -> Self {
        Thresholds {
            confirm: probe.confirm,
            confirm_up: probe.confirm_up,
            flap_threshold: probe.flap_threshold,
        }
    }
}

/// One result as the state keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultSummary {
    pub at: Timestamp,
    pub status: CheckStatus,
    pub latency: Duration,
    pub error: Option<String>,
    pub http_status: Option<u16>,
}

impl ResultSummary {
    pub fn of(result: &CheckResult, at: Timestamp) -> ResultSummary {
        ResultSummary {
            at,
            status: result.status,
            latency: result.latency,
            error: result.error.clone(),
            http_status: result.http_status,
        }
    }
}

/// Where a failing monitor's alert is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertLink {
    /// No alert is open for the monitor.
    None,
    /// Its own alert is open.
    Own,
    /// It depends on this monitor, which was down when it failed: its failure is recorded on
    /// that monitor's incident instead of paging.
    Parent(String),
}

/// Everything a monitor remembers between checks.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorState {
    pub status: MonitorStatus,
    /// When the confirmed status began.
    pub since: Option<Timestamp>,
    /// Consecutive results in one direction away from the confirmed status: how many, and the
    /// time of the first.
    pub streak: u32,
    pub streak_worse: bool,
    pub streak_since: Option<Timestamp>,
    /// The first failing result of the current failure (kept until the monitor is up again).
    pub failing_since: Option<Timestamp>,
    pub last_result: Option<ResultSummary>,
    /// The last up result.
    pub last_good: Option<ResultSummary>,
    /// The last result that was not up.
    pub last_failure: Option<ResultSummary>,
    /// Times of the flips within the last [`FLAP_WINDOW`].
    pub flips: Vec<Timestamp>,
    pub flapping: bool,
    pub alert: AlertLink,
}

impl Default for MonitorState {
    fn default() -> Self {
        MonitorState {
            status: MonitorStatus::Pending,
            since: None,
            streak: 0,
            streak_worse: false,
            streak_since: None,
            failing_since: None,
            last_result: None,
            last_good: None,
            last_failure: None,
            flips: Vec::new(),
            flapping: false,
            alert: AlertLink::None,
        }
    }
}

/// What a result asks of the monitor's alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertAction {
    /// Nothing to send.
    None,
    /// Open the alert, or update the open one (its severity or summary changed).
    Trigger,
    /// Resolve the alert.
    Resolve,
}

/// What [`MonitorState::observe`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The confirmed status before the result, and after it.
    pub before: MonitorStatus,
    pub after: MonitorStatus,
    pub alert: AlertAction,
    /// The monitor started flapping with this result.
    pub started_flapping: bool,
}

impl MonitorState {
    /// Folds one result, observed at `now`, into the state.
    pub fn observe(
        &mut self,
        result: &CheckResult,
        now: Timestamp,
        thresholds: Thresholds,
    ) -> Decision {
        let before = self.status;
        let summary = ResultSummary::of(result, now);
        let observed = MonitorStatus::from(result.status);
        if result.status == CheckStatus::Up {
            self.last_good = Some(summary.clone());
        } else {
            self.last_failure = Some(summary.clone());
            if self.failing_since.is_none() {
                self.failing_since = Some(now);
            }
        }
        self.last_result = Some(summary);

        let changed_to = if before == MonitorStatus::Pending && observed == MonitorStatus::Up {
            Some(MonitorStatus::Up)
        } else if observed == before {
            self.reset_streak();
            None
        } else {
            let worse = observed.rank() > before.rank();
            if self.streak > 0 && self.streak_worse == worse {
                self.streak += 1;
            } else {
                self.streak = 1;
                self.streak_worse = worse;
                self.streak_since = Some(now);
            }
            let needed = if worse {
                thresholds.confirm
            } else {
                thresholds.confirm_up
            };
            (self.streak >= needed.max(1)).then_some(observed)
        };

        let mut started_flapping = false;
        self.flips.retain(|flip| age(*flip, now) < FLAP_WINDOW);
        if let Some(after) = changed_to {
            self.reset_streak();
            self.status = after;
            self.since = Some(now);
            if after == MonitorStatus::Up {
                self.failing_since = None;
            }
            let flipped =
                before != MonitorStatus::Pending && (before.is_failing() != after.is_failing());
            if flipped {
                self.flips.push(now);
                if !self.flapping && self.flips.len() > thresholds.flap_threshold as usize {
                    self.flapping = true;
                    started_flapping = true;
                }
            }
        }
        if self.flapping
            && !started_flapping
            && self.flips.len() <= (thresholds.flap_threshold / 2) as usize
        {
            self.flapping = false;
        }

        let after = self.status;
        let alert_open = self.alert != AlertLink::None;
        let alert = if self.flapping {
            // Once when it starts, and again only if its alert was resolved meanwhile.
            if started_flapping || (after.is_failing() && !alert_open) {
                AlertAction::Trigger
            } else {
                AlertAction::None
            }
        } else if after.is_failing() && (!alert_open || changed_to.is_some()) {
            AlertAction::Trigger
        } else if !after.is_failing() && alert_open {
            AlertAction::Resolve
        } else {
            AlertAction::None
        };
        Decision {
            before,
            after,
            alert,
            started_flapping,
        }
    }

    fn reset_streak(&mut self) {
        self.streak = 0;
        self.streak_worse = false;
        self.streak_since = None;
    }
}

fn age(at: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(now.duration_since(at)).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Thresholds = Thresholds {
        confirm: 3,
        confirm_up: 2,
        flap_threshold: 4,
    };

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + second).unwrap()
    }

    fn result(status: CheckStatus) -> CheckResult {
        CheckResult {
            status,
            latency: Duration::from_millis(12),
            error: (status != CheckStatus::Up).then(|| "boom".to_owned()),
            http_status: Some(if status == CheckStatus::Down {
                500
            } else {
                200
            }),
            certificate_expires_at: None,
        }
    }

    /// Feeds results one per minute; returns the decisions. Applies the alert actions the way
    /// the runner does (Trigger opens, Resolve closes).
    fn feed(state: &mut MonitorState, statuses: &[CheckStatus], start: i64) -> Vec<Decision> {
        statuses
            .iter()
            .enumerate()
            .map(|(i, status)| {
                let decision = state.observe(&result(*status), at(start + 60 * i as i64), T);
                match decision.alert {
                    AlertAction::Trigger => state.alert = AlertLink::Own,
                    AlertAction::Resolve => state.alert = AlertLink::None,
                    AlertAction::None => {}
                }
                decision
            })
            .collect()
    }

    use CheckStatus::{Degraded as G, Down as D, Up as U};

    #[test]
    fn first_up_result_confirms_at_once() {
        let mut state = MonitorState::default();
        let decisions = feed(&mut state, &[U], 0);
        assert_eq!(state.status, MonitorStatus::Up);
        assert_eq!(decisions[0].alert, AlertAction::None);
        assert_eq!(state.since, Some(at(0)));
    }

    #[test]
    fn confirm_failures_before_down_and_successes_before_up() {
        let mut state = MonitorState::default();
        let decisions = feed(&mut state, &[U, D, D, D, U, D, U, U], 0);
        let alerts: Vec<AlertAction> = decisions.iter().map(|d| d.alert).collect();
        use AlertAction::{None as N, Resolve as R, Trigger as Tr};
        assert_eq!(alerts, vec![N, N, N, Tr, N, N, N, R]);
        assert_eq!(state.status, MonitorStatus::Up);
        assert_eq!(state.last_good.as_ref().unwrap().at, at(7 * 60));
        assert_eq!(state.last_failure.as_ref().unwrap().at, at(5 * 60));
        assert_eq!(state.failing_since, None);
    }

    #[test]
    fn failing_since_is_the_first_failure() {
        let mut state = MonitorState::default();
        feed(&mut state, &[U, D, D, D], 0);
        assert_eq!(state.status, MonitorStatus::Down);
        assert_eq!(state.failing_since, Some(at(60)));
        assert_eq!(state.since, Some(at(180)));
    }

    #[test]
    fn an_interrupted_streak_starts_over() {
        let mut state = MonitorState::default();
        feed(&mut state, &[U, D, D, U, D, D], 0);
        assert_eq!(state.status, MonitorStatus::Up);
        assert_eq!(state.streak, 2);
        feed(&mut state, &[D], 600);
        assert_eq!(state.status, MonitorStatus::Down);
    }

    #[test]
    fn degraded_sits_between_up_and_down() {
        let mut state = MonitorState::default();
        let decisions = feed(&mut state, &[U, G, G, G], 0);
        assert_eq!(state.status, MonitorStatus::Degraded);
        assert_eq!(decisions[3].alert, AlertAction::Trigger);
        // Worse again: degraded to down updates the open alert.
        let decisions = feed(&mut state, &[D, D, D], 600);
        assert_eq!(state.status, MonitorStatus::Down);
        assert_eq!(decisions[2].alert, AlertAction::Trigger);
        // Better: down to degraded needs confirm_up results and keeps the alert open.
        let decisions = feed(&mut state, &[G, G], 1200);
        assert_eq!(state.status, MonitorStatus::Degraded);
        assert_eq!(decisions[1].alert, AlertAction::Trigger);
        let decisions = feed(&mut state, &[U, U], 1800);
        assert_eq!(decisions[1].alert, AlertAction::Resolve);
    }

    #[test]
    fn mixed_worse_results_count_together() {
        let mut state = MonitorState::default();
        feed(&mut state, &[U, G, D, D], 0);
        assert_eq!(state.status, MonitorStatus::Down);
    }

    #[test]
    fn a_first_failure_needs_confirming_too() {
        let mut state = MonitorState::default();
        feed(&mut state, &[D, D], 0);
        assert_eq!(state.status, MonitorStatus::Pending);
        let decisions = feed(&mut state, &[D], 120);
        assert_eq!(state.status, MonitorStatus::Down);
        assert_eq!(decisions[0].alert, AlertAction::Trigger);
    }

    struct Harness {
        state: MonitorState,
        minute: i64,
        triggers: usize,
        resolves: usize,
    }

    impl Harness {
        fn step(&mut self, status: CheckStatus, thresholds: Thresholds) -> Decision {
            let decision = self
                .state
                .observe(&result(status), at(self.minute * 60), thresholds);
            self.minute += 1;
            match decision.alert {
                AlertAction::Trigger => {
                    self.triggers += 1;
                    self.state.alert = AlertLink::Own;
                }
                AlertAction::Resolve => {
                    self.resolves += 1;
                    self.state.alert = AlertLink::None;
                }
                AlertAction::None => {}
            }
            decision
        }
    }

    #[test]
    fn flapping_pages_once_and_settles() {
        let thresholds = Thresholds {
            confirm: 1,
            confirm_up: 1,
            flap_threshold: 4,
        };
        let mut h = Harness {
            state: MonitorState::default(),
            minute: 0,
            triggers: 0,
            resolves: 0,
        };
        h.step(U, thresholds);
        // Flips 1 to 4 page and resolve as usual...
        for status in [D, U, D, U] {
            h.step(status, thresholds);
        }
        assert_eq!((h.triggers, h.resolves), (2, 2));
        // ...the fifth flip within the hour makes it flapping: one trigger, then no more pages
        // or resolutions while it flips.
        let decision = h.step(D, thresholds);
        assert!(decision.started_flapping);
        assert!(h.state.flapping);
        for status in [U, D, U, D, U] {
            h.step(status, thresholds);
        }
        assert_eq!((h.triggers, h.resolves), (3, 2));
        assert_eq!(h.state.alert, AlertLink::Own);
        // An hour of steady up results: the flips age out, flapping ends and the alert
        // resolves.
        h.minute += 60;
        h.step(U, thresholds);
        assert!(!h.state.flapping);
        assert_eq!((h.triggers, h.resolves), (3, 3));
        assert_eq!(h.state.alert, AlertLink::None);
    }

    #[test]
    fn a_steady_failure_does_not_trigger_again() {
        let mut state = MonitorState::default();
        let decisions = feed(&mut state, &[U, D, D, D, D, D], 0);
        let triggers = decisions
            .iter()
            .filter(|d| d.alert == AlertAction::Trigger)
            .count();
        assert_eq!(triggers, 1);
    }
}
