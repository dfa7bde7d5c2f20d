//! Stage: transport set-up. Loopback TCP and UDP over 127.0.0.1 and ::1.
//! Binds port 0 on a loopback address only (never a wildcard) and learns the
//! port with getsockname. TCP_NODELAY as the options say.

use std::fmt;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::AsFd;

use nix::sys::socket::{SockaddrIn, SockaddrIn6, SockaddrLike};

use super::{Connected, Ctx, TransportKind, TransportOpts, accept_pair, wrap_sockets};
use crate::error::Result;
use crate::sys::socket as s;

pub(super) fn pair(kind: TransportKind, opts: &TransportOpts, ctx: Ctx) -> Result<Connected> {
    let v4 = SockaddrIn::new(127, 0, 0, 1, 0);
    let v6 = SockaddrIn6::from(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 0, 0, 0));
    match kind {
        TransportKind::Tcp4 => tcp(ctx, libc::AF_INET, &v4, opts),
        TransportKind::Tcp6 => tcp(ctx, libc::AF_INET6, &v6, opts),
        _ => udp(ctx, libc::AF_INET, &v4, opts),
    }
}

fn tcp<A: SockaddrLike + fmt::Display>(
    ctx: Ctx,
    domain: libc::c_int,
    any_port: &A,
    opts: &TransportOpts,
) -> Result<Connected> {
    let (client, server) = accept_pair(ctx, domain, libc::SOCK_STREAM, any_port, |fd| {
        s::local_addr::<A>(fd)
    })?;
    for fd in [&client, &server] {
        s::set_nodelay(fd.as_fd(), opts.nodelay).map_err(ctx.err("setsockopt", "TCP_NODELAY"))?;
    }
    wrap_sockets(ctx, (client, server), opts)
}

fn udp<A: SockaddrLike + fmt::Display>(
    ctx: Ctx,
    domain: libc::c_int,
    any_port: &A,
    opts: &TransportOpts,
) -> Result<Connected> {
    let target = any_port.to_string();
    let bound = || -> Result<(std::os::fd::OwnedFd, A)> {
        let fd = s::socket(domain, libc::SOCK_DGRAM).map_err(ctx.err("socket", &target))?;
        s::bind(fd.as_fd(), any_port).map_err(ctx.err("bind", &target))?;
        let addr = s::local_addr::<A>(fd.as_fd()).map_err(ctx.err("getsockname", &target))?;
        Ok((fd, addr))
    };
    let (client, client_addr) = bound()?;
    let (server, server_addr) = bound()?;
    s::connect(client.as_fd(), &server_addr)
        .map_err(ctx.err("connect", server_addr.to_string()))?;
    s::connect(server.as_fd(), &client_addr)
        .map_err(ctx.err("connect", client_addr.to_string()))?;
    wrap_sockets(ctx, (client, server), opts)
}
