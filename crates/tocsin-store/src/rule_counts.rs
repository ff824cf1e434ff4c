//! Counts of the events stream rules matched, kept in the database so that a rule counts the
//! same after a restart and across replicas on one PostgreSQL. Each process adds what it
//! ingested (a batch of counts at a time, not one write per event); whichever process
//! evaluates a rule reads the sums, the time the rule last matched, and what its alert last
//! reported.
//!
//! A rule is named by a key that changes with its definition (`tocsin_engine::rules`), so a
//! changed rule starts afresh. Counts are per slot: a sixtieth of the rule's window
//! ([`CountScale::Bucket`]) for the sliding window, a whole window ([`CountScale::Window`]) for
//! the baseline.

use async_trait::async_trait;
use tocsin_core::Timestamp;

use crate::decode::{self, StoredRow};
use crate::sql::{check_text, Arg, Connection};
use crate::StoreError;

/// The most counts (and last-seen times) one [`RuleCountStore::add_rule_counts`] writes.
pub const MAX_RULE_COUNT_ROWS: usize = 10_000;
/// The most rules one [`RuleCountStore::forget_rules_except`] keeps.
pub const MAX_KEPT_RULES: usize = 1_000;

/// The width of a count's slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CountScale {
    /// A sixtieth of the rule's window.
    Bucket,
    /// The rule's whole window.
    Window,
}

impl CountScale {
    fn code(self) -> i64 {
        match self {
            CountScale::Bucket => 0,
            CountScale::Window => 1,
        }
    }
}

/// Matching events to add to a slot's count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleCountDelta {
    pub rule: String,
    pub scale: CountScale,
    /// The slot's start, in slot widths since the epoch.
    pub slot: i64,
    pub count: i64,
}

/// The newest matching event of a rule among those added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSeen {
    pub rule: String,
    pub at: Timestamp,
}

/// A rule as its evaluator finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleWatch {
    pub rule: String,
    /// When the rule was first watched (an absence rule counts its window from then).
    pub watched_since: Timestamp,
    pub last_seen: Option<Timestamp>,
    /// What its alert last reported: `None` before its first evaluation was recorded.
    pub reported: Option<bool>,
}

