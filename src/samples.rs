//! Stage: samples. Per-round-trip recording into an HDR histogram allocated
//! before timing starts; recording never allocates. Knows nothing of sockets.

use hdrhistogram::Histogram;

/// Largest value a histogram holds: 60 s in ns (larger values saturate).
pub const HIGHEST_NS: u64 = 60_000_000_000;

/// A fixed-size histogram of ns values, 1 ns to 60 s at 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    let mut h =
        Histogram::new_with_bounds(1, HIGHEST_NS, 3).expect("valid static histogram bounds");
    h.auto(false);
    h
}

/// A progress counter on a cache line (two, for the adjacent-line
/// prefetcher) of its own, so the counters of concurrent pairs never share one.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct BeatCell(pub std::sync::atomic::AtomicU64);

/// A plain counter of round trips that a supervisor can read from another
/// thread: one relaxed store per round trip, outside the timed interval.
#[derive(Debug)]
pub struct Heartbeat<'a> {
    shared: &'a std::sync::atomic::AtomicU64,
    count: u64,
}

impl<'a> Heartbeat<'a> {
    /// Start counting into `shared`.
    pub fn new(shared: &'a std::sync::atomic::AtomicU64) -> Self {
        let count = shared.load(std::sync::atomic::Ordering::Relaxed);
        Self { shared, count }
    }
    /// One more round trip done.
    #[inline(always)]
    pub fn tick(&mut self) {
        self.count += 1;
        self.shared
            .store(self.count, std::sync::atomic::Ordering::Relaxed);
    }
}
