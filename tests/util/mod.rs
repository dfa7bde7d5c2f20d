//! Shared test helpers: CPU choice, pair specs, and running the binary with
//! a private TMPDIR so leftover socket files can be seen.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use sockbench::spec::Mode;
use sockbench::spec::{TransportKind, Wait};
use sockbench::transport::TransportOpts;
use sockbench::workload::PairSpec;

/// (server CPU, client CPU): two different CPUs when there are two, else
/// the same one (printed, since that is the same-core case).
pub fn cpus() -> (usize, usize) {
    let c = sockbench::affinity::available();
    match c.as_slice() {
        [a, b, ..] => (*a, *b),
        [a] => {
            eprintln!("only one CPU available: server and client share CPU {a}");
            (*a, *a)
        }
        [] => panic!("no CPU available to this process"),
    }
}

pub fn opts() -> TransportOpts {
    TransportOpts {
        nodelay: true,
        timeout: Duration::from_secs(5),
        wait: Wait::Block,
        ..TransportOpts::default()
    }
}

/// A ping-pong pair spec with the server on the first test CPU.
pub fn spec(kind: TransportKind, size: usize, mode: Mode) -> PairSpec {
    PairSpec::echo(kind, size, opts(), mode, cpus().0)
}

/// Sizes every transport must carry: 1, 63, 64 KiB (the IPv4 UDP limit for
/// udp4) and, for streams, 1 MiB.
pub fn sizes(kind: TransportKind) -> Vec<usize> {
    let big = if kind == TransportKind::Udp4 {
        sockbench::plan::UDP4_MAX
    } else {
        64 << 10
    };
    let mut v = vec![1, 63, big];
    if kind.is_stream() {
        v.push(1 << 20);
    }
    v
}

/// A tiny real run: 40 timed operations in 2 trials, almost no warm-up.
pub const QUICK: &[&str] = &[
    "-n",
    "40",
    "--trials",
    "2",
    "--warmup",
    "10",
    "--warmup-time",
    "0s",
];

/// A fresh empty directory to use as TMPDIR for one run of the binary.
pub fn private_tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sbtest-")
        .tempdir()
        .unwrap()
}

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sockbench"))
}

/// Run `sockbench args...` with TMPDIR=tmp.
pub fn run(tmp: &Path, args: &[&str]) -> Output {
    bin().args(args).env("TMPDIR", tmp).output().unwrap()
}

/// Run `sockbench args... --format json` in a private TMPDIR: it succeeds,
/// leaves nothing behind, and prints the report returned.
pub fn json_run(args: &[&str]) -> serde_json::Value {
    let tmp = private_tmp();
    let args: Vec<&str> = args.iter().copied().chain(["--format", "json"]).collect();
    let out = run(tmp.path(), &args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(leftovers(tmp.path()).is_empty());
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The codes of a report's warnings (`summary.json`'s `warnings`).
pub fn warning_codes(doc: &serde_json::Value) -> Vec<&str> {
    doc["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["code"].as_str().unwrap())
        .collect()
}

/// Run `sockbench args...` with TMPDIR=tmp and check it is refused as bad
/// input: exit 2 and one line on stderr holding every one of `want`.
pub fn assert_refused(tmp: &Path, args: &[&str], want: &[&str]) -> Output {
    let out = run(tmp, args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{args:?}: one line: {err}"
    );
    for w in want {
        assert!(err.contains(w), "{args:?}: {err:?} lacks {w:?}");
    }
    out
}

/// Start `sockbench args...` in the background with TMPDIR=tmp, stdout to
/// `stdout` and stderr piped, and the default dispositions of the signals
/// tests send (a suite started in the background by a non-interactive
/// shell inherits SIGINT and SIGQUIT ignored, and so would sockbench).
pub fn spawn_run(tmp: &Path, args: &[&str], stdout: std::process::Stdio) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    let mut cmd = bin();
    cmd.args(args)
        .env("TMPDIR", tmp)
        .stdout(stdout)
        .stderr(std::process::Stdio::piped());
    // SAFETY: between fork and exec the closure only calls signal(2), which
    // is async-signal-safe, with constant arguments.
    unsafe {
        cmd.pre_exec(|| {
            for sig in [libc::SIGINT, libc::SIGQUIT, libc::SIGUSR1, libc::SIGALRM] {
                libc::signal(sig, libc::SIG_DFL);
            }
            Ok(())
        });
    }
    cmd.spawn().unwrap()
}

/// Wait until `ready()` holds, at most `within`; past it, fail naming `what`.
pub fn wait_until(what: &str, within: Duration, mut ready: impl FnMut() -> bool) {
    let t0 = std::time::Instant::now();
    while !ready() {
        assert!(t0.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Wait for `child` at most `within` and return what it printed; past the
/// bound, kill and reap it and fail. (Its output is read after it exits:
/// for runs that print less than a pipe holds.)
pub fn wait_output(mut child: std::process::Child, within: Duration) -> Output {
    let t0 = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > within {
            let _ = child.kill();
            let _ = child.wait();
            panic!("sockbench did not end within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

/// Entries left in a directory.
pub fn leftovers(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

/// Children of process `pid`, forked by any of its threads (from /proc).
pub fn children(pid: u32) -> Vec<u32> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten();
    tasks
        .flat_map(|t| {
            std::fs::read_to_string(t.path().join("children"))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|s| s.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Forked servers of process `pid` (their name is `sb-server`).
pub fn servers(pid: u32) -> Vec<u32> {
    children(pid)
        .into_iter()
        .filter(|c| {
            std::fs::read_to_string(format!("/proc/{c}/comm"))
                .is_ok_and(|n| n.trim() == "sb-server")
        })
        .collect()
}

/// Whether this process may make network namespaces (root); says so on
/// stderr when it may not, so a test that needs them can pass as skipped.
pub fn can_make_netns() -> bool {
    match sockbench::sys::netns::create() {
        Ok(_) => true,
        Err(e) => {
            eprintln!("skipping: cannot make a network namespace here ({e}); run as root");
            false
        }
    }
}

/// Every transport this process can set up: all of them, but tcp4-sockmap
/// only where it may load BPF programs (root); says so when it may not.
pub fn transports() -> Vec<TransportKind> {
    let bpf = sockbench::sys::bpf::Redirect::probe().is_ok();
    if !bpf {
        eprintln!("skipping tcp4-sockmap: no BPF sockmap here (run as root)");
    }
    TransportKind::ALL
        .into_iter()
        .filter(|&k| bpf || k != TransportKind::Tcp4Sockmap)
        .collect()
}

/// Run `sockbench args...` as user `nobody` (65534) with TMPDIR=/tmp, via
/// util-linux's setpriv; the caller must be root.
pub fn as_nobody(args: &[&str]) -> Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_sockbench"))
        .args(args)
        .env("TMPDIR", "/tmp")
        .output()
        .unwrap()
}
