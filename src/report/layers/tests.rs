//! The layers read from made-up outcomes: pairing, sums, answers, per
//! byte, the second estimate.

use super::*;
use crate::spec::Knobs;
use crate::workload::run::TrialPoint;
use crate::workload::tracing::StampOrder;

fn outcome(kind: TransportKind, p50_us: &[f64]) -> CaseOutcome {
    sized(kind, 64, p50_us)
}

fn sized(kind: TransportKind, size: usize, p50_us: &[f64]) -> CaseOutcome {
    let knobs = Knobs {
        nodelay: true,
        wait: crate::spec::Wait::Block,
        mode: crate::spec::Mode::Thread,
        placement: None,
        sndbuf: None,
        rcvbuf: None,
        busy_poll: None,
        trace: crate::spec::Trace::Off,
        sysctl: [0; crate::spec::MAX_SYSCTLS],
        copy: 0,
    };
    let mut o = CaseOutcome {
        case: Case {
            transport: kind,
            size,
            response: size,
            netns: crate::spec::NetnsMode::Off,
            rate: 0,
            knobs,
        },
        hist: crate::samples::new_histogram(),
        trials: Vec::new(),
        usage: Default::default(),
        buffers: Default::default(),
        time_wait: None,
        load: None,
    };
    o.trials = p50_us
        .iter()
        .enumerate()
        .map(|(r, &v)| TrialPoint {
            round: r as u32,
            p50_ns: (v * 1000.0) as u64,
            ..TrialPoint::default()
        })
        .collect();
    o
}

/// Steps are paired differences, the floor is whole, the sum is checked
/// against the top rung, and the answer splits TCP's extra time.
#[test]
fn the_layers_are_paired_differences_that_add_up() {
    // Round 2 is slow for every rung alike: pairing removes it.
    let cases = vec![
        outcome(TransportKind::ShmSpin, &[1.0, 1.0, 9.0, 1.0, 1.0]),
        outcome(TransportKind::UdsStream, &[8.0, 8.0, 16.0, 8.0, 8.0]),
        outcome(TransportKind::Tcp4Sockmap, &[7.0, 7.0, 15.0, 7.0, 7.0]),
        outcome(TransportKind::Tcp4, &[12.0, 12.0, 20.0, 12.0, 12.0]),
    ];
    let e = explain(&cases, |_| String::new(), |_| (0, 1));
    let steps: Vec<(&str, Option<&str>, f64)> =
        e.layers.iter().map(|l| (l.upper, l.lower, l.us)).collect();
    assert_eq!(
        steps,
        vec![
            ("shm-spin", None, 1.0),
            ("uds-stream", Some("shm-spin"), 7.0),
            ("tcp4-sockmap", Some("uds-stream"), -1.0),
            ("tcp4", Some("tcp4-sockmap"), 5.0),
        ]
    );
    assert_eq!(e.layers[1].ci_low_us, 7.0, "paired: the slow round cancels");
    assert_eq!(e.sums.len(), 1);
    assert_eq!((e.sums[0].top_us, e.sums[0].sum_us), (12.0, 12.0));
    assert!(e.sums[0].adds_up);
    let a = &e.answers[0];
    assert!(a.contains("4.00 µs") && a.contains("takes 5.00 µs"), "{a}");
    assert!(
        a.contains("more than all of it") && a.contains("1.00 µs less"),
        "{a}"
    );
}

/// A single rung, or tcp4 and uds-stream alone (a plain run), explain nothing.
#[test]
fn one_rung_or_a_plain_run_explains_nothing() {
    for cases in [
        vec![outcome(TransportKind::Futex, &[10.0; 5])],
        vec![
            outcome(TransportKind::Tcp4, &[10.0; 5]),
            outcome(TransportKind::UdsStream, &[8.0; 5]),
        ],
    ] {
        let e = explain(&cases, |_| String::new(), |_| (0, 1));
        assert!(e.layers.is_empty() && e.sums.is_empty() && e.answers.is_empty());
    }
}

/// Per byte: the growth from the smallest size to the largest over
/// twice the bytes added (a round trip moves the message each way).
#[test]
fn per_byte_is_the_growth_over_the_bytes_moved() {
    let cases = vec![
        sized(TransportKind::Futex, 64, &[5.0; 5]),
        sized(TransportKind::Tcp4, 64, &[10.0; 5]),
        sized(TransportKind::Futex, 1064, &[6.0; 5]),
        sized(TransportKind::Tcp4, 1064, &[12.0; 5]),
    ];
    let e = explain(&cases, |_| String::new(), |_| (0, 1));
    let got: Vec<(&str, f64)> = e
        .per_byte
        .iter()
        .map(|b| (b.transport, b.ns_per_byte))
        .collect();
    assert_eq!(got, vec![("futex", 0.5), ("tcp4", 1.0)]);
    assert_eq!(
        (e.per_byte[1].from_bytes, e.per_byte[1].to_bytes),
        (64, 1064)
    );
}

