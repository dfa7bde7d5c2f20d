//! Stage: results. Writers: summary.json, summary.csv, env.json and one
//! HdrHistogram percentile-distribution (.hgrm) file per case. A run
//! directory is written into a hidden staging directory next to it and
//! renamed into place, so it is complete or absent.

use std::fmt::Write as _;
use std::fs;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use hdrhistogram::Histogram;

use super::AnyReport;
use crate::cleanup;
use crate::error::{Error, Result};
use crate::sys::fs::{self as sfs, DirId};
use crate::workload::run::Run;

fn file_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::File { op, path, source }
}

/// summary.csv's content: a header and one row per case.
pub fn csv_string(report: &AnyReport) -> Result<String> {
    match report {
        AnyReport::Latency(r) => csv_rows(r.cases.iter().map(|c| &c.row)),
        AnyReport::Throughput(r) => csv_rows(r.cases.iter().map(|c| &c.row)),
    }
}

/// Rows → CSV via their JSON form, so flattened structs work and the
/// header follows field order (`serde_json`'s `preserve_order`).
fn csv_rows<'a, R: serde::Serialize + 'a>(rows: impl IntoIterator<Item = &'a R>) -> Result<String> {
    let fail =
        |e: String| file_err("write csv", Path::new("summary.csv"))(std::io::Error::other(e));
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header_written = false;
    for r in rows {
        let serde_json::Value::Object(map) =
            serde_json::to_value(r).map_err(|e| fail(e.to_string()))?
        else {
            return Err(fail("a row is not a JSON object".into()));
        };
        if !header_written {
            w.write_record(map.keys())
                .map_err(|e| fail(e.to_string()))?;
            header_written = true;
        }
        let cells = map.values().map(|v| match v {
            serde_json::Value::Null => String::new(),
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        w.write_record(cells).map_err(|e| fail(e.to_string()))?;
    }
    let bytes = w.into_inner().map_err(|e| fail(e.to_string()))?;
    Ok(String::from_utf8(bytes).expect("csv is UTF-8"))
}

/// summary.json's content.
pub fn json_string(report: &AnyReport) -> String {
    let s = match report {
        AnyReport::Latency(r) => serde_json::to_string_pretty(r),
        AnyReport::Throughput(r) => serde_json::to_string_pretty(r),
    };
    s.expect("report serialises") + "\n"
}

/// A histogram of ns values as HdrHistogram's percentile distribution text,
/// values in microseconds (`.hgrm`, readable by HdrHistogram's plotter).
pub fn hgrm_string(h: &Histogram<u64>) -> String {
    const SCALE: f64 = 1000.0; // ns → µs
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    for v in h.iter_quantiles(5) {
        total += v.count_since_last_iteration();
        let q = v.quantile_iterated_to();
        let value = v.value_iterated_to() as f64 / SCALE;
        if q < 1.0 {
            let _ = writeln!(
                s,
                "{value:12.3} {q:2.12} {total:10} {:14.2}",
                1.0 / (1.0 - q)
            );
        } else {
            let _ = writeln!(s, "{value:12.3} {q:2.12} {total:10}");
        }
    }
    let _ = writeln!(
        s,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        h.mean() / SCALE,
        h.stdev() / SCALE
    );
    let _ = writeln!(
        s,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        h.max() as f64 / SCALE,
        h.len()
    );
    let _ = writeln!(
        s,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        h.distinct_values()
    );
    s
}

/// A result directory in the making: a private directory with an
/// unpredictable name, created exclusively beside `--out` before anything
/// is measured, holding the room the results will need. [`Staging::commit`]
/// writes the files into it (through its descriptor) and renames it into
/// place, so a result directory is whole or absent. Dropped uncommitted, it
/// is removed; if the process is killed, the reaper removes it.
#[derive(Debug)]
pub struct Staging {
    out: PathBuf,
    path: PathBuf,
    fd: OwnedFd,
    id: DirId,
    committed: bool,
}

/// Name of the file that holds the reserved room until the results need it.
const RESERVE: &str = ".reserve";

/// Room to reserve for a run's results: generous for summary.json's
/// per-trial points, one .hgrm per case, the CSV and the fingerprint.
pub fn estimate_bytes(cases: usize, trials: u32) -> u64 {
    (64 << 10) + cases as u64 * ((16 << 10) + u64::from(trials) * 1024)
}

/// At most what the results take on stdout in `format`: summary.json's
/// per-trial points (about 400 B a trial and 3 KiB a case, measured),
/// doubled; a table or CSV row per case.
pub fn stdout_bytes(format: crate::cli::Format, cases: usize, trials: u32) -> u64 {
    let cases = cases as u64;
    match format {
        crate::cli::Format::Json => (16 << 10) + cases * ((8 << 10) + u64::from(trials) * 1024),
        crate::cli::Format::Csv => (2 << 10) + cases * 1024,
        crate::cli::Format::Table => (4 << 10) + cases * 512,
    }
}

impl Staging {
    /// Check `out` and make the staging directory with `reserve` bytes of
    /// room, before any timed work. Everything that can be known now is an
    /// `Error::Config` naming `--out` (exit 2).
    pub fn prepare(out: &Path, reserve: u64) -> Result<Staging> {
        let bad = |why: String| Error::config("--out", out.display(), why);
        // `d/.` and `d/..` name `d` to Path, but rename(2) onto them fails.
        let mut raw = out.as_os_str().as_encoded_bytes();
        while raw.len() > 1 && raw.ends_with(b"/") {
            raw = &raw[..raw.len() - 1];
        }
        let dots = raw == b"." || raw == b".." || raw.ends_with(b"/.") || raw.ends_with(b"/..");
        if dots {
            return Err(bad(
                "ends in . or .., which names no new directory; name the directory itself".into(),
            ));
        }
        if let Some(limit) = sfs::file_size_limit()
            && limit < reserve
        {
            return Err(bad(format!(
                "the file size limit (ulimit -f) is {limit} B, and one result file may need up to {reserve} B; \
                 raise it (ulimit -f unlimited)"
            )));
        }
        let Some(name) = out.file_name() else {
            return Err(bad(
                "names no new directory (., .. or /); name a new or empty directory".into(),
            ));
        };
        if name.len() > 255 {
            return Err(bad(format!(
                "its last component is {} bytes long; a file name holds at most 255",
                name.len()
            )));
        }
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !parent.is_dir() {
            return Err(bad(
                "its parent directory does not exist; create it first".into()
            ));
        }
        if let Some(why) = sfs::unsafe_parent(&parent) {
            return Err(bad(format!(
                "its parent directory {why}; name a directory elsewhere"
            )));
        }
        match fs::symlink_metadata(out) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(bad("is a symbolic link; name a new directory".into()));
            }
            Ok(m) if m.is_dir() => {
                let empty = fs::read_dir(out)
                    .map(|mut d| d.next().is_none())
                    .unwrap_or(false);
                if !empty {
                    return Err(bad(
                        "already exists and is not empty; name a new or empty directory".into(),
                    ));
                }
                if sfs::is_mount_point(out) {
                    return Err(bad(
                        "is a mount point, which a finished result cannot be renamed onto; name a directory inside it".into(),
                    ));
                }
            }
            Ok(_) => {
                return Err(bad(
                    "exists and is not a directory; name a new directory".into()
                ));
            }
            Err(_) => {}
        }
        let (path, fd, id) =
            cleanup::make_private_dir(&parent, ".sockbench-", sfs::Contents::Results)
                .map_err(|e| bad(format!("its parent directory is not writable ({e})")))?;
        let staging = Staging {
            out: out.to_path_buf(),
            path,
            fd,
            id,
            committed: false,
        };
        sfs::reserve(staging.fd.as_fd(), std::ffi::OsStr::new(RESERVE), reserve).map_err(|e| {
            bad(format!(
                "its file system cannot hold the results (about {} KiB): {e}",
                reserve.div_ceil(1024)
            ))
        })?;
        Ok(staging)
    }

    /// Where the results are going.
    pub fn out(&self) -> &Path {
        &self.out
    }

    /// Write the run's files and rename the directory into place.
    pub fn commit(mut self, report: &AnyReport, run: &Run) -> Result<()> {
        let _ = sfs::unlink_in(self.fd.as_fd(), std::ffi::OsStr::new(RESERVE));
        fill(
            |name, body| put_at(&self.fd, &self.path, name, body),
            report,
            run,
        )?;
        let dir = fs::File::from(self.fd.try_clone().map_err(file_err("sync", &self.path))?);
        dir.sync_all().map_err(file_err("sync", &self.path))?;
        // `out` is absent or an empty directory (checked when prepared);
        // rename(2) replaces an empty directory.
        fs::rename(&self.path, &self.out)
            .map_err(file_err("rename staging directory to", &self.out))?;
        self.committed = true;
        cleanup::forget_dir(&self.path);
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = sfs::remove_owned_dir(&self.path, self.id, sfs::Contents::Results);
            cleanup::forget_dir(&self.path);
        }
    }
}

