//! Stage: timed loop orchestration (its rounds). Which cases a round runs,
//! in which order; each trial's share of an operation budget; and when the
//! rounds end: after `--trials`, or with `--precision` once every watched
//! CI is narrow enough (or `--max-time` would pass), and how many times
//! `--retry-disturbed` runs a round again; and what a watcher (the
//! progress display) sees of them. Plain functions of numbers, so that the
//! rules are tested without sockets.

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::time::Duration;

use super::outcome::{CaseOutcome, Reached, TrialPoint};

/// Where a run is, for whoever watches it (a progress display): written by
/// the first client thread between trials, never inside one; read from
/// another thread.
#[derive(Debug)]
pub struct Watch {
    /// Trials done (over every case and round).
    pub trials_done: std::sync::atomic::AtomicU64,
    /// The round under way (0-based).
    pub round: std::sync::atomic::AtomicU32,
    /// The case of the last trial done (index into the plan's cases).
    pub case: std::sync::atomic::AtomicUsize,
    /// Cases warmed up so far.
    pub warmed: std::sync::atomic::AtomicUsize,
    /// `--precision`: the widest watched CI half-width after the last
    /// complete round, a share of its value (`f64` bits; 0 until known).
    pub widest: std::sync::atomic::AtomicU64,
    /// Each case's last [`KEPT`] trial figures ([`TrialPoint::figure`],
    /// `f64` bits), case by case, and how many each case has had.
    figures: Box<[std::sync::atomic::AtomicU64]>,
    counts: Box<[std::sync::atomic::AtomicU32]>,
}

/// The trial figures a [`Watch`] keeps per case: the last ones.
pub const KEPT: usize = 64;

impl Watch {
    /// A watch of a run of `cases` cases.
    pub fn new(cases: usize) -> Watch {
        Watch {
            trials_done: Default::default(),
            round: Default::default(),
            case: Default::default(),
            warmed: Default::default(),
            widest: Default::default(),
            figures: (0..cases * KEPT).map(|_| Default::default()).collect(),
            counts: (0..cases).map(|_| Default::default()).collect(),
        }
    }

    /// `--retry-disturbed`: a round's `n` trials were dropped, to be run
    /// again. (The figures of its trials stay: they were seen.)
    pub(super) fn round_dropped(&self, n: usize) {
        self.trials_done.fetch_sub(n as u64, Relaxed);
    }

    pub(super) fn trial_done(&self, round: u32, case: usize, figure: f64) {
        if let Some(count) = self.counts.get(case) {
            let k = count.load(Relaxed) as usize;
            self.figures[case * KEPT + k % KEPT].store(figure.to_bits(), Relaxed);
            // Release: a reader that sees the new count sees the figure too.
            count.store((k + 1) as u32, Release);
        }
        self.trials_done.fetch_add(1, Relaxed);
        self.round.store(round, Relaxed);
        self.case.store(case, Relaxed);
    }

    /// Case `case`'s last figures (up to [`KEPT`]), oldest first, and how
    /// many trials it has had in all.
    pub fn figures(&self, case: usize) -> (Vec<f64>, usize) {
        let Some(count) = self.counts.get(case) else {
            return (Vec::new(), 0);
        };
        let n = count.load(Acquire) as usize;
        let kept = (n.saturating_sub(KEPT)..n)
            .map(|k| f64::from_bits(self.figures[case * KEPT + k % KEPT].load(Relaxed)))
            .collect();
        (kept, n)
    }
}

/// `--retry-disturbed`: whether a round's trials hold a disturbed one
/// (another task or the hypervisor took over 15% of a measured CPU).
pub(super) fn disturbed<'a>(mut points: impl Iterator<Item = &'a TrialPoint>) -> bool {
    points.any(|t| t.interference.is_some_and(|x| x.disturbed()))
}

/// `--retry-disturbed`: times one round may be run again.
pub const RETRIES_PER_ROUND: u32 = 2;

