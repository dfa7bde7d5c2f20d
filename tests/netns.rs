//! `--netns`: the server in its own network namespace, the client in
//! another, joined by veth (or through a bridge). Path sockets cross, abstract
//! names do not, and nothing is left behind: `ip link` and `ip netns list`
//! read the same before and after, on success, on error and on Ctrl-C.
//!
//! Namespaces need root (CAP_SYS_ADMIN, CAP_NET_ADMIN). Without it these
//! tests say so on stderr and pass; CI runs them as root.

mod util;

use std::process::{Command, Stdio};
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use sockbench::samples::{Heartbeat, new_histogram};
use sockbench::spec::Mode;
use sockbench::spec::{NetnsMode, TransportKind};
use sockbench::transport::{SERVER_V4, SocketDir, Topology, TransportOpts, listen};
use sockbench::workload::{PairSpec, PinnedPair, Stop};
use util::{QUICK, leftovers, private_tmp};

/// What the host's network looks like: its links and named namespaces.
fn host_network() -> (String, String) {
    let run = |args: &[&str]| {
        let out = Command::new("ip").args(args).output().unwrap();
        assert!(out.status.success(), "ip {args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    // Link names and states, without counters that change on their own.
    let links = run(&["-o", "link", "show"])
        .lines()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n");
    (links, run(&["netns", "list"]))
}

#[test]
fn path_sockets_cross_namespaces_abstract_names_do_not() {
    if !util::can_make_netns() {
        return;
    }
    for mode in [NetnsMode::Veth, NetnsMode::Bridge] {
        let topology = Topology::new(mode).unwrap();
        let placement = topology.placement();
        let opts = TransportOpts {
            netns: Some(placement),
            ..util::opts()
        };
        let dir = SocketDir::new().unwrap();
        let beat = AtomicU64::new(0);
        std::thread::scope(|s| {
            s.spawn(|| {
                placement.enter_client().unwrap();
                // Everything with an address, but the abstract name (below).
                for kind in TransportKind::ALL.into_iter().filter(|k| {
                    !matches!(
                        k,
                        TransportKind::Socketpair
                            | TransportKind::Pipe
                            | TransportKind::UdsAbstract
                    )
                }) {
                    for pmode in [Mode::Thread, Mode::Process] {
                        let spec = PairSpec::echo(kind, 1000, opts, pmode, util::cpus().0);
                        let mut pair = PinnedPair::connect(spec, Some(&dir))
                            .unwrap_or_else(|e| panic!("{mode:?} {kind}: {e}"));
                        let mut h = new_histogram();
                        pair.record(Stop::count(20), &mut h, &mut Heartbeat::new(&beat), true)
                            .unwrap_or_else(|e| panic!("{mode:?} {kind} {pmode:?}: {e}"));
                        assert_eq!(h.len(), 20, "{mode:?} {kind}");
                    }
                }
                let spec = PairSpec::echo(
                    TransportKind::UdsAbstract,
                    64,
                    opts,
                    Mode::Thread,
                    util::cpus().0,
                );
                let e = PinnedPair::connect(spec, None).unwrap_err().to_string();
                assert!(
                    e.contains("Connection refused") && e.contains("abstract socket names"),
                    "{mode:?}: {e}"
                );
            });
        });
        // The same abstract pair connects when both ends share a namespace.
        let spec = PairSpec::echo(
            TransportKind::UdsAbstract,
            64,
            util::opts(),
            Mode::Thread,
            util::cpus().0,
        );
        drop(PinnedPair::connect(spec, None).unwrap());
        // The server really is elsewhere: the host has no route to it.
        let (_l, dialer, _g) = listen(TransportKind::Tcp4, 64, &opts, None).unwrap();
        assert_eq!(
            dialer.addr().to_string(),
            format!("{SERVER_V4}:{}", dialer.addr().port().unwrap())
        );
        let err = dialer.dial().unwrap_err();
        assert_eq!(err.0, "connect", "{mode:?}: {}", err.1);
    }
}

fn run_checked(tmp: &std::path::Path, args: &[&str], code: i32) -> String {
    let out = util::run(tmp, args);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
    String::from_utf8(out.stdout).unwrap() + &err
}

#[test]
fn namespaces_and_links_go_away_on_success_error_and_interrupt() {
    if !util::can_make_netns() {
        return;
    }
    let before = host_network();
    let tmp = private_tmp();
    let t = tmp.path();
    let mut ok: Vec<Vec<&str>> = vec![
        vec![
            "latency",
            "--netns",
            "veth",
            "-t",
            "tcp4,udp4,uds-stream",
            "--verify",
        ],
        vec![
            "latency",
            "--netns",
            "bridge",
            "-t",
            "tcp6,uds-dgram",
            "--mode",
            "process",
        ],
        vec![
            "rr",
            "--netns",
            "veth",
            "-t",
            "tcp4,uds-seqpacket",
            "--verify",
        ],
        vec!["rr", "--netns", "bridge", "-t", "tcp4", "--new-connection"],
        vec![
            "connect",
            "--netns",
            "veth",
            "-t",
            "tcp4,uds-stream",
            "--verify",
        ],
    ];
    for args in &mut ok {
        args.extend(QUICK);
        let out = run_checked(t, args, 0);
        assert!(out.contains("tcp"), "{args:?}: {out}");
        assert!(leftovers(t).is_empty(), "{args:?}: left {:?}", leftovers(t));
        assert_eq!(host_network(), before, "{args:?}: host network changed");
    }
    // An abstract name is not reachable from the other namespace: one line, exit 1.
    let mut args = vec!["latency", "--netns", "veth", "-t", "tcp4,uds-abstract"];
    args.extend(QUICK);
    let err = run_checked(t, &args, 1);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("uds-abstract") && err.contains("abstract socket names"),
        "{err}"
    );
    assert!(leftovers(t).is_empty());
    assert_eq!(host_network(), before, "after the failed run");
    // Ctrl-C in the middle of a bridged run.
    let mut child = util::bin()
        .args([
            "latency",
            "--netns",
            "bridge",
            "-t",
            "tcp4,uds-stream",
            "-d",
            "20s",
        ])
        .env("TMPDIR", t)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "no exit after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130));
    assert!(leftovers(t).is_empty());
    assert_eq!(host_network(), before, "after Ctrl-C");
}

#[test]
fn without_privilege_netns_says_what_it_needs_and_the_rest_runs() {
    if !util::can_make_netns() {
        return;
    }
    // Drop to nobody with no capabilities, as an unprivileged user would run.
    let nobody = |args: &[&str]| {
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
            ])
            .arg(env!("CARGO_BIN_EXE_sockbench"))
            .args(args)
            .args(QUICK)
            .env("TMPDIR", "/tmp")
            .output()
            .unwrap()
    };
    let out = nobody(&["latency", "--netns", "veth", "-t", "tcp4"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "bad input: {err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("--netns veth") && err.contains("CAP_SYS_ADMIN"),
        "{err}"
    );
    let out = nobody(&["latency", "-t", "tcp4,uds-stream"]);
    assert!(
        out.status.success(),
        "without --netns it runs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
