//! Rules over event streams (`[[rules]]`): rate rules (more than N matching events in a
//! window, optionally more than K times the trailing average) and absence rules (no matching
//! event for a window). Both open an alert through the ingest pipeline while their condition
//! holds, with the dedup key `rule:<id>`, and resolve it when it no longer does.
//!
//! Counting is split in two, so that ingest stays cheap and a rule counts the same after a
//! restart and across replicas on one database:
//!
//! - The [`RuleSet`] sees every event this process commits ([`RuleObserver`] wraps the ingest
//!   target, so it counts only what is durable) and adds up the matches in memory, per slot of
//!   the rule's window ([`WINDOW_BUCKETS`] per window, and whole windows for a baseline).
//!   [`RuleRunner`] writes what was added to the store every [`RULE_TICK`], in one transaction
//!   for all rules (`tocsin_store::rule_counts`); a process that stops writes what it holds
//!   first. A crash loses at most the last tick's counts.
//! - [`RuleEvaluator`] is due work (`rules.evaluate`, every [`RULE_TICK`]): one process at a
//!   time evaluates every rule from the stored counts of all processes, submits the alert
//!   changes, and records what each rule's alert reports, so two replicas fire a rule once.
//!
//! A rule is stored under its id and a fingerprint of its definition: a changed rule starts
//! counting afresh, an unchanged one keeps its counts through reloads and restarts. An
//! absence rule counts its window from when the rule was first watched.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use serde_json::json;
use tocsin_core::{DedupKey, Event, EventAction, Integration, ServiceId, Severity, Timestamp};
use tocsin_store::due::{ClaimedDueItem, DueKey, DueKind, NewDueItem};
use tocsin_store::rule_counts::{
    CountScale, RuleCountDelta, RuleSeen, RuleWatch, MAX_RULE_COUNT_ROWS,
};
use tocsin_store::{Counts, Inbound, IngestReport, ResolvePolicyOf, Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::due::{DueError, DueHandler, DueOutcome};
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

/// A rule in force: its definition and the key its counts are stored under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveRule {
    pub definition: RuleDefinition,
    /// `<id>@<fingerprint of the definition>`.
    pub key: Arc<str>,
}

impl ActiveRule {
    fn new(definition: RuleDefinition) -> ActiveRule {
        // FNV-1a of the definition's debug form: the same in every process of one version.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in format!("{definition:?}").bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        let key = format!("{}@{hash:016x}", definition.id);
        ActiveRule {
            definition,
            key: Arc::from(key),
        }
    }

    fn window_micros(&self) -> i64 {
        window_micros(&self.definition)
    }

    /// The width of a sliding window's slot.
    fn bucket_micros(&self) -> i64 {
        (self.window_micros() / WINDOW_BUCKETS as i64).max(1)
    }

    /// Whole windows the baseline averages over (0 without a baseline).
    fn baseline_windows(&self) -> i64 {
        match self.definition.condition {
            RuleCondition::Rate {
                baseline: Some(baseline),
                ..
            } => {
                let windows =
                    baseline.window.as_micros() / self.definition.window.as_micros().max(1);
                i64::try_from(windows)
                    .unwrap_or(MAX_BASELINE_WINDOWS as i64)
                    .clamp(1, MAX_BASELINE_WINDOWS as i64)
            }
            _ => 0,
        }
    }
}

/// A count's slot: (rule key, scale, slot).
type SlotKey = (Arc<str>, CountScale, i64);

/// Counts added in memory and not yet written, by slot.
#[derive(Debug, Default)]
struct Pending {
    counts: HashMap<SlotKey, i64>,
    seen: HashMap<Arc<str>, Timestamp>,
}

/// Pending counts kept at most, whatever the rate (a slot is a sixtieth of a window, so this
/// is reached only when the store cannot be written for a long time); beyond it the oldest
/// slots' counts are dropped, with a warning.
pub const MAX_PENDING_COUNTS: usize = 50_000;

