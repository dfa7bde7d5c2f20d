//! Stage: results. Result-quality warnings: each says what is wrong with the
//! conditions or the numbers and what to try. Printed to stderr and written
//! into summary.json.

use super::{CaseJson, Fingerprint};
use crate::plan::Plan;
use crate::transport::Wait;

/// One warning about the trustworthiness of a result.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct Warning {
    /// Stable identifier (`shared-cpu`, `virtualized`, `noisy-tail`, ...).
    pub code: &'static str,
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

/// Check the run's conditions and numbers.
pub fn check(plan: &Plan, cases: &[CaseJson], env: &Fingerprint) -> Vec<Warning> {
    let mut out = Vec::new();
    if env.build_profile == "debug" {
        out.push(w(
            "debug-build",
            "sockbench was built without optimisation; the loop's own cost is inflated".into(),
            "build with `cargo build --release` (or run `cargo run --release -- ...`)",
        ));
    }
    if plan.server_cpu == plan.client_cpu {
        out.push(w(
            "shared-cpu",
            format!(
                "server and client share CPU {}: every message includes a context switch; this is the same-core case",
                plan.server_cpu
            ),
            "for the cross-core case give --server-cpu and --client-cpu different CPUs",
        ));
        if plan.opts.wait == Wait::Spin {
            out.push(w(
                "spin-shared-cpu",
                "--wait spin with both ends on one CPU: each side spins until preempted, so RTTs measure the scheduler's time slice".into(),
                "use --wait block, or put the ends on different CPUs",
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
        Some("performance") => {}
        Some(g) => out.push(w(
            "governor",
            format!("CPU frequency governor is '{g}': clock speed can change during the run"),
            "set the governor to performance (cpupower frequency-set -g performance)",
        )),
        None => {}
    }
    if let Some(v) = &env.virtualization {
        out.push(w(
            "virtualized",
            format!("running under a {v}: other tenants and vCPU scheduling add noise and tails"),
            "compare A B B A within one run (sockbench interleaves cases) and repeat runs; prefer bare metal for absolute numbers",
        ));
    }
    let min_p50 = cases.iter().map(|c| c.row.p50_ns).min().unwrap_or(0);
    if let Some(c) = cases.first()
        && min_p50 > 0
        && c.row.clock_read_ns > 0.01 * min_p50 as f64
    {
        out.push(w(
            "clock-cost",
            format!(
                "one clock read costs {:.0} ns, over 1% of the smallest median RTT ({min_p50} ns)",
                c.row.clock_read_ns
            ),
            "check the clocksource (tsc is cheapest); compare with batch timing (cargo bench)",
        ));
    }
    for c in cases {
        let r = &c.row;
        let name = format!("{} {} B", r.transport, r.size_bytes);
        if r.p50_ns > 0 && r.p99_ns as f64 > 10.0 * r.p50_ns as f64 {
            out.push(w(
                "noisy-tail",
                format!(
                    "{name}: p99 is {:.0}x the median",
                    r.p99_ns as f64 / r.p50_ns as f64
                ),
                "idle the machine, isolate the measured CPUs (isolcpus, nohz_full), or run longer",
            ));
        }
        let width = (r.p50_ci_high_ns - r.p50_ci_low_ns) / r.p50_ns.max(1) as f64;
        if r.trials >= 2 && width > 0.10 {
            out.push(w(
                "wide-ci",
                format!(
                    "{name}: the median's 95% CI spans {:.0}% of it across trials",
                    width * 100.0
                ),
                "raise --trials or --duration, and keep other load off the machine",
            ));
        }
    }
    out
}
