//! The ladder's own rungs (tcp4-sockmap, futex, shm-spin): each removes
//! what it says it removes, is refused where it cannot run, and leaves
//! nothing of itself in the kernel, however the run ends.

mod util;

use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use sockbench::sys::bpf::programs_loaded;
use util::{QUICK, assert_refused, private_tmp, run, spawn_run, wait_output, wait_until};

/// One test at a time: some count the kernel's copies of the redirect
/// program, some count kernel events on the CPUs every test shares.
static ONE: Mutex<()> = Mutex::new(());

/// Enough round trips that per-message figures are not the trial's own
/// overhead (the control channel's few messages), in two short trials.
const PER_MESSAGE: &[&str] = &[
    "-n",
    "4000",
    "--trials",
    "2",
    "--warmup",
    "100",
    "--warmup-time",
    "0s",
];

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE.lock().unwrap_or_else(|e| e.into_inner())
}

fn root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("skipping: BPF programs and network namespaces need root");
    false
}

/// Packets `lo` has sent in the namespace at `ns`.
fn lo_packets(ns: &std::os::fd::OwnedFd) -> u64 {
    let dev = sockbench::sys::netns::within(ns.as_raw_fd(), || {
        std::fs::read_to_string("/proc/thread-self/net/dev").unwrap()
    })
    .unwrap();
    let line = dev
        .lines()
        .find(|l| l.trim_start().starts_with("lo:"))
        .expect("a lo line");
    let fields: Vec<u64> = line
        .split(':')
        .nth(1)
        .unwrap()
        .split_whitespace()
        .map(|f| f.parse().unwrap())
        .collect();
    fields[9] // transmit packets
}

/// Over tcp4 every message is a packet on the loopback device; over
/// tcp4-sockmap the data goes socket to socket, and only the connection's
/// set-up and teardown touch `lo`. Each run has the namespace to itself.
#[test]
fn the_sockmap_rung_skips_the_loopback_device() {
    if !root() {
        return;
    }
    let _one = one_at_a_time();
    let n = 3000u64;
    let mut sent = Vec::new();
    for t in ["tcp4", "tcp4-sockmap"] {
        let ns = sockbench::sys::netns::create().unwrap();
        let mut up = Command::new("ip");
        up.args(["link", "set", "lo", "up"]);
        sockbench::sys::netns::command_in(&mut up, ns.as_raw_fd());
        assert!(up.status().unwrap().success(), "ip link set lo up");
        let before = lo_packets(&ns);
        let tmp = private_tmp();
        let mut cmd = util::bin();
        cmd.args(["latency", "-t", t, "-n", &n.to_string(), "--trials", "2"])
            .args(["--warmup", "10", "--warmup-time", "0s", "--format", "json"])
            .env("TMPDIR", tmp.path());
        sockbench::sys::netns::command_in(&mut cmd, ns.as_raw_fd());
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{t}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        sent.push(lo_packets(&ns) - before);
    }
    eprintln!("packets on lo: tcp4 {}, tcp4-sockmap {}", sent[0], sent[1]);
    // 2 × n round trips' messages (plus ACKs) over tcp4.
    assert!(sent[0] >= 2 * n, "tcp4 sent only {} packets on lo", sent[0]);
    assert!(
        sent[1] < n / 10,
        "tcp4-sockmap sent {} packets on lo for {n} round trips: the data did not skip it",
        sent[1]
    );
}

