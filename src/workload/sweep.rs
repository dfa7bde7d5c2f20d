//! Stage: timed loop orchestration. `load --rate sweep`: find each case's
//! knee. A short closed loop (one connection, one request in flight) gives
//! every case its unloaded p50 and its closed-loop rate; the sweep starts at
//! 10% of the slowest case's closed-loop rate and steps up by ×1.25. At each
//! step the cases still standing run interleaved, as in any run. A step is
//! past a case's knee when the case answers under 95% of the rate offered or
//! its p99 (the median of its trials' p99s) exceeds 20× its unloaded p50;
//! the case leaves the sweep after
//! [`STRIKES`] such steps in a row (one p99 spike of a shared machine is not
//! a knee), and its knee is the first of them.

use std::time::Duration;

use super::run::{self, CaseOutcome, Run, Watch};
use crate::error::Result;
use crate::plan::{Budget, Case, Plan, Workload};
use crate::spec::MAX_RATE;
use crate::stats;
use crate::transport::SocketDir;

/// The first rate, as a share of the slowest case's closed-loop rate.
pub const START_SHARE: f64 = 0.10;
/// Each step's rate over the last one's.
pub const STEP: f64 = 1.25;
/// A case is saturated below this share of the offered rate answered...
pub const ANSWERED_SHARE: f64 = 0.95;
/// ... or with a p99 over this many times its unloaded p50.
pub const P99_LIMIT: f64 = 20.0;
/// Steps in a row past the knee before a case leaves the sweep.
pub const STRIKES: u32 = 2;
/// At most this many steps (×1.25^40 ≈ 7,500× the first rate).
pub const MAX_STEPS: usize = 40;

/// What the closed loop measured for a case before the sweep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Unloaded {
    pub p50_ns: u64,
    pub per_s: f64,
}

/// The median of a case's per-trial p99s: one disturbed trial of a shared
/// machine moves the pooled p99, not this.
pub fn typical_p99_ns(o: &CaseOutcome) -> f64 {
    let p99s: Vec<f64> = o.trials.iter().map(|t| t.p99_ns as f64).collect();
    if p99s.is_empty() {
        0.0
    } else {
        stats::median(&p99s)
    }
}

/// Whether a load case is past its knee: it answered under
/// [`ANSWERED_SHARE`] of what was offered, or (when its unloaded p50 is
/// known) its typical p99 ([`typical_p99_ns`]) exceeds [`P99_LIMIT`] times it.
pub fn saturated(o: &CaseOutcome, unloaded_p50_ns: Option<u64>) -> bool {
    let offered = o.case.rate.max(1) as f64;
    o.ops_per_s() < ANSWERED_SHARE * offered
        || unloaded_p50_ns.is_some_and(|p50| typical_p99_ns(o) > P99_LIMIT * p50 as f64)
}

fn same_case(a: &Case, b: &Case) -> bool {
    (a.transport, a.size, a.response, a.netns) == (b.transport, b.size, b.response, b.netns)
}

/// Run the sweep of `plan` (`load --rate sweep`); `say` hears one line per
/// step. The result holds every step's cases, each with its unloaded
/// figures; a first Ctrl-C ends the sweep in the step under way, which is
/// dropped: the steps before it are kept.
pub fn sweep(
    plan: &Plan,
    dir: Option<&SocketDir>,
    watch: Option<&Watch>,
    say: &mut dyn FnMut(&str),
) -> Result<Run> {
    let mut closed = plan.clone();
    closed.workload = Workload::Rr {
        depth: 1,
        new_connection: false,
    };
    closed.budget = Budget::Duration(Duration::from_millis(500));
    closed.trials = 5;
    let calibration = run::run(&closed, dir, None, None)?;
    let unloaded: Vec<(Case, Unloaded)> = calibration
        .cases
        .iter()
        .map(|o| {
            let p50s: Vec<f64> = o.trials.iter().map(|t| t.p50_ns as f64).collect();
            let u = Unloaded {
                p50_ns: stats::median(&p50s).round() as u64,
                per_s: o.ops_per_s(),
            };
            (o.case, u)
        })
        .collect();
    let slowest = unloaded
        .iter()
        .map(|(_, u)| u.per_s)
        .fold(f64::INFINITY, f64::min);
    say(&format!(
        "sweep: closed loop (one connection) {}; starting at {:.0}/s, ×{STEP} per step",
        unloaded
            .iter()
            .map(|(c, u)| format!(
                "{} {:.0}/s, p50 {:.1} µs",
                c.transport,
                u.per_s,
                u.p50_ns as f64 / 1e3
            ))
            .collect::<Vec<_>>()
            .join("; "),
        START_SHARE * slowest
    ));
    let of = |c: &Case| {
        unloaded
            .iter()
            .find(|(k, _)| same_case(k, c))
            .map(|(_, u)| *u)
    };
    let mut live: Vec<(Case, u32)> = plan.cases.iter().map(|c| (*c, 0)).collect();
    let mut cases: Vec<CaseOutcome> = Vec::new();
    let mut elapsed = calibration.elapsed;
    let mut rate = (START_SHARE * slowest).max(1.0);
    for _ in 0..MAX_STEPS {
        if live.is_empty() || rate > MAX_RATE as f64 || crate::cleanup::stop_requested() {
            break;
        }
        let r = rate.round() as u64;
        let mut step = plan.clone();
        step.cases = live.iter().map(|(c, _)| Case { rate: r, ..*c }).collect();
        let out = run::run(&step, dir, watch, None)?;
        elapsed += out.elapsed;
        if out.rounds < plan.trials {
            break; // a first Ctrl-C: the steps before this one are complete
        }
        let mut verdicts = Vec::new();
        for mut o in out.cases {
            let u = of(&o.case);
            if let Some(l) = &mut o.load {
                l.unloaded_p50_ns = u.map(|u| u.p50_ns);
                l.closed_loop_per_s = u.map(|u| u.per_s);
            }
            let past = saturated(&o, u.map(|u| u.p50_ns));
            let strikes = live
                .iter_mut()
                .find(|(c, _)| same_case(c, &o.case))
                .map(|(_, n)| {
                    *n = if past { *n + 1 } else { 0 };
                    *n
                })
                .unwrap_or(0);
            verdicts.push(format!(
                "{} {}",
                o.case.transport,
                match (past, strikes >= STRIKES) {
                    (false, _) => "kept up",
                    (true, false) => "past its knee (once)",
                    (true, true) => "saturated",
                }
            ));
            if strikes >= STRIKES {
                live.retain(|(c, _)| !same_case(c, &o.case));
            }
            cases.push(o);
        }
        say(&format!("sweep: {r}/s: {}", verdicts.join(", ")));
        rate *= STEP;
    }
    let rounds = if cases.is_empty() { 0 } else { plan.trials };
    Ok(Run {
        cases,
        clock_read_ns: calibration.clock_read_ns,
        elapsed,
        rounds,
        precision: None,
        retried: 0,
    })
}
