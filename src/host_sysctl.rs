//! Stage: config and safety net, for host-wide sysctls
//! (`--sysctl NAME=… --allow-host-sysctl`): before a run, a journal that a
//! killed run left is restored (or, without root, named); this run's
//! originals are journaled and every value tried on the host and read back;
//! `sockbench restore-sysctl`. The journal's file is `sys::sysctl`'s; the
//! safety net (`cleanup`) holds it while the run lives and restores it on
//! every exit path; each case's values are set and put back around its
//! phases by the workload's case environment, through `cleanup`.

use crate::cleanup::{self, Recovered};
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::spec::Sysctl;
use crate::sys::sysctl;

fn journal_err(why: String) -> Error {
    Error::config("--allow-host-sysctl", "on", why)
}

/// Before a run of any kind: a journal of host sysctls left by a run that
/// is gone is restored, and the line saying so returned; one a live
/// sockbench holds is named in a warning (and refuses a run that wants
/// host sysctls itself); without root, that a journal exists.
pub fn recover_before_run(plan: &Plan) -> Result<Option<String>> {
    let holds_host = plan.sysctls.iter().any(|x| x.host);
    Ok(match cleanup::recover_host_journal() {
        Ok(Recovered::Nothing) => None,
        Ok(Recovered::Restored(old)) => Some(restored_line(&old)),
        Ok(Recovered::Held(j)) if holds_host => {
            return Err(journal_err(format!(
                "a running sockbench (pid {}) holds host sysctls (journal {}); it restores them when it ends",
                j.pid,
                sysctl::journal_path().display()
            )));
        }
        Ok(Recovered::Held(j)) => Some(format!(
            "warning: a running sockbench (pid {}) has host sysctls changed ({}); this run measures under them",
            j.pid,
            journal_values(&j)
        )),
        Ok(Recovered::Unreadable) => Some(format!(
            "warning: {} exists: a sockbench run as root has host sysctls changed, or one was killed \
             before it restored them (as root, `sockbench restore-sysctl` restores them); this run \
             may measure under them",
            sysctl::journal_path().display()
        )),
        Err(e) if holds_host => return Err(journal_err(e)),
        Err(e) => Some(format!("warning: {e}")),
    })
}

/// `--allow-host-sysctl`: journal the originals of this run's host-wide
/// sysctls, then try every value on the host (a value the kernel refuses
/// is bad input), reading each back (the kernel's form is what the results
/// record) and putting the original back at once. Nothing is timed yet.
pub fn hold(plan: &mut Plan) -> Result<()> {
    let host: Vec<usize> = (0..plan.sysctls.len())
        .filter(|&i| plan.sysctls[i].host)
        .collect();
    if host.is_empty() {
        return Ok(());
    }
    let originals = host
        .iter()
        .map(|&i| {
            let p = plan.sysctls[i].path();
            Ok((p.clone(), sysctl::read_value(&p)?))
        })
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| journal_err(format!("reading a host sysctl: {e}")))?;
    cleanup::hold_host(originals).map_err(|e| {
        journal_err(format!(
            "writing the journal {}: {e}",
            sysctl::journal_path().display()
        ))
    })?;
    let tried = (|| -> Result<()> {
        for &i in &host {
            let x = &plan.sysctls[i];
            let mut held = Vec::new();
            for v in &x.values {
                let refused = |e: std::io::Error| {
                    Error::config(
                        "--sysctl",
                        format!("{}={v}", x.name),
                        format!("the kernel refuses this value ({e})"),
                    )
                };
                cleanup::set_host(&[(x.path(), v.clone())]).map_err(refused)?;
                held.push(Sysctl::as_held(
                    &sysctl::read_value(&x.path()).map_err(refused)?,
                ));
            }
            crate::plan::distinct_values(x, &held)?;
            plan.sysctls[i].values = held;
        }
        Ok(())
    })();
    let restored = cleanup::restore_host();
    tried?;
    restored.map_err(|e| journal_err(format!("restoring a host sysctl: {e}")))
}

/// A journal's values as `name=value` pairs.
fn journal_values(j: &sysctl::Journal) -> String {
    j.originals
        .iter()
        .map(|(p, v)| {
            let name = sysctl::name_of(p).unwrap_or_else(|| p.clone());
            format!("{name} originally {}", Sysctl::as_held(v))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a recovered journal held, as one line.
fn restored_line(j: &sysctl::Journal) -> String {
    let values: Vec<String> = j
        .originals
        .iter()
        .map(|(p, v)| {
            let name = sysctl::name_of(p).unwrap_or_else(|| p.clone());
            format!("{name}={}", Sysctl::as_held(v))
        })
        .collect();
    format!(
        "restored host sysctls left changed by sockbench pid {} that did not finish: {}",
        j.pid,
        values.join(", ")
    )
}

/// `sockbench restore-sysctl`: the line to print, and whether it succeeded.
pub fn restore_command() -> (String, bool) {
    match cleanup::recover_host_journal() {
        Ok(Recovered::Restored(j)) => (restored_line(&j), true),
        Ok(Recovered::Nothing) => (
            "nothing to restore: no journal of host sysctls".into(),
            true,
        ),
        Ok(Recovered::Held(j)) => (
            format!(
                "error: a running sockbench (pid {}) holds host sysctls (journal {}); it restores them when it ends",
                j.pid,
                sysctl::journal_path().display()
            ),
            false,
        ),
        Ok(Recovered::Unreadable) => (
            format!(
                "error: {} exists, and only root can read and restore it: run `sockbench restore-sysctl` as root",
                sysctl::journal_path().display()
            ),
            false,
        ),
        Err(e) => (format!("error: {e}"), false),
    }
}
