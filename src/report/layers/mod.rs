//! Stage: results. Where the microseconds of a round trip go: the ladder
//! of mechanisms ([`TransportKind::LADDER`]) read as layers. Each rung adds
//! one thing to the rung below it (a wake-up, a kernel queue, the socket
//! layer, TCP's calls, IP + loopback + softirq); the layer's cost is the
//! paired difference of the two rungs' per-round medians (their trials ran
//! back to back), median over rounds with a 95% bootstrap CI. The steps of
//! the chain add up to the top rung's round trip by construction of the
//! medians only approximately, so the sum is checked against the top rung
//! measured in the same run.

use crate::plan::Case;
use crate::spec::{Knobs, TransportKind};
use crate::stats::{self, Ci};
use crate::workload::run::CaseOutcome;

mod render;
mod stamps;
use render::{bytes, heading};
pub use render::{placement_words, render};
pub use stamps::StampRow;

/// What a rung adds to the one below it, as the table says it.
fn adds(upper: TransportKind, lower: TransportKind) -> &'static str {
    use TransportKind as K;
    match (upper, lower) {
        (K::Futex, K::ShmSpin) => "sleep + wake-up (futex; IPI, idle exit)",
        (K::Pipe, K::Futex) => "a kernel queue: calls + copies (pipe)",
        (K::Socketpair, K::Pipe) => "the socket layer: an skb per message",
        (K::UdsStream, K::Socketpair) => "a bound socket over a pair (control ~0)",
        (K::Tcp4Sockmap, K::UdsStream) => "TCP's socket calls over AF_UNIX's",
        (K::Tcp4, K::Tcp4Sockmap) => "segments: IP, lo, softirq, TCP rx",
        (K::Udp4, K::Tcp4) => "UDP over TCP (not in the sum)",
        _ => "the layers between these rungs",
    }
}

/// The floor: the cheapest rung, whole.
fn floor(kind: TransportKind) -> &'static str {
    match kind {
        TransportKind::ShmSpin => "cache lines only (one CPU: two yields)",
        _ => "the cheapest rung, whole",
    }
}

/// One layer of one (size, placement and knobs): `upper − lower`, or the
/// floor (`lower` null).
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct LayerRow {
    /// Message size, bytes.
    pub size_bytes: usize,
    /// The cases' knobs where they differ from the baseline (`placement=0/0`).
    pub knobs: String,
    /// Server and client CPU of the pair.
    pub server_cpu: usize,
    pub client_cpu: usize,
    /// The rung on top.
    pub upper: &'static str,
    /// The rung below it; null for the floor.
    pub lower: Option<&'static str>,
    /// What the upper rung adds.
    pub layer: &'static str,
    /// Median over rounds of the per-round difference of the p50s, µs.
    pub us: f64,
    /// 95% bootstrap CI of `us`.
    pub ci_low_us: f64,
    pub ci_high_us: f64,
    /// `us` over the top rung's p50 (the chain's last rung).
    pub share: f64,
    /// Whether the row is a step of the chain that sums to the top rung.
    pub in_sum: bool,
    /// Rounds paired.
    pub rounds: usize,
}

/// Whether the chain's steps add up to the top rung's round trip.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct LayerSum {
    pub size_bytes: usize,
    pub knobs: String,
    pub server_cpu: usize,
    pub client_cpu: usize,
    /// The top rung, and the median of its per-round p50s, µs.
    pub top: &'static str,
    pub top_us: f64,
    /// The floor plus every step, µs.
    pub sum_us: f64,
    /// Whether `sum_us` is within ±10% of `top_us`.
    pub adds_up: bool,
}

/// Kernel events per round trip of one rung, counted in its `--trace
/// count` twin's trials, and what counting cost.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct EventRow {
    pub size_bytes: usize,
    /// The cases' knobs where they differ from the baseline (`placement=0/0`).
    pub knobs: String,
    pub server_cpu: usize,
    pub client_cpu: usize,
    pub transport: &'static str,
    /// Events per round trip, in the client's and the server's threads.
    #[serde(flatten)]
    pub per_op: super::rows::TracedColumns,
    /// Counting's cost: the counted twin's p50 over the untraced case's,
    /// median of per-round ratios.
    pub traced_over_untraced: f64,
}

