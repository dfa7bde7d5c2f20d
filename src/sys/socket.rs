//! Stage: system calls. Socket, pipe and option set-up: one-time calls made
//! before any measurement. Returns `OwnedFd` as soon as a descriptor exists.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::socket::{SockaddrLike, setsockopt, sockopt};
use nix::sys::time::TimeVal;

/// `socket(2)` with `SOCK_CLOEXEC`.
pub fn socket(domain: libc::c_int, ty: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes plain integers and touches no memory of ours.
    let fd = syscall!(socket(domain, ty | libc::SOCK_CLOEXEC, 0))?;
    // SAFETY: `socket` returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `bind(2)` to a nix address.
pub fn bind(fd: BorrowedFd<'_>, addr: &dyn SockaddrLike) -> io::Result<()> {
    // SAFETY: `addr.as_ptr()` points to `addr.len()` bytes of a live sockaddr.
    syscall!(bind(fd.as_raw_fd(), addr.as_ptr(), addr.len())).map(drop)
}

/// `connect(2)` to a nix address. A connect interrupted by a signal goes
/// on in the background (connect(2), EINTR): wait for it to finish.
pub fn connect(fd: BorrowedFd<'_>, addr: &dyn SockaddrLike) -> io::Result<()> {
    // SAFETY: as for `bind`.
    match syscall!(connect(fd.as_raw_fd(), addr.as_ptr(), addr.len())) {
        Err(e) if e.raw_os_error() == Some(libc::EINTR) => finish_connect(fd),
        r => r.map(drop),
    }
}

/// Longest wait of a one-time set-up call that should not wait at all (an
/// interrupted connect finishing, an accept of a connection already made).
pub const SETUP_WAIT: Duration = Duration::from_secs(5);

fn finish_connect(fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    let deadline = std::time::Instant::now() + SETUP_WAIT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        // SAFETY: `p` is one live pollfd.
        match syscall!(poll(&mut p, 1, left.as_millis() as libc::c_int)) {
            Ok(0) => return Err(io::Error::from_raw_os_error(libc::ETIMEDOUT)),
            Ok(_) => break,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
    match nix::sys::socket::getsockopt(&fd, sockopt::SocketError)? {
        0 => Ok(()),
        err => Err(io::Error::from_raw_os_error(err)),
    }
}

/// `listen(2)`.
pub fn listen(fd: BorrowedFd<'_>, backlog: libc::c_int) -> io::Result<()> {
    // SAFETY: listen(2) takes a descriptor borrowed from its owner and an integer.
    syscall!(listen(fd.as_raw_fd(), backlog)).map(drop)
}

/// `accept4(2)` with `SOCK_CLOEXEC`; the peer address is not asked for. An
/// interrupted accept waits for a connection within what is left of one
/// `timeout` from the first interruption (a signal must not start the
/// listener's SO_RCVTIMEO afresh), then is made again.
pub fn accept(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<OwnedFd> {
    let mut since: Option<std::time::Instant> = None;
    let new = loop {
        // SAFETY: null address pointers are allowed when the peer address is not wanted.
        match syscall!(accept4(
            fd.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC
        )) {
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {
                let now = std::time::Instant::now();
                let left = timeout.saturating_sub(now.duration_since(*since.get_or_insert(now)));
                // Out of time reads as the listener's own timeout (EAGAIN).
                let timed_out = io::Error::from_raw_os_error(libc::EAGAIN);
                if left.is_zero() {
                    return Err(timed_out);
                }
                match crate::sys::io::poll_one(fd, libc::POLLIN, left) {
                    Ok(false) => return Err(timed_out),
                    Ok(true) => continue,
                    Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                    Err(e) => return Err(e),
                }
            }
            r => break r?,
        }
    };
    // SAFETY: `accept4` returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// `socketpair(2)` in `AF_UNIX` with `SOCK_CLOEXEC`.
pub fn socketpair(ty: libc::c_int) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1 as libc::c_int; 2];
    // SAFETY: `fds` is a live array of two ints, as `socketpair` requires.
    syscall!(socketpair(
        libc::AF_UNIX,
        ty | libc::SOCK_CLOEXEC,
        0,
        fds.as_mut_ptr()
    ))?;
    // SAFETY: both descriptors are fresh and owned by nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// `pipe2(2)` with `O_CLOEXEC`: returns (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1 as libc::c_int; 2];
    // SAFETY: `fds` is a live array of two ints, as `pipe2` requires.
    syscall!(pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC))?;
    // SAFETY: both descriptors are fresh and owned by nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The address a socket is bound to (used after binding port 0).
pub fn local_addr<T: SockaddrLike>(fd: BorrowedFd<'_>) -> io::Result<T> {
    nix::sys::socket::getsockname(fd.as_raw_fd()).map_err(io::Error::from)
}

/// A timeout as the `timeval` of SO_RCVTIMEO/SO_SNDTIMEO. `{0, 0}` would mean
/// "wait for ever", so a bound is never rounded down to it: anything under
/// a microsecond becomes one microsecond.
fn timeval(timeout: Duration) -> TimeVal {
    let t = timeout.max(Duration::from_micros(1));
    TimeVal::new(
        t.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
        t.subsec_micros() as libc::suseconds_t,
    )
}

/// The peer of an AF_UNIX socket: (pid, uid), from SO_PEERCRED.
pub fn peer_cred(fd: BorrowedFd<'_>) -> io::Result<(u32, u32)> {
    let c = nix::sys::socket::getsockopt(&fd, sockopt::PeerCredentials)?;
    Ok((c.pid() as u32, c.uid()))
}

/// The port of an inet socket's peer (`getpeername`).
pub fn peer_port(fd: BorrowedFd<'_>) -> io::Result<u16> {
    let a: nix::sys::socket::SockaddrStorage = nix::sys::socket::getpeername(fd.as_raw_fd())?;
    inet_port(&a)
}

/// The local port of an inet socket (`getsockname`).
pub fn local_port(fd: BorrowedFd<'_>) -> io::Result<u16> {
    let a: nix::sys::socket::SockaddrStorage = nix::sys::socket::getsockname(fd.as_raw_fd())?;
    inet_port(&a)
}

fn inet_port(a: &nix::sys::socket::SockaddrStorage) -> io::Result<u16> {
    a.as_sockaddr_in()
        .map(|v4| v4.port())
        .or_else(|| a.as_sockaddr_in6().map(|v6| v6.port()))
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EAFNOSUPPORT))
}

