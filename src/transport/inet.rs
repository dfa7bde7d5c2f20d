//! Stage: transport set-up. Loopback addresses (127.0.0.1 and ::1, or the
//! link between `--netns` namespaces), and the UDP pair. Binds port 0 on
//! such an address only (never a wildcard) and learns the port with
//! getsockname. TCP goes through [`super::listen`], as every connection does.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV6};
use std::os::fd::AsFd;

use nix::sys::socket::{SockaddrIn, SockaddrIn6, SockaddrLike};

use super::setup::wrap_sockets;
use super::{Connected, Ctx, TransportOpts};
use crate::error::Result;
use crate::sys::socket as s;

/// (server, client) addresses, each (IPv4, IPv6): loopback, or the link
/// between the namespaces under `--netns`.
pub(super) fn addresses(opts: &TransportOpts) -> ((Ipv4Addr, Ipv6Addr), (Ipv4Addr, Ipv6Addr)) {
    match opts.netns {
        None => (
            (Ipv4Addr::LOCALHOST, Ipv6Addr::LOCALHOST),
            (Ipv4Addr::LOCALHOST, Ipv6Addr::LOCALHOST),
        ),
        Some(_) => (
            (super::SERVER_V4, super::SERVER_V6),
            (super::CLIENT_V4, super::CLIENT_V6),
        ),
    }
}

/// `ip`, port 0.
pub(super) fn v4(ip: Ipv4Addr) -> SockaddrIn {
    SockaddrIn::from(std::net::SocketAddrV4::new(ip, 0))
}

/// `ip`, port 0.
pub(super) fn v6(ip: Ipv6Addr) -> SockaddrIn6 {
    SockaddrIn6::from(SocketAddrV6::new(ip, 0, 0, 0))
}

/// Two UDP sockets over IPv4, bound and connected to each other.
pub(super) fn udp_pair(opts: &TransportOpts, ctx: Ctx) -> Result<Connected> {
    let (server, client) = addresses(opts);
    udp(ctx, libc::AF_INET, (&v4(server.0), &v4(client.0)), opts)
}

fn udp<A: SockaddrLike + fmt::Display>(
    ctx: Ctx,
    domain: libc::c_int,
    (server_any, client_any): (&A, &A),
    opts: &TransportOpts,
) -> Result<Connected> {
    let bound = |fd: std::os::fd::OwnedFd, any_port: &A| -> Result<(std::os::fd::OwnedFd, A)> {
        let target = any_port.to_string();
        s::bind(fd.as_fd(), any_port).map_err(ctx.err("bind", &target))?;
        let addr = s::local_addr::<A>(fd.as_fd()).map_err(ctx.err("getsockname", &target))?;
        Ok((fd, addr))
    };
    let client =
        s::socket(domain, libc::SOCK_DGRAM).map_err(ctx.err("socket", client_any.to_string()))?;
    let (client, client_addr) = bound(client, client_any)?;
    let server = ctx.server_socket(domain, libc::SOCK_DGRAM, &server_any.to_string())?;
    let (server, server_addr) = bound(server, server_any)?;
    s::connect(client.as_fd(), &server_addr)
        .map_err(ctx.err("connect", server_addr.to_string()))?;
    s::connect(server.as_fd(), &client_addr)
        .map_err(ctx.err("connect", client_addr.to_string()))?;
    wrap_sockets(ctx, (client, server), opts)
}
