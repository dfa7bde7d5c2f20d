//! Stage: statistics. Summaries of histograms and bootstrap confidence
//! intervals over trials. Knows no sockets. rayon runs only here, and only
//! after the measurement threads have joined.

use hdrhistogram::Histogram;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;

/// Bootstrap resamples for every confidence interval.
pub const RESAMPLES: usize = 10_000;

/// Distribution of one case's RTTs, ns.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Summary {
    pub n: u64,
    pub min_ns: u64,
    pub mean_ns: f64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub p9999_ns: u64,
    pub max_ns: u64,
    pub stddev_ns: f64,
}

/// Summarise a histogram (HDR precision: 3 significant digits).
pub fn summarize(h: &Histogram<u64>) -> Summary {
    Summary {
        n: h.len(),
        min_ns: h.min(),
        mean_ns: h.mean(),
        p50_ns: h.value_at_quantile(0.50),
        p90_ns: h.value_at_quantile(0.90),
        p99_ns: h.value_at_quantile(0.99),
        p999_ns: h.value_at_quantile(0.999),
        p9999_ns: h.value_at_quantile(0.9999),
        max_ns: h.max(),
        stddev_ns: h.stdev(),
    }
}

/// A two-sided 95% confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Ci {
    pub low: f64,
    pub high: f64,
}

/// Median (mean of the middle two for an even count). NaN for no values.
pub fn median(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Arithmetic mean. NaN for no values.
pub fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Percentile-bootstrap 95% CI of `stat` over `xs` ([`RESAMPLES`]
/// resamples, deterministic for a given `seed`). With one value the
/// interval is that value.
pub fn bootstrap_ci(xs: &[f64], stat: fn(&[f64]) -> f64, seed: u64) -> Ci {
    if xs.len() < 2 {
        let v = xs.first().copied().unwrap_or(f64::NAN);
        return Ci { low: v, high: v };
    }
    let mut stats: Vec<f64> = (0..RESAMPLES)
        .into_par_iter()
        .map_init(
            || vec![0.0; xs.len()],
            |buf, i| {
                let mut rng = rand::rngs::SmallRng::seed_from_u64(
                    seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                );
                for slot in buf.iter_mut() {
                    *slot = xs[rng.random_range(0..xs.len())];
                }
                stat(buf)
            },
        )
        .collect();
    stats.sort_by(f64::total_cmp);
    let at = |q: f64| stats[((stats.len() - 1) as f64 * q).round() as usize];
    Ci {
        low: at(0.025),
        high: at(0.975),
    }
}

/// Distribution-free 95% CI of the median of `xs`, from its order
/// statistics: the narrowest `[x(k), x(n-k+1)]` whose binomial(n, ½)
/// coverage is at least 95%. `None` under 6 values, where no such interval
/// exists. A sort and no resampling: cheap enough for a live display
/// (the report's CIs are [`bootstrap_ci`]s).
pub fn median_ci_order(xs: &[f64]) -> Option<Ci> {
    let n = xs.len();
    // P(X <= j) for X ~ Bin(n, 1/2), term by term: k is the largest rank
    // with P(X <= k - 1) <= 2.5%.
    let mut term = 0.5f64.powi(n as i32);
    let (mut cdf, mut k) = (term, 0);
    while cdf <= 0.025 && k < n / 2 {
        k += 1;
        term *= (n - k + 1) as f64 / k as f64;
        cdf += term;
    }
    if k == 0 {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    Some(Ci {
        low: v[k - 1],
        high: v[n - k],
    })
}

/// Per-round ratios `num[r] / den[r]` of values paired by round.
pub fn paired_ratios(num: &[(u32, f64)], den: &[(u32, f64)]) -> Vec<f64> {
    num.iter()
        .filter_map(|&(r, a)| den.iter().find(|&&(rd, _)| rd == r).map(|&(_, b)| a / b))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ranks of the order-statistic CI as tables give them (n = 6:
    /// min and max; 10: 2nd and 9th; 20: 6th and 15th), and none under 6.
    #[test]
    fn median_ci_from_order_statistics() {
        let ranks = |n: usize| {
            let xs: Vec<f64> = (1..=n).rev().map(|v| v as f64).collect();
            median_ci_order(&xs).map(|c| (c.low as usize, c.high as usize))
        };
        assert_eq!(ranks(5), None);
        assert_eq!(ranks(6), Some((1, 6)));
        assert_eq!(ranks(10), Some((2, 9)));
        assert_eq!(ranks(20), Some((6, 15)));
        assert_eq!(ranks(64), Some((24, 41)));
    }

    #[test]
    fn median_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn summary_of_known_histogram() {
        let mut h = crate::samples::new_histogram();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let s = summarize(&h);
        assert_eq!(s.n, 1000);
        assert_eq!(s.min_ns, 1000);
        assert!(
            (s.p50_ns as f64 - 500_000.0).abs() / 500_000.0 < 0.002,
            "{s:?}"
        );
        assert!(
            (s.p99_ns as f64 - 990_000.0).abs() / 990_000.0 < 0.002,
            "{s:?}"
        );
        assert!(
            (s.max_ns as f64 - 1_000_000.0).abs() / 1_000_000.0 < 0.002,
            "{s:?}"
        );
        assert!((s.mean_ns - 500_500.0).abs() / 500_500.0 < 0.002, "{s:?}");
    }

    #[test]
    fn bootstrap_brackets_the_statistic_and_is_deterministic() {
        let xs: Vec<f64> = (0..20).map(|i| 100.0 + f64::from(i % 7)).collect();
        let a = bootstrap_ci(&xs, median, 7);
        let b = bootstrap_ci(&xs, median, 7);
        assert_eq!(a, b);
        let m = median(&xs);
        assert!(a.low <= m && m <= a.high, "{a:?} vs {m}");
        assert!(a.low >= 100.0 && a.high <= 106.0);
        // A constant sample has a zero-width interval.
        let c = bootstrap_ci(&[5.0; 8], mean, 1);
        assert_eq!((c.low, c.high), (5.0, 5.0));
    }

    #[test]
    fn ratios_pair_by_round_not_position() {
        let num = [(0, 10.0), (1, 20.0), (2, 30.0)];
        let den = [(2, 10.0), (0, 5.0)];
        assert_eq!(paired_ratios(&num, &den), vec![2.0, 3.0]);
    }
}
