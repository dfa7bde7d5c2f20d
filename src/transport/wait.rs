//! Stage: transport data path. How a call waits and retries: blocking with
//! SO_RCVTIMEO/SO_SNDTIMEO or spinning on a non-blocking socket, EINTR
//! retried within what is left of one deadline, ENOBUFS within the timeout;
//! the loops that move a whole stream message, one datagram, or read to
//! end-of-file. Nothing here allocates or formats unless a call has
//! already failed.

use std::io;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use super::TransportOpts;
use super::fault::{Cause, Fault};
use crate::spec::Wait;
use crate::sys;

/// Receive with `op` until end-of-file; one byte of data is an error.
#[inline]
pub(super) fn until_eof(
    (fd, call): (BorrowedFd<'_>, &'static str),
    cfg: WaitCfg,
    count: &mut u64,
    mut op: impl FnMut(&mut [u8]) -> io::Result<usize>,
) -> Result<(), Fault> {
    let mut w = Waiter::new(cfg, Dir::Recv);
    let mut b = [0u8; 1];
    loop {
        *count += 1;
        match op(&mut b) {
            Ok(0) => return Ok(()),
            Ok(got) => {
                return Err(Fault {
                    call,
                    cause: Cause::Length { got, want: 0 },
                });
            }
            Err(e) => w.retry(fd, Dir::Recv, call, e)?,
        }
    }
}

/// Wait policy of one endpoint: blocking or spinning, and how long a send
/// or a receive may go without progress. Copied into a [`Waiter`] per message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WaitCfg {
    pub(super) spin: bool,
    pub(super) send_timeout: Duration,
    pub(super) recv_timeout: Duration,
    /// A blocking call may fail with EAGAIN before its timeout: a socket in
    /// a BPF sockmap (tcp_bpf_recvmsg answers EAGAIN when a signal ends its
    /// wait, where tcp_recvmsg answers EINTR). Handled as an interruption.
    pub(super) early_eagain: bool,
}

impl From<&TransportOpts> for WaitCfg {
    fn from(o: &TransportOpts) -> Self {
        Self {
            spin: o.wait == Wait::Spin,
            send_timeout: o.timeout,
            recv_timeout: o.timeout,
            early_eagain: false,
        }
    }
}

/// Which way a call moves data: what `poll` waits for, and which bound applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dir {
    Send,
    Recv,
}

/// Decides, for one message, whether a failed call is retried, and bounds
/// the retries by one deadline. Blocking sockets see EAGAIN only when
/// `SO_RCVTIMEO`/`SO_SNDTIMEO` expired. A blocking call interrupted by a
/// signal (EINTR) is not simply repeated, which would start the socket's
/// timeout afresh each time (a wait interrupted more often than its timeout
/// would never end): the waiter polls for readiness with whatever is left of
/// one deadline, set at the first interruption. Spinning sockets see EAGAIN
/// all the time and read the clock only every 65,536 tries. Progress (bytes
/// moved) starts a new deadline. No clock is read until a call has failed.
struct Waiter {
    spin: bool,
    early_eagain: bool,
    timeout: Duration,
    spins: u32,
    since: Option<Instant>,
}

impl Waiter {
    #[inline(always)]
    fn new(cfg: WaitCfg, dir: Dir) -> Self {
        Self {
            spin: cfg.spin,
            early_eagain: cfg.early_eagain,
            timeout: match dir {
                Dir::Send => cfg.send_timeout,
                Dir::Recv => cfg.recv_timeout,
            },
            spins: 0,
            since: None,
        }
    }

    #[inline]
    fn retry(
        &mut self,
        fd: BorrowedFd<'_>,
        dir: Dir,
        call: &'static str,
        e: io::Error,
    ) -> Result<(), Fault> {
        match e.raw_os_error() {
            Some(libc::EINTR) if !self.spin => self.wait_ready(fd, dir, call),
            Some(libc::EINTR) => self.spin(call),
            Some(libc::EAGAIN) if self.spin => self.spin(call),
            Some(libc::EAGAIN) if self.early_eagain => self.wait_ready(fd, dir, call),
            // No buffer for this datagram this instant (a passing shortage
            // on a busy host): give the CPU up once and send it again,
            // bounded by the timeout as a spin is.
            Some(libc::ENOBUFS) => {
                std::thread::yield_now();
                self.spin(call)
            }
            _ => Err(Fault::from_io(call, e, self.timeout)),
        }
    }

