//! Stage: results. The "where the µs go" section of the table: one block
//! per placement and size (the layers, their sum), then the events, the
//! send calls and the cost per byte, and the answers.

use std::fmt::Write as _;

use super::super::text::{prose, row};
use super::{Explained, LayerRow};
use crate::workload::tracing::{STAMP_SPANS, StampOrder};

/// A message size as a reader writes it: 64 B, 64 KiB, 1 MiB.
pub(super) fn bytes(b: usize) -> String {
    match b {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

/// A block's heading: its placement, and its other knobs in brackets.
pub(super) fn heading(server: usize, client: usize, knobs: &str) -> String {
    let others: Vec<&str> = knobs
        .split(' ')
        .filter(|k| !k.is_empty() && !k.starts_with("placement="))
        .collect();
    if others.is_empty() {
        placement_words(server, client)
    } else {
        format!("{} [{}]", placement_words(server, client), others.join(" "))
    }
}

/// "cross-CPU (0/1)" or "same CPU (0/0)".
pub fn placement_words(server: usize, client: usize) -> String {
    if server == client {
        format!("same CPU ({server}/{client})")
    } else {
        format!("cross-CPU ({server}/{client})")
    }
}

/// The "where the µs go" section of the table: one block per (size,
/// placement), each row a layer, then the sum check and the answers.
pub fn render(s: &mut String, e: &Explained, rounds: u32) {
    s.push('\n');
    prose(
        s,
        &format!(
            "where the µs go: each layer is the paired difference of two rungs' p50, median over {rounds} \
             rounds (95% CI); share: of the top rung's p50. The layers:"
        ),
    );
    // What each layer is, once (a block's rows then fit 80 columns).
    let rungs = |l: &LayerRow| match l.lower {
        Some(low) => format!("{} − {low}", l.upper),
        None => l.upper.to_string(),
    };
    let mut said: Vec<String> = Vec::new();
    for l in &e.layers {
        let r = rungs(l);
        if !said.contains(&r) {
            let _ = writeln!(s, "  {r:<26} {}", l.layer);
            said.push(r);
        }
    }
    for sum in &e.sums {
        let rows: Vec<&LayerRow> = e
            .layers
            .iter()
            .filter(|l| {
                (l.size_bytes, &l.knobs, l.server_cpu, l.client_cpu)
                    == (sum.size_bytes, &sum.knobs, sum.server_cpu, sum.client_cpu)
            })
            .collect();
        let _ = writeln!(
            s,
            "{}, {}",
            heading(sum.server_cpu, sum.client_cpu, &sum.knobs),
            bytes(sum.size_bytes)
        );
        let _ = writeln!(
            s,
            "  {:<26} {:>7} {:>13} {:>6}",
            "layer", "µs", "95% CI", "share"
        );
        for l in rows {
            let ci = format!("{:.2}–{:.2}", l.ci_low_us, l.ci_high_us);
            let _ = writeln!(
                s,
                "  {:<26} {:>7.2} {ci:>13} {:>5.0}%",
                rungs(l),
                l.us,
                100.0 * l.share,
            );
        }
        let _ = writeln!(
            s,
            "  the layers sum to {:.2} µs; {} measured {:.2} µs:\n    {}",
            sum.sum_us,
            sum.top,
            sum.top_us,
            if sum.adds_up {
                "they add up (within ±10%)"
            } else {
                "NOT within ±10%: a layer's difference is unstable; raise --trials"
            }
        );
    }
    if !e.events.is_empty() {
        s.push('\n');
        prose(
            s,
            "kernel events per round trip in the client's and the server's threads (--trace count, in \
             trials of their own); cost: the counted trials' p50 over the untraced ones'",
        );
        let titles = [
            "transport",
            "syscall",
            "switch",
            "wakeup",
            "ipi",
            "net-rx",
            "xmit",
            "copy",
            "ready",
            "cost",
        ];
        blocks(
            s,
            &e.events,
            |ev| {
                (
                    Some(ev.size_bytes),
                    ev.server_cpu,
                    ev.client_cpu,
                    ev.knobs.as_str(),
                )
            },
            (&titles, &[14, 7, 6, 6, 6, 6, 6, 6, 6, 6]),
            |ev| {
                let mut cells = vec![format!("  {}", ev.transport)];
                cells.extend(
                    ev.per_op
                        .as_array()
                        .map(|v| format!("{:.2}", v.unwrap_or(f64::NAN))),
                );
                cells.push(format!("{:.2}×", ev.traced_over_untraced));
                cells
            },
        );
    }
    if !e.splits.is_empty() {
        s.push('\n');
        prose(
            s,
            "the client's send call and the rest of the round trip (--trace split, in trials of their own)",
        );
        blocks(
            s,
            &e.splits,
            |x| {
                (
                    Some(x.size_bytes),
                    x.server_cpu,
                    x.client_cpu,
                    x.knobs.as_str(),
                )
            },
            (
                &["transport", "send µs", "rest µs", "send", "cost"],
                &[14, 9, 9, 6, 6],
            ),
            |x| {
                vec![
                    format!("  {}", x.transport),
                    format!("{:.2}", x.send_us),
                    format!("{:.2}", x.rest_us),
                    format!("{:.0}%", 100.0 * x.send_us / (x.send_us + x.rest_us)),
                    format!("{:.2}×", x.traced_over_untraced),
                ]
            },
        );
    }
    if !e.stamps.is_empty() {
        s.push('\n');
        prose(
            s,
            "the round trip split by the kernel's stamps (--trace stamp, in trials of their own), µs",
        );
        let _ = writeln!(
            s,
            "  →queue, →device: the request, from the send call to the device queue, then on"
        );
        for (order, names) in [
            (StampOrder::ReturnsFirst, STAMP_SPANS[0]),
            (StampOrder::ReplyFirst, STAMP_SPANS[1]),
        ] {
            if e.stamps.iter().any(|x| x.order == order) {
                let _ = writeln!(
                    s,
                    "  {}: 3rd = {}, 4th = {}",
                    order_label(order),
                    names[2],
                    names[3]
                );
            }
        }
        let _ = writeln!(
            s,
            "  →recv: to the receive call's return; sum: the spans' medians"
        );
        blocks(
            s,
            &e.stamps,
            |x| {
                (
                    Some(x.size_bytes),
                    x.server_cpu,
                    x.client_cpu,
                    x.knobs.as_str(),
                )
            },
            (
                &[
                    "transport",
                    "→queue",
                    "→device",
                    "3rd",
                    "4th",
                    "→recv",
                    "sum",
                    "order",
                    "cost",
                ],
                &[14, 6, 7, 6, 6, 6, 6, 13, 6],
            ),
            |x| {
                let mut cells = vec![format!("  {}", x.transport)];
                cells.extend(x.spans_us.iter().map(|v| format!("{v:.2}")));
                cells.push(format!("{:.2}", x.spans_us.iter().sum::<f64>()));
                cells.push(order_label(x.order).into());
                cells.push(format!("{:.2}×", x.traced_over_untraced));
                cells
            },
        );
    }
    if let Some(first) = e.per_byte.first() {
        s.push('\n');
        prose(
            s,
            &format!(
                "per byte moved, {} → {} (the round trip's growth ÷ twice the size added), ns/B (95% CI)",
                bytes(first.from_bytes),
                bytes(first.to_bytes)
            ),
        );
        blocks(
            s,
            &e.per_byte,
            |b| (None, b.server_cpu, b.client_cpu, b.knobs.as_str()),
            (&[], &[14, 7, 15]),
            |b| {
                vec![
                    format!("  {}", b.transport),
                    format!("{:.3}", b.ns_per_byte),
                    format!("{:.3}–{:.3}", b.ci_low, b.ci_high),
                ]
            },
        );
    }
    for a in &e.answers {
        s.push('\n');
        prose(s, a);
    }
}

/// Rows in blocks, one per (size, placement, other knobs) in the order
/// they first appear: the block's heading, its column titles (if any),
/// then its rows, each cell aligned to `widths` (the first left).
#[allow(clippy::type_complexity)]
fn blocks<'a, T>(
    s: &mut String,
    rows: &'a [T],
    key: impl Fn(&'a T) -> (Option<usize>, usize, usize, &'a str),
    (titles, widths): (&[&str], &[usize]),
    cells: impl Fn(&T) -> Vec<String>,
) {
    let mut keys = Vec::new();
    for r in rows {
        if !keys.contains(&key(r)) {
            keys.push(key(r));
        }
    }
    for k in keys {
        let (size, server, client, knobs) = k;
        let _ = match size {
            Some(b) => writeln!(s, "{}, {}", heading(server, client, knobs), bytes(b)),
            None => writeln!(s, "{}", heading(server, client, knobs)),
        };
        if !titles.is_empty() {
            let mut t: Vec<String> = titles.iter().map(|x| x.to_string()).collect();
            t[0] = format!("  {}", t[0]);
            row(s, widths, &t);
        }
        for r in rows.iter().filter(|r| key(r) == k) {
            row(s, widths, &cells(r));
        }
    }
}

/// How a stamped row's order reads.
fn order_label(o: StampOrder) -> &'static str {
    match o {
        StampOrder::ReturnsFirst => "returns first",
        StampOrder::ReplyFirst => "reply first",
    }
}
