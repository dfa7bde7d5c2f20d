//! Stage: results. The human-readable table printed by default.

use std::fmt::Write as _;

use super::{AnyReport, CaseRow, Report, ThroughputRow};

fn us(ns: f64) -> String {
    format!("{:.2}", ns / 1000.0)
}

/// Size in the units people write: 64, 4K, 1M.
pub fn size_label(b: usize) -> String {
    match b {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{}M", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{}K", b >> 10),
        b => b.to_string(),
    }
}

/// The table for any workload.
pub fn render(r: &AnyReport) -> String {
    match r {
        AnyReport::Latency(r) => latency(r),
        AnyReport::Throughput(r) => throughput(r),
    }
}

fn sizes(size: usize, response: usize, workload: &str) -> String {
    if workload == "latency" || workload == "throughput" {
        size_label(size)
    } else {
        format!("{}/{}", size_label(size), size_label(response))
    }
}

fn latency(r: &Report<CaseRow>) -> String {
    let mut s = String::new();
    let what = match r.workload {
        "latency" => "RTT in µs (one-way latency ≈ RTT/2)",
        "connect" => "per transaction (connect, request, response, close) in µs",
        _ => "request → response latency in µs",
    };
    let _ = writeln!(
        s,
        "{what}; 95% CIs over {} interleaved trials; clock read {:.1} ns",
        r.settings.trials, r.clock_read_ns
    );
    let _ = writeln!(
        s,
        "{:<14} {:>9} {:>9} {:>19} {:>9} {:>9} {:>9} {:>9} {:>10} {:>9} {:>9} {:>7}",
        "transport",
        "size",
        "p50",
        "p50 95% CI",
        "mean",
        "p99",
        "p99.9",
        "max",
        "ops/s",
        "cli cpu",
        "srv cpu",
        "sys/op"
    );
    for c in &r.cases {
        let x = &c.row;
        let _ = writeln!(
            s,
            "{:<14} {:>9} {:>9} {:>19} {:>9} {:>9} {:>9} {:>9} {:>10.0} {:>9} {:>9} {:>7.2}",
            label(x.key.transport, x.key.netns),
            sizes(x.key.size_bytes, x.key.response_bytes, r.workload),
            us(x.p50_ns as f64),
            format!("{}–{}", us(x.p50_ci_low_ns), us(x.p50_ci_high_ns)),
            us(x.mean_ns),
            us(x.p99_ns as f64),
            us(x.p999_ns as f64),
            us(x.max_ns as f64),
            x.ops_per_s,
            us(x.client_user_ns_per_op + x.client_sys_ns_per_op),
            us(x.server_user_ns_per_op + x.server_sys_ns_per_op),
            x.client_syscalls_per_op,
        );
    }
    ratio_lines(
        &mut s,
        r,
        "p50",
        "median ratio, paired by round (below 1: the Unix socket is faster)",
    );
    s
}

fn throughput(r: &Report<ThroughputRow>) -> String {
    let mut s = String::new();
    let way = match r.cases.first().map(|c| c.row.direction) {
        Some("both") => "transfer both ways at once (rates and counts add both directions)",
        _ => "one-way transfer",
    };
    let _ = writeln!(
        s,
        "{way}; GB/s = 1e9 bytes/s of delivered payload; 95% CIs over {} interleaved trials",
        r.settings.trials
    );
    let _ = writeln!(
        s,
        "{:<14} {:>6} {:>8} {:>17} {:>8} {:>11} {:>7} {:>10} {:>10} {:>8} {:>8}",
        "transport",
        "size",
        "GB/s",
        "95% CI",
        "Gbit/s",
        "msg/s",
        "loss%",
        "cli ns/msg",
        "srv ns/msg",
        "cli sys",
        "srv sys"
    );
    for c in &r.cases {
        let x = &c.row;
        let _ = writeln!(
            s,
            "{:<14} {:>6} {:>8.3} {:>17} {:>8.2} {:>11.0} {:>7.2} {:>10.0} {:>10.0} {:>8.2} {:>8.2}",
            label(x.key.transport, x.key.netns),
            size_label(x.key.size_bytes),
            x.gbyte_per_s,
            format!(
                "{:.3}–{:.3}",
                x.bytes_per_s_ci_low / 1e9,
                x.bytes_per_s_ci_high / 1e9
            ),
            x.gbit_per_s,
            x.messages_per_s,
            x.loss_pct,
            x.client_cpu_ns_per_msg,
            x.server_cpu_ns_per_msg,
            x.client_syscalls_per_msg,
            x.server_syscalls_per_msg,
        );
    }
    ratio_lines(
        &mut s,
        r,
        "bytes_per_s",
        "throughput ratio, paired by round (above 1: the Unix socket is faster)",
    );
    s
}

/// `tcp4`, or `tcp4@veth` under `--netns`.
fn label(transport: &str, netns: crate::spec::NetnsMode) -> String {
    match netns {
        crate::spec::NetnsMode::Off => transport.to_string(),
        m => format!("{transport}@{}", m.name()),
    }
}

fn ratio_lines<R>(s: &mut String, r: &Report<R>, metric: &str, title: &str) {
    let rows: Vec<_> = r.ratios.iter().filter(|x| x.metric == metric).collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(s, "\n{title}");
    for x in rows {
        let _ = writeln!(
            s,
            "  {:>9}  {:<14} / {:<5} {:.3}  (95% CI {:.3}–{:.3}, {} rounds)",
            sizes(x.size_bytes, x.response_bytes, r.workload),
            label(x.numerator, x.numerator_netns),
            label(x.denominator, x.denominator_netns),
            x.ratio,
            x.ci_low,
            x.ci_high,
            x.rounds
        );
    }
}
