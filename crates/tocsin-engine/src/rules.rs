//! Rules over event streams (`[[rules]]`): rate rules (more than N matching events in a
//! window, optionally more than K times the trailing average) and absence rules (no matching
//! event for a window). Both open an alert through the ingest pipeline while their condition
//! holds, with the dedup key `rule:<id>`, and resolve it when it no longer does.
//!
//! The [`RuleSet`] sees every event this process commits ([`RuleObserver`] wraps the ingest
//! target, so it counts only what is durable) and is evaluated every [`RULE_TICK`] by
//! [`RuleRunner`]. Memory is bounded: a rule keeps [`WINDOW_BUCKETS`] counters for its
//! window and at most [`MAX_BASELINE_WINDOWS`] for its baseline, whatever the event rate.
//!
//! Counts live in memory: they start from zero when the process starts (an absence rule
//! counts its window from then), and with several replicas each counts the events it
//! ingested itself.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tocsin_core::{DedupKey, Event, EventAction, Integration, ServiceId, Severity, Timestamp};
use tocsin_store::{Counts, Inbound, IngestReport, ResolvePolicyOf, StoreError};
use tokio_util::sync::CancellationToken;

use crate::{Clock, IngestTarget, Ingestor};

/// How often rules are evaluated.
pub const RULE_TICK: Duration = Duration::from_secs(1);
/// Counters per rate window: the window slides in steps of a sixtieth of it.
pub const WINDOW_BUCKETS: usize = 60;
/// Whole windows a baseline averages over, at most (a longer `baseline_window` is cut).
pub const MAX_BASELINE_WINDOWS: usize = 1_440;

/// Which events a rule counts: every field that is set must match. Events produced by rules
/// themselves never count (nor those heartbeat signals produce inside the store, which the
/// rules never see).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventMatch {
    pub severity: Option<Severity>,
    pub source: Option<String>,
    /// `payload.component`, `.group` and `.class` of PagerDuty events (kept in the details).
    pub component: Option<String>,
    pub group: Option<String>,
    pub class: Option<String>,
}

impl EventMatch {
    pub fn matches(&self, event: &Event) -> bool {
        let detail = |key: &str, wanted: &Option<String>| match wanted {
            None => true,
            Some(wanted) => event.details.get(key).and_then(|value| value.as_str()) == Some(wanted),
        };
        self.severity
            .is_none_or(|severity| event.severity == severity)
            && self
                .source
                .as_ref()
                .is_none_or(|source| &event.source == source)
            && detail("component", &self.component)
            && detail("group", &self.group)
            && detail("class", &self.class)
    }
}

/// What a rule watches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleCondition {
    /// More than `above` matching events within the window; with a baseline, also more than
    /// `factor` times the average count per window over the trailing `window`.
    Rate {
        above: u64,
        baseline: Option<Baseline>,
    },
    /// No matching event within the window.
    Absence,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Baseline {
    pub factor: u32,
    pub window: Duration,
}

/// A rule from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleDefinition {
    pub id: String,
    pub service: ServiceId,
    pub condition: RuleCondition,
    pub matches: EventMatch,
    pub window: Duration,
}

impl RuleDefinition {
    /// `rule:<id>`.
    pub fn dedup_key(&self) -> String {
        format!("rule:{}", self.id)
    }
}

/// A change of a rule's alert that the pipeline must record.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleAlert {
    pub rule: String,
    /// Whether the rule now fires (trigger) or not (resolve).
    pub firing: bool,
    pub event: Event,
}

/// Every rule with its counters. Cheap to share.
#[derive(Debug, Default)]
pub struct RuleSet {
    rules: Mutex<Vec<RuleState>>,
}

