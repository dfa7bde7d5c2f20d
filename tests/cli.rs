//! The binary as a user meets it: bad input, a tiny real run, output files,
//! a server killed mid-run, and Ctrl-C. Each run gets a private TMPDIR so
//! that any socket file or directory left behind is seen.

mod util;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use util::{QUICK, leftovers, private_tmp, run};

#[test]
fn bad_input_gets_one_line_exit_2_and_leaves_nothing() {
    let tmp = private_tmp();
    let full = tempfile::tempdir().unwrap();
    std::fs::write(full.path().join("x"), "").unwrap();
    let full_out = full.path().to_str().unwrap().to_string();
    let cases: Vec<(Vec<&str>, &[&str])> = vec![
        (
            vec!["-t", "tcp5"],
            &["--transport", "tcp5", "allowed", "uds-stream"],
        ),
        (vec!["-t", ""], &["--transport"]),
        (vec!["-s", "0"], &["--size", "'0'", "1 MiB"]),
        (vec!["-s", "2M"], &["--size", "2M", "1 MiB"]),
        (vec!["-s", "-5"], &["--size", "-5"]),
        (vec!["-s", "4KB"], &["--size", "4KB", "unit"]),
        (
            vec!["-s", "99999999999999999999"],
            &["--size", "out of range"],
        ),
        (vec!["-s", "64,,4K"], &["--size"]),
        (vec!["-s", "64,64"], &["--size", "64", "twice"]),
        (vec!["-t", "tcp4,tcp4"], &["--transport", "tcp4", "twice"]),
        (
            vec!["-t", "udp4", "-s", "64K"],
            &["--size", "65536", "65507"],
        ),
        (
            vec!["--server-cpu", "9999"],
            &["--server-cpu", "9999", "allowed"],
        ),
        (vec!["--client-cpu", "-1"], &["--client-cpu", "-1"]),
        (vec!["-n", "0"], &["--iterations", "0", "at least 1"]),
        (
            vec!["-n", "5", "--trials", "10"],
            &["--iterations", "5", "--trials"],
        ),
        (vec!["--trials", "0"], &["--trials", "0"]),
        (vec!["-d", "abc"], &["--duration", "abc"]),
        (vec!["-d", "0s"], &["--duration", "0s", "longer than zero"]),
        (vec!["-d", "5"], &["--duration", "'5'"]),
        (vec!["--timeout", "-1s"], &["--timeout"]),
        (
            vec!["--timeout", "1ns"],
            &["--timeout", "1ns", "10ms to 1h"],
        ),
        (
            vec!["--timeout", "9ms"],
            &["--timeout", "9ms", "10ms to 1h"],
        ),
        (
            vec!["--timeout", "9223372036854775808s"],
            &["--timeout", "9223372036854775808s"],
        ),
        (vec!["--timeout", "2h"], &["--timeout", "2h", "10ms to 1h"]),
        (vec!["--mode", "fork"], &["--mode", "fork", "thread"]),
        (vec!["--wait", "poll"], &["--wait", "poll", "spin"]),
        (vec!["--nodelay", "yes"], &["--nodelay", "yes", "on"]),
        (vec!["--format", "xml"], &["--format", "xml", "json"]),
        (
            vec!["-n", "10", "-d", "1s"],
            &["--duration", "--iterations"],
        ),
        (vec!["--out", &full_out], &["--out", "not empty"]),
        (
            vec!["--out", "/nonexistent-dir/x"],
            &["--out", "parent directory does not exist"],
        ),
        (vec!["--bogus"], &["--bogus"]),
        (
            vec!["--out", "/proc/sockbench-out"],
            &["--out", "/proc/sockbench-out", "not writable"],
        ),
        (vec!["--out", ""], &["--out"]),
        (vec!["--warmup", "-1"], &["--warmup", "-1"]),
        (vec!["--warmup-time", "1 parsec"], &["--warmup-time"]),
        (
            vec!["--trials", "99999999999"],
            &["--trials", "99999999999"],
        ),
        (vec!["-d", "99999999999999999999h"], &["--duration"]),
        (vec!["--pairs", "65"], &["--pairs", "65", "1 to 64"]),
        (vec!["--netns", "docker"], &["--netns", "docker", "veth"]),
        (
            vec!["--netns", "veth", "-t", "tcp4,pipe"],
            &["--transport", "pipe", "--netns"],
        ),
        (
            vec!["@throughput", "--netns", "bridge", "-t", "socketpair"],
            &["--transport", "socketpair", "--netns"],
        ),
        (vec!["--client-cpu", "1,x"], &["--client-cpu", "x"]),
        (vec!["-s", "1.5K"], &["--size", "1.5K"]),
        (vec!["--pairs", "0"], &["--pairs", "0", "1 to 64"]),
        (vec!["--server-cpu", "0,,1"], &["--server-cpu"]),
        (
            vec!["@connect", "-t", "udp4"],
            &["--transport", "udp4", "uds-stream"],
        ),
        (
            vec!["@connect", "--wait", "spin"],
            &["--wait", "spin", "block"],
        ),
        (vec!["@rr", "--depth", "0"], &["--depth", "0", "1 to 1024"]),
        (
            vec!["@rr", "--depth", "4", "--new-connection"],
            &["--depth", "4", "--new-connection"],
        ),
        (
            vec!["@rr", "--depth", "64", "--response-size", "16K"],
            &["--response-size", "16384", "--depth"],
        ),
        (
            vec!["@rr", "--request-size", "0"],
            &["--request-size", "'0'"],
        ),
        (
            vec![
                "@rr",
                "-t",
                "uds-dgram",
                "--depth",
                "500",
                "--response-size",
                "64",
                "--request-size",
                "64",
            ],
            &["--depth", "500", "max_dgram_qlen"],
        ),
        (
            vec!["@throughput", "-s", "64,64"],
            &["--size", "64", "twice"],
        ),
        (
            vec!["@throughput", "-t", "udp4", "-s", "1M"],
            &["--size", "1048576", "65507"],
        ),
    ];
    for (args, needles) in cases {
        // A first element "@name" picks the subcommand (default: latency).
        let (sub, args) = match args.first() {
            Some(a) if a.starts_with('@') => (&a[1..], args[1..].to_vec()),
            _ => ("latency", args),
        };
        let mut argv = vec![sub];
        argv.extend(&args);
        let out = run(tmp.path(), &argv);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: exit status; stderr: {err}"
        );
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{args:?}: one line, got: {err}"
        );
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        for n in needles {
            assert!(
                err.contains(n),
                "{args:?}: stderr should mention {n:?}: {err}"
            );
        }
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
        assert!(
            leftovers(tmp.path()).is_empty(),
            "{args:?}: left {:?}",
            leftovers(tmp.path())
        );
    }
    assert_eq!(
        leftovers(full.path()).len(),
        1,
        "an existing --out is not touched"
    );
}

