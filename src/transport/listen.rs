//! Stage: transport set-up. Listening sockets and per-connection dialing, for
//! workloads that open a connection per request (`connect`, `rr
//! --new-connection`). Same addresses and options as [`super::connect_pair`].

use std::os::fd::{AsFd, OwnedFd};

use nix::sys::socket::{SockaddrIn, SockaddrIn6, SockaddrLike, UnixAddr};

use super::{
    AnyEndpoint, Ctx, DatagramSocket, SocketDir, StreamSocket, TransportKind, TransportOpts,
};
use crate::error::{Error, Result};
use crate::sys::socket as s;

/// A socket address of any connection-oriented transport.
#[derive(Debug, Clone, Copy)]
pub enum Addr {
    V4(SockaddrIn),
    V6(SockaddrIn6),
    Unix(UnixAddr),
}

impl Addr {
    fn as_sockaddr(&self) -> &dyn SockaddrLike {
        match self {
            Addr::V4(a) => a,
            Addr::V6(a) => a,
            Addr::Unix(a) => a,
        }
    }

    /// The TCP port, for TIME_WAIT accounting.
    pub fn port(&self) -> Option<u16> {
        match self {
            Addr::V4(a) => Some(a.port()),
            Addr::V6(a) => Some(a.port()),
            Addr::Unix(_) => None,
        }
    }
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Addr::V4(a) => a.fmt(f),
            Addr::V6(a) => a.fmt(f),
            Addr::Unix(a) => a.fmt(f),
        }
    }
}

fn domain(kind: TransportKind) -> libc::c_int {
    match kind {
        TransportKind::Tcp4 => libc::AF_INET,
        TransportKind::Tcp6 => libc::AF_INET6,
        _ => libc::AF_UNIX,
    }
}

fn sock_type(kind: TransportKind) -> libc::c_int {
    if kind == TransportKind::UdsSeqpacket {
        libc::SOCK_SEQPACKET
    } else {
        libc::SOCK_STREAM
    }
}

/// A bound, listening socket.
#[derive(Debug)]
pub struct Listener {
    fd: OwnedFd,
    kind: TransportKind,
    opts: TransportOpts,
}

