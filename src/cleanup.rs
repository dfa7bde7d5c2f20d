//! Stage: safety net for every stage. Records what the program created on
//! disk (its private directories, by identity), which children it forked,
//! and which host-wide sysctls it changed (`--allow-host-sysctl`), so that
//! errors and signals remove exactly those, and restore those, and nothing
//! else; and a reaper child that does the same when nothing in this process
//! can run any more (SIGKILL, or any signal without a handler).
//!
//! The reaper is started before the program makes anything, and learns of
//! each thing as it is made: a directory before it exists (then its
//! identity), the host's journal before it appears. So a kill at any
//! moment leaves nothing the reaper does not know of. A reaper that dies
//! while the program runs stops the run (`start_reaper`).

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use nix::unistd::Pid;

use crate::sys::fs::{Contents, DirId, remove_owned_dir};
use crate::sys::sysctl::{self, Found, Holding, Journal};

#[derive(Default)]
struct Registry {
    /// Directories made (their identity once known).
    dirs: Vec<(PathBuf, Option<DirId>, Contents)>,
    children: Vec<Pid>,
    /// The write end of the reaper's pipe: it reads what to clean from it,
    /// and wakes when it closes.
    reaper: Option<OwnedFd>,
    /// `--allow-host-sysctl`: the journal of the host-wide sysctls this run
    /// changes (their original values), held locked by this process.
    host: Option<Holding>,
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

/// What the reaper is told, one frame per change: a tag, the payload's
/// length (u32, little-endian) and the payload.
mod frame {
    /// A directory about to be made: contents byte, path.
    pub const DIR: u8 = b'D';
    /// Its identity once made: dev, ino (u64 LE each), path.
    pub const DIR_ID: u8 = b'I';
    /// A directory removed or renamed into place: path.
    pub const FORGET_DIR: u8 = b'F';
    /// The host's journal carrying this token (u64 LE) is this run's.
    pub const JOURNAL: u8 = b'J';
    /// The journal was restored and removed.
    pub const FORGET_JOURNAL: u8 = b'K';
}

fn contents_byte(c: Contents) -> u8 {
    match c {
        Contents::Sockets => b's',
        Contents::Results => b'r',
    }
}

/// Tell the reaper (if there is one) of a change. Done under the registry
/// lock, before the change it announces.
fn tell(r: &Registry, tag: u8, payload: &[u8]) -> io::Result<()> {
    let Some(w) = &r.reaper else {
        return Ok(()); // no reaper: a library user (tests, benches before it starts)
    };
    let mut msg = Vec::with_capacity(5 + payload.len());
    msg.push(tag);
    msg.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    msg.extend_from_slice(payload);
    crate::sys::io::write_all(w.as_fd(), &msg)
        .map_err(|e| io::Error::new(e.kind(), format!("telling the cleanup reaper: {e}")))
}

fn path_bytes(p: &Path) -> &[u8] {
    use std::os::unix::ffi::OsStrExt;
    p.as_os_str().as_bytes()
}

/// Make a private directory (mode 0700) named `prefix` and a random
/// suffix in `parent`, recorded with the safety net (and its reaper)
/// before it exists; `contents` says what this program may put in it and
/// so remove. Returns its path, an open descriptor and its identity.
pub fn make_private_dir(
    parent: &Path,
    prefix: &str,
    contents: Contents,
) -> io::Result<(PathBuf, OwnedFd, DirId)> {
    use std::os::unix::fs::DirBuilderExt;
    for _ in 0..64 {
        let path = parent.join(format!("{prefix}{:016x}", crate::sys::fs::random_u64()?));
        {
            let mut r = registry();
            let mut payload = vec![contents_byte(contents)];
            payload.extend_from_slice(path_bytes(&path));
            tell(&r, frame::DIR, &payload)?;
            r.dirs.push((path.clone(), None, contents));
        }
        match std::fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => {}
            Err(e) => {
                forget_dir(&path);
                if e.kind() == io::ErrorKind::AlreadyExists {
                    continue;
                }
                return Err(e);
            }
        }
        let held = crate::sys::fs::open_dir(&path)
            .and_then(|fd| Ok((crate::sys::fs::dir_id(fd.as_fd())?, fd)));
        let (id, fd) = match held {
            Ok(v) => v,
            Err(e) => {
                let _ = std::fs::remove_dir(&path);
                forget_dir(&path);
                return Err(e);
            }
        };
        let mut r = registry();
        let mut payload = Vec::new();
        payload.extend_from_slice(&id.dev.to_le_bytes());
        payload.extend_from_slice(&id.ino.to_le_bytes());
        payload.extend_from_slice(path_bytes(&path));
        tell(&r, frame::DIR_ID, &payload)?;
        if let Some(d) = r.dirs.iter_mut().find(|(p, _, _)| *p == path) {
            d.1 = Some(id);
        }
        return Ok((path, fd, id));
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "64 random names in a row were taken",
    ))
}

