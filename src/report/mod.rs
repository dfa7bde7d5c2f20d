//! Stage: results. Turns a finished run into rows (one per case), paired
//! UDS:TCP ratios with confidence intervals, and result-quality warnings;
//! writes them as a table, JSON or CSV, and atomically into a run directory.
//! Reads nothing from sockets; runs after every measurement thread joined.

pub mod env;
pub mod files;
pub mod schema;
pub mod table;
pub mod warnings;

use crate::plan::{Case, Plan, Workload};
use crate::spec::TransportKind;
use crate::spec::{Knobs, NetnsMode, Sysctl};
use crate::stats::{self, Ci, Summary};
use crate::workload::run::{CaseOutcome, Run, TrialPoint};
pub use env::Fingerprint;
pub use warnings::Warning;

/// Columns every row starts with: what was measured and where.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct CaseKey {
    /// `latency`, `rr`, `connect` or `throughput`.
    pub workload: &'static str,
    /// The transport (`tcp4`, `uds-stream`, ...).
    pub transport: &'static str,
    /// Message, request or write size, bytes.
    pub size_bytes: usize,
    /// Response size, bytes (`rr`, `connect`; equal to `size_bytes` for `latency`; 0 for `throughput`).
    pub response_bytes: usize,
    /// Requests in flight per pair (`rr --depth`).
    pub depth: u32,
    /// Concurrent pinned pairs (`--pairs`).
    pub pairs: usize,
    /// Where the server runs: a thread of sockbench, or a forked process.
    pub mode: crate::spec::Mode,
    /// Blocking calls, or non-blocking calls retried in a busy loop.
    pub wait: crate::spec::Wait,
    /// TCP_NODELAY on TCP sockets.
    pub nodelay: bool,
    /// `--netns`: off (loopback), veth or bridge.
    pub netns: crate::spec::NetnsMode,
    /// Placement of every pair: `s0c1` (server CPU 0, client CPU 1), space-separated.
    pub placement: String,
    /// Where this case's knobs (`--nodelay`, `--wait`, `--mode`,
    /// `--placement` lists) differ from the baseline (each list's first
    /// value), e.g. `nodelay=off wait=spin`, with `A/A` for the control
    /// copy; empty for the baseline and in runs without knob lists.
    pub knobs: String,
    /// `--control`: this case is the A/A copy of the baseline.
    pub aa_control: bool,
    /// `--sndbuf`: SO_SNDBUF asked for on both ends (null: the system's
    /// default); what the kernel granted is `sndbuf_bytes`.
    pub sndbuf_asked_bytes: Option<usize>,
    /// `--rcvbuf`: SO_RCVBUF asked for (null: default); granted: `rcvbuf_bytes`.
    pub rcvbuf_asked_bytes: Option<usize>,
    /// `--busy-poll`: SO_BUSY_POLL in µs on both ends (null: not set).
    pub busy_poll_us: Option<u32>,
    /// `--sysctl`: each sysctl's value in force in this case's private
    /// network namespace (`net.ipv4.tcp_autocorking=0`), as written there;
    /// empty without `--sysctl`.
    pub sysctls: Vec<String>,
    /// Interleaved trials (rounds) of the case.
    pub trials: usize,
}

