//! Stage: transport set-up. AF_UNIX stream, datagram and seqpacket sockets
//! bound to paths inside a fresh private (0700) directory, and stream
//! sockets in the abstract namespace. Socket files exist only between bind
//! and connect/accept; every one this module binds is unlinked right after
//! (or on Ctrl-C by `cleanup`). It never unlinks a path it did not bind.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::sys::socket::UnixAddr;

use super::{
    Connected, Ctx, TransportKind, TransportOpts, accept_pair, fit_datagram, wrap_sockets,
};
use crate::cleanup;
use crate::error::{Error, Result};
use crate::sys::socket as s;

/// Longest path `sockaddr_un.sun_path` holds, without its NUL.
const SUN_PATH_MAX: usize = 107;

/// A fresh private (0700) directory for one run's socket files. Removed
/// (rmdir, so only when empty) on drop and on Ctrl-C.
#[derive(Debug)]
pub struct SocketDir {
    path: PathBuf,
    next: AtomicU64,
}

impl SocketDir {
    /// Make the directory under `$TMPDIR` (or /tmp).
    pub fn new() -> Result<Self> {
        Self::new_in(&std::env::temp_dir())
    }

    /// Make the directory under `parent`.
    pub fn new_in(parent: &Path) -> Result<Self> {
        let file_err = |e: std::io::Error| {
            Error::config(
                "TMPDIR",
                parent.display(),
                format!(
                    "cannot make the private socket directory there ({e}); set TMPDIR to a writable directory"
                ),
            )
        };
        let dir = tempfile::Builder::new()
            .prefix("sockbench-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(parent)
            .map_err(file_err)?;
        let path = dir.keep();
        cleanup::add_dir(&path);
        let sd = SocketDir {
            path,
            next: AtomicU64::new(0),
        };
        // The longest name we bind is "c<u64>.sock".
        let longest = sd.path.join(format!("c{}.sock", u64::MAX));
        if longest.as_os_str().len() > SUN_PATH_MAX {
            return Err(Error::config(
                "TMPDIR",
                parent.display(),
                format!(
                    "socket paths under it would exceed {SUN_PATH_MAX} bytes; set TMPDIR to a shorter directory"
                ),
            ));
        }
        Ok(sd)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn fresh(&self, role: &str) -> PathBuf {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.path.join(format!("{role}{n}.sock"))
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.path);
        cleanup::remove_dir(&self.path);
    }
}

/// A socket file this process bound: unlinked when dropped.
#[derive(Debug)]
pub(super) struct Bound(PathBuf);

impl Bound {
    pub(super) fn bind(fd: &OwnedFd, path: PathBuf, ctx: Ctx) -> Result<(Self, UnixAddr)> {
        let target = path.display().to_string();
        let addr = UnixAddr::new(&path)
            .map_err(|e| ctx.err("bind", &target)(std::io::Error::from_raw_os_error(e as i32)))?;
        s::bind(fd.as_fd(), &addr).map_err(ctx.err("bind", &target))?;
        cleanup::add_file(&path);
        Ok((Bound(path), addr))
    }
}

impl Drop for Bound {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        cleanup::remove_file(&self.0);
    }
}

fn socket_type(kind: TransportKind) -> libc::c_int {
    match kind {
        TransportKind::UdsDgram => libc::SOCK_DGRAM,
        TransportKind::UdsSeqpacket => libc::SOCK_SEQPACKET,
        _ => libc::SOCK_STREAM,
    }
}

pub(super) fn path_pair(
    kind: TransportKind,
    size: usize,
    opts: &TransportOpts,
    dir: &SocketDir,
    ctx: Ctx,
) -> Result<Connected> {
    let ty = socket_type(kind);
    let (client, server) = if kind == TransportKind::UdsDgram {
        let client = s::socket(libc::AF_UNIX, ty).map_err(ctx.err("socket", "AF_UNIX"))?;
        let server = ctx.server_socket(libc::AF_UNIX, ty, "AF_UNIX")?;
        let (_c, client_addr) = Bound::bind(&client, dir.fresh("c"), ctx)?;
        let (_s, server_addr) = Bound::bind(&server, dir.fresh("s"), ctx)?;
        s::connect(client.as_fd(), &server_addr)
            .map_err(ctx.err("connect", server_addr.to_string()))?;
        s::connect(server.as_fd(), &client_addr)
            .map_err(ctx.err("connect", client_addr.to_string()))?;
        (client, server)
        // `_c` and `_s` unlink the names here: connected datagram sockets
        // keep their peer without them.
    } else {
        let listener = ctx.server_socket(libc::AF_UNIX, ty, "AF_UNIX")?;
        let (_name, addr) = Bound::bind(&listener, dir.fresh("s"), ctx)?;
        s::listen(listener.as_fd(), 1).map_err(ctx.err("listen", addr.to_string()))?;
        let client = s::socket(libc::AF_UNIX, ty).map_err(ctx.err("socket", "AF_UNIX"))?;
        s::connect(client.as_fd(), &addr).map_err(ctx.err("connect", addr.to_string()))?;
        let server = s::accept(listener.as_fd(), s::SETUP_WAIT)
            .map_err(ctx.err("accept", addr.to_string()))?;
        (client, server)
    };
    if !kind.is_stream() {
        for fd in [&client, &server] {
            fit_datagram(fd.as_fd(), size).map_err(ctx.err("setsockopt", "SO_SNDBUF/SO_RCVBUF"))?;
        }
    }
    wrap_sockets(ctx, (client, server), opts)
}

/// A fresh name in the abstract namespace (unique per process and call).
pub(super) fn abstract_addr(ctx: Ctx) -> Result<UnixAddr> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "sockbench-{}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    UnixAddr::new_abstract(name.as_bytes())
        .map_err(|e| ctx.err("bind", &name)(std::io::Error::from_raw_os_error(e as i32)))
}

pub(super) fn abstract_pair(opts: &TransportOpts, ctx: Ctx) -> Result<Connected> {
    let addr = abstract_addr(ctx)?;
    let fds = accept_pair(ctx, libc::AF_UNIX, libc::SOCK_STREAM, &addr, |_| Ok(addr))?;
    wrap_sockets(ctx, fds, opts)
}

/// For an AF_UNIX datagram or seqpacket transport: `None` if a `size`-byte
/// message can be carried with the buffers set-up would ask for, or
/// `Some(limit)`, the largest that can, on this system. Other transports: `None`.
pub fn datagram_limit(kind: TransportKind, size: usize) -> std::io::Result<Option<usize>> {
    if !matches!(kind, TransportKind::UdsDgram | TransportKind::UdsSeqpacket) {
        return Ok(None);
    }
    let fits = |n: usize| -> std::io::Result<bool> {
        let (a, b) = s::socketpair(socket_type(kind))?;
        fit_datagram(a.as_fd(), n)?;
        fit_datagram(b.as_fd(), n)?;
        let buf = vec![0u8; n];
        match crate::sys::io::send(a.as_fd(), &buf, libc::MSG_DONTWAIT) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => Ok(false),
            Err(e) => Err(e),
        }
    };
    if fits(size)? {
        return Ok(None);
    }
    let (mut lo, mut hi) = (1usize, size); // fits(lo), !fits(hi)
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(mid)? { lo = mid } else { hi = mid }
    }
    Ok(Some(lo))
}
