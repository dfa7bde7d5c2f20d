//! Stage: results. Paired ratios between cases that ran back to back in
//! the same rounds (UDS over TCP, a transport over itself without
//! `--netns`, a knob value over its first, the A/A control over its
//! baseline), each the median of per-round ratios with a bootstrap CI, and
//! each knob ratio's verdict against the A/A spread. The vocabulary of a
//! ratio (metric, what it varies, verdict) is typed here.

use crate::plan::Case;
use crate::spec::{Knob, Knobs, NetnsMode, Sysctl};
use crate::stats::{self, Ci};
use crate::workload::run::{CaseOutcome, TrialPoint};

/// What a ratio divides: a latency percentile or mean (time per
/// operation) or a transfer's time per byte (the rate's inverse). One
/// convention for every ratio: below 1, the numerator is faster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub enum Metric {
    #[serde(rename = "p50")]
    P50,
    #[serde(rename = "mean")]
    Mean,
    #[serde(rename = "p99")]
    P99,
    #[serde(rename = "ns_per_byte")]
    NsPerByte,
}

impl Metric {
    /// The name in summary.json and the table.
    pub fn name(self) -> &'static str {
        match self {
            Metric::P50 => "p50",
            Metric::Mean => "mean",
            Metric::P99 => "p99",
            Metric::NsPerByte => "ns_per_byte",
        }
    }
}

/// Fewer paired rounds than this give a ratio's point value only: no CI,
/// no verdict (a bootstrap over 3 values says nothing).
pub const MIN_ROUNDS: usize = 5;

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a knob ratio varies: one knob of the run (named as on the command
/// line: `nodelay`, `wait`, `mode`, `placement`, `sndbuf`, `rcvbuf`,
/// `busy-poll`, or a sysctl's label), or the A/A control (`control`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Varied {
    /// A knob, and its name in this run (a sysctl's label needs the run).
    Knob(Knob, String),
    Control,
}

impl Varied {
    /// The name in summary.json.
    pub fn name(&self) -> &str {
        match self {
            Varied::Knob(_, name) => name,
            Varied::Control => "control",
        }
    }
}

impl serde::Serialize for Varied {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl schemars::JsonSchema for Varied {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Varied".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A knob of the run (nodelay, wait, mode, placement, sndbuf, rcvbuf, busy-poll, or a sysctl's label), or `control` for the A/A copy over its baseline."
        })
    }
}

/// What a knob ratio says about the number it varies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub enum Verdict {
    /// The CI excludes 1 and the ratio lies outside the A/A spread, the faster way.
    #[serde(rename = "faster")]
    Faster,
    /// Likewise, the slower way.
    #[serde(rename = "slower")]
    Slower,
    /// Not resolved at this run's resolution.
    #[serde(rename = "no change")]
    NoChange,
    /// The A/A ratio itself.
    #[serde(rename = "control")]
    Control,
    /// Fewer than 5 rounds: a point value, no CI, no verdict.
    #[serde(rename = "too few rounds")]
    TooFewRounds,
}

impl Verdict {
    /// The word in summary.json and the table.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Faster => "faster",
            Verdict::Slower => "slower",
            Verdict::NoChange => "no change",
            Verdict::Control => "control",
            Verdict::TooFewRounds => "n/a",
        }
    }
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
    pub knob: Option<Varied>,
    /// Knob ratios: what is divided, named after the knob
    /// (`nodelay=off / nodelay=on`, or `A/A / baseline`); null otherwise.
    pub knob_values: Option<String>,
    /// The numerator's knobs where they differ from the baseline (`nodelay=off`;
    /// `A/A` for the control copy); empty for the baseline.
    pub numerator_knobs: String,
    /// The denominator's knobs, likewise.
    pub denominator_knobs: String,
    /// `p50`/`mean`/`p99` latency or `ns_per_byte` (a transfer's time per
    /// byte): below 1, the numerator is faster.
    pub metric: Metric,
    /// Median of the per-round ratios, and its 95% bootstrap CI.
    pub ratio: f64,
    /// Low end of the ratio's 95% bootstrap CI; null with fewer than 5
    /// rounds (`MIN_ROUNDS`).
    pub ci_low: Option<f64>,
    /// High end of the ratio's 95% bootstrap CI; null with fewer than 5 rounds.
    pub ci_high: Option<f64>,
    /// Rounds paired.
    pub rounds: usize,
    /// Knob ratios, with `--control`: the 95% CI of the A/A ratio of the
    /// same transport, sizes and metric: the run's own resolution.
    pub aa_low: Option<f64>,
    /// High end of the A/A ratio's CI.
    pub aa_high: Option<f64>,
    /// `faster` or `slower` when the CI excludes 1 and (knob ratios) the
    /// ratio lies outside the A/A spread (further from 1, either way, than
    /// the A/A control's CI reaches), else `no change` (at this run's
    /// resolution); `control` for the A/A ratio; `too few rounds` below 5.
    pub verdict: Verdict,
}