/// A latency case (latency, rr, connect), flat: the columns of summary.csv.
/// Times are round trips for `latency`, from a request's send to its
/// response for `rr`, and the whole transaction for `connect`.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct CaseRow {
    #[serde(flatten)]
    pub key: CaseKey,
    /// Timed operations over all trials and pairs.
    pub iterations: u64,
    /// Seconds of timed work over all trials (the span of each trial, summed).
    pub timed_s: f64,
    /// Smallest latency of all (pooled over trials and pairs).
    pub min_ns: u64,
    /// Mean of the per-trial means; its CI is bootstrapped over the same values.
    pub mean_ns: f64,
    /// Low end of the mean's 95% bootstrap CI over the trials.
    pub mean_ci_low_ns: f64,
    /// High end of the mean's 95% bootstrap CI.
    pub mean_ci_high_ns: f64,
    /// Median of the per-trial medians; its CI is bootstrapped over the same values.
    pub p50_ns: u64,
    /// Low end of the median's 95% bootstrap CI over the trials.
    pub p50_ci_low_ns: f64,
    /// High end of the median's 95% bootstrap CI.
    pub p50_ci_high_ns: f64,
    /// 90th percentile of every latency of every trial and pair, pooled (HDR, 3 significant digits).
    pub p90_ns: u64,
    /// 99th percentile, pooled.
    pub p99_ns: u64,
    /// 99.9th percentile, pooled.
    pub p999_ns: u64,
    /// 99.99th percentile, pooled.
    pub p9999_ns: u64,
    /// Largest latency, pooled.
    pub max_ns: u64,
    /// Standard deviation of every latency, pooled.
    pub stddev_ns: f64,
    /// Operations per second over all pairs (operations ÷ the span all pairs took), median over trials.
    pub ops_per_s: f64,
    /// Client user CPU per operation (getrusage RUSAGE_THREAD of the thread doing the work).
    pub client_user_ns_per_op: f64,
    /// Client system CPU per operation.
    pub client_sys_ns_per_op: f64,
    /// Server user CPU per operation.
    pub server_user_ns_per_op: f64,
    /// Server system CPU per operation.
    pub server_sys_ns_per_op: f64,
    /// Client voluntary context switches per operation (blocking waits).
    pub client_vcsw_per_op: f64,
    /// Client involuntary context switches per operation.
    pub client_ivcsw_per_op: f64,
    /// Server voluntary context switches per operation.
    pub server_vcsw_per_op: f64,
    /// Server involuntary context switches per operation.
    pub server_ivcsw_per_op: f64,
    /// Client system calls per operation (2.00 = one send, one receive).
    pub client_syscalls_per_op: f64,
    /// Server system calls per operation.
    pub server_syscalls_per_op: f64,
    /// SO_SNDBUF in force on the client end (the listener for connections per request; pipe capacity for pipes).
    pub sndbuf_bytes: usize,
    /// SO_RCVBUF in force on the client end (pipe capacity for pipes).
    pub rcvbuf_bytes: usize,
    /// Measured cost of one clock read on the client CPU.
    pub clock_read_ns: f64,
    /// New connections over TCP: sockets in TIME_WAIT after the case on the
    /// server's side (its listening port), where the closer of each connection waits.
    pub time_wait_server: Option<usize>,
    /// New connections over TCP: sockets in TIME_WAIT on client ports after the case (0 when the server closes first).
    pub time_wait_client: Option<usize>,
    /// `load` only: the offered load and what the open loop measured beside
    /// the latencies (which, for `load`, run from each request's intended
    /// send time to its response).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadColumns>,
}

/// The columns only `load` has.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct LoadColumns {
    /// Requests per second offered (`--rate`), over all connections; `ops_per_s` is what was answered.
    pub offered_per_s: u64,
    /// Connections the requests were spread over (`--connections`).
    pub connections: usize,
    /// How requests were spaced: `constant` or `poisson`.
    pub arrival: crate::spec::Arrival,
    /// Requests sent over all trials.
    pub requests_sent: u64,
    /// Requests never answered (message transports: udp4, uds-dgram,
    /// uds-seqpacket; always 0 on a stream). Left out of every latency and
    /// of `ops_per_s`, never counted as fast.
    pub requests_lost: u64,
    /// Median service time: a request's actual send to its response (what a closed loop would report).
    pub service_p50_ns: u64,
    /// 99th percentile of the service time.
    pub service_p99_ns: u64,
    /// Median of how late sends left after their intended time: the load generator's resolution.
    pub send_lateness_p50_ns: u64,
    /// 99th percentile of the sends' lateness.
    pub send_lateness_p99_ns: u64,
    /// Sends that left more than 100 µs after their intended time.
    pub late_sends: u64,
    /// Most requests in flight at once (any trial).
    pub max_in_flight: u64,
    /// Past the knee: answered under 95% of the offered rate, or (in a
    /// sweep) the median of the trials' p99s over 20× the unloaded p50.
    pub saturated: bool,
    /// `--rate sweep`: the case's p50 in a closed loop (one connection, one
    /// request in flight) before the sweep; null otherwise.
    pub unloaded_p50_ns: Option<u64>,
    /// `--rate sweep`: the case's closed-loop rate before the sweep.
    pub closed_loop_per_s: Option<f64>,
}

