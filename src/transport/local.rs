//! Stage: transport set-up. Reference baselines with no address and no
//! lookup: an AF_UNIX stream socketpair, and two pipes.

use std::os::fd::AsFd;

use super::setup::wrap_sockets;
use super::{AnyEndpoint, Buffers, Connected, Ctx, PipeEnd, TransportOpts};
use crate::error::Result;
use crate::sys::socket as s;

pub(super) fn socketpair(opts: &TransportOpts, ctx: Ctx) -> Result<Connected> {
    let fds = s::socketpair(libc::SOCK_STREAM).map_err(ctx.err("socketpair", "AF_UNIX"))?;
    wrap_sockets(ctx, fds, opts)
}

pub(super) fn pipes(opts: &TransportOpts, ctx: Ctx) -> Result<Connected> {
    // Client writes `up`, server reads it; server writes `down`, client reads it.
    let (up_rd, up_wr) = s::pipe().map_err(ctx.err("pipe", "client→server"))?;
    let (down_rd, down_wr) = s::pipe().map_err(ctx.err("pipe", "server→client"))?;
    let cap = s::pipe_capacity(up_wr.as_fd()).map_err(ctx.err("fcntl", "F_GETPIPE_SZ"))?;
    let end = |rd, wr| PipeEnd::new(rd, wr, opts).map_err(ctx.err("fcntl", "O_NONBLOCK"));
    Ok(Connected {
        client: AnyEndpoint::Pipe(end(down_rd, up_wr)?),
        server: AnyEndpoint::Pipe(end(up_rd, down_wr)?),
        buffers: Buffers {
            sndbuf_bytes: cap,
            rcvbuf_bytes: cap,
        },
    })
}
