//! Stage: system calls. Host-wide sysctls a run changes when the user asks
//! (`--sysctl NAME=… --allow-host-sysctl`): their values read and written
//! under /proc/sys (only names sockbench accepts, only files of procfs),
//! and the journal of their original values, kept in a root-owned
//! directory under /run (a tmpfs: a reboot resets the sysctls and the
//! journal together).
//!
//! Who holds a journal is decided by a lock, not a pid: the run that
//! writes it holds an exclusive `flock` on it for as long as it lives
//! (the journal appears under its name already locked), and the kernel
//! drops the lock when that process is gone, however it ended and in
//! whatever PID namespace it ran. A journal whose lock can be taken was
//! left by a run that could not restore: whoever takes the lock restores
//! it and removes it.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{Mode, SFlag, fstat};

/// The journal's directory and file.
pub const JOURNAL_DIR: &str = "/run/sockbench";
pub const JOURNAL_FILE: &str = "host-sysctl.json";

/// procfs's magic number (statfs(2)): a sysctl file is on it.
const PROC_SUPER_MAGIC: libc::c_long = 0x9fa0;

/// Largest journal read back (a run changes at most a few sysctls).
const MAX_JOURNAL_BYTES: u64 = 64 << 10;

/// Largest value written to a sysctl.
const MAX_VALUE_BYTES: usize = 4096;

/// The journal: which run changed what, and each original value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Journal {
    /// The run that wrote it, for messages (in the PID namespace of the
    /// procfs it saw; liveness is decided by the lock, never by this).
    pub pid: u32,
    /// A random number naming the run: its reaper restores only the
    /// journal carrying it.
    #[serde(default)]
    pub token: u64,
    /// (path under /proc/sys, original value), as read before any change.
    pub originals: Vec<(String, String)>,
}

/// The dotted name of a /proc/sys path, if it is one sockbench would
/// write: under /proc/sys/net, components of letters, digits, `_` and
/// `-` only (no `.`, `..` or empty component).
pub fn name_of(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/proc/sys/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    let ok = parts.len() >= 2
        && parts[0] == "net"
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
    ok.then(|| parts.join("."))
}

/// Open a sysctl file: only a path [`name_of`] accepts, never through a
/// link, and only a file of procfs.
fn open_sysctl(path: &str, write: bool) -> io::Result<std::fs::File> {
    if name_of(path).is_none() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{path} is not a network sysctl under /proc/sys"),
        ));
    }
    let flags = OFlag::O_NOFOLLOW
        | OFlag::O_CLOEXEC
        | OFlag::O_NONBLOCK
        | if write {
            OFlag::O_WRONLY
        } else {
            OFlag::O_RDONLY
        };
    let fd = nix::fcntl::open(path, flags, Mode::empty())?;
    let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: `fd` is open; `st` is a statfs-sized buffer the call fills.
    syscall!(fstatfs(fd.as_raw_fd(), st.as_mut_ptr()))?;
    // SAFETY: fstatfs succeeded, so it filled `st`.
    let st = unsafe { st.assume_init() };
    if st.f_type as libc::c_long != PROC_SUPER_MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{path} is not on procfs"),
        ));
    }
    Ok(std::fs::File::from(fd))
}

/// A sysctl's value as the kernel shows it (trailing newline dropped).
pub fn read_value(path: &str) -> io::Result<String> {
    let mut s = String::new();
    open_sysctl(path, false)?.read_to_string(&mut s)?;
    Ok(s.trim_end_matches('\n').to_string())
}

/// Write a sysctl's value.
pub fn write_value(path: &str, value: &str) -> io::Result<()> {
    if value.len() > MAX_VALUE_BYTES || value.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a value for {path} of {} bytes", value.len()),
        ));
    }
    open_sysctl(path, true)?.write_all(value.as_bytes())
}

/// Write back every original of `j` (all attempted; the first error is
/// returned).
pub fn restore(j: &Journal) -> io::Result<()> {
    let mut first = Ok(());
    for (path, v) in &j.originals {
        if let Err(e) = write_value(path, v)
            && first.is_ok()
        {
            first = Err(io::Error::new(e.kind(), format!("{path}: {e}")));
        }
    }
    first
}