/// Where the client's round trip is spent, in its `--trace split` twin:
/// inside its send call, and from the call's return to its receive's.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct SplitRow {
    pub size_bytes: usize,
    /// The cases' knobs where they differ from the baseline (`placement=0/0`).
    pub knobs: String,
    pub server_cpu: usize,
    pub client_cpu: usize,
    pub transport: &'static str,
    /// The send call, median over trials of each trial's median, µs.
    pub send_us: f64,
    /// The twin's round trip minus the send call, µs.
    pub rest_us: f64,
    /// The twin's p50 over the untraced case's, median of per-round ratios.
    pub traced_over_untraced: f64,
}

/// What a byte costs on one rung: the round trip's growth from the
/// smallest size to the largest, per byte moved (a round trip moves the
/// message each way: 2 × the size difference).
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct PerByteRow {
    pub transport: &'static str,
    /// The cases' knobs where they differ from the baseline.
    pub knobs: String,
    pub server_cpu: usize,
    pub client_cpu: usize,
    /// The two sizes compared, bytes.
    pub from_bytes: usize,
    pub to_bytes: usize,
    /// Median over rounds of (p50 at `to_bytes` − p50 at `from_bytes`) ÷
    /// (2 × (to_bytes − from_bytes)), ns per byte, with its 95% CI.
    pub ns_per_byte: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

/// The ladder read as layers: rows, sum checks, and the answer to "how
/// much of TCP's extra time do IP, loopback and the softirq explain".
#[derive(Debug, Clone, Default, serde::Serialize, schemars::JsonSchema)]
pub struct Explained {
    pub layers: Vec<LayerRow>,
    pub sums: Vec<LayerSum>,
    /// One sentence per (size, placement), when tcp4 and uds-stream ran.
    pub answers: Vec<String>,
    /// `--trace count`: events per round trip of each rung.
    pub events: Vec<EventRow>,
    /// With two sizes or more: each rung's cost per byte.
    pub per_byte: Vec<PerByteRow>,
    /// `--trace split`: each rung's send call and the rest.
    pub splits: Vec<SplitRow>,
    /// `--trace stamp`: tcp4's and udp4's round trips split by the kernel's stamps.
    pub stamps: Vec<StampRow>,
    /// IP + loopback + softirq estimated two ways, where both ran.
    pub estimates: Vec<IpEstimate>,
}

/// The estimates of what the segment path (IP, the loopback device, the
/// softirq, TCP's receive) costs per round trip: the ladder's (tcp4 −
/// tcp4-sockmap, whole round trips), the split's (twice the difference of
/// the two rungs' send calls: over loopback the receive path runs inside
/// the sender's call) and the stamps' (twice tcp4's device queue → send
/// returns, less futex's send call).
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct IpEstimate {
    pub size_bytes: usize,
    /// The cases' knobs where they differ from the baseline (`placement=0/0`).
    pub knobs: String,
    pub server_cpu: usize,
    pub client_cpu: usize,
    /// tcp4 − tcp4-sockmap, median of per-round differences, µs.
    pub ladder_us: f64,
    /// 2 × (tcp4's send call − tcp4-sockmap's), µs, where both were timed.
    pub split_us: Option<f64>,
    /// Whether it is within 20% of the ladder's.
    pub agree: Option<bool>,
    /// From tcp4's stamps: 2 × (device queue → send returns − futex's send
    /// call, the cost of waking the peer), µs; where the send call returns
    /// before the reply comes and futex's send call was timed.
    pub stamps_us: Option<f64>,
    /// Whether the stamps' estimate is within 20% of the ladder's.
    pub stamps_agree: Option<bool>,
}

/// Per-round p50s of a case, µs.
fn by_round(o: &CaseOutcome) -> Vec<(u32, f64)> {
    o.trials
        .iter()
        .map(|t| (t.round, t.p50_ns as f64 / 1000.0))
        .collect()
}

/// Median and CI of `upper − lower`, paired by round.
fn diff(upper: &CaseOutcome, lower: Option<&CaseOutcome>) -> (f64, Ci, usize) {
    let up = by_round(upper);
    let d: Vec<f64> = match lower {
        None => up.iter().map(|&(_, v)| v).collect(),
        Some(l) => {
            let low = by_round(l);
            up.iter()
                .filter_map(|&(r, a)| low.iter().find(|&&(q, _)| q == r).map(|&(_, b)| a - b))
                .collect()
        }
    };
    let ci = stats::bootstrap_ci(&d, stats::median, 0x1a7e ^ upper.case.size as u64);
    (stats::median(&d), ci, d.len())
}

/// The case that is `o` traced by `trace` (its twin in the same rounds).
fn twin<'a>(
    cases: &'a [CaseOutcome],
    o: &CaseOutcome,
    trace: crate::spec::Trace,
) -> Option<&'a CaseOutcome> {
    let mut k = o.case.knobs;
    k.trace = trace;
    cases.iter().find(|t| {
        t.case.transport == o.case.transport
            && t.case.size == o.case.size
            && t.case.knobs == k
            && t.case.netns == o.case.netns
            && !t.trials.is_empty()
    })
}

