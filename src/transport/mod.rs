//! Stage: transport set-up. Knows sockets and pipes, not statistics or files.
//!
//! One [`TransportKind`] names every transport; [`connect_pair`] builds a
//! connected (client, server) pair of [`AnyEndpoint`]s for any of them; the
//! timed loops are generic over [`Endpoint`], so the hot path has no dynamic
//! dispatch and no transport has its own copy of a loop.

mod endpoint;
mod fault;
mod inet;
mod listen;
mod local;
mod netns;
mod setup;
mod shared;
mod tcp_table;
mod unix;
mod wait;

use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

pub use endpoint::{DatagramSocket, Endpoint, PipeEnd, StreamSocket};
pub use fault::{Cause, Fault};
pub use listen::{Addr, Dialer, Listener, NameGuard, Token, listen};
pub use netns::{
    CLIENT_V4, CLIENT_V6, ClientPlaces, Namespaces, Placement, SERVER_V4, SERVER_V6, SysctlProbe,
    SysctlRefusal, Topology, Tuning, check_sysctls,
};
pub use shared::{SharedEnd, Waiter};
pub use tcp_table::{TimeWait, time_wait_before, time_wait_sockets};
pub use unix::{SocketDir, datagram_limit};

use setup::Ctx;

use crate::error::Result;
use crate::spec::{TransportKind, Wait};

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
    /// `--sndbuf`, `--rcvbuf`: SO_SNDBUF/SO_RCVBUF asked for on both ends
    /// of a socket pair once connected (`None`: the system's defaults).
    pub sndbuf: Option<usize>,
    pub rcvbuf: Option<usize>,
    /// `--busy-poll`: SO_BUSY_POLL (µs) on both ends.
    pub busy_poll: Option<u32>,
}

impl Default for TransportOpts {
    fn default() -> Self {
        Self {
            nodelay: true,
            timeout: Duration::from_secs(5),
            wait: Wait::Block,
            netns: None,
            sndbuf: None,
            rcvbuf: None,
            busy_poll: None,
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
    /// tcp4-sockmap's client end: a TCP socket, and the sockmap (holding
    /// the redirect program) that lives as long as this end.
    Redirected(StreamSocket, crate::sys::bpf::Redirect),
    /// futex, shm-spin: a lane each way in a shared page.
    Shared(SharedEnd),
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
            $crate::transport::AnyEndpoint::Redirected($ep, _) => $body,
            $crate::transport::AnyEndpoint::Shared($ep) => $body,
        }
    };
}

impl AnyEndpoint {
    /// The descriptors this end holds (a forked server keeps only these).
    pub fn raw_fds(&self) -> Vec<RawFd> {
        match self {
            AnyEndpoint::Stream(s) | AnyEndpoint::Redirected(s, _) => vec![s.fd().as_raw_fd()],
            // The shared page is memory the child inherits, not a descriptor.
            AnyEndpoint::Shared(_) => Vec::new(),
            AnyEndpoint::Datagram(d) => vec![d.fd().as_raw_fd()],
            AnyEndpoint::Pipe(p) => vec![p.read_fd().as_raw_fd(), p.write_fd().as_raw_fd()],
        }
    }

