//! Stage: system calls. Kernel software timestamps on a TCP or UDP socket
//! (`SO_TIMESTAMPING`, see the kernel's Documentation/networking/
//! timestamping.rst): when a sent message entered the device queue
//! (`SCM_TSTAMP_SCHED`, in `__dev_queue_xmit`) and when the device took it
//! (`SCM_TSTAMP_SND`, loopback's `skb_tx_timestamp`), read back from the
//! error queue; and when a received one was stamped, delivered with the
//! data: UDP's as it enters the stack (`netif_rx`), TCP's (since Linux
//! 5.18, whose TCP skbs carry a delivery time through loopback) at IP's
//! local delivery, after IP's receive. All are `CLOCK_REALTIME`. No
//! privilege needed; no allocation here (the control buffers live on the
//! stack).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `SCM_TSTAMP_SND` and `SCM_TSTAMP_SCHED` (linux/errqueue.h).
const TSTAMP_SND: u32 = 0;
const TSTAMP_SCHED: u32 = 1;

/// Ask for the transmit stamps (scheduled, sent) and receive stamps of a
/// socket (`on`), or stop them.
pub fn enable(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let flags: libc::c_uint = if on {
        libc::SOF_TIMESTAMPING_TX_SCHED
            | libc::SOF_TIMESTAMPING_TX_SOFTWARE
            | libc::SOF_TIMESTAMPING_RX_SOFTWARE
            | libc::SOF_TIMESTAMPING_SOFTWARE
            | libc::SOF_TIMESTAMPING_OPT_TSONLY
    } else {
        0
    };
    // SAFETY: `flags` is a live c_uint whose size is passed; `fd` is borrowed.
    syscall!(setsockopt(
        fd.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_TIMESTAMPING,
        (&raw const flags).cast(),
        size_of::<libc::c_uint>() as libc::socklen_t
    ))?;
    Ok(())
}