/// TMPDIR (where the private socket directory goes) unusable or unsafe:
/// not writable, missing, writable by every user without the sticky bit,
/// or owned by another user. One line naming it, exit 2, nothing left.
/// A TMPDIR too long for a socket path is fine: sockets are bound through
/// the directory's descriptor (/proc/self/fd/N/name).
#[test]
fn bad_or_unsafe_tmpdir_is_one_line_exit_2() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = private_tmp();
    let open = tmp.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let theirs = tmp.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .map(|u| u.uid);
    let owned_by_other = nobody.is_some() && nix::unistd::chown(&theirs, nobody, None).is_ok();
    let mut cases = vec![
        (
            std::path::Path::new("/proc"),
            "cannot make the private socket directory",
        ),
        (
            std::path::Path::new("/nonexistent-sockbench"),
            "cannot make",
        ),
        (open.as_path(), "sticky"),
    ];
    if owned_by_other {
        cases.push((theirs.as_path(), "another user"));
    } else {
        eprintln!("skipping the other-owner case: cannot chown to nobody here");
    }
    for (dir, needle) in cases {
        let out = run(
            dir,
            &["latency", "-t", "uds-stream", "-n", "10", "--trials", "1"],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{dir:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{dir:?}: {err}");
        assert!(
            err.contains("TMPDIR") && err.contains(needle),
            "{dir:?}: {err}"
        );
    }
    assert!(leftovers(&open).is_empty() && leftovers(&theirs).is_empty());
    let long = tmp.path().join("d".repeat(200));
    std::fs::create_dir(&long).unwrap();
    let mut args = vec!["latency", "-t", "uds-stream,uds-dgram,uds-seqpacket"];
    args.extend(QUICK);
    let out = run(&long, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(leftovers(&long).is_empty());
}

#[test]
fn tiny_run_writes_complete_results_and_cleans_up() {
    let tmp = private_tmp();
    let out_dir = tmp.path().join("run");
    let mut args = vec![
        "latency",
        "-t",
        "all",
        "-s",
        "1,4K",
        "--format",
        "json",
        "--out",
        out_dir.to_str().unwrap(),
    ];
    args.extend(QUICK);
    let out = run(tmp.path(), &args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    // stdout is exactly one JSON document.
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 9 * 2);
    for c in cases {
        assert_eq!(c["iterations"], 40, "{c}");
        assert!(c["p50_ns"].as_u64().unwrap() >= c["min_ns"].as_u64().unwrap());
        assert!(c["p99_ns"].as_u64().unwrap() >= c["p50_ns"].as_u64().unwrap());
        assert!(c["max_ns"].as_u64().unwrap() >= c["p99_ns"].as_u64().unwrap());
        assert_eq!(c["trial_points"].as_array().unwrap().len(), 2);
    }
    // Both UDS:TCP ratio metrics for every (uds, tcp) pair at both sizes.
    assert_eq!(doc["ratios"].as_array().unwrap().len(), 4 * 2 * 2 * 2);
    assert!(doc["env"]["kernel_release"].is_string());
    assert!(doc["env"]["sysctls"]["net.core.rmem_max"].is_string());
    // Every net.core, net.unix and TCP/UDP sysctl, not only the named ones:
    // a host setting changed by hand between runs shows in a comparison.
    let sysctls = doc["env"]["sysctls"].as_object().unwrap();
    for dir in ["net/core", "net/unix"] {
        for e in std::fs::read_dir(format!("/proc/sys/{dir}")).unwrap() {
            let e = e.unwrap();
            let name = format!(
                "{}.{}",
                dir.replace('/', "."),
                e.file_name().to_string_lossy()
            );
            let readable = std::fs::read_to_string(e.path()).is_ok();
            let secret = name.contains("key"); // netdev_rss_key, tcp_fastopen_key
            if e.file_type().unwrap().is_file() && readable && !secret {
                assert!(
                    sysctls.contains_key(&name),
                    "{name} is not in the fingerprint"
                );
            }
        }
    }
    assert!(
        !sysctls.keys().any(|k| k.contains("key")),
        "no secret (tcp_fastopen_key)"
    );
    // The run directory holds every file, and only the run directory is left.
    let mut names: Vec<String> = leftovers(&out_dir)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(
        names.contains(&"summary.json".into())
            && names.contains(&"summary.csv".into())
            && names.contains(&"env.json".into())
    );
    assert_eq!(
        names.iter().filter(|n| n.ends_with(".hgrm")).count(),
        18,
        "{names:?}"
    );
    let csv = std::fs::read_to_string(out_dir.join("summary.csv")).unwrap();
    assert!(
        csv.starts_with("workload,transport,size_bytes,response_bytes,"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 1 + 18);
    let hgrm = std::fs::read_to_string(out_dir.join("uds-stream-4096B.hgrm")).unwrap();
    assert!(hgrm.contains("Total count    =           40"), "{hgrm}");
    assert_eq!(
        leftovers(tmp.path()),
        vec![out_dir.clone()],
        "no socket dir or staging dir left"
    );
}

#[test]
fn csv_and_table_formats() {
    let tmp = private_tmp();
    let mut args = vec![
        "latency",
        "-t",
        "uds-stream,tcp4",
        "-s",
        "64",
        "--format",
        "csv",
    ];
    args.extend(QUICK);
    let out = run(tmp.path(), &args);
    assert!(out.status.success());
    let csv = String::from_utf8(out.stdout).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    let mut args = vec!["latency", "-t", "uds-stream,tcp4", "-s", "64"];
    args.extend(QUICK);
    let out = run(tmp.path(), &args);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("uds-stream") && table.contains("uds-stream / tcp4"),
        "{table}"
    );
}

/// Start a long process-mode run of `workload` and wait until its forked server exists.
fn start_long_run(
    tmp: &std::path::Path,
    workload: &str,
    transport: &str,
    extra: &[&str],
) -> (std::process::Child, u32) {
    let mut args = vec![workload, "-t", transport, "--mode", "process", "-d", "20s"];
    if !extra.contains(&"--timeout") {
        args.extend(["--timeout", "2s"]);
    }
    args.extend(extra);
    let mut child = util::spawn_run(tmp, &args, Stdio::piped());
    let mut server = None;
    util::wait_until("a server process", Duration::from_secs(10), || {
        assert!(child.try_wait().unwrap().is_none(), "run ended early");
        server = util::servers(child.id()).first().copied();
        server.is_some()
    });
    std::thread::sleep(Duration::from_millis(300)); // let the run get going
    (child, server.unwrap())
}

fn wait_bounded(child: &mut std::process::Child, limit: Duration) -> (Option<i32>, String) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.code(), err);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("no exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn killed_server_gives_a_bounded_error_and_leaves_nothing() {
    // Several sizes: the killed server (the first case's) must be noticed
    // while the run works on the other cases too.
    let runs: &[(&str, &str, &[&str])] = &[
        ("latency", "uds-stream", &["-s", "64,4K"]),
        ("latency", "tcp4", &[]),
        ("latency", "udp4", &[]),
        ("latency", "uds-dgram", &[]),
        ("latency", "pipe", &["-s", "64,4K"]),
        ("rr", "tcp4", &[]),
        ("rr", "udp4", &[]),
        ("connect", "uds-stream", &["--request-size", "64,512"]),
        ("throughput", "tcp4", &["-s", "64,4K"]),
        (
            "throughput",
            "pipe",
            &["-s", "64,4K", "--direction", "both"],
        ),
        ("throughput", "udp4", &["-s", "64,4K"]),
    ];
    for &(workload, transport, sizes) in runs {
        let tmp = private_tmp();
        let out_dir = tmp.path().join("out");
        let mut extra = vec!["--out", out_dir.to_str().unwrap()];
        extra.extend(sizes);
        let (mut child, server) = start_long_run(tmp.path(), workload, transport, &extra);
        let server = nix::unistd::Pid::from_raw(server as i32);
        nix::sys::signal::kill(server, nix::sys::signal::Signal::SIGKILL).unwrap();
        let t0 = Instant::now();
        let (code, err) = wait_bounded(&mut child, Duration::from_secs(10));
        let what = format!("{workload} {transport}");
        assert_eq!(code, Some(1), "{what}: {err}");
        // At most one trial of another case (20 s / 10 trials) plus the 2 s timeout.
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{what}: took {:?}",
            t0.elapsed()
        );
        assert!(
            err.contains(transport),
            "{what}: error names the transport: {err}"
        );
        assert!(
            err.contains("SIGKILL") || err.contains("peer") || err.contains("server"),
            "{what}: {err}"
        );
        assert!(
            leftovers(tmp.path()).is_empty(),
            "{what}: left {:?}",
            leftovers(tmp.path())
        );
        assert!(
            util::children(child.id()).is_empty(),
            "{what}: no child left"
        );
    }
}

