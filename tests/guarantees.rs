//! The README's guarantees tried the way they break on a hostile machine:
//! a full or read-only file system, a mount point, odd names, SIGKILL and
//! other deadly signals, another user racing for our directories, a
//! foreign process connecting to our listeners, and stdout or stderr that
//! cannot be written. Each test is named after the promise it keeps.
//!
//! Mounts and a second user need root; without it those tests say so on
//! stderr and pass. Mounts are made inside a private mount namespace
//! (`unshare -m`), so none outlives its test.

mod util;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use util::{QUICK, leftovers, private_tmp, run};

/// Whether this process may make a private mount namespace with mounts.
fn can_mount() -> bool {
    let ok = Command::new("unshare")
        .args([
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            "mount -t tmpfs none /mnt",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipping: cannot make a mount namespace here; run as root");
    }
    ok
}

/// `sockbench ARGS` inside a private mount namespace, after `setup` (shell).
fn in_mount_ns(tmp: &Path, setup: &str, args: &[&str]) -> std::process::Output {
    let script = format!("{setup} && exec \"$@\"");
    Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script, "sh"])
        .arg(env!("CARGO_BIN_EXE_sockbench"))
        .args(args)
        .env("TMPDIR", tmp)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Bad places for the results are bad input, found before any timed work:
/// a full file system, an empty mount point (rename cannot replace it),
/// `.`, a name too long for a file name. Exit 2, one line, nothing left.
#[test]
fn results_that_could_not_be_written_are_refused_before_measuring() {
    let tmp = private_tmp();
    let long = "n".repeat(256);
    let mut cases: Vec<(Vec<String>, &str)> = vec![
        (vec![".".into()], "names no new directory"),
        (vec![tmp.path().join(&long).display().to_string()], "255"),
        (
            vec![tmp.path().join("a/..").display().to_string()],
            "names no new directory",
        ),
        (
            vec![format!("{}/.", tmp.path().join("empty").display())],
            "names no new directory",
        ),
        (
            vec![format!("{}/./", tmp.path().join("empty").display())],
            "names no new directory",
        ),
    ];
    std::fs::create_dir(tmp.path().join("empty")).unwrap();
    let mounts = can_mount();
    if mounts {
        cases.push((vec!["@full".into()], "cannot hold the results"));
        cases.push((vec!["@mount".into()], "mount point"));
    }
    for (out, needle) in cases {
        let t0 = Instant::now();
        let mut args = vec!["latency", "-t", "uds-stream", "-d", "10s", "--out"];
        let o = match out[0].as_str() {
            "@full" => {
                // A 64 KiB tmpfs, filled but for a few blocks.
                let m = tmp.path().join("full");
                std::fs::create_dir_all(&m).unwrap();
                let setup = format!(
                    "mount -t tmpfs -o size=64k none {0} && (dd if=/dev/zero of={0}/fill bs=4k count=14 2>/dev/null; true)",
                    m.display()
                );
                args.push("");
                let target = m.join("res").display().to_string();
                let mut a: Vec<&str> = args[..args.len() - 1].to_vec();
                a.push(&target);
                in_mount_ns(tmp.path(), &setup, &a)
            }
            "@mount" => {
                let m = tmp.path().join("mnt");
                std::fs::create_dir_all(&m).unwrap();
                let setup = format!("mount -t tmpfs none {}", m.display());
                let target = m.display().to_string();
                let mut a = args.clone();
                a.push(&target);
                in_mount_ns(tmp.path(), &setup, &a)
            }
            path => {
                args.push(path);
                run(tmp.path(), &args)
            }
        };
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{out:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{out:?}: {err}");
        assert!(
            err.contains("--out") && err.contains(needle),
            "{out:?}: {err}"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{out:?}: refused before measuring"
        );
        let left: Vec<PathBuf> = leftovers(tmp.path())
            .into_iter()
            .filter(|p| {
                !["full", "mnt", "empty"].contains(&p.file_name().unwrap().to_str().unwrap())
            })
            .collect();
        assert!(left.is_empty(), "{out:?}: left {left:?}");
    }
}

/// Names that are fine are fine whatever they look like: a final name of
/// 250 bytes (the staging name does not grow with it), a name that is not
/// UTF-8, a parent that already holds other runs' hidden entries.
#[test]
fn odd_but_valid_result_names_are_written() {
    let tmp = private_tmp();
    std::fs::create_dir(tmp.path().join(".sockbench-XXXXXX")).unwrap();
    std::fs::write(tmp.path().join(".res.partial-1"), "someone's").unwrap();
    let long = tmp.path().join("r".repeat(250));
    let odd = tmp.path().join(OsStr::from_bytes(b"res-\xff\xfe"));
    for out in [&long, &odd] {
        let mut args: Vec<&OsStr> = ["latency", "-t", "uds-stream,tcp4"]
            .iter()
            .map(OsStr::new)
            .collect();
        args.extend(QUICK.iter().map(OsStr::new));
        args.extend([OsStr::new("--out"), out.as_os_str()]);
        let o = util::bin()
            .args(&args)
            .env("TMPDIR", tmp.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "{out:?}: {}", text(&o.stderr));
        assert!(out.join("summary.json").is_file(), "{out:?}");
    }
    let mut names: Vec<String> = leftovers(tmp.path())
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names.len(),
        4,
        "only the two results and the two foreign entries: {names:?}"
    );
    assert_eq!(
        std::fs::read_to_string(tmp.path().join(".res.partial-1")).unwrap(),
        "someone's"
    );
}