#[derive(Debug)]
struct RuleState {
    definition: RuleDefinition,
    /// Start of the window's first bucket, in buckets since the epoch.
    counts: Buckets,
    /// Counts of whole windows before the current one (tumbling), newest last.
    history: VecDeque<u64>,
    /// The tumbling window `history` was last closed at (in windows since the epoch).
    history_window: i64,
    /// Matching events in the tumbling window in progress.
    history_open: u64,
    last_seen: Option<Timestamp>,
    /// When the rule started being evaluated (absence counts its window from then).
    watched_since: Timestamp,
    /// What the pipeline last recorded; `None` until the first evaluation is recorded (which
    /// may resolve an alert left open by an earlier process).
    reported: Option<bool>,
}

/// A ring of counters of equal width covering one window.
#[derive(Debug)]
struct Buckets {
    width_micros: i64,
    /// Index (in widths since the epoch) of the newest counter.
    newest: i64,
    counters: VecDeque<u64>,
}

impl Buckets {
    fn new(window: Duration, now: Timestamp) -> Buckets {
        let window = i64::try_from(window.as_micros()).unwrap_or(i64::MAX).max(1);
        let width_micros = (window / WINDOW_BUCKETS as i64).max(1);
        Buckets {
            width_micros,
            newest: now.as_microsecond().div_euclid(width_micros),
            counters: VecDeque::from(vec![0; WINDOW_BUCKETS]),
        }
    }

    /// Moves the ring forward to `now` (never back).
    fn advance(&mut self, now: Timestamp) {
        let index = now.as_microsecond().div_euclid(self.width_micros);
        let steps = index - self.newest;
        if steps <= 0 {
            return;
        }
        if steps >= WINDOW_BUCKETS as i64 {
            self.counters.iter_mut().for_each(|count| *count = 0);
        } else {
            for _ in 0..steps {
                self.counters.pop_front();
                self.counters.push_back(0);
            }
        }
        self.newest = index;
    }

    fn add(&mut self, at: Timestamp) {
        let index = at.as_microsecond().div_euclid(self.width_micros);
        if index > self.newest {
            self.advance(at);
        }
        let age = self.newest - index;
        if (0..WINDOW_BUCKETS as i64).contains(&age) {
            let slot = WINDOW_BUCKETS - 1 - age as usize;
            self.counters[slot] = self.counters[slot].saturating_add(1);
        }
    }

    fn total(&self) -> u64 {
        self.counters.iter().sum()
    }
}

impl RuleState {
    fn new(definition: RuleDefinition, now: Timestamp) -> RuleState {
        let window = window_micros(&definition);
        RuleState {
            counts: Buckets::new(definition.window, now),
            history: VecDeque::new(),
            history_window: now.as_microsecond().div_euclid(window),
            history_open: 0,
            last_seen: None,
            watched_since: now,
            reported: None,
            definition,
        }
    }

    fn baseline_windows(&self) -> usize {
        match self.definition.condition {
            RuleCondition::Rate {
                baseline: Some(baseline),
                ..
            } => {
                let windows =
                    baseline.window.as_micros() / self.definition.window.as_micros().max(1);
                usize::try_from(windows)
                    .unwrap_or(MAX_BASELINE_WINDOWS)
                    .clamp(1, MAX_BASELINE_WINDOWS)
            }
            _ => 0,
        }
    }

    /// Closes the tumbling windows that ended by `now` into the history.
    fn roll_history(&mut self, now: Timestamp) {
        let keep = self.baseline_windows();
        if keep == 0 {
            return;
        }
        let current = now
            .as_microsecond()
            .div_euclid(window_micros(&self.definition));
        let closed = current - self.history_window;
        if closed <= 0 {
            return;
        }
        self.history.push_back(self.history_open);
        self.history_open = 0;
        // Windows without any event in between.
        let empty = usize::try_from(closed - 1).unwrap_or(usize::MAX).min(keep);
        self.history.extend(std::iter::repeat_n(0, empty));
        while self.history.len() > keep {
            self.history.pop_front();
        }
        self.history_window = current;
    }

    fn observe(&mut self, event: &Event) {
        let at = event.received_at;
        self.roll_history(at);
        self.counts.add(at);
        self.history_open = self.history_open.saturating_add(1);
        self.last_seen = Some(self.last_seen.map_or(at, |seen| seen.max(at)));
    }

