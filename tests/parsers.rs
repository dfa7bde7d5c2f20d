//! Property tests of the argument parsers: any input gets an answer (never
//! a panic), every size written with a unit parses to its value, and
//! nothing outside the allowed ranges is accepted.

use proptest::prelude::*;
use sockbench::cli::{MAX_SIZE, parse_count, parse_cpu, parse_duration, parse_size, parse_trials};

proptest! {
    #[test]
    fn parsers_never_panic(s in ".{0,40}") {
        let _ = parse_size(&s);
        let _ = parse_duration(&s);
        let _ = parse_count(&s);
        let _ = parse_cpu(&s);
        let _ = parse_trials(&s);
    }

    #[test]
    fn sizes_with_units_parse_to_their_value(n in 1usize..=1024, unit in prop::sample::select(vec![("", 1usize), ("B", 1), ("K", 1024), ("k", 1024), ("KiB", 1024), ("M", 1 << 20), ("MiB", 1 << 20)])) {
        let (suffix, mult) = unit;
        let want = n * mult;
        let got = parse_size(&format!("{n}{suffix}"));
        if want <= MAX_SIZE {
            prop_assert_eq!(got, Ok(want));
        } else {
            prop_assert!(got.is_err(), "{}{} accepted", n, suffix);
        }
    }

    #[test]
    fn accepted_sizes_are_in_range(s in "[0-9]{1,12}[A-Za-z]{0,3}") {
        if let Ok(n) = parse_size(&s) {
            prop_assert!((1..=MAX_SIZE).contains(&n), "{} → {}", s, n);
        }
    }

    #[test]
    fn durations_round_trip_in_ms(ms in 1u64..10_000_000) {
        prop_assert_eq!(parse_duration(&format!("{ms}ms")), Ok(std::time::Duration::from_millis(ms)));
    }

    #[test]
    fn counts_and_trials_respect_their_bounds(n in any::<u64>()) {
        prop_assert_eq!(parse_count(&n.to_string()).is_ok(), n >= 1);
        prop_assert_eq!(parse_trials(&n.to_string()).is_ok(), (1..=10_000).contains(&n));
    }
}

#[test]
fn zero_negative_and_overflowing_values_are_refused() {
    for bad in [
        "0",
        "-1",
        "0K",
        "1025K",
        "2M",
        "18446744073709551616",
        "1.5K",
        " 64",
        "64 ",
        "K",
        "",
    ] {
        assert!(parse_size(bad).is_err(), "size {bad:?}");
    }
    for bad in ["0s", "-1s", "5", "1 parsec", ""] {
        assert!(parse_duration(bad).is_err(), "duration {bad:?}");
    }
}
