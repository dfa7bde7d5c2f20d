//! Stage: results. The human-readable table printed by default.

use std::fmt::Write as _;

use super::{AnyReport, CaseKey, CaseRow, Metric, Report, ThroughputRow};

fn us(ns: f64) -> String {
    format!("{:.2}", ns / 1000.0)
}

pub use crate::spec::size_label;

/// The table for any workload; `wide`: every column (the default fits 100).
pub fn render(r: &AnyReport, wide: bool) -> String {
    match r {
        AnyReport::Latency(r) => latency(r, wide),
        AnyReport::Throughput(r) => throughput(r, wide),
    }
}

fn sizes(size: usize, response: usize, workload: &str) -> String {
    if workload == "latency" || workload == "throughput" {
        size_label(size)
    } else {
        format!("{}/{}", size_label(size), size_label(response))
    }
}

/// "over 10 interleaved trials", or, for a run a Ctrl-C stopped, how many
/// of the planned rounds it kept.
fn rounds<R>(r: &Report<R>) -> String {
    let again = match r.rounds_retried {
        0 => String::new(),
        n => format!(" ({n} run again: disturbed)"),
    };
    format!("{}{again}", rounds_kept(r))
}

fn rounds_kept<R>(r: &Report<R>) -> String {
    if let Some(p) = &r.precision {
        let how = if p.reached {
            format!("every CI within ±{}%", 100.0 * p.target)
        } else {
            format!("±{}% not reached by --max-time", 100.0 * p.target)
        };
        return format!("over {} interleaved trials (--precision: {how})", r.rounds);
    }
    if let (Some(t), true) = (r.settings.precision, r.rounds >= r.settings.trials) {
        return format!(
            "over {} interleaved trials (--precision ±{}%: stopped by Ctrl-C before the target)",
            r.rounds,
            100.0 * t
        );
    }
    if r.rounds < r.settings.trials {
        format!(
            "over {} of {} rounds (stopped by Ctrl-C; the complete rounds are kept)",
            r.rounds, r.settings.trials
        )
    } else {
        format!("over {} interleaved trials", r.rounds)
    }
}

pub use super::text::WIDTH;
use super::text::{prose, table};

mod ratio_lines;
use ratio_lines::ratios_below;

fn latency(r: &Report<CaseRow>, wide: bool) -> String {
    let ids = knob_ids(r.cases.iter().map(|c| &c.row.key));
    if r.workload == "load" {
        return load(r, wide);
    }
    let mut s = String::new();
    let what = match r.workload {
        "latency" => "round-trip time (one-way ≈ RTT/2)",
        "connect" => "per transaction (connect, request, response, end-of-file, close)",
        _ => "request → response latency",
    };
    prose(
        &mut s,
        &format!(
            "{what}; p50 and its 95% CI: median of the trials' medians {}; percentiles of every operation pooled; clock read {:.1} ns",
            rounds(r),
            r.clock_read_ns
        ),
    );
    let mut head = vec![
        "transport",
        "size",
        "p50 µs",
        "p50 95% CI µs",
        "p99 µs",
        "p99.9 µs",
        "ops/s",
    ];
    // 76 columns; `--wide` adds the rest.
    let mut widths = vec![14, 8, 8, 15, 8, 9, 8];
    if wide {
        head.extend([
            "max µs",
            "cpu µs/op",
            "mean µs",
            "min µs",
            "cli cpu µs",
            "srv cpu µs",
            "cli calls/op",
            "srv calls/op",
            "cli vcsw/op",
            "srv vcsw/op",
        ]);
        widths.extend([9, 9, 8, 8, 10, 10, 12, 12, 11, 11]);
    }
    knob_legend(&mut s, &ids, r.cases.iter().map(|c| &c.row.key));
    let mut rows = Vec::new();
    for c in &r.cases {
        let x = &c.row;
        let cli = x.client_user_ns_per_op + x.client_sys_ns_per_op;
        let srv = x.server_user_ns_per_op + x.server_sys_ns_per_op;
        let mut cells = vec![
            name(&x.key, &ids),
            sizes(x.key.size_bytes, x.key.response_bytes, r.workload),
            us(x.p50_ns as f64),
            format!("{}–{}", us(x.p50_ci_low_ns), us(x.p50_ci_high_ns)),
            us(x.p99_ns as f64),
            us(x.p999_ns as f64),
            format!("{:.0}", x.ops_per_s),
        ];
        if wide {
            cells.extend([
                us(x.max_ns as f64),
                us(cli + srv),
                us(x.mean_ns),
                us(x.min_ns as f64),
                us(cli),
                us(srv),
                format!("{:.2}", x.client_syscalls_per_op),
                format!("{:.2}", x.server_syscalls_per_op),
                format!("{:.2}", x.client_vcsw_per_op),
                format!("{:.2}", x.server_vcsw_per_op),
            ]);
        }
        rows.push(cells);
    }
    table(&mut s, &widths, &head, &rows);
    ratios_below(
        &mut s,
        r,
        &ids,
        Metric::P50,
        "UDS ÷ TCP of the p50, the median of per-round ratios (below 1: the Unix socket is faster)",
    );
    if let Some(e) = &r.explained {
        super::layers::render(&mut s, e, r.rounds);
    }
    s
}

