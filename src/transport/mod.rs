//! Stage: transport set-up. Knows sockets and pipes, not statistics or files.
//!
//! One [`TransportKind`] names every transport; [`connect_pair`] builds a
//! connected (client, server) pair of [`AnyEndpoint`]s for any of them; the
//! timed loops are generic over [`Endpoint`], so the hot path has no dynamic
//! dispatch and no transport has its own copy of a loop.

mod endpoint;
mod inet;
mod listen;
mod local;
mod netns;
mod unix;

use std::fmt;
use std::os::fd::{AsRawFd, RawFd};
use std::str::FromStr;
use std::time::Duration;

pub use endpoint::{Cause, DatagramSocket, Endpoint, Fault, PipeEnd, StreamSocket};
pub use listen::{
    Addr, Dialer, Listener, NameGuard, TimeWait, listen, time_wait_before, time_wait_sockets,
};
pub use netns::{
    CLIENT_V4, CLIENT_V6, ClientPlaces, Namespaces, NetnsMode, Placement, SERVER_V4, SERVER_V6,
    Topology,
};
pub use unix::{SocketDir, datagram_limit};

use crate::error::{Error, Result};

/// Every transport sockbench measures. `name()` is the stable string used in
/// output, benchmark ids and file names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(into = "&'static str")]
pub enum TransportKind {
    /// TCP over 127.0.0.1.
    Tcp4,
    /// TCP over ::1.
    Tcp6,
    /// UDP over 127.0.0.1.
    Udp4,
    /// AF_UNIX SOCK_STREAM bound to a path.
    UdsStream,
    /// AF_UNIX SOCK_DGRAM bound to paths.
    UdsDgram,
    /// AF_UNIX SOCK_SEQPACKET bound to a path.
    UdsSeqpacket,
    /// AF_UNIX SOCK_STREAM in the abstract namespace.
    UdsAbstract,
    /// `socketpair(AF_UNIX, SOCK_STREAM)`: no address, no lookup.
    Socketpair,
    /// Two pipes, one per direction.
    Pipe,
}

impl TransportKind {
    /// All transports, in the order used for output.
    pub const ALL: [TransportKind; 9] = [
        TransportKind::Tcp4,
        TransportKind::Tcp6,
        TransportKind::Udp4,
        TransportKind::UdsStream,
        TransportKind::UdsDgram,
        TransportKind::UdsSeqpacket,
        TransportKind::UdsAbstract,
        TransportKind::Socketpair,
        TransportKind::Pipe,
    ];

    /// Stable name.
    pub fn name(self) -> &'static str {
        match self {
            TransportKind::Tcp4 => "tcp4",
            TransportKind::Tcp6 => "tcp6",
            TransportKind::Udp4 => "udp4",
            TransportKind::UdsStream => "uds-stream",
            TransportKind::UdsDgram => "uds-dgram",
            TransportKind::UdsSeqpacket => "uds-seqpacket",
            TransportKind::UdsAbstract => "uds-abstract",
            TransportKind::Socketpair => "socketpair",
            TransportKind::Pipe => "pipe",
        }
    }

    /// Whether the transport is a byte stream (no message boundaries).
    pub fn is_stream(self) -> bool {
        !matches!(
            self,
            TransportKind::Udp4 | TransportKind::UdsDgram | TransportKind::UdsSeqpacket
        )
    }

    /// Whether the transport is a TCP socket.
    pub fn is_tcp(self) -> bool {
        matches!(self, TransportKind::Tcp4 | TransportKind::Tcp6)
    }

    /// Whether the transport is an AF_UNIX socket with an address (path or abstract).
    pub fn is_uds(self) -> bool {
        matches!(
            self,
            TransportKind::UdsStream
                | TransportKind::UdsDgram
                | TransportKind::UdsSeqpacket
                | TransportKind::UdsAbstract
        )
    }

    /// Whether the transport has connections (listen/accept/connect), so a
    /// workload can open one per request.
    pub fn is_connection_oriented(self) -> bool {
        matches!(
            self,
            TransportKind::Tcp4
                | TransportKind::Tcp6
                | TransportKind::UdsStream
                | TransportKind::UdsSeqpacket
                | TransportKind::UdsAbstract
        )
    }

    /// Whether set-up binds a path inside the private socket directory.
    pub fn needs_dir(self) -> bool {
        matches!(
            self,
            TransportKind::UdsStream | TransportKind::UdsDgram | TransportKind::UdsSeqpacket
        )
    }

    /// The comma-separated list of names, for error messages and help.
    pub fn all_names() -> String {
        Self::ALL.map(Self::name).join(", ")
    }
}