/// A throughput case, flat: the columns of summary.csv for `throughput`.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct ThroughputRow {
    #[serde(flatten)]
    pub key: CaseKey,
    /// `one` (client → server) or `both` (both ways at once; counts add up).
    pub direction: &'static str,
    /// Seconds of timed work over all trials (the span of each trial, summed).
    pub timed_s: f64,
    /// Data messages sent (both ways for `direction both`); each trial's end marker is not counted.
    pub messages_sent: u64,
    /// Data messages the receivers got; only UDP loses any.
    pub messages_delivered: u64,
    /// 100 × (sent − delivered) ÷ sent.
    pub loss_pct: f64,
    /// Datagram trials that ended on the idle limit (their end marker was lost).
    pub idle_ended_trials: usize,
    /// Delivered payload bytes per second (decimal: 1 GB = 1e9 B), median over trials.
    pub bytes_per_s: f64,
    /// 95% bootstrap CI of `bytes_per_s` over the trials.
    pub bytes_per_s_ci_low: f64,
    /// High end of the rate's 95% bootstrap CI.
    pub bytes_per_s_ci_high: f64,
    /// The rate in GB/s (1e9 B/s).
    pub gbyte_per_s: f64,
    /// The rate in Gbit/s (1e9 bit/s).
    pub gbit_per_s: f64,
    /// The rate in messages per second.
    pub messages_per_s: f64,
    /// CPU per message sent (client) and received (server), user + system;
    /// with `direction both`, per message moved either way.
    pub client_cpu_ns_per_msg: f64,
    /// Server CPU (user + system) per message received.
    pub server_cpu_ns_per_msg: f64,
    /// Service demand: CPU per KiB moved.
    pub client_cpu_ns_per_kib: f64,
    /// Server CPU per KiB received.
    pub server_cpu_ns_per_kib: f64,
    /// System calls per message sent (client) and received (server).
    pub client_syscalls_per_msg: f64,
    /// Server system calls per message received.
    pub server_syscalls_per_msg: f64,
    /// SO_SNDBUF in force on the client end (pipe capacity for pipes).
    pub sndbuf_bytes: usize,
    /// SO_RCVBUF in force on the client end (pipe capacity for pipes).
    pub rcvbuf_bytes: usize,
}

/// A case in summary.json: the row plus its per-trial points.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
#[schemars(rename = "CaseJson_for_{R}")]
pub struct CaseJson<R> {
    #[serde(flatten)]
    pub row: R,
    /// The HdrHistogram percentile file of the case's latencies in the run
    /// directory (µs); absent for transfers.
    pub hgrm_file: Option<String>,
    /// Every trial's figures, in the order the trials ran.
    pub trial_points: Vec<TrialPoint>,
}