/// A stopped server (SIGSTOP) makes the run fail within `--timeout`, and
/// the run then exits within a second: no waiting on the server's account
/// of it for longer than a moment, no polling before killing it.
#[test]
fn stopped_server_gives_an_error_within_the_timeout_then_exit_within_a_second() {
    for (workload, transport) in [
        ("latency", "uds-stream"),
        ("latency", "udp4"),
        ("latency", "pipe"),
        ("throughput", "tcp4"),
        ("connect", "tcp4"),
        ("load", "uds-stream"),
        ("load", "udp4"),
    ] {
        let tmp = private_tmp();
        let (mut child, server) =
            start_long_run(tmp.path(), workload, transport, &["--timeout", "1s"]);
        let server = nix::unistd::Pid::from_raw(server as i32);
        nix::sys::signal::kill(server, nix::sys::signal::Signal::SIGSTOP).unwrap();
        let t0 = Instant::now();
        let (code, err) = wait_bounded(&mut child, Duration::from_secs(10));
        let took = t0.elapsed();
        let what = format!("{workload} {transport}");
        assert_eq!(code, Some(1), "{what}: {err}");
        // 1 s of --timeout (the watchdog's for pipes), then at most 1 s to exit.
        assert!(
            took < Duration::from_millis(2500),
            "{what}: took {took:?}: {err}"
        );
        assert!(err.contains(transport), "{what}: {err}");
        assert!(
            leftovers(tmp.path()).is_empty(),
            "{what}: left {:?}",
            leftovers(tmp.path())
        );
        assert!(
            !std::path::Path::new(&format!("/proc/{server}")).exists(),
            "{what}: the stopped server was killed and reaped"
        );
    }
}

