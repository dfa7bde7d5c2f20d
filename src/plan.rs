//! Stage: config. Raw arguments → a validated [`Plan`]: every case the run
//! will measure, with sizes each transport can carry and CPUs that exist.
//! Bad input becomes `Error::Config` naming the flag, the value and what is
//! allowed. Creates nothing.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::affinity;
use crate::cli::{Format, LatencyArgs, Switch};
use crate::error::{Error, Result};
use crate::transport::{TransportKind, TransportOpts, datagram_limit};
use crate::workload::Mode;

/// Largest UDP payload over IPv4: 65,535 − 20 (IP header) − 8 (UDP header).
pub const UDP4_MAX: usize = 65_507;

/// One (transport, message size) combination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    pub transport: TransportKind,
    pub size: usize,
}

/// How much each case measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// Timed round trips per case, split over the trials.
    Iterations(u64),
    /// Timed run length per case, split over the trials.
    Duration(Duration),
}

/// A validated latency run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Transport-major order, as given.
    pub cases: Vec<Case>,
    pub budget: Budget,
    pub warmup: u64,
    pub warmup_time: Duration,
    pub trials: u32,
    pub server_cpu: usize,
    pub client_cpu: usize,
    pub mode: Mode,
    pub opts: TransportOpts,
    pub verify: bool,
    pub format: Format,
    pub out: Option<PathBuf>,
}

impl Plan {
    /// Validate `args`.
    pub fn latency(args: &LatencyArgs) -> Result<Plan> {
        let transports = unique(
            "--transport",
            args.transport.iter().flatten().copied(),
            |k| k.name().to_string(),
        )?;
        let sizes = unique("--size", args.size.iter().copied(), |s| s.to_string())?;
        let mut cases = Vec::new();
        for &transport in &transports {
            for &size in &sizes {
                check_size(transport, size)?;
                cases.push(Case { transport, size });
            }
        }
        let cpus = affinity::available();
        check_cpu("--server-cpu", args.server_cpu, &cpus)?;
        check_cpu("--client-cpu", args.client_cpu, &cpus)?;
        let budget = match (args.iterations, args.duration) {
            (Some(n), _) => {
                if n < u64::from(args.trials) {
                    return Err(Error::config(
                        "--iterations",
                        n,
                        format!(
                            "fewer than --trials ({}); every trial needs at least one round trip",
                            args.trials
                        ),
                    ));
                }
                Budget::Iterations(n)
            }
            (None, Some(d)) => Budget::Duration(d),
            (None, None) => Budget::Duration(Duration::from_secs(1)),
        };
        if let Some(out) = &args.out {
            check_out(out)?;
        }
        Ok(Plan {
            cases,
            budget,
            warmup: args.warmup,
            warmup_time: args.warmup_time,
            trials: args.trials,
            server_cpu: args.server_cpu,
            client_cpu: args.client_cpu,
            mode: args.mode,
            opts: TransportOpts {
                nodelay: args.nodelay == Switch::On,
                timeout: args.timeout,
                wait: args.wait,
            },
            verify: args.verify,
            format: args.format,
            out: args.out.clone(),
        })
    }
}

/// Keep order; a value given twice is an error (it would be measured twice
/// and reported as two cases with the same name).
fn unique<T: Copy + Eq + std::hash::Hash>(
    flag: &'static str,
    items: impl Iterator<Item = T>,
    show: impl Fn(&T) -> String,
) -> Result<Vec<T>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for it in items {
        if !seen.insert(it) {
            return Err(Error::config(
                flag,
                show(&it),
                "given twice; list each value once",
            ));
        }
        out.push(it);
    }
    Ok(out)
}

/// Refuse sizes a transport cannot carry, with the limit and what raises it.
pub fn check_size(kind: TransportKind, size: usize) -> Result<()> {
    if kind == TransportKind::Udp4 && size > UDP4_MAX {
        return Err(Error::config(
            "--size",
            size,
            format!(
                "udp4 carries at most {UDP4_MAX} B per datagram (the IPv4 limit); use a smaller size or a stream transport"
            ),
        ));
    }
    match datagram_limit(kind, size) {
        Ok(None) => Ok(()),
        Ok(Some(limit)) => Err(Error::config(
            "--size",
            size,
            format!(
                "{kind} carries at most {limit} B per message here, even with SO_SNDBUF raised to net.core.wmem_max ({}); \
                 raise it with `sysctl -w net.core.wmem_max=<bytes>` or use a smaller size",
                read_sysctl("net/core/wmem_max").unwrap_or_else(|| "?".into())
            ),
        )),
        Err(e) => Err(Error::Setup {
            op: "probe",
            target: "message size limit".into(),
            transport: kind.name(),
            size,
            source: e,
        }),
    }
}

fn read_sysctl(path: &str) -> Option<String> {
    std::fs::read_to_string(Path::new("/proc/sys").join(path))
        .ok()
        .map(|s| s.trim().to_string())
}

fn check_cpu(flag: &'static str, cpu: usize, cpus: &[usize]) -> Result<()> {
    if cpus.contains(&cpu) {
        return Ok(());
    }
    Err(Error::config(
        flag,
        cpu,
        format!(
            "CPU {cpu} is not online or not allowed for this process; allowed: {}",
            affinity::format_list(cpus)
        ),
    ))
}

/// `--out` must be new or an empty directory, in a writable directory.
fn check_out(out: &Path) -> Result<()> {
    let bad = |why: &str| Err(Error::config("--out", out.display(), why));
    if out.as_os_str().is_empty() {
        return bad("empty path; name a new directory");
    }
    match std::fs::symlink_metadata(out) {
        Ok(m) if m.is_dir() => {
            let empty = std::fs::read_dir(out)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false);
            if !empty {
                return bad("already exists and is not empty; name a new or empty directory");
            }
        }
        Ok(_) => return bad("exists and is not a directory; name a new directory"),
        Err(_) => {}
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return bad("its parent directory does not exist; create it first");
    }
    if nix::unistd::access(parent, nix::unistd::AccessFlags::W_OK).is_err() {
        return bad("its parent directory is not writable");
    }
    Ok(())
}
