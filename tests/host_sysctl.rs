//! Host-wide sysctls, only with `--allow-host-sysctl`: in force around
//! each trial of their cases, put back after the run and on every exit path
//! (error, SIGTERM, SIGKILL through the reaper), journaled first, and a
//! journal left by a run that could not restore is restored by the next run
//! or `sockbench restore-sysctl`. The tests change `net.core.busy_poll`
//! (socket busy polling, 0 by default) and hold a lock: they share the host
//! value and the journal.

mod util;

use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use util::{QUICK, bin, leftovers, private_tmp, run};

const KNOB: &str = "/proc/sys/net/core/busy_poll";
const JOURNAL: &str = "/run/sockbench/host-sysctl.json";

static HOST: Mutex<()> = Mutex::new(());

fn value() -> String {
    std::fs::read_to_string(KNOB).unwrap().trim().to_string()
}

fn root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("not root: host sysctls cannot be written; skipped");
    false
}

/// Start a 4 s run that sets busy_poll to 23 and 37 around its trials,
/// and wait until one of them is in force.
fn start_run(tmp: &std::path::Path) -> std::process::Child {
    let child = bin()
        .args([
            "latency",
            "-t",
            "uds-stream",
            "-s",
            "64",
            "--sysctl",
            "net.core.busy_poll=23,37",
            "--allow-host-sysctl",
            "-d",
            "4s",
            "--trials",
            "4",
            "--format",
            "json",
            "--progress",
            "never",
            "-q",
        ])
        .env("TMPDIR", tmp)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !["23", "37"].contains(&value().as_str()) {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the run never set busy_poll"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        std::path::Path::new(JOURNAL).exists(),
        "journaled before the change"
    );
    child
}

/// Wait (bounded) until the host value is back to `want` and the journal is gone.
fn restored(want: &str, within: Duration) {
    let t0 = Instant::now();
    while value() != want || std::path::Path::new(JOURNAL).exists() {
        assert!(
            t0.elapsed() < within,
            "not restored: busy_poll {} (want {want}), journal there: {}",
            value(),
            std::path::Path::new(JOURNAL).exists()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // And it stays so: no thread of the run writes after the restore.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(value(), want, "a value was written after the restore");
}

#[test]
fn a_host_sysctl_is_in_force_during_its_trials_and_restored_on_every_exit() {
    if !root() {
        return;
    }
    let _lock = HOST.lock().unwrap_or_else(|e| e.into_inner());
    let original = value();
    let tmp = private_tmp();

    // A run to the end: both values seen in force, the original back after.
    let child = start_run(tmp.path());
    let mut seen = std::collections::HashSet::new();
    let t0 = Instant::now();
    let mut child = child;
    while child.try_wait().unwrap().is_none() && t0.elapsed() < Duration::from_secs(30) {
        seen.insert(value());
        std::thread::sleep(Duration::from_micros(500));
    }
    let out = util::wait_output(child, Duration::from_secs(30));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(seen.contains("23") && seen.contains("37"), "seen {seen:?}");
    restored(&original, Duration::from_secs(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut in_force: Vec<&str> = doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["sysctls"][0].as_str().unwrap())
        .collect();
    in_force.sort();
    assert_eq!(in_force, ["net.core.busy_poll=23", "net.core.busy_poll=37"]);

    // SIGTERM mid-run: exit 130, restored.
    let child = start_run(tmp.path());
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let out = util::wait_output(child, Duration::from_secs(5));
    assert_eq!(out.status.code(), Some(130));
    restored(&original, Duration::from_secs(1));

    // SIGKILL mid-run: nothing in the process can run; the reaper restores.
    let child = start_run(tmp.path());
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    let _ = util::wait_output(child, Duration::from_secs(5));
    restored(&original, Duration::from_secs(5));
    assert!(leftovers(tmp.path()).is_empty());
}

#[test]
fn a_journal_left_by_a_killed_run_is_restored_first_and_said_so() {
    if !root() {
        return;
    }
    let _lock = HOST.lock().unwrap_or_else(|e| e.into_inner());
    let original = value();
    let tmp = private_tmp();
    // A journal as a killed run leaves it: its pid gone, the value changed.
    let dead = {
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    };
    let leave = |pid: u32| {
        std::fs::create_dir_all("/run/sockbench").unwrap();
        let j = serde_json::json!({"pid": pid, "originals": [[KNOB, original]]});
        std::fs::write(JOURNAL, j.to_string()).unwrap();
        std::fs::write(KNOB, "41").unwrap();
    };
    leave(dead);
    let out = run(tmp.path(), &["restore-sysctl"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("pid {dead}"))
            && err.contains(&format!("net.core.busy_poll={original}")),
        "{err}"
    );
    restored(&original, Duration::from_secs(1));
    let out = run(tmp.path(), &["restore-sysctl"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to restore"));

    // A run with host sysctls restores such a journal before its own work.
    leave(dead);
    let mut args = vec![
        "latency",
        "-t",
        "uds-stream",
        "--sysctl",
        "net.core.busy_poll=23",
        "--allow-host-sysctl",
    ];
    args.extend(QUICK);
    let out = run(tmp.path(), &args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("restored host sysctls left changed"), "{err}");
    restored(&original, Duration::from_secs(1));

    // A journal of a sockbench that still runs (here: this test) is not touched.
    leave(std::process::id());
    let out = run(tmp.path(), &["restore-sysctl"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("still")
            || String::from_utf8_lossy(&out.stderr).contains("running")
    );
    assert_eq!(value(), "41");
    std::fs::write(KNOB, &original).unwrap();
    std::fs::remove_file(JOURNAL).unwrap();
}

#[test]
fn host_sysctl_refusals_are_one_line_and_change_nothing() {
    if !root() {
        return;
    }
    let _lock = HOST.lock().unwrap_or_else(|e| e.into_inner());
    let original = value();
    let tmp = private_tmp();
    for (args, want) in [
        (
            vec!["--sysctl", "net.core.busy_poll=23"],
            vec!["net.core.busy_poll", "host-wide", "--allow-host-sysctl"],
        ),
        (
            vec![
                "--sysctl",
                "net.core.busy_poll=23,abc",
                "--allow-host-sysctl",
            ],
            vec!["net.core.busy_poll=abc", "refuses"],
        ),
        (
            vec!["--allow-host-sysctl"],
            vec!["--allow-host-sysctl", "--sysctl"],
        ),
        (
            vec![
                "--sysctl",
                "net.core.busy_poll=23",
                "--allow-host-sysctl",
                "--pairs",
                "2",
            ],
            vec!["--pairs", "2"],
        ),
    ] {
        let out = util::assert_refused(
            tmp.path(),
            &[&["latency"][..], &args, QUICK].concat(),
            &want,
        );
        assert!(out.stdout.is_empty());
        assert_eq!(value(), original, "{args:?}: the host's value");
        assert!(
            !std::path::Path::new(JOURNAL).exists(),
            "{args:?}: no journal left"
        );
    }
    assert!(leftovers(tmp.path()).is_empty());
}