/// The same, for servers in threads: `--fault-server-exit-after` (hidden,
/// for tests) makes every server stop mid-run without a word, closing its
/// ends, as a crashed server thread would.
#[test]
fn dead_server_thread_gives_a_bounded_error_and_leaves_nothing() {
    let runs: &[(&str, &str, &[&str])] = &[
        ("latency", "uds-stream", &["-s", "64,4K"]),
        ("latency", "tcp4", &[]),
        ("latency", "udp4", &[]),
        ("latency", "uds-dgram", &[]),
        ("latency", "uds-seqpacket", &[]),
        ("latency", "pipe", &[]),
        ("rr", "tcp4", &["--depth", "4"]),
        ("rr", "uds-stream", &["--new-connection"]),
        ("connect", "uds-stream", &[]),
        ("connect", "tcp4", &[]),
        ("throughput", "tcp4", &[]),
        ("throughput", "uds-dgram", &[]),
        ("throughput", "pipe", &["--direction", "both"]),
        ("load", "tcp4", &["--rate", "20k"]),
        ("load", "uds-dgram", &["--rate", "20k"]),
        ("load", "udp4", &["--rate", "20k"]),
    ];
    for &(workload, transport, extra) in runs {
        let tmp = private_tmp();
        let out_dir = tmp.path().join("out");
        let mut args = vec![
            workload,
            "-t",
            transport,
            "-d",
            "20s",
            "--timeout",
            "2s",
            "--fault-server-exit-after",
            "4321",
            "--out",
            out_dir.to_str().unwrap(),
        ];
        args.extend(extra);
        let t0 = Instant::now();
        let out = run(tmp.path(), &args);
        let err = String::from_utf8_lossy(&out.stderr);
        let what = format!("{workload} {transport}");
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        assert!(
            t0.elapsed() < Duration::from_secs(8),
            "{what}: took {:?}",
            t0.elapsed()
        );
        assert_eq!(err.trim().lines().count(), 1, "{what}: one line: {err}");
        assert!(
            err.contains(transport),
            "{what}: names the transport: {err}"
        );
        assert!(
            err.contains("server") || err.contains("peer"),
            "{what}: says the peer is gone: {err}"
        );
        assert!(
            ["recv", "send", "read", "write", "connect"]
                .iter()
                .any(|call| err.contains(&format!(" {call} ("))),
            "{what}: names the call that failed: {err}"
        );
        assert!(
            leftovers(tmp.path()).is_empty(),
            "{what}: left {:?} (no partial result, no socket file)",
            leftovers(tmp.path())
        );
    }
}