/// Write `name` inside the directory `dir` (shown as `shown/name`):
/// created exclusively, never through a link, synced.
fn put_at(dir: &OwnedFd, shown: &Path, name: &str, body: &str) -> Result<()> {
    let p = shown.join(name);
    let fd = nix::fcntl::openat(
        dir.as_fd(),
        name,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o644),
    )
    .map_err(|e| file_err("create", &p)(e.into()))?;
    let mut f = fs::File::from(fd);
    f.write_all(body.as_bytes())
        .map_err(file_err("write", &p))?;
    f.sync_all().map_err(file_err("sync", &p))
}

/// Write a run's files into a fresh directory under `$TMPDIR` (a fallback
/// when `--out` could not be written after measuring); returns its path.
pub fn write_fallback(report: &AnyReport, run: &Run) -> Result<PathBuf> {
    let tmp = std::env::temp_dir();
    let dir = tempfile::Builder::new()
        .prefix("sockbench-result-")
        .tempdir_in(&tmp)
        .map_err(file_err("create", &tmp))?
        .keep();
    let fd = sfs::open_dir(&dir).map_err(file_err("open", &dir))?;
    if let Err(e) = fill(|name, body| put_at(&fd, &dir, name, body), report, run) {
        if let Ok(id) = sfs::dir_id(fd.as_fd()) {
            let _ = sfs::remove_owned_dir(&dir, id, sfs::Contents::Results);
        }
        return Err(e);
    }
    Ok(dir)
}

fn fill(put: impl Fn(&str, &str) -> Result<()>, report: &AnyReport, run: &Run) -> Result<()> {
    put("summary.json", &json_string(report))?;
    put("summary.csv", &csv_string(report)?)?;
    put(
        "env.json",
        &(serde_json::to_string_pretty(report.env()).expect("fingerprint serialises") + "\n"),
    )?;
    // The names summary.json gives each case (`hgrm_file`).
    for (c, file) in run.cases.iter().zip(report.hgrm_files()) {
        if let Some(file) = file {
            put(file, &hgrm_string(&c.hist))?;
        }
    }
    Ok(())
}