    /// After an interruption: wait for `fd` to be ready, within what is left
    /// of the deadline; signals during the wait do not extend it.
    #[cold]
    fn wait_ready(
        &mut self,
        fd: BorrowedFd<'_>,
        dir: Dir,
        call: &'static str,
    ) -> Result<(), Fault> {
        let events = match dir {
            Dir::Send => libc::POLLOUT,
            Dir::Recv => libc::POLLIN,
        };
        let timed_out = || Fault {
            call,
            cause: Cause::TimedOut(self.timeout),
        };
        loop {
            let now = Instant::now();
            let since = *self.since.get_or_insert(now);
            let left = self
                .timeout
                .checked_sub(now.duration_since(since))
                .filter(|d| !d.is_zero())
                .ok_or_else(timed_out)?;
            match sys::io::poll_one(fd, events, left) {
                Ok(true) => return Ok(()),
                Ok(false) => return Err(timed_out()),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) => return Err(Fault::from_io("poll", e, self.timeout)),
            }
        }
    }

    #[inline]
    fn spin(&mut self, call: &'static str) -> Result<(), Fault> {
        self.spins = self.spins.wrapping_add(1);
        if self.spins & 0xffff == 0 {
            let now = Instant::now();
            match self.since {
                None => self.since = Some(now),
                Some(t) if now.duration_since(t) > self.timeout => {
                    return Err(Fault {
                        call,
                        cause: Cause::TimedOut(self.timeout),
                    });
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Bytes moved: the next wait has a full deadline again.
    #[inline(always)]
    fn progressed(&mut self) {
        self.since = None;
    }
}

/// Move `len` bytes with repeated calls of `op(offset)`; 0 means the peer is gone.
#[inline(always)]
pub(super) fn all_bytes(
    len: usize,
    (fd, dir, call): (BorrowedFd<'_>, Dir, &'static str),
    cfg: WaitCfg,
    count: &mut u64,
    mut op: impl FnMut(usize) -> io::Result<usize>,
) -> Result<(), Fault> {
    let mut w = Waiter::new(cfg, dir);
    let mut off = 0;
    while off < len {
        *count += 1;
        match op(off) {
            Ok(0) => {
                return Err(Fault {
                    call,
                    cause: Cause::PeerClosed,
                });
            }
            Ok(n) => {
                off += n;
                w.progressed();
            }
            Err(e) => w.retry(fd, dir, call, e)?,
        }
    }
    Ok(())
}

/// Move one datagram of `len` bytes with one successful call of `op()`.
#[inline(always)]
pub(super) fn one_datagram(
    len: usize,
    (fd, dir, call): (BorrowedFd<'_>, Dir, &'static str),
    cfg: WaitCfg,
    count: &mut u64,
    mut op: impl FnMut() -> io::Result<usize>,
) -> Result<(), Fault> {
    let mut w = Waiter::new(cfg, dir);
    loop {
        *count += 1;
        let cause = match op() {
            Ok(n) if n == len => return Ok(()),
            Ok(0) => Cause::PeerClosed,
            Ok(got) => Cause::Length { got, want: len },
            Err(e) => {
                w.retry(fd, dir, call, e)?;
                continue;
            }
        };
        return Err(Fault { call, cause });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{DatagramSocket, Endpoint};
    use std::os::fd::{AsFd, OwnedFd};

    const BLOCK: WaitCfg = WaitCfg {
        spin: false,
        send_timeout: Duration::from_millis(20),
        recv_timeout: Duration::from_millis(20),
        early_eagain: false,
    };
    const SPIN: WaitCfg = WaitCfg {
        spin: true,
        ..BLOCK
    };

    fn os(code: i32) -> io::Result<usize> {
        Err(io::Error::from_raw_os_error(code))
    }

    /// Replays `script`, one entry per call.
    fn replay(script: Vec<io::Result<usize>>) -> impl FnMut() -> io::Result<usize> {
        let mut it = script.into_iter();
        move || it.next().expect("no more calls scripted")
    }

    /// A socket pair whose first end is readable (a byte waits) and writable.
    fn ready() -> (OwnedFd, OwnedFd) {
        let (a, b) = sys::socket::socketpair(libc::SOCK_STREAM).unwrap();
        sys::io::send(b.as_fd(), &[1], 0).unwrap();
        (a, b)
    }

    #[test]
    fn streams_retry_eintr_and_short_counts() {
        let (a, _b) = ready();
        let mut count = 0;
        let mut op = replay(vec![os(libc::EINTR), Ok(3), os(libc::EINTR), Ok(61)]);
        all_bytes(
            64,
            (a.as_fd(), Dir::Recv, "recv"),
            BLOCK,
            &mut count,
            |_| op(),
        )
        .unwrap();
        assert_eq!(count, 4, "every call is counted, failed ones too");
    }

    /// In a sockmap, a blocking receive's EAGAIN can be a signal (the
    /// data then arrives); elsewhere it is SO_RCVTIMEO, and final.
    #[test]
    fn a_sockmap_sockets_early_eagain_is_waited_out() {
        let (a, _b) = ready();
        let mut op = replay(vec![os(libc::EAGAIN), Ok(64)]);
        let cfg = WaitCfg {
            early_eagain: true,
            ..BLOCK
        };
        all_bytes(64, (a.as_fd(), Dir::Recv, "recv"), cfg, &mut 0, |_| op()).unwrap();
        let mut op = replay(vec![os(libc::EAGAIN), Ok(64)]);
        let f = all_bytes(64, (a.as_fd(), Dir::Recv, "recv"), BLOCK, &mut 0, |_| op()).unwrap_err();
        assert!(matches!(f.cause, Cause::TimedOut(_)), "{f:?}");
    }

    #[test]
    fn datagrams_retry_eintr_and_enobufs_then_send_once() {
        let (a, _b) = ready();
        let mut count = 0;
        let op = replay(vec![
            os(libc::ENOBUFS),
            os(libc::EINTR),
            os(libc::ENOBUFS),
            Ok(64),
        ]);
        one_datagram(64, (a.as_fd(), Dir::Send, "send"), BLOCK, &mut count, op).unwrap();
        assert_eq!(count, 4);
    }

    /// A call interrupted again and again, faster than its timeout, while
    /// nothing ever becomes ready: the retries share one deadline, so the
    /// wait ends with a timeout instead of going on for ever.
    #[test]
    fn retries_after_signals_share_one_deadline() {
        let (a, _b) = sys::socket::socketpair(libc::SOCK_STREAM).unwrap(); // nothing to read
        let t0 = Instant::now();
        let mut calls = 0;
        let f = all_bytes(8, (a.as_fd(), Dir::Recv, "recv"), BLOCK, &mut calls, |_| {
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "the deadline never came"
            );
            os(libc::EINTR)
        })
        .unwrap_err();
        assert!(matches!(f.cause, Cause::TimedOut(_)), "{f:?}");
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        // Progress in between gives the next wait a full deadline again.
        let (a, _b) = ready();
        let mut i = 0;
        all_bytes(100, (a.as_fd(), Dir::Recv, "recv"), BLOCK, &mut 0, |_| {
            i += 1;
            if i % 2 == 1 { os(libc::EINTR) } else { Ok(1) }
        })
        .unwrap();
    }

    #[test]
    fn lasting_enobufs_ends_within_the_timeout() {
        let (a, _b) = ready();
        let t0 = Instant::now();
        let f = one_datagram(64, (a.as_fd(), Dir::Send, "send"), BLOCK, &mut 0, || {
            os(libc::ENOBUFS)
        })
        .unwrap_err();
        assert!(matches!(f.cause, Cause::TimedOut(_)), "{f:?}");
        assert!(t0.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn emsgsize_is_an_error_naming_the_call() {
        let (a, _b) = ready();
        let f = one_datagram(
            70_000,
            (a.as_fd(), Dir::Send, "send"),
            BLOCK,
            &mut 0,
            || os(libc::EMSGSIZE),
        )
        .unwrap_err();
        assert_eq!(f.call, "send");
        assert!(f.cause.to_string().contains("Message too long"), "{f:?}");
    }

    #[test]
    fn peer_gone_and_boundaries_are_told_apart() {
        let (a, _b) = ready();
        let snd = (a.as_fd(), Dir::Send, "send");
        let rcv = (a.as_fd(), Dir::Recv, "recv");
        for code in [libc::EPIPE, libc::ECONNRESET, libc::ECONNREFUSED] {
            let f = one_datagram(8, snd, BLOCK, &mut 0, || os(code)).unwrap_err();
            assert!(matches!(f.cause, Cause::PeerClosed), "{code}: {f:?}");
        }
        let f = all_bytes(8, rcv, BLOCK, &mut 0, |_| Ok(0)).unwrap_err();
        assert!(matches!(f.cause, Cause::PeerClosed), "EOF: {f:?}");
        let f = one_datagram(8, rcv, BLOCK, &mut 0, || Ok(5)).unwrap_err();
        assert!(
            matches!(f.cause, Cause::Length { got: 5, want: 8 }),
            "{f:?}"
        );
    }

    #[test]
    fn eagain_is_a_timeout_when_blocking_and_bounded_when_spinning() {
        let (a, _b) = ready();
        let rcv = (a.as_fd(), Dir::Recv, "recv");
        let f = all_bytes(8, rcv, BLOCK, &mut 0, |_| os(libc::EAGAIN)).unwrap_err();
        assert!(matches!(f.cause, Cause::TimedOut(_)), "{f:?}");
        let t0 = Instant::now();
        let f = all_bytes(8, rcv, SPIN, &mut 0, |_| os(libc::EAGAIN)).unwrap_err();
        assert!(matches!(f.cause, Cause::TimedOut(_)), "{f:?}");
        assert!(t0.elapsed() < Duration::from_secs(2));
    }

    /// The receive bound is the endpoint's own: a sink's idle limit applies
    /// when spinning too, where SO_RCVTIMEO does nothing.
    #[test]
    fn receive_bound_applies_when_spinning() {
        let opts = TransportOpts {
            wait: Wait::Spin,
            timeout: Duration::from_secs(30),
            ..TransportOpts::default()
        };
        let (a, _b) = sys::socket::socketpair(libc::SOCK_DGRAM).unwrap();
        let mut d = DatagramSocket::new(a, &opts).unwrap();
        d.set_recv_timeout(Duration::from_millis(50)).unwrap();
        let t0 = Instant::now();
        let f = d.recv_msg(&mut [0u8; 8]).unwrap_err();
        assert!(
            matches!(f.cause, Cause::TimedOut(t) if t == Duration::from_millis(50)),
            "{f:?}"
        );
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    }
}
