//! Stage: transport data path. The connected ends of every transport
//! (stream and datagram sockets, pipe pairs) and the `Endpoint` trait the
//! timed loops are generic over: one send and one receive per message
//! whenever the message fits the buffer; streams loop over short counts
//! (and use `MSG_WAITALL` when blocking), datagrams make exactly one call
//! per message and check its length. How each call waits and retries is
//! in `wait`; why one failed, in `fault`.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use super::TransportOpts;
use super::fault::Fault;
use super::wait::{Dir, WaitCfg, all_bytes, one_datagram, until_eof};
use crate::spec::Wait;
use crate::sys;
use crate::sys::tstamp::Sent;

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
    /// [`Endpoint::recv_msg`], and the kernel's receive stamp of the
    /// message's last segment (`--trace stamp`: realtime ns), where the
    /// socket gives one (TCP and UDP with stamps enabled).
    fn recv_msg_stamped(&mut self, buf: &mut [u8]) -> Result<Option<u64>, Fault> {
        self.recv_msg(buf).map(|()| None)
    }
    /// The transmit stamps queued since the last call (`--trace stamp`).
    fn sent_stamps(&mut self) -> Result<Sent, Fault> {
        Ok(Sent::default())
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

    /// The transmit stamps waiting on the error queue (its `recvmsg` calls
    /// count as receive-side calls).
    fn sent_stamps(&mut self) -> Result<Sent, Fault> {
        sys::tstamp::drain_sent(self.fd.as_fd(), &mut self.recvs)
            .map_err(|e| Fault::from_io("recvmsg", e, self.cfg.recv_timeout))
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

    /// The socket is in a BPF sockmap: a blocking call's EAGAIN may mean a
    /// signal, not the timeout (see `WaitCfg::early_eagain`).
    pub fn in_sockmap(&mut self) {
        self.sock.cfg.early_eagain = true;
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
    fn recv_msg_stamped(&mut self, buf: &mut [u8]) -> Result<Option<u64>, Fault> {
        let s = &mut self.sock;
        let fd = s.fd.as_fd();
        let flags = self.recv_flags;
        let mut stamp = None;
        all_bytes(
            buf.len(),
            (fd, Dir::Recv, "recvmsg"),
            s.cfg,
            &mut s.recvs,
            |off| {
                let (n, t) = sys::tstamp::recv(fd, &mut buf[off..], flags)?;
                stamp = t.or(stamp);
                Ok(n)
            },
        )?;
        Ok(stamp)
    }
    fn sent_stamps(&mut self) -> Result<Sent, Fault> {
        self.sock.sent_stamps()
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
    fn recv_msg_stamped(&mut self, buf: &mut [u8]) -> Result<Option<u64>, Fault> {
        let s = &mut self.sock;
        let fd = s.fd.as_fd();
        let len = buf.len();
        let mut stamp = None;
        one_datagram(len, (fd, Dir::Recv, "recvmsg"), s.cfg, &mut s.recvs, || {
            let (n, t) = sys::tstamp::recv(fd, buf, libc::MSG_TRUNC)?;
            stamp = t;
            Ok(n)
        })?;
        Ok(stamp)
    }
    fn sent_stamps(&mut self) -> Result<Sent, Fault> {
        self.sock.sent_stamps()
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