/// SIGTERM, or a second SIGINT, ends a run of every subcommand within a
/// second, in both modes: exit 130, servers reaped, no socket directory,
/// no result.
#[test]
fn sigterm_or_a_second_ctrl_c_aborts_and_removes_everything() {
    use nix::sys::signal::Signal::{SIGINT, SIGTERM};
    let runs = [
        ("latency", "uds-stream,uds-dgram,pipe", false),
        ("rr", "tcp4,uds-seqpacket", true),
        ("connect", "tcp4,uds-stream", false),
        ("throughput", "tcp4,uds-dgram", true),
    ];
    for (workload, transports, sigterm_first) in runs {
        for sigterm in [sigterm_first, !sigterm_first] {
            let tmp = private_tmp();
            let out_dir = tmp.path().join("out");
            let out = out_dir.to_str().unwrap();
            let what = |mode: &str| {
                format!(
                    "{workload} {} ({mode} mode)",
                    if sigterm { "SIGTERM" } else { "two SIGINTs" }
                )
            };
            // Signal `child`; it must end within a second, exit 130 and leave nothing.
            let interrupt = |child: &mut std::process::Child, what: &str| {
                let pid = nix::unistd::Pid::from_raw(child.id() as i32);
                let t0 = Instant::now();
                if sigterm {
                    nix::sys::signal::kill(pid, SIGTERM).unwrap();
                } else {
                    nix::sys::signal::kill(pid, SIGINT).unwrap();
                    std::thread::sleep(Duration::from_millis(50));
                    nix::sys::signal::kill(pid, SIGINT).unwrap();
                }
                let (code, err) = wait_bounded(child, Duration::from_secs(3));
                assert_eq!(code, Some(130), "{what}: {err}");
                assert!(
                    t0.elapsed() < Duration::from_secs(1),
                    "{what}: took {:?}",
                    t0.elapsed()
                );
                assert!(
                    leftovers(tmp.path()).is_empty(),
                    "{what}: left {:?}",
                    leftovers(tmp.path())
                );
            };
            // Process mode: wait for the forked server, then signal.
            let (mut child, server) =
                start_long_run(tmp.path(), workload, transports, &["--out", out]);
            interrupt(&mut child, &what("process"));
            assert!(
                !std::path::Path::new(&format!("/proc/{server}")).exists(),
                "{}: server process reaped",
                what("process")
            );
            // Thread mode: signal once the run is under way.
            let mut child = util::bin()
                .args([workload, "-t", transports, "-d", "20s", "--out", out])
                .env("TMPDIR", tmp.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(800));
            interrupt(&mut child, &what("thread"));
        }
    }
}

/// A first Ctrl-C ends the run after the trial under way and keeps the
/// complete rounds: the table says how many of the planned ones, the
/// result directory is written with them (marked so), exit 130.
#[test]
fn a_first_ctrl_c_keeps_the_complete_rounds() {
    for mode in ["thread", "process"] {
        let tmp = private_tmp();
        let out_dir = tmp.path().join("out");
        let mut child = util::bin()
            .args([
                "latency",
                "-t",
                "tcp4,uds-stream",
                "-d",
                "20s",
                "--trials",
                "50",
                "--mode",
                mode,
            ])
            .args(["--warmup-time", "0s", "--out", out_dir.to_str().unwrap()])
            .env("TMPDIR", tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Trials of 0.4 s, two cases: a round every 0.8 s.
        std::thread::sleep(Duration::from_millis(3000));
        let t0 = Instant::now();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
        let mut stdout = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        let (code, err) = wait_bounded(&mut child, Duration::from_secs(5));
        assert_eq!(code, Some(130), "{mode}: {err}");
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "{mode}: within a trial and the report: {:?}",
            t0.elapsed()
        );
        assert!(
            err.contains("finishing the trial under way"),
            "{mode}: {err}"
        );
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json")).unwrap())
                .unwrap();
        let rounds = doc["rounds"].as_u64().unwrap();
        assert!((1..50).contains(&rounds), "{mode}: {rounds} rounds kept");
        assert_eq!(doc["settings"]["trials"], 50);
        for c in doc["cases"].as_array().unwrap() {
            assert_eq!(
                c["trial_points"].as_array().unwrap().len() as u64,
                rounds,
                "{mode}: complete rounds only"
            );
        }
        assert!(
            stdout
                .replace('\n', " ")
                .contains(&format!("over {rounds} of 50 rounds")),
            "{mode}: {stdout}"
        );
        let left: Vec<_> = leftovers(tmp.path())
            .into_iter()
            .filter(|p| *p != out_dir)
            .collect();
        assert!(left.is_empty(), "{mode}: left {left:?}");
    }
}

