//! Stage: results. Turns a finished run into rows (one per case), paired
//! UDS:TCP ratios with confidence intervals, and result-quality warnings;
//! writes them as a table, JSON or CSV, and atomically into a run directory.
//! Reads nothing from sockets; runs after every measurement thread joined.

pub mod env;
pub mod files;
pub mod layers;
mod ratios;
mod rows;
pub mod schema;
pub mod table;
pub mod text;
pub mod warnings;

use crate::plan::{Case, Plan, Workload};
use crate::spec::TransportKind;
use crate::spec::{Knobs, NetnsMode, Sysctl};
use crate::stats;
use crate::workload::run::Run;
pub use env::Fingerprint;
pub use ratios::{Metric, RatioRow, Varied, Verdict};
use ratios::{Pick, ratios};
pub use rows::{CaseJson, CaseKey, CaseRow, LoadColumns, ThroughputRow};
use rows::{latency_row, ns_per_byte, throughput_row};
pub use warnings::Warning;

/// Settings that shaped the run.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct Settings {
    /// `--iterations` or `--duration` per case, in words.
    pub budget: String,
    /// Untimed operations and time per case before its first trial.
    pub warmup: u64,
    /// Untimed warm-up time per case before its first trial.
    pub warmup_time_ms: u64,
    /// Untimed operations before every trial.
    pub trial_warmup: u64,
    /// Interleaved rounds planned (`--trials`); with `--precision`, the fewest.
    pub trials: u32,
    /// `--precision`: the 95% CI half-width asked for, a share of the value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precision: Option<f64>,
    /// `--max-time` (with `--precision`), s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_time_s: Option<f64>,
    /// Bound on every wait for a peer.
    pub timeout_ms: u64,
    /// Every byte (or sequence number) checked.
    pub verify: bool,
}

/// Everything a run reports: summary.json.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
#[schemars(rename = "Report_for_{R}")]
pub struct Report<R> {
    /// Version of this schema (see `docs/results-schema.md`).
    pub schema_version: u32,
    /// `sockbench <version>`.
    pub tool: &'static str,
    /// `latency`, `rr`, `connect` or `throughput`.
    pub workload: &'static str,
    /// The command as given.
    pub command: Vec<String>,
    /// The run's settings.
    pub settings: Settings,
    /// Rounds kept: every planned one (`settings.trials`; with
    /// `--precision`, as many as it took), or the complete ones when a
    /// Ctrl-C stopped the run early.
    pub rounds: u32,
    /// `--retry-disturbed`: times a round was run again because one of its
    /// trials shared a measured CPU for over 15% of its time (a round run
    /// again twice counts 2; 0 without the flag).
    pub rounds_retried: u32,
    /// `--precision`: how the rounds ended (absent without it, or after a Ctrl-C).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precision: Option<crate::workload::run::Reached>,
    /// Wall time of the measurement, s.
    pub elapsed_s: f64,
    /// Measured cost of one clock read on the client CPU, ns.
    pub clock_read_ns: f64,
    /// One per case, in the order the command listed them.
    pub cases: Vec<CaseJson<R>>,
    /// Paired ratios between cases that ran back to back.
    pub ratios: Vec<RatioRow>,
    /// Result-quality warnings, each with what to try.
    pub warnings: Vec<Warning>,
    /// `latency` over two or more rungs of the ladder (`sockbench
    /// explain`): where the µs of a round trip go, layer by layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explained: Option<layers::Explained>,
    /// The machine, kernel, tunables and build.
    pub env: Fingerprint,
}

/// The report of any workload.
#[derive(Debug, Clone)]
pub enum AnyReport {
    /// latency, rr, connect.
    Latency(Report<CaseRow>),
    /// throughput.
    Throughput(Report<ThroughputRow>),
}

fn settings(plan: &Plan) -> Settings {
    Settings {
        budget: match plan.budget {
            crate::plan::Budget::Iterations(n) => format!("{n} operations per case"),
            crate::plan::Budget::Duration(d) => {
                format!("{} per case", humantime::format_duration(d))
            }
        },
        warmup: plan.warmup,
        warmup_time_ms: plan.warmup_time.as_millis() as u64,
        trial_warmup: crate::workload::run::TRIAL_WARMUP,
        trials: plan.trials,
        precision: plan.precision.map(|p| p.target),
        max_time_s: plan.precision.map(|p| p.max_time.as_secs_f64()),
        timeout_ms: plan.opts.timeout.as_millis() as u64,
        verify: plan.verify,
    }
}

