//! Workloads beyond ping-pong, on real sockets: transfers deliver every
//! byte (or count what UDP lost), rr and connect verify every response,
//! concurrent pairs add up, and TCP's TIME_WAIT is accounted.

mod util;

use std::sync::atomic::AtomicU64;

use sockbench::samples::{Heartbeat, new_histogram};
use sockbench::spec::TransportKind;
use sockbench::spec::{Job, Mode};
use sockbench::transport::SocketDir;
use sockbench::workload::{PairSpec, PinnedPair, Stop};
use util::{QUICK, json_run};

fn spec(kind: TransportKind, size: usize, response: usize, job: Job, mode: Mode) -> PairSpec {
    PairSpec {
        response,
        job,
        ..PairSpec::echo(kind, size, util::opts(), mode, util::cpus().0)
    }
}

#[test]
fn transfers_deliver_every_message_in_order() {
    let dir = SocketDir::new().unwrap();
    sockbench::affinity::pin("client", util::cpus().1).unwrap();
    let beat = AtomicU64::new(0);
    for mode in [Mode::Thread, Mode::Process] {
        // The ladder's rungs are ping-pong only (tests/ladder.rs).
        for kind in TransportKind::ALL.into_iter().filter(|k| !k.is_rung()) {
            for size in [9, 4096, 60_000] {
                let mut pair =
                    PinnedPair::connect(spec(kind, size, size, Job::Sink, mode), Some(&dir))
                        .unwrap();
                for n in [1u64, 500] {
                    let t = pair
                        .transfer(Stop::count(n), true, &mut Heartbeat::new(&beat))
                        .unwrap_or_else(|e| panic!("{kind} {size} B {mode:?}: {e}"));
                    if kind == TransportKind::Udp4 {
                        assert!(t.delivered <= n, "udp4 never delivers more than sent");
                    } else {
                        assert_eq!(
                            t.delivered, n,
                            "{kind} {size} B {mode:?}: every message arrives"
                        );
                    }
                    assert!(t.elapsed_ns() > 0);
                    assert!(
                        t.usage.client_calls >= n,
                        "{kind}: at least one send per message"
                    );
                }
            }
        }
    }
}

#[test]
fn transfers_both_ways_deliver_every_message_each_way() {
    let dir = SocketDir::new().unwrap();
    sockbench::affinity::pin("client", util::cpus().1).unwrap();
    let beat = AtomicU64::new(0);
    for mode in [Mode::Thread, Mode::Process] {
        // The ladder's rungs are ping-pong only (tests/ladder.rs).
        for kind in TransportKind::ALL.into_iter().filter(|k| !k.is_rung()) {
            let mut pair =
                PinnedPair::connect(spec(kind, 4096, 4096, Job::Duplex, mode), Some(&dir)).unwrap();
            let n = 300;
            let t = pair
                .transfer(Stop::count(n), true, &mut Heartbeat::new(&beat))
                .unwrap_or_else(|e| panic!("{kind} both ways {mode:?}: {e}"));
            // The client sends n; the server sends until the client's end
            // marker reaches it. Every send is a call; every message received
            // is one (UDP may lose some).
            assert!(t.sent >= n, "{kind} {mode:?}: {t:?}");
            let min_calls = if kind == TransportKind::Udp4 {
                assert!(t.delivered <= t.sent);
                n + 1
            } else {
                assert_eq!(t.delivered, t.sent, "{kind} {mode:?}: all of each way");
                n
            };
            assert!(
                t.usage.client_calls >= min_calls,
                "{kind}: the receiving thread's calls count too: {t:?}"
            );
            // The server's sender sends until the client's end marker
            // reaches the server: how many depends on the scheduler (a
            // busy machine may give it little time), but each was a call.
            let server_sent = t.sent - n;
            assert!(
                t.usage.server_calls >= server_sent.max(1),
                "{kind}: the server's sender's calls count too: {t:?}"
            );
        }
    }
}

