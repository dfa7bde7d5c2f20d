//! Stage: config (flag values). Each flag's parser: a unit (sizes,
//! durations, percents) or a name in, a value or one line naming what is
//! allowed out. No I/O and no cross-flag checks (that is `plan`).

use std::time::Duration;

use super::{MAX_SIZE, TransportArg};
use crate::spec::{MAX_RATE, RateArg};

/// A request rate: a number with an optional `k` (thousands), 1 to
/// 1,000,000 per second; or `sweep`.
pub fn parse_rate(s: &str) -> Result<RateArg, String> {
    const HINT: &str =
        "write rates as 5000, 20k or 1.5k requests per second (1 to 1000k), or sweep";
    if s == "sweep" {
        return Ok(RateArg::Sweep);
    }
    let (num, mult) = match s.strip_suffix(['k', 'K']) {
        Some(n) => (n, 1000.0),
        None => (s, 1.0),
    };
    let v = num
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .map(|v| v * mult)
        .ok_or_else(|| format!("not a rate; {HINT}"))?;
    if v.fract() != 0.0 || !(1.0..=MAX_RATE as f64).contains(&v) {
        return Err(format!("out of range; {HINT}"));
    }
    Ok(RateArg::PerSecond(v as u64))
}

/// Connections of `load`: 1 to 1024.
pub fn parse_connections(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(n),
        _ => Err("must be a whole number from 1 to 1024".into()),
    }
}

/// One element of --transport: a name, or `all`.
pub fn parse_transport(s: &str) -> Result<TransportArg, String> {
    if s == "all" {
        return Ok(TransportArg::All);
    }
    if s == "ladder" {
        return Ok(TransportArg::Ladder);
    }
    s.parse().map(TransportArg::One)
}

/// A message size: digits with an optional binary unit K/KiB or M/MiB
/// (1024-based), from 1 B to 1 MiB.
pub fn parse_size(s: &str) -> Result<usize, String> {
    sized(
        s,
        MAX_SIZE,
        "write sizes as 64, 4K, 64KiB or 1MiB (1 B to 1 MiB)",
    )
}

/// Largest `--sndbuf`/`--rcvbuf` asked for.
pub const MAX_BUFFER: usize = 1 << 30;

/// `--sndbuf`/`--rcvbuf`: a size as for messages, from 1 B to 1 GiB (the
/// kernel doubles the request and caps it at net.core.wmem_max/rmem_max;
/// what it granted is recorded).
pub fn parse_buffer(s: &str) -> Result<usize, String> {
    sized(
        s,
        MAX_BUFFER,
        "write buffer sizes as 64K, 256KiB or 4M (1 B to 1024M)",
    )
}

/// `--busy-poll`: microseconds, 0 to 1,000,000.
pub fn parse_busy_poll(s: &str) -> Result<u32, String> {
    s.parse::<u32>()
        .ok()
        .filter(|&n| n <= 1_000_000)
        .ok_or_else(|| "must be whole microseconds from 0 to 1000000".into())
}

fn sized(s: &str, max: usize, hint: &str) -> Result<usize, String> {
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(digits);
    if num.is_empty() {
        return Err(format!("not a size; {hint}"));
    }
    let mult: usize = match unit {
        "" | "B" => 1,
        "K" | "k" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        _ => return Err(format!("unknown unit '{unit}'; {hint}")),
    };
    let n = num
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|&n| (1..=max).contains(&n))
        .ok_or_else(|| format!("out of range; {hint}"))?;
    Ok(n)
}

/// A duration with a unit (humantime: 2s, 500ms, 1m); must be above zero.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration_or_zero(s)?;
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(d)
}

/// Shortest and longest `--timeout`.
pub const TIMEOUT_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(10)..=Duration::from_secs(3600);

/// `--timeout`: a duration from 10 ms to 1 h. Shorter bounds are below what
/// SO_RCVTIMEO and the scheduler can keep; longer ones are no bound at all
/// for a benchmark.
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    let d = parse_duration_or_zero(s)?;
    if !TIMEOUT_RANGE.contains(&d) {
        return Err("must be from 10ms to 1h".into());
    }
    Ok(d)
}