/// When the results cannot be written after the run (here: the file
/// system turns read-only mid-run), nothing measured is lost: the table
/// is on stdout, one line names a kept copy, and the status is 1.
#[test]
fn a_finished_measurement_is_never_lost() {
    if !can_mount() {
        return;
    }
    let tmp = private_tmp();
    let m = tmp.path().join("mnt");
    std::fs::create_dir(&m).unwrap();
    let target = m.join("res").display().to_string();
    // The file system turns read-only 1.5 s into a 3 s run.
    let script = format!(
        "mount -t tmpfs none {0} && ( sleep 1.5; mount -o remount,ro {0} ) & exec \"$@\"",
        m.display()
    );
    let o = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script, "sh"])
        .arg(env!("CARGO_BIN_EXE_sockbench"))
        .args([
            "latency",
            "-t",
            "uds-stream,tcp4",
            "-d",
            "3s",
            "--out",
            &target,
        ])
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        out.contains("uds-stream") && out.contains("tcp4"),
        "the table is on stdout: {out}"
    );
    let line = err
        .lines()
        .find(|l| l.starts_with("error: could not write --out"))
        .unwrap_or_else(|| panic!("one line says what failed: {err}"));
    let kept = line.rsplit("kept in ").next().unwrap();
    assert!(Path::new(kept).join("summary.json").is_file(), "{line}");
    assert!(
        Path::new(kept).starts_with(tmp.path()),
        "the copy is under TMPDIR: {line}"
    );
}

