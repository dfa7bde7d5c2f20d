//! Stage: system calls. Forking the echo server for `--mode process`, reaping
//! it, and per-thread CPU accounting.

use std::io;
use std::os::fd::RawFd;

use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::signal::{SigHandler, Signal, kill, signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};

/// CPU time and context switches of the calling thread so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThreadUsage {
    pub user_ns: i64,
    pub sys_ns: i64,
    pub vcsw: i64,
    pub ivcsw: i64,
}

impl ThreadUsage {
    /// `getrusage(RUSAGE_THREAD)`.
    pub fn now() -> io::Result<Self> {
        let u = getrusage(UsageWho::RUSAGE_THREAD)?;
        let ns = |tv: nix::sys::time::TimeVal| tv.tv_sec() * 1_000_000_000 + tv.tv_usec() * 1_000;
        Ok(Self {
            user_ns: ns(u.user_time()),
            sys_ns: ns(u.system_time()),
            vcsw: u.voluntary_context_switches(),
            ivcsw: u.involuntary_context_switches(),
        })
    }

    /// Add another thread's usage.
    pub fn add(&mut self, o: &ThreadUsage) {
        self.user_ns += o.user_ns;
        self.sys_ns += o.sys_ns;
        self.vcsw += o.vcsw;
        self.ivcsw += o.ivcsw;
    }

    /// Component-wise `self - earlier`.
    pub fn since(self, earlier: Self) -> Self {
        Self {
            user_ns: self.user_ns - earlier.user_ns,
            sys_ns: self.sys_ns - earlier.sys_ns,
            vcsw: self.vcsw - earlier.vcsw,
            ivcsw: self.ivcsw - earlier.ivcsw,
        }
    }
}

/// Fork a child named `name` (its `comm`, up to 15 bytes) that keeps only
/// the descriptors in `keep` (plus stdio), dies with its parent, ignores
/// SIGINT (the parent handles Ctrl-C and kills it), runs `body` and
/// `_exit`s with its return value. Returns the child's pid.
pub fn fork_child(keep: &[RawFd], name: &str, body: impl FnOnce() -> i32) -> io::Result<Pid> {
    let mut comm = [0u8; 16];
    let n = name.len().min(15);
    comm[..n].copy_from_slice(&name.as_bytes()[..n]);
    let parent = nix::unistd::getpid();
    // SAFETY: the child only makes system calls, touches memory it already
    // owns (buffers allocated before the fork) and ends with `_exit`, so no
    // lock held by another parent thread is needed; glibc's malloc is reset
    // for the child by its own fork handlers should the body allocate.
    match unsafe { fork() }? {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => {
            // SAFETY: PR_SET_PDEATHSIG takes a signal number; no pointers.
            let _ = syscall!(prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL));
            if nix::unistd::getppid() != parent {
                // SAFETY: `_exit` is always safe to call; it does not return.
                unsafe { libc::_exit(1) };
            }
            // SAFETY: PR_SET_NAME reads a NUL-terminated 16-byte buffer we own.
            let _ = syscall!(prctl(libc::PR_SET_NAME, comm.as_ptr()));
            // SAFETY: SIG_IGN installs no handler code.
            let _ = unsafe { signal(Signal::SIGINT, SigHandler::SigIgn) };
            close_all_but(keep);
            let code = body();
            // SAFETY: as above; skips the parent's atexit handlers and destructors.
            unsafe { libc::_exit(code) }
        }
    }
}

