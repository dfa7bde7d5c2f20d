//! Stage: safety net for every stage. Records what the program created on
//! disk (its private directories, by identity) and which children it
//! forked, so that errors and signals remove exactly those and nothing
//! else; and a reaper child that does the same when nothing in this process
//! can run any more (SIGKILL, or any signal without a handler).

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
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

/// Install the SIGINT/SIGTERM/SIGHUP handler (once per process): clean up,
/// then exit with status 130. Measurement threads blocked in a call die
/// with the process; forked servers are killed and reaped first.
pub fn install_signal_handler() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            run_all();
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "error: interrupted; removed the run's sockets and partial results"
            );
            std::process::exit(130);
        });
    });
}