/// `SO_RCVTIMEO` and `SO_SNDTIMEO`: bounds every blocking call on the socket.
pub fn set_timeouts(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<()> {
    let tv = timeval(timeout);
    setsockopt(&fd, sockopt::ReceiveTimeout, &tv)?;
    Ok(setsockopt(&fd, sockopt::SendTimeout, &tv)?)
}

/// `SO_RCVTIMEO` alone.
pub fn set_recv_timeout(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<()> {
    Ok(setsockopt(&fd, sockopt::ReceiveTimeout, &timeval(timeout))?)
}

/// `TCP_NODELAY`.
pub fn set_nodelay(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    setsockopt(&fd, sockopt::TcpNoDelay, &on).map_err(io::Error::from)
}

/// `SO_SNDBUF` and `SO_RCVBUF` (the kernel doubles and caps them at
/// `net.core.wmem_max`/`rmem_max`).
pub fn set_buffers(fd: BorrowedFd<'_>, bytes: usize) -> io::Result<()> {
    setsockopt(&fd, sockopt::SndBuf, &bytes)?;
    setsockopt(&fd, sockopt::RcvBuf, &bytes).map_err(io::Error::from)
}

/// `SO_SNDBUF` alone (`--sndbuf`; the kernel doubles it and caps the
/// request at `net.core.wmem_max`).
pub fn set_sndbuf(fd: BorrowedFd<'_>, bytes: usize) -> io::Result<()> {
    setsockopt(&fd, sockopt::SndBuf, &bytes).map_err(io::Error::from)
}

/// `SO_RCVBUF` alone (`--rcvbuf`; doubled, capped at `net.core.rmem_max`).
pub fn set_rcvbuf(fd: BorrowedFd<'_>, bytes: usize) -> io::Result<()> {
    setsockopt(&fd, sockopt::RcvBuf, &bytes).map_err(io::Error::from)
}

/// `SO_BUSY_POLL`: µs a blocking receive on this socket busy-polls the
/// device queue before it sleeps (`--busy-poll`).
pub fn set_busy_poll(fd: BorrowedFd<'_>, us: u32) -> io::Result<()> {
    let v = us as libc::c_int;
    // SAFETY: setsockopt(2) reads size_of::<c_int>() bytes from &v, a live
    // local; fd is borrowed from its owner.
    syscall!(setsockopt(
        fd.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_BUSY_POLL,
        (&v as *const libc::c_int).cast(),
        std::mem::size_of::<libc::c_int>() as libc::socklen_t,
    ))
    .map(drop)
}

/// Effective (`SO_SNDBUF`, `SO_RCVBUF`) in bytes, as the kernel reports them.
pub fn buffers(fd: BorrowedFd<'_>) -> io::Result<(usize, usize)> {
    let snd = nix::sys::socket::getsockopt(&fd, sockopt::SndBuf)?;
    let rcv = nix::sys::socket::getsockopt(&fd, sockopt::RcvBuf)?;
    Ok((snd, rcv))
}

/// Capacity of a pipe in bytes (`F_GETPIPE_SZ`).
pub fn pipe_capacity(fd: BorrowedFd<'_>) -> io::Result<usize> {
    fcntl(fd, FcntlArg::F_GETPIPE_SZ)
        .map(|n| n as usize)
        .map_err(io::Error::from)
}

/// Set or clear `O_NONBLOCK`.
pub fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let flags = fcntl(fd, FcntlArg::F_GETFL)?;
    let mut flags = OFlag::from_bits_truncate(flags);
    flags.set(OFlag::O_NONBLOCK, on);
    fcntl(fd, FcntlArg::F_SETFL(flags))
        .map(drop)
        .map_err(io::Error::from)
}

/// Shut down both directions, so a blocked peer sees end-of-file at once.
pub fn shutdown(fd: BorrowedFd<'_>) {
    // Errors (ENOTCONN on an already closed peer) do not matter here.
    // SAFETY: shutdown(2) takes a descriptor borrowed from its owner and a flag.
    let _ = syscall!(shutdown(fd.as_raw_fd(), libc::SHUT_RDWR));
}
