//! Stage: transport data path. One send and one receive per message whenever
//! the message fits the buffer: streams loop over short counts (and use
//! `MSG_WAITALL` when blocking), datagrams make exactly one call per message
//! and check its length. EINTR is retried, and ENOBUFS within the timeout. Nothing here allocates or formats
//! unless a call has already failed.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use super::TransportOpts;
use crate::spec::Wait;
use crate::sys;

/// Why a data-path call failed.
#[derive(Debug)]
pub enum Cause {
    /// The OS said no.
    Os(io::Error),
    /// Nothing arrived (or nothing could be sent) within the timeout.
    TimedOut(Duration),
    /// The peer closed its end (EOF, EPIPE, ECONNRESET, ECONNREFUSED).
    PeerClosed,
    /// A datagram of the wrong length was sent or received.
    Length { got: usize, want: usize },
    /// `--verify`: the echoed payload differs from what was sent.
    Corrupt { offset: usize },
    /// A connection to the run's listener came from another process
    /// (described here), not from the run's client.
    Foreign(String),
    /// Fault injection (`--fault-server-exit-after`, for tests): the server
    /// stops here, as a crashed one would, and says nothing.
    Injected,
    /// `load`: more requests in flight than the client keeps account of;
    /// the server has fallen that far behind the schedule.
    Backlog(usize),
}

/// A failed data-path call: which call, and why.
#[derive(Debug)]
pub struct Fault {
    /// The libc call: `send`, `recv`, `read` or `write`.
    pub call: &'static str,
    /// What went wrong.
    pub cause: Cause,
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Os(e) => write!(f, "{e}"),
            Cause::TimedOut(t) => write!(
                f,
                "no progress for {} (the peer is stuck or gone)",
                humantime::format_duration(*t)
            ),
            Cause::PeerClosed => f.write_str("the peer closed its end"),
            Cause::Length { got, want } => {
                write!(
                    f,
                    "message boundary broken: {got} B where {want} B were expected"
                )
            }
            Cause::Corrupt { offset } => {
                write!(
                    f,
                    "echoed payload differs from the one sent at byte {offset}"
                )
            }
            Cause::Injected => f.write_str("fault injection: the server stopped here"),
            Cause::Backlog(n) => write!(
                f,
                "over {n} requests in flight: the server fell that far behind the schedule (lower --rate)"
            ),
            Cause::Foreign(who) => write!(
                f,
                "a foreign process connected to the run's listener ({who}); any local user can reach a loopback TCP port or an abstract socket name, and --netns isolates a run"
            ),
        }
    }
}

impl Fault {
    /// The injected death of a server (see [`Cause::Injected`]).
    pub fn injected() -> Self {
        Fault {
            call: "recv",
            cause: Cause::Injected,
        }
    }

    /// Classify a failed call: EAGAIN after a socket timeout is a timeout;
    /// EPIPE, ECONNRESET and ECONNREFUSED mean the peer is gone.
    pub fn from_io(call: &'static str, e: io::Error, timeout: Duration) -> Self {
        let cause = match e.raw_os_error() {
            Some(libc::EAGAIN) => Cause::TimedOut(timeout),
            Some(libc::EPIPE | libc::ECONNRESET | libc::ECONNREFUSED) => Cause::PeerClosed,
            _ => Cause::Os(e),
        };
        Fault { call, cause }
    }
}

/// A connected end that moves whole messages.
pub trait Endpoint: Send {
    /// Send all of `buf` as one message.
    fn send_msg(&mut self, buf: &[u8]) -> Result<(), Fault>;
    /// Receive exactly `buf.len()` bytes (streams) or one datagram of exactly
    /// that length (datagram and seqpacket).
    fn recv_msg(&mut self, buf: &mut [u8]) -> Result<(), Fault>;
    /// Send-side and receive-side system calls made so far.
    fn calls(&self) -> (u64, u64);
    /// Wait for the peer to close: the next receive must return end-of-file
    /// (data instead is a broken protocol, reported as a length error).
    fn recv_eof(&mut self) -> Result<(), Fault> {
        unimplemented!("this endpoint has no end-of-file")
    }
}

