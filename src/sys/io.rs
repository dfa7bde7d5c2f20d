//! Stage: system calls. The measured data-path calls: one libc call each, no
//! retry and no allocation here (the retry policy lives in `transport`).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `send(2)` with `MSG_NOSIGNAL` plus `flags`; returns the bytes queued.
#[inline]
pub fn send(fd: BorrowedFd<'_>, buf: &[u8], flags: libc::c_int) -> io::Result<usize> {
    // SAFETY: `buf` is a live slice, so ptr/len describe readable memory;
    // `fd` is borrowed from an owner that outlives the call.
    let n = syscall!(send(
        fd.as_raw_fd(),
        buf.as_ptr().cast(),
        buf.len(),
        flags | libc::MSG_NOSIGNAL
    ))?;
    Ok(n as usize)
}

/// `recv(2)`; returns the byte count the kernel reports (with `MSG_TRUNC` on
/// a datagram socket that is the datagram's real length, which may exceed
/// `buf.len()`).
#[inline]
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8], flags: libc::c_int) -> io::Result<usize> {
    // SAFETY: `buf` is a live, exclusively borrowed slice (writable ptr/len);
    // `fd` is borrowed from an owner that outlives the call.
    let n = syscall!(recv(
        fd.as_raw_fd(),
        buf.as_mut_ptr().cast(),
        buf.len(),
        flags
    ))?;
    Ok(n as usize)
}

/// `read(2)`.
#[inline]
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: as for `recv`: live writable slice, borrowed fd.
    let n = syscall!(read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()))?;
    Ok(n as usize)
}

/// `write(2)`.
#[inline]
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: as for `send`: live readable slice, borrowed fd.
    let n = syscall!(write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()))?;
    Ok(n as usize)
}

/// Write all of `buf` with `write(2)`, retrying short writes and EINTR
/// (set-up and bookkeeping only; never in a timed loop).
pub fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match write(fd, buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Wait until `fd` is ready for `events` (`POLLIN`/`POLLOUT`) or `timeout`
/// passes: `Ok(true)` when ready (or in error/hang-up, which the next call
/// reports), `Ok(false)` on timeout. EINTR is returned to the caller, which
/// owns the deadline.
pub fn poll_one(
    fd: BorrowedFd<'_>,
    events: libc::c_short,
    timeout: std::time::Duration,
) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    };
    // Round up, so a wait never becomes a zero-length (non-blocking) poll.
    let ms = timeout
        .as_nanos()
        .div_ceil(1_000_000)
        .min(libc::c_int::MAX as u128) as libc::c_int;
    // SAFETY: `p` is one live, exclusively borrowed pollfd; nfds is 1.
    let n = syscall!(poll(&mut p, 1, ms))?;
    Ok(n > 0)
}

/// Whether stdout was closed when the program started. Rust's runtime
/// points a closed standard descriptor at /dev/null, opened read-write,
/// before `main` runs (so no socket takes its number); a shell's
/// `>/dev/null` opens it write-only. So: /dev/null, read-write, means the
/// caller closed stdout, and writing the results "to stdout" is an error.
pub fn stdout_was_closed() -> bool {
    let dev_null =
        std::fs::read_link("/proc/self/fd/1").is_ok_and(|p| p == std::path::Path::new("/dev/null"));
    // SAFETY: F_GETFL on a plain integer descriptor reads no memory.
    let mode = syscall!(fcntl(1, libc::F_GETFL)).map(|f| f & libc::O_ACCMODE);
    dev_null && mode.is_ok_and(|m| m == libc::O_RDWR)
}