impl From<TransportKind> for &'static str {
    fn from(k: TransportKind) -> Self {
        k.name()
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TransportKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown transport; allowed: {}", Self::all_names()))
    }
}

/// How blocking calls wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Wait {
    /// Blocking calls: the thread sleeps until data arrives (the default).
    Block,
    /// Non-blocking calls retried in a busy loop: no wake-up cost.
    Spin,
}

/// Per-socket options applied by [`connect_pair`].
#[derive(Debug, Clone, Copy)]
pub struct TransportOpts {
    /// `TCP_NODELAY` on TCP sockets.
    pub nodelay: bool,
    /// Bound on every blocking call (`SO_RCVTIMEO`/`SO_SNDTIMEO`; the spin
    /// loop checks it too).
    pub timeout: Duration,
    /// Blocking or busy-polling calls.
    pub wait: Wait,
    /// `--netns`: server ends made in their own network namespace, client
    /// ends in the calling thread's (see [`Placement::enter_client`]).
    pub netns: Option<Placement>,
}

impl Default for TransportOpts {
    fn default() -> Self {
        Self {
            nodelay: true,
            timeout: Duration::from_secs(5),
            wait: Wait::Block,
            netns: None,
        }
    }
}

/// One end of a connected pair, of any transport.
#[derive(Debug)]
pub enum AnyEndpoint {
    /// TCP, uds-stream, uds-abstract, socketpair.
    Stream(StreamSocket),
    /// UDP, uds-dgram, uds-seqpacket.
    Datagram(DatagramSocket),
    /// A pipe pair.
    Pipe(PipeEnd),
}

/// Run `$body` with `$ep` bound to the concrete endpoint inside an
/// [`AnyEndpoint`]: one match per call site, then static dispatch.
#[macro_export]
macro_rules! with_endpoint {
    ($any:expr, $ep:ident => $body:expr) => {
        match $any {
            $crate::transport::AnyEndpoint::Stream($ep) => $body,
            $crate::transport::AnyEndpoint::Datagram($ep) => $body,
            $crate::transport::AnyEndpoint::Pipe($ep) => $body,
        }
    };
}

impl AnyEndpoint {
    /// The descriptors this end holds (a forked server keeps only these).
    pub fn raw_fds(&self) -> Vec<RawFd> {
        match self {
            AnyEndpoint::Stream(s) => vec![s.fd().as_raw_fd()],
            AnyEndpoint::Datagram(d) => vec![d.fd().as_raw_fd()],
            AnyEndpoint::Pipe(p) => vec![p.read_fd().as_raw_fd(), p.write_fd().as_raw_fd()],
        }
    }

