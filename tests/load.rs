//! `sockbench load`, the open loop: it keeps its schedule, times from the
//! intended send (so a stalled server shows in the tail, where a closed loop
//! hides it), refuses what it cannot run, and leaves nothing behind.

mod util;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use util::{QUICK, bin, leftovers, private_tmp, run};

/// Wait for `child` at most `within`; kill it and fail past that.
fn finish(child: Child, within: Duration) -> (std::process::ExitStatus, String) {
    let out = util::wait_output(child, within);
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn ns(case: &serde_json::Value, field: &str) -> f64 {
    case[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} missing"))
}

/// What a stall stops: the forked server, or all of sockbench (client and
/// server threads).
#[derive(Clone, Copy, PartialEq)]
enum Stall {
    Server,
    Everything,
}

/// Run `args` (a 3 s case), stop `what` for 200 ms one second after the
/// server appears, and return the single case.
fn with_a_stall(tmp: &std::path::Path, args: &[&str], what: Stall) -> serde_json::Value {
    let mode = if what == Stall::Server {
        "process"
    } else {
        "thread"
    };
    let child = bin()
        .args(args)
        .args([
            "--mode",
            mode,
            "-d",
            "3s",
            "--trials",
            "1",
            "--warmup",
            "100",
            "--warmup-time",
            "0s",
            "--format",
            "json",
            "--progress",
            "never",
            "-q",
        ])
        .env("TMPDIR", tmp)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let server = loop {
        let found = match what {
            Stall::Server => util::servers(child.id()).first().copied(),
            // The server thread exists once the process has three threads.
            Stall::Everything => std::fs::read_dir(format!("/proc/{}/task", child.id()))
                .map_or(0, |d| d.count())
                .ge(&3)
                .then_some(child.id()),
        };
        if let Some(s) = found {
            break s;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "no server appeared");
        std::thread::sleep(Duration::from_millis(5));
    };
    std::thread::sleep(Duration::from_secs(1));
    let pid = Pid::from_raw(server as i32);
    kill(pid, Signal::SIGSTOP).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    kill(pid, Signal::SIGCONT).unwrap();
    let (status, out) = finish(child, Duration::from_secs(60));
    assert!(status.success(), "{status}");
    json(&out)["cases"][0].clone()
}

/// Coordinated omission: a 200 ms stall of the server at 2,000 requests/s
/// delays about 400 requests (every one due while it was stopped), so the
/// open loop's p99 is tens of ms; the closed loop's ping-pong waits for
/// the server and records one slow round trip, so its p99 stays small.
#[test]
fn open_loop_shows_a_stalled_server_that_a_closed_loop_hides() {
    let tmp = private_tmp();
    let open = with_a_stall(
        tmp.path(),
        &[
            "load",
            "-t",
            "uds-stream",
            "--rate",
            "2k",
            "--request-size",
            "64",
            "--response-size",
            "64",
        ],
        Stall::Server,
    );
    let closed = with_a_stall(
        tmp.path(),
        &["latency", "-t", "uds-stream", "-s", "64"],
        Stall::Server,
    );
    for (name, c) in [("open", &open), ("closed", &closed)] {
        assert!(
            ns(c, "max_ns") > 150e6,
            "{name}: the stall is the largest latency: {}",
            c["max_ns"]
        );
    }
    assert!(
        ns(&open, "p99_ns") > 50e6,
        "open loop: the requests due during the stall are in the tail: p99 {}",
        open["p99_ns"]
    );
    assert!(
        ns(&closed, "p99_ns") < 20e6,
        "closed loop: one slow round trip, not a tail: p99 {}",
        closed["p99_ns"]
    );
    // Every request sent was answered and timed.
    assert_eq!(open["requests_sent"], open["iterations"]);
    assert!(leftovers(tmp.path()).is_empty());
}

/// Datagrams: while the server is stopped for 200 ms at 10,000 requests/s
/// on one connection, udp4's receive queue (212,992 B) fills and the kernel
/// drops the rest. Each dropped request is counted lost, and left out of
/// the latencies (never timed as fast): every request sent is either
/// answered and timed, or lost. uds-dgram has flow control instead: its
/// sender waits for room, so nothing is lost and the tail holds the stall.
#[test]
fn load_over_datagrams_counts_a_lost_request_as_lost_never_as_fast() {
    let tmp = private_tmp();
    for t in ["udp4", "uds-dgram"] {
        let c = with_a_stall(
            tmp.path(),
            &[
                "load",
                "-t",
                t,
                "--rate",
                "10k",
                "--connections",
                "1",
                "--request-size",
                "512",
                "--response-size",
                "64",
            ],
            Stall::Server,
        );
        let (sent, answered, lost) = (
            c["requests_sent"].as_u64().unwrap(),
            c["iterations"].as_u64().unwrap(),
            c["requests_lost"].as_u64().unwrap(),
        );
        assert_eq!(sent, answered + lost, "{t}: sent = answered + lost");
        assert!(answered > 20_000, "{t}: {answered} answered of {sent}");
        if t == "udp4" {
            // About 2,000 were due while it stood still; a few hundred fit.
            assert!(lost > 500, "{t}: {lost} lost of {sent}");
            // What was answered waited at most the stall, plus a margin;
            // a lost request counted as answered would add nothing here,
            // but one timed at its loss (as fast) would not be lost.
            assert!(ns(&c, "max_ns") > 100e6, "{t}: max {}", c["max_ns"]);
        } else {
            assert_eq!(lost, 0, "{t}: flow control, no loss");
            assert!(ns(&c, "p99_ns") > 50e6, "{t}: p99 {}", c["p99_ns"]);
        }
    }
    assert!(leftovers(tmp.path()).is_empty());
}

/// A sender that could not send on time (here all of sockbench is stopped
/// for 200 ms, client included) is charged from each request's intended
/// time: about 400 requests at 2,000/s leave late, the latency's tail holds
/// the stall, and the service time (actual send to response) does not.
#[test]
fn a_late_sender_is_charged_from_the_intended_time() {
    let tmp = private_tmp();
    let c = with_a_stall(
        tmp.path(),
        &[
            "load",
            "-t",
            "uds-stream",
            "--rate",
            "2k",
            "--request-size",
            "64",
            "--response-size",
            "64",
        ],
        Stall::Everything,
    );
    assert!(
        ns(&c, "p99_ns") > 50e6,
        "p99 from the intended time {}",
        c["p99_ns"]
    );
    assert!(ns(&c, "max_ns") > 150e6, "max {}", c["max_ns"]);
    assert!(
        ns(&c, "service_p99_ns") < 20e6,
        "service time p99 {} (the requests left late, then were served at once)",
        c["service_p99_ns"]
    );
    // The ~400 due while it was stopped (a busy machine may add its own).
    let late = c["late_sends"].as_u64().unwrap();
    assert!(late >= 300, "late sends {late}");
    assert!(leftovers(tmp.path()).is_empty());
}

/// At a rate far below saturation, the requests leave on schedule: the
/// answered rate is the offered one, each trial sends rate × length
/// requests, and the sender's lateness (its resolution) is recorded.
#[test]
fn load_keeps_the_offered_rate_and_answers_every_request() {
    let tmp = private_tmp();
    for arrival in ["constant", "poisson"] {
        let out = run(
            tmp.path(),
            &[
                "load",
                "-t",
                "tcp4,uds-stream,udp4,uds-dgram,uds-seqpacket",
                "--rate",
                "1k",
                "--connections",
                "4",
                "--request-size",
                "64",
                "--response-size",
                "1K",
                "--arrival",
                arrival,
                "-d",
                "2s",
                "--trials",
                "2",
                "--warmup",
                "50",
                "--warmup-time",
                "0s",
                "--format",
                "json",
                "-q",
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc = json(&String::from_utf8(out.stdout).unwrap());
        for c in doc["cases"].as_array().unwrap() {
            assert_eq!(c["offered_per_s"], 1000);
            assert_eq!(c["connections"], 4);
            assert_eq!(
                c["requests_sent"], c["iterations"],
                "every request answered ({} lost)",
                c["requests_lost"]
            );
            let sent = c["requests_sent"].as_f64().unwrap();
            // 2 trials of 1 s at 1,000/s: 2,000 on a constant schedule.
            let (lo, hi) = if arrival == "constant" {
                (1999.0, 2001.0)
            } else {
                (1700.0, 2300.0)
            };
            assert!((lo..=hi).contains(&sent), "{arrival}: {sent} requests sent");
            let answered = c["ops_per_s"].as_f64().unwrap();
            assert!(
                (answered / 1000.0 - 1.0).abs() < 0.15,
                "{arrival}: answered {answered}/s of 1000/s offered"
            );
            assert!(c["send_lateness_p99_ns"].as_u64().unwrap() > 0);
            assert!(c["service_p50_ns"].as_u64().unwrap() <= c["p50_ns"].as_u64().unwrap());
        }
        let p99 = doc["ratios"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["metric"] == "p99")
            .expect("a p99 ratio per rate");
        assert_eq!(p99["offered_per_s"], 1000);
    }
    assert!(leftovers(tmp.path()).is_empty());
}

#[test]
fn load_refuses_what_it_cannot_run_with_one_line() {
    let tmp = private_tmp();
    for (args, want) in [
        (vec!["--rate", "0"], vec!["--rate", "'0'", "1 to 1000k"]),
        (
            vec!["--rate", "2000k"],
            vec!["--rate", "2000k", "out of range"],
        ),
        (vec!["--rate", "1.5"], vec!["--rate", "1.5"]),
        (vec!["--rate", "5k,5000"], vec!["--rate", "5000", "twice"]),
        (
            vec!["--rate", "sweep,5k"],
            vec!["--rate", "sweep", "either"],
        ),
        (
            vec!["-t", "udp4", "--request-size", "8"],
            vec!["--request-size", "8", "at least 9"],
        ),
        (vec!["-t", "pipe"], vec!["--transport", "pipe", "allowed"]),
        (vec!["--pairs", "2"], vec!["--pairs", "2", "--connections"]),
        (vec!["--verify"], vec!["--verify", "payloads"]),
        (vec!["--connections", "0"], vec!["--connections", "'0'"]),
        (vec!["--connections", "5000"], vec!["--connections", "5000"]),
    ] {
        util::assert_refused(tmp.path(), &[&["load"][..], &args].concat(), &want);
    }
    // -t all runs what can carry load at these sizes and names what it
    // left out: the pipe pair, and message transports under 9 B.
    let mut args = vec![
        "load",
        "-t",
        "all",
        "--rate",
        "500",
        "--connections",
        "2",
        "--request-size",
        "8",
        "--format",
        "json",
    ];
    args.extend(QUICK);
    let out = run(tmp.path(), &args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    for w in [
        "left out",
        "udp4 at 8 (under 9 B, no room for a sequence number)",
        "uds-dgram at 8 (",
        "uds-seqpacket at 8 (",
        "pipe",
    ] {
        assert!(err.contains(w), "{err:?} lacks {w:?}");
    }
    let doc = json(&String::from_utf8(out.stdout).unwrap());
    let ran: Vec<&str> = doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["transport"].as_str().unwrap())
        .collect();
    assert_eq!(
        ran,
        ["tcp4", "tcp6", "uds-stream", "uds-abstract", "socketpair"]
    );
    assert!(leftovers(tmp.path()).is_empty());
}

/// `--rate sweep` starts at a tenth of the slowest closed-loop rate, steps
/// up by ×1.25 with every case still standing run in the same steps, and
/// ends each case two steps past its knee; every step's figures are kept.
#[test]
fn a_sweep_steps_up_by_a_quarter_until_each_case_saturates() {
    let tmp = private_tmp();
    let out = run(
        tmp.path(),
        &[
            "load",
            "-t",
            "tcp4,uds-stream",
            "--rate",
            "sweep",
            "--connections",
            "4",
            "--request-size",
            "64",
            "--response-size",
            "64",
            "-d",
            "200ms",
            "--trials",
            "2",
            "--warmup",
            "20",
            "--warmup-time",
            "0s",
            "--format",
            "json",
            "-q",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.lines()
            .next()
            .unwrap()
            .starts_with("sweep: closed loop"),
        "{err}"
    );
    let doc = json(&String::from_utf8(out.stdout).unwrap());
    let cases = doc["cases"].as_array().unwrap();
    for t in ["tcp4", "uds-stream"] {
        let steps: Vec<&serde_json::Value> = cases.iter().filter(|c| c["transport"] == t).collect();
        assert!(steps.len() >= 2, "{t}: {} steps", steps.len());
        let rates: Vec<f64> = steps
            .iter()
            .map(|c| c["offered_per_s"].as_f64().unwrap())
            .collect();
        for w in rates.windows(2) {
            assert!(
                (w[1] / w[0] - 1.25).abs() < 0.01,
                "{t}: ×1.25 steps: {rates:?}"
            );
        }
        let unloaded = steps[0]["closed_loop_per_s"].as_f64().unwrap();
        assert!(steps[0]["unloaded_p50_ns"].as_u64().unwrap() > 0);
        assert!(
            rates[0] <= 0.101 * unloaded,
            "{t}: starts at a tenth of the closed loop or less"
        );
        let past: Vec<bool> = steps
            .iter()
            .map(|c| c["saturated"].as_bool().unwrap())
            .collect();
        // It left the sweep two steps past its knee in a row (or ran out of steps).
        if steps.len() < 40 {
            assert!(past[past.len() - 2..].iter().all(|&p| p), "{t}: {past:?}");
        }
    }
    assert!(leftovers(tmp.path()).is_empty());
}
