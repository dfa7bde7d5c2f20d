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

/// The tests that load the redirect program count the kernel's copies of
/// it: one at a time.
static BPF: Mutex<()> = Mutex::new(());

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
    let _one = BPF.lock().unwrap_or_else(|e| e.into_inner());
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
    let _one = BPF.lock().unwrap_or_else(|e| e.into_inner());
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
    if !root() {
        return;
    }
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_sockbench"))
        .args([&["latency", "-t", "tcp4-sockmap,futex"][..], QUICK].concat())
        .env("TMPDIR", "/tmp")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("--transport") && err.contains("tcp4-sockmap") && err.contains("CAP_BPF"),
        "{err}"
    );
}