/// The journal's directory, opened: made (mode 0755: anyone may see that
/// a journal exists, only root may write) if absent and `make`; refused if
/// it is a link, not a directory, not root's, or writable by others.
pub fn journal_dir(make: bool) -> io::Result<OwnedFd> {
    use std::os::unix::fs::DirBuilderExt;
    if make && nix::unistd::geteuid().is_root() {
        match std::fs::DirBuilder::new().mode(0o755).create(JOURNAL_DIR) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    let fd = nix::fcntl::open(
        JOURNAL_DIR,
        OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY,
        Mode::empty(),
    )
    .map_err(|e| match e {
        nix::errno::Errno::ELOOP | nix::errno::Errno::ENOTDIR => io::Error::other(format!(
            "{JOURNAL_DIR} is not a directory (a link or a file); remove it"
        )),
        e => io::Error::from(e),
    })?;
    let st = fstat(fd.as_fd())?;
    if st.st_uid != 0 || st.st_mode & 0o022 != 0 {
        return Err(io::Error::other(format!(
            "{JOURNAL_DIR} is not a root-owned directory only root can write (mode {:o}, owner {}); remove it",
            st.st_mode & 0o7777,
            st.st_uid
        )));
    }
    Ok(fd)
}

/// The journal's full path, for messages.
pub fn journal_path() -> PathBuf {
    Path::new(JOURNAL_DIR).join(JOURNAL_FILE)
}

/// What is at the journal's name.
#[derive(Debug)]
pub enum Found {
    /// No journal.
    None,
    /// A journal a live run holds (its lock is taken): left alone.
    Held(Journal),
    /// A journal nobody holds, now locked by the caller: restore it with
    /// [`Orphan::restore`].
    Orphan(Orphan),
}

/// A journal left by a run that is gone, locked by this process.
#[derive(Debug)]
pub struct Orphan {
    pub journal: Journal,
    file: std::fs::File,
    dir: OwnedFd,
}

impl Orphan {
    /// Restore its originals and remove it (if the name still names it).
    /// A journal that could not be restored stays for the next try.
    pub fn restore(self) -> io::Result<Journal> {
        restore(&self.journal)?;
        let on_disk = nix::sys::stat::fstatat(
            self.dir.as_fd(),
            JOURNAL_FILE,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
        let mine = fstat(self.file.as_fd())?;
        if (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino) {
            nix::unistd::unlinkat(
                self.dir.as_fd(),
                JOURNAL_FILE,
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            )?;
        }
        Ok(self.journal)
    }
}

fn journal_error(why: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{}: {why}", journal_path().display()))
}

/// Open what is at the journal's name: never blocking (a FIFO), never
/// through a link, a regular file only; every refusal names the file.
fn open_journal(dir: BorrowedFd<'_>) -> io::Result<Option<std::fs::File>> {
    let fd = match openat(
        dir,
        JOURNAL_FILE,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Ok(None),
        Err(nix::errno::Errno::ELOOP) => {
            return Err(journal_error(
                "is a symbolic link, not a journal sockbench wrote; remove it",
            ));
        }
        Err(e) => return Err(journal_error(e)),
    };
    let st = fstat(fd.as_fd()).map_err(journal_error)?;
    let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
    if kind != SFlag::S_IFREG {
        let what = match kind {
            SFlag::S_IFDIR => "a directory",
            SFlag::S_IFIFO => "a FIFO",
            SFlag::S_IFSOCK => "a socket",
            SFlag::S_IFCHR | SFlag::S_IFBLK => "a device",
            _ => "not a regular file",
        };
        return Err(journal_error(format!(
            "is {what}, not a journal sockbench wrote; remove it"
        )));
    }
    if st.st_uid != 0 {
        return Err(journal_error(format!(
            "belongs to uid {}, not root; remove it",
            st.st_uid
        )));
    }
    Ok(Some(std::fs::File::from(fd)))
}

/// `flock(LOCK_EX | LOCK_NB)`: whether the lock was taken.
fn try_lock(fd: BorrowedFd<'_>) -> io::Result<bool> {
    match syscall!(flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB)) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(false),
        Err(e) => Err(e),
    }
}

fn parse(file: &mut std::fs::File) -> io::Result<Journal> {
    let mut text = String::new();
    file.take(MAX_JOURNAL_BYTES)
        .read_to_string(&mut text)
        .map_err(journal_error)?;
    let j: Journal = serde_json::from_str(&text)
        .map_err(|e| journal_error(format!("not a sockbench journal ({e}); remove it")))?;
    if let Some((p, _)) = j.originals.iter().find(|(p, _)| name_of(p).is_none()) {
        return Err(journal_error(format!(
            "names {p:?}, which is not a network sysctl sockbench would write; remove it"
        )));
    }
    Ok(j)
}