#[test]
fn rr_and_connect_verify_every_response() {
    let dir = SocketDir::new().unwrap();
    sockbench::affinity::pin("client", util::cpus().1).unwrap();
    let beat = AtomicU64::new(0);
    for mode in [Mode::Thread, Mode::Process] {
        // The ladder's rungs are ping-pong only (tests/ladder.rs).
        for kind in TransportKind::ALL.into_iter().filter(|k| !k.is_rung()) {
            for (req, resp) in [(512, 16 << 10), (16 << 10, 64), (1, 1)] {
                if sockbench::plan::check_size(kind, resp, "--response-size").is_err() {
                    continue;
                }
                let mut h = new_histogram();
                let mut pair =
                    PinnedPair::connect(spec(kind, req, resp, Job::Echo, mode), Some(&dir))
                        .unwrap();
                pair.record(Stop::count(30), &mut h, &mut Heartbeat::new(&beat), true)
                    .unwrap_or_else(|e| panic!("rr {kind} {req}/{resp} {mode:?}: {e}"));
                assert_eq!(h.len(), 30);
                if kind.is_connection_oriented() {
                    let mut h = new_histogram();
                    let mut pair =
                        PinnedPair::dial(spec(kind, req, resp, Job::Accept, mode), Some(&dir))
                            .unwrap();
                    let (_, u) = pair
                        .record_connect(Stop::count(30), &mut h, &mut Heartbeat::new(&beat), true)
                        .unwrap_or_else(|e| panic!("connect {kind} {req}/{resp} {mode:?}: {e}"));
                    assert_eq!(h.len(), 30, "connect {kind}: one latency per transaction");
                    assert!(
                        u.server_calls >= 30 * 4,
                        "accept, recv, send, close per transaction"
                    );
                }
            }
        }
    }
}

#[test]
fn concurrent_pairs_add_up() {
    let (s, c) = util::cpus();
    let (s, c) = (s.to_string(), c.to_string());
    let cpus = format!("{s},{c}");
    let rcpus = format!("{c},{s}");
    for workload in ["latency", "rr", "connect", "throughput"] {
        let mut args = vec![
            workload,
            "-t",
            "tcp4,uds-stream",
            "--pairs",
            "3",
            "--server-cpu",
            &cpus,
            "--client-cpu",
            &rcpus,
        ];
        args.extend(QUICK);
        let doc = json_run(&args);
        for case in doc["cases"].as_array().unwrap() {
            assert_eq!(case["pairs"], 3);
            assert_eq!(case["placement"], format!("s{s}c{c} s{c}c{s} s{s}c{c}"));
            let trial_n: u64 = case["trial_points"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["n"].as_u64().unwrap())
                .sum();
            assert_eq!(trial_n, 3 * 40, "{workload}: 3 pairs × 40 operations");
            if workload == "throughput" {
                assert_eq!(case["messages_sent"], 120);
                assert_eq!(case["messages_delivered"], 120);
            } else {
                assert_eq!(
                    case["iterations"], 120,
                    "{workload}: every pair's latencies merged"
                );
            }
        }
    }
}

