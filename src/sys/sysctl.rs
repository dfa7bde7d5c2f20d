//! Stage: system calls. Host-wide sysctls a run changes when the user asks
//! (`--sysctl NAME=… --allow-host-sysctl`): their values read and written
//! under /proc/sys, and the journal of their original values, kept in a
//! root-owned private directory under /run (a tmpfs: a reboot resets the
//! sysctls and the journal together). A run writes the journal before its
//! first change and removes it after restoring; a journal found at start
//! was left by a run that could not restore (the next run, or `sockbench
//! restore-sysctl`, restores it).

use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The journal's directory and file.
pub const JOURNAL_DIR: &str = "/run/sockbench";
pub const JOURNAL_FILE: &str = "host-sysctl.json";

/// The journal: which process changed what, and each original value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Journal {
    /// The run that wrote it.
    pub pid: u32,
    /// (path under /proc/sys, original value), as read before any change.
    pub originals: Vec<(String, String)>,
}

/// The journal's path, in a directory that is ours: made 0700 if absent;
/// refused if it is a link, not a directory, not root's, or open to others.
pub fn journal_path() -> io::Result<PathBuf> {
    let dir = Path::new(JOURNAL_DIR);
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(dir)?;
    let unsafe_dir = !meta.is_dir() || meta.uid() != 0 || meta.permissions().mode() & 0o077 != 0;
    if unsafe_dir {
        return Err(io::Error::other(format!(
            "{JOURNAL_DIR} is not a private root-owned directory (mode {:o}, owner {}); remove it",
            meta.permissions().mode() & 0o7777,
            meta.uid()
        )));
    }
    Ok(dir.join(JOURNAL_FILE))
}

/// A sysctl's value as the kernel shows it (trailing newline dropped).
pub fn read_value(path: &str) -> io::Result<String> {
    Ok(std::fs::read_to_string(path)?
        .trim_end_matches('\n')
        .to_string())
}

/// Write a sysctl's value.
pub fn write_value(path: &str, value: &str) -> io::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(value.as_bytes())
}

/// The journal left at `path`, if any.
pub fn read_journal(path: &Path) -> io::Result<Option<Journal>> {
    let text = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(mut f) => {
            let mut s = String::new();
            io::Read::read_to_string(&mut f, &mut s)?;
            s
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| io::Error::other(format!("{}: not a sockbench journal ({e})", path.display())))
}

/// Write `j` as a new journal at `path` (never over one that exists, never
/// through a link), flushed to the file system before any change is made.
pub fn write_journal(path: &Path, j: &Journal) -> io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    f.write_all(serde_json::to_string(j).expect("serialises").as_bytes())?;
    f.sync_all()
}

/// Whether process `pid` still runs (and is not this one's zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            // The state follows the command name in parentheses; Z: a zombie.
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
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
