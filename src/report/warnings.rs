//! Stage: results. Result-quality warnings: each says what is wrong with the
//! conditions or the numbers and what to try. Printed to stderr and written
//! into summary.json.

use super::{CaseJson, CaseRow, Fingerprint, ThroughputRow};
use crate::plan::Plan;
use crate::spec::Wait;
use crate::spec::size_label;

/// One warning about the trustworthiness of a result.
#[derive(Debug, Clone, serde::Serialize, PartialEq, schemars::JsonSchema)]
pub struct Warning {
    /// Stable identifier (`shared-cpu`, `virtualized`, `noisy-tail`, ...).
    pub code: &'static str,
    /// What is wrong with the conditions or the numbers.
    pub message: String,
    /// What to try.
    pub fix: String,
}

fn w(code: &'static str, message: String, fix: &str) -> Warning {
    Warning {
        code,
        message,
        fix: fix.to_string(),
    }
}

/// Checks of the conditions: build, placement, machine.
pub fn general(plan: &Plan, env: &Fingerprint) -> Vec<Warning> {
    let mut out = Vec::new();
    if env.build_profile == "debug" {
        out.push(w(
            "debug-build",
            "sockbench was built without optimisation; the loop's own cost is inflated".into(),
            "build with `cargo build --release` (or run `cargo run --release -- ...`)",
        ));
    }
    let placements: Vec<(usize, usize)> = (0..plan.pairs).map(|p| plan.placement(p)).collect();
    if let Some((s, _)) = placements.iter().find(|(s, c)| s == c) {
        out.push(w(
            "shared-cpu",
            format!("server and client share CPU {s}: every message includes a context switch; this is the same-core case"),
            "for the cross-core case give --server-cpu and --client-cpu different CPUs",
        ));
        if plan.opts.wait == Wait::Spin {
            out.push(w(
                "spin-shared-cpu",
                "--wait spin with both ends on one CPU: each side spins until preempted, so times measure the scheduler's time slice".into(),
                "use --wait block, or put the ends on different CPUs",
            ));
        }
    }
    if plan.pairs > 1 {
        let mut threads: Vec<usize> = placements.iter().flat_map(|&(s, c)| [s, c]).collect();
        threads.sort_unstable();
        threads.dedup();
        if threads.len() < 2 * plan.pairs {
            out.push(w(
                "pairs-share-cpus",
                format!(
                    "{} pairs ({} pinned threads) run on {} CPU(s): they compete for CPU time, so this measures contention too",
                    plan.pairs,
                    2 * plan.pairs,
                    threads.len()
                ),
                "that is the point of --pairs on a small machine; compare against --pairs 1 in the same conditions",
            ));
        }
    }
    if env.cpus_allowed.split([',', '-']).count() < 2 && !env.cpus_allowed.contains('-') {
        out.push(w(
            "one-cpu",
            format!(
                "only CPU(s) {} are available: other work shares the measured CPUs",
                env.cpus_allowed
            ),
            "run on a machine (or cgroup) with at least two CPUs",
        ));
    }
    match env.cpufreq_governor.as_deref() {
        Some("performance") | None => {}
        Some(g) => out.push(w(
            "governor",
            format!("CPU frequency governor is '{g}': clock speed can change during the run"),
            "set the governor to performance (cpupower frequency-set -g performance)",
        )),
    }
    if let Some(v) = &env.virtualization {
        out.push(w(
            "virtualized",
            format!("running under a {v}: other tenants and vCPU scheduling add noise and tails"),
            "compare A B B A within one run (sockbench interleaves cases) and repeat runs; prefer bare metal for absolute numbers",
        ));
    }
    out
}

/// A case as a warning names it: `tcp4 64`, `tcp4 512/16K`, `tcp4@veth 64`.
fn case_name(k: &super::CaseKey) -> String {
    let transport = match k.netns {
        crate::spec::NetnsMode::Off => k.transport.to_string(),
        m => format!("{}@{}", k.transport, m.name()),
    };
    if matches!(k.workload, "rr" | "connect" | "load") {
        format!(
            "{transport} {}/{}",
            size_label(k.size_bytes),
            size_label(k.response_bytes)
        )
    } else {
        format!("{transport} {}", size_label(k.size_bytes))
    }
}

/// A latency row as a warning names it: its case, and under `load` the
/// offered rate (`uds-stream 512/16K @ 5000/s`).
fn row_name(r: &CaseRow) -> String {
    match &r.load {
        Some(l) => format!("{} @ {}/s", case_name(&r.key), l.offered_per_s),
        None => case_name(&r.key),
    }
}

/// One warning for every case a check flags: `what`, then each case with
/// its figure; none if no case is flagged.
fn grouped(
    code: &'static str,
    what: &str,
    cases: Vec<(String, String)>,
    fix: &str,
) -> Option<Warning> {
    if cases.is_empty() {
        return None;
    }
    let list: Vec<String> = cases
        .into_iter()
        .map(|(c, v)| format!("{c} ({v})"))
        .collect();
    Some(w(code, format!("{what}: {}", list.join(", ")), fix))
}