/// Stream rules' counts.
#[async_trait]
pub trait RuleCountStore: Send + Sync {
    /// Adds counts to their slots and moves rules' last-seen times forward, in one transaction
    /// (at most [`MAX_RULE_COUNT_ROWS`] of each).
    async fn add_rule_counts(
        &self,
        counts: &[RuleCountDelta],
        seen: &[RuleSeen],
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// The rule as stored; one not stored yet is recorded as watched from `now`.
    async fn watch_rule(&self, rule: &str, now: Timestamp) -> Result<RuleWatch, StoreError>;

    /// The sum of the rule's counts of one scale in slots `from <= slot < to`.
    async fn rule_count(
        &self,
        rule: &str,
        scale: CountScale,
        from: i64,
        to: i64,
    ) -> Result<i64, StoreError>;

    /// Records what the rule's alert now reports.
    async fn set_rule_reported(&self, rule: &str, reported: bool) -> Result<(), StoreError>;

    /// Deletes the rule's counts of one scale in slots before `before`; returns how many went.
    async fn prune_rule_counts(
        &self,
        rule: &str,
        scale: CountScale,
        before: i64,
    ) -> Result<u64, StoreError>;

    /// Deletes everything stored of rules other than `keep` (rules removed from the config, or
    /// changed); returns how many rules went. At most [`MAX_KEPT_RULES`] kept.
    async fn forget_rules_except(&self, keep: &[String]) -> Result<u64, StoreError>;
}

const WATCH_COLUMNS: &str = "rule, watched_since, last_seen, reported";

fn read_watch(row: &impl StoredRow) -> Result<RuleWatch, StoreError> {
    Ok(RuleWatch {
        rule: row.text("rule")?,
        watched_since: decode::timestamp("watched_since", row.integer("watched_since")?)?,
        last_seen: decode::optional_timestamp("last_seen", row.optional_integer("last_seen")?)?,
        reported: match row.optional_integer("reported")? {
            None => None,
            Some(0) => Some(false),
            Some(1) => Some(true),
            Some(other) => {
                return Err(StoreError::Corrupt(format!(
                    "rule reported state {other} is not 0 or 1"
                )))
            }
        },
    })
}

pub async fn add_rule_counts<C: Connection>(
    conn: &mut C,
    counts: &[RuleCountDelta],
    seen: &[RuleSeen],
    now: Timestamp,
) -> Result<(), StoreError> {
    if counts.len() > MAX_RULE_COUNT_ROWS || seen.len() > MAX_RULE_COUNT_ROWS {
        return Err(StoreError::Invalid(format!(
            "{} counts and {} last-seen times in one write; at most {MAX_RULE_COUNT_ROWS} of each",
            counts.len(),
            seen.len()
        )));
    }
    for delta in counts {
        check_text("rule", &delta.rule)?;
    }
    for seen in seen {
        check_text("rule", &seen.rule)?;
    }
    for delta in counts {
        conn.execute(
            "INSERT INTO rule_counts (rule, scale, slot, count) VALUES ($1, $2, $3, $4)
             ON CONFLICT (rule, scale, slot) DO UPDATE SET count = rule_counts.count + excluded.count",
            &[
                Arg::Text(&delta.rule),
                Arg::Integer(delta.scale.code()),
                Arg::Integer(delta.slot),
                Arg::Integer(delta.count),
            ],
        )
        .await?;
    }
    for seen in seen {
        conn.execute(
            "INSERT INTO rule_watch (rule, watched_since, last_seen) VALUES ($1, $2, $3)
             ON CONFLICT (rule) DO UPDATE SET last_seen = CASE
                 WHEN rule_watch.last_seen IS NULL OR rule_watch.last_seen < excluded.last_seen
                 THEN excluded.last_seen ELSE rule_watch.last_seen END",
            &[
                Arg::Text(&seen.rule),
                Arg::Integer(now.as_microsecond()),
                Arg::Integer(seen.at.as_microsecond()),
            ],
        )
        .await?;
    }
    Ok(())
}

pub async fn rule_watch<C: Connection>(
    conn: &mut C,
    rule: &str,
) -> Result<Option<RuleWatch>, StoreError> {
    check_text("rule", rule)?;
    let row = conn
        .fetch_optional(
            &format!("SELECT {WATCH_COLUMNS} FROM rule_watch WHERE rule = $1"),
            &[Arg::Text(rule)],
        )
        .await?;
    row.as_ref().map(read_watch).transpose()
}

pub async fn watch_rule<C: Connection>(
    conn: &mut C,
    rule: &str,
    now: Timestamp,
) -> Result<RuleWatch, StoreError> {
    check_text("rule", rule)?;
    conn.execute(
        "INSERT INTO rule_watch (rule, watched_since) VALUES ($1, $2)
         ON CONFLICT (rule) DO NOTHING",
        &[Arg::Text(rule), Arg::Integer(now.as_microsecond())],
    )
    .await?;
    rule_watch(conn, rule).await?.ok_or_else(|| {
        StoreError::Corrupt(format!("the watch of rule {rule} just written is gone"))
    })
}

pub async fn rule_count<C: Connection>(
    conn: &mut C,
    rule: &str,
    scale: CountScale,
    from: i64,
    to: i64,
) -> Result<i64, StoreError> {
    check_text("rule", rule)?;
    let row = conn
        .fetch_one(
            "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) AS total FROM rule_counts
             WHERE rule = $1 AND scale = $2 AND slot >= $3 AND slot < $4",
            &[
                Arg::Text(rule),
                Arg::Integer(scale.code()),
                Arg::Integer(from),
                Arg::Integer(to),
            ],
        )
        .await?;
    row.integer("total")
}

pub async fn set_rule_reported<C: Connection>(
    conn: &mut C,
    rule: &str,
    reported: bool,
) -> Result<(), StoreError> {
    check_text("rule", rule)?;
    conn.execute(
        "UPDATE rule_watch SET reported = $1 WHERE rule = $2",
        &[Arg::Integer(i64::from(reported)), Arg::Text(rule)],
    )
    .await?;
    Ok(())
}

pub async fn prune_rule_counts<C: Connection>(
    conn: &mut C,
    rule: &str,
    scale: CountScale,
    before: i64,
) -> Result<u64, StoreError> {
    check_text("rule", rule)?;
    conn.execute(
        "DELETE FROM rule_counts WHERE rule = $1 AND scale = $2 AND slot < $3",
        &[
            Arg::Text(rule),
            Arg::Integer(scale.code()),
            Arg::Integer(before),
        ],
    )
    .await
}

pub async fn forget_rules_except<C: Connection>(
    conn: &mut C,
    keep: &[String],
) -> Result<u64, StoreError> {
    if keep.len() > MAX_KEPT_RULES {
        return Err(StoreError::Invalid(format!(
            "{} rules to keep; at most {MAX_KEPT_RULES}",
            keep.len()
        )));
    }
    for rule in keep {
        check_text("rule", rule)?;
    }
    let kept = if keep.is_empty() {
        "TRUE".to_owned()
    } else {
        let placeholders: Vec<String> = (1..=keep.len()).map(|n| format!("${n}")).collect();
        format!("rule NOT IN ({})", placeholders.join(", "))
    };
    let args: Vec<Arg<'_>> = keep.iter().map(|rule| Arg::Text(rule)).collect();
    conn.execute(&format!("DELETE FROM rule_counts WHERE {kept}"), &args)
        .await?;
    conn.execute(&format!("DELETE FROM rule_watch WHERE {kept}"), &args)
        .await
}

/// Implements [`RuleCountStore`] for a backend with the functions of this module; the backend
/// defines `read!(self, |conn| body)` and `write!(self, "what", |conn| body)` first (see
/// `impl_store_with_shared_sql!`).
#[macro_export]
macro_rules! impl_rule_count_store {
    ($store:ty) => {
        #[$crate::async_trait]
        impl $crate::rule_counts::RuleCountStore for $store {
            async fn add_rule_counts(
                &self,
                counts: &[$crate::rule_counts::RuleCountDelta],
                seen: &[$crate::rule_counts::RuleSeen],
                now: tocsin_core::Timestamp,
            ) -> Result<(), $crate::StoreError> {
                if counts.is_empty() && seen.is_empty() {
                    return Ok(());
                }
                write!(self, "adding rule counts", |conn| {
                    $crate::rule_counts::add_rule_counts(conn, counts, seen, now)
                })
            }

            async fn watch_rule(
                &self,
                rule: &str,
                now: tocsin_core::Timestamp,
            ) -> Result<$crate::rule_counts::RuleWatch, $crate::StoreError> {
                let known = read!(self, |conn| $crate::rule_counts::rule_watch(conn, rule))?;
                if let Some(known) = known {
                    return Ok(known);
                }
                write!(self, "watching a rule", |conn| {
                    $crate::rule_counts::watch_rule(conn, rule, now)
                })
            }

            async fn rule_count(
                &self,
                rule: &str,
                scale: $crate::rule_counts::CountScale,
                from: i64,
                to: i64,
            ) -> Result<i64, $crate::StoreError> {
                read!(self, |conn| $crate::rule_counts::rule_count(
                    conn, rule, scale, from, to
                ))
            }

            async fn set_rule_reported(
                &self,
                rule: &str,
                reported: bool,
            ) -> Result<(), $crate::StoreError> {
                write!(self, "recording a rule's alert", |conn| {
                    $crate::rule_counts::set_rule_reported(conn, rule, reported)
                })
            }

            async fn prune_rule_counts(
                &self,
                rule: &str,
                scale: $crate::rule_counts::CountScale,
                before: i64,
            ) -> Result<u64, $crate::StoreError> {
                write!(self, "pruning rule counts", |conn| {
                    $crate::rule_counts::prune_rule_counts(conn, rule, scale, before)
                })
            }

            async fn forget_rules_except(
                &self,
                keep: &[String],
            ) -> Result<u64, $crate::StoreError> {
                write!(self, "forgetting removed rules", |conn| {
                    $crate::rule_counts::forget_rules_except(conn, keep)
                })
            }
        }
    };
}