    /// The socket, for sockets (pipes have none).
    pub fn socket_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        match self {
            AnyEndpoint::Stream(s) => Some(s.fd()),
            AnyEndpoint::Datagram(d) => Some(d.fd()),
            AnyEndpoint::Pipe(_) => None,
        }
    }

    /// Data-path system calls made so far (send side + receive side).
    pub fn calls(&self) -> u64 {
        let (s, r) = with_endpoint!(self, ep => ep.calls());
        s + r
    }

    /// Bound receives by `timeout` instead of `--timeout`: blocking (the
    /// socket's SO_RCVTIMEO), spinning, and after signals alike.
    pub fn set_recv_timeout(&mut self, timeout: Duration) -> std::io::Result<()> {
        match self {
            AnyEndpoint::Stream(s) => s.set_recv_timeout(timeout),
            AnyEndpoint::Datagram(d) => d.set_recv_timeout(timeout),
            AnyEndpoint::Pipe(p) => {
                p.set_recv_timeout(timeout);
                Ok(())
            }
        }
    }

    /// A second end on the same socket or pipes (`dup`), for a thread that
    /// moves data the other way at the same time.
    pub fn try_clone(&self) -> std::io::Result<AnyEndpoint> {
        Ok(match self {
            AnyEndpoint::Stream(s) => AnyEndpoint::Stream(s.try_clone()?),
            AnyEndpoint::Datagram(d) => AnyEndpoint::Datagram(d.try_clone()?),
            AnyEndpoint::Pipe(p) => AnyEndpoint::Pipe(p.try_clone()?),
        })
    }

    /// Shut the socket down so that a peer blocked on it wakes with EOF.
    pub fn shutdown(&self) {
        match self {
            AnyEndpoint::Stream(s) => crate::sys::socket::shutdown(s.fd()),
            AnyEndpoint::Datagram(d) => crate::sys::socket::shutdown(d.fd()),
            AnyEndpoint::Pipe(_) => {}
        }
    }
}

/// Socket buffer sizes in force on the client end, as the kernel reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Buffers {
    /// `SO_SNDBUF` (or pipe capacity).
    pub sndbuf_bytes: usize,
    /// `SO_RCVBUF` (or pipe capacity).
    pub rcvbuf_bytes: usize,
}

/// A connected pair: the client end (timed), the server end (echoes), and
/// the buffer sizes in force.
#[derive(Debug)]
pub struct Connected {
    pub client: AnyEndpoint,
    pub server: AnyEndpoint,
    pub buffers: Buffers,
}

/// Build a connected pair for `kind`, sized for `size`-byte messages.
/// Path-bound AF_UNIX transports need `dir`; their socket files are removed
/// before this returns (the connection outlives the name).
pub fn connect_pair(
    kind: TransportKind,
    size: usize,
    opts: &TransportOpts,
    dir: Option<&SocketDir>,
) -> Result<Connected> {
    let ctx = Ctx::new(kind, size, opts);
    let pair = match kind {
        TransportKind::Tcp4 | TransportKind::Tcp6 | TransportKind::Udp4 => {
            inet::pair(kind, opts, ctx)?
        }
        TransportKind::UdsStream | TransportKind::UdsDgram | TransportKind::UdsSeqpacket => {
            let dir = dir.ok_or_else(|| {
                ctx.err("bind", "socket directory")(std::io::Error::other(
                    "no private socket directory was made for this run",
                ))
            })?;
            unix::path_pair(kind, size, opts, dir, ctx)?
        }
        TransportKind::UdsAbstract => unix::abstract_pair(opts, ctx)?,
        TransportKind::Socketpair => local::socketpair(opts, ctx)?,
        TransportKind::Pipe => local::pipes(opts, ctx)?,
    };
    Ok(pair)
}

/// Error context for set-up calls: which transport and size they serve.
#[derive(Clone, Copy)]
pub(crate) struct Ctx {
    kind: TransportKind,
    size: usize,
    netns: Option<Placement>,
}

impl Ctx {
    fn new(kind: TransportKind, size: usize, opts: &TransportOpts) -> Self {
        Ctx {
            kind,
            size,
            netns: opts.netns,
        }
    }

    /// A socket for the server's end: in the server's network namespace
    /// under `--netns`, else where the caller is.
    fn server_socket(
        self,
        domain: libc::c_int,
        ty: libc::c_int,
        target: &str,
    ) -> Result<std::os::fd::OwnedFd> {
        let make = || crate::sys::socket::socket(domain, ty);
        match self.netns {
            Some(p) => p.server(make),
            None => make(),
        }
        .map_err(self.err("socket", target))
    }

