//! Stage: safety net for every stage. Records what the program created on
//! disk (its private directories, by identity), which children it forked,
//! and which host-wide sysctls it may change (`--allow-host-sysctl`), so
//! that errors and signals remove exactly those, and restore those, and
//! nothing else; and a reaper child that does the same when nothing in this
//! process can run any more (SIGKILL, or any signal without a handler).

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use nix::unistd::Pid;

use crate::sys::fs::{Contents, DirId, remove_owned_dir};
use crate::sys::sysctl::{self, Journal};

#[derive(Default)]
struct Registry {
    dirs: Vec<(PathBuf, DirId, Contents)>,
    children: Vec<Pid>,
    /// The write end of the reaper's pipe: it wakes when this closes.
    reaper: Option<OwnedFd>,
    /// `--allow-host-sysctl`: the journal of the host-wide sysctls this run
    /// may change (their original values) and where it is.
    host: Option<(Journal, PathBuf)>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    dirs: Vec::new(),
    children: Vec::new(),
    reaper: None,
    host: None,
});

fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// A private directory this program made (socket directory, staging
/// directory): removed with what it put in it (`contents`) on an error, a
/// signal or a kill, if it is still the same directory.
pub fn add_dir(p: &Path, id: DirId, contents: Contents) {
    registry().dirs.push((p.to_owned(), id, contents));
}
/// Forget a private directory (removed, or renamed into place).
pub fn remove_dir(p: &Path) {
    registry().dirs.retain(|(f, _, _)| f != p);
}
/// A forked server; killed and reaped on interruption.
pub fn add_child(pid: Pid) {
    registry().children.push(pid);
}
/// Forget a child after it was reaped.
pub fn remove_child(pid: Pid) {
    registry().children.retain(|c| *c != pid);
}

/// SIGKILL every recorded child without reaping it (its owner reaps):
/// used by the watchdog when a run stops making progress.
pub fn kill_children() {
    for pid in &registry().children {
        crate::sys::process::kill_child(*pid);
    }
}

/// Kill and reap recorded children, remove recorded directories, and
/// restore the host's sysctls (removing their journal).
pub fn run_all() {
    let mut r = registry();
    for pid in r.children.drain(..) {
        crate::sys::process::kill_child(pid);
        crate::sys::process::reap(pid);
    }
    for (d, id, what) in r.dirs.drain(..) {
        let _ = remove_owned_dir(&d, id, what);
    }
    if let Some((j, path)) = r.host.take() {
        release(&j, &path);
    }
}

/// Restore a journal's originals and, if that worked, remove it (a journal
/// that could not be restored stays for the next run to try).
fn release(j: &Journal, path: &Path) {
    if sysctl::restore(j).is_ok() {
        let _ = std::fs::remove_file(path);
    }
}

/// `--allow-host-sysctl`: from now on the host-wide sysctls of `j` (its
/// journal, already written at `path`) are restored on every exit path:
/// [`run_all`] (errors, SIGTERM, a second Ctrl-C), [`release_host`] (the
/// end of a run), and the reaper (SIGKILL), if it is started after this.
pub fn hold_host(j: Journal, path: PathBuf) {
    registry().host = Some((j, path));
}

/// Set host-wide sysctls to a case's `values` (path, value) for its set-up,
/// warm-up or trial; [`restore_host`] undoes it. Once the host's values are
/// released (the run ended, or SIGTERM's [`run_all`] restored them while a
/// measuring thread went on), nothing is written: the registry's lock orders
/// every write against the restore.
pub fn set_host(values: &[(String, String)]) -> std::io::Result<()> {
    let r = registry();
    if r.host.is_none() {
        return Ok(());
    }
    for (path, v) in values {
        sysctl::write_value(path, v)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{path}: {e}")))?;
    }
    Ok(())
}

/// Put every held host-wide sysctl back to its original value (after each
/// trial); the journal stays until [`release_host`].
pub fn restore_host() -> std::io::Result<()> {
    match &registry().host {
        Some((j, _)) => sysctl::restore(j),
        None => Ok(()),
    }
}

/// The run is over: restore the host's sysctls and remove the journal.
pub fn release_host() {
    let mut r = registry();
    if let Some((j, path)) = r.host.take() {
        release(&j, &path);
    }
}

/// Fork the reaper: a child (named `sb-reaper`) that ignores every signal
/// that can be ignored, waits until this process is gone (its pipe closes,
/// however the process ended), then removes the directories recorded now
/// that are still the same directories. Call it once the run's directories
/// exist; a later call replaces the reaper.
pub fn start_reaper() -> std::io::Result<()> {
    let dirs = registry().dirs.clone();
    let host = registry().host.clone();
    let write_end = crate::sys::process::spawn_reaper(move || {
        for (d, id, what) in &dirs {
            let _ = remove_owned_dir(d, *id, *what);
        }
        // Only this run's journal (the run may have removed it, and a
        // later run written its own).
        if let Some((j, path)) = &host
            && matches!(sysctl::read_journal(path), Ok(Some(on_disk)) if on_disk.pid == j.pid)
        {
            release(j, path);
        }
    })?;
    registry().reaper = Some(write_end);
    Ok(())
}

/// Set by the first SIGINT of a run that keeps what it measured: the run
/// ends after the trial under way, with its complete rounds.
static STOP: AtomicBool = AtomicBool::new(false);

/// Whether the user asked the run to stop (a first Ctrl-C). Read between
/// trials, never inside one.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// What a first SIGINT does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnInterrupt {
    /// End the run after the current trial and keep its complete rounds
    /// (`sockbench`'s runs); a second SIGINT aborts.
    Finish,
    /// Abort at once (`cargo bench`, which keeps nothing partial).
    Abort,
}

/// Install the handler of SIGINT, SIGTERM and SIGHUP (once per process),
/// in a thread of its own: SIGTERM, SIGHUP and a second SIGINT clean up
/// (kill and reap the servers, remove the run's directories) and exit
/// with status 130; a first SIGINT does what `on_interrupt` says.
pub fn install_signal_handler(on_interrupt: OnInterrupt) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
            return;
        };
        let _ = std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    if sig == SIGINT && on_interrupt == OnInterrupt::Finish && !STOP.swap(true, Ordering::Relaxed) {
                        say("interrupted: finishing the trial under way and keeping the complete rounds (Ctrl-C again to abort)");
                        continue;
                    }
                    run_all();
                    say("error: interrupted; removed the run's sockets and partial results");
                    std::process::exit(130);
                }
            });
    });
}

/// One line on stderr, never a panic (stderr may be closed or full).
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// A journal of host-wide sysctls left by a run that did not finish:
/// restore it and remove it. `Ok(None)`: there is none. `Err`: it belongs
/// to a sockbench that still runs (it restores them itself when it ends),
/// or it could not be read or restored.
pub fn recover_host_journal() -> Result<Option<Journal>, String> {
    let path = sysctl::journal_path().map_err(|e| format!("{}: {e}", sysctl::JOURNAL_DIR))?;
    let Some(j) = sysctl::read_journal(&path).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    if j.pid != std::process::id() && sysctl::alive(j.pid) {
        return Err(format!(
            "a running sockbench (pid {}) holds host sysctls (journal {}); it restores them when it ends",
            j.pid,
            path.display()
        ));
    }
    sysctl::restore(&j).map_err(|e| format!("restoring {}: {e}", path.display()))?;
    std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Some(j))
}
