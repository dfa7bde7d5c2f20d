//! Stage: transport set-up. AF_UNIX stream, datagram and seqpacket sockets
//! bound to paths inside a fresh private (0700) directory, and stream
//! sockets in the abstract namespace. The directory is held by descriptor:
//! sockets are bound through `/proc/self/fd/N/<name>` and unlinked with
//! `unlinkat`, so nothing done to the path afterwards (a rename, a symlink
//! in its place) can make sockbench bind or unlink elsewhere. Socket files
//! exist only between bind and connect/accept (a `connect` listener's until
//! its case ends). It never unlinks a path it did not bind.

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::sys::socket::UnixAddr;

use super::setup::{fit_datagram, wrap_sockets};
use super::{Connected, Ctx, TransportOpts};
use crate::cleanup;
use crate::error::{Error, Result};
use crate::spec::TransportKind;
use crate::sys::fs::{self as sfs, DirId};
use crate::sys::socket as s;

/// A fresh private (0700) directory for one run's socket files, held by
/// descriptor. Removed, with any socket file still in it, on drop, on
/// Ctrl-C and (by the reaper) when sockbench is killed.
#[derive(Debug)]
pub struct SocketDir {
    path: PathBuf,
    fd: Arc<OwnedFd>,
    id: DirId,
    next: AtomicU64,
}

impl SocketDir {
    /// Make the directory under `$TMPDIR` (or /tmp).
    pub fn new() -> Result<Self> {
        Self::new_in(&std::env::temp_dir())
    }

    /// Make the directory under `parent`, which must be safe from other
    /// users (see [`crate::sys::fs::unsafe_parent`]).
    pub fn new_in(parent: &Path) -> Result<Self> {
        let bad = |why: String| Error::config("TMPDIR", parent.display(), why);
        if let Some(why) = sfs::unsafe_parent(parent) {
            return Err(bad(format!(
                "{why}; set TMPDIR to a directory only you (or root) can write, such as /tmp"
            )));
        }
        let (path, fd, id) =
            cleanup::make_private_dir(parent, "sockbench-", sfs::Contents::Sockets).map_err(|e| {
                bad(format!(
                    "cannot make the private socket directory there ({e}); set TMPDIR to a writable directory"
                ))
            })?;
        let checked = std::fs::File::from(fd.try_clone().map_err(|e| bad(e.to_string()))?)
            .metadata()
            .map_err(|e| bad(e.to_string()))
            .and_then(|m| {
                let me = nix::unistd::geteuid().as_raw();
                if m.uid() != me || m.mode() & 0o077 != 0 {
                    return Err(bad(
                        "cannot hold the private socket directory (its owner or mode is not as made)"
                            .into(),
                    ));
                }
                Ok(())
            });
        if let Err(e) = checked {
            let _ = sfs::remove_owned_dir(&path, id, sfs::Contents::Sockets);
            cleanup::forget_dir(&path);
            return Err(e);
        }
        Ok(SocketDir {
            path,
            fd: Arc::new(fd),
            id,
            next: AtomicU64::new(0),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its identity (device, inode).
    pub fn id(&self) -> DirId {
        self.id
    }

    /// A fresh socket name for `role`: the name, the path to bind through
    /// the held descriptor, and the real path (for messages).
    pub(super) fn fresh(&self, role: &str) -> (OsString, PathBuf, PathBuf) {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let name = OsString::from(format!("{role}{n}.sock"));
        let via = PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd())).join(&name);
        (name.clone(), via, self.path.join(&name))
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = sfs::remove_owned_dir(&self.path, self.id, sfs::Contents::Sockets);
        cleanup::forget_dir(&self.path);
    }
}

/// A socket file this process bound: unlinked (relative to the held
/// directory) when dropped.
#[derive(Debug)]
pub(super) struct Bound {
    dir: Arc<OwnedFd>,
    name: OsString,
}

impl Bound {
    /// Bind `fd` to a fresh `role` name in `dir`; returns the guard, the
    /// address to connect to, and the real path for messages.
    pub(super) fn bind(
        fd: &OwnedFd,
        dir: &SocketDir,
        role: &str,
        ctx: Ctx,
    ) -> Result<(Self, UnixAddr, String)> {
        let (name, via, shown) = dir.fresh(role);
        let shown = shown.display().to_string();
        let addr =
            UnixAddr::new(&via).map_err(|e| ctx.err("bind", &shown)(std::io::Error::from(e)))?;
        s::bind(fd.as_fd(), &addr).map_err(ctx.err("bind", &shown))?;
        Ok((
            Bound {
                dir: dir.fd.clone(),
                name,
            },
            addr,
            shown,
        ))
    }
}

impl Drop for Bound {
    fn drop(&mut self) {
        let _ = sfs::unlink_in(self.dir.as_fd(), &self.name);
    }
}

fn socket_type(kind: TransportKind) -> libc::c_int {
    match kind {
        TransportKind::UdsDgram => libc::SOCK_DGRAM,
        TransportKind::UdsSeqpacket => libc::SOCK_SEQPACKET,
        _ => libc::SOCK_STREAM,
    }
}

/// Two AF_UNIX datagram sockets, each bound to a fresh name in `dir` and
/// connected to the other; the names are unlinked before this returns
/// (connected datagram sockets keep their peer without them).
pub(super) fn dgram_pair(
    size: usize,
    opts: &TransportOpts,
    dir: &SocketDir,
    ctx: Ctx,
) -> Result<Connected> {
    let ty = libc::SOCK_DGRAM;
    let client = s::socket(libc::AF_UNIX, ty).map_err(ctx.err("socket", "AF_UNIX"))?;
    let server = ctx.server_socket(libc::AF_UNIX, ty, "AF_UNIX")?;
    let (_c, client_addr, client_path) = Bound::bind(&client, dir, "c", ctx)?;
    let (_s, server_addr, server_path) = Bound::bind(&server, dir, "s", ctx)?;
    s::connect(client.as_fd(), &server_addr).map_err(ctx.err("connect", server_path))?;
    s::connect(server.as_fd(), &client_addr).map_err(ctx.err("connect", client_path))?;
    for fd in [&client, &server] {
        fit_datagram(fd.as_fd(), size).map_err(ctx.err("setsockopt", "SO_SNDBUF/SO_RCVBUF"))?;
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
        .map_err(|e| ctx.err("bind", &name)(std::io::Error::from(e)))
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