    /// The socket, for sockets (pipes have none).
    pub fn socket_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        match self {
            AnyEndpoint::Stream(s) | AnyEndpoint::Redirected(s, _) => Some(s.fd()),
            AnyEndpoint::Datagram(d) => Some(d.fd()),
            AnyEndpoint::Pipe(_) | AnyEndpoint::Shared(_) => None,
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
            AnyEndpoint::Stream(s) | AnyEndpoint::Redirected(s, _) => s.set_recv_timeout(timeout),
            AnyEndpoint::Datagram(d) => d.set_recv_timeout(timeout),
            AnyEndpoint::Pipe(p) => {
                p.set_recv_timeout(timeout);
                Ok(())
            }
            AnyEndpoint::Shared(e) => {
                e.set_recv_timeout(timeout);
                Ok(())
            }
        }
    }

    /// Non-blocking calls retried in a busy loop (`--wait spin`); sockets only.
    pub fn spin(&mut self) -> std::io::Result<()> {
        match self {
            AnyEndpoint::Stream(s) | AnyEndpoint::Redirected(s, _) => s.spin(),
            AnyEndpoint::Datagram(d) => d.spin(),
            // The plan refuses --wait spin for the shared rungs.
            AnyEndpoint::Pipe(_) | AnyEndpoint::Shared(_) => Ok(()),
        }
    }

    /// A second end on the same socket or pipes (`dup`), for a thread that
    /// moves data the other way at the same time.
    pub fn try_clone(&self) -> std::io::Result<AnyEndpoint> {
        Ok(match self {
            AnyEndpoint::Stream(s) => AnyEndpoint::Stream(s.try_clone()?),
            AnyEndpoint::Datagram(d) => AnyEndpoint::Datagram(d.try_clone()?),
            AnyEndpoint::Pipe(p) => AnyEndpoint::Pipe(p.try_clone()?),
            // The plan admits the ladder's rungs for ping-pong only.
            AnyEndpoint::Redirected(..) | AnyEndpoint::Shared(_) => {
                return Err(std::io::Error::from(std::io::ErrorKind::Unsupported));
            }
        })
    }

    /// Shut the socket down so that a peer blocked on it wakes with EOF.
    pub fn shutdown(&self) {
        match self {
            AnyEndpoint::Stream(s) | AnyEndpoint::Redirected(s, _) => {
                crate::sys::socket::shutdown(s.fd())
            }
            AnyEndpoint::Datagram(d) => crate::sys::socket::shutdown(d.fd()),
            AnyEndpoint::Pipe(_) => {}
            AnyEndpoint::Shared(e) => e.close(),
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
/// Connection-oriented transports take the same path as a connection per
/// request ([`listen`], [`Dialer::dial`], [`Listener::accept`]); path-bound
/// AF_UNIX transports need `dir`, and their socket files are removed before
/// this returns (the connection outlives the name).
pub fn connect_pair(
    kind: TransportKind,
    size: usize,
    opts: &TransportOpts,
    dir: Option<&SocketDir>,
) -> Result<Connected> {
    let ctx = Ctx::new(kind, size, opts);
    match kind {
        TransportKind::Udp4 => inet::udp_pair(opts, ctx),
        TransportKind::UdsDgram => {
            let dir = dir.ok_or_else(|| ctx.no_dir())?;
            unix::dgram_pair(size, opts, dir, ctx)
        }
        TransportKind::Socketpair => local::socketpair(opts, ctx),
        TransportKind::Pipe => local::pipes(opts, ctx),
        TransportKind::Futex => shared::pair(Waiter::Futex, size, opts, ctx),
        TransportKind::ShmSpin => shared::pair(Waiter::Spin, size, opts, ctx),
        TransportKind::Tcp4Sockmap => {
            // A loopback TCP connection, then the redirect between its ends.
            let mut conn = connect_pair(TransportKind::Tcp4, size, opts, dir)?;
            let server = conn.server.socket_fd().expect("a TCP socket");
            let port = crate::sys::socket::local_addr::<nix::sys::socket::SockaddrIn>(server)
                .map_err(ctx.err("getsockname", "the server's port"))?
                .port();
            let client = conn.client.socket_fd().expect("a TCP socket");
            let redirect = crate::sys::bpf::Redirect::between(server, client, port)
                .map_err(|(call, e)| ctx.err(call, "sk_msg redirect")(e))?;
            let (AnyEndpoint::Stream(mut client), AnyEndpoint::Stream(server)) =
                (conn.client, &mut conn.server)
            else {
                unreachable!("a TCP pair has stream ends")
            };
            client.in_sockmap();
            server.in_sockmap();
            conn.client = AnyEndpoint::Redirected(client, redirect);
            Ok(conn)
        }
        _ => {
            // TCP, AF_UNIX stream/seqpacket/abstract: listen, dial, accept,
            // then the listener (and its socket file) goes.
            let (listener, dialer, _name) = listen(kind, size, opts, dir)?;
            let client = dialer
                .dial()
                .map_err(|(call, e)| ctx.err(call, dialer.addr().to_string())(e))?;
            let server = listener
                .accept_own(&client)
                .map_err(ctx.err("accept", dialer.addr().to_string()))?;
            setup::finish_connected(ctx, client, server, size, opts)
        }
    }
}
