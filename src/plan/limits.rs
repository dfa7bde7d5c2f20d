//! Stage: config. Whether a plan fits the machine before anything is made:
//! how many cases its lists multiply into (counted before any is built),
//! and the descriptors, threads or processes and memory its pairs hold
//! open at once, against the process's limits. A plan that cannot fit is
//! bad input, refused with one line naming the product.

use crate::cli::Common;
use crate::error::{Error, Result};
use crate::spec::{Job, Mode};

use super::{Case, Workload};

/// Most cases one run may hold: each keeps a connected pair (and a server
/// thread or process) from set-up to the end of the run.
pub const MAX_CASES: u128 = 4096;

/// Descriptors a run holds besides its cases' (stdio, the reaper's pipe,
/// the signal thread's, a directory or two, a namespace), with room.
const BASE_FDS: u64 = 64;

/// The dimensions a plan's cases multiply, as (flag, values) with more
/// than one value, and their product; counted from the lists, before any
/// case is built.
pub fn case_count(
    c: &Common,
    transports: usize,
    sizes: usize,
    rates: usize,
) -> (Vec<(&'static str, u128)>, u128) {
    let sysctl_values: u128 = c
        .sysctl
        .iter()
        .fold(1u128, |acc, x| acc.saturating_mul(x.values.len() as u128));
    let knobs = [
        ("--nodelay", c.nodelay.len()),
        ("--wait", c.wait.len()),
        ("--mode", c.mode.len()),
        ("--placement", c.placement.len()),
        ("--sndbuf", c.sndbuf.len()),
        ("--rcvbuf", c.rcvbuf.len()),
        ("--busy-poll", c.busy_poll.len()),
        ("--trace", c.trace.len()),
    ];
    // Each case is a transport, size, rate and --netns mode times an entry
    // of the knob list (every knob combination, and --control's A/A copy).
    let mut dims: Vec<(&'static str, u128)> = vec![
        ("--transport", transports as u128),
        ("sizes", sizes as u128),
        ("--rate", rates as u128),
        ("--netns", c.netns.len().max(1) as u128),
        ("--sysctl", sysctl_values),
    ];
    dims.extend(knobs.iter().map(|&(f, n)| (f, n.max(1) as u128)));
    let product =
        |d: &[(&'static str, u128)]| d.iter().fold(1u128, |acc, &(_, n)| acc.saturating_mul(n));
    let knob_list = product(&dims[4..]).saturating_add(u128::from(c.control));
    let total = product(&dims[..4]).saturating_mul(knob_list);
    dims.retain(|&(_, n)| n > 1);
    (dims, total)
}

/// `2 --transport × 3 sizes × 1000 --sndbuf = 6,000 cases`.
fn describe(dims: &[(&'static str, u128)], total: u128) -> String {
    let parts: Vec<String> = dims.iter().map(|(f, n)| format!("{n} {f}")).collect();
    format!(
        "{} = {} cases",
        if parts.is_empty() {
            "1".to_string()
        } else {
            parts.join(" × ")
        },
        group(total)
    )
}

/// 1234567 → `1,234,567`.
fn group(n: u128) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// The flag of the largest dimension, which a refusal names.
pub fn largest(dims: &[(&'static str, u128)]) -> &'static str {
    dims.iter()
        .max_by_key(|&&(_, n)| n)
        .map_or("--transport", |&(f, _)| f)
}

/// Refuse a plan of more than [`MAX_CASES`] cases before any is built
/// (`dims` and `total` from [`case_count`]).
pub fn check_count(dims: &[(&'static str, u128)], total: u128) -> Result<()> {
    if total > MAX_CASES {
        return Err(Error::config(
            largest(dims),
            describe(dims, total),
            format!(
                "at most {} cases per run (each keeps a pair and a server open); measure fewer values per run",
                group(MAX_CASES)
            ),
        ));
    }
    Ok(())
}

/// Descriptors a case's pair holds open in this process for the whole run
/// (both ends in thread mode; the control channel; a listener; a load
/// pair's connections and event loops), rounded up.
fn descriptors(workload: Workload) -> u64 {
    match workload.job() {
        Job::Load => 2 * workload.connections() as u64 + 8,
        _ => 8,
    }
}

/// Memory a case holds for the whole run, at most: its latency histograms
/// (the trial's and the rounds'; a load case's two more of each) and its
/// buffers.
fn memory_bytes(workload: Workload, case: &Case, histogram_bytes: u64) -> u64 {
    let hists = if workload.job() == Job::Load { 6 } else { 2 };
    let buf = case.size.max(case.response) as u64;
    hists * histogram_bytes + 4 * buf * workload.connections() as u64
}

/// Refuse a plan whose pairs cannot all be open at once: descriptors over
/// `ulimit -n`, server threads or processes over the limits on tasks, or
/// memory over half of what is available; `flag` is what the refusal names.
pub fn check_fit(
    workload: Workload,
    cases: &[Case],
    pairs: usize,
    flag: &'static str,
) -> Result<()> {
    use nix::sys::resource::{Resource, getrlimit};
    let shown = |what: String| -> String {
        format!(
            "{} cases{} {what}",
            group(cases.len() as u128),
            if pairs > 1 {
                format!(" × {pairs} pairs")
            } else {
                String::new()
            }
        )
    };
    let per_pair = pairs as u64;
    let fds: u64 = BASE_FDS
        + cases
            .iter()
            .map(|_| descriptors(workload) * per_pair)
            .sum::<u64>();
    let (nofile, _) = getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((1024, 1024));
    if fds > nofile {
        return Err(Error::config(
            flag,
            shown(format!(
                "hold about {} descriptors open at once",
                group(fds.into())
            )),
            format!(
                "the limit (ulimit -n) is {}; raise it (ulimit -n {fds}) or measure fewer cases per run",
                group(nofile.into())
            ),
        ));
    }
    let tasks = cases.len() as u64 * per_pair + 8;
    let process = cases.iter().any(|k| k.knobs.mode == Mode::Process);
    let (nproc, _) = getrlimit(Resource::RLIMIT_NPROC).unwrap_or((u64::MAX, u64::MAX));
    let threads_max = read_u64("/proc/sys/kernel/threads-max").unwrap_or(u64::MAX);
    let pid_max = read_u64("/proc/sys/kernel/pid_max").unwrap_or(u64::MAX);
    let root = nix::unistd::geteuid().is_root();
    let task_limit = [
        if root { u64::MAX } else { nproc },
        threads_max / 2,
        pid_max / 2,
    ]
    .into_iter()
    .min()
    .unwrap_or(u64::MAX);
    if tasks > task_limit {
        return Err(Error::config(
            flag,
            shown(format!(
                "run about {} server {} at once",
                group(tasks.into()),
                if process {
                    "processes and threads"
                } else {
                    "threads"
                }
            )),
            format!(
                "this machine allows {} (ulimit -u, kernel.threads-max and kernel.pid_max); measure fewer cases per run",
                group(task_limit.into())
            ),
        ));
    }
    let histogram_bytes = crate::samples::new_histogram().distinct_values() as u64 * 8;
    let memory: u64 = cases
        .iter()
        .map(|k| memory_bytes(workload, k, histogram_bytes) * per_pair)
        .sum();
    if let Some(avail) = mem_available()
        && memory > avail / 2
    {
        return Err(Error::config(
            flag,
            shown(format!("hold up to {} MiB", group((memory >> 20).into()))),
            format!(
                "more than half the memory available here ({} MiB); measure fewer cases or smaller sizes per run",
                group((avail >> 20).into())
            ),
        ));
    }
    Ok(())
}

/// Fewest requests an open-loop trial may expect to send: a trial lasts
/// its duration, and fewer than this make no percentile.
pub const MIN_REQUESTS_PER_TRIAL: f64 = 10.0;

/// Refuse a `load` rate at which a trial of `-d` over `--trials` would
/// send fewer than [`MIN_REQUESTS_PER_TRIAL`] requests.
pub fn check_rates(rates: &[u64], duration: std::time::Duration, trials: u32) -> Result<()> {
    let trial = duration.as_secs_f64() / f64::from(trials);
    for &r in rates {
        let expected = r as f64 * trial;
        if expected < MIN_REQUESTS_PER_TRIAL {
            let need_rate = (MIN_REQUESTS_PER_TRIAL / trial).ceil();
            let need_d = MIN_REQUESTS_PER_TRIAL / r as f64 * f64::from(trials);
            return Err(Error::config(
                "--rate",
                r,
                format!(
                    "a trial lasts {} (-d over --trials) and would send about {expected:.1} requests at {r}/s; \
                     at least {MIN_REQUESTS_PER_TRIAL} per trial: --rate {need_rate} or more, or -d {}s or more",
                    humantime::format_duration(std::time::Duration::from_secs_f64(trial)),
                    need_d.ceil()
                ),
            ));
        }
    }
    Ok(())
}

fn read_u64(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// MemAvailable from /proc/meminfo, bytes.
fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_is_every_case_the_plan_would_build() {
        use clap::Parser;
        let parse = |args: &[&str]| {
            let argv = [&["sockbench", "latency"][..], args].concat();
            match crate::cli::Cli::try_parse_from(argv).unwrap().command {
                crate::cli::Command::Latency(a) => a.common,
                _ => panic!("a latency command"),
            }
        };
        // 2 transports × 3 sizes × 2 netns modes × (2 nodelay + the A/A copy).
        let c = parse(&["--nodelay", "on,off", "--netns", "off,veth", "--control"]);
        assert_eq!(case_count(&c, 2, 3, 1).1, 2 * 3 * 2 * 3);
        // Lists too long to multiply saturate instead of wrapping.
        let many: Vec<String> = (1..=1000).map(|i| (i * 4096).to_string()).collect();
        let many = many.join(",");
        let c = parse(&["--sndbuf", &many, "--rcvbuf", &many]);
        assert_eq!(case_count(&c, 2, 1, 1).1, 2_000_000);
        assert_eq!(
            case_count(&c, usize::MAX, usize::MAX, usize::MAX).1,
            u128::MAX
        );
    }

    #[test]
    fn counts_group_by_thousands() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(200_000_000), "200,000,000");
    }
}
