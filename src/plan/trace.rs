//! Stage: plan (tracing). Which `--trace` methods a plan can run: the
//! tracepoints `count` needs (probed once, or left out of `explain` with a
//! note), the ping-pong `split` and `stamp` need, and the transports whose
//! packets `stamp` can stamp.

use crate::cli::Common;
use crate::error::{Error, Result};
use crate::spec::{Knobs, Trace, TransportKind};

use super::Workload;

/// `--trace count`: the tracepoints' ids, and a counter opened once to see
/// that this process may count them. Where it may not, `explain` leaves the
/// counted cases out with a note; `--trace count` asked for is refused.
pub(super) fn trace_ids(
    workload: Workload,
    c: &Common,
    knobs: &mut Vec<crate::spec::Knobs>,
    notes: &mut Vec<String>,
) -> Result<Option<[u64; 8]>> {
    let pingpong = match workload {
        Workload::Latency => true,
        Workload::Rr {
            depth,
            new_connection,
        } => depth == 1 && !new_connection,
        _ => false,
    };
    for (t, what) in [
        (Trace::Split, "times the send call of a ping-pong"),
        (Trace::Stamp, "splits the round trip of a ping-pong"),
    ] {
        if knobs.iter().any(|k| k.trace == t) && !pingpong {
            return Err(Error::config(
                "--trace",
                format!("{t:?}").to_lowercase(),
                format!("{what}: latency, and rr with --depth 1 kept open"),
            ));
        }
    }
    if !knobs.iter().any(|k| k.trace == Trace::Count) {
        return Ok(None);
    }
    if c.pairs > 1 {
        return Err(Error::config(
            "--trace",
            "count",
            "counts the events of one pair's threads; leave --pairs out",
        ));
    }
    if matches!(workload, Workload::Throughput { .. }) {
        return Err(Error::config(
            "--trace",
            "count",
            "gives events per request or round trip: latency, rr, connect and load take it",
        ));
    }
    let me = nix::unistd::gettid().as_raw() as u32;
    let probe = crate::sys::perf::tracefs().and_then(|t| {
        crate::sys::perf::Counters::open(&t.ids, &[me])?;
        Ok(t)
    });
    match probe {
        Ok(t) => {
            if c.trace_if_able && !t.has_function_graph() {
                // Issue #23's sixth method: said once, and the rest runs.
                notes.push(format!(
                    "deeper tracing: this kernel has no function_graph tracer (its tracers: {}); the layers come from the ladder, the counts and the split",
                    if t.tracers.is_empty() { "none" } else { &t.tracers }
                ));
            }
            Ok(Some(t.ids))
        }
        Err(e) if c.trace_if_able => {
            knobs.retain(|k| k.trace != Trace::Count);
            notes.push(format!(
                "--trace count left out: counting tracepoints failed here ({e}); it needs root (CAP_PERFMON and tracefs)"
            ));
            Ok(None)
        }
        Err(e) => Err(Error::config(
            "--trace",
            "count",
            format!(
                "counts tracepoints with perf_event_open, and that failed here ({e}); it needs root (CAP_PERFMON, and tracefs or the right to mount it privately), or leave --trace out"
            ),
        )),
    }
}

/// `--trace stamp` over transports none of which sends packets is bad
/// input; over some, the others are left out of it (with a note outside
/// `explain`).
pub(super) fn stamped_transports(
    c: &Common,
    knobs: &[Knobs],
    transports: &[(TransportKind, bool)],
    notes: &mut Vec<String>,
) -> Result<()> {
    if knobs.iter().any(|k| k.trace == Trace::Stamp) {
        let ok = TransportKind::is_packet;
        let unstamped: Vec<_> = transports.iter().filter(|t| !ok(t.0)).collect();
        if unstamped.len() == transports.len() {
            return Err(Error::config(
                "--trace",
                "stamp",
                format!(
                    "stamps packets, and no transport here sends any: add one of {} or leave it out",
                    TransportKind::names_where(ok)
                ),
            ));
        }
        if !unstamped.is_empty() && !c.trace_if_able {
            let names: Vec<_> = unstamped.iter().map(|t| t.0.name()).collect();
            notes.push(format!(
                "--trace stamp: left out for {} (no packets to stamp)",
                names.join(", ")
            ));
        }
    }
    Ok(())
}
