//! Stage: system calls (files). Directories sockbench makes for itself (the
//! private socket directory, a result's staging directory): how to know
//! one is still the directory it made (device and inode), how to remove it
//! and only what is inside it without following a link, and whether a
//! parent directory is safe to make one in while other users are about.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::dir::Dir;
use nix::fcntl::{AtFlags, OFlag, open};
use nix::sys::stat::{Mode, SFlag, fstat, fstatat};
use nix::unistd::{UnlinkatFlags, unlinkat};

/// A directory's identity: the same path can name another directory later
/// (renamed, replaced); the same device and inode cannot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirId {
    pub dev: u64,
    pub ino: u64,
}

/// Open a directory without following a final symlink.
pub fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    Ok(open(
        path,
        OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY,
        Mode::empty(),
    )?)
}

/// The identity of an open directory.
pub fn dir_id(fd: BorrowedFd<'_>) -> io::Result<DirId> {
    let st = fstat(fd)?;
    Ok(DirId {
        dev: st.st_dev,
        ino: st.st_ino,
    })
}

/// The names inside an open directory (not `.` and `..`).
pub fn entries(fd: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
    let mut dir = Dir::openat(
        fd,
        ".",
        OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_RDONLY,
        Mode::empty(),
    )?;
    let mut names = Vec::new();
    for e in dir.iter() {
        let name = e?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(OsString::from(std::ffi::OsStr::from_bytes(&name)));
        }
    }
    Ok(names)
}

/// Unlink `name` inside the open directory `dir` (never through a link).
pub fn unlink_in(dir: BorrowedFd<'_>, name: &std::ffi::OsStr) -> io::Result<()> {
    Ok(unlinkat(dir, name, UnlinkatFlags::NoRemoveDir)?)
}

/// What a directory sockbench made may hold of its own making.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contents {
    /// The socket directory: sockets named `<letter><number>.sock`.
    Sockets,
    /// A staging directory: the result files, and the reserve.
    Results,
}

impl Contents {
    /// Whether `name`, of type `kind`, is something sockbench put there.
    fn ours(self, name: &[u8], kind: SFlag) -> bool {
        match self {
            Contents::Sockets => {
                kind == SFlag::S_IFSOCK
                    && name.len() > 6
                    && name[0].is_ascii_lowercase()
                    && name.ends_with(b".sock")
                    && name[1..name.len() - 5].iter().all(u8::is_ascii_digit)
            }
            Contents::Results => {
                kind == SFlag::S_IFREG
                    && (matches!(
                        name,
                        b"summary.json" | b"summary.csv" | b"env.json" | b".reserve"
                    ) || name.ends_with(b".hgrm"))
            }
        }
    }
}

/// Remove the directory at `path` if it is still the one identified by
/// `id`: first what sockbench put in it (`contents`; anything else is left,
/// and with it the directory), then the directory. Nothing is followed: a
/// path that now names something else is left alone. Missing is fine.
pub fn remove_owned_dir(path: &Path, id: DirId, contents: Contents) -> io::Result<()> {
    let fd = match open_dir(path) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        // A symlink (ELOOP, or ENOTDIR with O_DIRECTORY) or a file: not ours.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => return Ok(()),
        Err(e) => return Err(e),
    };
    if dir_id(fd.as_fd())? != id {
        return Ok(()); // not ours any more
    }
    for name in entries(fd.as_fd())? {
        let Ok(st) = fstatat(fd.as_fd(), name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) else {
            continue;
        };
        let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
        if contents.ours(name.as_bytes(), kind) {
            let _ = unlink_in(fd.as_fd(), &name);
        }
    }
    match std::fs::remove_dir(path) {
        // Something else is in it: left, with the directory.
        Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => Ok(()),
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Remove a directory this program announced (by path) before making it,
/// whose identity it may not have learned: only if it is a directory (not
/// a link), this user's, of mode 0700 as made; then as
/// [`remove_owned_dir`] with its identity. Missing is fine.
pub fn remove_private_dir(path: &Path, contents: Contents) -> io::Result<()> {
    let fd = match open_dir(path) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => return Ok(()),
        Err(e) => return Err(e),
    };
    let st = fstat(fd.as_fd())?;
    if st.st_uid != nix::unistd::geteuid().as_raw() || st.st_mode & 0o7777 != 0o700 {
        return Ok(()); // not as this program makes them
    }
    let id = dir_id(fd.as_fd())?;
    drop(fd);
    remove_owned_dir(path, id, contents)
}

/// The file size limit (`ulimit -f`, RLIMIT_FSIZE) in bytes; `None`:
/// unlimited.
pub fn file_size_limit() -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit};
    match getrlimit(Resource::RLIMIT_FSIZE) {
        Ok((soft, _)) if soft != libc::RLIM_INFINITY => Some(soft),
        _ => None,
    }
}

/// If descriptor `fd` is a regular file (a shell's `> out.json` or
/// `>> out.json`), the offset a write would start at at most: its
/// position or, for an append, its size.
pub fn regular_file_offset(fd: BorrowedFd<'_>) -> Option<u64> {
    let st = fstat(fd).ok()?;
    if st.st_mode & SFlag::S_IFMT.bits() != SFlag::S_IFREG.bits() {
        return None;
    }
    let pos = nix::unistd::lseek(fd, 0, nix::unistd::Whence::SeekCur).unwrap_or(0);
    Some((pos.max(0) as u64).max(st.st_size.max(0) as u64))
}

