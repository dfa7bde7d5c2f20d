//! Stage: transport set-up. The toolbox every transport's set-up shares:
//! the error context of a set-up call ([`Ctx`]), making the server's socket
//! in its namespace, the buffers a large datagram needs, and wrapping
//! connected descriptors as endpoints. Knows no timed loop.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::{
    AnyEndpoint, Buffers, Connected, DatagramSocket, Placement, StreamSocket, TransportOpts,
};
use crate::error::{Error, Result};
use crate::spec::{TransportKind, Wait};
use crate::sys::socket as s;

/// Error context for set-up calls: which transport and size they serve.
#[derive(Clone, Copy)]
pub(crate) struct Ctx {
    kind: TransportKind,
    size: usize,
    netns: Option<Placement>,
}

impl Ctx {
    pub(crate) fn new(kind: TransportKind, size: usize, opts: &TransportOpts) -> Self {
        Ctx {
            kind,
            size,
            netns: opts.netns,
        }
    }

    /// A socket for the server's end: in the server's network namespace
    /// under `--netns`, else where the caller is.
    pub(crate) fn server_socket(
        self,
        domain: libc::c_int,
        ty: libc::c_int,
        target: &str,
    ) -> Result<OwnedFd> {
        let make = || s::socket(domain, ty);
        match self.netns {
            Some(p) => p.server(make),
            None => make(),
        }
        .map_err(self.err("socket", target))
    }

    /// Add why a set-up call failed where the errno alone does not say:
    /// an abstract name under `--netns`, or a host without IPv6 for tcp6.
    pub(crate) fn explain(self, e: std::io::Error) -> std::io::Error {
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
    pub(crate) fn err(
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

    /// The error of a path-bound transport asked to set up without its
    /// private directory (a bug of the caller).
    pub(crate) fn no_dir(self) -> Error {
        self.err("bind", "socket directory")(std::io::Error::other(
            "no private socket directory was made for this run",
        ))
    }
}

/// Datagrams above 64 KiB need bigger socket buffers than the defaults; ask
/// for them (the kernel caps the request at `net.core.wmem_max`/`rmem_max`).
/// Smaller messages are measured with the system's defaults.
pub(crate) fn fit_datagram(fd: BorrowedFd<'_>, size: usize) -> std::io::Result<()> {
    if size > 64 * 1024 {
        s::set_buffers(fd, size + 64 * 1024)?;
    }
    Ok(())
}

/// The socket options a case asks for (`--sndbuf`, `--rcvbuf`,
/// `--busy-poll`), on one end.
fn apply_options(ctx: Ctx, fd: BorrowedFd<'_>, opts: &TransportOpts) -> Result<()> {
    if let Some(b) = opts.sndbuf {
        s::set_sndbuf(fd, b).map_err(ctx.err("setsockopt", "SO_SNDBUF"))?;
    }
    if let Some(b) = opts.rcvbuf {
        s::set_rcvbuf(fd, b).map_err(ctx.err("setsockopt", "SO_RCVBUF"))?;
    }
    if let Some(us) = opts.busy_poll {
        s::set_busy_poll(fd, us).map_err(ctx.err("setsockopt", "SO_BUSY_POLL"))?;
    }
    Ok(())
}

/// The buffer sizes in force on a client end, as the kernel reports them.
fn buffers(ctx: Ctx, fd: BorrowedFd<'_>) -> Result<Buffers> {
    let (snd, rcv) = s::buffers(fd).map_err(ctx.err("getsockopt", "SO_SNDBUF/SO_RCVBUF"))?;
    Ok(Buffers {
        sndbuf_bytes: snd,
        rcvbuf_bytes: rcv,
    })
}

/// Wrap a connected (client, server) pair of socket descriptors: timeouts
/// and blocking mode set on both.
pub(crate) fn wrap_sockets(
    ctx: Ctx,
    (client, server): (OwnedFd, OwnedFd),
    opts: &TransportOpts,
) -> Result<Connected> {
    for fd in [client.as_fd(), server.as_fd()] {
        apply_options(ctx, fd, opts)?;
    }
    let buffers = buffers(ctx, client.as_fd())?;
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

/// Finish a pair whose ends came from dialing and accepting (already
/// blocking, with their timeouts): the buffers a large seqpacket message
/// needs, and spinning when asked.
pub(crate) fn finish_connected(
    ctx: Ctx,
    mut client: AnyEndpoint,
    mut server: AnyEndpoint,
    size: usize,
    opts: &TransportOpts,
) -> Result<Connected> {
    for ep in [&client, &server] {
        let fd = ep
            .socket_fd()
            .expect("a dialed or accepted end is a socket");
        if !ctx.kind.is_stream() {
            fit_datagram(fd, size).map_err(ctx.err("setsockopt", "SO_SNDBUF/SO_RCVBUF"))?;
        }
        apply_options(ctx, fd, opts)?;
    }
    if opts.wait == Wait::Spin {
        for ep in [&mut client, &mut server] {
            ep.spin().map_err(ctx.err("fcntl", "O_NONBLOCK"))?;
        }
    }
    let buffers = buffers(ctx, client.socket_fd().expect("a socket"))?;
    Ok(Connected {
        client,
        server,
        buffers,
    })
}
