//! Stage: placement. Pins the calling thread to one CPU and checks that the
//! pin took; lists the CPUs this process may use. Knows nothing of sockets.

use nix::sched::sched_getaffinity;
use nix::unistd::Pid;

use crate::error::{Error, Result};

/// CPUs the process may run on: the main thread's affinity mask (a
/// measurement thread's own mask is a single CPU once pinned).
pub fn available() -> Vec<usize> {
    match sched_getaffinity(nix::unistd::getpid()) {
        Ok(set) => (0..nix::sched::CpuSet::count())
            .filter(|&c| set.is_set(c).unwrap_or(false))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Render a CPU list compactly: `0-3,6`.
pub fn format_list(cpus: &[usize]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            cpus[i].to_string()
        } else {
            format!("{}-{}", cpus[i], cpus[j])
        });
        i = j + 1;
    }
    out.join(",")
}

/// Pin the calling thread to `cpu` and verify: the affinity mask must be
/// exactly `{cpu}` and the thread must be running there. `role` names the
/// thread in the error.
pub fn pin(role: &'static str, cpu: usize) -> Result<()> {
    let err = |reason: String| Error::Pin { role, cpu, reason };
    if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
        return Err(err(format!(
            "sched_setaffinity refused (allowed CPUs: {})",
            format_list(&available())
        )));
    }
    let set =
        sched_getaffinity(Pid::from_raw(0)).map_err(|e| err(format!("sched_getaffinity: {e}")))?;
    let pinned: Vec<usize> = (0..nix::sched::CpuSet::count())
        .filter(|&c| set.is_set(c).unwrap_or(false))
        .collect();
    if pinned != [cpu] {
        return Err(err(format!(
            "affinity mask is {} after pinning",
            format_list(&pinned)
        )));
    }
    let now = nix::sched::sched_getcpu().map_err(|e| err(format!("sched_getcpu: {e}")))?;
    if now != cpu {
        return Err(err(format!("thread runs on CPU {now} after pinning")));
    }
    Ok(())
}