/// Split twins of tcp4 and tcp4-sockmap give the second estimate of
/// IP + loopback + softirq: twice the difference of their send calls.
#[test]
fn the_split_send_calls_give_a_second_estimate() {
    let split = |kind, rtt: f64, send_us: f64| {
        let mut o = outcome(kind, &[rtt; 5]);
        o.case.knobs.trace = crate::spec::Trace::Split;
        for t in &mut o.trials {
            t.send_p50_ns = Some((send_us * 1000.0) as u64);
        }
        o
    };
    let cases = vec![
        outcome(TransportKind::UdsStream, &[8.0; 5]),
        outcome(TransportKind::Tcp4Sockmap, &[7.0; 5]),
        outcome(TransportKind::Tcp4, &[12.0; 5]),
        split(TransportKind::Tcp4Sockmap, 7.1, 1.0),
        split(TransportKind::Tcp4, 12.1, 3.4),
    ];
    let e = explain(&cases, |_| String::new(), |_| (0, 1));
    assert_eq!(e.splits.len(), 2);
    let est = &e.estimates[0];
    assert_eq!(est.ladder_us, 5.0);
    assert!((est.split_us.unwrap() - 4.8).abs() < 1e-9, "{est:?}");
    assert_eq!(est.agree, Some(true));
    assert_eq!(est.stamps_us, None);
    assert!(
        e.answers[0].contains("= 4.80 µs; the two agree within 20%"),
        "{}",
        e.answers[0]
    );
}

/// The ladder, futex's send call timed apart and a stamped tcp4 (four
/// trials returning first, one with the reply first), all at `size`.
fn stamped_ladder(size: usize) -> Vec<CaseOutcome> {
    use crate::workload::tracing::StampSpans;
    let twin = |kind, trace, rtt: f64| {
        let mut o = sized(kind, size, &[rtt; 5]);
        o.case.knobs.trace = trace;
        o
    };
    let mut futex = twin(TransportKind::Futex, crate::spec::Trace::Split, 6.0);
    for t in &mut futex.trials {
        t.send_p50_ns = Some(1_000);
    }
    let mut stamped = twin(TransportKind::Tcp4, crate::spec::Trace::Stamp, 12.0);
    for (i, t) in stamped.trials.iter_mut().enumerate() {
        let reply_first = i == 4;
        t.stamps = Some(StampSpans {
            order: if reply_first {
                StampOrder::ReplyFirst
            } else {
                StampOrder::ReturnsFirst
            },
            p50_ns: if reply_first {
                [9_000; 5]
            } else {
                [1_000, 500, 3_000, 4_000, 3_500]
            },
            mean_ns: [0.0; 5],
            rtt_mean_ns: 0.0,
            stamped: 100,
            other_order: 1,
            unusable: 0,
        });
    }
    vec![
        sized(TransportKind::Futex, size, &[6.0; 5]),
        sized(TransportKind::UdsStream, size, &[8.0; 5]),
        sized(TransportKind::Tcp4Sockmap, size, &[7.0; 5]),
        sized(TransportKind::Tcp4, size, &[12.0; 5]),
        futex,
        stamped,
    ]
}

/// A stamped twin of tcp4 gives its spans (medians over the trials in the
/// order most had) and, with futex's send call, the third estimate:
/// 2 × (device queue → send returns − the wake-up); none for a message of
/// more than one segment (the stamps mark the last).
#[test]
fn the_stamps_give_spans_and_a_third_estimate() {
    let e = explain(&stamped_ladder(64), |_| String::new(), |_| (0, 1));
    let row = &e.stamps[0];
    assert_eq!(row.order, StampOrder::ReturnsFirst);
    assert_eq!(row.spans_us, [1.0, 0.5, 3.0, 4.0, 3.5]);
    assert_eq!(row.spans_us.iter().sum::<f64>(), row.rtt_us);
    assert_eq!((row.stamped, row.other_order), (401, 104));
    assert_eq!(row.spans[2], "device → send returns");
    let est = &e.estimates[0];
    // 2 × (0.5 + 3.0 − 1.0) = 5.0, the ladder's 12 − 7.
    assert_eq!(
        (est.ladder_us, est.stamps_us, est.stamps_agree),
        (5.0, Some(5.0), Some(true))
    );
    assert!(
        e.answers[0].contains("= 5.00 µs; within 20% of the ladder's"),
        "{}",
        e.answers[0]
    );
    let mut text = String::new();
    render::render(&mut text, &e, 5);
    assert!(
        text.contains("returns first: 3rd = device → send returns"),
        "{text}"
    );
    let big = explain(&stamped_ladder(64 << 10), |_| String::new(), |_| (0, 1));
    assert!(big.estimates.is_empty(), "{:?}", big.estimates);
    assert!(
        big.answers[0].contains("more than one segment"),
        "{}",
        big.answers[0]
    );
}
