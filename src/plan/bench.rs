//! Stage: config. The `cargo bench` suite's profiles: the sizes each bench
//! measures and how long criterion spends on each.

use std::time::Duration;

/// The `cargo bench` suite's profiles (`SOCKBENCH_PROFILE`): which sizes
/// each bench measures and how long criterion spends on each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchProfile {
    /// Every size, 0.5 s warm-up, 2 s of sampling, 40 samples (the default).
    Full,
    /// Fewer sizes, 0.2 s warm-up, 0.5 s of sampling, 15 samples.
    Quick,
}

/// Criterion's timing of one [`BenchProfile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchTiming {
    pub warm_up: Duration,
    pub measurement: Duration,
    pub samples: usize,
    /// Bootstrap resamples of criterion's analysis (its default, 100,000,
    /// costs several seconds per benchmark).
    pub resamples: usize,
}

impl BenchProfile {
    /// `full` or `quick`.
    pub fn from_name(name: &str) -> std::result::Result<Self, String> {
        match name {
            "full" => Ok(BenchProfile::Full),
            "quick" => Ok(BenchProfile::Quick),
            _ => Err("allowed: full, quick".into()),
        }
    }

    /// Ping-pong, rr and connect message sizes.
    pub fn latency_sizes(self) -> &'static [usize] {
        match self {
            BenchProfile::Full => &[1, 64, 512, 4 << 10, 16 << 10, 64 << 10],
            BenchProfile::Quick => &[1, 64, 4 << 10, 64 << 10],
        }
    }

    /// Throughput write sizes.
    pub fn throughput_sizes(self) -> &'static [usize] {
        match self {
            BenchProfile::Full => &[64, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20],
            BenchProfile::Quick => &[64, 4 << 10, 64 << 10, 1 << 20],
        }
    }

    /// Criterion's timing.
    pub fn timing(self) -> BenchTiming {
        match self {
            BenchProfile::Full => BenchTiming {
                warm_up: Duration::from_millis(500),
                measurement: Duration::from_secs(2),
                samples: 40,
                resamples: 20_000,
            },
            BenchProfile::Quick => BenchTiming {
                warm_up: Duration::from_millis(200),
                measurement: Duration::from_millis(500),
                samples: 15,
                resamples: 5_000,
            },
        }
    }

    /// The profile as the README states it: `0.5 s warm-up, 2 s sampling, 40 samples`.
    pub fn describe(self) -> String {
        let t = self.timing();
        let s = |d: Duration| format!("{} s", d.as_secs_f64());
        format!(
            "{} warm-up, {} sampling, {} samples",
            s(t.warm_up),
            s(t.measurement),
            t.samples
        )
    }
}