/// One transport over another for one (size, response): the median over
/// rounds of the per-round ratio (the two trials of a round ran back to
/// back), with a 95% bootstrap CI.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct RatioRow {
    /// Message, request or write size of both cases, bytes.
    pub size_bytes: usize,
    /// `load` only: the request rate both cases were offered, per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offered_per_s: Option<u64>,
    /// Response size of both cases, bytes (0 for transfers).
    pub response_bytes: usize,
    /// The transport on top (a Unix socket), and the one it is compared with (TCP, or itself without `--netns`).
    pub numerator: &'static str,
    /// The transport it is compared with (TCP, or the same transport without `--netns`).
    pub denominator: &'static str,
    /// `--netns` mode of each side (`off`: one namespace, loopback).
    pub numerator_netns: NetnsMode,
    /// `--netns` mode of the denominator's case.
    pub denominator_netns: NetnsMode,
    /// Null for transport and `--netns` ratios (both cases with the same
    /// knobs); otherwise the knob whose value differs (`nodelay`, `wait`,
    /// `mode`, `placement`: that value over the knob's first), or
    /// `control` (the A/A copy over the baseline: should be 1).
    pub knob: Option<String>,
    /// Knob ratios: what is divided, named after the knob
    /// (`nodelay=off / nodelay=on`, or `A/A / baseline`); null otherwise.
    pub knob_values: Option<String>,
    /// The numerator's knobs where they differ from the baseline (`nodelay=off`;
    /// `A/A` for the control copy); empty for the baseline.
    pub numerator_knobs: String,
    /// The denominator's knobs, likewise.
    pub denominator_knobs: String,
    /// `p50`/`mean` latency (below 1: UDS faster) or `bytes_per_s` (above 1: UDS faster).
    pub metric: &'static str,
    /// Median of the per-round ratios, and its 95% bootstrap CI.
    pub ratio: f64,
    /// Low end of the ratio's 95% bootstrap CI.
    pub ci_low: f64,
    /// High end of the ratio's 95% bootstrap CI.
    pub ci_high: f64,
    /// Rounds paired.
    pub rounds: usize,
    /// Knob ratios, with `--control`: the 95% CI of the A/A ratio of the
    /// same transport, sizes and metric: the run's own resolution.
    pub aa_low: Option<f64>,
    /// High end of the A/A ratio's CI.
    pub aa_high: Option<f64>,
    /// Knob ratios: `faster` or `slower` when the CI excludes 1 and the
    /// ratio lies outside the A/A spread (further from 1, either way, than
    /// the A/A control's CI reaches), else `no change` (at this run's
    /// resolution); `control` for the A/A ratio; null otherwise.
    pub verdict: Option<&'static str>,
}

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
    /// Interleaved rounds planned (`--trials`).
    pub trials: u32,
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
    /// Rounds kept: every planned one (`settings.trials`), or the complete
    /// ones when a Ctrl-C stopped the run early.
    pub rounds: u32,
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

fn per(total: f64, n: u64) -> f64 {
    total / n.max(1) as f64
}

fn key(plan: &Plan, c: &Case, trials: usize) -> CaseKey {
    CaseKey {
        workload: plan.workload.name(),
        transport: c.transport.name(),
        size_bytes: c.size,
        response_bytes: if matches!(plan.workload, Workload::Throughput { .. }) {
            0
        } else {
            c.response
        },
        depth: plan.workload.depth(),
        pairs: plan.pairs,
        mode: c.knobs.mode,
        wait: c.knobs.wait,
        nodelay: c.knobs.nodelay,
        netns: c.netns,
        placement: c
            .knobs
            .placement
            .map_or_else(|| plan.placement_label(), |(s, c)| format!("s{s}c{c}")),
        knobs: c.knobs.label(&plan.base, &plan.sysctls),
        sysctls: plan
            .sysctls
            .iter()
            .enumerate()
            .map(|(i, x)| format!("{}={}", x.name, x.values[usize::from(c.knobs.sysctl[i])]))
            .collect(),
        aa_control: c.knobs.copy > 0,
        sndbuf_asked_bytes: c.knobs.sndbuf,
        rcvbuf_asked_bytes: c.knobs.rcvbuf,
        busy_poll_us: c.knobs.busy_poll,
        trials,
    }
}

/// Seconds of timed work in `trials`.
fn timed_s(trials: &[TrialPoint]) -> f64 {
    trials.iter().map(|t| t.elapsed_ns as f64).sum::<f64>() / 1e9
}

/// Delivered payload bytes per second of one trial.
fn rate(t: &TrialPoint, size: usize) -> f64 {
    t.delivered as f64 * size as f64 * 1e9 / t.elapsed_ns.max(1) as f64
}

