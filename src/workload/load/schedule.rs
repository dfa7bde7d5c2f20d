//! Stage: timed loop (open-loop load). When each request is due: `rate`
//! per second from a trial's start, evenly spaced or with the exponential
//! gaps of a Poisson process (seeded). Knows no sockets.

use rand::{RngExt, SeedableRng};

use crate::spec::Arrival;

/// Intended send times: `rate` per second from `start`, evenly spaced
/// (constant) or with exponential gaps (Poisson arrivals, seeded).
#[derive(Debug)]
pub struct Schedule {
    start: u64,
    rate: u64,
    arrival: Arrival,
    i: u64,
    next: u64,
    rng: rand::rngs::SmallRng,
}

impl Schedule {
    /// The schedule of a trial starting at `start` (ns).
    pub fn new(start: u64, rate: u64, arrival: Arrival, seed: u64) -> Self {
        Self {
            start,
            rate: rate.max(1),
            arrival,
            i: 0,
            next: start,
            rng: rand::rngs::SmallRng::seed_from_u64(seed),
        }
    }

    /// When the next request is due (ns).
    #[inline]
    pub fn next(&self) -> u64 {
        self.next
    }

    /// Move to the request after it.
    #[inline]
    pub fn advance(&mut self) {
        self.i += 1;
        self.next = match self.arrival {
            // From the start each time, so rounding never drifts.
            Arrival::Constant => {
                self.start + (u128::from(self.i) * 1_000_000_000 / u128::from(self.rate)) as u64
            }
            Arrival::Poisson => {
                let u: f64 = self.rng.random();
                let gap = -(1.0 - u).ln() * 1e9 / self.rate as f64;
                self.next + gap as u64
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_constant_schedule_keeps_its_rate_without_drift() {
        let mut s = Schedule::new(1_000, 3, Arrival::Constant, 0);
        let mut times = vec![s.next()];
        for _ in 0..6 {
            s.advance();
            times.push(s.next());
        }
        // 1/3 s apart, computed from the start: no accumulated rounding.
        assert_eq!(
            times,
            [
                1_000,
                333_334_333,
                666_667_666,
                1_000_001_000,
                1_333_334_333,
                1_666_667_666,
                2_000_001_000
            ]
        );
    }

    #[test]
    fn poisson_gaps_average_one_over_the_rate() {
        let mut s = Schedule::new(0, 10_000, Arrival::Poisson, 7);
        let mut gaps = Vec::new();
        for _ in 0..100_000 {
            let before = s.next();
            s.advance();
            gaps.push((s.next() - before) as f64);
        }
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        assert!((mean - 100_000.0).abs() < 1_500.0, "mean gap {mean} ns");
        // Exponential: the standard deviation equals the mean.
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        assert!(
            (var.sqrt() / mean - 1.0).abs() < 0.03,
            "sd/mean {}",
            var.sqrt() / mean
        );
    }
}
