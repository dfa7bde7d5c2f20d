//! Knobs as case dimensions (`--nodelay`, `--wait`, `--mode` and
//! `--placement` lists, `--control`): every combination is a case run in
//! the same rounds, each knob value is compared with the knob's first, the
//! A/A copy measures the run's own resolution, and each case really runs
//! with its own knobs.

mod util;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::Value;
use util::{QUICK, bin, json_run, leftovers, private_tmp, run};

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("{k} in {v}"))
}

#[test]
fn knob_lists_run_every_combination_in_the_same_rounds_with_ratios_to_the_first() {
    let doc = json_run(&[
        "latency",
        "-t",
        "tcp4,uds-stream",
        "-s",
        "64",
        "--nodelay",
        "on,off",
        "--wait",
        "block,spin",
        "--control",
        "-n",
        "120",
        "--trials",
        "5",
        "--warmup",
        "10",
        "--warmup-time",
        "0s",
    ]);
    let cases = doc["cases"].as_array().unwrap();
    // 2 transports × (2 × 2 knob combinations + the A/A copy).
    assert_eq!(cases.len(), 10);
    let mut seen = HashSet::new();
    for c in cases {
        let knobs = s(c, "knobs");
        let want = match (c["nodelay"].as_bool().unwrap(), s(c, "wait")) {
            (true, "block") if c["aa_control"].as_bool().unwrap() => "A/A",
            (true, "block") => "",
            (true, "spin") => "wait=spin",
            (false, "block") => "nodelay=off",
            (false, "spin") => "nodelay=off wait=spin",
            other => panic!("{other:?}"),
        };
        assert_eq!(knobs, want, "{c}");
        assert!(seen.insert((s(c, "transport").to_string(), knobs.to_string())));
        assert_eq!(c["trials"], 5);
    }
    let files: HashSet<&str> = cases.iter().map(|c| s(c, "hgrm_file")).collect();
    assert_eq!(files.len(), cases.len(), "one histogram file per case");

    let ratios = doc["ratios"].as_array().unwrap();
    let knob = |r: &Value| r["knob"].as_str().map(str::to_string);
    for t in ["tcp4", "uds-stream"] {
        for metric in ["p50", "mean"] {
            let of = |k: &str| -> Vec<&Value> {
                ratios
                    .iter()
                    .filter(|r| {
                        knob(r).as_deref() == Some(k)
                            && r["numerator"] == t
                            && r["denominator"] == t
                            && r["metric"] == metric
                    })
                    .collect()
            };
            // Each knob over its first value, the other knob held at each of its values.
            let nodelay = of("nodelay");
            let held: HashSet<&str> = nodelay.iter().map(|r| s(r, "denominator_knobs")).collect();
            assert_eq!(held, HashSet::from(["", "wait=spin"]), "{t} {metric}");
            for r in &nodelay {
                assert_eq!(s(r, "knob_values"), "nodelay=off / nodelay=on");
            }
            let wait = of("wait");
            let held: HashSet<&str> = wait.iter().map(|r| s(r, "denominator_knobs")).collect();
            assert_eq!(held, HashSet::from(["", "nodelay=off"]), "{t} {metric}");
            for r in &wait {
                assert_eq!(s(r, "knob_values"), "wait=spin / wait=block");
            }
            let control = of("control");
            assert_eq!(control.len(), 1, "{t} {metric}: one A/A ratio");
            assert_eq!(s(control[0], "verdict"), "control");
            assert_eq!(s(control[0], "numerator_knobs"), "A/A");
            for r in nodelay.iter().chain(&wait) {
                assert_eq!(r["rounds"], 5);
                assert!(
                    ["faster", "slower", "no change"].contains(&s(r, "verdict")),
                    "{r}"
                );
                // The A/A spread of the same transport and metric is beside it.
                assert_eq!(r["aa_low"], control[0]["ci_low"]);
                assert_eq!(r["aa_high"], control[0]["ci_high"]);
            }
        }
    }
    // No ratio across two knobs at once, none of the A/A copy but the
    // control, and transports are compared only at equal knobs.
    for r in ratios {
        let (n, d) = (s(r, "numerator_knobs"), s(r, "denominator_knobs"));
        match knob(r).as_deref() {
            None => {
                assert_eq!(n, d, "{r}");
                assert_ne!(n, "A/A", "{r}");
            }
            Some("control") => assert_eq!((n, d), ("A/A", "")),
            Some(k) => {
                // The numerator is the denominator with knob k moved off its first value.
                let parts = |x: &str| -> Vec<String> {
                    x.split(' ')
                        .filter(|p| !p.is_empty() && !p.starts_with(&format!("{k}=")))
                        .map(str::to_string)
                        .collect()
                };
                assert!(
                    n.contains(&format!("{k}=")) && !d.contains(&format!("{k}=")),
                    "{r}"
                );
                assert_eq!(parts(n), parts(d), "{r}");
            }
        }
    }
    // A B … B A: the rounds run one order and its reverse, and a knob's
    // two cases run with only the same transport's cases between them.
    let mut trials: Vec<(u64, u64, String)> = Vec::new();
    for c in cases {
        for t in c["trial_points"].as_array().unwrap() {
            trials.push((
                t["round"].as_u64().unwrap(),
                t["start_ns"].as_u64().unwrap(),
                format!("{} {}", s(c, "transport"), s(c, "knobs")),
            ));
        }
    }
    trials.sort();
    let order = |r: u64| -> Vec<String> {
        trials
            .iter()
            .filter(|t| t.0 == r)
            .map(|t| t.2.clone())
            .collect()
    };
    let mut back = order(0);
    back.reverse();
    assert_eq!(order(1), back);
    let first = order(0);
    let transport_of = |x: &str| x.split(' ').next().unwrap().to_string();
    let blocks: Vec<String> = first.iter().map(|x| transport_of(x)).collect();
    let mut dedup = blocks.clone();
    dedup.dedup();
    assert_eq!(
        dedup.len(),
        2,
        "each transport's knob values run together: {first:?}"
    );
}