fn latency_row(plan: &Plan, o: &CaseOutcome, clock_read_ns: f64, seed: u64) -> CaseRow {
    let s: Summary = stats::summarize(&o.hist);
    let means: Vec<f64> = o.trials.iter().map(|t| t.mean_ns).collect();
    let p50s: Vec<f64> = o.trials.iter().map(|t| t.p50_ns as f64).collect();
    let mean_ci = stats::bootstrap_ci(&means, stats::mean, seed);
    let p50_ci = stats::bootstrap_ci(&p50s, stats::median, seed + 1);
    let (n, u) = (s.n, &o.usage);
    CaseRow {
        key: key(plan, &o.case, o.trials.len()),
        iterations: n,
        timed_s: timed_s(&o.trials),
        min_ns: s.min_ns,
        mean_ns: stats::mean(&means),
        mean_ci_low_ns: mean_ci.low,
        mean_ci_high_ns: mean_ci.high,
        p50_ns: stats::median(&p50s).round() as u64,
        p50_ci_low_ns: p50_ci.low,
        p50_ci_high_ns: p50_ci.high,
        p90_ns: s.p90_ns,
        p99_ns: s.p99_ns,
        p999_ns: s.p999_ns,
        p9999_ns: s.p9999_ns,
        max_ns: s.max_ns,
        stddev_ns: s.stddev_ns,
        ops_per_s: o.ops_per_s(),
        client_user_ns_per_op: per(u.client.user_ns as f64, n),
        client_sys_ns_per_op: per(u.client.sys_ns as f64, n),
        server_user_ns_per_op: per(u.server.user_ns as f64, n),
        server_sys_ns_per_op: per(u.server.sys_ns as f64, n),
        client_vcsw_per_op: per(u.client.vcsw as f64, n),
        client_ivcsw_per_op: per(u.client.ivcsw as f64, n),
        server_vcsw_per_op: per(u.server.vcsw as f64, n),
        server_ivcsw_per_op: per(u.server.ivcsw as f64, n),
        client_syscalls_per_op: per(u.client_calls as f64, n),
        server_syscalls_per_op: per(u.server_calls as f64, n),
        sndbuf_bytes: o.buffers.sndbuf_bytes,
        rcvbuf_bytes: o.buffers.rcvbuf_bytes,
        clock_read_ns,
        time_wait_server: o.time_wait.map(|t| t.server),
        time_wait_client: o.time_wait.map(|t| t.client),
        load: o.load.as_ref().map(|l| {
            let q = |h: &hdrhistogram::Histogram<u64>, f: f64| {
                if h.is_empty() {
                    0
                } else {
                    h.value_at_quantile(f)
                }
            };
            LoadColumns {
                offered_per_s: o.case.rate,
                connections: plan.workload.connections(),
                arrival: plan.workload.arrival(),
                requests_sent: o.trials.iter().map(|t| t.sent).sum(),
                requests_lost: l.lost,
                service_p50_ns: q(&l.service, 0.5),
                service_p99_ns: q(&l.service, 0.99),
                send_lateness_p50_ns: q(&l.lateness, 0.5),
                send_lateness_p99_ns: q(&l.lateness, 0.99),
                late_sends: l.late,
                max_in_flight: l.max_in_flight,
                saturated: crate::workload::sweep::saturated(o, l.unloaded_p50_ns),
                unloaded_p50_ns: l.unloaded_p50_ns,
                closed_loop_per_s: l.closed_loop_per_s,
            }
        }),
    }
}