/// Keeps a listener's socket file (path transports) until dropped, then
/// unlinks it. Held by the process that made it, not by a forked server.
#[derive(Debug)]
pub struct NameGuard(#[allow(dead_code)] Option<super::unix::Bound>);

/// Opens a fresh connection to a [`Listener`] per call.
#[derive(Debug, Clone, Copy)]
pub struct Dialer {
    kind: TransportKind,
    addr: Addr,
    opts: TransportOpts,
}

/// Listen on a fresh loopback address (port 0, a path in `dir`, or an
/// abstract name) for a connection-oriented transport.
pub fn listen(
    kind: TransportKind,
    size: usize,
    opts: &TransportOpts,
    dir: Option<&SocketDir>,
) -> Result<(Listener, Dialer, NameGuard)> {
    let ctx = Ctx::new(kind, size, opts);
    if !kind.is_connection_oriented() {
        return Err(Error::config(
            "--transport",
            kind,
            "has no connections; allowed: tcp4, tcp6, uds-stream, uds-seqpacket, uds-abstract",
        ));
    }
    let fd = ctx.server_socket(domain(kind), sock_type(kind), kind.name())?;
    let (addr, name) = match kind {
        TransportKind::Tcp4 | TransportKind::Tcp6 => {
            let (v4, v6) = super::inet::addresses(opts).0;
            let any = if kind == TransportKind::Tcp4 {
                Addr::V4(super::inet::v4(v4))
            } else {
                Addr::V6(super::inet::v6(v6))
            };
            s::bind(fd.as_fd(), any.as_sockaddr()).map_err(ctx.err("bind", any.to_string()))?;
            let bound = match any {
                Addr::V4(_) => Addr::V4(
                    s::local_addr(fd.as_fd()).map_err(ctx.err("getsockname", any.to_string()))?,
                ),
                _ => Addr::V6(
                    s::local_addr(fd.as_fd()).map_err(ctx.err("getsockname", any.to_string()))?,
                ),
            };
            s::set_nodelay(fd.as_fd(), opts.nodelay)
                .map_err(ctx.err("setsockopt", "TCP_NODELAY"))?;
            (bound, None)
        }
        TransportKind::UdsAbstract => {
            let a = super::unix::abstract_addr(ctx)?;
            s::bind(fd.as_fd(), &a).map_err(ctx.err("bind", a.to_string()))?;
            (Addr::Unix(a), None)
        }
        _ => {
            let dir = dir.ok_or_else(|| {
                ctx.err("bind", "socket directory")(std::io::Error::other(
                    "no private socket directory",
                ))
            })?;
            let (bound, a) = super::unix::Bound::bind(&fd, dir.fresh("l"), ctx)?;
            (Addr::Unix(a), Some(bound))
        }
    };
    // Accepted sockets inherit SO_RCVTIMEO/SO_SNDTIMEO and TCP_NODELAY from the listener.
    s::set_timeouts(fd.as_fd(), opts.timeout)
        .map_err(ctx.err("setsockopt", "SO_RCVTIMEO/SO_SNDTIMEO"))?;
    s::listen(fd.as_fd(), 1024).map_err(ctx.err("listen", addr.to_string()))?;
    Ok((
        Listener {
            fd,
            kind,
            opts: *opts,
        },
        Dialer {
            kind,
            addr,
            opts: *opts,
        },
        NameGuard(name),
    ))
}

fn wrap(kind: TransportKind, fd: OwnedFd, opts: &TransportOpts) -> std::io::Result<AnyEndpoint> {
    Ok(if kind.is_stream() {
        AnyEndpoint::Stream(StreamSocket::adopt(fd, opts))
    } else {
        AnyEndpoint::Datagram(DatagramSocket::adopt(fd, opts))
    })
}

impl Listener {
    /// The listening socket.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The bound on blocking calls of accepted connections.
    pub fn timeout(&self) -> std::time::Duration {
        self.opts.timeout
    }

    /// `accept` one connection (bounded by the listener's SO_RCVTIMEO).
    pub fn accept(&self) -> std::io::Result<AnyEndpoint> {
        wrap(
            self.kind,
            s::accept(self.fd.as_fd(), self.opts.timeout)?,
            &self.opts,
        )
    }
}

impl Dialer {
    /// `socket`, options, `connect`: a fresh connected client end. The
    /// failing call is named in the error.
    pub fn dial(&self) -> Result<AnyEndpoint, (&'static str, std::io::Error)> {
        let fd = s::socket(domain(self.kind), sock_type(self.kind)).map_err(|e| ("socket", e))?;
        s::set_timeouts(fd.as_fd(), self.opts.timeout).map_err(|e| ("setsockopt", e))?;
        if self.kind.is_tcp() && self.opts.nodelay {
            s::set_nodelay(fd.as_fd(), true).map_err(|e| ("setsockopt", e))?;
        }
        s::connect(fd.as_fd(), self.addr.as_sockaddr())
            .map_err(|e| ("connect", Ctx::new(self.kind, 0, &self.opts).explain(e)))?;
        wrap(self.kind, fd, &self.opts).map_err(|e| ("fcntl", e))
    }

    /// System calls one [`Dialer::dial`] makes: socket, two setsockopt
    /// (timeouts), TCP_NODELAY when set, connect.
    pub fn calls_per_dial(&self) -> u64 {
        4 + u64::from(self.kind.is_tcp() && self.opts.nodelay)
    }

    /// The options every connection gets.
    pub fn opts(&self) -> &TransportOpts {
        &self.opts
    }

    /// The address dialed.
    pub fn addr(&self) -> Addr {
        self.addr
    }
}

/// TCP sockets in TIME_WAIT whose local or remote port is `port`, in the
/// calling thread's network namespace (/proc/thread-self/net/tcp and tcp6,
/// state 06).
pub fn time_wait_sockets(port: u16) -> usize {
    let port = format!(":{port:04X}");
    ["/proc/thread-self/net/tcp", "/proc/thread-self/net/tcp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|t| {
            t.lines()
                .skip(1)
                .filter(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    f.len() > 3 && f[3] == "06" && (f[1].ends_with(&port) || f[2].ends_with(&port))
                })
                .count()
        })
        .sum()
}