    /// Add why a set-up call failed where the errno alone does not say:
    /// an abstract name under `--netns`, or a host without IPv6 for tcp6.
    fn explain(self, e: std::io::Error) -> std::io::Error {
        let why = match (self.kind, e.raw_os_error()) {
            (TransportKind::UdsAbstract, Some(libc::ECONNREFUSED)) if self.netns.is_some() => {
                "abstract socket names belong to one network namespace, so a client in another cannot reach them; a path socket (uds-stream) can"
            }
            (TransportKind::Tcp6, Some(libc::EADDRNOTAVAIL | libc::EAFNOSUPPORT)) => {
                "IPv6 is unavailable here (no ::1: disabled or not built in); leave tcp6 out"
            }
            _ => return e,
        };
        std::io::Error::new(e.kind(), format!("{e}: {why}"))
    }

    /// A `map_err` adapter naming the failed call and its target.
    fn err(
        self,
        op: &'static str,
        target: impl Into<String>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let target = target.into();
        move |source| Error::Setup {
            op,
            target,
            transport: self.kind.name(),
            size: self.size,
            source: self.explain(source),
        }
    }
}

/// socket → bind → listen → connect → accept, for every connection-oriented
/// transport (TCP, AF_UNIX stream/seqpacket, abstract). `resolve` finds the
/// address to connect to once the listener is bound (port 0 → real port).
/// The listener is closed before this returns. Returns (client, server).
fn accept_pair<A: nix::sys::socket::SockaddrLike + fmt::Display>(
    ctx: Ctx,
    domain: libc::c_int,
    ty: libc::c_int,
    bind_addr: &A,
    resolve: impl FnOnce(std::os::fd::BorrowedFd<'_>) -> std::io::Result<A>,
) -> Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use crate::sys::socket as s;
    use std::os::fd::AsFd;
    let target = bind_addr.to_string();
    let listener = ctx.server_socket(domain, ty, &target)?;
    s::bind(listener.as_fd(), bind_addr).map_err(ctx.err("bind", &target))?;
    s::listen(listener.as_fd(), 1).map_err(ctx.err("listen", &target))?;
    let addr = resolve(listener.as_fd()).map_err(ctx.err("getsockname", &target))?;
    let client = s::socket(domain, ty).map_err(ctx.err("socket", &target))?;
    s::connect(client.as_fd(), &addr).map_err(ctx.err("connect", addr.to_string()))?;
    let server =
        s::accept(listener.as_fd(), s::SETUP_WAIT).map_err(ctx.err("accept", addr.to_string()))?;
    Ok((client, server))
}

/// Datagrams above 64 KiB need bigger socket buffers than the defaults; ask
/// for them (the kernel caps the request at `net.core.wmem_max`/`rmem_max`).
/// Smaller messages are measured with the system's defaults.
fn fit_datagram(fd: std::os::fd::BorrowedFd<'_>, size: usize) -> std::io::Result<()> {
    if size > 64 * 1024 {
        crate::sys::socket::set_buffers(fd, size + 64 * 1024)?;
    }
    Ok(())
}

/// Wrap a connected (client, server) pair of socket descriptors.
fn wrap_sockets(
    ctx: Ctx,
    (client, server): (std::os::fd::OwnedFd, std::os::fd::OwnedFd),
    opts: &TransportOpts,
) -> Result<Connected> {
    use std::os::fd::AsFd;
    let (snd, rcv) = crate::sys::socket::buffers(client.as_fd())
        .map_err(ctx.err("getsockopt", "SO_SNDBUF/SO_RCVBUF"))?;
    let buffers = Buffers {
        sndbuf_bytes: snd,
        rcvbuf_bytes: rcv,
    };
    let wrap = |fd| -> std::io::Result<AnyEndpoint> {
        Ok(if ctx.kind.is_stream() {
            AnyEndpoint::Stream(StreamSocket::new(fd, opts)?)
        } else {
            AnyEndpoint::Datagram(DatagramSocket::new(fd, opts)?)
        })
    };
    Ok(Connected {
        client: wrap(client).map_err(ctx.err("setsockopt", "timeouts/blocking mode"))?,
        server: wrap(server).map_err(ctx.err("setsockopt", "timeouts/blocking mode"))?,
        buffers,
    })
}