fn throughput_row(plan: &Plan, o: &CaseOutcome, both: bool, seed: u64) -> ThroughputRow {
    let size = o.case.size;
    let rates: Vec<f64> = o.trials.iter().map(|t| rate(t, size)).collect();
    let ci = stats::bootstrap_ci(&rates, stats::median, seed);
    let bps = stats::median(&rates);
    let sent: u64 = o.trials.iter().map(|t| t.sent).sum();
    let delivered: u64 = o.trials.iter().map(|t| t.delivered).sum();
    let u = &o.usage;
    let client_cpu = (u.client.user_ns + u.client.sys_ns) as f64;
    let server_cpu = (u.server.user_ns + u.server.sys_ns) as f64;
    let kib = |msgs: u64| (msgs as f64 * size as f64 / 1024.0).max(1e-9);
    ThroughputRow {
        key: key(plan, &o.case, o.trials.len()),
        direction: if both { "both" } else { "one" },
        timed_s: timed_s(&o.trials),
        messages_sent: sent,
        messages_delivered: delivered,
        loss_pct: if sent == 0 {
            0.0
        } else {
            100.0 * (sent - delivered.min(sent)) as f64 / sent as f64
        },
        idle_ended_trials: o.trials.iter().filter(|t| t.idle_ended).count(),
        bytes_per_s: bps,
        bytes_per_s_ci_low: ci.low,
        bytes_per_s_ci_high: ci.high,
        gbyte_per_s: bps / 1e9,
        gbit_per_s: bps * 8.0 / 1e9,
        messages_per_s: bps / size as f64,
        client_cpu_ns_per_msg: per(client_cpu, sent),
        server_cpu_ns_per_msg: per(server_cpu, delivered),
        client_cpu_ns_per_kib: client_cpu / kib(sent),
        server_cpu_ns_per_kib: server_cpu / kib(delivered),
        client_syscalls_per_msg: per(u.client_calls as f64, sent),
        server_syscalls_per_msg: per(u.server_calls as f64, delivered),
        sndbuf_bytes: o.buffers.sndbuf_bytes,
        rcvbuf_bytes: o.buffers.rcvbuf_bytes,
    }
}

type Pick = fn(&TrialPoint, usize) -> f64;

/// What a pair of cases compares, if they are comparable: `Some(None)`
/// for transports (or `--netns`) at equal knobs, `Some(Some(knob))` for one
/// knob's value over its first, `Some(Some("control"))` for the A/A copy.
fn comparison(num: &Case, den: &Case, base: &Knobs, sysctls: &[Sysctl]) -> Option<Option<String>> {
    let same_load = num.size == den.size && num.response == den.response && num.rate == den.rate;
    if !same_load {
        return None;
    }
    if num.knobs == den.knobs && num.knobs.copy == 0 {
        // Every UDS transport over every TCP one in the same `--netns`
        // mode; under `--netns`, a transport over itself without it.
        let transports =
            (num.transport.is_uds() && den.transport.is_tcp() && num.netns == den.netns)
                || (num.transport == den.transport
                    && num.netns != NetnsMode::Off
                    && den.netns == NetnsMode::Off);
        return transports.then_some(None);
    }
    if num.transport != den.transport || num.netns != den.netns {
        return None;
    }
    // The A/A control over the baseline it copies.
    if num.knobs.copy == 1
        && den.knobs
            == (Knobs {
                copy: 0,
                ..num.knobs
            })
    {
        return Some(Some("control".to_string()));
    }
    if num.knobs.copy != 0 || den.knobs.copy != 0 {
        return None;
    }
    // One knob's value over the knob's first value, the others held.
    match &num.knobs.differences(&den.knobs, sysctls)[..] {
        [k] if den.knobs.value(k, sysctls) == base.value(k, sysctls) => Some(Some(k.clone())),
        _ => None,
    }
}

