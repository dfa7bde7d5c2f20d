//! Stage: transport set-up. Listening sockets and per-connection dialing, for
//! workloads that open a connection per request (`connect`, `rr
//! --new-connection`). Same addresses and options as [`super::connect_pair`].

use std::os::fd::{AsFd, OwnedFd};

use nix::sys::socket::{SockaddrIn, SockaddrIn6, SockaddrLike, UnixAddr};

use super::{AnyEndpoint, Cause, Ctx, DatagramSocket, SocketDir, StreamSocket, TransportOpts};
use crate::error::Result;
use crate::spec::TransportKind;
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
    /// The process whose connections are the run's own: the one that made
    /// the listener and dials it (a forked server is its child).
    client_pid: u32,
    /// What every request of the run's own client carries after its first
    /// byte (as much of it as the request holds): a foreign process cannot
    /// know it.
    token: Token,
}

/// A random number, made per listener, that the run's own requests carry
/// in their bytes 1 to 8 (fewer when the request is shorter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token([u8; 8]);

impl Token {
    fn new() -> std::io::Result<Self> {
        Ok(Token(crate::sys::fs::random_u64()?.to_le_bytes()))
    }

    /// The part of a `len`-byte request the token fills.
    #[inline(always)]
    fn span(len: usize) -> std::ops::Range<usize> {
        1..len.clamp(1, 9)
    }

    /// Put the token into a request (after its marker byte).
    #[inline(always)]
    pub fn stamp(&self, msg: &mut [u8]) {
        let r = Self::span(msg.len());
        let n = r.len();
        msg[r].copy_from_slice(&self.0[..n]);
    }

    /// Whether a request carries the token.
    #[inline(always)]
    pub fn carried_by(&self, msg: &[u8]) -> bool {
        let r = Self::span(msg.len());
        let n = r.len();
        msg[r] == self.0[..n]
    }
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
    token: Token,
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
    // The plan admits only connection-oriented transports here.
    assert!(kind.is_connection_oriented(), "{kind} has no connections");
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
            let dir = dir.ok_or_else(|| ctx.no_dir())?;
            let (bound, a, _) = super::unix::Bound::bind(&fd, dir, "l", ctx)?;
            (Addr::Unix(a), Some(bound))
        }
    };
    // Accepted TCP sockets inherit SO_RCVTIMEO/SO_SNDTIMEO and TCP_NODELAY
    // from the listener; accepted AF_UNIX ones get theirs in `accept`.
    s::set_timeouts(fd.as_fd(), opts.timeout)
        .map_err(ctx.err("setsockopt", "SO_RCVTIMEO/SO_SNDTIMEO"))?;
    s::listen(fd.as_fd(), 1024).map_err(ctx.err("listen", addr.to_string()))?;
    let token = Token::new().map_err(ctx.err("getrandom", "the run's token"))?;
    Ok((
        Listener {
            fd,
            kind,
            opts: *opts,
            client_pid: std::process::id(),
            token,
        },
        Dialer {
            kind,
            addr,
            opts: *opts,
            token,
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

    /// What the run's own requests carry.
    #[inline(always)]
    pub fn token(&self) -> &Token {
        &self.token
    }

    /// `accept` one connection (bounded by the listener's SO_RCVTIMEO). A
    /// TCP connection inherits the listener's SO_RCVTIMEO/SO_SNDTIMEO and
    /// TCP_NODELAY; an AF_UNIX one starts without any (the kernel makes it
    /// afresh), so its timeouts are set here: see [`Listener::calls_per_accept`].
    pub fn accept(&self) -> std::io::Result<AnyEndpoint> {
        let fd = s::accept(self.fd.as_fd(), self.opts.timeout)?;
        if !self.kind.is_tcp() {
            s::set_timeouts(fd.as_fd(), self.opts.timeout)?;
        }
        wrap(self.kind, fd, &self.opts)
    }

    /// System calls per accepted connection besides its data: accept,
    /// close, and for AF_UNIX the two setsockopt of its timeouts.
    pub fn calls_per_accept(&self) -> u64 {
        2 + if self.kind.is_tcp() { 0 } else { 2 }
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

    /// What every request on a dialed connection must carry.
    pub fn token(&self) -> &Token {
        &self.token
    }
}

impl Listener {
    /// The accepted end of a connection the run's own client just dialed
    /// (set-up of a kept pair): a connection from anywhere else, which got
    /// into the backlog first, fails the set-up, named.
    pub fn accept_own(&self, client: &AnyEndpoint) -> std::io::Result<AnyEndpoint> {
        let ep = self.accept()?;
        let ours = match (ep.socket_fd(), client.socket_fd()) {
            (Some(server), Some(client)) if self.kind.is_tcp() => {
                match (s::peer_port(server), s::local_port(client)) {
                    (Ok(a), Ok(b)) => a == b,
                    _ => true,
                }
            }
            (Some(server), _) => s::peer_cred(server).map_or(true, |c| c.0 == self.client_pid),
            _ => true,
        };
        if ours {
            return Ok(ep);
        }
        let who = self
            .foreign_peer(&ep)
            .unwrap_or_else(|| "a connection the run did not make".into());
        Err(std::io::Error::other(Cause::Foreign(who).to_string()))
    }

    /// Who is on the other end of an accepted connection, if it is not the
    /// run's own client (the process that made the listener).
    /// Asked only after a transaction failed, so it costs nothing while
    /// measuring. AF_UNIX: the peer's credentials (SO_PEERCRED). TCP: the
    /// peer's socket, found by port in /proc/net/tcp, must be one of the
    /// client process's descriptors. `None` when it is ours or cannot be told.
    pub fn foreign_peer(&self, ep: &AnyEndpoint) -> Option<String> {
        let ours = self.client_pid;
        let fd = ep.socket_fd()?;
        if !self.kind.is_tcp() {
            let cred = s::peer_cred(fd).ok()?;
            return (cred.0 != ours).then(|| format!("pid {}, uid {}", cred.0, cred.1));
        }
        if self.opts.netns.is_some() {
            return None; // a private namespace: nothing else can reach it
        }
        let peer = s::peer_port(fd).ok()?;
        let me = s::local_port(fd).ok()?;
        let row = super::tcp_table::connection(peer, me)?;
        let link = format!("socket:[{}]", row.inode);
        let holds = |pid: u32| {
            std::fs::read_dir(format!("/proc/{pid}/fd"))
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.as_os_str() == link.as_str()))
        };
        (!holds(ours)).then(|| format!("port {peer}, uid {}", row.uid))
    }
}