/// A duration with a unit; zero allowed.
pub fn parse_duration_or_zero(s: &str) -> Result<Duration, String> {
    // humantime's own message lists units no benchmark takes (months,
    // years): name the ones that make sense here instead.
    humantime::parse_duration(s).map_err(|_| {
        "a duration: a number and a unit (ns, us, ms, s, m, h), as 2s, 500ms or 1m30s".into()
    })
}

/// `--no-warn`: one of the warnings' codes.
pub fn parse_warning_code(s: &str) -> Result<&'static str, String> {
    use crate::spec::WARNING_CODES as CODES;
    CODES
        .iter()
        .find(|c| **c == s)
        .copied()
        .ok_or_else(|| format!("not a warning's code; the codes are {}", CODES.join(", ")))
}

/// A whole number, zero allowed.
pub fn parse_whole(s: &str) -> Result<u64, String> {
    s.parse::<u64>()
        .map_err(|_| "must be a whole number (0 or more)".to_string())
}

/// A whole number of at least 1.
pub fn parse_count(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("must be a whole number of at least 1".into()),
    }
}

/// Trials: 1 to 10,000.
pub fn parse_trials(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if (1..=10_000).contains(&n) => Ok(n),
        _ => Err("must be a whole number from 1 to 10000".into()),
    }
}

/// `--precision`: a share of the value, `2%` or `2` (percent), from 0.1% to 50%.
pub fn parse_precision(s: &str) -> Result<f64, String> {
    let pct = s.trim().trim_end_matches('%').trim().parse::<f64>();
    match pct {
        Ok(p) if (0.1..=50.0).contains(&p) => Ok(p / 100.0),
        _ => Err(
            "must be a CI half-width in percent of the value, from 0.1% to 50% (e.g. 2%)".into(),
        ),
    }
}

/// A CPU number (checked against the online CPUs by the plan).
pub fn parse_cpu(s: &str) -> Result<usize, String> {
    s.parse::<usize>().map_err(|_| {
        "must be a CPU number (0, 1, ...); see /sys/devices/system/cpu/online".to_string()
    })
}

/// `--sysctl`: `NAME=V1,V2`, a network sysctl (`net.…`, dots or slashes)
/// and its comma-separated values (whitespace inside a value is kept:
/// `net.ipv4.tcp_rmem=4096 131072 6291456,4096 1048576 6291456`).
pub fn parse_sysctl(s: &str) -> Result<crate::spec::Sysctl, String> {
    let (name, values) = s
        .split_once('=')
        .ok_or("must be NAME=V1,V2, e.g. net.ipv4.tcp_autocorking=1,0")?;
    let name = name.trim().replace('/', ".");
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !ok_chars || name.split('.').any(str::is_empty) {
        return Err(format!(
            "'{name}' is not a sysctl name (like net.ipv4.tcp_autocorking)"
        ));
    }
    if !name.starts_with("net.") {
        return Err(format!(
            "{name}: only network sysctls (net.*) belong to a network namespace"
        ));
    }
    let values: Vec<String> = values.split(',').map(|v| v.trim().to_string()).collect();
    if values.iter().any(String::is_empty) {
        return Err("an empty value; give NAME=V1,V2".into());
    }
    if values.len() > 255 {
        return Err("at most 255 values".into());
    }
    Ok(crate::spec::Sysctl::new(name, values))
}

/// `--placement`: SERVER/CLIENT CPU numbers, e.g. `0/1`.
pub fn parse_placement(s: &str) -> Result<(usize, usize), String> {
    let bad = || {
        "must be SERVER/CLIENT CPU numbers, e.g. 0/1 (cross-core) or 0/0 (same core)".to_string()
    };
    let (a, b) = s.split_once('/').ok_or_else(bad)?;
    Ok((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?))
}

/// Concurrent pairs: 1 to 64.
pub fn parse_pairs(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if (1..=64).contains(&n) => Ok(n),
        _ => Err("must be a whole number from 1 to 64".into()),
    }
}

/// Requests in flight: 1 to 1024.
pub fn parse_depth(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(n),
        _ => Err("must be a whole number from 1 to 1024".into()),
    }
}