    /// Whether the condition holds at `now`, and the event that would say so.
    fn evaluate(&mut self, now: Timestamp) -> (bool, Event) {
        let definition = self.definition.clone();
        let window = tocsin_core::heartbeat::format_duration(definition.window);
        match definition.condition {
            RuleCondition::Rate { above, baseline } => {
                self.counts.advance(now);
                let count = self.counts.total();
                self.roll_history(now);
                let average = (!self.history.is_empty())
                    .then(|| self.history.iter().sum::<u64>() as f64 / self.history.len() as f64);
                let over_baseline = match (baseline, average) {
                    (Some(baseline), Some(average)) => {
                        count as f64 > f64::from(baseline.factor) * average
                    }
                    // A baseline not measured yet (the first window after start-up): a busy
                    // service is not a spike.
                    (Some(_), None) => false,
                    (None, _) => true,
                };
                let firing = count > above && over_baseline;
                let mut details = json!({
                    "rule": definition.id,
                    "kind": "rate",
                    "count": count,
                    "window": window,
                    "above": above,
                });
                if let Some(baseline) = baseline {
                    details["baseline_factor"] = json!(baseline.factor);
                    details["baseline_average"] = json!(average);
                }
                let summary = if firing {
                    format!(
                        "Rule {}: {count} matching events in {window} (more than {above})",
                        definition.id
                    )
                } else {
                    format!("Rule {}: event rate back to normal", definition.id)
                };
                (firing, self.event(firing, summary, details, now))
            }
            RuleCondition::Absence => {
                let since = self.last_seen.unwrap_or(self.watched_since);
                let quiet = now.duration_since(since)
                    >= jiff::SignedDuration::try_from(definition.window)
                        .unwrap_or(jiff::SignedDuration::MAX);
                let details = json!({
                    "rule": definition.id,
                    "kind": "absence",
                    "window": window,
                    "last_seen": self.last_seen.map(|at| at.to_string()),
                    "watched_since": self.watched_since.to_string(),
                });
                let summary = if quiet {
                    match self.last_seen {
                        Some(seen) => format!(
                            "Rule {}: no matching event for {window} (last one at {seen})",
                            definition.id
                        ),
                        None => format!(
                            "Rule {}: no matching event for {window} (none since {})",
                            definition.id, self.watched_since
                        ),
                    }
                } else {
                    format!("Rule {}: matching events arrive again", definition.id)
                };
                (quiet, self.event(quiet, summary, details, now))
            }
        }
    }

    fn event(
        &self,
        firing: bool,
        summary: String,
        details: serde_json::Value,
        now: Timestamp,
    ) -> Event {
        Event {
            service: self.definition.service.clone(),
            integration: Integration::Rule,
            action: if firing {
                EventAction::Trigger
            } else {
                EventAction::Resolve
            },
            dedup_key: DedupKey::parse(&self.definition.dedup_key())
                .unwrap_or_else(|_| DedupKey::parse("rule").expect("a short key")),
            severity: Severity::Error,
            summary,
            source: format!("rule {}", self.definition.id),
            occurred_at: Some(now),
            received_at: now,
            details,
        }
    }
}

fn window_micros(definition: &RuleDefinition) -> i64 {
    i64::try_from(definition.window.as_micros())
        .unwrap_or(i64::MAX)
        .max(1)
}

