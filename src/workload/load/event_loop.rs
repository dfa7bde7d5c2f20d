//! Stage: timed loop (open-loop load). One event loop's non-blocking
//! I/O, shared by the client and the server: the epoll wait (a signal is
//! no event), watching a connection for room to write, handing bytes or a
//! message to the kernel as far as it takes them, and receiving what is
//! there now. Every call made is counted.

use std::os::fd::BorrowedFd;
use std::time::Duration;

use crate::sys::epoll::{self, Epoll, Event};
use crate::sys::io;
use crate::transport::{AnyEndpoint, Cause, Fault};

/// The socket of a connection (load runs on sockets only; the plan refuses pipes).
#[inline]
pub(in crate::workload) fn fd_of(e: &AnyEndpoint) -> BorrowedFd<'_> {
    e.socket_fd().expect("load runs on sockets")
}

pub(super) fn would_block(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EAGAIN)
}

pub(super) fn interrupted(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EINTR)
}

/// One event loop: its epoll set, the bound on a connection's silence, and
/// the system calls it has made.
pub(super) struct Loop<'a> {
    ep: &'a Epoll,
    pub(super) timeout: Duration,
    pub(super) calls: u64,
}

impl<'a> Loop<'a> {
    pub(super) fn new(ep: &'a Epoll, timeout: Duration) -> Self {
        Self {
            ep,
            timeout,
            calls: 0,
        }
    }

    /// Wait for events at most `within`: how many are ready (a signal
    /// wakes it with none).
    #[inline]
    pub(super) fn wait(&mut self, events: &mut [Event], within: Duration) -> Result<usize, Fault> {
        self.calls += 1;
        match self.ep.wait(events, within) {
            Ok(k) => Ok(k),
            Err(e) if interrupted(&e) => Ok(0),
            Err(e) => Err(Fault {
                call: "epoll_wait",
                cause: Cause::Os(e),
            }),
        }
    }

    /// Watch `fd` (registered as `token`) for writable too, or no longer,
    /// as `want` says.
    #[inline]
    pub(super) fn watch_out(
        &self,
        fd: BorrowedFd<'_>,
        token: u64,
        want: bool,
        want_out: &mut bool,
    ) -> Result<(), Fault> {
        if want != *want_out {
            let ev = if want {
                epoll::IN | epoll::OUT
            } else {
                epoll::IN
            };
            self.ep.modify(fd, token, ev).map_err(|e| Fault {
                call: "epoll_ctl",
                cause: Cause::Os(e),
            })?;
            *want_out = want;
        }
        Ok(())
    }

    /// Hand a stream's unsent bytes (`to_send`, from `tx`) to the kernel,
    /// as far as it takes them; watch for writable while it does not.
    #[inline]
    pub(super) fn flush(
        &mut self,
        fd: BorrowedFd<'_>,
        token: u64,
        to_send: &mut usize,
        want_out: &mut bool,
        tx: &[u8],
    ) -> Result<(), Fault> {
        while *to_send > 0 {
            self.calls += 1;
            match io::send(fd, &tx[..(*to_send).min(tx.len())], libc::MSG_DONTWAIT) {
                Ok(n) => *to_send -= n,
                Err(e) if interrupted(&e) => {}
                Err(e) if would_block(&e) => break,
                Err(e) => return Err(Fault::from_io("send", e, self.timeout)),
            }
        }
        self.watch_out(fd, token, *to_send > 0, want_out)
    }

    /// One non-blocking receive into `buf`: `Some(bytes)`, or `None` when
    /// nothing is there now; EINTR is retried (each try a call),
    /// end-of-file is the peer gone.
    #[inline]
    pub(super) fn recv_now(
        &mut self,
        fd: BorrowedFd<'_>,
        buf: &mut [u8],
    ) -> Result<Option<usize>, Fault> {
        loop {
            self.calls += 1;
            return match io::recv(fd, buf, libc::MSG_DONTWAIT) {
                Ok(0) => Err(Fault {
                    call: "recv",
                    cause: Cause::PeerClosed,
                }),
                Ok(n) => Ok(Some(n)),
                Err(e) if interrupted(&e) => continue,
                Err(e) if would_block(&e) => Ok(None),
                Err(e) => Err(Fault::from_io("recv", e, self.timeout)),
            };
        }
    }

    /// Send one message; `Ok(false)` when the kernel has no room for it
    /// now (EAGAIN, or ENOBUFS from a full device queue).
    #[inline]
    pub(super) fn send_message(&mut self, fd: BorrowedFd<'_>, msg: &[u8]) -> Result<bool, Fault> {
        loop {
            self.calls += 1;
            match io::send(fd, msg, libc::MSG_DONTWAIT) {
                Ok(_) => return Ok(true),
                Err(e) if interrupted(&e) => {}
                Err(e) if would_block(&e) || e.raw_os_error() == Some(libc::ENOBUFS) => {
                    return Ok(false);
                }
                Err(e) => return Err(Fault::from_io("send", e, self.timeout)),
            }
        }
    }
}