/// How a metric is read off a trial (the case's size given).
pub(super) type Pick = fn(&TrialPoint, usize) -> f64;

/// What a pair of cases compares, if they are comparable: `Some(None)`
/// for transports (or `--netns`) at equal knobs, `Some(Some(Knob(k)))` for
/// one knob's value over its first, `Some(Some(Control))` for the A/A copy.
fn comparison(num: &Case, den: &Case, base: &Knobs, sysctls: &[Sysctl]) -> Option<Option<Varied>> {
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
        return Some(Some(Varied::Control));
    }
    if num.knobs.copy != 0 || den.knobs.copy != 0 {
        return None;
    }
    // One knob's value over the knob's first value, the others held.
    match &num.knobs.differences(&den.knobs, sysctls)[..] {
        [k] if den.knobs.value(*k, sysctls) == base.value(*k, sysctls) => {
            Some(Some(Varied::Knob(*k, k.name(sysctls))))
        }
        _ => None,
    }
}

/// Paired ratios between cases of the same sizes (and rate) that ran in
/// the same rounds: every UDS transport over every TCP transport in the
/// same `--netns` mode and knobs; under `--netns`, every transport over
/// itself without namespaces (what the hop costs); each knob value over
/// the knob's first, the other knobs held; and the A/A control over its
/// baseline, whose CI then bounds what the run can tell apart (`verdict`).
pub(super) fn ratios(
    cases: &[CaseOutcome],
    (base, sysctls): (&Knobs, &[Sysctl]),
    metrics: &[(Metric, Pick)],
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
                let ci = (r.len() >= MIN_ROUNDS)
                    .then(|| stats::bootstrap_ci(&r, stats::median, 0x5eed ^ num.case.size as u64));
                out.push(RatioRow {
                    size_bytes: num.case.size,
                    offered_per_s: (num.case.rate > 0).then_some(num.case.rate),
                    response_bytes: num.case.response,
                    numerator: num.case.transport.name(),
                    denominator: den.case.transport.name(),
                    numerator_netns: num.case.netns,
                    denominator_netns: den.case.netns,
                    knob_values: knob.as_ref().map(|k| match k {
                        Varied::Control => "A/A / baseline".to_string(),
                        Varied::Knob(k, name) => format!(
                            "{name}={} / {name}={}",
                            num.case.knobs.value(*k, sysctls),
                            den.case.knobs.value(*k, sysctls)
                        ),
                    }),
                    knob: knob.clone(),
                    numerator_knobs: num.case.knobs.label(base, sysctls),
                    denominator_knobs: den.case.knobs.label(base, sysctls),
                    metric,
                    ratio: stats::median(&r),
                    ci_low: ci.map(|c: Ci| c.low),
                    ci_high: ci.map(|c: Ci| c.high),
                    rounds: r.len(),
                    aa_low: None,
                    aa_high: None,
                    verdict: Verdict::NoChange,
                });
            }
        }
    }
    // Each knob ratio is read against the A/A spread of its transport,
    // sizes and metric: it "changes" the number only when its CI excludes
    // 1 and the ratio lies outside that spread.
    let controls: Vec<RatioRow> = out
        .iter()
        .filter(|r| r.knob == Some(Varied::Control))
        .cloned()
        .collect();
    for r in out.iter_mut() {
        if r.knob.is_none() {
            r.verdict = verdict(r);
            continue;
        }
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
        (r.aa_low, r.aa_high) = (aa.and_then(|c| c.ci_low), aa.and_then(|c| c.ci_high));
        r.verdict = verdict(r);
    }
    out.sort_by(|a, b| {
        let k = |r: &RatioRow| {
            (
                r.size_bytes,
                r.response_bytes,
                r.offered_per_s,
                r.metric.name(),
                r.knob.as_ref().map(|k| k.name().to_string()),
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

/// A ratio's verdict: `faster` or `slower` when its CI excludes 1 and,
/// for a knob, the ratio lies outside the A/A spread (when the run has one): further
/// from 1, either way, than the A/A control's CI reaches (identical cases
/// that differ by ×1.5 make ×1/1.5 as much noise as ×1.5); `no change`
/// otherwise; `control` for the A/A ratio itself; no CI (fewer than 5
/// rounds): `too few rounds`.
fn verdict(r: &RatioRow) -> Verdict {
    if r.knob == Some(Varied::Control) {
        return Verdict::Control;
    }
    let (Some(ci_low), Some(ci_high)) = (r.ci_low, r.ci_high) else {
        return Verdict::TooFewRounds;
    };
    let outside_ci = ci_low > 1.0 || ci_high < 1.0;
    let outside_aa = match (r.aa_low, r.aa_high) {
        (Some(lo), Some(hi)) => {
            let spread = lo.ln().abs().max(hi.ln().abs());
            r.ratio.ln().abs() > spread
        }
        _ => true,
    };
    if !(outside_ci && outside_aa) {
        return Verdict::NoChange;
    }
    // Time per operation or per byte: below 1 is faster.
    if r.ratio < 1.0 {
        Verdict::Faster
    } else {
        Verdict::Slower
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn knob_ratio(metric: Metric, ratio: f64, ci: (f64, f64), aa: Option<(f64, f64)>) -> RatioRow {
        RatioRow {
            size_bytes: 64,
            offered_per_s: None,
            response_bytes: 64,
            numerator: "tcp4",
            denominator: "tcp4",
            numerator_netns: NetnsMode::Off,
            denominator_netns: NetnsMode::Off,
            knob: Some(Varied::Knob(Knob::Nodelay, "nodelay".into())),
            knob_values: Some("nodelay=off / nodelay=on".into()),
            numerator_knobs: "nodelay=off".into(),
            denominator_knobs: String::new(),
            metric,
            ratio,
            ci_low: Some(ci.0),
            ci_high: Some(ci.1),
            rounds: 12,
            aa_low: aa.map(|a| a.0),
            aa_high: aa.map(|a| a.1),
            verdict: Verdict::NoChange,
        }
    }

    #[test]
    fn a_knob_changes_a_number_only_outside_its_ci_and_the_aa_spread() {
        // CI excludes 1, no A/A in the run: the CI decides.
        assert_eq!(
            verdict(&knob_ratio(Metric::P50, 0.90, (0.85, 0.95), None)),
            Verdict::Faster
        );
        assert_eq!(
            verdict(&knob_ratio(Metric::P50, 1.10, (1.05, 1.15), None)),
            Verdict::Slower
        );
        // CI spans 1.
        assert_eq!(
            verdict(&knob_ratio(Metric::P50, 0.95, (0.90, 1.01), None)),
            Verdict::NoChange
        );
        // CI excludes 1, but the A/A copy moved as far: no change at this run's resolution.
        let aa = Some((0.88, 1.06));
        assert_eq!(
            verdict(&knob_ratio(Metric::P50, 0.92, (0.90, 0.94), aa)),
            Verdict::NoChange
        );
        assert_eq!(
            verdict(&knob_ratio(Metric::P50, 0.80, (0.78, 0.83), aa)),
            Verdict::Faster
        );
        // The spread counts either way: an A/A of 1.5-3.1 (noise of up to
        // ×3.1) hides a ratio of 0.54 (×1.85 the other way).
        let wide = Some((1.5, 3.1));
        assert_eq!(
            verdict(&knob_ratio(Metric::P50, 0.54, (0.44, 0.64), wide)),
            Verdict::NoChange
        );
        assert_eq!(
            verdict(&knob_ratio(Metric::P50, 0.30, (0.25, 0.35), wide)),
            Verdict::Faster
        );
        // Time per byte: below 1 is faster, as for every ratio.
        assert_eq!(
            verdict(&knob_ratio(Metric::NsPerByte, 0.7, (0.6, 0.8), aa)),
            Verdict::Faster
        );
        assert_eq!(
            verdict(&knob_ratio(Metric::NsPerByte, 1.3, (1.2, 1.4), aa)),
            Verdict::Slower
        );
        // A transport ratio: its CI decides.
        let mut t = knob_ratio(Metric::P50, 0.79, (0.78, 0.80), None);
        t.knob = None;
        assert_eq!(verdict(&t), Verdict::Faster);
        // No CI (fewer than 5 rounds): no verdict, however far from 1.
        t.ci_low = None;
        t.ci_high = None;
        assert_eq!(verdict(&t), Verdict::TooFewRounds);
    }
}