impl RuleSet {
    pub fn new(definitions: Vec<RuleDefinition>, now: Timestamp) -> RuleSet {
        let set = RuleSet::default();
        set.replace(definitions, now);
        set
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<RuleState>> {
        self.rules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Swaps in the rules of a new config: a rule whose definition is unchanged keeps its
    /// counters and reported state; a new or changed one starts afresh.
    pub fn replace(&self, definitions: Vec<RuleDefinition>, now: Timestamp) {
        let mut rules = self.lock();
        let mut old: Vec<RuleState> = std::mem::take(&mut *rules);
        for definition in definitions {
            match old.iter().position(|state| state.definition == definition) {
                Some(index) => rules.push(old.swap_remove(index)),
                None => rules.push(RuleState::new(definition, now)),
            }
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Counts the committed alert events the rules match.
    pub fn observe<'a>(&self, events: impl IntoIterator<Item = &'a Event>) {
        let mut rules = self.lock();
        if rules.is_empty() {
            return;
        }
        for event in events {
            if event.integration == Integration::Rule {
                continue;
            }
            for rule in rules.iter_mut() {
                if rule.definition.service == event.service
                    && rule.definition.matches.matches(event)
                {
                    rule.observe(event);
                }
            }
        }
    }

    /// Evaluates every rule at `now` and returns the alert changes to record: a trigger for a
    /// rule whose condition began to hold, a resolve for one whose condition ended (and, on
    /// the first evaluation, the state of every rule). Call [`RuleSet::confirm`] once the
    /// pipeline has committed one; until then it is returned again.
    pub fn tick(&self, now: Timestamp) -> Vec<RuleAlert> {
        let mut rules = self.lock();
        let mut changes = Vec::new();
        for rule in rules.iter_mut() {
            let (firing, event) = rule.evaluate(now);
            if rule.reported != Some(firing) {
                changes.push(RuleAlert {
                    rule: rule.definition.id.clone(),
                    firing,
                    event,
                });
            }
        }
        changes
    }

    /// Records that the pipeline committed a rule's alert change.
    pub fn confirm(&self, rule: &str, firing: bool) {
        if let Some(state) = self
            .lock()
            .iter_mut()
            .find(|state| state.definition.id == rule)
        {
            state.reported = Some(firing);
        }
    }
}

/// An [`IngestTarget`] that hands every committed batch's alert events to the rules.
pub struct RuleObserver<T: ?Sized> {
    inner: Arc<T>,
    rules: Arc<RuleSet>,
}

impl<T: ?Sized> RuleObserver<T> {
    pub fn new(inner: Arc<T>, rules: Arc<RuleSet>) -> RuleObserver<T> {
        RuleObserver { inner, rules }
    }
}

impl<T: IngestTarget + ?Sized> IngestTarget for RuleObserver<T> {
    async fn ingest<'a>(
        &'a self,
        batch: &'a [Inbound],
        resolve_policy: ResolvePolicyOf<'a>,
    ) -> Result<IngestReport, StoreError> {
        let report = self.inner.ingest(batch, resolve_policy).await?;
        self.rules
            .observe(batch.iter().filter_map(|item| match item {
                Inbound::Alert(event) => Some(event),
                _ => None,
            }));
        Ok(report)
    }

    fn counts(&self) -> impl Future<Output = Result<Counts, StoreError>> + Send + '_ {
        self.inner.counts()
    }
}

/// Evaluates the rules every [`RULE_TICK`] and submits their alert changes.
pub struct RuleRunner {
    rules: Arc<RuleSet>,
    ingestor: Ingestor,
    clock: Arc<dyn Clock>,
}

impl RuleRunner {
    pub fn new(rules: Arc<RuleSet>, ingestor: Ingestor, clock: Arc<dyn Clock>) -> RuleRunner {
        RuleRunner {
            rules,
            ingestor,
            clock,
        }
    }

    /// One evaluation: submits the changes and confirms those that were committed. Returns
    /// how many were.
    pub async fn run_once(&self) -> usize {
        let changes = self.rules.tick(self.clock.now());
        let mut recorded = 0;
        for change in changes {
            match self
                .ingestor
                .submit(vec![Inbound::Alert(change.event)])
                .await
            {
                Ok(()) => {
                    self.rules.confirm(&change.rule, change.firing);
                    recorded += 1;
                }
                Err(error) => tracing::warn!(
                    rule = %change.rule,
                    error = %crate::error_chain(&error),
                    "cannot record a rule's alert; will retry"
                ),
            }
        }
        recorded
    }

    pub async fn run_until(&self, stop: CancellationToken) {
        loop {
            self.run_once().await;
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(RULE_TICK) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests;
