//! Stage: timed loop orchestration. One owner for a case's environment:
//! its client CPU (`--placement`), its network namespace (`--netns`, or the
//! private one of its `--sysctl` values) and its host-wide sysctls
//! (`--allow-host-sysctl`). A client thread enters a case's environment
//! before each phase (set-up, warm-up, trial) and gets a guard; leaving
//! it, or dropping it on any early return, puts the host's sysctls back.
//! Nothing else sets or restores them during a run. The TIME_WAIT count
//! only looks into the case's namespaces (`on_server_side`).

use crate::error::{Error, Result};
use crate::plan::{Case, Plan};
use crate::transport::ClientPlaces;
use crate::{affinity, cleanup};

/// Where a client thread's cases run.
pub(super) struct CaseEnv<'a> {
    plan: &'a Plan,
    places: &'a ClientPlaces<'a>,
}

/// A case's environment, entered: its host-wide sysctls are in force until
/// [`Entered::leave`] (or drop).
#[must_use = "the host's sysctls stay set until the guard is left or dropped"]
pub(super) struct Entered {
    host: bool,
}

fn host_err(source: std::io::Error) -> Error {
    Error::Setup {
        op: "write",
        target: "host sysctl".into(),
        transport: "-",
        size: 0,
        source,
    }
}

impl<'a> CaseEnv<'a> {
    pub(super) fn new(plan: &'a Plan, places: &'a ClientPlaces<'a>) -> Self {
        Self { plan, places }
    }

    /// The client's CPU, network namespace and the case's host sysctls, in
    /// that order (a socket belongs to the namespace it is made in).
    pub(super) fn enter(&self, c: &Case) -> Result<Entered> {
        if let Some((_, cpu)) = c.knobs.placement {
            affinity::pin("client", cpu)?;
        }
        self.places.enter(c.netns, self.plan.tuning_key(c))?;
        let values = self.plan.host_values(c);
        if values.is_empty() {
            return Ok(Entered { host: false });
        }
        let entered = Entered { host: true };
        cleanup::set_host(&values).map_err(host_err)?;
        Ok(entered)
    }

    /// Run `f` in the namespace of a case's server side (the TIME_WAIT
    /// count), then come back to the case's client side.
    pub(super) fn on_server_side<T>(&self, c: &Case, f: impl FnOnce() -> T) -> Result<T> {
        let key = self.plan.tuning_key(c);
        let out = self.places.on_server_side(c.netns, key, f)?;
        self.places.enter(c.netns, key)?;
        Ok(out)
    }
}

impl Entered {
    /// Leave the case: the host's sysctls back to their originals, an
    /// error if they could not be.
    pub(super) fn leave(mut self) -> Result<()> {
        let host = std::mem::take(&mut self.host);
        if host {
            cleanup::restore_host().map_err(host_err)?;
        }
        Ok(())
    }
}

impl Drop for Entered {
    /// Left without [`Entered::leave`] (an error on the way): restore anyway.
    fn drop(&mut self) {
        if self.host {
            let _ = cleanup::restore_host();
        }
    }
}
