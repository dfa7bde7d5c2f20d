//! Stage: results. Turns a finished run into rows (one per case), paired
//! UDS:TCP ratios with confidence intervals, and result-quality warnings;
//! writes them as a table, JSON or CSV, and atomically into a run directory.
//! Reads nothing from sockets; runs after every measurement thread joined.

pub mod env;
pub mod files;
pub mod table;
pub mod warnings;

use crate::plan::Plan;
use crate::stats::{self, Ci, Summary};
use crate::transport::TransportKind;
use crate::workload::pingpong::{CaseOutcome, LatencyRun, TrialPoint};
pub use env::Fingerprint;
pub use warnings::Warning;

/// One case, flat: the columns of summary.csv.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CaseRow {
    pub transport: &'static str,
    pub size_bytes: usize,
    pub mode: crate::workload::Mode,
    pub wait: crate::transport::Wait,
    pub nodelay: bool,
    pub server_cpu: usize,
    pub client_cpu: usize,
    pub trials: usize,
    pub iterations: u64,
    pub min_ns: u64,
    pub mean_ns: f64,
    pub mean_ci_low_ns: f64,
    pub mean_ci_high_ns: f64,
    pub p50_ns: u64,
    pub p50_ci_low_ns: f64,
    pub p50_ci_high_ns: f64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub p9999_ns: u64,
    pub max_ns: u64,
    pub stddev_ns: f64,
    pub round_trips_per_s: f64,
    pub client_user_ns_per_rt: f64,
    pub client_sys_ns_per_rt: f64,
    pub server_user_ns_per_rt: f64,
    pub server_sys_ns_per_rt: f64,
    pub client_vcsw_per_rt: f64,
    pub client_ivcsw_per_rt: f64,
    pub server_vcsw_per_rt: f64,
    pub server_ivcsw_per_rt: f64,
    pub client_syscalls_per_rt: f64,
    pub server_syscalls_per_rt: f64,
    pub sndbuf_bytes: usize,
    pub rcvbuf_bytes: usize,
    pub clock_read_ns: f64,
}

/// A case in summary.json: the row plus its per-trial points.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CaseJson {
    #[serde(flatten)]
    pub row: CaseRow,
    pub trial_points: Vec<TrialPoint>,
}

/// UDS over TCP for one size: the median over rounds of the per-round
/// ratio (the two trials of a round ran back to back), with a bootstrap CI.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RatioRow {
    pub size_bytes: usize,
    pub numerator: &'static str,
    pub denominator: &'static str,
    /// `p50` (per-trial medians) or `mean` (per-trial means).
    pub metric: &'static str,
    pub ratio: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub rounds: usize,
}

/// Settings that shaped the run (also in each row where they vary).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Settings {
    pub budget: String,
    pub warmup: u64,
    pub warmup_time_ms: u128,
    pub trial_warmup: u64,
    pub trials: u32,
    pub timeout_ms: u128,
    pub verify: bool,
}

/// Everything `sockbench latency` reports: summary.json.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub tool: &'static str,
    pub command: Vec<String>,
    pub settings: Settings,
    pub elapsed_s: f64,
    pub clock_read_ns: f64,
    pub cases: Vec<CaseJson>,
    pub ratios: Vec<RatioRow>,
    pub warnings: Vec<Warning>,
    pub env: Fingerprint,
}

fn per_rt(total: i64, n: u64) -> f64 {
    total as f64 / n.max(1) as f64
}