/// Paired ratios between cases of the same sizes (and rate) that ran in
/// the same rounds: every UDS transport over every TCP transport in the
/// same `--netns` mode and knobs; under `--netns`, every transport over
/// itself without namespaces (what the hop costs); each knob value over
/// the knob's first, the other knobs held; and the A/A control over its
/// baseline, whose CI then bounds what the run can tell apart (`verdict`).
fn ratios(
    cases: &[CaseOutcome],
    (base, sysctls): (&Knobs, &[Sysctl]),
    metrics: &[(&'static str, Pick)],
) -> Vec<RatioRow> {
    let mut out = Vec::new();
    for num in cases {
        for den in cases {
            let Some(knob) = comparison(&num.case, &den.case, base, sysctls) else {
                continue;
            };
            for &(metric, pick) in metrics {
                let by_round = |c: &CaseOutcome| {
                    c.trials
                        .iter()
                        .map(|t| (t.round, pick(t, c.case.size)))
                        .collect::<Vec<_>>()
                };
                let r = stats::paired_ratios(&by_round(num), &by_round(den));
                let Ci { low, high } =
                    stats::bootstrap_ci(&r, stats::median, 0x5eed ^ num.case.size as u64);
                out.push(RatioRow {
                    size_bytes: num.case.size,
                    offered_per_s: (num.case.rate > 0).then_some(num.case.rate),
                    response_bytes: num.case.response,
                    numerator: num.case.transport.name(),
                    denominator: den.case.transport.name(),
                    numerator_netns: num.case.netns,
                    denominator_netns: den.case.netns,
                    knob_values: knob.as_deref().map(|k| match k {
                        "control" => "A/A / baseline".to_string(),
                        k => format!(
                            "{k}={} / {k}={}",
                            num.case.knobs.value(k, sysctls),
                            den.case.knobs.value(k, sysctls)
                        ),
                    }),
                    knob: knob.clone(),
                    numerator_knobs: num.case.knobs.label(base, sysctls),
                    denominator_knobs: den.case.knobs.label(base, sysctls),
                    metric,
                    ratio: stats::median(&r),
                    ci_low: low,
                    ci_high: high,
                    rounds: r.len(),
                    aa_low: None,
                    aa_high: None,
                    verdict: None,
                });
            }
        }
    }
    // Each knob ratio is read against the A/A spread of its transport,
    // sizes and metric: it "changes" the number only when its CI excludes
    // 1 and the ratio lies outside that spread.
    let controls: Vec<RatioRow> = out
        .iter()
        .filter(|r| r.knob.as_deref() == Some("control"))
        .cloned()
        .collect();
    for r in out.iter_mut().filter(|r| r.knob.is_some()) {
        let aa = controls.iter().find(|c| {
            (
                c.numerator,
                c.numerator_netns,
                c.size_bytes,
                c.response_bytes,
            ) == (
                r.numerator,
                r.numerator_netns,
                r.size_bytes,
                r.response_bytes,
            ) && c.offered_per_s == r.offered_per_s
                && c.metric == r.metric
        });
        (r.aa_low, r.aa_high) = (aa.map(|c| c.ci_low), aa.map(|c| c.ci_high));
        r.verdict = Some(verdict(r));
    }
    out.sort_by(|a, b| {
        let k = |r: &RatioRow| {
            (
                r.size_bytes,
                r.response_bytes,
                r.offered_per_s,
                r.metric,
                r.knob.clone(),
                r.numerator,
                r.numerator_netns.name(),
                r.numerator_knobs.clone(),
                r.denominator,
                r.denominator_netns.name(),
            )
        };
        k(a).cmp(&k(b))
    });
    out
}

/// A knob ratio's verdict: `faster` or `slower` when its CI excludes 1
/// and the ratio lies outside the A/A spread (when the run has one): further
/// from 1, either way, than the A/A control's CI reaches (identical cases
/// that differ by ×1.5 make ×1/1.5 as much noise as ×1.5); `no change`
/// otherwise; `control` for the A/A ratio itself.
fn verdict(r: &RatioRow) -> &'static str {
    if r.knob.as_deref() == Some("control") {
        return "control";
    }
    let outside_ci = r.ci_low > 1.0 || r.ci_high < 1.0;
    let outside_aa = match (r.aa_low, r.aa_high) {
        (Some(lo), Some(hi)) => {
            let spread = lo.ln().abs().max(hi.ln().abs());
            r.ratio.ln().abs() > spread
        }
        _ => true,
    };
    if !(outside_ci && outside_aa) {
        return "no change";
    }
    // Time per operation: below 1 is faster; a rate: above 1 is faster.
    let higher_is_better = r.metric == "bytes_per_s";
    if (r.ratio > 1.0) == higher_is_better {
        "faster"
    } else {
        "slower"
    }
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
        env,
    }
}