/// `prlimit --fsize=BYTES sockbench ARGS` (util-linux), with stdout to
/// `stdout`.
fn under_file_size_limit(
    tmp: &Path,
    bytes: u64,
    args: &[&str],
    stdout: Stdio,
) -> std::process::Child {
    Command::new("prlimit")
        .arg(format!("--fsize={bytes}:{bytes}"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_sockbench"))
        .args(args)
        .env("TMPDIR", tmp)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A file size limit (`ulimit -f`) never costs a measurement: one too
/// small for the results, on a file stdout or on --out, is bad input
/// before anything is measured (exit 2, one line, nothing left); a write
/// that runs past it anyway (stdout appended to a file that grew meanwhile)
/// is a write error like any other, with the results kept under $TMPDIR,
/// never a death by SIGXFSZ.
#[test]
fn a_file_size_limit_never_costs_a_measurement() {
    let tmp = private_tmp();
    let outs = private_tmp();
    let file = outs.path().join("out.json");
    let long = ["latency", "-t", "uds-stream", "-d", "10s", "-q"];
    let r = outs.path().join("r");
    let refusals: [(u64, Vec<&str>, Stdio, &str); 2] = [
        (
            4096,
            [&long[..], &["--format", "json"]].concat(),
            Stdio::from(std::fs::File::create(&file).unwrap()),
            "--format json",
        ),
        (
            1024,
            [&long[..], &["--out", r.to_str().unwrap()]].concat(),
            Stdio::null(),
            "--out",
        ),
    ];
    for (limit, args, stdout, flag) in refusals {
        let t0 = Instant::now();
        let child = under_file_size_limit(tmp.path(), limit, &args, stdout);
        let o = util::wait_output(child, Duration::from_secs(10));
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{flag}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{flag}: {err}");
        assert!(err.contains(flag) && err.contains("ulimit -f"), "{err}");
        assert!(t0.elapsed() < Duration::from_secs(5), "before measuring");
        assert!(leftovers(tmp.path()).is_empty());
        assert_eq!(leftovers(outs.path()), vec![file.clone()]);
        assert_eq!(std::fs::metadata(&file).unwrap().len(), 0);
    }
    // stdout appended to a file that another writer fills to the limit
    // while the run measures.
    let limit: u64 = 1 << 20;
    let appended = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap();
    let args = [
        "latency",
        "-t",
        "uds-stream",
        "-d",
        "1s",
        "--trials",
        "2",
        "-q",
        "--format",
        "json",
    ];
    let child = under_file_size_limit(tmp.path(), limit, &args, Stdio::from(appended));
    std::thread::sleep(Duration::from_millis(300));
    {
        use std::io::Write;
        let mut other = std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap();
        other.write_all(&vec![b'x'; limit as usize - 10]).unwrap();
    }
    let o = util::wait_output(child, Duration::from_secs(30));
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let kept = err
        .split("kept in ")
        .nth(1)
        .unwrap_or_else(|| panic!("names a kept copy: {err}"))
        .trim();
    let summary = std::fs::read_to_string(Path::new(kept).join("summary.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(doc["cases"].as_array().unwrap().len(), 1);
    std::fs::remove_dir_all(kept).unwrap();
    assert!(leftovers(tmp.path()).is_empty());
}

/// Start `sockbench ARGS` with TMPDIR=`tmp`, wait until the run is under
/// way (a server or a socket directory exists), and return it.
fn start(tmp: &Path, args: &[&str]) -> std::process::Child {
    let child = util::spawn_run(tmp, args, Stdio::null());
    std::thread::sleep(Duration::from_millis(800));
    child
}

/// Wait until `dir` holds nothing (or `limit` passes).
fn emptied(dir: &Path, limit: Duration) -> Vec<PathBuf> {
    let t0 = Instant::now();
    loop {
        let left = leftovers(dir);
        if left.is_empty() || t0.elapsed() > limit {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Killed by a signal nothing in the process can handle (SIGKILL) or by
/// one it leaves at its default (SIGQUIT, SIGUSR1, SIGALRM), in the middle
/// of a run that holds listener socket files and a staging directory: the
/// reaper removes both moments later, and no server outlives the run.
#[test]
fn a_killed_run_leaves_nothing_behind() {
    use nix::sys::signal::Signal::{SIGALRM, SIGKILL, SIGQUIT, SIGUSR1};
    for (sig, mode) in [
        (SIGKILL, "thread"),
        (SIGKILL, "process"),
        (SIGQUIT, "thread"),
        (SIGUSR1, "process"),
        (SIGALRM, "thread"),
    ] {
        let tmp = private_tmp();
        let out = tmp.path().join("out");
        let out = out.to_str().unwrap();
        let mut child = start(
            tmp.path(),
            &[
                "connect",
                "-t",
                "uds-stream,uds-seqpacket,tcp4",
                "-d",
                "20s",
                "--mode",
                mode,
                "--out",
                out,
            ],
        );
        let servers = util::servers(child.id());
        assert!(
            leftovers(tmp.path()).len() >= 2,
            "{sig} {mode}: socket directory and staging directory exist: {:?}",
            leftovers(tmp.path())
        );
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
        let status = child.wait().unwrap();
        let mut err = String::new();
        let _ = std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err);
        assert!(
            status.code().is_none(),
            "{sig} {mode}: died by the signal, not {status}: {err}"
        );
        let left = emptied(tmp.path(), Duration::from_secs(3));
        assert!(left.is_empty(), "{sig} {mode}: left {left:?}");
        for s in servers {
            let t0 = Instant::now();
            while Path::new(&format!("/proc/{s}")).exists() && t0.elapsed() < Duration::from_secs(3)
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(
                !Path::new(&format!("/proc/{s}")).exists(),
                "{sig}: server {s} outlived the run"
            );
        }
    }
}

/// Results on stdout that cannot be written: a full device, a reader that
/// went away, a closed descriptor. Never a panic, never a silent success;
/// a reader that went away ends quietly. stderr that cannot be written does
/// not stop the run (its results still reach stdout).
#[test]
fn output_that_cannot_be_written_is_an_error_not_a_panic() {
    let tmp = private_tmp();
    let mut args = vec!["latency", "-t", "uds-stream"];
    args.extend(QUICK);
    let bin = env!("CARGO_BIN_EXE_sockbench");
    let sh = |redirect: &str| {
        let script = format!("\"$0\" \"$@\" {redirect}");
        Command::new("sh")
            .arg("-c")
            .arg(&script)
            .arg(bin)
            .args(&args)
            .env("TMPDIR", tmp.path())
            .output()
            .unwrap()
    };
    // stdout on a full device: status 1, one line, a copy kept and named.
    let o = sh(">/dev/full");
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("error: write stdout") && err.contains("kept in"),
        "{err}"
    );
    // A closed stdout: status 1 and a line saying so.
    let o = sh(">&-");
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("error: write stdout") && !err.contains("panicked"),
        "{err}"
    );
    // A reader that went away (`| true`): status 1, quietly.
    let mut child = Command::new(bin)
        .args(&args)
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away at once
    let o = child.wait_with_output().unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("error:"),
        "quiet: {err}"
    );
    // stderr on a full device: the run still succeeds and prints its results.
    let o = sh("2>/dev/full");
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o.stdout).contains("uds-stream"));
    // Only the copy kept for /dev/full and the one for the closed stdout.
    let kept = leftovers(tmp.path());
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(
        kept.iter().all(|k| k.join("summary.json").is_file()),
        "{kept:?}"
    );
}

/// The id of user `nobody`, if this process can act as it (root).
fn nobody() -> Option<u32> {
    let u = nix::unistd::User::from_name("nobody").ok().flatten()?;
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: a second user needs root");
        return None;
    }
    Some(u.uid.as_raw())
}

/// In a shared, sticky temporary directory (like /tmp), another user who
/// keeps trying to move sockbench's private directory away and put a link
/// in its place gets nowhere, and the run binds nothing outside it.
#[test]
fn another_user_cannot_swap_the_socket_directory() {
    use std::os::unix::fs::PermissionsExt;
    let Some(uid) = nobody() else { return };
    let tmp = private_tmp();
    let shared = tmp.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let decoy = tmp.path().join("decoy");
    std::fs::create_dir(&decoy).unwrap();
    // The other user: for 4 s, move every sockbench-* away and link its name elsewhere.
    let script = format!(
        "end=$(($(date +%s)+4)); while [ $(date +%s) -lt $end ]; do for d in {0}/sockbench-*; do \
         [ -L \"$d\" ] || [ -O \"$d\" ] && continue; mv \"$d\" \"$d.moved\" 2>/dev/null && echo MOVED; \
         ln -s {1} \"$d.x\" 2>/dev/null; done; done",
        shared.display(),
        decoy.display()
    );
    let attacker = Command::new("setpriv")
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={uid}"),
            "--clear-groups",
            "sh",
            "-c",
            &script,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut args = vec!["connect", "-t", "uds-stream,uds-seqpacket", "-d", "2s"];
    args.extend(["--warmup-time", "0s"]);
    let o = run(&shared, &args);
    let moved = text(&attacker.wait_with_output().unwrap().stdout);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        moved.is_empty(),
        "the other user moved a directory of sockbench's: {moved}"
    );
    assert!(
        leftovers(&decoy).is_empty(),
        "nothing was bound through a link"
    );
    let ours: Vec<PathBuf> = leftovers(&shared)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("sockbench-")
        })
        .filter(|p| !p.is_symlink())
        .collect();
    assert!(ours.is_empty(), "left {ours:?}");
}

