//! Stage: results. Result-quality warnings: each says what is wrong with the
//! conditions or the numbers and what to try. Printed to stderr and written
//! into summary.json.

use super::{CaseJson, CaseRow, Fingerprint, ThroughputRow};
use crate::plan::Plan;
use crate::spec::Wait;
use crate::spec::size_label;
use crate::workload::run::TrialPoint;
use crate::workload::tracing::DISTURBED_PCT;

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

/// `--precision` not reached: --max-time came first.
pub fn precision(run: &crate::workload::run::Run) -> Option<Warning> {
    let r = run.precision.as_ref().filter(|r| !r.reached)?;
    let widest = match r.widest {
        Some(h) => format!("the widest 95% CI is ±{:.1}% ({})", 100.0 * h, r.widest_of),
        None => "too few rounds for a CI".to_string(),
    };
    Some(w(
        "precision-short",
        format!(
            "--precision ±{}% not reached when another round would pass --max-time ({} rounds in {:.0} s): {widest}",
            100.0 * r.target,
            run.rounds,
            r.rounds_s
        ),
        "raise --max-time, ask for less, or keep other load off the machine",
    ))
}

fn w(code: &'static str, message: String, fix: &str) -> Warning {
    debug_assert!(
        crate::spec::WARNING_CODES.contains(&code),
        "{code}: add it to spec::WARNING_CODES"
    );
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
    if (plan.trials as usize) < super::ratios::MIN_ROUNDS && plan.precision.is_none() {
        out.push(w(
            "too-few-rounds",
            format!(
                "{} rounds: every ratio is a point value, with no CI and no verdict (they need {} or more)",
                plan.trials,
                super::ratios::MIN_ROUNDS
            ),
            "raise --trials",
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
pub(super) fn case_name(k: &super::CaseKey) -> String {
    let transport = match k.netns {
        crate::spec::NetnsMode::Off => k.transport.to_string(),
        m => format!("{}@{}", k.transport, m.name()),
    };
    let sizes = if matches!(k.workload, "rr" | "connect" | "load") {
        format!(
            "{}/{}",
            size_label(k.size_bytes),
            size_label(k.response_bytes)
        )
    } else {
        size_label(k.size_bytes)
    };
    // Cases that differ only by their knobs (or the A/A copy) are told
    // apart: `tcp4 64 [nodelay=off]`.
    if k.knobs.is_empty() {
        format!("{transport} {sizes}")
    } else {
        format!("{transport} {sizes} [{}]", k.knobs)
    }
}

/// A latency row as a warning names it: its case, and under `load` the
/// offered rate (`uds-stream 512/16K @ 5000/s`).
pub(super) fn row_name(r: &CaseRow) -> String {
    match &r.load {
        Some(l) => format!("{} @ {}/s", case_name(&r.key), l.offered_per_s),
        None => case_name(&r.key),
    }
}

/// The cases a warning names, at most; the rest are counted ("and 14
/// more"), and every case's figures are in summary.json.
const LISTED: usize = 6;

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
    let n = cases.len();
    let mut list: Vec<String> = cases
        .into_iter()
        .take(LISTED)
        .map(|(c, v)| format!("{c} ({v})"))
        .collect();
    if n > LISTED {
        list.push(format!("and {} more", n - LISTED));
    }
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

/// A trial counts as an outlier when it is this many times slower than
/// its case's median trial.
pub const OUTLIER_FACTOR: f64 = 2.0;

/// The trials of one case that ran over [`OUTLIER_FACTOR`] times slower
/// than the case's median trial: (index, value ÷ median). `values` are the
/// trials' figures; `higher_is_worse` for times, not for rates. Needs
/// three trials or more (a median to stand against).
pub fn outlier_trials(values: &[f64], higher_is_worse: bool) -> Vec<(usize, f64)> {
    if values.len() < 3 {
        return Vec::new();
    }
    let mid = crate::stats::median(values);
    if mid <= 0.0 {
        return Vec::new();
    }
    values
        .iter()
        .enumerate()
        .filter_map(|(i, &v)| {
            let r = v / mid;
            let slow = if higher_is_worse {
                r > OUTLIER_FACTOR
            } else {
                r < 1.0 / OUTLIER_FACTOR
            };
            slow.then_some((i, r))
        })
        .collect()
}

/// A case's name, its number of trials, and its outlier trials.
type Flagged = (String, usize, Vec<(usize, f64)>);

/// One warning naming the trials far slower than their case's median.
fn outliers(flagged: Vec<Flagged>, env: &Fingerprint) -> Option<Warning> {
    let cases = flagged
        .into_iter()
        .filter(|(_, _, o)| !o.is_empty())
        .map(|(name, n, o)| {
            let each: Vec<String> = o
                .iter()
                .map(|(i, r)| format!("trial {} of {n}: {r:.2}× the median", i + 1))
                .collect();
            (name, each.join(", "))
        })
        .collect();
    let why = match env.free_page_reporting_order {
        Some(_) => {
            "; this VM hands free memory back to its hypervisor (free page reporting), and memory freed by earlier work costs microseconds per page to use again: an AF_UNIX stream can run at a tenth of its rate meanwhile (docs/caveats.md)"
        }
        None => "",
    };
    grouped(
        "outlier-trial",
        &format!(
            "trials over {OUTLIER_FACTOR:.0}× slower than their case's median, as when something else ran on the machine{why}"
        ),
        cases,
        "the CIs stand on every trial, so a wide one says so; read the per-trial figures (trial_points in summary.json), let the machine settle after memory-heavy work, and run again",
    )
}

/// Trials that shared a measured CPU with other tasks or lost it to the
/// hypervisor for more than [`DISTURBED_PCT`]% of their time: named with
/// their round and share.
pub fn disturbed<'a>(
    retrying: bool,
    cases: impl Iterator<Item = (String, &'a [TrialPoint])>,
) -> Option<Warning> {
    let mut named = Vec::new();
    let mut total = 0;
    for (name, points) in cases {
        for t in points {
            total += 1;
            if let Some(i) = t.interference.filter(|i| i.disturbed()) {
                let what = if i.others_pct >= i.steal_pct {
                    format!("other tasks {:.0}%", i.others_pct)
                } else {
                    format!("steal {:.0}%", i.steal_pct)
                };
                named.push((format!("{name} round {}", t.round + 1), what));
            }
        }
    }
    let n = named.len();
    grouped(
        "disturbed",
        &format!(
            "{n} of {total} trials shared a measured CPU for over {DISTURBED_PCT:.0}% of their time (per trial in summary.json: interference)"
        ),
        named,
        if retrying {
            "--retry-disturbed ran these rounds again as often as it may (twice each) and they stayed disturbed: keep other load off the measured CPUs (or move the run to idle ones with --server-cpu/--client-cpu), then run again"
        } else {
            "keep other load off the measured CPUs (or move the run to idle ones with --server-cpu/--client-cpu), then run again; --retry-disturbed runs such rounds again"
        },
    )
}

/// Latency trials whose median was over [`OUTLIER_FACTOR`] times their case's.
pub fn latency_outliers(cases: &[CaseJson<CaseRow>], env: &Fingerprint) -> Option<Warning> {
    outliers(
        cases
            .iter()
            .map(|c| {
                let p50: Vec<f64> = c.trial_points.iter().map(|t| t.p50_ns as f64).collect();
                (row_name(&c.row), p50.len(), outlier_trials(&p50, true))
            })
            .collect(),
        env,
    )
}

/// Transfer trials whose rate was under 1/[`OUTLIER_FACTOR`] of their case's median.
pub fn throughput_outliers(
    cases: &[CaseJson<ThroughputRow>],
    env: &Fingerprint,
) -> Option<Warning> {
    outliers(
        cases
            .iter()
            .map(|c| {
                let rate: Vec<f64> = c
                    .trial_points
                    .iter()
                    .map(|t| t.delivered as f64 / t.elapsed_ns.max(1) as f64)
                    .collect();
                (
                    case_name(&c.row.key),
                    rate.len(),
                    outlier_trials(&rate, false),
                )
            })
            .collect(),
        env,
    )
}

/// `--control`: an A/A ratio (the baseline's copy over the baseline)
/// whose CI excludes 1 says the run's noise is larger than its CIs admit.
pub fn control(ratios: &[super::RatioRow]) -> Vec<Warning> {
    grouped(
        "aa-control",
        "the A/A control's CI excludes 1: this run's noise is larger than its CIs admit, so read every ratio against the A/A spread",
        ratios
            .iter()
            .filter(|r| r.knob == Some(super::Varied::Control))
            .filter_map(|r| match (r.ci_low, r.ci_high) {
                (Some(lo), Some(hi)) if lo > 1.0 || hi < 1.0 => Some((
                    format!("{} {} {}", r.numerator, crate::spec::size_label(r.size_bytes), r.metric),
                    format!("{:.3}, CI {lo:.3}–{hi:.3}", r.ratio),
                )),
                _ => None,
            })
            .collect(),
        "run more rounds (--trials), keep other load off the machine, or isolate the measured CPUs",
    )
    .into_iter()
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trial_far_from_its_case_s_median_is_an_outlier() {
        // Rates: the 4.0 Gbit/s trial among ~50s is one; 30 is not.
        let rates = [51.0, 4.0, 49.0, 30.0, 52.0];
        assert_eq!(
            outlier_trials(&rates, false)
                .iter()
                .map(|o| o.0)
                .collect::<Vec<_>>(),
            vec![1]
        );
        // Times: a p50 2.5× the median is one; 1.9× is not.
        let p50 = [40.0, 100.0, 42.0, 76.0, 39.0];
        let o = outlier_trials(&p50, true);
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].0, 1);
        assert!((o[0].1 - 100.0 / 42.0).abs() < 1e-9);
        // Two trials have no median to stand against.
        assert!(outlier_trials(&[1.0, 100.0], true).is_empty());
    }
}
