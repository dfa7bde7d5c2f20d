//! Stage: config. Knobs as case dimensions: every combination of the knob
//! lists (with `--control`'s A/A copy), the order the cases run in within a
//! round (the cases a ratio compares back to back, A B … B A), and which
//! sysctl values each case runs with.

use crate::cli::{Common, Switch};
use crate::error::{Error, Result};
use crate::spec::{Knobs, MAX_SYSCTLS};

use super::lists::unique;
use super::{Case, Plan};

impl Plan {
    /// The sysctl combinations the cases use, each with the values to
    /// write (by /proc/sys path): one private namespace each.
    pub fn tunings(&self) -> Vec<crate::transport::Tuning> {
        if self.sysctls.iter().all(|x| x.host) {
            return Vec::new();
        }
        let mut out: Vec<crate::transport::Tuning> = Vec::new();
        for c in &self.cases {
            let key = self.tuning_key(c);
            if out.iter().all(|(k, _)| *k != key) {
                let values = self
                    .sysctls
                    .iter()
                    .enumerate()
                    .filter(|(_, x)| !x.host)
                    .map(|(i, x)| (x.path(), x.values[usize::from(key[i])].clone()))
                    .collect();
                out.push((key, values));
            }
        }
        out
    }

    /// Which tuned namespace a case runs in: its per-namespace sysctls'
    /// values (host-wide ones set to 0: they are not the namespace's).
    pub fn tuning_key(&self, c: &Case) -> [u8; MAX_SYSCTLS] {
        let mut key = c.knobs.sysctl;
        for (i, x) in self.sysctls.iter().enumerate() {
            if x.host {
                key[i] = 0;
            }
        }
        key
    }

    /// The host-wide sysctls a case sets on the host around its trials:
    /// (path, value).
    pub fn host_values(&self, c: &Case) -> Vec<(String, String)> {
        self.sysctls
            .iter()
            .enumerate()
            .filter(|(_, x)| x.host)
            .map(|(i, x)| (x.path(), x.values[usize::from(c.knobs.sysctl[i])].clone()))
            .collect()
    }

    /// The order the cases run in within a round, as indices into `cases`:
    /// grouped by everything but the dimensions a ratio compares
    /// (transport, `--netns`, knobs), groups in the order their sizes (and
    /// `load` rates) were given;
    /// inside a group by `--netns` mode, then transport, then knobs, as
    /// given (a transport's knob values run one after another). So the
    /// trials a ratio pairs run back to back; odd rounds run the whole
    /// order backwards (A B … B A).
    pub fn schedule(&self) -> Vec<usize> {
        fn rank<T: PartialEq>(seen: &mut Vec<T>, v: T) -> usize {
            seen.iter().position(|x| *x == v).unwrap_or_else(|| {
                seen.push(v);
                seen.len() - 1
            })
        }
        let (mut groups, mut modes, mut kinds, mut knobs) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut keyed: Vec<((usize, usize, usize, usize), usize)> = self
            .cases
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let g = rank(&mut groups, (c.size, c.response, c.rate));
                (
                    (
                        g,
                        rank(&mut modes, c.netns),
                        rank(&mut kinds, c.transport),
                        rank(&mut knobs, c.knobs),
                    ),
                    i,
                )
            })
            .collect();
        // Ranks of first appearance: sizes as given, modes and kinds as given.
        keyed.sort_by_key(|&(k, _)| k);
        keyed.into_iter().map(|(_, i)| i).collect()
    }
}

/// Every combination of the knobs' lists (`--nodelay`, `--wait`, `--mode`,
/// `--placement`, `--sndbuf`, `--rcvbuf`, `--busy-poll`), first values first and the last knob varying fastest;
/// with `--control`, the baseline's A/A copy right after it.
pub(super) fn knob_product(c: &Common) -> Result<Vec<Knobs>> {
    let nodelay = unique("--nodelay", c.nodelay.iter().copied(), |v| {
        format!("{v:?}").to_lowercase()
    })?;
    let wait = unique("--wait", c.wait.iter().copied(), |v| {
        format!("{v:?}").to_lowercase()
    })?;
    let mode = unique("--mode", c.mode.iter().copied(), |v| {
        format!("{v:?}").to_lowercase()
    })?;
    let placement = unique("--placement", c.placement.iter().copied(), |(s, c)| {
        format!("{s}/{c}")
    })?;
    if !placement.is_empty() && c.pairs > 1 {
        return Err(Error::config(
            "--pairs",
            c.pairs,
            "--placement places one pair per case; leave --pairs out, or use --server-cpu/--client-cpu",
        ));
    }
    let placement: Vec<Option<(usize, usize)>> = if placement.is_empty() {
        vec![None]
    } else {
        placement.into_iter().map(Some).collect()
    };
    // An option not given is one value: the system's default.
    fn or_default<T: Copy>(v: Vec<T>) -> Vec<Option<T>> {
        if v.is_empty() {
            vec![None]
        } else {
            v.into_iter().map(Some).collect()
        }
    }
    let sndbuf = or_default(unique("--sndbuf", c.sndbuf.iter().copied(), |b| {
        b.to_string()
    })?);
    let rcvbuf = or_default(unique("--rcvbuf", c.rcvbuf.iter().copied(), |b| {
        b.to_string()
    })?);
    let busy_poll = or_default(unique("--busy-poll", c.busy_poll.iter().copied(), |b| {
        b.to_string()
    })?);
    let trace = unique("--trace", c.trace.iter().copied(), |v| {
        format!("{v:?}").to_lowercase()
    })?;
    // Every combination of the sysctls' value indices, the last varying fastest.
    let mut sysctl: Vec<[u8; MAX_SYSCTLS]> = vec![[0; MAX_SYSCTLS]];
    for (i, x) in c.sysctl.iter().enumerate().take(MAX_SYSCTLS) {
        sysctl = sysctl
            .into_iter()
            .flat_map(|k| {
                (0..x.values.len()).map(move |v| {
                    let mut k = k;
                    k[i] = v as u8;
                    k
                })
            })
            .collect();
    }
    let mut out = Vec::new();
    for &n in &nodelay {
        for &w in &wait {
            for &m in &mode {
                for &p in &placement {
                    for &sb in &sndbuf {
                        for &rb in &rcvbuf {
                            for (&bp, &tr) in busy_poll
                                .iter()
                                .flat_map(|bp| trace.iter().map(move |tr| (bp, tr)))
                            {
                                for &sy in &sysctl {
                                    let k = Knobs {
                                        nodelay: n == Switch::On,
                                        wait: w,
                                        mode: m,
                                        placement: p,
                                        sndbuf: sb,
                                        rcvbuf: rb,
                                        busy_poll: bp,
                                        trace: tr,
                                        sysctl: sy,
                                        copy: 0,
                                    };
                                    out.push(k);
                                    if c.control && out.len() == 1 {
                                        out.push(Knobs { copy: 1, ..k });
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}