/// What a new user meets first: bare `sockbench` shows the usage with its
/// subcommands; a misspelt one gets clap's suggestion in its one line;
/// errors blame the flag that was given.
#[test]
fn usage_suggestions_and_errors_name_what_was_given() {
    let tmp = private_tmp();
    let out = run(tmp.path(), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    for word in ["Usage:", "latency", "rr", "connect", "throughput", "env"] {
        assert!(err.contains(word), "bare sockbench shows {word}: {err}");
    }
    let out = run(tmp.path(), &["latncy"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("a similar subcommand exists: 'latency'"),
        "{err}"
    );
    let out = run(tmp.path(), &["rr", "--response-size", "100K", "-t", "udp4"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("--response-size 102400") && !err.contains("--size"),
        "{err}"
    );
}

/// `-t all` runs what can run and says, in one line, what it left out and
/// why; a transport named on its own is still refused.
#[test]
fn transport_all_leaves_out_what_cannot_run_and_says_so() {
    let tmp = private_tmp();
    let mut args = vec![
        "connect",
        "-t",
        "all",
        "--format",
        "json",
        "--progress",
        "never",
    ];
    args.extend(QUICK);
    let out = run(tmp.path(), &args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let note: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("--transport all"))
        .collect();
    assert_eq!(note.len(), 1, "{err}");
    for k in ["udp4", "uds-dgram", "socketpair", "pipe", "no connections"] {
        assert!(note[0].contains(k), "{}", note[0]);
    }
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["cases"].as_array().unwrap().len(),
        5,
        "tcp4, tcp6, uds-stream, uds-seqpacket, uds-abstract"
    );
    let mut args = vec![
        "throughput",
        "-t",
        "all",
        "--format",
        "json",
        "--progress",
        "never",
    ];
    args.extend(QUICK);
    let out = run(tmp.path(), &args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("--transport all: left out udp4 at 64K"),
        "{err}"
    );
    let out = run(tmp.path(), &["connect", "-t", "udp4"]);
    assert_eq!(out.status.code(), Some(2), "named on its own: refused");
}

/// The default table fits 80 columns, its headers carry units, `--wide`
/// shows every column; `--quiet` silences warnings; `-o` is `--out`.
#[test]
fn the_table_fits_80_columns_and_quiet_is_quiet() {
    let tmp = private_tmp();
    for workload in ["latency", "rr", "throughput"] {
        let mut args = vec![workload, "-t", "uds-seqpacket,tcp4", "--progress", "never"];
        args.extend(QUICK);
        let out = run(tmp.path(), &args);
        let table = String::from_utf8_lossy(&out.stdout);
        for line in table.lines().skip(1).take_while(|l| !l.is_empty()) {
            assert!(
                line.chars().count() <= 80,
                "{workload}: {} columns: {line}",
                line.chars().count()
            );
        }
        assert!(table.contains("µs") || table.contains("Gbit/s"), "{table}");
        args.push("--wide");
        let wide = String::from_utf8_lossy(&run(tmp.path(), &args).stdout).into_owned();
        assert!(wide.contains("calls/"), "{wide}");
    }
    // A run with knob lists: every line (legend, knob ratios with a held
    // knob, the A/A spread, verdicts) fits too.
    let mut args = vec![
        "throughput",
        "-t",
        "uds-stream,tcp4",
        "-s",
        "64K",
        "--sndbuf",
        "64K,256K",
        "--rcvbuf",
        "64K,4M",
        "--control",
        "--progress",
        "never",
    ];
    args.extend(QUICK);
    let out = run(tmp.path(), &args);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("\n  uds-stream: rcvbuf=4M / rcvbuf=64K [sndbuf=256K]\n"),
        "{table}"
    );
    for line in table.lines() {
        assert!(
            line.chars().count() <= 80,
            "knobs: {} columns: {line}",
            line.chars().count()
        );
    }
    let out_dir = tmp.path().join("res");
    let mut args = vec![
        "latency",
        "-q",
        "-o",
        out_dir.to_str().unwrap(),
        "--progress",
        "never",
    ];
    args.extend(QUICK);
    let out = run(tmp.path(), &args);
    assert!(out.status.success());
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("warning:"),
        "--quiet"
    );
    assert!(out_dir.join("summary.json").is_file(), "-o is --out");
}

/// Progress goes to stderr when asked (or when stderr is a terminal: a live
/// bar), with what the run will take said first; into a file or a pipe it
/// is a line per round; nothing extra when not asked and not a terminal.
#[test]
fn progress_is_drawn_only_when_asked_or_on_a_terminal() {
    let tmp = private_tmp();
    let mut args = vec!["latency", "-t", "uds-stream", "-d", "1s", "--trials", "4"];
    args.extend(["--warmup-time", "0s", "-q"]);
    let auto = run(tmp.path(), &args);
    assert!(
        String::from_utf8_lossy(&auto.stderr).trim().is_empty(),
        "not a terminal: nothing extra"
    );
    args.extend(["--progress", "always"]);
    let always = run(tmp.path(), &args);
    let err = String::from_utf8_lossy(&always.stderr);
    assert!(
        err.contains("1 case × 4 rounds") && err.contains("250ms per trial"),
        "{err}"
    );
    assert!(
        err.contains("round 1 of 4 done") && err.contains("left"),
        "{err}"
    );
    // Each round's line, as iperf3's intervals: the last trial's median.
    let p50: f64 = err
        .lines()
        .find_map(|l| l.split("last trial p50 ").nth(1))
        .and_then(|v| v.strip_suffix(" µs"))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no last trial p50: {err}"));
    assert!(p50 > 0.0 && p50 < 10_000.0, "{p50} µs");
}

