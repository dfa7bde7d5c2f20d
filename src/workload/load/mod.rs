//! Stage: timed loop. Open-loop load (`sockbench load`): requests leave on
//! a fixed schedule at `--rate` per second, spread round-robin over C
//! connections, whatever the responses do, and each is timed from its
//! *intended* send time to the end of its response, so a stalled server
//! shows as every request that waited for it (no coordinated omission).
//! Client and server each run one pinned event loop (epoll, non-blocking
//! calls with `MSG_DONTWAIT`), as nginx's and gunicorn's workers do: the one
//! place sockbench leaves blocking calls, because one thread must keep C
//! connections busy and keep the schedule while responses are outstanding.
//!
//! Nothing is allocated, formatted or locked inside the loops: every ring
//! and histogram is made before the trial. The sender sleeps in
//! `epoll_pwait2` until the next intended time (`--wait block`, timer slack
//! 1 ns) or polls without sleeping (`--wait spin`, as sockperf and wrk2
//! pace); the server always sleeps in `epoll_wait` between events, as real
//! servers do. How late each send left is recorded, as the workload's own
//! resolution.
//!
//! The schedule of intended sends is in `schedule`, the framing and the
//! books that match responses to requests in `framing`, the event loop's
//! non-blocking calls in `event_loop`, the two loops in `client` and
//! `serve`.

mod client;
mod event_loop;
mod framing;
mod schedule;
mod serve;

use std::time::Duration;

use hdrhistogram::Histogram;

pub use client::{LoadScratch, drive};
pub(super) use event_loop::fd_of;
pub use framing::{Framing, HEADER};
pub use schedule::Schedule;
pub use serve::{Answering, LoadServer};

use super::{Fleet, PinnedPair, Span, Stop, TrialUsage};
use crate::error::Result;
use crate::samples::Heartbeat;
use crate::spec::{Arrival, Wait};

/// Requests in flight, over all connections, that the client keeps account
/// of; beyond, the server has fallen too far behind the schedule and the
/// trial fails (lower `--rate`).
pub const MAX_IN_FLIGHT: usize = 1 << 18;

/// A send that leaves more than this after its intended time is counted late.
pub const LATE_NS: u64 = 100_000;

/// Bytes read or written per call.
pub const CHUNK: usize = 64 << 10;

/// What a client trial did, beside the latencies it recorded.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadTrial {
    /// Responses received (`ops`), from the first intended send to the last response.
    pub span: Span,
    /// Requests sent.
    pub sent: u64,
    /// Messages: requests never answered (no response within [`SINK_IDLE`](super::SINK_IDLE)
    /// of the last send or response, or none before `MAX_IN_FLIGHT` later
    /// requests on all connections). Always 0 on a stream.
    pub lost: u64,
    /// Sends that left more than [`LATE_NS`] after their intended time.
    pub late: u64,
    /// Most requests in flight at once.
    pub max_in_flight: u64,
    /// System calls made (sends, receives, waits).
    pub calls: u64,
}

/// The parameters of a client trial.
#[derive(Debug, Clone, Copy)]
pub struct Offered {
    pub rate: u64,
    pub arrival: Arrival,
    pub wait: Wait,
    pub framing: Framing,
    pub size: usize,
    pub response: usize,
    pub timeout: Duration,
    pub seed: u64,
}

impl PinnedPair<Fleet> {
    /// One trial at the pair's offered rate until `stop`: every latency from
    /// the intended send time into `hist`, the service times and the
    /// sender's lateness into the fleet's scratch (`load_scratch`).
    pub fn record_load(
        &mut self,
        stop: Stop,
        hist: &mut Histogram<u64>,
        beat: &mut Heartbeat<'_>,
        seed: u64,
    ) -> Result<(LoadTrial, TrialUsage)> {
        let spec = *self.spec();
        let o = Offered {
            rate: spec.rate,
            arrival: spec.arrival,
            wait: spec.opts.wait,
            framing: Framing::of(spec.kind),
            size: spec.size,
            response: spec.response,
            timeout: spec.opts.timeout,
            seed,
        };
        // Wake at the intended time, not up to 50 µs after it.
        let _ = nix::sys::prctl::set_timerslack(1);
        let (t, usage, _) = self.trial(false, |f, _, _, _| {
            let t = drive(&f.eps, &f.epoll, &mut f.scratch, o, stop, hist, beat)?;
            f.calls += t.calls;
            Ok(t)
        })?;
        Ok((t, usage))
    }

    /// The service times and lateness of the last trial.
    pub fn load_scratch(&self) -> &LoadScratch {
        &self.client.scratch
    }
}
