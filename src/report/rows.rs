//! Stage: results. One row per case: what was measured and where (the
//! key), its latency or transfer figures with their confidence intervals,
//! built from a case's outcome after every measurement thread has joined.

use crate::plan::{Case, Plan, Workload};
use crate::stats::{self, Summary};
use crate::workload::run::{CaseOutcome, TrialPoint};

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
    /// `--trace`: `count` if the case's trials counted kernel events.
    pub trace: crate::spec::Trace,
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
    /// `--trace split`: the client's send call, median over the trials of
    /// each trial's median, ns (null otherwise). The rest of the round trip
    /// (the peer's receive, its answer, this side's receive) is `p50_ns`
    /// minus it.
    pub send_call_p50_ns: Option<f64>,
    /// `--trace count`: kernel events per operation in the client's and the server's threads
    /// (null for untraced cases).
    #[serde(flatten)]
    pub traced: TracedColumns,
    /// `load` only: the offered load and what the open loop measured beside
    /// the latencies (which, for `load`, run from each request's intended
    /// send time to its response).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadColumns>,
}

/// Kernel events per operation, counted in a `--trace count` case's trials
/// in the client's and the server's threads (and the softirqs that run
/// while they are current); null otherwise.
#[derive(Debug, Clone, Default, serde::Serialize, schemars::JsonSchema)]
pub struct TracedColumns {
    /// System calls entered.
    pub traced_syscalls_per_op: Option<f64>,
    /// Context switches.
    pub traced_context_switches_per_op: Option<f64>,
    /// Tasks woken.
    pub traced_wakeups_per_op: Option<f64>,
    /// Inter-processor interrupts sent.
    pub traced_ipis_per_op: Option<f64>,
    /// NET_RX softirqs run.
    pub traced_net_rx_softirqs_per_op: Option<f64>,
    /// Packets handed to a network device (lo).
    pub traced_device_xmits_per_op: Option<f64>,
    /// skb data copied to user space.
    pub traced_skb_copies_to_user_per_op: Option<f64>,
    /// Socket data-ready callbacks.
    pub traced_data_ready_per_op: Option<f64>,
}

impl TracedColumns {
    /// Per operation, over the trials that counted.
    pub fn of(trials: &[TrialPoint]) -> Self {
        let mut sum = crate::sys::perf::EventCounts::default();
        let mut ops = 0;
        for t in trials {
            if let Some(e) = &t.events {
                sum.add(e);
                ops += t.n;
            }
        }
        if ops == 0 {
            return Self::default();
        }
        let a = sum.as_array().map(|v| Some(v as f64 / ops as f64));
        Self {
            traced_syscalls_per_op: a[0],
            traced_context_switches_per_op: a[1],
            traced_wakeups_per_op: a[2],
            traced_ipis_per_op: a[3],
            traced_net_rx_softirqs_per_op: a[4],
            traced_device_xmits_per_op: a[5],
            traced_skb_copies_to_user_per_op: a[6],
            traced_data_ready_per_op: a[7],
        }
    }

    /// The rates in [`crate::sys::perf::EVENTS`] order (null: untraced).
    pub fn as_array(&self) -> [Option<f64>; 8] {
        [
            self.traced_syscalls_per_op,
            self.traced_context_switches_per_op,
            self.traced_wakeups_per_op,
            self.traced_ipis_per_op,
            self.traced_net_rx_softirqs_per_op,
            self.traced_device_xmits_per_op,
            self.traced_skb_copies_to_user_per_op,
            self.traced_data_ready_per_op,
        ]
    }
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

pub(super) fn per(total: f64, n: u64) -> f64 {
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
        trace: c.knobs.trace,
        trials,
    }
}

/// Seconds of timed work in `trials`.
fn timed_s(trials: &[TrialPoint]) -> f64 {
    trials.iter().map(|t| t.elapsed_ns as f64).sum::<f64>() / 1e9
}

/// A transfer trial's time per byte delivered, ns: the rate's inverse,
/// which ratios divide (below 1 faster, like time per operation).
pub(super) fn ns_per_byte(t: &TrialPoint, size: usize) -> f64 {
    1e9 / t.rate(size).max(f64::MIN_POSITIVE)
}

pub(super) fn latency_row(plan: &Plan, o: &CaseOutcome, clock_read_ns: f64, seed: u64) -> CaseRow {
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
        send_call_p50_ns: {
            let sends: Vec<f64> = o
                .trials
                .iter()
                .filter_map(|t| t.send_p50_ns.map(|v| v as f64))
                .collect();
            (!sends.is_empty()).then(|| stats::median(&sends))
        },
        traced: TracedColumns::of(&o.trials),
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

pub(super) fn throughput_row(plan: &Plan, o: &CaseOutcome, both: bool, seed: u64) -> ThroughputRow {
    let size = o.case.size;
    let rates: Vec<f64> = o.trials.iter().map(|t| t.rate(size)).collect();
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
