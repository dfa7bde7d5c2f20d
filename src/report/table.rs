//! Stage: results. The human-readable table printed by default.

use std::fmt::Write as _;

use super::Report;

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

/// The table: one line per case, then the UDS:TCP ratios.
pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "RTT in µs (one-way latency ≈ RTT/2); 95% CIs over {} interleaved trials; clock read {:.1} ns",
        r.settings.trials, r.clock_read_ns
    );
    let _ = writeln!(
        s,
        "{:<14} {:>5} {:>9} {:>19} {:>9} {:>9} {:>9} {:>9} {:>10} {:>9} {:>9} {:>7}",
        "transport",
        "size",
        "p50",
        "p50 95% CI",
        "mean",
        "p99",
        "p99.9",
        "max",
        "rt/s",
        "cli cpu",
        "srv cpu",
        "sys/rt"
    );
    for c in &r.cases {
        let x = &c.row;
        let _ = writeln!(
            s,
            "{:<14} {:>5} {:>9} {:>19} {:>9} {:>9} {:>9} {:>9} {:>10.0} {:>9} {:>9} {:>7.2}",
            x.transport,
            size_label(x.size_bytes),
            us(x.p50_ns as f64),
            format!("{}–{}", us(x.p50_ci_low_ns), us(x.p50_ci_high_ns)),
            us(x.mean_ns),
            us(x.p99_ns as f64),
            us(x.p999_ns as f64),
            us(x.max_ns as f64),
            x.round_trips_per_s,
            us(x.client_user_ns_per_rt + x.client_sys_ns_per_rt),
            us(x.server_user_ns_per_rt + x.server_sys_ns_per_rt),
            x.client_syscalls_per_rt,
        );
    }
    let p50: Vec<_> = r.ratios.iter().filter(|x| x.metric == "p50").collect();
    if !p50.is_empty() {
        let _ = writeln!(
            s,
            "\nmedian RTT ratio, paired by round (below 1: the Unix socket is faster)"
        );
        for x in p50 {
            let _ = writeln!(
                s,
                "  {:>5}  {:<14} / {:<5} {:.3}  (95% CI {:.3}–{:.3}, {} rounds)",
                size_label(x.size_bytes),
                x.numerator,
                x.denominator,
                x.ratio,
                x.ci_low,
                x.ci_high,
                x.rounds
            );
        }
    }
    s
}