fn assemble<R>(
    plan: &Plan,
    run: &Run,
    argv: Vec<String>,
    env: Fingerprint,
    rows: Vec<R>,
    ratios: Vec<RatioRow>,
) -> Report<R> {
    Report {
        schema_version: schema::SCHEMA_VERSION,
        tool: concat!("sockbench ", env!("CARGO_PKG_VERSION")),
        rounds: run.rounds,
        precision: run.precision.clone(),
        rounds_retried: run.retried,
        workload: plan.workload.name(),
        command: argv,
        settings: settings(plan),
        elapsed_s: run.elapsed.as_secs_f64(),
        clock_read_ns: run.clock_read_ns,
        cases: rows
            .into_iter()
            .zip(&run.cases)
            .map(|(row, o)| CaseJson {
                row,
                hgrm_file: (!o.hist.is_empty()).then(|| {
                    format!(
                        "{}.hgrm",
                        case_stem(o.case.transport, &o.case, &plan.base, &plan.sysctls)
                    )
                }),
                trial_points: o.trials.clone(),
            })
            .collect(),
        ratios,
        warnings: Vec::new(),
        explained: None,
        env,
    }
}

/// `--precision`: the widest 95% CI half-width, as a share of its value,
/// among the ratios of the run's main metric (p50; the p99 under `load`;
/// time per byte for throughput), or, in a run with no ratios, among the
/// cases' medians of that metric; and what it belongs to. `None` below
/// 5 complete rounds (`MIN_ROUNDS`).
pub fn widest(plan: &Plan, cases: &[crate::workload::run::CaseOutcome]) -> Option<(f64, String)> {
    let (metric, pick): (Metric, Pick) = match plan.workload {
        Workload::Throughput { .. } => (Metric::NsPerByte, ns_per_byte),
        Workload::Load { .. } => (Metric::P99, |t, _| t.p99_ns as f64),
        _ => (Metric::P50, |t, _| t.p50_ns as f64),
    };
    let rows = ratios(cases, (&plan.base, &plan.sysctls), &[(metric, pick)]);
    let half = |lo: f64, hi: f64, mid: f64| (hi - lo) / 2.0 / mid.abs().max(f64::MIN_POSITIVE);
    let mut all: Vec<(f64, String)> = Vec::new();
    if rows.is_empty() {
        for (i, c) in cases.iter().enumerate() {
            let xs: Vec<f64> = c.trials.iter().map(|t| pick(t, c.case.size)).collect();
            if xs.len() < ratios::MIN_ROUNDS {
                return None;
            }
            let ci = stats::bootstrap_ci(&xs, stats::median, 0x5eed ^ i as u64);
            let knobs = c.case.knobs.label(&plan.base, &plan.sysctls);
            let name = format!(
                "{} {}",
                c.case.transport.name(),
                crate::spec::size_label(c.case.size)
            );
            let name = if knobs.is_empty() {
                name
            } else {
                format!("{name} [{knobs}]")
            };
            all.push((
                half(ci.low, ci.high, stats::median(&xs)),
                format!("{name} {}", metric.name()),
            ));
        }
    }
    for r in &rows {
        let (Some(lo), Some(hi)) = (r.ci_low, r.ci_high) else {
            return None;
        };
        let size = crate::spec::size_label(r.size_bytes);
        let what = match &r.knob_values {
            Some(k) => format!("{size} {} {k}", r.numerator),
            None => format!("{size} {} / {}", r.numerator, r.denominator),
        };
        all.push((half(lo, hi, r.ratio), format!("{what} {}", metric.name())));
    }
    all.into_iter().max_by(|a, b| a.0.total_cmp(&b.0))
}

