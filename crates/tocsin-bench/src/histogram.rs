//! A latency histogram of fixed size: log-linear buckets over microseconds, exact below 256 µs
//! and within 1/128 (0.8 %) above, so memory stays the same however many requests a run sends.

use std::time::Duration;

use serde_json::{json, Value};

/// Bits of precision inside each power of two.
const SUB_BUCKET_BITS: u32 = 7;
const SUB_BUCKETS: u64 = 1 << SUB_BUCKET_BITS;
/// Values below this are stored exactly, one bucket per microsecond.
const LINEAR_LIMIT: u64 = SUB_BUCKETS * 2;
const LINEAR_BITS: u32 = SUB_BUCKET_BITS + 1;
const BUCKETS: usize = LINEAR_LIMIT as usize + (64 - LINEAR_BITS as usize) * SUB_BUCKETS as usize;

#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    sum_micros: u128,
    min_micros: u64,
    max_micros: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
            sum_micros: 0,
            min_micros: u64::MAX,
            max_micros: 0,
        }
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.total)
            .field("max_micros", &self.max_micros)
            .finish()
    }
}

impl Histogram {
    pub fn record(&mut self, value: Duration) {
        let micros = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
        self.counts[bucket_of(micros)] += 1;
        self.total += 1;
        self.sum_micros += u128::from(micros);
        self.min_micros = self.min_micros.min(micros);
        self.max_micros = self.max_micros.max(micros);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
        self.total += other.total;
        self.sum_micros += other.sum_micros;
        self.min_micros = self.min_micros.min(other.min_micros);
        self.max_micros = self.max_micros.max(other.max_micros);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The smallest recorded value `v` such that at least `percent` % of the values are `<= v`,
    /// reported as the upper edge of its bucket (never above the largest value recorded).
    pub fn percentile(&self, percent: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        let rank = ((percent / 100.0) * self.total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let upper = upper_edge_of(index).min(self.max_micros);
                return Duration::from_micros(upper.max(self.min_micros));
            }
        }
        Duration::from_micros(self.max_micros)
    }

    pub fn max(&self) -> Duration {
        Duration::from_micros(self.max_micros)
    }

    pub fn mean(&self) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        let mean = self.sum_micros / u128::from(self.total);
        Duration::from_micros(u64::try_from(mean).unwrap_or(u64::MAX))
    }
}

/// A duration in milliseconds, rounded to the microsecond.
pub fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

impl Histogram {
    /// `{"count", <each name>: its percentile, "max", "mean"}`, durations in milliseconds;
    /// `percentiles` pairs a name (`p99`) with its percent (`99.0`).
    pub fn summary_json(&self, percentiles: &[(&str, f64)]) -> Value {
        let mut summary = json!({ "count": self.count() });
        for (name, percent) in percentiles {
            summary[*name] = json!(millis(self.percentile(*percent)));
        }
        summary["max"] = json!(millis(self.max()));
        summary["mean"] = json!(millis(self.mean()));
        summary
    }

    /// `p50 1.20  p99 3.40  max 5.00  mean 1.50`, in milliseconds with `decimals` decimals.
    pub fn summary_line(&self, percentiles: &[(&str, f64)], decimals: usize) -> String {
        let mut parts: Vec<String> = percentiles
            .iter()
            .map(|(name, percent)| {
                format!("{name} {:.decimals$}", millis(self.percentile(*percent)))
            })
            .collect();
        parts.push(format!("max {:.decimals$}", millis(self.max())));
        parts.push(format!("mean {:.decimals$}", millis(self.mean())));
        parts.join("  ")
    }
}

fn bucket_of(micros: u64) -> usize {
    if micros < LINEAR_LIMIT {
        return micros as usize;
    }
    let exponent = 63 - micros.leading_zeros();
    let shift = exponent - SUB_BUCKET_BITS;
    let mantissa = (micros >> shift) - SUB_BUCKETS;
    LINEAR_LIMIT as usize
        + (exponent - LINEAR_BITS) as usize * SUB_BUCKETS as usize
        + mantissa as usize
}

fn upper_edge_of(index: usize) -> u64 {
    let index = index as u64;
    if index < LINEAR_LIMIT {
        return index;
    }
    let offset = index - LINEAR_LIMIT;
    let exponent = offset / SUB_BUCKETS + u64::from(LINEAR_BITS);
    let mantissa = offset % SUB_BUCKETS + SUB_BUCKETS;
    let shift = exponent - u64::from(SUB_BUCKET_BITS);
    let upper = (u128::from(mantissa + 1) << shift) - 1;
    u64::try_from(upper).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut previous = 0;
        for micros in [
            0,
            1,
            255,
            256,
            257,
            511,
            512,
            1_000,
            65_535,
            1 << 40,
            u64::MAX,
        ] {
            let index = bucket_of(micros);
            assert!(index < BUCKETS, "{micros} -> {index}");
            assert!(index >= previous, "{micros} is out of order");
            assert!(upper_edge_of(index) >= micros, "{micros} above its bucket");
            previous = index;
        }
    }

    #[test]
    fn relative_error_stays_below_one_percent() {
        for micros in (256..2_000_000).step_by(997) {
            let upper = upper_edge_of(bucket_of(micros));
            let error = (upper - micros) as f64 / micros as f64;
            assert!(error < 0.008, "{micros}: upper edge {upper}");
        }
    }

    #[test]
    fn percentiles_of_a_uniform_distribution() {
        let mut histogram = Histogram::default();
        for micros in 1..=10_000 {
            histogram.record(Duration::from_micros(micros));
        }
        let p50 = histogram.percentile(50.0).as_micros() as f64;
        let p99 = histogram.percentile(99.0).as_micros() as f64;
        assert!((p50 - 5_000.0).abs() / 5_000.0 < 0.01, "p50 {p50}");
        assert!((p99 - 9_900.0).abs() / 9_900.0 < 0.01, "p99 {p99}");
        assert_eq!(histogram.percentile(100.0), Duration::from_micros(10_000));
        assert_eq!(histogram.max(), Duration::from_micros(10_000));
        assert_eq!(histogram.count(), 10_000);
    }

    #[test]
    fn merging_adds_counts() {
        let mut left = Histogram::default();
        let mut right = Histogram::default();
        left.record(Duration::from_micros(10));
        right.record(Duration::from_millis(30));
        left.merge(&right);
        assert_eq!(left.count(), 2);
        assert_eq!(left.max(), Duration::from_millis(30));
        assert_eq!(left.percentile(50.0), Duration::from_micros(10));
    }

    #[test]
    fn summaries_name_the_percentiles_asked_for() {
        let mut histogram = Histogram::default();
        histogram.record(Duration::from_micros(1_500));
        histogram.record(Duration::from_micros(2_500));
        let json = histogram.summary_json(&[("p50", 50.0)]);
        assert_eq!(json["count"], 2);
        assert_eq!(json["max"], 2.5);
        assert!(json.get("p99").is_none());
        let line = histogram.summary_line(&[("p50", 50.0), ("p99", 99.0)], 1);
        assert!(
            line.starts_with("p50 1.5  p99 2.5  max 2.5  mean 2.0"),
            "{line}"
        );
    }

    #[test]
    fn an_empty_histogram_reports_zero() {
        let histogram = Histogram::default();
        assert_eq!(histogram.percentile(99.0), Duration::ZERO);
        assert_eq!(histogram.mean(), Duration::ZERO);
    }
}
