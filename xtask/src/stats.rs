//! The two statistics the reports use: the median *run* and latency percentiles.

/// The middle item by `key`; for an even count the lower of the two middle ones. The result
/// is always a run that happened (never an average of two), so every column of a report row
/// comes from the same run.
pub fn median_by<T, K: PartialOrd>(items: &[T], key: impl Fn(&T) -> K) -> Option<&T> {
    let mut sorted: Vec<&T> = items.iter().collect();
    sorted.sort_by(|a, b| key(a).partial_cmp(&key(b)).unwrap_or(std::cmp::Ordering::Equal));
    sorted.get(sorted.len().checked_sub(1)? / 2).copied()
}

/// Latency samples in microseconds, sorted once, read by nearest-rank percentiles.
#[derive(Debug, Clone, Default)]
pub struct Latencies(Vec<u64>);

impl Latencies {
    pub fn new(mut samples: Vec<u64>) -> Self {
        samples.sort_unstable();
        Self(samples)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Nearest rank: the smallest sample with at least `fraction` of all samples at or below
    /// it (`fraction` in 0..=1). 0 when there are no samples.
    pub fn percentile(&self, fraction: f64) -> u64 {
        if self.0.is_empty() {
            return 0;
        }
        let rank = ((self.0.len() as f64 * fraction).ceil() as usize).clamp(1, self.0.len());
        self.0[rank - 1]
    }

    pub fn max(&self) -> u64 {
        self.0.last().copied().unwrap_or(0)
    }

    /// p50, p95, p99 and max in one value, as every table shows them.
    pub fn summary(&self) -> LatencySummary {
        LatencySummary {
            p50_us: self.percentile(0.50),
            p95_us: self.percentile(0.95),
            p99_us: self.percentile(0.99),
            max_us: self.max(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct LatencySummary {
    pub p50_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_an_odd_count_is_the_middle_item() {
        let runs = [(3, "c"), (1, "a"), (2, "b")];
        assert_eq!(median_by(&runs, |r| r.0), Some(&(2, "b")));
    }

    #[test]
    fn the_median_of_an_even_count_is_the_lower_middle_item() {
        let runs = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(median_by(&runs, |r| *r), Some(&2.0));
        assert_eq!(median_by(&[7.5, 2.5], |r| *r), Some(&2.5));
    }

    #[test]
    fn there_is_no_median_of_nothing() {
        assert_eq!(median_by(&[] as &[u32], |r| *r), None);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let l = Latencies::new((1..=100).rev().collect());
        assert_eq!((l.percentile(0.50), l.percentile(0.95), l.percentile(0.99), l.max()), (50, 95, 99, 100));
        let four = Latencies::new(vec![10, 20, 30, 40]);
        assert_eq!((four.percentile(0.50), four.percentile(0.95)), (20, 40));
    }

    #[test]
    fn no_samples_read_as_zero() {
        assert_eq!(Latencies::default().summary(), LatencySummary::default());
    }
}
