//! The tables' unit tests: widths at their widest, digits that show the number.

use super::ratio_lines::{knob_lines, ratio_lines};
use crate::report::{Metric, RatioRow, Varied, Verdict};
use crate::spec::{Knob, NetnsMode};

/// The widest ratio a run prints: a load rate from a sweep, a --netns
/// mode on both sides, two-digit rounds, "no change".
fn widest(knob: bool) -> RatioRow {
    RatioRow {
        size_bytes: 512,
        offered_per_s: Some(127_959),
        response_bytes: 16384,
        numerator: "uds-stream",
        denominator: if knob { "uds-stream" } else { "tcp4" },
        numerator_netns: NetnsMode::Bridge,
        denominator_netns: NetnsMode::Bridge,
        knob: knob.then(|| Varied::Knob(Knob::Nodelay, "nodelay".into())),
        knob_values: knob.then(|| "nodelay=off / nodelay=on".into()),
        numerator_knobs: if knob { "nodelay=off" } else { "k11" }.into(),
        denominator_knobs: if knob {
            "placement=0/0 wait=spin"
        } else {
            "k11"
        }
        .into(),
        metric: Metric::P99,
        ratio: 10.123,
        ci_low: Some(10.001),
        ci_high: Some(12.345),
        rounds: 30,
        aa_low: knob.then_some(0.95),
        aa_high: knob.then_some(1.05),
        verdict: Verdict::NoChange,
    }
}

/// The knob and UDS ÷ TCP lines fit 80 columns at their widest (a
/// sweep's rate, --netns, 30 rounds, knob numbers, "no change", the
/// A/A spread); before, 81 to 94.
#[test]
fn ratio_lines_fit_80_columns_at_their_widest() {
    let rows = [widest(true), widest(false)];
    let mut s = String::new();
    knob_lines(&mut s, &rows, "load", 30, Metric::P99);
    // Twelve knob combinations: the rows are of "#12".
    let ids: Vec<String> = (0..12).map(|i| format!("k{i}")).collect();
    ratio_lines(
        &mut s,
        (&rows, "load"),
        &ids,
        Metric::P99,
        "UDS ÷ TCP of the p99",
    );
    assert!(
        s.contains("A/A 0.95–1.05") && s.contains("#12") && s.contains("30 rounds"),
        "{s}"
    );
    for l in s.lines() {
        assert!(
            l.chars().count() <= 80,
            "{} columns: {l}",
            l.chars().count()
        );
    }
}

#[test]
fn small_rates_keep_three_significant_digits() {
    use super::gbit;
    assert_eq!(gbit(41.33), "41.3");
    assert_eq!(gbit(5.271), "5.27");
    assert_eq!(gbit(0.01543), "0.0154");
    assert_eq!(gbit(0.5), "0.500");
    assert_eq!(gbit(0.0), "0.00");
}
