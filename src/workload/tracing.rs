//! Stage: timed loop orchestration (tracing). What is measured around a
//! trial, outside its timed interval: for `--trace`, the kernel-event
//! counters of a counted case (opened in the pair's two threads before the
//! trial, read and closed after), the median send call of a split one and
//! the spans of a stamped one; for every trial, who else used its CPUs.

use hdrhistogram::Histogram;

use crate::error::{Error, Result};
use crate::plan::{Case, Plan};
use crate::spec::Trace;
use crate::sys::perf::{Counters, EventCounts};
use crate::sys::tstamp::Sent;

/// Run `trial`; for a `--trace count` case, count the kernel events of
/// threads `tids` (client, server) while it runs. Sixteen descriptors per
/// trial, opened and closed outside the timed interval.
pub(super) fn counted<T>(
    plan: &Plan,
    case: &Case,
    tids: [u32; 2],
    trial: impl FnOnce() -> Result<T>,
) -> Result<(T, Option<EventCounts>)> {
    let err = |e: std::io::Error| Error::Setup {
        op: "perf_event_open",
        target: "tracepoint counters".into(),
        transport: case.transport.name(),
        size: case.size,
        source: e,
    };
    let counters = match plan.trace_ids {
        Some(ids) if case.knobs.trace == Trace::Count => {
            let c = Counters::open(&ids, &tids).map_err(err)?;
            c.start().map_err(err)?;
            Some(c)
        }
        _ => None,
    };
    let out = trial()?;
    let events = match counters {
        Some(c) => Some(c.stop().map_err(err)?),
        None => None,
    };
    Ok((out, events))
}

/// How much of a trial's CPUs went to anyone else: other tasks (a CPU's
/// task time less the time this run's thread pinned there used) and the
/// hypervisor's steal, each as a share of the trial's wall time on the
/// measured CPU that lost most. From `/proc/stat` (10 ms ticks: about ±5%
/// in a 0.2 s trial).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct Interference {
    /// Other tasks' time on the measured CPU they used most, % of the trial.
    pub others_pct: f64,
    /// Steal on the measured CPU that lost most, % of the trial.
    pub steal_pct: f64,
}

/// A trial shared a CPU above this (others or steal, %): disturbed.
pub const DISTURBED_PCT: f64 = 15.0;

impl Interference {
    /// Between two `/proc/stat` readings around a trial of `wall_ns`, for
    /// each measured CPU and the time the run's own threads on it used.
    pub fn between(
        before: &[crate::sys::cpustat::CpuTimes],
        after: &[crate::sys::cpustat::CpuTimes],
        cpus: &[(usize, u64)],
        wall_ns: u64,
    ) -> Self {
        let wall = wall_ns.max(1) as f64;
        let mut out = Self::default();
        for &(c, ours_ns) in cpus {
            let (Some(b), Some(a)) = (before.get(c), after.get(c)) else {
                continue;
            };
            let others = a
                .tasks_ns
                .saturating_sub(b.tasks_ns)
                .saturating_sub(ours_ns);
            let steal = a.steal_ns.saturating_sub(b.steal_ns);
            out.others_pct = out.others_pct.max(100.0 * others as f64 / wall);
            out.steal_pct = out.steal_pct.max(100.0 * steal as f64 / wall);
        }
        out
    }

    pub fn disturbed(&self) -> bool {
        self.others_pct > DISTURBED_PCT || self.steal_pct > DISTURBED_PCT
    }
}

/// `/proc/stat` read before a trial, for its [`Interference`].
pub(super) struct CpuWatch(
    Option<Vec<crate::sys::cpustat::CpuTimes>>,
    std::time::Instant,
);

impl CpuWatch {
    pub(super) fn start() -> Self {
        Self(crate::sys::cpustat::read().ok(), std::time::Instant::now())
    }

    /// Who else used pair `p`'s CPUs in the trial that just ended, whose
    /// own threads used `usage`; None where `/proc/stat` could not be read
    /// or another pair shares the CPUs.
    pub(super) fn finish(
        self,
        plan: &Plan,
        case: &Case,
        p: usize,
        usage: &super::TrialUsage,
    ) -> Option<Interference> {
        let after = crate::sys::cpustat::read().ok()?;
        let cpus = measured_cpus(plan, case, p, usage)?;
        Some(Interference::between(
            &self.0?,
            &after,
            &cpus,
            self.1.elapsed().as_nanos() as u64,
        ))
    }
}

/// The CPUs pair `p`'s threads are pinned to in a case (its `--placement`,
/// or the pair's server and client CPU), each with the time the pair's
/// thread or threads there used in the trial. None when another pair
/// shares one of them (its threads are not "others").
fn measured_cpus(
    plan: &Plan,
    case: &Case,
    p: usize,
    usage: &super::TrialUsage,
) -> Option<Vec<(usize, u64)>> {
    let (server, client) = case.knobs.placement.unwrap_or_else(|| plan.placement(p));
    let shared = (0..plan.pairs).filter(|&q| q != p).any(|q| {
        let (s, c) = plan.placement(q);
        [s, c].iter().any(|x| *x == server || *x == client)
    });
    let t = |u: &crate::sys::process::ThreadUsage| (u.user_ns + u.sys_ns).max(0) as u64;
    let cpus = if server == client {
        vec![(server, t(&usage.server) + t(&usage.client))]
    } else {
        vec![(server, t(&usage.server)), (client, t(&usage.client))]
    };
    (!shared).then_some(cpus)
}

