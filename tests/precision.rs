//! `--precision`: rounds go on until every watched CI is narrow enough, or
//! until another round would pass `--max-time`; the run says which.

mod util;

use std::time::{Duration, Instant};

/// A run that ends by its own rule (the target, or --max-time) must end:
/// run it with a bound, into a directory (its report can be larger than
/// a pipe holds), and return its summary.json.
fn bounded(args: &[&str]) -> serde_json::Value {
    let tmp = util::private_tmp();
    let out = tmp.path().join("run");
    let mut all = args.to_vec();
    all.extend(["--out", out.to_str().unwrap()]);
    let child = util::spawn_run(tmp.path(), &all, std::process::Stdio::null());
    let o = util::wait_output(child, Duration::from_secs(120));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap()
}

/// A loose target is met as soon as CIs exist: the run stops at its
/// `--trials` rounds (at least 5) and records that it reached the target,
/// with the widest CI within it.
#[test]
fn precision_stops_once_every_ci_is_within_the_target() {
    let doc = bounded(&[
        "latency",
        "-t",
        "socketpair,uds-stream",
        "-s",
        "64",
        "--trials",
        "5",
        "-d",
        "500ms",
        "--precision",
        "50%",
        "--progress",
        "never",
    ]);
    assert_eq!(doc["rounds"], 5, "{doc:#}");
    let p = &doc["precision"];
    assert_eq!(p["reached"], true, "{p}");
    assert!(p["widest"].as_f64().unwrap() <= 0.5, "{p}");
    // No TCP transport, so no ratio: each case's median is watched.
    let of = p["widest_of"].as_str().unwrap();
    assert!(
        of == "socketpair 64 p50" || of == "uds-stream 64 p50",
        "{p}"
    );
    assert_eq!(doc["settings"]["precision"], 0.5);
    for c in doc["cases"].as_array().unwrap() {
        assert_eq!(c["trial_points"].as_array().unwrap().len(), 5);
    }
}

/// A target no run here can meet: rounds go on past --trials and stop
/// before --max-time is passed (with one round of slack), the report says
/// it was not reached, names the widest CI (a ratio: uds-stream / tcp4),
/// and warns.
#[test]
fn precision_gives_up_at_max_time_and_names_what_was_short() {
    let started = Instant::now();
    let doc = bounded(&[
        "latency",
        "-t",
        "tcp4,uds-stream",
        "-s",
        "64",
        "--trials",
        "5",
        "-d",
        "250ms",
        "--precision",
        "0.1%",
        "--max-time",
        "3s",
        "--progress",
        "never",
    ]);
    let took = started.elapsed();
    let p = &doc["precision"];
    assert_eq!(p["reached"], false, "{p}");
    assert!(
        doc["rounds"].as_u64().unwrap() > 5,
        "more rounds than --trials: {doc:#}"
    );
    // The last round started when one more, at the mean round's length,
    // would end by --max-time; a slow one may pass it by about a round.
    let (secs, rounds) = (
        p["rounds_s"].as_f64().unwrap(),
        doc["rounds"].as_f64().unwrap(),
    );
    assert!(secs <= 3.0 + 2.0 * secs / rounds, "{p}");
    assert!(p["widest"].as_f64().unwrap() > 0.001, "{p}");
    assert_eq!(p["widest_of"], "64 uds-stream / tcp4 p50", "{p}");
    let codes = util::warning_codes(&doc);
    assert!(codes.contains(&"precision-short"), "{codes:?}");
    // Set-up, warm-up and the report come on top of the rounds' 3 s.
    assert!(took.as_secs() < 60, "{took:?}");
}

#[test]
fn precision_bad_input_is_one_line_and_exit_2() {
    let tmp = util::private_tmp();
    util::assert_refused(
        tmp.path(),
        &["latency", "--precision", "0"],
        &["--precision", "0.1% to 50%"],
    );
    util::assert_refused(
        tmp.path(),
        &["latency", "--precision", "x%"],
        &["--precision", "x%"],
    );
    util::assert_refused(
        tmp.path(),
        &["latency", "--precision", "2%", "--pairs", "2"],
        &["--precision", "one pair"],
    );
    util::assert_refused(
        tmp.path(),
        &["latency", "--max-time", "5s"],
        &["--precision"],
    );
}