/// The layers of a latency run whose cases hold two or more rungs of the
/// ladder at the same size and knobs; empty otherwise. `cpus` gives a
/// case's (server, client) CPUs.
pub fn explain(
    cases: &[CaseOutcome],
    label: impl Fn(&Case) -> String,
    cpus: impl Fn(&Case) -> (usize, usize),
) -> Explained {
    let mut out = Explained::default();
    use crate::spec::Trace;
    let mut groups: Vec<(usize, crate::spec::Knobs)> = Vec::new();
    for o in cases {
        let g = (o.case.size, o.case.knobs);
        let untraced = o.case.knobs.trace == Trace::Off;
        if o.case.netns == crate::spec::NetnsMode::Off && untraced && !groups.contains(&g) {
            groups.push(g);
        }
    }
    for (size, knobs) in groups {
        let mut g = Group {
            cases,
            size,
            knobs,
            label: String::new(),
            server_cpu: 0,
            client_cpu: 0,
        };
        let chain: Vec<&CaseOutcome> = TransportKind::LADDER
            .into_iter()
            .filter(|&k| k != TransportKind::Udp4)
            .filter_map(|k| g.rung(k))
            .collect();
        // Layers are read when the run asked for the ladder: two rungs or
        // more, one of them the ladder's own (a plain tcp4 + uds-stream
        // run has its ratio, not layers).
        if chain.len() < 2 || !chain.iter().any(|o| o.case.transport.is_rung()) {
            continue;
        }
        g.label = label(&chain[0].case);
        (g.server_cpu, g.client_cpu) = cpus(&chain[0].case);
        let udp = g.rung(TransportKind::Udp4);
        let measured: Vec<&CaseOutcome> = chain.iter().copied().chain(udp).collect();
        traced(&g, &measured, &mut out);
        steps(&g, &chain, &mut out);
        if let Some(a) = answer(&g, &mut out) {
            out.answers.push(a);
        }
    }
    per_byte(cases, (&label, &cpus), &mut out);
    out
}

/// One (size, knobs) of a run: the cases a group of layers is read from.
struct Group<'a> {
    cases: &'a [CaseOutcome],
    size: usize,
    knobs: Knobs,
    /// The knobs where they differ from the baseline, and the CPUs.
    label: String,
    server_cpu: usize,
    client_cpu: usize,
}

impl<'a> Group<'a> {
    /// The untraced case of rung `k`, if it ran.
    fn rung(&self, k: TransportKind) -> Option<&'a CaseOutcome> {
        self.cases.iter().find(|o| {
            o.case.transport == k
                && o.case.size == self.size
                && o.case.knobs == self.knobs
                && o.case.netns == crate::spec::NetnsMode::Off
                && !o.trials.is_empty()
        })
    }
}

