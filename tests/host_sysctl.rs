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
    let args = [
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
    ];
    let child = util::spawn_run(tmp, &args, Stdio::piped());
    util::wait_until("busy_poll set by the run", Duration::from_secs(20), || {
        ["23", "37"].contains(&value().as_str())
    });
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

/// A journal as a killed run leaves it: written by hand (root's, 0600),
/// naming `pid`, with busy_poll changed to 41.
fn leave_journal(pid: u32, original: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all("/run/sockbench").unwrap();
    let _ = std::fs::remove_file(JOURNAL);
    let j = serde_json::json!({"pid": pid, "token": 1, "originals": [[KNOB, original]]});
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(JOURNAL)
        .unwrap();
    std::io::Write::write_all(&mut f, j.to_string().as_bytes()).unwrap();
    std::fs::write(KNOB, "41").unwrap();
}

/// Who holds a journal is its lock, never its pid: one naming a live
/// process (pid 1, this test) but held by nobody is restored by
/// `restore-sysctl` and by the next run, each saying so; one whose lock a
/// live process holds is left alone.
#[test]
fn a_journal_left_by_a_killed_run_is_restored_first_and_said_so() {
    if !root() {
        return;
    }
    let _lock = HOST.lock().unwrap_or_else(|e| e.into_inner());
    let original = value();
    let tmp = private_tmp();
    for pid in [1, std::process::id()] {
        leave_journal(pid, &original);
        let out = run(tmp.path(), &["restore-sysctl"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(
            err.contains(&format!("pid {pid}"))
                && err.contains(&format!("net.core.busy_poll={original}")),
            "{err}"
        );
        restored(&original, Duration::from_secs(1));
    }
    let out = run(tmp.path(), &["restore-sysctl"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to restore"));

    // Any run, host sysctls or not, restores such a journal before its own
    // work and says so.
    for extra in [
        &["--sysctl", "net.core.busy_poll=23", "--allow-host-sysctl"][..],
        &[][..],
    ] {
        leave_journal(1, &original);
        let args = [&["latency", "-t", "uds-stream"][..], extra, QUICK].concat();
        let out = run(tmp.path(), &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{extra:?}: {err}");
        assert!(
            err.lines()
                .next()
                .is_some_and(|l| l.starts_with("restored host sysctls left changed")),
            "{extra:?}: said first: {err}"
        );
        restored(&original, Duration::from_secs(1));
    }

    // A journal whose lock a live process holds (here: this test) is not
    // touched, and a run that wants host sysctls is refused.
    leave_journal(1, &original);
    let held = nix::fcntl::Flock::lock(
        std::fs::File::open(JOURNAL).unwrap(),
        nix::fcntl::FlockArg::LockExclusiveNonblock,
    )
    .unwrap();
    let out = run(tmp.path(), &["restore-sysctl"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("running sockbench"));
    let mut args = vec![
        "latency",
        "-t",
        "uds-stream",
        "--sysctl",
        "net.core.busy_poll=23",
        "--allow-host-sysctl",
    ];
    args.extend(QUICK);
    util::assert_refused(tmp.path(), &args, &["running sockbench", "pid 1"]);
    assert_eq!(value(), "41");
    drop(held);
    std::fs::write(KNOB, &original).unwrap();
    std::fs::remove_file(JOURNAL).unwrap();
    assert!(leftovers(tmp.path()).is_empty());
}

/// What is at the journal's name when it is not a journal sockbench wrote
/// (a FIFO, a link, a directory, a file naming something outside
/// /proc/sys/net) is never opened blocking, followed or written through:
/// one line naming the file, within a bound.
#[test]
fn a_journal_that_is_not_one_is_named_and_never_followed() {
    if !root() {
        return;
    }
    let _lock = HOST.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = private_tmp();
    let victim = tmp.path().join("victim");
    std::fs::write(&victim, "keep").unwrap();
    std::fs::create_dir_all("/run/sockbench").unwrap();
    type Make<'a> = Box<dyn Fn() + 'a>;
    let cases: Vec<(&str, Make)> = vec![
        (
            "FIFO",
            Box::new(|| nix::unistd::mkfifo(JOURNAL, nix::sys::stat::Mode::S_IRWXU).unwrap()),
        ),
        (
            "symbolic link",
            Box::new(|| std::os::unix::fs::symlink(&victim, JOURNAL).unwrap()),
        ),
        (
            "directory",
            Box::new(|| std::fs::create_dir(JOURNAL).unwrap()),
        ),
        (
            "not a network sysctl",
            Box::new(|| {
                let j = serde_json::json!({"pid": 1, "originals": [[victim.to_str().unwrap(), "pwned"]]});
                std::fs::write(JOURNAL, j.to_string()).unwrap();
            }),
        ),
    ];
    for (what, make) in cases {
        let _ = std::fs::remove_file(JOURNAL);
        let _ = std::fs::remove_dir(JOURNAL);
        make();
        let child = bin()
            .arg("restore-sysctl")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = util::wait_output(child, Duration::from_secs(5));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{what}: {err}");
        assert!(err.contains(JOURNAL) && err.contains(what), "{what}: {err}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep", "{what}");
    }
    let _ = std::fs::remove_file(JOURNAL);
    let _ = std::fs::remove_dir(JOURNAL);
}

/// Processes whose parent is `pid`, and theirs, named `comm`.
fn descendants_named(pid: u32, comm: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for c in util::children(p) {
            if std::fs::read_to_string(format!("/proc/{c}/comm")).is_ok_and(|n| n.trim() == comm) {
                out.push(c);
            }
            todo.push(c);
        }
    }
    out
}

/// The reaper killed alone (a script that signals "the child"): the run
/// does not go on without its safety net; it restores the host, removes
/// what it made and stops with one line, at once.
#[test]
fn a_killed_reaper_stops_the_run_and_restores_the_host() {
    if !root() {
        return;
    }
    let _lock = HOST.lock().unwrap_or_else(|e| e.into_inner());
    let original = value();
    let tmp = private_tmp();
    let child = start_run(tmp.path());
    let reaper = descendants_named(child.id(), "sb-reaper");
    assert_eq!(reaper.len(), 1, "one reaper: {reaper:?}");
    let t0 = Instant::now();
    kill(Pid::from_raw(reaper[0] as i32), Signal::SIGKILL).unwrap();
    let out = util::wait_output(child, Duration::from_secs(3));
    let took = t0.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(took < Duration::from_secs(1), "at once: {took:?}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    assert!(
        lines[0].contains("reaper")
            && lines[0].contains("SIGKILL")
            && lines[0].contains("restored"),
        "{err}"
    );
    restored(&original, Duration::from_secs(1));
    assert!(leftovers(tmp.path()).is_empty());
}

/// A kill of the whole process group takes the reaper too: the value
/// stays changed, and the next run of any kind restores it before it
/// measures and says so.
#[test]
fn a_process_group_kill_is_restored_and_said_so_by_the_next_run() {
    if !root() {
        return;
    }
    let _lock = HOST.lock().unwrap_or_else(|e| e.into_inner());
    let original = value();
    let tmp = private_tmp();
    let mut cmd = bin();
    cmd.args([
        "latency",
        "-t",
        "uds-stream",
        "--sysctl",
        "net.core.busy_poll=23",
        "--allow-host-sysctl",
        "-d",
        "4s",
        "--trials",
        "4",
        "-q",
    ])
    .env("TMPDIR", tmp.path())
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().unwrap();
    let t0 = Instant::now();
    while value() != "23" {
        assert!(t0.elapsed() < Duration::from_secs(20), "never set");
        std::thread::sleep(Duration::from_millis(1));
    }
    nix::sys::signal::killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        std::path::Path::new(JOURNAL).exists(),
        "the group kill took the reaper: the journal stays"
    );
    let mut args = vec!["latency", "-t", "uds-stream"];
    args.extend(QUICK);
    let out = run(tmp.path(), &args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("restored host sysctls left changed")
            && err.contains(&format!("net.core.busy_poll={original}")),
        "{err}"
    );
    restored(&original, Duration::from_secs(1));
    // The group kill left the directories to nobody; the next runs' own
    // are gone.
    for e in leftovers(tmp.path()) {
        let _ = std::fs::remove_dir_all(e);
    }
}

/// A SIGKILL at any moment of a host-sysctl run with --out, from its
/// first milliseconds on (before and while it makes its directories,
/// journals and first writes the host): the reaper already knows of all
/// of it, so the host's value comes back and nothing is left.
#[test]
fn a_sigkill_at_any_moment_leaves_the_host_and_the_disk_as_they_were() {
    if !root() {
        return;
    }
    let _lock = HOST.lock().unwrap_or_else(|e| e.into_inner());
    let original = value();
    let tmp = private_tmp();
    let outs = private_tmp();
    let mut changed_when_killed = 0;
    for i in 0..30u64 {
        let out = outs.path().join(format!("r{i}"));
        let mut child = bin()
            .args([
                "latency",
                "-t",
                "uds-stream",
                "--sysctl",
                "net.core.busy_poll=23",
                "--allow-host-sysctl",
                "-d",
                "2s",
                "--trials",
                "2",
                "-q",
                "--out",
                out.to_str().unwrap(),
            ])
            .env("TMPDIR", tmp.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(1000 + 1500 * i));
        changed_when_killed += usize::from(value() == "23");
        kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
        child.wait().unwrap();
        restored(&original, Duration::from_secs(5));
        let t0 = Instant::now();
        while !(leftovers(tmp.path()).is_empty() && leftovers(outs.path()).is_empty()) {
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "killed after {} µs: left {:?} {:?}",
                1000 + 1500 * i,
                leftovers(tmp.path()),
                leftovers(outs.path())
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    // The kills span the run's first 45 ms: some land while the value is
    // in force, so the host's half of the promise is exercised too.
    assert!(
        changed_when_killed > 0,
        "no kill landed while busy_poll was set"
    );
    assert!(
        std::fs::read_dir("/run/sockbench")
            .map(|d| d.count())
            .unwrap_or(0)
            == 0,
        "nothing left in /run/sockbench (a journal, or one being written)"
    );
}

/// In a PID namespace of its own, the end of the namespace's first
/// process kills every process in it, the reaper included, and sockbench's
/// pid says nothing to the host: --allow-host-sysctl is refused there,
/// whether sockbench is the namespace's first process or runs under a
/// shell, before anything changes.
#[test]
fn a_run_in_a_pid_namespace_is_refused_before_it_changes_anything() {
    if !root() {
        return;
    }
    let _lock = HOST.lock().unwrap_or_else(|e| e.into_inner());
    let original = value();
    let tmp = private_tmp();
    let sb = env!("CARGO_BIN_EXE_sockbench");
    let args = "latency -t uds-stream --sysctl net.core.busy_poll=23 --allow-host-sysctl -d 4s --trials 2 -q";
    for cmd in [
        vec!["-pf".to_string(), sb.to_string()],
        vec![
            "-pf".to_string(),
            "sh".to_string(),
            "-c".to_string(),
            format!("{sb} \"$@\"; exit $?"),
            "sh".to_string(),
        ],
    ] {
        let child = std::process::Command::new("unshare")
            .args(&cmd)
            .args(args.split(' '))
            .env("TMPDIR", tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = util::wait_output(child, Duration::from_secs(10));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd:?}: {err}");
        assert!(err.contains("PID namespace"), "{err}");
        assert!(!std::path::Path::new(JOURNAL).exists());
        assert_eq!(value(), original);
        assert!(leftovers(tmp.path()).is_empty());
    }
}

/// Values are recorded as the kernel holds them ("1 2" is 1, 0x10 is 16),
/// two values the kernel holds alike are one value given twice, and two
/// sysctls ending alike are told apart by their whole names.
#[test]
fn sysctl_values_are_recorded_as_the_kernel_holds_them() {
    if !root() {
        return;
    }
    let _lock = HOST.lock().unwrap_or_else(|e| e.into_inner());
    let original = value();
    let doc = util::json_run(
        &[
            &[
                "latency",
                "-t",
                "uds-stream",
                "--sysctl",
                "net.core.busy_poll=1 2,0x10",
                "--allow-host-sysctl",
            ][..],
            QUICK,
        ]
        .concat(),
    );
    let mut in_force: Vec<&str> = doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["sysctls"][0].as_str().unwrap())
        .collect();
    in_force.sort();
    assert_eq!(in_force, ["net.core.busy_poll=1", "net.core.busy_poll=16"]);
    assert_eq!(value(), original);
    let tmp = private_tmp();
    util::assert_refused(
        tmp.path(),
        &[
            &[
                "latency",
                "--sysctl",
                "net.core.busy_poll=16,0x10",
                "--allow-host-sysctl",
            ][..],
            QUICK,
        ]
        .concat(),
        &["the same value", "16"],
    );
    util::assert_refused(
        tmp.path(),
        &[
            &["latency", "--sysctl", "net.ipv4.tcp_autocorking=1,01"][..],
            QUICK,
        ]
        .concat(),
        &["the same value"],
    );
    assert_eq!(value(), original);
    assert!(!std::path::Path::new(JOURNAL).exists());
    let doc = util::json_run(
        &[
            &[
                "latency",
                "-t",
                "tcp4",
                "--sysctl",
                "net.ipv4.conf.all.rp_filter=0,1",
                "--sysctl",
                "net.ipv4.conf.lo.rp_filter=0,1",
            ][..],
            QUICK,
        ]
        .concat(),
    );
    assert_eq!(doc["cases"].as_array().unwrap().len(), 4);
    let text = doc.to_string();
    assert!(
        text.contains("net.ipv4.conf.all.rp_filter=1")
            && text.contains("net.ipv4.conf.lo.rp_filter=1"),
        "{text}"
    );
}

/// Without privilege: `restore-sysctl` says what it needs, naming the
/// journal, and a run says a journal exists (it may measure under it).
#[test]
fn without_privilege_restore_sysctl_says_it_needs_root() {
    if !root() {
        return;
    }
    let _lock = HOST.lock().unwrap_or_else(|e| e.into_inner());
    let original = value();
    leave_journal(1, &original);
    let nobody = util::as_nobody;
    let out = nobody(&["restore-sysctl"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("root") && err.contains(JOURNAL), "{err}");
    let out = nobody(&[&["latency", "-t", "uds-stream"][..], QUICK].concat());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("warning") && err.contains(JOURNAL), "{err}");
    assert_eq!(value(), "41", "nobody cannot restore");
    let out = run(std::path::Path::new("/tmp"), &["restore-sysctl"]);
    assert!(out.status.success());
    assert_eq!(value(), original);
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