/// Eight random bytes from the kernel (`getrandom(2)`), for names others
/// cannot guess.
pub fn random_u64() -> io::Result<u64> {
    let mut b = [0u8; 8];
    let mut got = 0;
    while got < b.len() {
        // SAFETY: the pointer and length describe the unfilled tail of `b`.
        match syscall!(getrandom(b[got..].as_mut_ptr().cast(), b.len() - got, 0)) {
            Ok(n) => got += n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(u64::from_le_bytes(b))
}

/// Why `dir` is not a safe place for a private directory, if it is not:
/// another user could rename what sockbench makes there and put a link in
/// its place (writable by all without the sticky bit), or its owner could
/// (owned by a user other than root or this one).
pub fn unsafe_parent(dir: &Path) -> Option<String> {
    let m = std::fs::metadata(dir).ok()?;
    const STICKY: u32 = 0o1000;
    let me = nix::unistd::geteuid().as_raw();
    if m.mode() & 0o002 != 0 && m.mode() & STICKY == 0 {
        return Some(format!(
            "is writable by every user without the sticky bit (mode {:o}), so another user could replace what sockbench makes there",
            m.mode() & 0o7777
        ));
    }
    if m.uid() != me && m.uid() != 0 {
        return Some(format!(
            "belongs to another user (uid {}), who could replace what sockbench makes there",
            m.uid()
        ));
    }
    None
}

/// Reserve `bytes` for the file `name` in the open directory `dir` (it
/// must not exist): fails now, with ENOSPC or EDQUOT, if the file system
/// cannot hold that much.
pub fn reserve(dir: BorrowedFd<'_>, name: &std::ffi::OsStr, bytes: u64) -> io::Result<()> {
    let fd = nix::fcntl::openat(
        dir,
        name,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::from_bits_truncate(0o600),
    )?;
    let r = nix::fcntl::posix_fallocate(fd.as_fd(), 0, bytes as libc::off_t);
    drop(fd);
    if let Err(e) = r {
        let _ = unlinkat(dir, name, UnlinkatFlags::NoRemoveDir);
        return Err(e.into());
    }
    Ok(())
}

/// Whether `path` is a mount point (a directory that cannot be renamed
/// over), by /proc/self/mountinfo.
pub fn is_mount_point(path: &Path) -> bool {
    let Ok(real) = std::fs::canonicalize(path) else {
        return false;
    };
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| Path::new(&unescape_octal(m)) == real)
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(s: &str) -> OsString {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    OsString::from(std::ffi::OsStr::from_bytes(&out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_its_own_directory_and_nothing_else() {
        let parent = tempfile::tempdir().unwrap();
        let mine = parent.path().join("mine");
        std::fs::create_dir(&mine).unwrap();
        std::fs::write(mine.join("summary.json"), "x").unwrap();
        let id = dir_id(open_dir(&mine).unwrap().as_fd()).unwrap();
        // Replaced by another directory with a file in it: left alone.
        std::fs::rename(&mine, parent.path().join("moved")).unwrap();
        std::fs::create_dir(&mine).unwrap();
        std::fs::write(mine.join("summary.json"), "keep").unwrap();
        remove_owned_dir(&mine, id, Contents::Results).unwrap();
        assert!(mine.join("summary.json").exists());
        // A symlink in its place: not followed.
        std::fs::remove_dir_all(&mine).unwrap();
        std::os::unix::fs::symlink(parent.path().join("moved"), &mine).unwrap();
        remove_owned_dir(&mine, id, Contents::Results).unwrap();
        assert!(parent.path().join("moved/summary.json").exists());
        // The directory itself: removed with what is in it.
        std::fs::remove_file(&mine).unwrap();
        std::fs::rename(parent.path().join("moved"), &mine).unwrap();
        // Something it would not have made there: left, and so is the directory.
        std::fs::write(mine.join("notes.txt"), "keep").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", mine.join("env.json")).unwrap();
        remove_owned_dir(&mine, id, Contents::Results).unwrap();
        assert!(!mine.join("summary.json").exists());
        assert!(mine.join("notes.txt").exists() && mine.join("env.json").is_symlink());
        std::fs::remove_file(mine.join("notes.txt")).unwrap();
        std::fs::remove_file(mine.join("env.json")).unwrap();
        remove_owned_dir(&mine, id, Contents::Results).unwrap();
        assert!(!mine.exists());
        remove_owned_dir(&mine, id, Contents::Results).unwrap(); // missing is fine
    }

    #[test]
    fn only_sockets_named_like_sockbench_s_are_its_sockets() {
        let c = Contents::Sockets;
        assert!(c.ours(b"s0.sock", SFlag::S_IFSOCK) && c.ours(b"l12.sock", SFlag::S_IFSOCK));
        assert!(!c.ours(b"s0.sock", SFlag::S_IFREG), "a file by that name");
        assert!(!c.ours(b"x.sock", SFlag::S_IFSOCK) && !c.ours(b"s0.socket", SFlag::S_IFSOCK));
    }

    #[test]
    fn mountinfo_names_are_unescaped() {
        assert_eq!(unescape_octal("/mnt/a\\040b"), OsString::from("/mnt/a b"));
        assert_eq!(unescape_octal("/plain"), OsString::from("/plain"));
        assert!(is_mount_point(Path::new("/")));
        assert!(is_mount_point(Path::new("/proc")));
        assert!(!is_mount_point(Path::new("/proc/self")));
    }

    #[test]
    fn writable_by_all_without_sticky_is_unsafe() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(unsafe_parent(d.path()).unwrap().contains("sticky"));
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert_eq!(unsafe_parent(d.path()), None);
        assert_eq!(unsafe_parent(Path::new("/tmp")), None);
    }
}
