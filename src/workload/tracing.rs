//! Stage: timed loop orchestration (tracing). What `--trace` adds around a
//! trial, outside its timed interval: the kernel-event counters of a
//! counted case (opened in the pair's two threads before the trial, read
//! and closed after), and the median send call of a split one.

use hdrhistogram::Histogram;

use crate::error::{Error, Result};
use crate::plan::{Case, Plan};
use crate::spec::Trace;
use crate::sys::perf::{Counters, EventCounts};

/// Run `trial`; for a `--trace count` case, count the kernel events of
/// threads `tids` (client, server) while it runs. Sixteen descriptors per
/// trial, opened and closed outside the timed interval.
pub(super) fn counted<T>(
    plan: &Plan,
    case: &Case,
    tids: [u32; 2],
    trial: impl FnOnce() -> Result<T>,
) -> Result<(T, Option<EventCounts>)> {
    let err = |e: std::io::Error| Error::Setup {
        op: "perf_event_open",
        target: "tracepoint counters".into(),
        transport: case.transport.name(),
        size: case.size,
        source: e,
    };
    let counters = match plan.trace_ids {
        Some(ids) if case.knobs.trace == Trace::Count => {
            let c = Counters::open(&ids, &tids).map_err(err)?;
            c.start().map_err(err)?;
            Some(c)
        }
        _ => None,
    };
    let out = trial()?;
    let events = match counters {
        Some(c) => Some(c.stop().map_err(err)?),
        None => None,
    };
    Ok((out, events))
}

/// A `--trace split` trial's median send call, ns.
pub(super) fn send_median(trace: Trace, sent: &Histogram<u64>) -> Option<u64> {
    (trace == Trace::Split && !sent.is_empty()).then(|| sent.value_at_quantile(0.5))
}
