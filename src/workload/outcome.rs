//! Stage: timed loop orchestration (its results). What a run measured:
//! each trial's figures, each case's outcome (every timed latency, the
//! trials, CPU and syscall accounting, and what `load` adds), the whole
//! run; and how concurrent pairs' outcomes of one case are merged.

use std::time::Duration;

use hdrhistogram::Histogram;

use super::TrialUsage;
use super::load::{LoadScratch, LoadTrial};
use crate::plan::Case;
use crate::samples::new_histogram;
use crate::sys::process::Resources;
use crate::transport::{Buffers, TimeWait};

/// One trial's figures, kept for confidence intervals and paired ratios.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, schemars::JsonSchema)]
pub struct TrialPoint {
    /// Round (0-based); trials of different cases in one round are paired.
    pub round: u32,
    /// When the trial ran: ns since the run's start, from the first pair's
    /// first operation to the last pair's end. Trials a ratio compares are
    /// adjacent in time.
    pub start_ns: u64,
    /// When the trial ended, ns since the run's start.
    pub end_ns: u64,
    /// Operations timed (over all pairs); for transfers, messages sent.
    pub n: u64,
    /// Median latency of the trial (mean of the pairs' medians), ns; 0 for transfers.
    pub p50_ns: u64,
    /// Mean latency of the trial, ns; 0 for transfers.
    pub mean_ns: f64,
    /// 99th percentile of the trial (mean of the pairs'), ns; 0 for transfers.
    pub p99_ns: u64,
    /// Wall time of the trial, `end_ns - start_ns`: the span all pairs took.
    pub elapsed_ns: u64,
    /// Messages the servers received (transfers) or requests served.
    pub delivered: u64,
    /// Messages sent (transfers: both ways for `--direction both`).
    pub sent: u64,
    /// A datagram transfer ended on the idle limit: its end marker was lost.
    pub idle_ended: bool,
    /// This process's memory, descriptors and threads just before the trial
    /// (before its untimed warm-up).
    #[serde(flatten)]
    pub resources: Resources,
    /// `--trace count`: kernel events in the client's and the server's threads during the trial.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<crate::sys::perf::EventCounts>,
    /// `--trace split`: median time of the client's send call in the trial, ns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_p50_ns: Option<u64>,
    /// `--trace stamp`: the trial's round trips split by the kernel's stamps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stamps: Option<super::tracing::StampSpans>,
    /// Who else used the trial's CPUs (null where `/proc/stat` could not be read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interference: Option<super::tracing::Interference>,
}

impl TrialPoint {
    /// A transfer's rate: bytes delivered per second, at `size` bytes a message.
    pub fn rate(&self, size: usize) -> f64 {
        self.delivered as f64 * size as f64 * 1e9 / self.elapsed_ns.max(1) as f64
    }

    /// The trial's main figure: its p50 (ns), or a transfer's rate (bytes/s).
    pub fn figure(&self, size: usize) -> f64 {
        if self.p50_ns > 0 {
            self.p50_ns as f64
        } else {
            self.rate(size)
        }
    }
}

/// Everything measured for one case.
#[derive(Debug)]
pub struct CaseOutcome {
    pub case: Case,
    /// Every timed latency of every trial and pair (empty for transfers).
    pub hist: Histogram<u64>,
    pub trials: Vec<TrialPoint>,
    /// CPU and syscall accounting summed over the timed trials and pairs.
    pub usage: TrialUsage,
    pub buffers: Buffers,
    /// TCP sockets left in TIME_WAIT after the case, per side (connections per request).
    pub time_wait: Option<TimeWait>,
    /// `load`: what open-loop trials measure beside the latencies.
    pub load: Option<LoadOutcome>,
}

impl CaseOutcome {
    /// Operations per second over all pairs (operations ÷ the span all pairs
    /// took), median over the trials; for `load`, requests answered.
    pub fn ops_per_s(&self) -> f64 {
        let rates: Vec<f64> = self
            .trials
            .iter()
            .map(|t| t.n as f64 * 1e9 / t.elapsed_ns.max(1) as f64)
            .collect();
        if rates.is_empty() {
            0.0
        } else {
            crate::stats::median(&rates)
        }
    }
}