/// Forget a private directory (removed, or renamed into place).
pub fn forget_dir(p: &Path) {
    let mut r = registry();
    r.dirs.retain(|(f, _, _)| f != p);
    let _ = tell(&r, frame::FORGET_DIR, path_bytes(p));
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

/// How long [`run_all`] waits for killed children to be reaped: past it,
/// they are dead already (SIGKILL) and init reaps what is left.
const REAP_WITHIN: Duration = Duration::from_millis(500);

/// Kill every recorded child, then reap them (for at most `REAP_WITHIN`),
/// remove recorded directories, and restore the host's sysctls (removing
/// their journal). A restore that failed leaves the journal, and the
/// reaper still knows of it; the error is returned to be said.
pub fn run_all() -> Option<io::Error> {
    let mut r = registry();
    let children: Vec<Pid> = r.children.drain(..).collect();
    for &pid in &children {
        crate::sys::process::kill_child(pid);
    }
    let t0 = std::time::Instant::now();
    let mut left = children;
    while !left.is_empty() && t0.elapsed() < REAP_WITHIN {
        left.retain(|&pid| crate::sys::process::try_reap(pid).is_none());
        if !left.is_empty() {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    for (d, id, what) in r.dirs.drain(..) {
        let _ = match id {
            Some(id) => remove_owned_dir(&d, id, what),
            None => crate::sys::fs::remove_private_dir(&d, what),
        };
    }
    let h = r.host.take()?;
    match h.release() {
        Ok(()) => {
            let _ = tell(&r, frame::FORGET_JOURNAL, &[]);
            None
        }
        Err(e) => Some(e),
    }
}

/// `--allow-host-sysctl`: journal `originals` (path, value as read) and
/// hold it until the run ends. The reaper learns of it first, so a kill at
/// any moment after this leaves it to restore. Nothing on the host may
/// change before this returns.
pub fn hold_host(originals: Vec<(String, String)>) -> io::Result<Journal> {
    let mut r = registry();
    if r.reaper.is_none() && cfg!(not(test)) {
        return Err(io::Error::other(
            "no cleanup reaper runs: host sysctls are changed only with one",
        ));
    }
    let token = crate::sys::fs::random_u64()?;
    tell(&r, frame::JOURNAL, &token.to_le_bytes())?;
    let j = Journal {
        pid: sysctl::display_pid(),
        token,
        originals,
    };
    let held = sysctl::write_journal(&j)?;
    r.host = Some(held);
    Ok(j)
}

/// Set host-wide sysctls to a case's `values` (path, value) for its set-up,
/// warm-up or trial; [`restore_host`] undoes it. Once the host's values are
/// released (the run ended, or SIGTERM's [`run_all`] restored them while a
/// measuring thread went on), nothing is written: the registry's lock orders
/// every write against the restore.
pub fn set_host(values: &[(String, String)]) -> io::Result<()> {
    let r = registry();
    if r.host.is_none() {
        return Ok(());
    }
    for (path, v) in values {
        sysctl::write_value(path, v)
            .map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
    }
    Ok(())
}

/// Put every held host-wide sysctl back to its original value (after each
/// trial); the journal stays until [`release_host`].
pub fn restore_host() -> io::Result<()> {
    match &registry().host {
        Some(h) => sysctl::restore(&h.journal),
        None => Ok(()),
    }
}

/// The run is over: restore the host's sysctls and remove the journal.
pub fn release_host() -> io::Result<()> {
    let mut r = registry();
    match r.host.take() {
        Some(h) => {
            let done = h.release();
            if done.is_ok() {
                let _ = tell(&r, frame::FORGET_JOURNAL, &[]);
            }
            done
        }
        None => Ok(()),
    }
}

/// What the reaper was told, replayed.
#[derive(Debug, Default, PartialEq)]
struct Told {
    dirs: Vec<(PathBuf, Option<DirId>, Contents)>,
    journal: Option<u64>,
}

fn replay(bytes: &[u8]) -> Told {
    use std::os::unix::ffi::OsStrExt;
    let mut t = Told::default();
    let mut rest = bytes;
    let path = |b: &[u8]| PathBuf::from(std::ffi::OsStr::from_bytes(b));
    let u64_at = |b: &[u8], i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    while rest.len() >= 5 {
        let tag = rest[0];
        let len = u32::from_le_bytes(rest[1..5].try_into().expect("4 bytes")) as usize;
        let Some(p) = rest.get(5..5 + len) else {
            break; // a frame cut by the process's death: it announced nothing made
        };
        rest = &rest[5 + len..];
        match tag {
            frame::DIR if !p.is_empty() => {
                let contents = if p[0] == b's' {
                    Contents::Sockets
                } else {
                    Contents::Results
                };
                t.dirs.push((path(&p[1..]), None, contents));
            }
            frame::DIR_ID if p.len() >= 16 => {
                let (dev, ino) = (u64_at(p, 0), u64_at(p, 8));
                let at = path(&p[16..]);
                if let Some(d) = t.dirs.iter_mut().find(|(q, _, _)| *q == at) {
                    d.1 = Some(DirId { dev, ino });
                }
            }
            frame::FORGET_DIR => {
                let at = path(p);
                t.dirs.retain(|(q, _, _)| *q != at);
            }
            frame::JOURNAL if p.len() == 8 => t.journal = Some(u64_at(p, 0)),
            frame::FORGET_JOURNAL => t.journal = None,
            _ => {}
        }
    }
    t
}

/// Fork the reaper, before the program makes anything: a child (named
/// `sb-reaper`) that ignores every signal that can be ignored, reads what
/// the program makes as it makes it, and once the program is gone (its
/// pipe closes, however the process ended) removes the directories that
/// are still the same directories and restores this run's journal of host
/// sysctls. A thread watches it: if the reaper dies while the program
/// runs, the program cleans up and stops with one line (a kill after that
/// would leave things behind). Once per process.
pub fn start_reaper() -> io::Result<()> {
    let mut r = registry();
    if r.reaper.is_some() {
        return Ok(());
    }
    let (write_end, pid) = crate::sys::process::spawn_reaper(|told: Vec<u8>| {
        let t = replay(&told);
        for (d, id, what) in &t.dirs {
            let _ = match id {
                Some(id) => remove_owned_dir(d, *id, *what),
                None => crate::sys::fs::remove_private_dir(d, *what),
            };
        }
        if let Some(token) = t.journal {
            sysctl::restore_if_mine(token);
        }
    })?;
    // What already exists (a library user that made a directory first).
    r.reaper = Some(write_end);
    let known: Vec<_> = r.dirs.clone();
    for (p, id, what) in known {
        let mut payload = vec![contents_byte(what)];
        payload.extend_from_slice(path_bytes(&p));
        tell(&r, frame::DIR, &payload)?;
        if let Some(id) = id {
            let mut payload = Vec::new();
            payload.extend_from_slice(&id.dev.to_le_bytes());
            payload.extend_from_slice(&id.ino.to_le_bytes());
            payload.extend_from_slice(path_bytes(&p));
            tell(&r, frame::DIR_ID, &payload)?;
        }
    }
    drop(r);
    std::thread::Builder::new()
        .name("reaper-watch".into())
        .spawn(move || {
            let how = crate::sys::process::reap(pid);
            let host = match run_all() {
                None => "host sysctls restored".to_string(),
                Some(e) => {
                    format!("host sysctls NOT restored ({e}): run `sockbench restore-sysctl`")
                }
            };
            say(&format!(
                "error: sockbench's cleanup reaper (sb-reaper, pid {pid}) {how}; stopped the run, \
                 since a kill without it would leave things behind (servers killed, files removed, \
                 {host})"
            ));
            std::process::exit(1);
        })?;
    Ok(())
}

/// Set by the first SIGINT of a run that keeps what it measured: the run
/// ends after the trial under way, with its complete rounds.
static STOP: AtomicBool = AtomicBool::new(false);

/// A live progress display is drawing on stderr: it says the first
/// Ctrl-C's line itself (a line printed beside it would be overdrawn).
static SAID_BY_DISPLAY: AtomicBool = AtomicBool::new(false);

/// The line a first Ctrl-C gets.
pub const INTERRUPTED: &str = "interrupted: finishing the trial under way and keeping the complete rounds (Ctrl-C again to abort)";

/// A progress display takes over saying [`INTERRUPTED`] (`on`), or gives it back.
pub fn display_says_interrupts(on: bool) {
    SAID_BY_DISPLAY.store(on, Ordering::SeqCst);
}

/// Whether the user asked the run to stop (a first Ctrl-C). Read between
/// trials, never inside one.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// Set once the signal thread has begun an abort (SIGTERM, SIGHUP, a
/// second SIGINT): it kills the servers, cleans up and exits with 130.
static ABORTING: AtomicBool = AtomicBool::new(false);

/// Whether an abort is under way. A run whose calls fail meanwhile (its
/// servers were just killed) must not end the process first with an error
/// of its own: it waits here for the abort's exit (130), for at most 5 s,
/// then exits 130 itself. Returns at once when no abort is under way.
pub fn wait_for_abort() {
    if !ABORTING.load(Ordering::SeqCst) {
        return;
    }
    std::thread::sleep(Duration::from_secs(5));
    std::process::exit(130);
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
                    if sig == SIGINT
                        && on_interrupt == OnInterrupt::Finish
                        && !STOP.swap(true, Ordering::Relaxed)
                    {
                        if !SAID_BY_DISPLAY.load(Ordering::SeqCst) {
                            say(INTERRUPTED);
                        }
                        continue;
                    }
                    ABORTING.store(true, Ordering::SeqCst);
                    if let Some(e) = run_all() {
                        say(&format!(
                            "error: host sysctls NOT restored ({e}): run `sockbench restore-sysctl`"
                        ));
                    }
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

/// What [`recover_host_journal`] found.
#[derive(Debug)]
pub enum Recovered {
    /// No journal.
    Nothing,
    /// A journal left by a run that is gone, restored and removed now.
    Restored(Journal),
    /// A journal a live sockbench holds: its values may be in force now.
    Held(Journal),
    /// A journal this process may not open (not root): it exists.
    Unreadable,
}

/// A journal of host-wide sysctls left by a run that did not finish is
/// restored and removed; one a live run holds (its lock is taken) is left
/// alone. `Err`: it could not be read or restored (the message names the
/// file).
pub fn recover_host_journal() -> Result<Recovered, String> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(if sysctl::journal_exists() {
            Recovered::Unreadable
        } else {
            Recovered::Nothing
        });
    }
    let path = sysctl::journal_path();
    match sysctl::find(Duration::from_secs(1)).map_err(|e| e.to_string())? {
        Found::None => Ok(Recovered::Nothing),
        Found::Held(j) => Ok(Recovered::Held(j)),
        Found::Orphan(o) => o
            .restore()
            .map(Recovered::Restored)
            .map_err(|e| format!("restoring {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(tag: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn the_reaper_replays_what_it_was_told_and_ignores_a_cut_frame() {
        let mut b = framed(frame::DIR, b"s/tmp/a");
        b.extend(framed(frame::DIR, b"r/tmp/b"));
        let mut id = Vec::new();
        id.extend_from_slice(&7u64.to_le_bytes());
        id.extend_from_slice(&9u64.to_le_bytes());
        id.extend_from_slice(b"/tmp/a");
        b.extend(framed(frame::DIR_ID, &id));
        b.extend(framed(frame::FORGET_DIR, b"/tmp/b"));
        b.extend(framed(frame::JOURNAL, &5u64.to_le_bytes()));
        let t = replay(&b);
        assert_eq!(
            t.dirs,
            vec![(
                PathBuf::from("/tmp/a"),
                Some(DirId { dev: 7, ino: 9 }),
                Contents::Sockets
            )]
        );
        assert_eq!(t.journal, Some(5));
        b.extend(framed(frame::FORGET_JOURNAL, &[]));
        let whole = b.len();
        b.extend(framed(frame::DIR, b"s/tmp/c"));
        b.truncate(whole + 4); // the process died mid-frame
        assert_eq!(replay(&b).journal, None);
        assert_eq!(replay(&b).dirs.len(), 1);
    }
}