/// Checks of latency numbers (latency, rr, connect).
pub fn latency(cases: &[CaseJson<CaseRow>]) -> Vec<Warning> {
    let mut out = Vec::new();
    let min_p50 = cases.iter().map(|c| c.row.p50_ns).min().unwrap_or(0);
    if let Some(c) = cases.first()
        && min_p50 > 0
        && c.row.clock_read_ns > 0.01 * min_p50 as f64
    {
        out.push(w(
            "clock-cost",
            format!(
                "one clock read costs {:.0} ns, over 1% of the smallest median ({:.2} µs)",
                c.row.clock_read_ns,
                min_p50 as f64 / 1e3
            ),
            "check the clocksource (tsc is cheapest); compare with batch timing (cargo bench)",
        ));
    }
    let rows = || cases.iter().map(|c| &c.row);
    out.extend(grouped(
        "noisy-tail",
        "p99 is over 10× the median",
        rows()
            .filter(|r| r.p50_ns > 0 && r.p99_ns as f64 > 10.0 * r.p50_ns as f64)
            .map(|r| {
                (
                    row_name(r),
                    format!("{:.0}×", r.p99_ns as f64 / r.p50_ns as f64),
                )
            })
            .collect(),
        "idle the machine, isolate the measured CPUs (isolcpus, nohz_full), or run longer",
    ));
    out.extend(grouped(
        "wide-ci",
        "the median's 95% CI spans over 10% of it",
        rows()
            .filter_map(|r| {
                let width = (r.p50_ci_high_ns - r.p50_ci_low_ns) / r.p50_ns.max(1) as f64;
                (r.key.trials >= 2 && width > 0.10)
                    .then(|| (row_name(r), format!("{:.0}%", width * 100.0)))
            })
            .collect(),
        "raise --trials or --duration, and keep other load off the machine",
    ));
    out.extend(grouped(
        "saturated",
        "answered under 95% of the offered rate: requests queue and latency grows with the run's length",
        rows()
            .filter_map(|r| {
                let l = r.load.as_ref()?;
                let share = r.ops_per_s / l.offered_per_s.max(1) as f64;
                (share < crate::workload::sweep::ANSWERED_SHARE)
                    .then(|| (row_name(r), format!("{:.0}%", share * 100.0)))
            })
            .collect(),
        "this rate is past what the pair can serve: compare lower rates, or read it as the saturation point",
    ));
    out.extend(grouped(
        "lost-requests",
        "requests were never answered (counted lost, left out of every latency and of answered/s)",
        rows()
            .filter_map(|r| {
                let l = r.load.as_ref().filter(|l| l.requests_lost > 0)?;
                Some((
                    row_name(r),
                    format!(
                        "{:.2}% of {}",
                        100.0 * l.requests_lost as f64 / l.requests_sent.max(1) as f64,
                        l.requests_sent
                    ),
                ))
            })
            .collect(),
        "datagrams are dropped by a full receive queue: offer less, or raise net.core.rmem_default (udp4) or net.unix.max_dgram_qlen (uds-dgram)",
    ));
    out.extend(grouped(
        "time-wait-client",
        "TCP sockets in TIME_WAIT on client ports after the case, each holding an ephemeral port for 60 s (the server should have closed first)",
        rows()
            .filter_map(|r| r.time_wait_client.filter(|&n| n > 0).map(|n| (row_name(r), n.to_string())))
            .collect(),
        "see net.ipv4.ip_local_port_range and net.ipv4.tcp_tw_reuse in env.json; AF_UNIX sockets have no TIME_WAIT",
    ));
    out
}

/// Checks of transfer numbers (throughput).
pub fn throughput(cases: &[CaseJson<ThroughputRow>]) -> Vec<Warning> {
    let mut out = Vec::new();
    let rows = || cases.iter().map(|c| &c.row);
    out.extend(grouped(
        "loss",
        "messages were lost; the rate counts delivered bytes only",
        rows()
            .filter(|r| r.loss_pct > 0.0)
            .map(|r| {
                (
                    case_name(&r.key),
                    format!("{:.2}% of {}", r.loss_pct, r.messages_sent),
                )
            })
            .collect(),
        "UDP has no flow control: raise net.core.rmem_max/rmem_default (SO_RCVBUF) or send slower",
    ));
    out.extend(grouped(
        "idle-ended",
        &format!(
            "trials lost their end marker and ended on the {} ms idle limit, each timed to the last datagram that arrived",
            crate::workload::SINK_IDLE.as_millis()
        ),
        rows()
            .filter(|r| r.idle_ended_trials > 0)
            .map(|r| (case_name(&r.key), format!("{} of {}", r.idle_ended_trials, r.key.trials)))
            .collect(),
        "UDP drops under overload: send slower, or raise net.core.rmem_max/rmem_default (SO_RCVBUF)",
    ));
    out.extend(grouped(
        "wide-ci",
        "the rate's 95% CI spans over 10% of it",
        rows()
            .filter_map(|r| {
                let width = (r.bytes_per_s_ci_high - r.bytes_per_s_ci_low) / r.bytes_per_s.max(1.0);
                (r.key.trials >= 2 && width > 0.10)
                    .then(|| (case_name(&r.key), format!("{:.0}%", width * 100.0)))
            })
            .collect(),
        "raise --trials or --duration, and keep other load off the machine",
    ));
    out
}

/// `--control`: an A/A ratio (the baseline's copy over the baseline)
/// whose CI excludes 1 says the run's noise is larger than its CIs admit.
pub fn control(ratios: &[super::RatioRow]) -> Vec<Warning> {
    grouped(
        "aa-control",
        "the A/A control's CI excludes 1: this run's noise is larger than its CIs admit, so read every ratio against the A/A spread",
        ratios
            .iter()
            .filter(|r| r.knob.as_deref() == Some("control") && (r.ci_low > 1.0 || r.ci_high < 1.0))
            .map(|r| {
                (
                    format!("{} {} {}", r.numerator, crate::spec::size_label(r.size_bytes), r.metric),
                    format!("{:.3}, CI {:.3}–{:.3}", r.ratio, r.ci_low, r.ci_high),
                )
            })
            .collect(),
        "run more rounds (--trials), keep other load off the machine, or isolate the measured CPUs",
    )
    .into_iter()
    .collect()
}
