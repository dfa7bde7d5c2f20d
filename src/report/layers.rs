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
    /// IP + loopback + softirq estimated two ways, where both ran.
    pub estimates: Vec<IpEstimate>,
}

/// The two estimates of what IP, the loopback device and the softirq cost
/// per round trip: the ladder's (tcp4 − tcp4-sockmap, whole round trips)
/// and the split's (twice the difference of the two rungs' send calls:
/// over loopback the receive path runs inside the sender's call).
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct IpEstimate {
    pub size_bytes: usize,
    /// The cases' knobs where they differ from the baseline (`placement=0/0`).
    pub knobs: String,
    pub server_cpu: usize,
    pub client_cpu: usize,
    /// tcp4 − tcp4-sockmap, median of per-round differences, µs.
    pub ladder_us: f64,
    /// 2 × (tcp4's send call − tcp4-sockmap's), µs.
    pub split_us: f64,
    /// Whether they are within 20% of the larger.
    pub agree: bool,
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
        let rung = |k: TransportKind| {
            cases.iter().find(|o| {
                o.case.transport == k
                    && o.case.size == size
                    && o.case.knobs == knobs
                    && o.case.netns == crate::spec::NetnsMode::Off
                    && !o.trials.is_empty()
            })
        };
        let chain: Vec<&CaseOutcome> = TransportKind::LADDER
            .into_iter()
            .filter(|&k| k != TransportKind::Udp4)
            .filter_map(rung)
            .collect();
        // Layers are read when the run asked for the ladder: two rungs or
        // more, one of them the ladder's own (a plain tcp4 + uds-stream
        // run has its ratio, not layers).
        if chain.len() < 2 || !chain.iter().any(|o| o.case.transport.is_rung()) {
            continue;
        }
        let first = chain[0];
        let top = *chain.last().expect("two rungs");
        let (server_cpu, client_cpu) = cpus(&first.case);
        let knobs_label = label(&first.case);
        let (top_us, _, _) = diff(top, None);
        let udp = rung(TransportKind::Udp4);
        let by = |c: &CaseOutcome| {
            c.trials
                .iter()
                .map(|t| (t.round, t.p50_ns as f64))
                .collect::<Vec<_>>()
        };
        for &o in chain.iter().chain(udp.iter()) {
            let twin = |trace: Trace| twin(cases, o, trace);
            let cost = |t: &CaseOutcome| stats::median(&stats::paired_ratios(&by(t), &by(o)));
            if let Some(traced) = twin(Trace::Count) {
                out.events.push(EventRow {
                    size_bytes: size,
                    knobs: knobs_label.clone(),
                    server_cpu,
                    client_cpu,
                    transport: o.case.transport.name(),
                    per_op: super::rows::TracedColumns::of(&traced.trials),
                    traced_over_untraced: cost(traced),
                });
            }
            if let Some(split) = twin(Trace::Split) {
                let sends: Vec<f64> = split
                    .trials
                    .iter()
                    .filter_map(|t| t.send_p50_ns.map(|v| v as f64 / 1000.0))
                    .collect();
                let rtt: Vec<f64> = split
                    .trials
                    .iter()
                    .map(|t| t.p50_ns as f64 / 1000.0)
                    .collect();
                let send_us = stats::median(&sends);
                out.splits.push(SplitRow {
                    size_bytes: size,
                    knobs: knobs_label.clone(),
                    server_cpu,
                    client_cpu,
                    transport: o.case.transport.name(),
                    send_us,
                    rest_us: stats::median(&rtt) - send_us,
                    traced_over_untraced: cost(split),
                });
            }
        }
        let mut row = |upper: &CaseOutcome, lower: Option<&CaseOutcome>, in_sum: bool| {
            let (us, ci, rounds) = diff(upper, lower);
            let u = upper.case.transport;
            out.layers.push(LayerRow {
                size_bytes: size,
                knobs: knobs_label.clone(),
                server_cpu,
                client_cpu,
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
        let mut sum = row(first, None, true);
        for w in chain.windows(2) {
            sum += row(w[1], Some(w[0]), true);
        }
        if let (Some(udp), Some(tcp)) = (rung(TransportKind::Udp4), rung(TransportKind::Tcp4)) {
            row(udp, Some(tcp), false);
        }
        out.sums.push(LayerSum {
            size_bytes: size,
            knobs: knobs_label.clone(),
            server_cpu,
            client_cpu,
            top: top.case.transport.name(),
            top_us,
            sum_us: sum,
            adds_up: (sum - top_us).abs() <= 0.1 * top_us,
        });
        if let (Some(tcp), Some(uds)) = (rung(TransportKind::Tcp4), rung(TransportKind::UdsStream))
        {
            let (extra, ci, _) = diff(tcp, Some(uds));
            let place = heading(server_cpu, client_cpu, &knobs_label);
            let mut a = format!(
                "{place}, {}: a tcp4 round trip takes {extra:.2} µs ({:.2}–{:.2}) more than uds-stream's",
                bytes(size),
                ci.low,
                ci.high
            );
            if let Some(sm) = rung(TransportKind::Tcp4Sockmap) {
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
                // A second estimate, from another method: over loopback the
                // receive path runs inside the sender's call, so the two
                // rungs' send calls differ by it, once per message.
                let send = |k: TransportKind| {
                    out.splits
                        .iter()
                        .find(|x| {
                            (x.transport, x.size_bytes, &x.knobs) == (k.name(), size, &knobs_label)
                        })
                        .map(|x| x.send_us)
                };
                if let (Some(t), Some(m)) =
                    (send(TransportKind::Tcp4), send(TransportKind::Tcp4Sockmap))
                {
                    let split_us = 2.0 * (t - m);
                    let agree = (ip - split_us).abs() <= 0.2 * ip.abs().max(split_us.abs());
                    a += &format!(
                        " A second estimate, from the send calls (--trace split): 2 × (tcp4's − tcp4-sockmap's) = {split_us:.2} µs; {}.",
                        if agree {
                            "the two agree within 20%".to_string()
                        } else {
                            format!(
                                "the two differ by {:.0}% ({})",
                                100.0 * (split_us - ip).abs() / ip.abs().max(split_us.abs()),
                                if server_cpu == client_cpu {
                                    "on one CPU the woken peer can run inside the sender's call, so a send call holds more than the sender's side"
                                } else {
                                    "the send calls hold the senders' side only; the difference of the rungs also holds the receivers', which sk_msg and TCP need not share"
                                }
                            )
                        }
                    );
                    out.estimates.push(IpEstimate {
                        size_bytes: size,
                        knobs: knobs_label.clone(),
                        server_cpu,
                        client_cpu,
                        ladder_us: ip,
                        split_us,
                        agree,
                    });
                }
            } else {
                a += " (tcp4-sockmap did not run, so the segment path is not separated).";
            }
            out.answers.push(a);
        }
    }
    per_byte(cases, (&label, &cpus), &mut out);
    out
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

/// A message size as a reader writes it: 64 B, 64 KiB, 1 MiB.
fn bytes(b: usize) -> String {
    match b {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

/// A block's heading: its placement, and its other knobs in brackets.
fn heading(server: usize, client: usize, knobs: &str) -> String {
    let others: Vec<&str> = knobs
        .split(' ')
        .filter(|k| !k.is_empty() && !k.starts_with("placement="))
        .collect();
    if others.is_empty() {
        placement_words(server, client)
    } else {
        format!("{} [{}]", placement_words(server, client), others.join(" "))
    }
}

/// "cross-CPU (0/1)" or "same CPU (0/0)".
pub fn placement_words(server: usize, client: usize) -> String {
    if server == client {
        format!("same CPU ({server}/{client})")
    } else {
        format!("cross-CPU ({server}/{client})")
    }
}

/// The "where the µs go" section of the table: one block per (size,
/// placement), each row a layer, then the sum check and the answers.
pub fn render(s: &mut String, e: &Explained, rounds: u32) {
    use std::fmt::Write as _;
    let _ = writeln!(
        s,
        "\nwhere the µs go: each layer is the paired difference of two rungs' p50, median over {rounds}\nrounds (95% CI); share: of the top rung's p50"
    );
    for sum in &e.sums {
        let rows: Vec<&LayerRow> = e
            .layers
            .iter()
            .filter(|l| {
                (l.size_bytes, &l.knobs, l.server_cpu, l.client_cpu)
                    == (sum.size_bytes, &sum.knobs, sum.server_cpu, sum.client_cpu)
            })
            .collect();
        let _ = writeln!(
            s,
            "{}, {}",
            heading(sum.server_cpu, sum.client_cpu, &sum.knobs),
            bytes(sum.size_bytes)
        );
        for l in rows {
            let rungs = match l.lower {
                Some(low) => format!("{} − {low}", l.upper),
                None => l.upper.to_string(),
            };
            let ci = format!("{:.2}–{:.2}", l.ci_low_us, l.ci_high_us);
            let _ = writeln!(
                s,
                "  {rungs:<26} {:>7.2} {ci:>13} {:>5.0}%  {}",
                l.us,
                100.0 * l.share,
                l.layer
            );
        }
        let _ = writeln!(
            s,
            "  the layers sum to {:.2} µs; {} measured {:.2} µs: {}",
            sum.sum_us,
            sum.top,
            sum.top_us,
            if sum.adds_up {
                "they add up (within ±10%)"
            } else {
                "NOT within ±10%: a layer's difference is unstable; raise --trials"
            }
        );
    }
    if !e.events.is_empty() {
        let _ = writeln!(
            s,
            "\nkernel events per round trip in the client's and the server's threads (--trace count, in\ntrials of their own); cost: the counted trials' p50 over the untraced ones'"
        );
        let mut place = None;
        for ev in &e.events {
            let here = (ev.size_bytes, ev.server_cpu, ev.client_cpu, &ev.knobs);
            if place != Some(here) {
                place = Some(here);
                let _ = writeln!(
                    s,
                    "{}, {}\n  {:<13} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>6}",
                    heading(ev.server_cpu, ev.client_cpu, &ev.knobs),
                    bytes(ev.size_bytes),
                    "transport",
                    "syscall",
                    "switch",
                    "wakeup",
                    "ipi",
                    "net-rx",
                    "xmit",
                    "copy",
                    "ready",
                    "cost"
                );
            }
            let _ = write!(s, "  {:<13}", ev.transport);
            for v in ev.per_op.as_array() {
                let _ = write!(s, " {:>7.2}", v.unwrap_or(f64::NAN));
            }
            let _ = writeln!(s, " {:>5.2}×", ev.traced_over_untraced);
        }
    }
    if !e.splits.is_empty() {
        let _ = writeln!(
            s,
            "\nthe client's send call and the rest of the round trip (--trace split, in trials of their own)"
        );
        let mut place = None;
        for x in &e.splits {
            let here = (x.size_bytes, x.server_cpu, x.client_cpu, &x.knobs);
            if place != Some(here) {
                place = Some(here);
                let _ = writeln!(
                    s,
                    "{}, {}\n  {:<13} {:>9} {:>9} {:>6} {:>6}",
                    heading(x.server_cpu, x.client_cpu, &x.knobs),
                    bytes(x.size_bytes),
                    "transport",
                    "send µs",
                    "rest µs",
                    "send",
                    "cost"
                );
            }
            let total = x.send_us + x.rest_us;
            let _ = writeln!(
                s,
                "  {:<13} {:>9.2} {:>9.2} {:>5.0}% {:>5.2}×",
                x.transport,
                x.send_us,
                x.rest_us,
                100.0 * x.send_us / total,
                x.traced_over_untraced
            );
        }
    }
    if let Some(first) = e.per_byte.first() {
        let _ = writeln!(
            s,
            "\nper byte moved, {} → {} (the round trip's growth ÷ twice the size added), ns/B (95% CI)",
            bytes(first.from_bytes),
            bytes(first.to_bytes)
        );
        let mut places: Vec<(usize, usize, &String)> = Vec::new();
        for b in &e.per_byte {
            if !places.contains(&(b.server_cpu, b.client_cpu, &b.knobs)) {
                places.push((b.server_cpu, b.client_cpu, &b.knobs));
            }
        }
        for (server, client, knobs) in places {
            let _ = writeln!(s, "{}", heading(server, client, knobs));
            for b in e
                .per_byte
                .iter()
                .filter(|b| (b.server_cpu, b.client_cpu, &b.knobs) == (server, client, knobs))
            {
                let ci = format!("{:.3}–{:.3}", b.ci_low, b.ci_high);
                let _ = writeln!(s, "  {:<13} {:>7.3} {ci:>15}", b.transport, b.ns_per_byte);
            }
        }
    }
    for a in &e.answers {
        s.push('\n');
        super::table::prose_into(s, a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Knobs;
    use crate::workload::run::TrialPoint;

    fn outcome(kind: TransportKind, p50_us: &[f64]) -> CaseOutcome {
        sized(kind, 64, p50_us)
    }

    fn sized(kind: TransportKind, size: usize, p50_us: &[f64]) -> CaseOutcome {
        let knobs = Knobs {
            nodelay: true,
            wait: crate::spec::Wait::Block,
            mode: crate::spec::Mode::Thread,
            placement: None,
            sndbuf: None,
            rcvbuf: None,
            busy_poll: None,
            trace: crate::spec::Trace::Off,
            sysctl: [0; crate::spec::MAX_SYSCTLS],
            copy: 0,
        };
        let mut o = CaseOutcome {
            case: Case {
                transport: kind,
                size,
                response: size,
                netns: crate::spec::NetnsMode::Off,
                rate: 0,
                knobs,
            },
            hist: crate::samples::new_histogram(),
            trials: Vec::new(),
            usage: Default::default(),
            buffers: Default::default(),
            time_wait: None,
            load: None,
        };
        o.trials = p50_us
            .iter()
            .enumerate()
            .map(|(r, &v)| TrialPoint {
                round: r as u32,
                p50_ns: (v * 1000.0) as u64,
                ..TrialPoint::default()
            })
            .collect();
        o
    }

    /// Steps are paired differences, the floor is whole, the sum is checked
    /// against the top rung, and the answer splits TCP's extra time.
    #[test]
    fn the_layers_are_paired_differences_that_add_up() {
        // Round 2 is slow for every rung alike: pairing removes it.
        let cases = vec![
            outcome(TransportKind::ShmSpin, &[1.0, 1.0, 9.0, 1.0, 1.0]),
            outcome(TransportKind::UdsStream, &[8.0, 8.0, 16.0, 8.0, 8.0]),
            outcome(TransportKind::Tcp4Sockmap, &[7.0, 7.0, 15.0, 7.0, 7.0]),
            outcome(TransportKind::Tcp4, &[12.0, 12.0, 20.0, 12.0, 12.0]),
        ];
        let e = explain(&cases, |_| String::new(), |_| (0, 1));
        let steps: Vec<(&str, Option<&str>, f64)> =
            e.layers.iter().map(|l| (l.upper, l.lower, l.us)).collect();
        assert_eq!(
            steps,
            vec![
                ("shm-spin", None, 1.0),
                ("uds-stream", Some("shm-spin"), 7.0),
                ("tcp4-sockmap", Some("uds-stream"), -1.0),
                ("tcp4", Some("tcp4-sockmap"), 5.0),
            ]
        );
        assert_eq!(e.layers[1].ci_low_us, 7.0, "paired: the slow round cancels");
        assert_eq!(e.sums.len(), 1);
        assert_eq!((e.sums[0].top_us, e.sums[0].sum_us), (12.0, 12.0));
        assert!(e.sums[0].adds_up);
        let a = &e.answers[0];
        assert!(a.contains("4.00 µs") && a.contains("takes 5.00 µs"), "{a}");
        assert!(
            a.contains("more than all of it") && a.contains("1.00 µs less"),
            "{a}"
        );
    }

    /// A single rung, or tcp4 and uds-stream alone (a plain run), explain nothing.
    #[test]
    fn one_rung_or_a_plain_run_explains_nothing() {
        for cases in [
            vec![outcome(TransportKind::Futex, &[10.0; 5])],
            vec![
                outcome(TransportKind::Tcp4, &[10.0; 5]),
                outcome(TransportKind::UdsStream, &[8.0; 5]),
            ],
        ] {
            let e = explain(&cases, |_| String::new(), |_| (0, 1));
            assert!(e.layers.is_empty() && e.sums.is_empty() && e.answers.is_empty());
        }
    }

    /// Per byte: the growth from the smallest size to the largest over
    /// twice the bytes added (a round trip moves the message each way).
    #[test]
    fn per_byte_is_the_growth_over_the_bytes_moved() {
        let cases = vec![
            sized(TransportKind::Futex, 64, &[5.0; 5]),
            sized(TransportKind::Tcp4, 64, &[10.0; 5]),
            sized(TransportKind::Futex, 1064, &[6.0; 5]),
            sized(TransportKind::Tcp4, 1064, &[12.0; 5]),
        ];
        let e = explain(&cases, |_| String::new(), |_| (0, 1));
        let got: Vec<(&str, f64)> = e
            .per_byte
            .iter()
            .map(|b| (b.transport, b.ns_per_byte))
            .collect();
        assert_eq!(got, vec![("futex", 0.5), ("tcp4", 1.0)]);
        assert_eq!(
            (e.per_byte[1].from_bytes, e.per_byte[1].to_bytes),
            (64, 1064)
        );
    }

    /// Split twins of tcp4 and tcp4-sockmap give the second estimate of
    /// IP + loopback + softirq: twice the difference of their send calls.
    #[test]
    fn the_split_send_calls_give_a_second_estimate() {
        let split = |kind, rtt: f64, send_us: f64| {
            let mut o = outcome(kind, &[rtt; 5]);
            o.case.knobs.trace = crate::spec::Trace::Split;
            for t in &mut o.trials {
                t.send_p50_ns = Some((send_us * 1000.0) as u64);
            }
            o
        };
        let cases = vec![
            outcome(TransportKind::UdsStream, &[8.0; 5]),
            outcome(TransportKind::Tcp4Sockmap, &[7.0; 5]),
            outcome(TransportKind::Tcp4, &[12.0; 5]),
            split(TransportKind::Tcp4Sockmap, 7.1, 1.0),
            split(TransportKind::Tcp4, 12.1, 3.4),
        ];
        let e = explain(&cases, |_| String::new(), |_| (0, 1));
        assert_eq!(e.splits.len(), 2);
        let est = &e.estimates[0];
        assert_eq!(est.ladder_us, 5.0);
        assert!((est.split_us - 4.8).abs() < 1e-9, "{est:?}");
        assert!(est.agree);
        assert!(
            e.answers[0].contains("= 4.80 µs; the two agree within 20%"),
            "{}",
            e.answers[0]
        );
    }
}