/// Receive with `op` until end-of-file; one byte of data is an error.
#[inline]
fn until_eof(
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
    spin: bool,
    send_timeout: Duration,
    recv_timeout: Duration,
}

impl From<&TransportOpts> for WaitCfg {
    fn from(o: &TransportOpts) -> Self {
        Self {
            spin: o.wait == Wait::Spin,
            send_timeout: o.timeout,
            recv_timeout: o.timeout,
        }
    }
}

/// Which way a call moves data: what `poll` waits for, and which bound applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
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
    timeout: Duration,
    spins: u32,
    since: Option<Instant>,
}

impl Waiter {
    #[inline(always)]
    fn new(cfg: WaitCfg, dir: Dir) -> Self {
        Self {
            spin: cfg.spin,
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
fn all_bytes(
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
fn one_datagram(
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

fn prepare_socket(fd: &OwnedFd, opts: &TransportOpts) -> io::Result<()> {
    sys::socket::set_timeouts(fd.as_fd(), opts.timeout)?;
    sys::socket::set_nonblocking(fd.as_fd(), opts.wait == Wait::Spin)
}

/// What every socket end holds: its descriptor, how its calls wait, and
/// the calls made each way.
#[derive(Debug)]
struct Sock {
    fd: OwnedFd,
    cfg: WaitCfg,
    sends: u64,
    recvs: u64,
}

impl Sock {
    /// A connected socket: timeouts and blocking mode set.
    fn new(fd: OwnedFd, opts: &TransportOpts) -> io::Result<Self> {
        prepare_socket(&fd, opts)?;
        Ok(Self::adopt(fd, opts))
    }

    /// A blocking socket whose timeouts are already set: no system call.
    fn adopt(fd: OwnedFd, opts: &TransportOpts) -> Self {
        Self {
            fd,
            cfg: opts.into(),
            sends: 0,
            recvs: 0,
        }
    }

    /// A second end on the same socket (`dup`), with counts of its own.
    fn try_clone(&self) -> io::Result<Self> {
        Ok(Self {
            fd: self.fd.try_clone()?,
            cfg: self.cfg,
            sends: 0,
            recvs: 0,
        })
    }

    /// Non-blocking, retried in a busy loop (`--wait spin`).
    fn spin(&mut self) -> io::Result<()> {
        sys::socket::set_nonblocking(self.fd.as_fd(), true)?;
        self.cfg.spin = true;
        Ok(())
    }

    /// Bound receives by `timeout` instead of `--timeout` (blocking: the
    /// socket's SO_RCVTIMEO; spinning and after signals: the waiter's deadline).
    fn set_recv_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        sys::socket::set_recv_timeout(self.fd.as_fd(), timeout)?;
        self.cfg.recv_timeout = timeout;
        Ok(())
    }

    /// Read until the peer closes its end.
    fn recv_eof(&mut self) -> Result<(), Fault> {
        let fd = self.fd.as_fd();
        until_eof((fd, "recv"), self.cfg, &mut self.recvs, |b| {
            sys::io::recv(fd, b, 0)
        })
    }
}

/// A stream socket end: `send`/`recv`, looping over short counts.
#[derive(Debug)]
pub struct StreamSocket {
    sock: Sock,
    recv_flags: libc::c_int,
}

impl StreamSocket {
    /// Take a connected stream socket; sets timeouts and blocking mode.
    pub fn new(fd: OwnedFd, opts: &TransportOpts) -> io::Result<Self> {
        Ok(Self {
            sock: Sock::new(fd, opts)?,
            // Blocking: one recv returns the whole message when it fits.
            recv_flags: if opts.wait == Wait::Block {
                libc::MSG_WAITALL
            } else {
                0
            },
        })
    }

    /// Take a blocking stream socket whose timeouts are already set (an
    /// accepted socket inherits them from its listener): no system call.
    pub fn adopt(fd: OwnedFd, opts: &TransportOpts) -> Self {
        Self {
            sock: Sock::adopt(fd, opts),
            recv_flags: libc::MSG_WAITALL,
        }
    }

    /// The socket.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.sock.fd.as_fd()
    }

    /// A second end on the same socket (`dup`), for a thread that moves
    /// data the other way at the same time.
    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(Self {
            sock: self.sock.try_clone()?,
            recv_flags: self.recv_flags,
        })
    }

    /// Make the socket non-blocking and retry in a busy loop (`--wait spin`).
    pub fn spin(&mut self) -> io::Result<()> {
        self.sock.spin()?;
        self.recv_flags = 0;
        Ok(())
    }

    /// Bound receives by `timeout` instead of `--timeout` (blocking: the
    /// socket's SO_RCVTIMEO; spinning and after signals: the waiter's deadline).
    pub fn set_recv_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.sock.set_recv_timeout(timeout)
    }
}

impl Endpoint for StreamSocket {
    #[inline]
    fn send_msg(&mut self, buf: &[u8]) -> Result<(), Fault> {
        let s = &mut self.sock;
        let fd = s.fd.as_fd();
        all_bytes(
            buf.len(),
            (fd, Dir::Send, "send"),
            s.cfg,
            &mut s.sends,
            |off| sys::io::send(fd, &buf[off..], 0),
        )
    }
    #[inline]
    fn recv_msg(&mut self, buf: &mut [u8]) -> Result<(), Fault> {
        let s = &mut self.sock;
        let fd = s.fd.as_fd();
        let flags = self.recv_flags;
        all_bytes(
            buf.len(),
            (fd, Dir::Recv, "recv"),
            s.cfg,
            &mut s.recvs,
            |off| sys::io::recv(fd, &mut buf[off..], flags),
        )
    }
    fn calls(&self) -> (u64, u64) {
        (self.sock.sends, self.sock.recvs)
    }
    fn recv_eof(&mut self) -> Result<(), Fault> {
        self.sock.recv_eof()
    }
}

/// A datagram or seqpacket socket end: one `send`/`recv` per message, length checked.
#[derive(Debug)]
pub struct DatagramSocket {
    sock: Sock,
}

impl DatagramSocket {
    /// Take a connected datagram/seqpacket socket; sets timeouts and blocking mode.
    pub fn new(fd: OwnedFd, opts: &TransportOpts) -> io::Result<Self> {
        Ok(Self {
            sock: Sock::new(fd, opts)?,
        })
    }

