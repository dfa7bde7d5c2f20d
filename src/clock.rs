//! Stage: timing. The monotonic clock every round trip is timed with
//! (`Instant`, i.e. `clock_gettime(CLOCK_MONOTONIC)` through the vDSO) and
//! the measured cost of reading it. Knows nothing of sockets.

use std::hint::black_box;
use std::time::Instant;

/// Median cost of one clock read in ns, over 9 batches of 100,000 reads on
/// the calling thread (call it pinned, where the timed loop runs).
pub fn read_cost_ns() -> f64 {
    const READS: u32 = 100_000;
    let mut batches: Vec<f64> = (0..9)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..READS {
                black_box(Instant::now());
            }
            start.elapsed().as_nanos() as f64 / f64::from(READS)
        })
        .collect();
    batches.sort_by(f64::total_cmp);
    batches[batches.len() / 2]
}

/// Resolution of `CLOCK_MONOTONIC` in ns, as the kernel reports it.
pub fn resolution_ns() -> Option<u64> {
    let ts = nix::time::clock_getres(nix::time::ClockId::CLOCK_MONOTONIC).ok()?;
    Some(ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64)
}

/// `CLOCK_MONOTONIC` now, in ns: comparable across the processes of one
/// machine (a forked server stamps the end of a transfer with it).
pub fn now_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}