/// Each rung's traced twins: its events per round trip (`count`) and its
/// send call apart (`split`), with what tracing cost.
fn traced(g: &Group<'_>, rungs: &[&CaseOutcome], out: &mut Explained) {
    use crate::spec::Trace;
    let by = |c: &CaseOutcome| {
        c.trials
            .iter()
            .map(|t| (t.round, t.p50_ns as f64))
            .collect::<Vec<_>>()
    };
    for &o in rungs {
        let cost = |t: &CaseOutcome| stats::median(&stats::paired_ratios(&by(t), &by(o)));
        if let Some(counted) = twin(g.cases, o, Trace::Count) {
            out.events.push(EventRow {
                size_bytes: g.size,
                knobs: g.label.clone(),
                server_cpu: g.server_cpu,
                client_cpu: g.client_cpu,
                transport: o.case.transport.name(),
                per_op: super::rows::TracedColumns::of(&counted.trials),
                traced_over_untraced: cost(counted),
            });
        }
        if let Some(split) = twin(g.cases, o, Trace::Split) {
            let us = |v: u64| v as f64 / 1000.0;
            let sends: Vec<f64> = split
                .trials
                .iter()
                .filter_map(|t| t.send_p50_ns.map(us))
                .collect();
            let rtt: Vec<f64> = split.trials.iter().map(|t| us(t.p50_ns)).collect();
            let send_us = stats::median(&sends);
            out.splits.push(SplitRow {
                size_bytes: g.size,
                knobs: g.label.clone(),
                server_cpu: g.server_cpu,
                client_cpu: g.client_cpu,
                transport: o.case.transport.name(),
                send_us,
                rest_us: stats::median(&rtt) - send_us,
                traced_over_untraced: cost(split),
            });
        }
        if let Some(st) = twin(g.cases, o, Trace::Stamp) {
            out.stamps.extend(stamps::row(g, st, cost(st)));
        }
    }
}

/// The floor, each step of the chain, udp4 beside it, and the sum check.
fn steps(g: &Group<'_>, chain: &[&CaseOutcome], out: &mut Explained) {
    let top = *chain.last().expect("two rungs");
    let (top_us, _, _) = diff(top, None);
    let mut row = |upper: &CaseOutcome, lower: Option<&CaseOutcome>, in_sum: bool| {
        let (us, ci, rounds) = diff(upper, lower);
        let u = upper.case.transport;
        out.layers.push(LayerRow {
            size_bytes: g.size,
            knobs: g.label.clone(),
            server_cpu: g.server_cpu,
            client_cpu: g.client_cpu,
            upper: u.name(),
            lower: lower.map(|l| l.case.transport.name()),
            layer: match lower {
                None => floor(u),
                Some(l) => adds(u, l.case.transport),
            },
            us,
            ci_low_us: ci.low,
            ci_high_us: ci.high,
            share: us / top_us,
            in_sum,
            rounds,
        });
        us
    };
    let mut sum = row(chain[0], None, true);
    for w in chain.windows(2) {
        sum += row(w[1], Some(w[0]), true);
    }
    if let (Some(udp), Some(tcp)) = (g.rung(TransportKind::Udp4), g.rung(TransportKind::Tcp4)) {
        row(udp, Some(tcp), false);
    }
    out.sums.push(LayerSum {
        size_bytes: g.size,
        knobs: g.label.clone(),
        server_cpu: g.server_cpu,
        client_cpu: g.client_cpu,
        top: top.case.transport.name(),
        top_us,
        sum_us: sum,
        adds_up: (sum - top_us).abs() <= 0.1 * top_us,
    });
}