/// A request rate as people write it: 5k, 12.5k, 800.
fn rate(per_s: u64) -> String {
    if per_s >= 1000 && per_s.is_multiple_of(100) {
        let k = per_s as f64 / 1000.0;
        format!("{}k", k)
    } else {
        per_s.to_string()
    }
}

/// `load`: one row per transport, sizes and offered rate.
fn load(r: &Report<CaseRow>, wide: bool) -> String {
    let ids = knob_ids(r.cases.iter().map(|c| &c.row.key));
    let mut s = String::new();
    prose(
        &mut s,
        &format!(
            "request → response under open-loop load, timed from each request's intended send; \
             p50 and its 95% CI: median of the trials' medians {}; percentiles pooled",
            rounds(r)
        ),
    );
    let mut head = vec![
        "transport",
        "sizes",
        "offered/s",
        "answered/s",
        "p50 µs",
        "p50 95% CI µs",
        "p99 µs",
    ];
    // 79 columns; `--wide` adds the rest.
    let mut widths = vec![12, 9, 9, 10, 8, 15, 8];
    if wide {
        head.extend([
            "p99.9 µs",
            "svc p99 µs",
            "max µs",
            "connections",
            "late sends",
            "lost",
            "lateness p99 µs",
            "in flight",
            "cpu µs/req",
        ]);
        widths.extend([9, 10, 9, 11, 10, 8, 15, 9, 10]);
    }
    knob_legend(&mut s, &ids, r.cases.iter().map(|c| &c.row.key));
    let mut rows = Vec::new();
    for c in &r.cases {
        let x = &c.row;
        let Some(l) = &x.load else { continue };
        let cpu = x.client_user_ns_per_op
            + x.client_sys_ns_per_op
            + x.server_user_ns_per_op
            + x.server_sys_ns_per_op;
        let mut cells = vec![
            name(&x.key, &ids),
            sizes(x.key.size_bytes, x.key.response_bytes, r.workload),
            rate(l.offered_per_s),
            format!("{:.0}", x.ops_per_s),
            us(x.p50_ns as f64),
            format!("{}–{}", us(x.p50_ci_low_ns), us(x.p50_ci_high_ns)),
            us(x.p99_ns as f64),
        ];
        if wide {
            cells.extend([
                us(x.p999_ns as f64),
                us(l.service_p99_ns as f64),
                us(x.max_ns as f64),
                l.connections.to_string(),
                l.late_sends.to_string(),
                l.requests_lost.to_string(),
                us(l.send_lateness_p99_ns as f64),
                l.max_in_flight.to_string(),
                us(cpu),
            ]);
        }
        rows.push(cells);
    }
    table(&mut s, &widths, &head, &rows);
    knees(&mut s, r);
    ratios_below(
        &mut s,
        r,
        &ids,
        Metric::P99,
        "UDS ÷ TCP of the p99 at each offered rate, the median of per-round ratios (below 1: the Unix socket is faster)",
    );
    s
}