    /// Take a blocking seqpacket socket whose timeouts are already set: no
    /// system call.
    pub fn adopt(fd: OwnedFd, opts: &TransportOpts) -> Self {
        Self {
            sock: Sock::adopt(fd, opts),
        }
    }

    /// The socket.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.sock.fd.as_fd()
    }

    /// A second end on the same socket (`dup`).
    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(Self {
            sock: self.sock.try_clone()?,
        })
    }

    /// Make the socket non-blocking and retry in a busy loop (`--wait spin`).
    pub fn spin(&mut self) -> io::Result<()> {
        self.sock.spin()
    }

    /// Bound receives by `timeout` (see [`StreamSocket::set_recv_timeout`]).
    pub fn set_recv_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.sock.set_recv_timeout(timeout)
    }
}

impl Endpoint for DatagramSocket {
    #[inline]
    fn send_msg(&mut self, buf: &[u8]) -> Result<(), Fault> {
        let s = &mut self.sock;
        let fd = s.fd.as_fd();
        one_datagram(
            buf.len(),
            (fd, Dir::Send, "send"),
            s.cfg,
            &mut s.sends,
            || sys::io::send(fd, buf, 0),
        )
    }
    #[inline]
    fn recv_msg(&mut self, buf: &mut [u8]) -> Result<(), Fault> {
        let s = &mut self.sock;
        let fd = s.fd.as_fd();
        let len = buf.len();
        // MSG_TRUNC makes recv report the datagram's real length, so a longer
        // one is caught rather than silently cut.
        one_datagram(len, (fd, Dir::Recv, "recv"), s.cfg, &mut s.recvs, || {
            sys::io::recv(fd, buf, libc::MSG_TRUNC)
        })
    }
    fn calls(&self) -> (u64, u64) {
        (self.sock.sends, self.sock.recvs)
    }
    fn recv_eof(&mut self) -> Result<(), Fault> {
        self.sock.recv_eof()
    }
}