/// A first Ctrl-C before any round is complete (while 64 cases are set up
/// and warmed up, 13 s of warm-up in all) ends the run at once: exit 130,
/// nothing kept, nothing left; and a SIGTERM to a run holding 64 forked
/// servers ends it within a second, the servers killed.
#[test]
fn a_first_ctrl_c_before_the_first_round_ends_the_run_at_once() {
    use nix::sys::signal::Signal::{SIGINT, SIGTERM};
    let eight = "64K,128K,192K,256K,320K,384K,448K,512K";
    for (mode, signal, after) in [
        ("thread", SIGINT, 300),
        ("thread", SIGINT, 1500),
        ("process", SIGTERM, 2500),
    ] {
        let tmp = private_tmp();
        let mut child = util::bin()
            .args([
                "latency", "-t", "tcp4", "--sndbuf", eight, "--rcvbuf", eight,
            ])
            .args(["--mode", mode, "-d", "20s", "--progress", "never"])
            .env("TMPDIR", tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(after));
        let servers = util::servers(child.id());
        let t0 = Instant::now();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
        let (code, err) = wait_bounded(&mut child, Duration::from_secs(10));
        let took = t0.elapsed();
        assert_eq!(code, Some(130), "{mode} {signal} after {after} ms: {err}");
        assert!(
            took < Duration::from_secs(1),
            "{mode} {signal} after {after} ms: took {took:?}"
        );
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert!(out.is_empty(), "nothing kept: {out}");
        assert!(leftovers(tmp.path()).is_empty());
        if mode == "process" {
            assert!(servers.len() > 10, "servers were forked: {}", servers.len());
            let alive = || {
                servers
                    .iter()
                    .filter(|s| {
                        std::fs::read_to_string(format!("/proc/{s}/stat")).is_ok_and(|st| {
                            !st.rsplit(')').next().unwrap_or("").trim().starts_with('Z')
                        })
                    })
                    .count()
            };
            let t1 = Instant::now();
            while alive() > 0 && t1.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(20));
            }
            assert_eq!(alive(), 0, "every server killed");
        }
    }
}

/// A plan that cannot fit is bad input before anything is built: a product
/// of lists too large to hold (here 200,000,000 cases, refused at once and
/// in little memory), or more descriptors than `ulimit -n` allows.
#[test]
fn a_plan_that_cannot_fit_is_refused_before_anything_runs() {
    let tmp = private_tmp();
    let list = |n: usize, step: usize| {
        (1..=n)
            .map(|i| (i * step).to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let (bufs, polls) = (list(1000, 4096), list(100, 1));
    let t0 = Instant::now();
    let out = util::assert_refused(
        tmp.path(),
        &[
            "latency",
            "--sndbuf",
            &bufs,
            "--rcvbuf",
            &bufs,
            "--busy-poll",
            &polls,
        ],
        &["200,000,000 cases", "at most 4,096"],
    );
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert!(out.stdout.is_empty());
    let forty = list(40, 4096);
    let o = Command::new("prlimit")
        .args(["--nofile=256:256", "--"])
        .arg(env!("CARGO_BIN_EXE_sockbench"))
        .args([
            "latency", "-t", "tcp4", "--sndbuf", &forty, "--rcvbuf", &forty,
        ])
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("1,600 cases") && err.contains("ulimit -n"),
        "{err}"
    );
    assert!(leftovers(tmp.path()).is_empty());
}

/// An open-loop trial lasts its duration: a rate at which a trial would
/// send fewer than 10 requests is refused, and a low rate that is allowed
/// ends in about the time the plan says (its warm-up is timed, not counted).
#[test]
fn a_load_trial_lasts_its_duration() {
    let tmp = private_tmp();
    for arrival in ["constant", "poisson"] {
        util::assert_refused(
            tmp.path(),
            &[
                "load",
                "-t",
                "tcp4",
                "--rate",
                "1",
                "-d",
                "200ms",
                "--trials",
                "2",
                "--arrival",
                arrival,
            ],
            &["--rate 1", "at least 10"],
        );
        let t0 = Instant::now();
        let child = util::bin()
            .args([
                "load", "-t", "tcp4", "--rate", "100", "-d", "200ms", "--trials", "2",
            ])
            .args(["--arrival", arrival, "-q", "--format", "json"])
            .env("TMPDIR", tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let o = util::wait_output(child, Duration::from_secs(20));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{arrival}: 0.2 s of trials and 0.2 s of warm-up took {:?}",
            t0.elapsed()
        );
    }
    assert!(leftovers(tmp.path()).is_empty());
}

/// `--no-warn CODE` leaves that kind of warning off stderr and keeps it in
/// summary.json; an unknown code is bad input naming the codes there are.
#[test]
fn no_warn_silences_one_kind_of_warning_on_stderr_only() {
    let tmp = util::private_tmp();
    let base = [
        "latency",
        "-t",
        "uds-stream",
        "-n",
        "40",
        "--trials",
        "2",
        "--format",
        "json",
    ];
    let loud = util::run(tmp.path(), &base);
    let quiet = util::run(
        tmp.path(),
        &[&base[..], &["--no-warn", "too-few-rounds"]].concat(),
    );
    for o in [&loud, &quiet] {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let codes = util::warning_codes(&doc);
        assert!(codes.contains(&"too-few-rounds"), "{codes:?}");
    }
    let said = |o: &std::process::Output| {
        String::from_utf8_lossy(&o.stderr).contains("2 rounds: every ratio")
    };
    assert!(said(&loud) && !said(&quiet));
    let bad = util::run(tmp.path(), &[&base[..], &["--no-warn", "shy"]].concat());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--no-warn") && err.contains("virtualized"),
        "{err}"
    );
}