/// Where each transport and size saturated: the first rate past its knee
/// that the next rate offered confirms (or the last rate offered), and the
/// highest rate below it that it kept up with.
fn knees(s: &mut String, r: &Report<CaseRow>) {
    let ids = knob_ids(r.cases.iter().map(|c| &c.row.key));
    let mut groups: Vec<(String, Vec<(u64, bool)>)> = Vec::new();
    for c in &r.cases {
        let x = &c.row;
        let Some(l) = &x.load else { continue };
        let name = format!(
            "{} {}",
            name(&x.key, &ids),
            sizes(x.key.size_bytes, x.key.response_bytes, r.workload)
        );
        match groups.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => v.push((l.offered_per_s, l.saturated)),
            None => groups.push((name, vec![(l.offered_per_s, l.saturated)])),
        }
    }
    s.push('\n');
    prose(
        s,
        "knee (past it: answered under 95% of the offered rate, or in a sweep a typical p99 over 20× the unloaded p50)",
    );
    for (name, mut steps) in groups {
        steps.sort_unstable();
        let knee = (0..steps.len())
            .find(|&i| steps[i].1 && steps.get(i + 1).is_none_or(|n| n.1))
            .map(|i| steps[i].0);
        let kept = steps
            .iter()
            .filter(|(rate, past)| !past && knee.is_none_or(|k| *rate < k))
            .map(|(rate, _)| *rate)
            .max();
        let text = match (kept, knee) {
            (Some(k), Some(p)) => format!("kept up with {}/s, saturated at {}/s", rate(k), rate(p)),
            (Some(k), None) => format!("kept up with every rate offered, up to {}/s", rate(k)),
            (None, Some(p)) => format!(
                "saturated already at {}/s, the lowest rate offered",
                rate(p)
            ),
            (None, None) => continue,
        };
        let _ = writeln!(s, "  {name:<24} {text}");
    }
}

fn throughput(r: &Report<ThroughputRow>, wide: bool) -> String {
    let ids = knob_ids(r.cases.iter().map(|c| &c.row.key));
    let mut s = String::new();
    let way = match r.cases.first().map(|c| c.row.direction) {
        Some("both") => "transfer both ways at once (rates and counts add both directions)",
        _ => "one-way transfer",
    };
    prose(
        &mut s,
        &format!("{way}; delivered payload, median and 95% CI {}", rounds(r)),
    );
    let mut head = vec![
        "transport",
        "size",
        "Gbit/s",
        "95% CI Gbit/s",
        "msg/s",
        "loss %",
        "cpu ns/msg",
    ];
    // 72 columns; `--wide` adds the rest.
    let mut widths = vec![13, 6, 8, 13, 10, 6, 10];
    if wide {
        head.extend([
            "cli ns/msg",
            "srv ns/msg",
            "GB/s",
            "cli calls/msg",
            "srv calls/msg",
            "cli ns/KiB",
            "srv ns/KiB",
        ]);
        widths.extend([10, 10, 7, 13, 13, 10, 10]);
    }
    knob_legend(&mut s, &ids, r.cases.iter().map(|c| &c.row.key));
    let mut rows = Vec::new();
    for c in &r.cases {
        let x = &c.row;
        let mut cells = vec![
            name(&x.key, &ids),
            size_label(x.key.size_bytes),
            gbit(x.gbit_per_s),
            format!(
                "{}–{}",
                gbit(x.bytes_per_s_ci_low * 8.0 / 1e9),
                gbit(x.bytes_per_s_ci_high * 8.0 / 1e9)
            ),
            format!("{:.0}", x.messages_per_s),
            format!("{:.2}", x.loss_pct),
            format!("{:.0}", x.client_cpu_ns_per_msg + x.server_cpu_ns_per_msg),
        ];
        if wide {
            cells.extend([
                format!("{:.0}", x.client_cpu_ns_per_msg),
                format!("{:.0}", x.server_cpu_ns_per_msg),
                format!("{:.3}", x.gbyte_per_s),
                format!("{:.2}", x.client_syscalls_per_msg),
                format!("{:.2}", x.server_syscalls_per_msg),
                format!("{:.0}", x.client_cpu_ns_per_kib),
                format!("{:.0}", x.server_cpu_ns_per_kib),
            ]);
        }
        rows.push(cells);
    }
    table(&mut s, &widths, &head, &rows);
    ratios_below(
        &mut s,
        r,
        &ids,
        Metric::NsPerByte,
        "UDS ÷ TCP of the time per byte (the rate's inverse), the median of per-round ratios (below 1: the Unix socket is faster)",
    );
    s
}

