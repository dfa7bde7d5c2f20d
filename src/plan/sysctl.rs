//! Stage: config. `--sysctl` checked before anything runs: names and
//! values once each, per network namespace or host-wide, each value tried
//! (in a throwaway namespace; host-wide ones later, around the journal) and
//! recorded as the kernel reads it back. The kernel is asked, never the
//! host changed.

use std::collections::HashSet;

use crate::cli::Common;
use crate::error::{Error, Result};
use crate::spec::{MAX_SYSCTLS, NetnsMode, Sysctl};

/// `--sysctl`, before anything runs: at most [`MAX_SYSCTLS`] names, each
/// once and each value once, none with `--netns` (each value has a
/// namespace of its own), and each per network namespace and accepted by
/// the kernel, tried in a throwaway namespace (the host's values are never
/// written).
pub(super) fn check_sysctls(c: &Common) -> Result<Vec<Sysctl>> {
    if c.sysctl.is_empty() {
        if c.allow_host_sysctl {
            return Err(Error::config(
                "--allow-host-sysctl",
                "on",
                "lets --sysctl change host-wide sysctls; give a --sysctl NAME=V1,V2 too",
            ));
        }
        return Ok(Vec::new());
    }
    let show = |x: &Sysctl| format!("{}={}", x.name, x.values.join(","));
    if c.sysctl.len() > MAX_SYSCTLS {
        return Err(Error::config(
            "--sysctl",
            show(&c.sysctl[MAX_SYSCTLS]),
            format!("at most {MAX_SYSCTLS} sysctls per run"),
        ));
    }
    let mut names = HashSet::new();
    for x in &c.sysctl {
        if !names.insert(x.name.as_str()) {
            return Err(Error::config(
                "--sysctl",
                &x.name,
                "given twice; list each sysctl once",
            ));
        }
        distinct_values(x, &x.values)?;
    }
    if let Some(&m) = c.netns.iter().find(|&&m| m != NetnsMode::Off) {
        return Err(Error::config(
            "--netns",
            m.name(),
            "--sysctl runs each value's cases in a namespace of their own; leave --netns out",
        ));
    }
    use crate::transport::{SysctlProbe, SysctlRefusal, check_sysctls as probe};
    let host = probe(&c.sysctl).map_err(|(i, why)| {
        let x = &c.sysctl[i];
        match why {
            SysctlRefusal::NoNamespace(e) => Error::config(
                "--sysctl",
                show(x),
                format!("needs a private network namespace, and unshare(CLONE_NEWNET) failed: {e} (run as root)"),
            ),
            SysctlRefusal::Unknown => Error::config(
                "--sysctl",
                &x.name,
                format!("no such sysctl on this kernel ({} does not exist)", x.path()),
            ),
            SysctlRefusal::Value(v, e) => Error::config(
                "--sysctl",
                format!("{}={v}", x.name),
                format!("the kernel refuses this value ({e})"),
            ),
        }
    })?;
    let mut out = c.sysctl.clone();
    for (x, probe) in out.iter_mut().zip(host) {
        match probe {
            SysctlProbe::Host => x.host = true,
            SysctlProbe::PerNamespace(held) => {
                let held: Vec<String> = held.iter().map(|v| Sysctl::as_held(v)).collect();
                distinct_values(x, &held)?;
                x.values = held;
            }
        }
    }
    // Two sysctls ending alike (`conf.all.rp_filter`, `conf.lo.rp_filter`)
    // go by their whole names.
    let labels: Vec<String> = out.iter().map(|x| x.label.clone()).collect();
    for x in &mut out {
        if labels.iter().filter(|l| **l == x.label).count() > 1 {
            x.label = x.name.clone();
        }
    }
    if let Some(x) = out.iter().find(|x| x.host) {
        if !c.allow_host_sysctl {
            return Err(Error::config(
                "--sysctl",
                &x.name,
                "is host-wide, not per network namespace (read-only or absent inside one); \
                 sockbench changes host settings only when asked: add --allow-host-sysctl \
                 (set around each trial, restored after and on every exit)",
            ));
        }
        if !nix::unistd::geteuid().is_root() {
            return Err(Error::config(
                "--allow-host-sysctl",
                &x.name,
                "writing host sysctls needs root",
            ));
        }
        if crate::sys::process::in_nested_pid_namespace() {
            return Err(Error::config(
                "--allow-host-sysctl",
                &x.name,
                format!(
                    "this process runs in a PID namespace of its own (here pid {}), where the end of \
                     the namespace's first process kills every process in it, the reaper that \
                     restores host sysctls after a kill included; run sockbench in the host's PID \
                     namespace",
                    nix::unistd::getpid()
                ),
            ));
        }
        if c.pairs > 1 {
            return Err(Error::config(
                "--pairs",
                c.pairs,
                "host-wide sysctls are set around one pair's trials; leave --pairs out",
            ));
        }
    }
    Ok(out)
}

/// Each of `values` (a sysctl's, as given or as the kernel reads them
/// back) once: `0x10` and `16` are the same value to the kernel.
pub fn distinct_values(x: &Sysctl, values: &[String]) -> Result<()> {
    for (i, v) in values.iter().enumerate() {
        if let Some(j) = values[..i].iter().position(|w| w == v) {
            let (a, b) = (&x.values[j], &x.values[i]);
            let why = if a == b {
                format!("value '{b}' given twice")
            } else {
                format!("'{a}' and '{b}' are the same value to the kernel ({v})")
            };
            return Err(Error::config(
                "--sysctl",
                format!("{}={}", x.name, x.values.join(",")),
                why,
            ));
        }
    }
    Ok(())
}