/// `command` (`{}` is sockbench, its stdout thrown away) run on a
/// pseudo-terminal `cols` wide by script(1), with a private TMPDIR, within
/// a minute; what the terminal showed is the output's stdout. None where
/// there is no util-linux script(1). The terminal gets 24 rows: console
/// takes a terminal of 0 rows for none, and draws 80 wide.
fn on_a_terminal(cols: u16, command: &str) -> Option<std::process::Output> {
    Command::new("script").arg("--version").output().ok()?;
    let tmp = private_tmp();
    let command = command.replace("{}", env!("CARGO_BIN_EXE_sockbench"));
    let inner = format!("stty rows 24 cols {cols}; {command} >/dev/null");
    let child = Command::new("script")
        .args(["-q", "-e", "-c", &inner, "/dev/null"])
        .env("TMPDIR", tmp.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Some(util::wait_output(child, Duration::from_secs(60)))
}

/// On a terminal 60 columns wide, the live progress line never runs past
/// the edge (the case's name is cut, the counts and time left stay), and
/// a first Ctrl-C's line is printed whole above it (it used to be drawn
/// over: "…complete rounds (Ct").
#[test]
fn the_progress_line_fits_the_terminal_and_a_ctrl_c_line_is_whole() {
    // `--foreground`: timeout signals sockbench alone. Without it, it also
    // signals its process group, and sockbench could get the SIGINT twice:
    // the second aborts (the test failed so, now and then, under load).
    let Some(out) = on_a_terminal(
        60,
        "timeout --foreground -s INT 2.5 {} latency -t tcp4,uds-stream -d 8s --trials 4 --warmup-time 0s -q",
    ) else {
        return; // no util-linux script(1) to make a terminal with
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let drawn: Vec<&str> = text
        .split(['\r', '\n'])
        .map(|l| l.trim_start_matches("\u{1b}[2K"))
        .filter(|l| l.contains(" trials, "))
        .collect();
    assert!(!drawn.is_empty(), "no progress drawn: {text:?}");
    for l in &drawn {
        let l = l.split("interrupted:").next().unwrap().trim_end();
        assert!(
            l.chars().count() <= 60,
            "{} columns: {l:?}",
            l.chars().count()
        );
    }
    // Drawn as a line of its own: the display clears its line, then says it.
    assert!(
        text.contains(&format!("\u{1b}[2K{}", sockbench::cleanup::INTERRUPTED)),
        "the Ctrl-C line, whole: {text:?}"
    );
}

/// On a terminal 100 columns wide, the live line gives the case of the
/// last trial with its p50 so far and, from its 6th trial, the half-width
/// of its 95% CI, as iperf3 gives each interval; and every line, the
/// warnings' too, fits the width.
#[test]
fn the_progress_line_gives_the_cases_p50_and_ci_so_far() {
    let Some(out) = on_a_terminal(100, "{} latency -t tcp4 -d 4s --trials 10 --warmup-time 0s")
    else {
        return; // no util-linux script(1) to make a terminal with
    };
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let drawn: Vec<&str> = text
        .split(['\r', '\n'])
        .map(|l| l.trim_start_matches("\u{1b}[2K").trim_end())
        .filter(|l| l.contains(" trials, "))
        .collect();
    let p50 = |l: &&str| {
        l.split("tcp4 64: p50 ")
            .nth(1)
            .and_then(|v| v.split(" µs").next()?.parse::<f64>().ok())
            .is_some_and(|us| us > 0.0)
    };
    assert!(drawn.iter().any(p50), "no p50 so far: {drawn:?}");
    // The CI only from a case's 6th trial: 10 trials of 0.4 s, so about 2 s
    // of the display's 4 ticks a second have it (with 7 of 0.2 s, the run
    // once ended before a tick drew one).
    assert!(
        drawn
            .iter()
            .any(|l| p50(l) && l.contains(" µs ±") && l.ends_with('%')),
        "no CI so far: {drawn:?}"
    );
    assert!(drawn.iter().all(|l| l.chars().count() <= 100), "{drawn:?}");
    // The warnings too (this machine is a VM: at least `virtualized`),
    // wrapped at word boundaries to the terminal's width.
    let plain: String = {
        let mut out = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' && chars.peek() == Some(&'[') {
                // A control sequence: ESC [ parameters, then a letter.
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    };
    let lines: Vec<&str> = plain.split(['\r', '\n']).collect();
    if lines.iter().any(|l| l.starts_with("warning: ")) {
        for l in &lines {
            assert!(
                l.trim_end().chars().count() <= 100,
                "{} columns: {l:?}",
                l.chars().count()
            );
        }
    }
}
