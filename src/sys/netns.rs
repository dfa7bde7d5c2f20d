//! Stage: system calls. Network namespaces for `--netns`: make an anonymous
//! one, move the calling thread into one, and run a set-up tool (`ip`)
//! inside one.
//!
//! The namespaces are anonymous: no bind mount under /run/netns, only a
//! descriptor. A namespace lives while a descriptor or a thread refers to
//! it, so whatever happens to the process (error, Ctrl-C, SIGKILL), the
//! namespaces and the links inside them go with it; the host's namespace is
//! never changed.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::sched::{CloneFlags, unshare};

/// The calling thread's network namespace.
pub fn current() -> io::Result<OwnedFd> {
    Ok(std::fs::File::open("/proc/thread-self/ns/net")?.into())
}

/// A fresh, empty network namespace (only a `lo`, down). Made by a helper
/// thread, so the caller's own namespace does not change. Needs
/// CAP_SYS_ADMIN.
pub fn create() -> io::Result<OwnedFd> {
    std::thread::Builder::new()
        .name("netns".into())
        .spawn(|| {
            unshare(CloneFlags::CLONE_NEWNET)?;
            current()
        })?
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// Move the calling thread into the namespace open at descriptor `ns`.
/// Sockets it creates from now on belong there; sockets it already holds
/// stay where they were made. A descriptor that is not a network namespace
/// fails (EBADF or EINVAL) and changes nothing.
pub fn enter(ns: RawFd) -> io::Result<()> {
    // SAFETY: setns(2) takes a descriptor number and a flag; an invalid one
    // fails with EBADF or EINVAL and changes nothing.
    syscall!(setns(ns, libc::CLONE_NEWNET)).map(|_| ())
}

/// Run `f` with the calling thread in `ns`, then move it back.
pub fn within<T>(ns: RawFd, f: impl FnOnce() -> T) -> io::Result<T> {
    let home = current()?;
    enter(ns)?;
    let out = f();
    enter(home.as_raw_fd())?;
    Ok(out)
}

/// Make `cmd` run inside `ns` (the child enters it between fork and exec).
pub fn command_in(cmd: &mut Command, fd: RawFd) {
    // SAFETY: the closure runs in the forked child before exec and makes
    // one async-signal-safe system call (setns) on a descriptor the child
    // inherited; it allocates nothing and takes no lock.
    unsafe {
        cmd.pre_exec(move || syscall!(setns(fd, libc::CLONE_NEWNET)).map(|_| ()));
    }
}
