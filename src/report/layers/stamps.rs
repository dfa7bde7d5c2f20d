//! Stage: results. The kernel's stamps read as layers (`--trace stamp`):
//! a stamped twin's spans, and the third estimate of the segment path.

use super::{Explained, Group};
use crate::spec::TransportKind;
use crate::stats;
use crate::workload::run::CaseOutcome;
use crate::workload::tracing::{STAMP_SPANS, StampOrder};

/// A `--trace stamp` twin's round trip split by the kernel's stamps (see
/// `workload::tracing::STAMP_SPANS`).
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct StampRow {
    pub size_bytes: usize,
    /// The cases' knobs where they differ from the baseline (`placement=0/0`).
    pub knobs: String,
    pub server_cpu: usize,
    pub client_cpu: usize,
    pub transport: &'static str,
    /// Whether the send call returned before the reply was stamped,
    /// in most round trips of most trials: it names the spans.
    pub order: StampOrder,
    /// The spans, in order.
    pub spans: [&'static str; 5],
    /// Each span: the median over trials of each trial's median, µs.
    pub spans_us: [f64; 5],
    /// The twin's p50 round trip (median over trials), µs: what the spans
    /// add up to.
    pub rtt_us: f64,
    /// Round trips stamped in `order`, and in the other, over all trials
    /// (the spans are of the trials where `order` came most).
    pub stamped: u64,
    pub other_order: u64,
    /// The twin's p50 over the untraced case's, median of per-round ratios.
    pub traced_over_untraced: f64,
}

/// A stamped twin's spans: medians over its trials in the order most
/// trials had.
pub(super) fn row(g: &Group<'_>, st: &CaseOutcome, cost: f64) -> Option<StampRow> {
    let all: Vec<_> = st
        .trials
        .iter()
        .filter_map(|t| t.stamps.map(|s| (t, s)))
        .collect();
    let late = all
        .iter()
        .filter(|(_, s)| s.order == StampOrder::ReplyFirst)
        .count();
    let order = if 2 * late > all.len() {
        StampOrder::ReplyFirst
    } else {
        StampOrder::ReturnsFirst
    };
    let of: Vec<_> = all.iter().filter(|(_, s)| s.order == order).collect();
    if of.is_empty() {
        return None;
    }
    let us = |v: u64| v as f64 / 1000.0;
    // Round trips in `order` and in the other, over every trial.
    let (stamped, other_order) = all.iter().fold((0, 0), |(a, b), (_, s)| {
        if s.order == order {
            (a + s.stamped, b + s.other_order)
        } else {
            (a + s.other_order, b + s.stamped)
        }
    });
    let spans_us = std::array::from_fn(|i| {
        stats::median(&of.iter().map(|(_, s)| us(s.p50_ns[i])).collect::<Vec<_>>())
    });
    Some(StampRow {
        size_bytes: g.size,
        knobs: g.label.clone(),
        server_cpu: g.server_cpu,
        client_cpu: g.client_cpu,
        transport: st.case.transport.name(),
        order,
        spans: STAMP_SPANS[order as usize],
        spans_us,
        rtt_us: stats::median(&of.iter().map(|(t, _)| us(t.p50_ns)).collect::<Vec<_>>()),
        stamped,
        other_order,
        traced_over_untraced: cost,
    })
}

/// The third estimate of the segment path, from tcp4's stamped twin: from
/// the device queue to the send call's return is the device, loopback, the
/// softirq and TCP's receive, plus waking the peer, which futex's send call
/// (`wake_us`) costs alone. Appends its sentence (or why there is none) to
/// the answer `a`.
pub(super) fn estimate(
    g: &Group<'_>,
    out: &Explained,
    wake_us: Option<f64>,
    a: &mut String,
    near: impl Fn(f64) -> bool,
    off_by: impl Fn(f64) -> f64,
) -> Option<f64> {
    let stamp = out.stamps.iter().find(|x| {
        (x.transport, x.size_bytes, &x.knobs) == (TransportKind::Tcp4.name(), g.size, &g.label)
    });
    // The stamps mark a message's last segment: a message of more segments
    // has the first ones' whole path before its "device queue". Segments
    // per round trip come from the counted twin (2: one each way, no ACK);
    // without it, sizes up to 16 KiB are taken as one segment.
    let xmits = out
        .events
        .iter()
        .find(|x| (x.transport, x.size_bytes, &x.knobs) == ("tcp4", g.size, &g.label))
        .and_then(|x| x.per_op.traced_device_xmits_per_op);
    let one_segment = xmits.map_or(g.size <= 16 << 10, |x| x < 2.5);
    match (stamp, wake_us) {
        (Some(_), _) if !one_segment => {
            *a += " The kernel's stamps give no estimate here: a message goes as more than one segment, and the stamps mark the last, whose send call span holds the first ones' whole path.";
            None
        }
        (Some(st), Some(wake)) if st.order == StampOrder::ReturnsFirst => {
            let v = 2.0 * (st.spans_us[1] + st.spans_us[2] - wake);
            *a += &format!(
                " From the kernel's stamps (--trace stamp): 2 × (tcp4's device queue → send returns − futex's send call, the wake-up) = {v:.2} µs; {}.",
                if near(v) {
                    "within 20% of the ladder's".to_string()
                } else {
                    format!(
                        "{:.0}% off the ladder's (the stamps miss what comes before the device queue: the skb and IP's output)",
                        off_by(v)
                    )
                }
            );
            Some(v)
        }
        (Some(st), _) if st.order == StampOrder::ReplyFirst => {
            *a += " The kernel's stamps give no estimate here: the woken peer answers before the send call returns, so the send call holds the peer's turn too.";
            None
        }
        _ => None,
    }
}