/// Fork a reaper: a child named `sb-reaper` that ignores the signals that
/// end a process (so a Ctrl-C to the process group or a stray SIGTERM does
/// not take it first), reads everything written to its pipe until every
/// write end is closed (this process is gone, however it ended; children
/// forked later close their copy), runs `at_exit` with what it read and
/// exits. Returns the write end, to keep open for as long as this process
/// lives, and the reaper's pid.
pub fn spawn_reaper(at_exit: impl FnOnce(Vec<u8>)) -> io::Result<(std::os::fd::OwnedFd, Pid)> {
    let (rd, wr) = crate::sys::socket::pipe()?;
    // SAFETY: the child makes system calls and runs `at_exit`, which only
    // opens, reads, writes and unlinks files (glibc resets malloc's locks
    // in the child), then `_exit`s; it never returns into Rust code that
    // another thread of the parent could be in the middle of.
    match unsafe { fork() }? {
        ForkResult::Parent { child } => Ok((wr, child)),
        ForkResult::Child => {
            // SAFETY: PR_SET_NAME reads a NUL-terminated buffer we own.
            let _ = syscall!(prctl(libc::PR_SET_NAME, c"sb-reaper".as_ptr()));
            for sig in [
                Signal::SIGINT,
                Signal::SIGTERM,
                Signal::SIGHUP,
                Signal::SIGQUIT,
                Signal::SIGUSR1,
                Signal::SIGUSR2,
                Signal::SIGALRM,
                Signal::SIGPIPE,
                Signal::SIGXFSZ,
            ] {
                // SAFETY: SIG_IGN installs no handler code.
                let _ = unsafe { signal(sig, SigHandler::SigIgn) };
            }
            close_all_but(&[std::os::fd::AsRawFd::as_raw_fd(&rd)]);
            let mut told = Vec::new();
            let mut b = [0u8; 4096];
            loop {
                match crate::sys::io::read(std::os::fd::AsFd::as_fd(&rd), &mut b) {
                    Ok(0) => break, // EOF: every write end is closed
                    Ok(n) => told.extend_from_slice(&b[..n]),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
            at_exit(told);
            // SAFETY: `_exit` is always safe to call; it does not return.
            unsafe { libc::_exit(0) }
        }
    }
}

/// Leave SIGXFSZ ignored, so that a write past the file size limit
/// (`ulimit -f`) fails with EFBIG, like any other write error, instead of
/// killing the process with what it measured.
pub fn ignore_file_size_signal() {
    // SAFETY: SIG_IGN installs no handler code.
    let _ = unsafe { signal(Signal::SIGXFSZ, SigHandler::SigIgn) };
}

/// Whether this process runs in a PID namespace other than the first (a
/// container, `unshare -p`): there, the end of the namespace's first
/// process kills every process in it. The first PID namespace has a fixed
/// inode number (`PROC_PID_INIT_INO` in linux/proc_ns.h); where its own
/// cannot be read, being pid 1 tells.
pub fn in_nested_pid_namespace() -> bool {
    /// `PROC_PID_INIT_INO`.
    const INIT_PID_NS_INO: u64 = 0xEFFF_FFFC;
    match std::fs::metadata("/proc/self/ns/pid") {
        Ok(m) => std::os::unix::fs::MetadataExt::ino(&m) != INIT_PID_NS_INO,
        Err(_) => nix::unistd::getpid().as_raw() == 1,
    }
}

/// Close every descriptor above stderr that is not in `keep`, so the child
/// holds no copy of another pair's sockets (a copy would hide end-of-file).
fn close_all_but(keep: &[RawFd]) {
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|&fd| fd > 2).collect();
    keep.sort_unstable();
    let mut lo: u32 = 3;
    for fd in keep {
        let fd = fd as u32;
        if fd > lo {
            // SAFETY: closes a range of descriptors this process holds; none
            // of them is in use by Rust objects that will run again here.
            let _ = syscall!(close_range(lo, fd - 1, 0));
        }
        lo = fd + 1;
    }
    // SAFETY: as above, for everything above the last kept descriptor.
    let _ = syscall!(close_range(lo, u32::MAX, 0));
}

/// SIGKILL a child (errors ignored: it may be gone already).
pub fn kill_child(pid: Pid) {
    let _ = kill(pid, Signal::SIGKILL);
}

/// Reap a child, blocking. Returns a description of how it ended.
pub fn reap(pid: Pid) -> String {
    loop {
        match waitpid(pid, None) {
            Ok(s) => return describe(s),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return format!("not reaped ({e})"),
        }
    }
}

/// How a child ended, if it has; `None` while it still runs.
pub fn try_reap(pid: Pid) -> Option<String> {
    match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::StillAlive) => None,
        Ok(s) => Some(describe(s)),
        Err(e) => Some(format!("not reaped ({e})")),
    }
}

fn describe(s: WaitStatus) -> String {
    match s {
        WaitStatus::Exited(_, code) => format!("exited with status {code}"),
        WaitStatus::Signaled(_, sig, _) => format!("killed by {sig}"),
        other => format!("{other:?}"),
    }
}

/// What this process holds right now, read from procfs: resident memory,
/// open descriptors and threads. Sampled between trials (never inside one)
/// so long runs can show growth; servers in `--mode process` are not counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Resources {
    /// Resident memory of this process, KiB.
    pub rss_kib: u64,
    /// Open descriptors of this process.
    pub fds: u64,
    /// Threads of this process.
    pub threads: u64,
}

impl Resources {
    pub fn now() -> io::Result<Self> {
        let status = std::fs::read_to_string("/proc/self/status")?;
        let field = |name: &str| -> io::Result<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .ok_or_else(|| io::Error::other(format!("no {name} in /proc/self/status")))
        };
        Ok(Self {
            rss_kib: field("VmRSS:")?,
            threads: field("Threads:")?,
            fds: std::fs::read_dir("/proc/self/fd")?.count() as u64,
        })
    }
}
