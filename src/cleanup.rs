//! Stage: safety net for every stage. Records what the program created on
//! disk (its private directories, by identity) and which children it
//! forked, so that errors and signals remove exactly those and nothing
//! else; and a reaper child that does the same when nothing in this process
//! can run any more (SIGKILL, or any signal without a handler).

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use nix::unistd::Pid;

use crate::sys::fs::{Contents, DirId, remove_owned_dir};

#[derive(Default)]
struct Registry {
    dirs: Vec<(PathBuf, DirId, Contents)>,
    children: Vec<Pid>,
    /// The write end of the reaper's pipe: it wakes when this closes.
    reaper: Option<OwnedFd>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    dirs: Vec::new(),
    children: Vec::new(),
    reaper: None,
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

/// Kill and reap recorded children, then remove recorded directories.
pub fn run_all() {
    let mut r = registry();
    for pid in r.children.drain(..) {
        crate::sys::process::kill_child(pid);
        crate::sys::process::reap(pid);
    }
    for (d, id, what) in r.dirs.drain(..) {
        let _ = remove_owned_dir(&d, id, what);
    }
}

/// Fork the reaper: a child (named `sb-reaper`) that ignores every signal
/// that can be ignored, waits until this process is gone (its pipe closes,
/// however the process ended), then removes the directories recorded now
/// that are still the same directories. Call it once the run's directories
/// exist; a later call replaces the reaper.
pub fn start_reaper() -> std::io::Result<()> {
    let dirs = registry().dirs.clone();
    let write_end = crate::sys::process::spawn_reaper(move || {
        for (d, id, what) in &dirs {
            let _ = remove_owned_dir(d, *id, *what);
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