/// Even if the socket directory's name is made to point elsewhere mid-run
/// (root can), sockbench binds, connects and unlinks only inside the
/// directory it made: it holds it by descriptor. A file of the same name
/// in the other place is left exactly as it was.
#[test]
fn the_socket_directory_is_held_by_descriptor_not_by_name() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: renaming a private directory under a run needs root");
        return;
    }
    let tmp = private_tmp();
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    for name in ["l0.sock", "l1.sock", "s0.sock"] {
        std::fs::write(elsewhere.join(name), "root's file").unwrap();
    }
    let child = util::bin()
        .args([
            "connect",
            "-t",
            "uds-stream,uds-seqpacket",
            "-d",
            "3s",
            "--warmup-time",
            "0s",
        ])
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let dir = loop {
        let found = leftovers(tmp.path()).into_iter().find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("sockbench-")
        });
        if let Some(d) = found.filter(|d| d.join("l1.sock").exists()) {
            break d;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the run never bound its listeners"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    std::fs::rename(&dir, tmp.path().join("moved")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &dir).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "the run goes on in its own directory: {}",
        text(&o.stderr)
    );
    for name in ["l0.sock", "l1.sock", "s0.sock"] {
        assert_eq!(
            std::fs::read_to_string(elsewhere.join(name)).unwrap(),
            "root's file"
        );
    }
    assert!(
        leftovers(&tmp.path().join("moved")).is_empty(),
        "its own sockets were unlinked"
    );
}