/// The server sends its response and closes first; the client reads to
/// end-of-file, then closes. So TCP's TIME_WAIT sockets sit on the server's
/// port, and the client's ephemeral ports hold none.
#[test]
fn connect_server_closes_first_so_client_ports_hold_no_time_wait() {
    let mut args = vec!["connect", "-t", "tcp4,uds-stream"];
    args.extend(QUICK);
    let doc = json_run(&args);
    let cases = doc["cases"].as_array().unwrap();
    let tcp = cases.iter().find(|c| c["transport"] == "tcp4").unwrap();
    let uds = cases
        .iter()
        .find(|c| c["transport"] == "uds-stream")
        .unwrap();
    // Every transaction's server-side close leaves one TIME_WAIT socket for 60 s
    // (warm-up included), so at least the timed ones are there.
    assert!(tcp["time_wait_server"].as_u64().unwrap() >= 40, "{tcp}");
    assert_eq!(tcp["time_wait_client"], 0, "{tcp}");
    assert!(uds["time_wait_server"].is_null() && uds["time_wait_client"].is_null());
    assert_eq!(
        tcp["client_syscalls_per_op"], 9.0,
        "socket, 2 setsockopt, nodelay, connect, send, recv, recv (end-of-file), close"
    );
    assert!(
        !doc["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["code"] == "time-wait-client")
    );
}

#[test]
fn throughput_reports_rates_loss_and_units() {
    let mut args = vec![
        "throughput",
        "-t",
        "tcp4,uds-stream,uds-dgram,udp4",
        "-s",
        "1K",
    ];
    args.extend(QUICK);
    let doc = json_run(&args);
    for c in doc["cases"].as_array().unwrap() {
        let bps = c["bytes_per_s"].as_f64().unwrap();
        assert!(bps > 0.0);
        assert!((c["gbit_per_s"].as_f64().unwrap() - bps * 8.0 / 1e9).abs() < 1e-9);
        assert!((c["messages_per_s"].as_f64().unwrap() - bps / 1024.0).abs() < 1e-6);
        let (sent, got) = (
            c["messages_sent"].as_u64().unwrap(),
            c["messages_delivered"].as_u64().unwrap(),
        );
        let loss = c["loss_pct"].as_f64().unwrap();
        assert!((loss - 100.0 * (sent - got) as f64 / sent as f64).abs() < 1e-9);
        if c["transport"] != "udp4" {
            assert_eq!(sent, got, "{c}");
        }
    }
    assert_eq!(
        doc["ratios"].as_array().unwrap().len(),
        2,
        "uds-stream and uds-dgram over tcp4"
    );
}

/// The trials a ratio compares run back to back: within a round, nothing
/// of another group (another size) runs between them, and odd rounds run
/// the order backwards. Checked from the JSON's trial start and end times.
#[test]
fn compared_trials_run_back_to_back() {
    let mut args = vec![
        "latency",
        "-t",
        "tcp4,uds-stream,uds-dgram",
        "-s",
        "64,4K,1",
        "-n",
        "60",
        "--trials",
        "3",
        "--warmup",
        "10",
        "--warmup-time",
        "0s",
    ];
    args.extend(["--mode", "thread"]);
    back_to_back(&json_run(&args));
    // load: the rate is a dimension too; the trials of one rate run together.
    back_to_back(&json_run(&[
        "load",
        "-t",
        "tcp4,uds-stream,udp4",
        "--rate",
        "1k,3k,2k",
        "--connections",
        "2",
        "-n",
        "60",
        "--trials",
        "3",
        "--warmup",
        "10",
        "--warmup-time",
        "0s",
    ]));
}

/// What `compared_trials_run_back_to_back` checks of a 3-round run: no two
/// trials overlap in time, odd rounds run the order backwards (A B … B A),
/// and between the two trials of every ratio only cases of its own size
/// (and rate) run.
fn back_to_back(doc: &serde_json::Value) {
    // (round, start, end, (transport, size, rate)), in time order.
    type Key = (String, u64, u64);
    let key = |c: &serde_json::Value| -> Key {
        (
            c["transport"].as_str().unwrap().to_string(),
            c["size_bytes"].as_u64().unwrap(),
            c["offered_per_s"].as_u64().unwrap_or(0),
        )
    };
    let mut trials: Vec<(u64, u64, u64, Key)> = Vec::new();
    for c in doc["cases"].as_array().unwrap() {
        for t in c["trial_points"].as_array().unwrap() {
            let (s, e) = (
                t["start_ns"].as_u64().unwrap(),
                t["end_ns"].as_u64().unwrap(),
            );
            assert!(e > s && t["elapsed_ns"].as_u64().unwrap() == e - s, "{t}");
            trials.push((t["round"].as_u64().unwrap(), s, e, key(c)));
        }
    }
    trials.sort_by_key(|t| (t.0, t.1));
    for w in trials.windows(2) {
        assert!(w[0].0 < w[1].0 || w[0].2 <= w[1].1, "trials overlap: {w:?}");
    }
    let rounds: Vec<Vec<Key>> = (0..3)
        .map(|r| {
            trials
                .iter()
                .filter(|t| t.0 == r)
                .map(|t| t.3.clone())
                .collect()
        })
        .collect();
    let mut back = rounds[0].clone();
    back.reverse();
    assert_eq!(rounds[1], back, "odd rounds run the order backwards");
    assert_eq!(rounds[2], rounds[0]);
    let ratios = doc["ratios"].as_array().unwrap();
    assert!(!ratios.is_empty());
    for ratio in ratios {
        let size = ratio["size_bytes"].as_u64().unwrap();
        let rate = ratio["offered_per_s"].as_u64().unwrap_or(0);
        for order in &rounds {
            let at = |k: &serde_json::Value| {
                order
                    .iter()
                    .position(|(t, s, r)| t == k.as_str().unwrap() && *s == size && *r == rate)
                    .unwrap()
            };
            let (a, b) = (at(&ratio["numerator"]), at(&ratio["denominator"]));
            let between = &order[a.min(b)..=a.max(b)];
            assert!(
                between.iter().all(|(_, s, r)| *s == size && *r == rate),
                "{ratio}: another size or rate runs between the compared trials: {order:?}"
            );
        }
    }
}

/// Each reported point is the statistic its CI is of: p50 the median of
/// the per-trial medians, mean the mean of the per-trial means (with
/// concurrent pairs in separate processes, where pooled and per-trial
/// figures differ most).
#[test]
fn points_and_their_cis_are_the_same_statistic() {
    let mut args = vec![
        "latency",
        "-t",
        "tcp4,uds-stream",
        "--pairs",
        "4",
        "--mode",
        "process",
        "--trials",
        "5",
    ];
    args.extend(&QUICK[..2]);
    args.extend(&QUICK[4..]);
    let doc = json_run(&args);
    for c in doc["cases"].as_array().unwrap() {
        let pts = c["trial_points"].as_array().unwrap();
        let mut p50s: Vec<f64> = pts.iter().map(|t| t["p50_ns"].as_f64().unwrap()).collect();
        p50s.sort_by(f64::total_cmp);
        let median = p50s[p50s.len() / 2];
        let mean = pts
            .iter()
            .map(|t| t["mean_ns"].as_f64().unwrap())
            .sum::<f64>()
            / pts.len() as f64;
        let f = |k: &str| c[k].as_f64().unwrap();
        assert_eq!(f("p50_ns"), median.round(), "{c}");
        assert!((f("mean_ns") - mean).abs() < 1e-6 * mean, "{c}");
        assert!(
            f("p50_ci_low_ns") <= f("p50_ns") && f("p50_ns") <= f("p50_ci_high_ns"),
            "{c}"
        );
        assert!(
            f("mean_ci_low_ns") <= f("mean_ns") && f("mean_ns") <= f("mean_ci_high_ns"),
            "{c}"
        );
    }
}

/// `--duration` is the timed length of a case: every workload stops on
/// time (one operation may run past it), whatever its warm-up suggested.
#[test]
fn duration_is_the_timed_length_of_each_case() {
    for (workload, extra) in [
        ("latency", &[][..]),
        ("rr", &["--depth", "4"][..]),
        ("connect", &[][..]),
        ("throughput", &["-s", "4K"][..]),
        ("throughput", &["-s", "1K", "--direction", "both"][..]),
    ] {
        let mut args = vec![workload, "-t", "uds-stream", "-d", "800ms", "--trials", "4"];
        args.extend(extra);
        args.extend(["--warmup", "10", "--warmup-time", "0s"]);
        let doc = json_run(&args);
        let t = doc["cases"][0]["timed_s"].as_f64().unwrap();
        assert!(
            (0.8..1.2).contains(&t),
            "{workload} {extra:?}: {t} s timed for -d 800ms"
        );
    }
}

/// A spinning datagram receiver honours the idle limit that ends a transfer
/// whose marker was lost (SO_RCVTIMEO does nothing on a non-blocking
/// socket): the run ends normally, even with a short --timeout.
#[test]
fn spinning_datagram_transfer_ends_like_a_blocking_one() {
    for wait in ["spin", "block"] {
        let mut args = vec![
            "throughput",
            "-t",
            "udp4,uds-dgram",
            "-s",
            "32K",
            "--wait",
            wait,
            "--timeout",
            "300ms",
            "-n",
            "1000",
        ];
        args.extend(&QUICK[2..]);
        let doc = json_run(&args);
        for c in doc["cases"].as_array().unwrap() {
            assert!(c["messages_delivered"].as_u64().unwrap() > 0, "{wait}: {c}");
            assert!(c["idle_ended_trials"].as_u64().is_some(), "{c}");
        }
    }
}

/// A busy loop pinned to the client's CPU during a run: every trial records
/// that other tasks took a share of a measured CPU, and one warning names
/// the disturbed trials (issue #24's interference check).
/// A thread spinning on one CPU until dropped: another task on a CPU a
/// run measures.
struct BusyLoop(
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    Option<std::thread::JoinHandle<()>>,
);

impl BusyLoop {
    fn on(cpu: usize) -> BusyLoop {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let h = std::thread::spawn(move || {
            core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
            let mut x = 0u64;
            while !flag.load(Ordering::Relaxed) {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        });
        BusyLoop(stop, Some(h))
    }
}

impl Drop for BusyLoop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = self.1.take() {
            let _ = h.join();
        }
    }
}

