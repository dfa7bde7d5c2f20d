//! Stage: workloads. A [`PinnedPair`] is a client end and a server pinned to
//! its CPU, in a thread or a forked process ([`pair`]), talking over a
//! typed control channel ([`control`]) that starts and ends each trial and
//! is never timed. The server (`server.rs`) has one job per trial: echo
//! (ping-pong, request/response), sink (one-way transfer), accept (a new
//! connection per request) or duplex (both ways at once). The client alone
//! decides when a trial ends, by count or by time ([`Stop`]), and says so
//! in-band with an end marker: the first byte of every data message is
//! [`DATA`], of the last one [`END`]. The client loops live in [`pingpong`],
//! [`stream`] and [`connect`], each beside the server loop it talks to;
//! [`run`] orchestrates whole runs. Knows no files or statistics beyond the
//! histogram it is handed.

pub mod barrier;
mod case_env;
pub mod connect;
pub mod control;
pub mod load;
pub mod outcome;
pub mod pair;
pub mod pingpong;
pub mod rounds;
pub mod run;
mod server;
pub mod stream;
pub mod sweep;
pub mod tracing;

use std::time::{Duration, Instant};

pub use pair::{Dialing, Fleet, KeptOpen, PinnedPair};

use crate::spec::{Job, Mode, TransportKind};
use crate::sys::process::ThreadUsage;
use crate::transport::TransportOpts;

/// First byte of every data message.
pub const DATA: u8 = 0;
/// First byte of the message that ends a trial: the server stops serving
/// (and does not answer it).
pub const END: u8 = 1;

/// What one pair is: transport, sizes, server job, options, placement.
#[derive(Debug, Clone, Copy)]
pub struct PairSpec {
    pub kind: TransportKind,
    /// Request (or message) size in bytes.
    pub size: usize,
    /// Response size in bytes (Echo and Accept).
    pub response: usize,
    pub job: Job,
    pub opts: TransportOpts,
    pub mode: Mode,
    pub server_cpu: usize,
    /// `load`: connections the pair keeps, requests per second offered
    /// over all of them, and how they are spaced (0 and constant otherwise).
    pub connections: usize,
    pub rate: u64,
    pub arrival: crate::spec::Arrival,
    /// Fault injection, for tests: the server handles this many operations
    /// (warm-up included), then ends without a word, closing its ends, as a
    /// crashed or killed server would. `None` in real runs.
    pub server_exit_after: Option<u64>,
}

impl PairSpec {
    /// A ping-pong pair: the server echoes `size`-byte messages.
    pub fn echo(
        kind: TransportKind,
        size: usize,
        opts: TransportOpts,
        mode: Mode,
        server_cpu: usize,
    ) -> Self {
        Self {
            kind,
            size,
            response: size,
            job: Job::Echo,
            opts,
            mode,
            server_cpu,
            connections: 1,
            rate: 0,
            arrival: crate::spec::Arrival::Constant,
            server_exit_after: None,
        }
    }

    /// The pair that measures `case` of `plan`, with its server on
    /// `server_cpu` unless the case has a placement of its own (what to
    /// build is the workload's business, not the plan's).
    pub fn for_case(plan: &crate::plan::Plan, case: &crate::plan::Case, server_cpu: usize) -> Self {
        Self {
            kind: case.transport,
            size: case.size,
            response: case.response,
            job: plan.workload.job(),
            opts: TransportOpts {
                nodelay: case.knobs.nodelay,
                wait: case.knobs.wait,
                sndbuf: case.knobs.sndbuf,
                rcvbuf: case.knobs.rcvbuf,
                busy_poll: case.knobs.busy_poll,
                ..plan.opts
            },
            mode: case.knobs.mode,
            server_cpu: case.knobs.placement.map_or(server_cpu, |(s, _)| s),
            connections: plan.workload.connections(),
            rate: case.rate,
            arrival: plan.workload.arrival(),
            server_exit_after: plan.server_exit_after,
        }
    }

    /// Bytes the largest message of this pair needs.
    pub fn buffer_len(&self) -> usize {
        let largest = self.size.max(self.response);
        if self.job == Job::Load {
            largest.max(load::CHUNK) // the event loop reads what is there
        } else {
            largest
        }
    }
}

/// How long a datagram sink waits for more before it takes the transfer as
/// ended (its end marker was lost); such trials are counted and warned about.
pub const SINK_IDLE: Duration = Duration::from_millis(250);

/// When the client ends a trial: after `ops` operations, or once `time`
/// has passed since its first operation, whichever comes first. The clock
/// is looked at outside every timed interval: after each latency is taken,
/// or every `check_every` messages of a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stop {
    pub ops: u64,
    pub time: Option<Duration>,
    /// Transfers: a power of two; the clock is read once per this many sends.
    pub check_every: u64,
}

impl Stop {
    /// Exactly `n` operations.
    pub fn count(n: u64) -> Self {
        Self {
            ops: n,
            time: None,
            check_every: 1,
        }
    }

    /// As many operations as fit in `d`.
    pub fn time(d: Duration) -> Self {
        Self {
            ops: u64::MAX,
            time: Some(d),
            check_every: 1,
        }
    }

    /// The instant after which no new operation starts, for a trial that
    /// began at `start`.
    #[inline]
    pub fn deadline(&self, start: Instant) -> Option<Instant> {
        self.time.and_then(|d| start.checked_add(d))
    }
}

/// What a client loop did: operations timed and when it ran
/// (`CLOCK_MONOTONIC` ns, comparable across the pair's processes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    pub ops: u64,
    pub start_ns: u64,
    pub end_ns: u64,
}

impl Span {
    /// Wall time of the loop.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.end_ns.saturating_sub(self.start_ns))
    }
}

/// CPU accounting for one trial, both sides.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrialUsage {
    pub client: ThreadUsage,
    pub server: ThreadUsage,
    /// Data-path system calls made by the client (send side + receive side).
    pub client_calls: u64,
    /// Data-path system calls made by the server.
    pub server_calls: u64,
}

impl TrialUsage {
    /// Sum of two trials' accounting.
    pub fn add(&mut self, o: &TrialUsage) {
        self.client.add(&o.client);
        self.server.add(&o.server);
        self.client_calls += o.client_calls;
        self.server_calls += o.server_calls;
    }
}