/// CPUs a process may run on (`Cpus_allowed_list` of /proc/PID/status).
fn allowed_cpus(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap_or("")
        .trim()
        .to_string()
}

/// `--mode thread,process` forks a server for each process case only, and
/// `--placement` pins each case's server where it says: with two
/// transports, two placements and two modes, four servers are forked
/// (the process cases), two on each placement's server CPU.
#[test]
fn each_case_runs_with_its_own_mode_and_placement() {
    let (a, b) = util::cpus();
    if a == b {
        eprintln!("one CPU: placements cannot differ; skipped");
        return;
    }
    let tmp = private_tmp();
    let placements = format!("{b}/{a},{a}/{a}");
    let child = bin()
        .args([
            "latency",
            "-t",
            "uds-stream,tcp4",
            "--mode",
            "thread,process",
            "--placement",
            &placements,
            "-d",
            "2s",
            "--trials",
            "2",
            "--format",
            "json",
            "--progress",
            "never",
            "-q",
        ])
        .env("TMPDIR", tmp.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let servers = loop {
        let s = util::servers(child.id());
        if s.len() >= 4 || t0.elapsed() > Duration::from_secs(10) {
            break s;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Every pair is made before the first trial: all four are there now.
    std::thread::sleep(Duration::from_millis(300));
    let servers_now = util::servers(child.id());
    let mut pinned: Vec<String> = servers_now.iter().map(|&p| allowed_cpus(p)).collect();
    pinned.sort();
    let mut want = vec![a.to_string(), a.to_string(), b.to_string(), b.to_string()];
    want.sort();
    let (status, out) = {
        let out = child.wait_with_output().unwrap();
        (out.status, out.stdout)
    };
    assert!(status.success());
    assert_eq!(
        servers.len(),
        4,
        "one forked server per process case: {servers:?}"
    );
    assert_eq!(pinned, want, "servers pinned to their placement's CPU");
    let doc: Value = serde_json::from_slice(&out).unwrap();
    let mut got: Vec<(String, String, String)> = doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                s(c, "transport").to_string(),
                s(c, "mode").to_string(),
                s(c, "placement").to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got.len(), 8);
    for (t, m, p) in &got {
        assert!(["thread", "process"].contains(&m.as_str()), "{t} {m}");
        assert!(
            [format!("s{b}c{a}"), format!("s{a}c{a}")].contains(p),
            "{t} {p}"
        );
    }
    assert!(leftovers(tmp.path()).is_empty());
}

#[test]
fn knob_flags_refuse_bad_values_with_one_line() {
    let tmp = private_tmp();
    for (args, want) in [
        (vec!["--nodelay", "on,on"], vec!["--nodelay", "on", "twice"]),
        (vec!["--wait", "spin,spin"], vec!["--wait", "spin", "twice"]),
        (
            vec!["--placement", "0-1"],
            vec!["--placement", "0-1", "SERVER/CLIENT"],
        ),
        (vec!["--placement", "0/4096"], vec!["--placement", "4096"]),
        (
            vec!["--placement", "0/0,0/0"],
            vec!["--placement", "0/0", "twice"],
        ),
        (
            vec!["--placement", "0/1", "--pairs", "2"],
            vec!["--pairs", "2", "--placement"],
        ),
        (
            vec!["--placement", "0/1", "--server-cpu", "0"],
            vec!["--placement", "--server-cpu"],
        ),
    ] {
        util::assert_refused(
            tmp.path(),
            &[&["latency"][..], &args, QUICK].concat(),
            &want,
        );
    }
    // connect measures set-up blocking: spin anywhere in the list is refused.
    let out = run(tmp.path(), &["connect", "--wait", "block,spin"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--wait"));
    assert!(leftovers(tmp.path()).is_empty());
}

/// `--sndbuf` and `--rcvbuf` lists: each case asks for its sizes on both
/// ends and records what the kernel granted (double the request, capped
/// at net.core.wmem_max/rmem_max); `--busy-poll` is recorded per case.
#[test]
fn socket_buffer_lists_record_what_the_kernel_granted() {
    let cap = |f: &str| -> usize {
        std::fs::read_to_string(format!("/proc/sys/net/core/{f}"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let (wmax, rmax) = (cap("wmem_max"), cap("rmem_max"));
    let mut args = vec![
        "throughput",
        "-t",
        "tcp4,uds-stream",
        "-s",
        "16K",
        "--sndbuf",
        "64K,256K",
        "--rcvbuf",
        "128K",
        "--busy-poll",
        "0,50",
    ];
    args.extend(QUICK);
    let doc = json_run(&args);
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2 * 2 * 2);
    for c in cases {
        let asked = c["sndbuf_asked_bytes"].as_u64().unwrap() as usize;
        assert!([64 << 10, 256 << 10].contains(&asked), "{c}");
        assert_eq!(c["rcvbuf_asked_bytes"], 128 << 10);
        assert!([0, 50].contains(&c["busy_poll_us"].as_u64().unwrap()));
        assert_eq!(
            c["sndbuf_bytes"].as_u64().unwrap() as usize,
            2 * asked.min(wmax),
            "{c}"
        );
        assert_eq!(
            c["rcvbuf_bytes"].as_u64().unwrap() as usize,
            2 * (128usize << 10).min(rmax),
            "{c}"
        );
    }
    let sndbuf: Vec<&Value> = doc["ratios"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["knob"] == "sndbuf")
        .collect();
    assert_eq!(
        sndbuf.len(),
        2 * 2,
        "per transport, busy-poll held at each value"
    );
    for r in sndbuf {
        assert_eq!(s(r, "knob_values"), "sndbuf=256K / sndbuf=64K");
    }
}

fn host(path: &str) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// `--sysctl`: each value is written in a private network namespace made
/// for its cases, so a TCP socket made there starts with that
/// namespace's tcp_rmem default as its receive buffer, while the host's
/// value never changes.
#[test]
fn each_sysctl_value_is_in_force_in_its_cases_namespace_and_the_host_keeps_its_own() {
    if !util::can_make_netns() {
        eprintln!("cannot make network namespaces here (not root?): skipped");
        return;
    }
    let before = host("/proc/sys/net/ipv4/tcp_rmem");
    let mut args = vec![
        "latency",
        "-t",
        "tcp4,uds-stream",
        "-s",
        "64",
        "--sysctl",
        "net.ipv4.tcp_rmem=4096 65536 6291456,4096 262144 6291456",
        "--control",
    ];
    args.extend(QUICK);
    let doc = json_run(&args);
    assert_eq!(
        host("/proc/sys/net/ipv4/tcp_rmem"),
        before,
        "the host's value is untouched"
    );
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2 * 3);
    for c in cases.iter().filter(|c| c["transport"] == "tcp4") {
        let in_force = c["sysctls"][0].as_str().unwrap();
        let default: u64 = in_force
            .strip_prefix("net.ipv4.tcp_rmem=")
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(c["rcvbuf_bytes"], default, "{c}");
    }
    let r = doc["ratios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["knob"] == "tcp_rmem" && r["numerator"] == "tcp4")
        .expect("a tcp_rmem ratio");
    assert_eq!(
        s(r, "knob_values"),
        "tcp_rmem=4096_262144_6291456 / tcp_rmem=4096_65536_6291456"
    );
}

/// Bad `--sysctl`s are refused with one line and exit 2 before anything
/// runs, and the host's values stay as they were.
#[test]
fn sysctl_refusals_are_one_line_before_anything_runs() {
    if !util::can_make_netns() {
        eprintln!("cannot make network namespaces here (not root?): skipped");
        return;
    }
    let tmp = private_tmp();
    let before = (
        host("/proc/sys/net/ipv4/tcp_autocorking"),
        host("/proc/sys/net/core/rmem_default"),
    );
    for (args, want) in [
        (
            vec!["--sysctl", "net.core.rmem_default=4096,8192"],
            vec!["net.core.rmem_default", "host-wide", "--allow-host-sysctl"],
        ),
        (
            vec!["--sysctl", "net.ipv4.tcp_autocorking=2"],
            vec!["net.ipv4.tcp_autocorking=2", "refuses"],
        ),
        (
            vec!["--sysctl", "net.nope.x=1"],
            vec!["net.nope.x", "no such sysctl"],
        ),
        (
            vec!["--sysctl", "kernel.pid_max=5"],
            vec!["--sysctl", "kernel.pid_max", "net.*"],
        ),
        (
            vec!["--sysctl", "net.ipv4.tcp_autocorking=1,1"],
            vec!["--sysctl", "twice"],
        ),
        (
            vec!["--sysctl", "net.ipv4.tcp_autocorking"],
            vec!["--sysctl", "NAME=V1,V2"],
        ),
        (
            vec!["--sysctl", "net.unix.max_dgram_qlen=10", "--netns", "veth"],
            vec!["--netns", "veth", "--sysctl"],
        ),
    ] {
        let out = util::assert_refused(
            tmp.path(),
            &[&["latency"][..], &args, QUICK].concat(),
            &want,
        );
        assert!(out.stdout.is_empty(), "{args:?}: nothing measured");
    }
    assert_eq!(
        (
            host("/proc/sys/net/ipv4/tcp_autocorking"),
            host("/proc/sys/net/core/rmem_default"),
        ),
        before
    );
    assert!(leftovers(tmp.path()).is_empty());
}
