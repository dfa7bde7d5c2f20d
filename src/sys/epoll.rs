//! Stage: system calls. epoll for the open-loop `load` workload, the one
//! place sockbench waits on many sockets at once: an instance, interest
//! changes, and a wait with a nanosecond timeout (`epoll_pwait2`), so the
//! load generator can sleep until a request's intended send time.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// Readable.
pub const IN: u32 = libc::EPOLLIN as u32;
/// Writable.
pub const OUT: u32 = libc::EPOLLOUT as u32;

/// An epoll instance.
#[derive(Debug)]
pub struct Epoll {
    fd: OwnedFd,
}

/// One ready descriptor: the token it was registered with and its events.
pub type Event = libc::epoll_event;

/// An empty event array entry, for preallocated buffers.
pub fn empty_event() -> Event {
    libc::epoll_event { events: 0, u64: 0 }
}

/// The token of a ready event.
pub fn token(e: &Event) -> u64 {
    e.u64
}

/// The events of a ready event (`IN`, `OUT`, and error or hang-up bits).
pub fn events(e: &Event) -> u32 {
    e.events
}

impl Epoll {
    /// `epoll_create1(EPOLL_CLOEXEC)`.
    pub fn new() -> io::Result<Self> {
        // SAFETY: no pointers; a new descriptor is returned on success.
        let fd = syscall!(epoll_create1(libc::EPOLL_CLOEXEC))?;
        // SAFETY: `fd` was just returned by the kernel and is owned by no one else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { fd })
    }

    fn ctl(&self, op: libc::c_int, fd: BorrowedFd<'_>, token: u64, events: u32) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` is a live, exclusively borrowed epoll_event; both fds
        // are borrowed from owners that outlive the call.
        syscall!(epoll_ctl(self.fd.as_raw_fd(), op, fd.as_raw_fd(), &mut ev))?;
        Ok(())
    }

    /// Watch `fd` for `events` (level-triggered), reported with `token`.
    pub fn add(&self, fd: BorrowedFd<'_>, token: u64, events: u32) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, token, events)
    }

    /// Change what `fd` is watched for.
    pub fn modify(&self, fd: BorrowedFd<'_>, token: u64, events: u32) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, token, events)
    }

    /// Wait for ready descriptors into `out`, at most `timeout` (zero: look
    /// and return). Returns how many are ready; 0 on timeout. EINTR is
    /// returned to the caller, which owns the deadline.
    pub fn wait(&self, out: &mut [Event], timeout: Duration) -> io::Result<usize> {
        let ts = libc::timespec {
            tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
        };
        // SAFETY: `out` is a live, exclusively borrowed array of `out.len()`
        // events; `ts` is a live timespec; a null sigmask keeps the mask.
        let n = syscall!(epoll_pwait2(
            self.fd.as_raw_fd(),
            out.as_mut_ptr(),
            out.len().min(libc::c_int::MAX as usize) as libc::c_int,
            &ts,
            std::ptr::null()
        ))?;
        Ok(n as usize)
    }
}
