//! Stage: system calls. Per-CPU time from `/proc/stat`: how much of a CPU
//! tasks used (user, nice, system; interrupts and softirqs apart) and how
//! much the hypervisor took (steal), to tell when a trial shared its CPUs
//! with someone else. Read outside timed intervals only.

use std::io;

/// One CPU's cumulative times, ns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// user + nice + system: time tasks ran (what `getrusage` counts for a
    /// thread; interrupt and softirq time are kept apart where the kernel
    /// accounts them apart).
    pub tasks_ns: u64,
    /// Time the hypervisor ran something else while this vCPU wanted to run.
    pub steal_ns: u64,
}

/// Every CPU's times, indexed by CPU number (a CPU missing from
/// `/proc/stat`, offline, reads as zero).
pub fn read() -> io::Result<Vec<CpuTimes>> {
    parse(&std::fs::read_to_string("/proc/stat")?, tick_ns())
}

/// ns per clock tick (`USER_HZ`, the unit of `/proc/stat`).
fn tick_ns() -> u64 {
    // SAFETY: sysconf has no memory arguments.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    1_000_000_000 / if hz > 0 { hz as u64 } else { 100 }
}

fn parse(text: &str, tick_ns: u64) -> io::Result<Vec<CpuTimes>> {
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "/proc/stat: unexpected cpu line",
        )
    };
    let mut out = Vec::new();
    for line in text.lines() {
        // "cpuN ..." lines; not the "cpu  ..." total, nor other lines.
        let Some(rest) = line
            .strip_prefix("cpu")
            .filter(|r| r.starts_with(|c: char| c.is_ascii_digit()))
        else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let Some(Ok(cpu)) = f.next().map(str::parse::<usize>) else {
            return Err(bad());
        };
        let v: Vec<u64> = f
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| bad())?;
        if v.len() < 8 {
            return Err(bad());
        }
        // user nice system idle iowait irq softirq steal ...
        if out.len() <= cpu {
            out.resize(cpu + 1, CpuTimes::default());
        }
        out[cpu] = CpuTimes {
            tasks_ns: (v[0] + v[1] + v[2]) * tick_ns,
            steal_ns: v[7] * tick_ns,
        };
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_cpu_and_skips_the_total() {
        let text = "cpu  10 0 5 100 0 0 0 3 0 0\n\
                    cpu0 4 1 2 50 0 7 8 1 0 0\n\
                    cpu2 6 0 3 50 0 0 0 2 0 0\n\
                    intr 1 2 3\n";
        let v = parse(text, 10_000_000).unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(
            v[0],
            CpuTimes {
                tasks_ns: 70_000_000,
                steal_ns: 10_000_000
            }
        );
        assert_eq!(v[1], CpuTimes::default());
        assert_eq!(v[2].tasks_ns, 90_000_000);
        assert!(parse("cpu0 1 2\n", 1).is_err());
    }

    #[test]
    fn a_busy_cpu_shows_task_time() {
        let me = read().unwrap();
        assert!(!me.is_empty() && me.iter().any(|c| c.tasks_ns > 0));
    }
}
