//! The ratio lines under a table: each knob value over the knob's first
//! (with the A/A spread and the verdict), and UDS ÷ TCP per pair of cases,
//! grouped under a heading per comparison so that a row fits 80 columns.

use std::fmt::Write as _;

use super::super::text::{WIDTH, prose, wrap};
use super::super::{Metric, RatioRow, Report, Varied};
use super::{knob_id, label, rate, sizes};

/// Below a table: each knob value over the knob's first, then UDS ÷ TCP
/// under `title`, both of `metric`.
pub(super) fn ratios_below<R>(
    s: &mut String,
    r: &Report<R>,
    ids: &[String],
    metric: Metric,
    title: &str,
) {
    knob_lines(s, &r.ratios, r.workload, r.rounds, metric);
    ratio_lines(s, (&r.ratios, r.workload), ids, metric, title);
}

/// Each knob value over the knob's first value (the other knobs held),
/// per transport and size, with the A/A spread and the verdict.
pub(super) fn knob_lines(
    s: &mut String,
    ratios: &[RatioRow],
    workload: &str,
    rounds: u32,
    metric: Metric,
) {
    let rows: Vec<_> = ratios
        .iter()
        .filter(|x| x.metric == metric && x.knob.is_some())
        .collect();
    if rows.is_empty() {
        return;
    }
    s.push('\n');
    prose(
        s,
        &format!(
            "knobs: {metric} of each value over the knob's first [other knobs held], the median of \
             per-round ratios over {} rounds (95% CI); A/A: the CI of the control copy over the baseline \
             (the run's resolution); a knob changes the number only when its CI excludes 1 and it lies \
             outside the A/A spread",
            rounds
        ),
    );
    let what = |x: &RatioRow| compared_at(x, workload);
    // The transport, the knob's two values, and the other knobs where they
    // are held away from the baseline.
    let pair = |x: &RatioRow| {
        let held = if x.denominator_knobs.is_empty() || x.knob == Some(Varied::Control) {
            String::new()
        } else {
            format!(" [{}]", x.denominator_knobs)
        };
        format!(
            "{}: {}{held}",
            label(x.numerator, x.numerator_netns),
            x.knob_values.as_deref().unwrap_or("")
        )
    };
    // One heading per transport and comparison, in the order they first
    // come, its rows under it: a row is then the sizes (and rate) and the
    // figures, which fit 80 columns (a comparison such as "placement=0/0 /
    // placement=0/1 [trace=count]" and a transport beside them did not).
    let groups = grouped(rows, pair);
    let widest = |f: &dyn Fn(&RatioRow) -> String| {
        groups
            .iter()
            .flat_map(|(_, m)| m)
            .map(|x| f(x).chars().count())
            .max()
            .unwrap_or(0)
    };
    let (w, v) = (widest(&what), widest(&ratio_ci));
    for (p, members) in groups {
        let _ = writeln!(s, "  {}", wrap(&p, WIDTH - 2, 4));
        for x in members {
            let aa = match (x.aa_low, x.aa_high) {
                (Some(lo), Some(hi)) if x.knob != Some(Varied::Control) => {
                    format!("A/A {lo:.2}–{hi:.2}  ")
                }
                _ => String::new(),
            };
            let _ = writeln!(
                s,
                "    {:>w$}  {:<v$}  {aa}{}",
                what(x),
                ratio_ci(x),
                x.verdict.name()
            );
        }
    }
}

/// Ratio rows under headings: one per distinct `heading(row)`, in the
/// order they first come, each with its rows in their order.
fn grouped(
    rows: Vec<&RatioRow>,
    heading: impl Fn(&RatioRow) -> String,
) -> Vec<(String, Vec<&RatioRow>)> {
    let mut groups: Vec<(String, Vec<&RatioRow>)> = Vec::new();
    for x in rows {
        let h = heading(x);
        match groups.iter_mut().find(|(g, _)| *g == h) {
            Some((_, members)) => members.push(x),
            None => groups.push((h, vec![x])),
        }
    }
    groups
}

/// What a ratio's two cases share: their sizes, and `@ 5k/s` under load.
fn compared_at(x: &RatioRow, workload: &str) -> String {
    let at = x
        .offered_per_s
        .map_or(String::new(), |o| format!(" @ {}/s", rate(o)));
    format!("{}{at}", sizes(x.size_bytes, x.response_bytes, workload))
}

pub(super) fn ratio_lines(
    s: &mut String,
    (ratios, workload): (&[RatioRow], &str),
    ids: &[String],
    metric: Metric,
    title: &str,
) {
    let rows: Vec<_> = ratios
        .iter()
        .filter(|x| x.metric == metric && x.knob.is_none())
        .collect();
    if rows.is_empty() {
        return;
    }
    s.push('\n');
    prose(s, title);
    let what = |x: &RatioRow| compared_at(x, workload);
    let pair = |x: &RatioRow| {
        format!(
            "{}{} / {}{}",
            label(x.numerator, x.numerator_netns),
            knob_id(ids, &x.numerator_knobs),
            label(x.denominator, x.denominator_netns),
            knob_id(ids, &x.denominator_knobs)
        )
    };
    // One heading per pair of cases compared, in the order they first
    // come, its sizes (and rates) under it: a row then fits 80 columns
    // with a load rate, a --netns mode or knob numbers beside it.
    let groups = grouped(rows, pair);
    let w = groups
        .iter()
        .flat_map(|(_, m)| m)
        .map(|x| what(x).chars().count())
        .max()
        .unwrap_or(0);
    for (p, members) in groups {
        let _ = writeln!(s, "  {p}");
        for x in members {
            let _ = writeln!(
                s,
                "    {:>w$}  {}  {}",
                what(x),
                match (x.ci_low, x.ci_high) {
                    (Some(lo), Some(hi)) => format!(
                        "{:.3}  (95% CI {lo:.3}–{hi:.3}, {} rounds)",
                        x.ratio, x.rounds
                    ),
                    _ => format!("{:.3}  (CI n/a, {} rounds)", x.ratio, x.rounds),
                },
                x.verdict.name()
            );
        }
    }
}

/// A ratio and its CI as the tables print them: `0.789 (0.780–0.796)`, or
/// `0.789 (n/a, 3 rounds)` below [`crate::report::ratios::MIN_ROUNDS`].
fn ratio_ci(x: &RatioRow) -> String {
    match (x.ci_low, x.ci_high) {
        (Some(lo), Some(hi)) => format!("{:.3} ({lo:.3}–{hi:.3})", x.ratio),
        _ => format!("{:.3} (n/a, {} rounds)", x.ratio, x.rounds),
    }
}