/// Gbit/s with the digits that show the number: 41.3, 5.27, 0.0154 (a
/// 1-byte transfer is not "0.00").
pub fn gbit(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.1}")
    } else if v >= 1.0 || v == 0.0 {
        format!("{v:.2}")
    } else {
        let digits = (2 - v.log10().floor() as i32).clamp(2, 6) as usize;
        format!("{v:.digits$}")
    }
}

/// The knob combinations of a run, in the order the cases show them
/// (`CaseKey::knobs`: empty for the baseline); empty when the run has no
/// knob lists and no `--control`.
fn knob_ids<'a>(keys: impl Iterator<Item = &'a CaseKey>) -> Vec<String> {
    let mut ids: Vec<String> = vec![String::new()];
    for k in keys {
        if !ids.contains(&k.knobs) {
            ids.push(k.knobs.clone());
        }
    }
    if ids.len() == 1 { Vec::new() } else { ids }
}

/// `#2`: the number of a knob combination (its label), or nothing.
fn knob_id(ids: &[String], knobs: &str) -> String {
    ids.iter()
        .position(|k| k == knobs)
        .map_or(String::new(), |i| format!(" #{}", i + 1))
}

/// A case's name in the tables: `tcp4`, `tcp4@veth`, and `#N` for its
/// knob combination when the run has several.
fn name(k: &CaseKey, ids: &[String]) -> String {
    format!("{}{}", label(k.transport, k.netns), knob_id(ids, &k.knobs))
}

/// What each `#N` is: the baseline's knobs in full, the others where they differ.
fn knob_legend<'a>(s: &mut String, ids: &[String], mut keys: impl Iterator<Item = &'a CaseKey>) {
    if ids.is_empty() {
        return;
    }
    let base = keys
        .find(|k| k.knobs.is_empty())
        .map_or(String::new(), |k| {
            format!(
                "nodelay={} wait={:?} mode={:?} placement={}",
                if k.nodelay { "on" } else { "off" },
                k.wait,
                k.mode,
                k.placement
            )
            .to_lowercase()
        });
    let parts: Vec<String> = ids
        .iter()
        .enumerate()
        .map(|(i, k)| match (i, k.as_str()) {
            (0, _) => format!("#1 baseline ({base})"),
            (_, "A/A") => format!("#{} A/A copy of #1", i + 1),
            _ => format!("#{} {k}", i + 1),
        })
        .collect();
    prose(s, &format!("knobs: {}", parts.join("; ")));
}

/// `tcp4`, or `tcp4@veth` under `--netns`.
fn label(transport: &str, netns: crate::spec::NetnsMode) -> String {
    match netns {
        crate::spec::NetnsMode::Off => transport.to_string(),
        m => format!("{transport}@{}", m.name()),
    }
}

#[cfg(test)]
mod tests;