/// Build the report of a finished run (rayon bootstraps run here).
pub fn build(plan: &Plan, run: &Run, argv: Vec<String>, mut env: Fingerprint) -> AnyReport {
    env.cpus_used = Some(plan.placement_label());
    let seed = |i: usize| 2 * i as u64;
    let mut general = warnings::general(plan, &env);
    general.extend(warnings::precision(run));
    if let Workload::Throughput { both } = plan.workload {
        let rows = run
            .cases
            .iter()
            .enumerate()
            .map(|(i, o)| throughput_row(plan, o, both, seed(i)))
            .collect();
        let ratios = ratios(
            &run.cases,
            (&plan.base, &plan.sysctls),
            &[(Metric::NsPerByte, ns_per_byte)],
        );
        let mut r = assemble(plan, run, argv, env, rows, ratios);
        r.warnings = general;
        r.warnings.extend(warnings::throughput(&r.cases));
        r.warnings.extend(warnings::disturbed(
            plan.retry_disturbed,
            r.cases
                .iter()
                .map(|c| (warnings::case_name(&c.row.key), &c.trial_points[..])),
        ));
        r.warnings
            .extend(warnings::throughput_outliers(&r.cases, &r.env));
        r.warnings.extend(warnings::control(&r.ratios));
        AnyReport::Throughput(r)
    } else {
        let rows = run
            .cases
            .iter()
            .enumerate()
            .map(|(i, o)| latency_row(plan, o, run.clock_read_ns, seed(i)))
            .collect();
        let mut metrics: Vec<(Metric, Pick)> = vec![
            (Metric::P50, |t, _| t.p50_ns as f64),
            (Metric::Mean, |t, _| t.mean_ns),
        ];
        if matches!(plan.workload, Workload::Load { .. }) {
            // Under load the question is the tail.
            metrics.push((Metric::P99, |t, _| t.p99_ns as f64));
        }
        let ratios = ratios(&run.cases, (&plan.base, &plan.sysctls), &metrics);
        let mut r = assemble(plan, run, argv, env, rows, ratios);
        if plan.workload == Workload::Latency {
            let e = layers::explain(
                &run.cases,
                |c| c.knobs.label(&plan.base, &plan.sysctls),
                |c| c.knobs.placement.unwrap_or(plan.placement(0)),
            );
            r.explained = (!e.layers.is_empty()).then_some(e);
        }
        r.warnings = general;
        r.warnings.extend(warnings::latency(&r.cases));
        r.warnings.extend(warnings::disturbed(
            plan.retry_disturbed,
            r.cases
                .iter()
                .map(|c| (warnings::row_name(&c.row), &c.trial_points[..])),
        ));
        r.warnings
            .extend(warnings::latency_outliers(&r.cases, &r.env));
        r.warnings.extend(warnings::control(&r.ratios));
        AnyReport::Latency(r)
    }
}

impl AnyReport {
    /// The result-quality warnings.
    pub fn warnings(&self) -> &[Warning] {
        match self {
            AnyReport::Latency(r) => &r.warnings,
            AnyReport::Throughput(r) => &r.warnings,
        }
    }

    /// Each case's histogram file (`hgrm_file`), in the order of the run's cases.
    pub fn hgrm_files(&self) -> Vec<Option<&str>> {
        match self {
            AnyReport::Latency(r) => r.cases.iter().map(|c| c.hgrm_file.as_deref()).collect(),
            AnyReport::Throughput(r) => r.cases.iter().map(|c| c.hgrm_file.as_deref()).collect(),
        }
    }

    /// The fingerprint.
    pub fn env(&self) -> &Fingerprint {
        match self {
            AnyReport::Latency(r) => &r.env,
            AnyReport::Throughput(r) => &r.env,
        }
    }
}

/// File-name stem of a case: `uds-stream-64B`, or `tcp4-512B-16384B` when
/// the response size differs, with `-veth`/`-bridge` under `--netns`,
/// `-5000rps` for `load`, and the knobs where it differs from the baseline
/// (`-nodelay-off`, `-aa` for the A/A copy).
pub fn case_stem(kind: TransportKind, c: &Case, base: &Knobs, sysctls: &[Sysctl]) -> String {
    // Knobs where the case differs from the baseline: `-nodelay-off-aa`.
    let knobs: String = c
        .knobs
        .label(base, sysctls)
        .split(' ')
        .filter(|p| !p.is_empty())
        .map(|p| format!("-{}", p.replace("A/A", "aa").replace(['=', '/'], "-")))
        .collect();
    let rate = format!("{}{knobs}", stem_rate(c));
    let ns = match c.netns {
        NetnsMode::Off => String::new(),
        m => format!("-{}", m.name()),
    };
    if c.size == c.response {
        format!("{}{ns}-{}B{rate}", kind.name(), c.size)
    } else {
        format!("{}{ns}-{}B-{}B{rate}", kind.name(), c.size, c.response)
    }
}

fn stem_rate(c: &Case) -> String {
    match c.rate {
        0 => String::new(),
        r => format!("-{r}rps"),
    }
}