/// The program and its map go with the run: after it ends, and after a
/// SIGKILL in the middle of its trials.
#[test]
fn no_bpf_program_outlives_a_run() {
    if !root() {
        return;
    }
    let _one = one_at_a_time();
    let gone = |what: &str| {
        wait_until(what, Duration::from_secs(20), || {
            programs_loaded().unwrap() == 0
        })
    };
    gone("no program before the test");
    let tmp = private_tmp();
    let out = run(
        tmp.path(),
        &[
            &["latency", "-t", "tcp4-sockmap", "--mode", "thread,process"][..],
            QUICK,
        ]
        .concat(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    gone("the program freed after a run");
    let child = spawn_run(
        tmp.path(),
        &[
            "latency",
            "-t",
            "tcp4-sockmap",
            "-d",
            "60s",
            "--trials",
            "2",
        ],
        Stdio::null(),
    );
    wait_until("the program loaded", Duration::from_secs(30), || {
        programs_loaded().unwrap() >= 1
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = wait_output(child, Duration::from_secs(30));
    gone("the program freed after a SIGKILL");
    assert!(util::leftovers(tmp.path()).is_empty());
}

/// Where a rung cannot run, one line says why, before anything is made.
#[test]
fn the_rungs_are_refused_where_they_cannot_run() {
    let tmp = private_tmp();
    for (args, want) in [
        (
            &["throughput", "-t", "futex"][..],
            &["--transport", "futex", "latency"][..],
        ),
        (
            &["rr", "-t", "shm-spin"],
            &["--transport", "shm-spin", "ping-pong"],
        ),
        (
            &["load", "-t", "tcp4-sockmap", "--rate", "1000"],
            &["--transport", "tcp4-sockmap"],
        ),
        (
            &["latency", "-t", "futex", "--wait", "spin"],
            &["--wait", "spin", "futex sleeps"],
        ),
    ] {
        assert_refused(tmp.path(), args, want);
    }
    assert!(util::leftovers(tmp.path()).is_empty());
}

/// `all` means every socket and the pipe; the rungs run when named.
#[test]
fn all_leaves_the_rungs_to_be_named() {
    let _one = one_at_a_time();
    let v = util::json_run(&[&["latency", "-t", "all", "-s", "64"][..], QUICK].concat());
    let names: Vec<&str> = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["transport"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"pipe") && names.contains(&"tcp4"),
        "{names:?}"
    );
    for rung in ["futex", "shm-spin", "tcp4-sockmap"] {
        assert!(!names.contains(&rung), "{rung} in `all`: {names:?}");
    }
}

/// Without privilege, tcp4-sockmap is bad input naming what it needs.
#[test]
fn without_privilege_tcp4_sockmap_says_what_it_needs() {
    let _one = one_at_a_time();
    if !root() {
        return;
    }
    let out = util::as_nobody(&[&["latency", "-t", "tcp4-sockmap,futex"][..], QUICK].concat());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("--transport") && err.contains("tcp4-sockmap") && err.contains("CAP_BPF"),
        "{err}"
    );
}

/// The kernel events counted per round trip are the ones the path
/// implies, counted in both of the pair's threads: over tcp4 one packet
/// through lo and one NET_RX softirq per message (two per round trip),
/// over a Unix socket none and one skb copy per message; a futex round
/// trip makes two to four system calls, shm-spin across CPUs none. A
/// counter on the wrong thread (or only one of the two) fails this.
#[test]
fn kernel_events_per_message_match_the_path() {
    let _one = one_at_a_time();
    if !root() {
        return;
    }
    let v = util::json_run(
        &[
            &[
                "latency",
                "-t",
                "tcp4,uds-stream,futex,shm-spin",
                "--placement",
                "0/1",
                "--trace",
                "count",
            ][..],
            PER_MESSAGE,
        ]
        .concat(),
    );
    let per_op = |t: &str, field: &str| -> f64 {
        let c = v["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["transport"] == t)
            .unwrap_or_else(|| panic!("no {t} case"));
        assert_eq!(c["trace"], "count");
        let point = &c["trial_points"][0]["events"];
        assert!(point.is_object(), "{t}: a trial without its counts");
        c[field]
            .as_f64()
            .unwrap_or_else(|| panic!("{t} {field}: {}", c[field]))
    };
    let within = |t: &str, f: &str, lo: f64, hi: f64| {
        let x = per_op(t, f);
        assert!(
            (lo..=hi).contains(&x),
            "{t} {f} = {x:.3} per round trip, not in {lo}–{hi}"
        );
    };
    // Bounds with room for other work on the two CPUs (a busy machine).
    within("tcp4", "traced_device_xmits_per_op", 1.9, 3.0);
    within("tcp4", "traced_net_rx_softirqs_per_op", 1.9, 3.0);
    within("uds-stream", "traced_device_xmits_per_op", 0.0, 0.3);
    within("uds-stream", "traced_skb_copies_to_user_per_op", 1.9, 2.5);
    // Two wakes always; a wait only when the answer is not there yet (how
    // many wake-ups that makes depends on timing, so they are not checked).
    within("futex", "traced_syscalls_per_op", 1.9, 6.0);
    within("shm-spin", "traced_syscalls_per_op", 0.0, 0.5);
}

/// Counting leaves the host's mounts as they were: tracefs is mounted
/// only inside a child's own mount namespace when it is not mounted.
#[test]
fn counting_leaves_no_tracefs_mount() {
    let _one = one_at_a_time();
    if !root() {
        return;
    }
    let mounts = || {
        std::fs::read_to_string("/proc/self/mounts")
            .unwrap()
            .lines()
            .filter(|l| l.contains("tracefs"))
            .count()
    };
    let before = mounts();
    util::json_run(&[&["latency", "-t", "pipe", "--trace", "count"][..], QUICK].concat());
    assert_eq!(mounts(), before);
}

/// Without privilege: `--trace count` asked for is bad input naming what
/// it needs; `explain` runs what it can and says in one line each what it
/// left out.
#[test]
fn without_privilege_counting_is_refused_or_left_out() {
    let _one = one_at_a_time();
    if !root() {
        return;
    }
    let nobody = util::as_nobody;
    let out = nobody(
        &[
            &["latency", "-t", "pipe", "--trace", "off,count"][..],
            QUICK,
        ]
        .concat(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--trace") && err.contains("root"), "{err}");
    let mut args = vec!["explain", "-s", "64", "--placement", "0/1"];
    args.extend(QUICK);
    let out = nobody(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("--trace count left out"), "{err}");
    assert!(err.contains("tcp4-sockmap"), "{err}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("where the µs go"), "{text}");
    assert!(!text.contains("kernel events per round trip"), "{text}");
    // The split needs no privilege: it stays.
    assert!(text.contains("the client's send call"), "{text}");
}

/// `explain`'s whole table (cases, ratios, the layers with their legend,
/// the events, send calls, stamps, cost per byte and the answers) fits 80
/// columns at both sizes and placements (the knob ratios were 92 wide, the
/// layers 98, the events 86).
#[test]
fn the_explain_table_fits_80_columns() {
    let _one = one_at_a_time();
    if !root() {
        return;
    }
    let tmp = private_tmp();
    let args = [
        "explain",
        "-n",
        "100",
        "--trials",
        "5",
        "--warmup",
        "10",
        "--warmup-time",
        "0s",
    ];
    let out = run(tmp.path(), &args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let text = String::from_utf8_lossy(&out.stdout);
    for section in [
        "where the µs go",
        "kernel events per round trip",
        "the client's send call",
        "the kernel's stamps",
        "per byte moved",
    ] {
        assert!(text.contains(section), "{section}: {text}");
    }
    for line in text.lines() {
        let n = line.chars().count();
        assert!(n <= 80, "{n} columns: {line}");
    }
}

/// `--trace split` times the client's send call apart: present for the
/// split cases only, shorter than their round trip, and on one CPU
/// longer over tcp4 than over a Unix socket (loopback TCP delivers the
/// segment to the receiver, softirq and all, inside the sender's call).
#[test]
fn the_send_call_is_timed_apart_in_split_trials() {
    let _one = one_at_a_time();
    let v = util::json_run(
        &[
            &[
                "latency",
                "-t",
                "tcp4,uds-stream",
                "--placement",
                "0/0",
                "--trace",
                "off,split",
            ][..],
            PER_MESSAGE,
        ]
        .concat(),
    );
    let mut send = std::collections::BTreeMap::new();
    for c in v["cases"].as_array().unwrap() {
        let t = c["transport"].as_str().unwrap();
        match c["trace"].as_str().unwrap() {
            "off" => assert!(c["send_call_p50_ns"].is_null(), "{t}: untraced, yet split"),
            "split" => {
                let s = c["send_call_p50_ns"]
                    .as_f64()
                    .expect("a split case's send time");
                let rtt = c["p50_ns"].as_f64().unwrap();
                assert!(
                    s > 0.0 && s < rtt,
                    "{t}: send {s} ns of a {rtt} ns round trip"
                );
                assert!(c["trial_points"][0]["send_p50_ns"].is_u64());
                send.insert(t.to_string(), s);
            }
            other => panic!("{other}"),
        }
    }
    assert!(
        send["tcp4"] > 1.5 * send["uds-stream"],
        "the send calls: {send:?}"
    );
}

/// `--trace stamp` splits each round trip with the kernel's software
/// stamps (payloads verified): only over packets (tcp4, tcp6 (IPv6's error
/// queue), udp4; no stamped uds-stream case), the
/// five spans' means of every stamped trial add up to its mean round trip
/// (they share its clock reads), the request reaches the device before the rest of the
/// round trip is over, and no privilege is needed.
#[test]
fn kernel_stamps_split_the_round_trip_and_add_up() {
    let _one = one_at_a_time();
    let args = [
        &[
            "latency",
            "-t",
            "tcp4,tcp6,udp4,uds-stream",
            "--placement",
            "0/1,0/0",
            "--trace",
            "off,stamp",
            "--verify",
        ][..],
        PER_MESSAGE,
    ]
    .concat();
    let v = util::json_run(&args);
    let mut stamped = Vec::new();
    for c in v["cases"].as_array().unwrap() {
        let t = c["transport"].as_str().unwrap();
        if c["trace"] != "stamp" {
            assert!(
                c["trial_points"][0]["stamps"].is_null(),
                "{t}: untraced, yet stamped"
            );
            continue;
        }
        stamped.push(t.to_string());
        // A send, a receive, and three reads of the error queue (the two
        // transmit stamps, then EAGAIN): counted calls, not hidden ones.
        let calls = c["client_syscalls_per_op"].as_f64().unwrap();
        assert!(
            (4.9..5.5).contains(&calls),
            "{t}: {calls} calls per round trip"
        );
        for p in c["trial_points"].as_array().unwrap() {
            let s = &p["stamps"];
            let spans: Vec<u64> = s["p50_ns"]
                .as_array()
                .unwrap_or_else(|| panic!("{t}: a stamped trial without spans: {p}"))
                .iter()
                .map(|x| x.as_u64().unwrap())
                .collect();
            // Means add: each stamped round trip's spans sum to it (they
            // share its clock reads), so the spans' means sum to the mean of
            // those round trips (hdrhistogram's rounding aside: 0.2%).
            // Medians do not add (their sum was 11% under the p50 once in
            // CI): theirs is only held near it, below.
            let means: Vec<f64> = s["mean_ns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            let (sum, own) = (
                means.iter().sum::<f64>(),
                s["rtt_mean_ns"].as_f64().unwrap(),
            );
            assert!(
                (sum - own).abs() <= 0.002 * own,
                "{t}: span means {means:?} sum to {sum} ns, their round trips' mean is {own} ns"
            );
            // And those round trips are the client's: their mean is the
            // trial's, but for the few in the other order or unstamped
            // (0.7% apart at worst in 72 trials here, with up to a third
            // of them left out).
            let n = |k: &str| s[k].as_u64().unwrap() as f64;
            let left_out = (n("other_order") + n("unusable"))
                / (n("stamped") + n("other_order") + n("unusable"));
            let within = if left_out <= 0.05 { 0.02 } else { 0.1 };
            let rtt = p["mean_ns"].as_f64().unwrap();
            assert!(
                (own - rtt).abs() <= within * rtt,
                "{t}: the stamped round trips' mean {own} ns, the trial's {rtt} ns \
                 ({left_out:.3} of the round trips left out)"
            );
            let (sum, rtt) = (
                spans.iter().sum::<u64>() as f64,
                p["p50_ns"].as_f64().unwrap(),
            );
            assert!(
                (sum - rtt).abs() <= 0.25 * rtt,
                "{t}: spans {spans:?} sum to {sum} ns, the round trip is {rtt} ns"
            );
            assert!(s["stamped"].as_u64().unwrap() > 0, "{t}: {s}");
            assert!(["returns_first", "reply_first"].contains(&s["order"].as_str().unwrap()));
            assert!(
                spans[0] + spans[1] < spans[2..].iter().sum(),
                "{t}: {spans:?}"
            );
        }
    }
    stamped.sort();
    assert_eq!(stamped, ["tcp4", "tcp4", "tcp6", "tcp6", "udp4", "udp4"]);
    if root() {
        let out =
            util::as_nobody(&[&["latency", "-t", "tcp4", "--trace", "stamp"][..], QUICK].concat());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Stamps need packets and a ping-pong: asked of a Unix socket alone or of
/// a transfer, they are bad input naming the flag.
#[test]
fn stamps_are_refused_where_there_is_nothing_to_stamp() {
    let tmp = util::private_tmp();
    for args in [
        &["latency", "-t", "uds-stream", "--trace", "stamp"][..],
        &["throughput", "-t", "tcp4", "--trace", "off,stamp"][..],
    ] {
        let out = util::run(tmp.path(), &[args, QUICK].concat());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("--trace") && err.contains("stamp"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}