/// The rules in force and the counts this process added since it last wrote them. Cheap to
/// share.
#[derive(Debug, Default)]
pub struct RuleSet {
    rules: ArcSwap<Vec<ActiveRule>>,
    pending: Mutex<Pending>,
}

fn window_micros(definition: &RuleDefinition) -> i64 {
    i64::try_from(definition.window.as_micros())
        .unwrap_or(i64::MAX)
        .max(1)
}

impl RuleSet {
    pub fn new(definitions: Vec<RuleDefinition>) -> RuleSet {
        let set = RuleSet::default();
        set.replace(definitions);
        set
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Swaps in the rules of a new config: a rule whose definition is unchanged keeps its
    /// stored counts and reported state (its key is the same); a new or changed one starts
    /// afresh.
    pub fn replace(&self, definitions: Vec<RuleDefinition>) {
        self.rules.store(Arc::new(
            definitions.into_iter().map(ActiveRule::new).collect(),
        ));
    }

    /// The rules in force.
    pub fn rules(&self) -> Arc<Vec<ActiveRule>> {
        self.rules.load_full()
    }

    pub fn len(&self) -> usize {
        self.rules.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.load().is_empty()
    }

    /// Counts the committed alert events the rules match.
    pub fn observe<'a>(&self, events: impl IntoIterator<Item = &'a Event>) {
        let rules = self.rules.load();
        if rules.is_empty() {
            return;
        }
        let mut pending = None;
        for event in events {
            if event.integration == Integration::Rule {
                continue;
            }
            for rule in rules.iter() {
                if rule.definition.service != event.service
                    || !rule.definition.matches.matches(event)
                {
                    continue;
                }
                let pending = pending.get_or_insert_with(|| self.pending());
                let at = event.received_at;
                let micros = at.as_microsecond();
                let bucket = micros.div_euclid(rule.bucket_micros());
                *pending
                    .counts
                    .entry((Arc::clone(&rule.key), CountScale::Bucket, bucket))
                    .or_insert(0) += 1;
                if rule.baseline_windows() > 0 {
                    let window = micros.div_euclid(rule.window_micros());
                    *pending
                        .counts
                        .entry((Arc::clone(&rule.key), CountScale::Window, window))
                        .or_insert(0) += 1;
                }
                let seen = pending.seen.entry(Arc::clone(&rule.key)).or_insert(at);
                *seen = (*seen).max(at);
            }
        }
        if let Some(mut pending) = pending {
            bound(&mut pending);
        }
    }

    /// Writes the counts added since the last write to the store (in transactions of up to
    /// [`MAX_RULE_COUNT_ROWS`]); on an error they are kept for the next write. Returns the
    /// slots written.
    pub async fn flush(&self, store: &dyn Store, now: Timestamp) -> Result<usize, StoreError> {
        let taken = std::mem::take(&mut *self.pending());
        let counts: Vec<(SlotKey, i64)> = taken.counts.into_iter().collect();
        let seen: Vec<(Arc<str>, Timestamp)> = taken.seen.into_iter().collect();
        let part = |len: usize, chunk: usize| {
            (chunk * MAX_RULE_COUNT_ROWS).min(len)..((chunk + 1) * MAX_RULE_COUNT_ROWS).min(len)
        };
        let chunks = counts.len().max(seen.len()).div_ceil(MAX_RULE_COUNT_ROWS);
        let mut written = 0;
        for chunk in 0..chunks {
            let these_counts = &counts[part(counts.len(), chunk)];
            let these_seen = &seen[part(seen.len(), chunk)];
            let deltas: Vec<RuleCountDelta> = these_counts
                .iter()
                .map(|((rule, scale, slot), count)| RuleCountDelta {
                    rule: rule.to_string(),
                    scale: *scale,
                    slot: *slot,
                    count: *count,
                })
                .collect();
            let seen_rows: Vec<RuleSeen> = these_seen
                .iter()
                .map(|(rule, at)| RuleSeen {
                    rule: rule.to_string(),
                    at: *at,
                })
                .collect();
            if let Err(error) = store.add_rule_counts(&deltas, &seen_rows, now).await {
                // The failed transaction stored nothing; earlier ones are stored. Keep the rest
                // for the next write.
                let mut pending = self.pending();
                let from = (chunk * MAX_RULE_COUNT_ROWS).min(counts.len());
                for (key, count) in counts.into_iter().skip(from) {
                    *pending.counts.entry(key).or_insert(0) += count;
                }
                let from = (chunk * MAX_RULE_COUNT_ROWS).min(seen.len());
                for (rule, at) in seen.into_iter().skip(from) {
                    let seen = pending.seen.entry(rule).or_insert(at);
                    *seen = (*seen).max(at);
                }
                bound(&mut pending);
                return Err(error);
            }
            written += deltas.len();
        }
        Ok(written)
    }
}