/// `latency -t uds-stream -s 64` (server on CPU 0, client on 1) plus
/// `extra`, with a busy loop on the client's CPU all the while.
fn beside_a_busy_loop(extra: &[&str]) -> serde_json::Value {
    let _hog = BusyLoop::on(1);
    let mut args = vec!["latency", "-t", "uds-stream", "-s", "64"];
    args.extend(["--server-cpu", "0", "--client-cpu", "1"]);
    args.extend(extra);
    util::json_run(&args)
}

#[test]
fn retry_disturbed_runs_a_disturbed_round_again_and_keeps_the_count() {
    // A busy loop on the client's CPU for the whole run: every round is
    // disturbed, so each is run again the most times allowed, and the
    // rounds kept are still --trials, one trial per case each.
    let v = beside_a_busy_loop(&["--trials", "3", "-d", "300ms", "--retry-disturbed"]);
    let most = 3 * sockbench::workload::run::RETRIES_PER_ROUND;
    assert_eq!(v["rounds_retried"], most, "{}", v["warnings"]);
    assert_eq!(v["rounds"], 3);
    let points = v["cases"][0]["trial_points"].as_array().unwrap();
    let rounds: Vec<u64> = points
        .iter()
        .map(|t| t["round"].as_u64().unwrap())
        .collect();
    assert_eq!(rounds, [0, 1, 2], "one kept trial per round");
    // The last attempts were disturbed too: the warning still names them.
    assert!(util::warning_codes(&v).contains(&"disturbed"));
}

#[test]
fn a_busy_loop_on_a_measured_cpu_is_noticed_per_trial() {
    let v = beside_a_busy_loop(&["--trials", "5", "-d", "1s"]);
    let points = v["cases"][0]["trial_points"].as_array().unwrap();
    for t in points {
        let others = t["interference"]["others_pct"]
            .as_f64()
            .expect("a trial's interference");
        assert!(
            others > 15.0,
            "a busy loop beside the client, yet others {others}%: {t}"
        );
    }
    let w = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["code"] == "disturbed")
        .expect("a 'disturbed' warning");
    let msg = w["message"].as_str().unwrap();
    assert!(
        msg.starts_with("5 of 5 trials") && msg.contains("round 1 (other tasks"),
        "{msg}"
    );
}