/// Start a `connect` run of `transport` and return it with the address of
/// its listener, read from `ss` (port, or abstract name). The caller waits
/// for the child it gets back.
#[allow(clippy::zombie_processes)]
fn listener_of(tmp: &Path, transport: &str) -> (std::process::Child, String) {
    let mut child = util::bin()
        .args([
            "connect",
            "-t",
            transport,
            "-d",
            "20s",
            "--timeout",
            "1s",
            "--warmup-time",
            "0s",
        ])
        .env("TMPDIR", tmp)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let flags = if transport == "tcp4" {
        "-Hltnp"
    } else {
        "-Hlxp"
    };
    loop {
        let ss = Command::new("ss").arg(flags).output().unwrap();
        let pid = format!("pid={},", child.id());
        let found = text(&ss.stdout)
            .lines()
            .find(|l| l.contains(&pid))
            .map(|l| {
                let local = l
                    .split_whitespace()
                    .nth(if transport == "tcp4" { 3 } else { 4 })
                    .unwrap();
                local.to_string()
            });
        if let Some(addr) = found {
            return (child, addr);
        }
        if t0.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no listener appeared");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A local process that connects to a run's listener (a loopback TCP port
/// or an abstract name, both reachable by every local user) makes the run
/// fail within its timeout with one line naming a foreign process, whether
/// it says nothing or sends a request of the right size and reads the
/// answer (the run's own requests carry a token it cannot know): never
/// served as one of the run's own.
#[test]
fn a_foreign_connection_is_named_as_such() {
    use std::io::{Read, Write};
    for transport in ["tcp4", "uds-abstract"] {
        for talks in [false, true] {
            let tmp = private_tmp();
            let (child, addr) = listener_of(tmp.path(), transport);
            let mut held: Box<dyn ReadWrite> = if transport == "tcp4" {
                Box::new(std::net::TcpStream::connect(addr.as_str()).unwrap())
            } else {
                use std::os::linux::net::SocketAddrExt;
                let name = addr.trim_start_matches('@');
                let a =
                    std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
                Box::new(std::os::unix::net::UnixStream::connect_addr(&a).unwrap())
            };
            if talks {
                // A request as the run's own look: the data marker, then bytes.
                let mut req = [0u8; 64];
                req[0] = 1;
                held.write_all(&req).unwrap();
                let mut answer = Vec::new();
                let _ = held.read_to_end(&mut answer);
            }
            let what = format!("{transport}, {}", if talks { "talking" } else { "silent" });
            let t0 = Instant::now();
            let o = util::wait_output(child, Duration::from_secs(10));
            let err = text(&o.stderr);
            assert_eq!(o.status.code(), Some(1), "{what}: {err}");
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "{what}: {:?}",
                t0.elapsed()
            );
            let line = err
                .lines()
                .find(|l| l.starts_with("error:"))
                .unwrap_or_default();
            assert!(
                line.contains("foreign process") && line.contains(transport),
                "{what}: {err}"
            );
            let named = if transport == "tcp4" { "port " } else { "pid " };
            assert!(
                line.contains(named) && line.contains("uid"),
                "{what}: {line}"
            );
            assert!(leftovers(tmp.path()).is_empty());
        }
    }
}

trait ReadWrite: std::io::Read + std::io::Write {}
impl<T: std::io::Read + std::io::Write> ReadWrite for T {}