/// Beyond [`MAX_PENDING_COUNTS`], drops the oldest slots down to nine tenths of it (so that
/// the next events do not each sort them again).
fn bound(pending: &mut Pending) {
    if pending.counts.len() <= MAX_PENDING_COUNTS {
        return;
    }
    let mut slots: Vec<SlotKey> = pending.counts.keys().cloned().collect();
    slots.sort_by_key(|(_, _, slot)| *slot);
    let excess = pending.counts.len() - MAX_PENDING_COUNTS * 9 / 10;
    for key in slots.into_iter().take(excess) {
        pending.counts.remove(&key);
    }
    tracing::warn!(
        dropped = excess,
        "rule counts could not be written for a long time; the oldest were dropped"
    );
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

/// Writes this process's rule counts to the store every [`RULE_TICK`], and once more when it
/// stops.
pub struct RuleRunner {
    rules: Arc<RuleSet>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

impl RuleRunner {
    pub fn new(rules: Arc<RuleSet>, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> RuleRunner {
        RuleRunner {
            rules,
            store,
            clock,
        }
    }

    /// Writes what was counted since the last write; returns the slots written.
    pub async fn run_once(&self) -> usize {
        match self
            .rules
            .flush(self.store.as_ref(), self.clock.now())
            .await
        {
            Ok(written) => written,
            Err(error) => {
                tracing::warn!(
                    error = %crate::error_chain(&error),
                    "cannot store the rules' counts; kept for the next try"
                );
                0
            }
        }
    }

    /// Writes every [`RULE_TICK`] until `stop` is cancelled; then writes what is left. The
    /// ingest writer drains before this stops, so its last batches are counted.
    pub async fn run_until(&self, stop: CancellationToken) {
        loop {
            self.run_once().await;
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(RULE_TICK) => {}
            }
        }
        self.run_once().await;
    }
}

/// The recurring due-work item that evaluates the rules.
pub const RULES_EVALUATE: DueKind = DueKind::from_static("rules.evaluate");
/// How often the evaluator deletes counts that no window or baseline reads any more.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Where the evaluator sends rules' alert changes.
pub trait RuleAlertSink: Send + Sync + 'static {
    fn record(&self, event: Event) -> impl Future<Output = Result<(), String>> + Send + '_;
}

impl RuleAlertSink for Ingestor {
    async fn record(&self, event: Event) -> Result<(), String> {
        self.submit(vec![Inbound::Alert(event)])
            .await
            .map_err(|error| crate::error_chain(&error))
    }
}

/// Evaluates every rule from the stored counts of all processes, as the due-work item
/// [`RULES_EVALUATE`] (one process at a time), and sends the alert changes.
pub struct RuleEvaluator<S = Ingestor> {
    rules: Arc<RuleSet>,
    store: Arc<dyn Store>,
    sink: S,
    pruned_at: Mutex<Option<Timestamp>>,
}

impl<S: RuleAlertSink> RuleEvaluator<S> {
    pub fn new(rules: Arc<RuleSet>, store: Arc<dyn Store>, sink: S) -> RuleEvaluator<S> {
        RuleEvaluator {
            rules,
            store,
            sink,
            pruned_at: Mutex::new(None),
        }
    }

    /// Evaluates every rule at `now` (after writing this process's counts): sends a trigger
    /// for a rule whose condition began to hold, a resolve for one whose condition ended (and,
    /// on a rule's first evaluation, its state), and records each one sent. Returns the
    /// changes sent. A rule that cannot be evaluated is logged and evaluated again next time.
    pub async fn run_at(&self, now: Timestamp) -> Result<Vec<RuleAlert>, StoreError> {
        let store = self.store.as_ref();
        if let Err(error) = self.rules.flush(store, now).await {
            tracing::warn!(error = %crate::error_chain(&error), "cannot store the rules' counts; kept for the next try");
        }
        let rules = self.rules.rules();
        let mut sent = Vec::new();
        for rule in rules.iter() {
            match self.evaluate(rule, now).await {
                Ok(Some(change)) => sent.push(change),
                Ok(None) => {}
                Err(error) => tracing::warn!(
                    rule = %rule.definition.id, error = %error,
                    "cannot evaluate a rule; will retry"
                ),
            }
        }
        let prune = {
            let mut pruned_at = self
                .pruned_at
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let due = pruned_at.is_none_or(|at| {
                now.duration_since(at)
                    >= jiff::SignedDuration::try_from(PRUNE_EVERY).unwrap_or_default()
            });
            if due {
                *pruned_at = Some(now);
            }
            due
        };
        if prune {
            self.prune(&rules, now).await?;
        }
        Ok(sent)
    }

    async fn evaluate(
        &self,
        rule: &ActiveRule,
        now: Timestamp,
    ) -> Result<Option<RuleAlert>, String> {
        let store = self.store.as_ref();
        let chain = |error: StoreError| crate::error_chain(&error);
        let watch = store.watch_rule(&rule.key, now).await.map_err(chain)?;
        let (firing, event) = match rule.definition.condition {
            RuleCondition::Rate { above, baseline } => {
                let bucket = now.as_microsecond().div_euclid(rule.bucket_micros());
                let count = store
                    .rule_count(
                        &rule.key,
                        CountScale::Bucket,
                        bucket - (WINDOW_BUCKETS as i64 - 1),
                        bucket + 1,
                    )
                    .await
                    .map_err(chain)?;
                let average = match baseline {
                    Some(_) => {
                        let current = now.as_microsecond().div_euclid(rule.window_micros());
                        let first = watch
                            .watched_since
                            .as_microsecond()
                            .div_euclid(rule.window_micros());
                        let windows = (current - first).clamp(0, rule.baseline_windows());
                        if windows == 0 {
                            None
                        } else {
                            let total = store
                                .rule_count(
                                    &rule.key,
                                    CountScale::Window,
                                    current - windows,
                                    current,
                                )
                                .await
                                .map_err(chain)?;
                            Some(total as f64 / windows as f64)
                        }
                    }
                    None => None,
                };
                rate_alert(
                    &rule.definition,
                    above,
                    baseline,
                    u64::try_from(count).unwrap_or(0),
                    average,
                    now,
                )
            }
            RuleCondition::Absence => absence_alert(&rule.definition, &watch, now),
        };
        if watch.reported == Some(firing) {
            return Ok(None);
        }
        self.sink.record(event.clone()).await?;
        store
            .set_rule_reported(&rule.key, firing)
            .await
            .map_err(chain)?;
        Ok(Some(RuleAlert {
            rule: rule.definition.id.clone(),
            firing,
            event,
        }))
    }

    /// Deletes counts no window or baseline reads any more, and everything of rules no longer
    /// in force.
    async fn prune(&self, rules: &[ActiveRule], now: Timestamp) -> Result<(), StoreError> {
        let store = self.store.as_ref();
        for rule in rules {
            let bucket = now.as_microsecond().div_euclid(rule.bucket_micros());
            store
                .prune_rule_counts(
                    &rule.key,
                    CountScale::Bucket,
                    bucket - WINDOW_BUCKETS as i64,
                )
                .await?;
            let window = now.as_microsecond().div_euclid(rule.window_micros());
            store
                .prune_rule_counts(
                    &rule.key,
                    CountScale::Window,
                    window - rule.baseline_windows() - 1,
                )
                .await?;
        }
        if rules.len() <= tocsin_store::rule_counts::MAX_KEPT_RULES {
            let keep: Vec<String> = rules.iter().map(|rule| rule.key.to_string()).collect();
            let forgotten = store.forget_rules_except(&keep).await?;
            if forgotten > 0 {
                tracing::debug!(forgotten, "forgot the counts of rules no longer in force");
            }
        }
        Ok(())
    }
}

#[async_trait]
impl<S: RuleAlertSink> DueHandler for RuleEvaluator<S> {
    fn kind(&self) -> DueKind {
        RULES_EVALUATE
    }

    async fn run(&self, _item: &ClaimedDueItem, now: Timestamp) -> Result<DueOutcome, DueError> {
        self.run_at(now).await?;
        Ok(DueOutcome::RunAgainAt(
            now.checked_add(RULE_TICK).unwrap_or(Timestamp::MAX),
        ))
    }

    /// Never gives up: it retries at the longest backoff.
    fn max_attempts(&self) -> Option<i64> {
        None
    }

    fn recurring(&self, now: Timestamp) -> Option<NewDueItem> {
        let key = DueKey::parse("all").ok()?;
        NewDueItem::new(RULES_EVALUATE, key, &json!({}), now).ok()
    }
}

/// A rate rule's state at `now` from its count in the window and its baseline average.
fn rate_alert(
    definition: &RuleDefinition,
    above: u64,
    baseline: Option<Baseline>,
    count: u64,
    average: Option<f64>,
    now: Timestamp,
) -> (bool, Event) {
    let window = tocsin_core::heartbeat::format_duration(definition.window);
    let over_baseline = match (baseline, average) {
        (Some(baseline), Some(average)) => count as f64 > f64::from(baseline.factor) * average,
        // A baseline not measured yet (the first window a rule is watched): a busy service is
        // not a spike.
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
    (
        firing,
        rule_event(definition, firing, summary, details, now),
    )
}

/// An absence rule's state at `now`.
fn absence_alert(definition: &RuleDefinition, watch: &RuleWatch, now: Timestamp) -> (bool, Event) {
    let window = tocsin_core::heartbeat::format_duration(definition.window);
    let since = watch.last_seen.unwrap_or(watch.watched_since);
    let quiet = now.duration_since(since)
        >= jiff::SignedDuration::try_from(definition.window).unwrap_or(jiff::SignedDuration::MAX);
    let details = json!({
        "rule": definition.id,
        "kind": "absence",
        "window": window,
        "last_seen": watch.last_seen.map(|at| at.to_string()),
        "watched_since": watch.watched_since.to_string(),
    });
    let summary = if quiet {
        match watch.last_seen {
            Some(seen) => format!(
                "Rule {}: no matching event for {window} (last one at {seen})",
                definition.id
            ),
            None => format!(
                "Rule {}: no matching event for {window} (none since {})",
                definition.id, watch.watched_since
            ),
        }
    } else {
        format!("Rule {}: matching events arrive again", definition.id)
    };
    (quiet, rule_event(definition, quiet, summary, details, now))
}

fn rule_event(
    definition: &RuleDefinition,
    firing: bool,
    summary: String,
    details: serde_json::Value,
    now: Timestamp,
) -> Event {
    Event {
        service: definition.service.clone(),
        integration: Integration::Rule,
        action: if firing {
            EventAction::Trigger
        } else {
            EventAction::Resolve
        },
        dedup_key: DedupKey::parse(&definition.dedup_key())
            .unwrap_or_else(|_| DedupKey::parse("rule").expect("a short key")),
        severity: Severity::Error,
        summary,
        source: format!("rule {}", definition.id),
        occurred_at: Some(now),
        received_at: now,
        details,
    }
}

#[cfg(test)]
mod tests;