/// What `load` measures beside the latency from each request's intended
/// send time (`CaseOutcome::hist`), over the timed trials.
#[derive(Debug)]
pub struct LoadOutcome {
    /// Service time: each request's actual send to its response.
    pub service: Histogram<u64>,
    /// How late each send left after its intended time.
    pub lateness: Histogram<u64>,
    /// Sends more than `load::LATE_NS` late.
    pub late: u64,
    /// Message transports: requests never answered (never counted in the latencies).
    pub lost: u64,
    /// Most requests in flight at once, in any trial.
    pub max_in_flight: u64,
    /// `--rate sweep`: the case's p50 and rate in a closed loop, before the sweep.
    pub unloaded_p50_ns: Option<u64>,
    pub closed_loop_per_s: Option<f64>,
}

impl LoadOutcome {
    pub(super) fn new() -> Self {
        Self {
            service: new_histogram(),
            lateness: new_histogram(),
            late: 0,
            lost: 0,
            max_in_flight: 0,
            unloaded_p50_ns: None,
            closed_loop_per_s: None,
        }
    }

    /// Add one trial of a load pair: its books and the histograms its
    /// client kept (`sc`).
    pub(super) fn add_trial(&mut self, t: &LoadTrial, sc: &LoadScratch) {
        self.absorb(
            (&sc.service, &sc.lateness),
            (t.late, t.lost, t.max_in_flight),
        );
    }

    /// Add the rounds of another outcome of the same case.
    pub(super) fn add(&mut self, o: &LoadOutcome) {
        self.absorb((&o.service, &o.lateness), (o.late, o.lost, o.max_in_flight));
    }

    fn absorb(
        &mut self,
        (service, lateness): (&Histogram<u64>, &Histogram<u64>),
        (late, lost, max_in_flight): (u64, u64, u64),
    ) {
        self.service.add(service).expect("histograms share bounds");
        self.lateness
            .add(lateness)
            .expect("histograms share bounds");
        self.late += late;
        self.lost += lost;
        self.max_in_flight = self.max_in_flight.max(max_in_flight);
    }

    pub(super) fn reset(&mut self) {
        self.service.reset();
        self.lateness.reset();
        self.late = 0;
        self.lost = 0;
        self.max_in_flight = 0;
    }
}

/// A whole run.
#[derive(Debug)]
pub struct Run {
    pub cases: Vec<CaseOutcome>,
    /// Median cost of one clock read on the (first) client CPU, ns.
    pub clock_read_ns: f64,
    /// Wall time of the measurement.
    pub elapsed: Duration,
    /// Rounds completed: `--trials` (with `--precision`, as many as it
    /// took), or fewer when a first Ctrl-C stopped the run.
    pub rounds: u32,
    /// `--precision`: how its rounds ended (none after a Ctrl-C).
    pub precision: Option<Reached>,
    /// `--retry-disturbed`: rounds run again because a trial shared a
    /// measured CPU (their first figures dropped).
    pub retried: u32,
}

/// `--precision`: how the rounds ended.
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct Reached {
    /// The 95% CI half-width asked for, a share of the value (0.02: 2%).
    pub target: f64,
    /// Every watched CI was within the target when the rounds ended (else
    /// another round would have passed `--max-time`).
    pub reached: bool,
    /// The widest watched 95% CI half-width at the end, a share of its
    /// value.
    pub widest: Option<f64>,
    /// What the widest CI belongs to: a ratio the run reports, or a case's
    /// median when it reports none.
    pub widest_of: String,
    /// Wall time of the rounds, s (set-up and warm-up before them not counted).
    pub rounds_s: f64,
}

/// Fold a concurrent pair's outcome of the same case into `into`.
pub(super) fn merge(into: &mut CaseOutcome, from: CaseOutcome) {
    into.hist.add(&from.hist).expect("histograms share bounds");
    into.usage.add(&from.usage);
    into.time_wait = match (into.time_wait, from.time_wait) {
        (Some(a), Some(b)) => Some(TimeWait {
            server: a.server.max(b.server),
            client: a.client.max(b.client),
        }),
        (a, b) => a.or(b),
    };
    for (a, b) in into.trials.iter_mut().zip(&from.trials) {
        a.n += b.n;
        a.delivered += b.delivered;
        a.sent += b.sent;
        a.start_ns = a.start_ns.min(b.start_ns);
        a.end_ns = a.end_ns.max(b.end_ns);
        a.p50_ns += b.p50_ns;
        a.p99_ns += b.p99_ns;
        a.mean_ns += b.mean_ns;
        a.idle_ended |= b.idle_ended;
    }
}
