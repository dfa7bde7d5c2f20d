//! Stage: safety net for every stage. Records what the program created on
//! disk and which children it forked, so that Ctrl-C (SIGINT/SIGTERM) and
//! error paths remove exactly those and nothing else. Never deletes a path it
//! was not told about.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, Once};

use nix::unistd::Pid;

#[derive(Default)]
struct Registry {
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
    trees: Vec<PathBuf>,
    children: Vec<Pid>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    files: Vec::new(),
    dirs: Vec::new(),
    trees: Vec::new(),
    children: Vec::new(),
});

fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// A socket file this program bound; unlinked on interruption.
pub fn add_file(p: &Path) {
    registry().files.push(p.to_owned());
}
/// Forget a socket file (after the program unlinked it itself).
pub fn remove_file(p: &Path) {
    registry().files.retain(|f| f != p);
}
/// An empty private directory this program made; removed (rmdir) on interruption.
pub fn add_dir(p: &Path) {
    registry().dirs.push(p.to_owned());
}
/// Forget a private directory.
pub fn remove_dir(p: &Path) {
    registry().dirs.retain(|f| f != p);
}
/// A staging directory holding only files this program wrote; removed whole.
pub fn add_tree(p: &Path) {
    registry().trees.push(p.to_owned());
}
/// Forget a staging directory (renamed into place or removed).
pub fn remove_tree(p: &Path) {
    registry().trees.retain(|f| f != p);
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

/// Kill and reap recorded children, then remove recorded files and directories.
pub fn run_all() {
    let mut r = registry();
    for pid in r.children.drain(..) {
        crate::sys::process::kill_child(pid);
        crate::sys::process::reap(pid);
    }
    for f in r.files.drain(..) {
        let _ = std::fs::remove_file(&f);
    }
    for d in r.dirs.drain(..) {
        let _ = std::fs::remove_dir(&d);
    }
    for t in r.trees.drain(..) {
        let _ = std::fs::remove_dir_all(&t);
    }
}

/// Install the SIGINT/SIGTERM handler (once per process): clean up, then
/// exit with status 130. Measurement threads blocked in a call die with the
/// process; forked servers are killed and reaped first.
pub fn install_signal_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            run_all();
            eprintln!("error: interrupted; removed the run's sockets and partial results");
            std::process::exit(130);
        });
    });
}