/// `--precision`: the widest watched 95% CI half-width (a share of its
/// value) over the complete rounds so far, and what it belongs to; `None`
/// while the rounds are too few for a CI. The statistics live above the
/// workloads (the report), so the caller hands them down. Asked by the
/// first client between rounds, never inside a trial.
pub type Widest<'a> = &'a (dyn Fn(&[CaseOutcome]) -> Option<(f64, String)> + Sync);

/// `--precision`, after `done` complete rounds: how the rounds end, or
/// `None` for one more. They end when every watched CI is within the
/// target, or (once `--trials` rounds are done) when one more round, as
/// long as the mean so far, would pass `--max-time`.
pub(super) fn enough(
    target: crate::plan::Precision,
    widest: Option<(f64, String)>,
    done: u32,
    trials: u32,
    elapsed: Duration,
) -> Option<Reached> {
    if done < trials {
        return None;
    }
    let within = widest.as_ref().is_some_and(|(h, _)| *h <= target.target);
    let out_of_time = elapsed + elapsed / done > target.max_time;
    (within || out_of_time).then(|| Reached {
        target: target.target,
        reached: within,
        widest: widest.as_ref().map(|w| w.0),
        widest_of: widest.map(|w| w.1).unwrap_or_default(),
        rounds_s: elapsed.as_secs_f64(),
    })
}

/// The cases of round `round`, in the order they run: the plan's
/// schedule forward in even rounds and backward in odd ones, so the two
/// cases a ratio pairs run A B in one round and B A in the next (a drift
/// over time weighs on both alike).
pub fn round_order(schedule: &[usize], round: u32) -> Vec<usize> {
    if round.is_multiple_of(2) {
        schedule.to_vec()
    } else {
        schedule.iter().rev().copied().collect()
    }
}

/// Operations in trial `round` when `total` are split over `trials`.
pub fn share(total: u64, trials: u32, round: u32) -> u64 {
    let t = u64::from(trials);
    total / t + u64::from(u64::from(round) < total % t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_ends_the_rounds_within_the_target_or_before_max_time() {
        use crate::plan::Precision;
        let p = Precision {
            target: 0.02,
            max_time: Duration::from_secs(10),
        };
        let w = |h: f64| Some((h, "64 uds-stream / tcp4 p50".to_string()));
        let s = Duration::from_secs;
        // Before --trials rounds: never, however narrow or late.
        assert_eq!(enough(p, w(0.001), 4, 5, s(100)), None);
        // Within the target: reached.
        let r = enough(p, w(0.019), 5, 5, s(1)).unwrap();
        assert!(r.reached && r.widest == Some(0.019));
        // Too wide, and one more round (2 s, the mean) ends by 10 s: go on.
        assert_eq!(enough(p, w(0.05), 5, 5, s(8)), None);
        // Too wide, and one more would end past 10 s: stop, not reached.
        let r = enough(p, w(0.05), 6, 5, s(9)).unwrap();
        assert!(!r.reached && r.widest_of.contains("uds-stream"));
        // No CI yet (fewer than 5 rounds for one) and out of time.
        assert!(!enough(p, None, 3, 3, s(9)).unwrap().reached);
    }

    #[test]
    fn rounds_alternate_a_b_then_b_a_and_split_the_budget() {
        let schedule = [2, 0, 1];
        assert_eq!(round_order(&schedule, 0), [2, 0, 1]);
        assert_eq!(round_order(&schedule, 1), [1, 0, 2]);
        assert_eq!(round_order(&schedule, 2), [2, 0, 1]);
        // 10 operations over 3 trials: 4, 3, 3, all of them.
        let shares: Vec<u64> = (0..3).map(|r| share(10, 3, r)).collect();
        assert_eq!(shares, [4, 3, 3]);
        assert_eq!(shares.iter().sum::<u64>(), 10);
    }
}