/// Build the report of a finished run (rayon bootstraps run here).
pub fn build(plan: &Plan, run: &Run, argv: Vec<String>, mut env: Fingerprint) -> AnyReport {
    env.cpus_used = Some(plan.placement_label());
    let seed = |i: usize| 2 * i as u64;
    let general = warnings::general(plan, &env);
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
            &[("bytes_per_s", rate)],
        );
        let mut r = assemble(plan, run, argv, env, rows, ratios);
        r.warnings = general;
        r.warnings.extend(warnings::throughput(&r.cases));
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
        let mut metrics: Vec<(&'static str, Pick)> =
            vec![("p50", |t, _| t.p50_ns as f64), ("mean", |t, _| t.mean_ns)];
        if matches!(plan.workload, Workload::Load { .. }) {
            // Under load the question is the tail.
            metrics.push(("p99", |t, _| t.p99_ns as f64));
        }
        let ratios = ratios(&run.cases, (&plan.base, &plan.sysctls), &metrics);
        let mut r = assemble(plan, run, argv, env, rows, ratios);
        r.warnings = general;
        r.warnings.extend(warnings::latency(&r.cases));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn knob_ratio(
        metric: &'static str,
        ratio: f64,
        ci: (f64, f64),
        aa: Option<(f64, f64)>,
    ) -> RatioRow {
        RatioRow {
            size_bytes: 64,
            offered_per_s: None,
            response_bytes: 64,
            numerator: "tcp4",
            denominator: "tcp4",
            numerator_netns: NetnsMode::Off,
            denominator_netns: NetnsMode::Off,
            knob: Some("nodelay".into()),
            knob_values: Some("nodelay=off / nodelay=on".into()),
            numerator_knobs: "nodelay=off".into(),
            denominator_knobs: String::new(),
            metric,
            ratio,
            ci_low: ci.0,
            ci_high: ci.1,
            rounds: 12,
            aa_low: aa.map(|a| a.0),
            aa_high: aa.map(|a| a.1),
            verdict: None,
        }
    }

    #[test]
    fn a_knob_changes_a_number_only_outside_its_ci_and_the_aa_spread() {
        // CI excludes 1, no A/A in the run: the CI decides.
        assert_eq!(
            verdict(&knob_ratio("p50", 0.90, (0.85, 0.95), None)),
            "faster"
        );
        assert_eq!(
            verdict(&knob_ratio("p50", 1.10, (1.05, 1.15), None)),
            "slower"
        );
        // CI spans 1.
        assert_eq!(
            verdict(&knob_ratio("p50", 0.95, (0.90, 1.01), None)),
            "no change"
        );
        // CI excludes 1, but the A/A copy moved as far: no change at this run's resolution.
        let aa = Some((0.88, 1.06));
        assert_eq!(
            verdict(&knob_ratio("p50", 0.92, (0.90, 0.94), aa)),
            "no change"
        );
        assert_eq!(
            verdict(&knob_ratio("p50", 0.80, (0.78, 0.83), aa)),
            "faster"
        );
        // The spread counts either way: an A/A of 1.5-3.1 (noise of up to
        // ×3.1) hides a ratio of 0.54 (×1.85 the other way).
        let wide = Some((1.5, 3.1));
        assert_eq!(
            verdict(&knob_ratio("p50", 0.54, (0.44, 0.64), wide)),
            "no change"
        );
        assert_eq!(
            verdict(&knob_ratio("p50", 0.30, (0.25, 0.35), wide)),
            "faster"
        );
        // A rate: above 1 is faster.
        assert_eq!(
            verdict(&knob_ratio("bytes_per_s", 1.3, (1.2, 1.4), aa)),
            "faster"
        );
        assert_eq!(
            verdict(&knob_ratio("bytes_per_s", 0.7, (0.6, 0.8), aa)),
            "slower"
        );
    }
}