/// Look at the journal's name: nothing, a journal a live run holds, or an
/// orphan (locked now by this process). A lock held by someone is waited
/// for up to `patience` (a reaper restoring takes milliseconds).
pub fn find(patience: Duration) -> io::Result<Found> {
    let dir = match journal_dir(false) {
        Ok(dir) => dir,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::None),
        Err(e) => return Err(e),
    };
    let t0 = Instant::now();
    loop {
        let Some(mut file) = open_journal(dir.as_fd())? else {
            return Ok(Found::None);
        };
        if try_lock(file.as_fd()).map_err(journal_error)? {
            // Removed and replaced while we waited for it: look again.
            let on_disk = nix::sys::stat::fstatat(
                dir.as_fd(),
                JOURNAL_FILE,
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            );
            let mine = fstat(file.as_fd()).map_err(journal_error)?;
            match on_disk {
                Ok(st) if (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino) => {}
                _ => continue,
            }
            let journal = parse(&mut file)?;
            return Ok(Found::Orphan(Orphan { journal, file, dir }));
        }
        if t0.elapsed() >= patience {
            let journal = parse(&mut file)?;
            return Ok(Found::Held(journal));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a journal exists, for a process that cannot open it (not
/// root): it may be a live run's or a killed run's.
pub fn journal_exists() -> bool {
    std::fs::symlink_metadata(journal_path()).is_ok()
}

/// A journal written by this run and locked for as long as it lives.
#[derive(Debug)]
pub struct Holding {
    pub journal: Journal,
    /// Holds the lock; closed when the process ends, however it ends.
    _file: std::fs::File,
}

impl Holding {
    /// The run is over (or being aborted): restore the originals, then
    /// remove the journal if its name still names it, and drop the lock.
    /// A journal that could not be restored stays for the next run.
    pub fn release(self) -> io::Result<()> {
        restore(&self.journal)?;
        let dir = journal_dir(false)?;
        let on_disk = nix::sys::stat::fstatat(
            dir.as_fd(),
            JOURNAL_FILE,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
        let mine = fstat(self._file.as_fd())?;
        if (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino) {
            nix::unistd::unlinkat(
                dir.as_fd(),
                JOURNAL_FILE,
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            )?;
        }
        Ok(())
    }
}

/// This process's pid as the host sees it where it can be told (the first
/// `NSpid` of /proc/self/status, which is in procfs's own namespace), for
/// messages only.
pub fn display_pid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("NSpid:"))
                .and_then(|v| v.split_whitespace().next().and_then(|p| p.parse().ok()))
        })
        .unwrap_or_else(std::process::id)
}

/// Write `j` as the journal, flushed to the file system and already
/// locked when it appears under its name; never over a journal that
/// exists (`AlreadyExists`), never through a link.
pub fn write_journal(j: &Journal) -> io::Result<Holding> {
    let dir = journal_dir(true)?;
    let tmp = temp_name(j.token);
    let fd = openat(
        dir.as_fd(),
        tmp.as_str(),
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )?;
    let unlink_tmp = || {
        let _ = nix::unistd::unlinkat(
            dir.as_fd(),
            tmp.as_str(),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
    };
    let mut file = std::fs::File::from(fd);
    let written = (|| {
        if !try_lock(file.as_fd())? {
            return Err(io::Error::other(
                "could not lock a file only this run knows",
            ));
        }
        file.write_all(serde_json::to_string(j).expect("serialises").as_bytes())?;
        file.sync_all()?;
        nix::unistd::linkat(
            dir.as_fd(),
            tmp.as_str(),
            dir.as_fd(),
            JOURNAL_FILE,
            nix::fcntl::AtFlags::empty(),
        )?;
        Ok(())
    })();
    unlink_tmp();
    written?;
    Ok(Holding {
        journal: j.clone(),
        _file: file,
    })
}

/// The name a journal is written under before it is linked into place:
/// the run's token makes it the run's alone.
fn temp_name(token: u64) -> String {
    format!(".{JOURNAL_FILE}.{token:016x}")
}

/// How long the reaper waits for a dead run's lock to go: the kernel
/// closes a dead process's descriptors one by one, and the reaper's pipe
/// may close before the journal does.
const REAPER_PATIENCE: Duration = Duration::from_secs(2);

/// The reaper's restore, after this run's process is gone: the journal at
/// the name, if it carries `token` and nobody holds it, restored and
/// removed; and the run's temporary name, if a kill left it (while the
/// journal was being written). Anything else is left alone. Says on stderr
/// what it could not restore.
pub fn restore_if_mine(token: u64) {
    match find(REAPER_PATIENCE) {
        Ok(Found::Orphan(o)) if o.journal.token == token => {
            if let Err(e) = o.restore() {
                let _ = writeln!(
                    io::stderr(),
                    "sockbench's reaper: could not restore host sysctls ({e}); `sockbench restore-sysctl` will"
                );
            }
        }
        _ => {}
    }
    if let Ok(dir) = journal_dir(false) {
        let _ = nix::unistd::unlinkat(
            dir.as_fd(),
            temp_name(token).as_str(),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_network_sysctl_paths_are_names() {
        assert_eq!(
            name_of("/proc/sys/net/core/busy_poll").as_deref(),
            Some("net.core.busy_poll")
        );
        assert_eq!(
            crate::spec::sysctl_path("net.core.busy_poll"),
            "/proc/sys/net/core/busy_poll"
        );
        for bad in [
            "/tmp/victim",
            "/proc/sys/kernel/panic",
            "/proc/sys/net/../../../tmp/victim",
            "/proc/sys/net/./core",
            "/proc/sys/net//core",
            "/proc/sys/net",
            "/proc/sys/net/core/busy.poll",
            "proc/sys/net/core/busy_poll",
        ] {
            assert_eq!(name_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_file_outside_procfs_is_never_written() {
        let e = write_value("/tmp/victim", "1").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
