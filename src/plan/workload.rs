//! Stage: config. Which workload a run measures, and what follows from it:
//! the server's job, connections per pair, pipelining depth, arrivals.

use crate::spec::{Arrival, Job};

/// Which workload a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Ping-pong: request and response of the same size, one connection.
    Latency,
    /// Request/response, `depth` in flight, kept-alive or a new connection each.
    Rr { depth: u32, new_connection: bool },
    /// A new connection per request.
    Connect,
    /// Bulk transfer, one way or both ways at once.
    Throughput { both: bool },
    /// Open-loop request/response at offered rates over many connections;
    /// `sweep`: the rates are found by stepping up to each case's knee.
    Load {
        connections: u32,
        arrival: Arrival,
        sweep: bool,
    },
}

impl Workload {
    /// Stable name used in output.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Latency => "latency",
            Workload::Rr { .. } => "rr",
            Workload::Connect => "connect",
            Workload::Throughput { .. } => "throughput",
            Workload::Load { .. } => "load",
        }
    }

    /// What the server does.
    pub fn job(self) -> Job {
        match self {
            Workload::Latency
            | Workload::Rr {
                new_connection: false,
                ..
            } => Job::Echo,
            Workload::Rr {
                new_connection: true,
                ..
            }
            | Workload::Connect => Job::Accept,
            Workload::Throughput { both: false } => Job::Sink,
            Workload::Throughput { both: true } => Job::Duplex,
            Workload::Load { .. } => Job::Load,
        }
    }

    /// Connections per pair (`load --connections`; 1 otherwise).
    pub fn connections(self) -> usize {
        match self {
            Workload::Load { connections, .. } => connections as usize,
            _ => 1,
        }
    }

    /// Whether `load` sweeps its rates (`--rate sweep`).
    pub fn sweeps(self) -> bool {
        matches!(self, Workload::Load { sweep: true, .. })
    }

    /// How `load` spaces its requests (constant otherwise, unused).
    pub fn arrival(self) -> Arrival {
        match self {
            Workload::Load { arrival, .. } => arrival,
            _ => Arrival::Constant,
        }
    }

    /// Requests in flight per pair.
    pub fn depth(self) -> u32 {
        match self {
            Workload::Rr { depth, .. } => depth,
            _ => 1,
        }
    }
}