/// A `--trace split` trial's median send call, ns.
pub(super) fn send_median(trace: Trace, sent: &Histogram<u64>) -> Option<u64> {
    (trace == Trace::Split && !sent.is_empty()).then(|| sent.value_at_quantile(0.5))
}

/// What `--trace stamp` splits a round trip into, from the client's clock
/// reads (`CLOCK_REALTIME`) and the kernel's software stamps on its socket:
/// the request from the send call to the device queue, to the device;
/// then, in the order they came, the send call's return (over loopback the
/// receive runs inside it) and the reply's receive stamp (udp4's as it
/// enters the stack, in `netif_rx`; tcp4's at IP's local delivery, after
/// IP's receive: since Linux 5.18 a TCP skb keeps its delivery time through
/// loopback and is stamped there); then the receive call's return. The spans add up to the
/// round trip. Across CPUs the send call returns first; on one CPU the
/// woken peer usually runs before the call gets back to user space, and
/// answers first.
pub const STAMP_SPANS: [[&str; 5]; 2] = [
    [
        "send call → device queue",
        "device queue → device",
        "device → send returns",
        "send returns → reply stamped",
        "reply stamped → recv returns",
    ],
    [
        "send call → device queue",
        "device queue → device",
        "device → reply stamped",
        "reply stamped → send returns",
        "send returns → recv returns",
    ],
];

/// Which came first after the request reached the device (see [`STAMP_SPANS`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StampOrder {
    /// The send call returned before the reply was stamped.
    #[default]
    ReturnsFirst,
    /// The reply was stamped before the send call returned.
    ReplyFirst,
}

/// `--trace stamp` scratch: each span of each round trip, kept apart by
/// the order its events came in, and how many round trips lacked a stamp.
pub struct Stamps {
    spans: [[Histogram<u64>; 5]; 2],
    /// The round trips' own sum (t5 − t0), ns, per order: exact, where the
    /// histograms round.
    rtt_sum: [u64; 2],
    unusable: u64,
}

impl Default for Stamps {
    fn default() -> Self {
        Self {
            spans: std::array::from_fn(|_| {
                std::array::from_fn(|_| crate::samples::new_histogram())
            }),
            rtt_sum: [0; 2],
            unusable: 0,
        }
    }
}

impl Stamps {
    pub fn reset(&mut self) {
        self.spans.iter_mut().flatten().for_each(Histogram::reset);
        self.rtt_sum = [0; 2];
        self.unusable = 0;
    }

    /// One round trip: sent at `t0` (the send call's start), the send call
    /// returned at `t3`, the reply was stamped at `rx` and the
    /// receive call returned at `t5`; `sent`, the request's transmit stamps.
    #[inline]
    pub fn record(&mut self, t0: u64, sent: Sent, t3: u64, rx: Option<u64>, t5: u64) {
        let (order, at) = match (sent.queued, sent.device, rx) {
            (Some(q), Some(d), Some(r)) if t3 <= r => (0, [t0, q, d, t3, r, t5]),
            (Some(q), Some(d), Some(r)) => (1, [t0, q, d, r, t3, t5]),
            _ => {
                self.unusable += 1;
                return;
            }
        };
        if at.windows(2).any(|w| w[0] > w[1]) {
            self.unusable += 1;
            return;
        }
        for (h, w) in self.spans[order].iter_mut().zip(at.windows(2)) {
            h.saturating_record(w[1] - w[0]);
        }
        self.rtt_sum[order] += t5 - t0;
    }

    /// The trial's median of each span, in the order most of its round
    /// trips had; None when no round trip was stamped.
    pub fn medians(&self) -> Option<StampSpans> {
        let n = [self.spans[0][0].len(), self.spans[1][0].len()];
        let o = usize::from(n[1] > n[0]);
        (n[o] > 0).then(|| StampSpans {
            order: [StampOrder::ReturnsFirst, StampOrder::ReplyFirst][o],
            p50_ns: std::array::from_fn(|i| self.spans[o][i].value_at_quantile(0.5)),
            mean_ns: std::array::from_fn(|i| self.spans[o][i].mean()),
            rtt_mean_ns: self.rtt_sum[o] as f64 / n[o] as f64,
            stamped: n[o],
            other_order: n[1 - o],
            unusable: self.unusable,
        })
    }
}

/// A `--trace stamp` trial's spans (see [`STAMP_SPANS`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct StampSpans {
    /// The order of the send call's return and the reply's arrival in most
    /// round trips: the spans below are of those.
    pub order: StampOrder,
    /// Median of each span, ns, as [`STAMP_SPANS`] names them for `order`.
    /// Medians do not add: their sum is near the round trip's median, not it.
    pub p50_ns: [u64; 5],
    /// Mean of each span, ns: these add up to `rtt_mean_ns` (each round
    /// trip's spans share its clock reads), but for the histograms' rounding.
    pub mean_ns: [f64; 5],
    /// Mean round trip of the same round trips (send call's start to the
    /// receive call's return, the client's own reads), ns.
    pub rtt_mean_ns: f64,
    /// Round trips in `order`, every stamp present (the spans' sample).
    pub stamped: u64,
    /// Round trips stamped in the other order (left out of the spans).
    pub other_order: u64,
    /// Round trips left out because a stamp was missing or out of order.
    pub unusable: u64,
}