/// The answer to the claim, when tcp4 and uds-stream ran: TCP's extra time,
/// how much of it the segment path is, and the second estimate of that
/// path from the send calls (kept in `out.estimates`).
fn answer(g: &Group<'_>, out: &mut Explained) -> Option<String> {
    let (tcp, uds) = (
        g.rung(TransportKind::Tcp4)?,
        g.rung(TransportKind::UdsStream)?,
    );
    let (extra, ci, _) = diff(tcp, Some(uds));
    let place = heading(g.server_cpu, g.client_cpu, &g.label);
    let mut a = format!(
        "{place}, {}: a tcp4 round trip takes {extra:.2} µs ({:.2}–{:.2}) more than uds-stream's",
        bytes(g.size),
        ci.low,
        ci.high
    );
    let Some(sm) = g.rung(TransportKind::Tcp4Sockmap) else {
        a += " (tcp4-sockmap did not run, so the segment path is not separated).";
        return Some(a);
    };
    let (ip, ci, _) = diff(tcp, Some(sm));
    let rest = extra - ip;
    a += &format!(
        "; the segment path (skbs, IP, loopback, softirq, TCP's receive; tcp4 − tcp4-sockmap) takes {ip:.2} µs ({:.2}–{:.2})",
        ci.low, ci.high
    );
    if rest >= 0.0 {
        a += &format!(
            ", {:.0}% of it; the other {rest:.2} µs are TCP's socket calls over AF_UNIX's.",
            100.0 * ip / extra
        );
    } else {
        a += &format!(
            ", more than all of it: without them TCP's socket calls cost {:.2} µs less than AF_UNIX's.",
            -rest
        );
    }
    // A second estimate, from another method: over loopback the receive
    // path runs inside the sender's call, so the two rungs' send calls
    // differ by it, once per message.
    let send = |k: TransportKind| {
        out.splits
            .iter()
            .find(|x| (x.transport, x.size_bytes, &x.knobs) == (k.name(), g.size, &g.label))
            .map(|x| x.send_us)
    };
    let near = |v: f64| (ip - v).abs() <= 0.2 * ip.abs().max(v.abs());
    let off_by = |v: f64| 100.0 * (v - ip).abs() / ip.abs().max(v.abs());
    let one_cpu = g.server_cpu == g.client_cpu;
    let split_us = match (send(TransportKind::Tcp4), send(TransportKind::Tcp4Sockmap)) {
        (Some(t), Some(m)) => Some(2.0 * (t - m)),
        _ => None,
    };
    if let Some(v) = split_us {
        a += &format!(
            " A second estimate, from the send calls (--trace split): 2 × (tcp4's − tcp4-sockmap's) = {v:.2} µs; {}.",
            if near(v) {
                "the two agree within 20%".to_string()
            } else {
                format!(
                    "the two differ by {:.0}% ({})",
                    off_by(v),
                    if one_cpu {
                        "on one CPU the woken peer can run inside the sender's call, so a send call holds more than the sender's side"
                    } else {
                        "the send calls hold the senders' side only; the difference of the rungs also holds the receivers', which sk_msg and TCP need not share"
                    }
                )
            }
        );
    }
    // A third, from the kernel's stamps.
    let stamps_us = stamps::estimate(g, out, send(TransportKind::Futex), &mut a, near, off_by);
    if split_us.is_some() || stamps_us.is_some() {
        out.estimates.push(IpEstimate {
            size_bytes: g.size,
            knobs: g.label.clone(),
            server_cpu: g.server_cpu,
            client_cpu: g.client_cpu,
            ladder_us: ip,
            split_us,
            agree: split_us.map(near),
            stamps_us,
            stamps_agree: stamps_us.map(near),
        });
    }
    Some(a)
}

/// Each untraced rung's ns per byte between its smallest and largest size
/// at the same knobs, when the run asked for the ladder (a rung of its own
/// ran).
fn per_byte(
    cases: &[CaseOutcome],
    (label, cpus): (&impl Fn(&Case) -> String, &impl Fn(&Case) -> (usize, usize)),
    out: &mut Explained,
) {
    if out.layers.is_empty() {
        return;
    }
    let untraced = |o: &&CaseOutcome| {
        o.case.knobs.trace == crate::spec::Trace::Off
            && o.case.netns == crate::spec::NetnsMode::Off
            && !o.trials.is_empty()
    };
    let mut done: Vec<(TransportKind, Knobs)> = Vec::new();
    for o in cases.iter().filter(untraced) {
        let key = (o.case.transport, o.case.knobs);
        if done.contains(&key) {
            continue;
        }
        done.push(key);
        let same: Vec<&CaseOutcome> = cases
            .iter()
            .filter(untraced)
            .filter(|c| (c.case.transport, c.case.knobs) == key)
            .collect();
        let (Some(small), Some(large)) = (
            same.iter().min_by_key(|c| c.case.size),
            same.iter().max_by_key(|c| c.case.size),
        ) else {
            continue;
        };
        if small.case.size == large.case.size {
            continue;
        }
        let moved = 2.0 * (large.case.size - small.case.size) as f64;
        let (us, ci, _) = diff(large, Some(small));
        let (server_cpu, client_cpu) = cpus(&o.case);
        out.per_byte.push(PerByteRow {
            transport: o.case.transport.name(),
            knobs: label(&o.case),
            server_cpu,
            client_cpu,
            from_bytes: small.case.size,
            to_bytes: large.case.size,
            ns_per_byte: us * 1000.0 / moved,
            ci_low: ci.low * 1000.0 / moved,
            ci_high: ci.high * 1000.0 / moved,
        });
    }
}

#[cfg(test)]
mod tests;