/// Wait, up to `within`, until the kernel stamps received packets: the
/// first socket to ask switches that on from a work queue, later (on a
/// busy machine, many milliseconds later). Probes with a pair of UDP
/// sockets on 127.0.0.1, one datagram a millisecond. False: not in time.
pub fn wait_for_receive_stamps(within: std::time::Duration) -> io::Result<bool> {
    use std::os::fd::AsFd;
    let a = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let b = std::net::UdpSocket::bind("127.0.0.1:0")?;
    a.connect(b.local_addr()?)?;
    enable(b.as_fd(), true)?;
    b.set_read_timeout(Some(std::time::Duration::from_millis(100)))?;
    let end = std::time::Instant::now() + within;
    let mut buf = [0u8; 1];
    loop {
        // A signal, or a probe not back within the read timeout: try again
        // until `within` is over.
        let again = |e: &io::Error| {
            matches!(
                e.kind(),
                io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
            )
        };
        match a.send(b"?").map(|_| recv(b.as_fd(), &mut buf, 0)) {
            Ok(Ok((_, Some(_)))) => return Ok(true),
            Ok(Ok((_, None))) => {}
            Ok(Err(e)) | Err(e) if again(&e) => {}
            Ok(Err(e)) | Err(e) => return Err(e),
        }
        if std::time::Instant::now() >= end {
            return Ok(false);
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Room for the control messages of one `recvmsg`, aligned for `cmsghdr`.
#[repr(C, align(8))]
struct Control([u8; 256]);

fn ns(t: &libc::timespec) -> Option<u64> {
    let v = t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64;
    (v != 0).then_some(v)
}

/// Each control message of `msg`, as (level, type, data pointer, data
/// length); none when the kernel had to cut them short (`MSG_CTRUNC`).
///
/// SAFETY (of callers): `msg` was filled by a successful `recvmsg` whose
/// control buffer is still alive.
unsafe fn each_cmsg(msg: &libc::msghdr, mut f: impl FnMut(i32, i32, *const u8, usize)) {
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return; // cut short: nothing in it is trusted
    }
    // SAFETY: the CMSG_* walkers stay within msg_control/msg_controllen,
    // which the kernel set (see the caller's contract).
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            let header = libc::CMSG_LEN(0) as usize;
            let len = ((*c).cmsg_len as usize).saturating_sub(header);
            f((*c).cmsg_level, (*c).cmsg_type, libc::CMSG_DATA(c), len);
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
}

/// An `SCM_TIMESTAMPING` payload's size: three `timespec`s.
const STAMPS: usize = 3 * size_of::<libc::timespec>();

/// The software stamp of an `SCM_TIMESTAMPING` message's data.
///
/// SAFETY (of callers): `data` points at an `SCM_TIMESTAMPING` payload
/// (three `timespec`s) inside a live control buffer.
unsafe fn software(data: *const u8) -> Option<u64> {
    // SAFETY: see the contract; read_unaligned because CMSG_DATA is only
    // guaranteed aligned for the header's own type.
    let ts = unsafe { std::ptr::read_unaligned(data.cast::<[libc::timespec; 3]>()) };
    ns(&ts[0])
}

/// `recvmsg(2)` of up to `buf.len()` bytes with `flags`: the byte count and
/// the receive stamp of the data, if the kernel gave one.
#[inline]
pub fn recv(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    flags: libc::c_int,
) -> io::Result<(usize, Option<u64>)> {
    let mut control = Control([0; 256]);
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is a valid (empty) value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast();
    msg.msg_controllen = control.0.len();
    // SAFETY: msg points at a live iovec over the exclusively borrowed
    // `buf` and at the live `control` buffer, both with their lengths.
    let n = syscall!(recvmsg(fd.as_raw_fd(), &raw mut msg, flags))?;
    let mut stamp = None;
    // SAFETY: recvmsg succeeded and `control` is alive.
    unsafe {
        each_cmsg(&msg, |level, ty, data, len| {
            if level == libc::SOL_SOCKET && ty == libc::SCM_TIMESTAMPING && len >= STAMPS {
                stamp = software(data);
            }
        });
    }
    Ok((n as usize, stamp))
}

/// The latest transmit stamps read from the error queue: when the message
/// entered the device queue, and when the device took it (realtime ns).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    pub queued: Option<u64>,
    pub device: Option<u64>,
}

/// Read every transmit stamp waiting on the error queue, without blocking;
/// the latest of each kind wins. `calls` counts the `recvmsg` calls made.
pub fn drain_sent(fd: BorrowedFd<'_>, calls: &mut u64) -> io::Result<Sent> {
    let mut out = Sent::default();
    loop {
        *calls += 1;
        let mut control = Control([0; 256]);
        // SAFETY: an all-zero msghdr is a valid (empty) value.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_control = control.0.as_mut_ptr().cast();
        msg.msg_controllen = control.0.len();
        // SAFETY: msg points at the live `control` buffer with its length
        // and at no data buffer (OPT_TSONLY: the error queue carries none).
        match syscall!(recvmsg(
            fd.as_raw_fd(),
            &raw mut msg,
            libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT
        )) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(out),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        let (mut stamp, mut kind) = (None, None);
        // SAFETY: recvmsg succeeded and `control` is alive; a RECVERR
        // payload is a sock_extended_err.
        unsafe {
            each_cmsg(&msg, |level, ty, data, len| {
                if level == libc::SOL_SOCKET && ty == libc::SCM_TIMESTAMPING && len >= STAMPS {
                    stamp = software(data);
                } else if ((level == libc::SOL_IP && ty == libc::IP_RECVERR)
                    || (level == libc::SOL_IPV6 && ty == libc::IPV6_RECVERR))
                    && len >= size_of::<libc::sock_extended_err>()
                {
                    let e = std::ptr::read_unaligned(data.cast::<libc::sock_extended_err>());
                    if e.ee_origin == libc::SO_EE_ORIGIN_TIMESTAMPING {
                        kind = Some(e.ee_info);
                    }
                }
            });
        }
        match kind {
            Some(TSTAMP_SCHED) => out.queued = stamp.or(out.queued),
            Some(TSTAMP_SND) => out.device = stamp.or(out.device),
            _ => {}
        }
    }
}

/// `CLOCK_REALTIME` now, ns: the clock the kernel's software stamps use.
#[inline]
pub fn realtime_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a live timespec; CLOCK_REALTIME always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &raw mut t) };
    ns(&t).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    /// A connected UDP pair on 127.0.0.1.
    fn udp_pair() -> (std::net::UdpSocket, std::net::UdpSocket) {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        a.connect(b.local_addr().unwrap()).unwrap();
        b.connect(a.local_addr().unwrap()).unwrap();
        (a, b)
    }

    #[test]
    fn a_loopback_datagram_is_stamped_in_order_queued_device_received() {
        let (a, b) = udp_pair();
        enable(a.as_fd(), true).unwrap();
        enable(b.as_fd(), true).unwrap();
        // The kernel turns receive stamps on later, from a work queue.
        assert!(wait_for_receive_stamps(std::time::Duration::from_secs(5)).unwrap());
        let before = realtime_ns();
        a.send(b"stamp me").unwrap();
        let mut calls = 0;
        let sent = drain_sent(a.as_fd(), &mut calls).unwrap();
        assert_eq!(calls, 3, "a stamp of each kind, then EAGAIN");
        let mut buf = [0u8; 16];
        let (n, rx) = recv(b.as_fd(), &mut buf, 0).unwrap();
        let after = realtime_ns();
        assert_eq!(&buf[..n], b"stamp me");
        let (q, d, r) = (sent.queued.unwrap(), sent.device.unwrap(), rx.unwrap());
        assert!(
            before <= q && q <= d && d <= r && r <= after,
            "{before} {q} {d} {r} {after}"
        );
        // Nothing more waits, and a second drain finds nothing.
        assert_eq!(drain_sent(a.as_fd(), &mut calls).unwrap(), Sent::default());
    }

    #[test]
    fn receive_stamps_are_on_once_waited_for() {
        let (a, b) = udp_pair();
        enable(b.as_fd(), true).unwrap();
        assert!(wait_for_receive_stamps(std::time::Duration::from_secs(5)).unwrap());
        a.send(b"x").unwrap();
        let mut buf = [0u8; 4];
        assert!(recv(b.as_fd(), &mut buf, 0).unwrap().1.is_some());
    }

    #[test]
    fn stamps_stop_when_disabled() {
        let (a, b) = udp_pair();
        enable(a.as_fd(), true).unwrap();
        enable(b.as_fd(), true).unwrap();
        assert!(wait_for_receive_stamps(std::time::Duration::from_secs(5)).unwrap());
        let mut buf = [0u8; 4];
        let mut calls = 0;
        // On: both kinds of stamp come.
        a.send(b"x").unwrap();
        assert!(recv(b.as_fd(), &mut buf, 0).unwrap().1.is_some());
        assert_ne!(drain_sent(a.as_fd(), &mut calls).unwrap(), Sent::default());
        // Off: neither does.
        enable(a.as_fd(), false).unwrap();
        enable(b.as_fd(), false).unwrap();
        a.send(b"x").unwrap();
        let (n, rx) = recv(b.as_fd(), &mut buf, 0).unwrap();
        assert_eq!((n, rx), (1, None));
        assert_eq!(drain_sent(a.as_fd(), &mut calls).unwrap(), Sent::default());
    }
}