/// One end of a pipe pair: `write` to one pipe, `read` from the other.
/// Pipes take no `SO_RCVTIMEO`: a dead peer shows as EOF/EPIPE, and in
/// process mode the supervisor kills a stuck server.
#[derive(Debug)]
pub struct PipeEnd {
    rd: OwnedFd,
    wr: OwnedFd,
    cfg: WaitCfg,
    writes: u64,
    reads: u64,
}

impl PipeEnd {
    /// Take the read end of one pipe and the write end of the other.
    pub fn new(rd: OwnedFd, wr: OwnedFd, opts: &TransportOpts) -> io::Result<Self> {
        let spin = opts.wait == Wait::Spin;
        sys::socket::set_nonblocking(rd.as_fd(), spin)?;
        sys::socket::set_nonblocking(wr.as_fd(), spin)?;
        Ok(Self {
            rd,
            wr,
            cfg: opts.into(),
            writes: 0,
            reads: 0,
        })
    }
    /// The pipe this end reads.
    pub fn read_fd(&self) -> BorrowedFd<'_> {
        self.rd.as_fd()
    }
    /// The pipe this end writes.
    pub fn write_fd(&self) -> BorrowedFd<'_> {
        self.wr.as_fd()
    }
    /// A second end on the same pipes (`dup`).
    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(Self {
            rd: self.rd.try_clone()?,
            wr: self.wr.try_clone()?,
            cfg: self.cfg,
            writes: 0,
            reads: 0,
        })
    }
}

impl PipeEnd {
    /// Bound reads by `timeout` where a bound applies to pipes: spinning, and
    /// after a signal (a blocking pipe read has no SO_RCVTIMEO).
    pub fn set_recv_timeout(&mut self, timeout: Duration) {
        self.cfg.recv_timeout = timeout;
    }
}

impl Endpoint for PipeEnd {
    #[inline]
    fn send_msg(&mut self, buf: &[u8]) -> Result<(), Fault> {
        let fd = self.wr.as_fd();
        all_bytes(
            buf.len(),
            (fd, Dir::Send, "write"),
            self.cfg,
            &mut self.writes,
            |off| sys::io::write(fd, &buf[off..]),
        )
    }
    #[inline]
    fn recv_msg(&mut self, buf: &mut [u8]) -> Result<(), Fault> {
        let fd = self.rd.as_fd();
        all_bytes(
            buf.len(),
            (fd, Dir::Recv, "read"),
            self.cfg,
            &mut self.reads,
            |off| sys::io::read(fd, &mut buf[off..]),
        )
    }
    fn calls(&self) -> (u64, u64) {
        (self.writes, self.reads)
    }
    fn recv_eof(&mut self) -> Result<(), Fault> {
        let fd = self.rd.as_fd();
        until_eof((fd, "read"), self.cfg, &mut self.reads, |b| {
            sys::io::read(fd, b)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCK: WaitCfg = WaitCfg {
        spin: false,
        send_timeout: Duration::from_millis(20),
        recv_timeout: Duration::from_millis(20),
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