fn row(plan: &Plan, o: &CaseOutcome, clock_read_ns: f64, seed: u64) -> CaseJson {
    let s: Summary = stats::summarize(&o.hist);
    let means: Vec<f64> = o.trials.iter().map(|t| t.mean_ns).collect();
    let p50s: Vec<f64> = o.trials.iter().map(|t| t.p50_ns as f64).collect();
    let mean_ci = stats::bootstrap_ci(&means, stats::mean, seed);
    let p50_ci = stats::bootstrap_ci(&p50s, stats::median, seed + 1);
    let n = s.n;
    let u = &o.usage;
    let row = CaseRow {
        transport: o.kind.name(),
        size_bytes: o.size,
        mode: plan.mode,
        wait: plan.opts.wait,
        nodelay: plan.opts.nodelay,
        server_cpu: plan.server_cpu,
        client_cpu: plan.client_cpu,
        trials: o.trials.len(),
        iterations: n,
        min_ns: s.min_ns,
        mean_ns: s.mean_ns,
        mean_ci_low_ns: mean_ci.low,
        mean_ci_high_ns: mean_ci.high,
        p50_ns: s.p50_ns,
        p50_ci_low_ns: p50_ci.low,
        p50_ci_high_ns: p50_ci.high,
        p90_ns: s.p90_ns,
        p99_ns: s.p99_ns,
        p999_ns: s.p999_ns,
        p9999_ns: s.p9999_ns,
        max_ns: s.max_ns,
        stddev_ns: s.stddev_ns,
        round_trips_per_s: if s.mean_ns > 0.0 {
            1e9 / s.mean_ns
        } else {
            0.0
        },
        client_user_ns_per_rt: per_rt(u.client.user_ns, n),
        client_sys_ns_per_rt: per_rt(u.client.sys_ns, n),
        server_user_ns_per_rt: per_rt(u.server.user_ns, n),
        server_sys_ns_per_rt: per_rt(u.server.sys_ns, n),
        client_vcsw_per_rt: per_rt(u.client.vcsw, n),
        client_ivcsw_per_rt: per_rt(u.client.ivcsw, n),
        server_vcsw_per_rt: per_rt(u.server.vcsw, n),
        server_ivcsw_per_rt: per_rt(u.server.ivcsw, n),
        client_syscalls_per_rt: per_rt(u.client_calls as i64, n),
        server_syscalls_per_rt: per_rt(u.server_calls as i64, n),
        sndbuf_bytes: o.buffers.sndbuf_bytes,
        rcvbuf_bytes: o.buffers.rcvbuf_bytes,
        clock_read_ns,
    };
    CaseJson {
        row,
        trial_points: o.trials.clone(),
    }
}

/// Every (UDS transport, TCP transport) pair measured at the same size.
fn ratios(cases: &[CaseOutcome]) -> Vec<RatioRow> {
    let mut out = Vec::new();
    for num in cases.iter().filter(|c| c.kind.is_uds()) {
        for den in cases
            .iter()
            .filter(|c| c.kind.is_tcp() && c.size == num.size)
        {
            type Pick = fn(&TrialPoint) -> f64;
            let metrics: [(&'static str, Pick); 2] =
                [("p50", |t| t.p50_ns as f64), ("mean", |t| t.mean_ns)];
            for (metric, pick) in metrics {
                let by_round = |c: &CaseOutcome| {
                    c.trials
                        .iter()
                        .map(|t| (t.round, pick(t)))
                        .collect::<Vec<_>>()
                };
                let r = stats::paired_ratios(&by_round(num), &by_round(den));
                let Ci { low, high } =
                    stats::bootstrap_ci(&r, stats::median, 0x5eed ^ num.size as u64);
                out.push(RatioRow {
                    size_bytes: num.size,
                    numerator: num.kind.name(),
                    denominator: den.kind.name(),
                    metric,
                    ratio: stats::median(&r),
                    ci_low: low,
                    ci_high: high,
                    rounds: r.len(),
                });
            }
        }
    }
    out.sort_by_key(|r| (r.size_bytes, r.metric, r.numerator, r.denominator));
    out
}

/// Build the report of a finished run (rayon bootstraps run here).
pub fn build(plan: &Plan, run: &LatencyRun, argv: Vec<String>, mut env: Fingerprint) -> Report {
    env.cpus_used = Some(format!(
        "server={} client={}",
        plan.server_cpu, plan.client_cpu
    ));
    let cases: Vec<CaseJson> = run
        .cases
        .iter()
        .enumerate()
        .map(|(i, o)| row(plan, o, run.clock_read_ns, 2 * i as u64))
        .collect();
    let ratios = ratios(&run.cases);
    let warnings = warnings::check(plan, &cases, &env);
    Report {
        tool: concat!("sockbench ", env!("CARGO_PKG_VERSION")),
        command: argv,
        settings: Settings {
            budget: match plan.budget {
                crate::plan::Budget::Iterations(n) => format!("{n} round trips per case"),
                crate::plan::Budget::Duration(d) => {
                    format!("{} per case", humantime::format_duration(d))
                }
            },
            warmup: plan.warmup,
            warmup_time_ms: plan.warmup_time.as_millis(),
            trial_warmup: crate::workload::pingpong::TRIAL_WARMUP,
            trials: plan.trials,
            timeout_ms: plan.opts.timeout.as_millis(),
            verify: plan.verify,
        },
        elapsed_s: run.elapsed.as_secs_f64(),
        clock_read_ns: run.clock_read_ns,
        cases,
        ratios,
        warnings,
        env,
    }
}

/// File-name stem of a case: `uds-stream-64B`.
pub fn case_stem(kind: TransportKind, size: usize) -> String {
    format!("{}-{size}B", kind.name())
}
