//! Stage: config. Raw arguments → a validated [`Plan`]: every case the run
//! will measure, with sizes each transport can carry and CPUs that exist.
//! Bad input becomes `Error::Config` naming the flag, the value and what is
//! allowed. It makes nothing; to check `--sysctl` and `--netns` it asks the
//! kernel in a throwaway network namespace, and it never changes the host.
//!
//! `workload` names what a run measures, `cases` turns arguments into
//! cases, `knobs` multiplies the knob lists and orders a round, `sysctl`
//! checks `--sysctl`, `limits` refuses a plan the machine cannot hold, and
//! `bench` is the `cargo bench` suite's profiles; `lists` checks the
//! lists a command line gives.

mod bench;
mod cases;
mod knobs;
mod limits;
mod lists;
mod sysctl;
mod trace;
mod workload;

pub use bench::{BenchProfile, BenchTiming};
pub use cases::check_size;
pub use limits::MAX_CASES;
pub use sysctl::distinct_values;
pub use workload::Workload;

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{ConnectArgs, Format, LatencyArgs, LoadArgs, Progress, RrArgs, ThroughputArgs};
use crate::error::{Error, Result};
use crate::spec::{Knobs, Mode, NetnsMode, RateArg, Sysctl, TransportKind};
use crate::transport::TransportOpts;

use lists::{product, request_response, unique};

/// Largest UDP payload over IPv4: 65,535 − 20 (IP header) − 8 (UDP header).
pub const UDP4_MAX: usize = 65_507;

/// One (transport, request size, response size, `--netns`, rate, knobs) combination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    pub transport: TransportKind,
    /// Request (or message, or write) size in bytes.
    pub size: usize,
    /// Response size in bytes (equal to `size` for ping-pong; unused for transfers).
    pub response: usize,
    /// Where the server and client are: one namespace (off) or two (`--netns`).
    pub netns: NetnsMode,
    /// `load`: requests per second offered (`--rate`); 0 for closed loops.
    pub rate: u64,
    /// Socket options, wait, server mode, placement, A/A copy.
    pub knobs: Knobs,
}

/// The request rates a plan offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rates {
    /// Closed loops: no rate (every workload but `load`).
    Closed,
    /// `load --rate 5k,20k`: each case at each rate, per second.
    List(Vec<u64>),
    /// `load --rate sweep`: rates found by stepping up to each case's knee.
    Sweep,
}

/// How much each case measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// Timed operations per case, split over the trials.
    Iterations(u64),
    /// Timed run length per case, split over the trials.
    Duration(Duration),
}

/// `--precision`: rounds go on until every watched 95% CI half-width is
/// within `target` of its value, or until `max_time`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Precision {
    /// The half-width asked for, a share of the value (0.02 for 2%).
    pub target: f64,
    /// The longest the rounds may take.
    pub max_time: Duration,
}

/// `--max-time` when `--precision` is given without it.
pub const DEFAULT_MAX_TIME: Duration = Duration::from_secs(600);

/// A validated run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub workload: Workload,
    /// What `--transport all` left out and why: one line each, for stderr.
    pub notes: Vec<String>,
    /// Transport-major order, as given.
    pub cases: Vec<Case>,
    pub budget: Budget,
    pub warmup: u64,
    pub warmup_time: Duration,
    /// Interleaved rounds: all of them, or with `precision` the fewest.
    pub trials: u32,
    /// `--precision`: more rounds until the CIs are narrow enough.
    pub precision: Option<Precision>,
    /// `--retry-disturbed`: a round with a disturbed trial is run again.
    pub retry_disturbed: bool,
    pub server_cpus: Vec<usize>,
    pub client_cpus: Vec<usize>,
    pub pairs: usize,
    /// The baseline's server mode (`--mode`'s first value); each case has its own.
    pub mode: Mode,
    /// The baseline knobs: the first value of every knob's list. Ratios of a
    /// knob are taken against its first value.
    pub base: Knobs,
    /// `--sysctl`: the per-namespace sysctls and their values, in order.
    pub sysctls: Vec<Sysctl>,
    /// `--trace count`: the ids of the tracepoints its cases count.
    pub trace_ids: Option<[u64; 8]>,
    /// Hidden `--fault-server-exit-after`: see `workload::PairSpec::server_exit_after`.
    pub server_exit_after: Option<u64>,
    pub opts: TransportOpts,
    pub verify: bool,
    pub format: Format,
    /// The table with every column.
    pub wide: bool,
    /// Live progress on stderr.
    pub progress: Progress,
    /// No warnings on stderr.
    pub quiet: bool,
    /// `--no-warn`: warning codes left off stderr.
    pub no_warn: Vec<&'static str>,
    pub out: Option<PathBuf>,
}

/// Largest request × depth (and response × depth) kept in flight: beyond
/// the socket buffers both ends would block in send.
pub const MAX_IN_FLIGHT_BYTES: usize = 64 << 10;

impl Plan {
    /// `sockbench latency`.
    pub fn latency(a: &LatencyArgs) -> Result<Plan> {
        let sizes = unique("--size", a.size.iter().copied(), |s| s.to_string())?;
        Self::new(
            Workload::Latency,
            &a.common,
            sizes.iter().map(|&s| (s, s)).collect(),
            &Rates::Closed,
        )
    }

    /// `sockbench rr`.
    pub fn rr(a: &RrArgs) -> Result<Plan> {
        let w = Workload::Rr {
            depth: a.depth,
            new_connection: a.new_connection,
        };
        if a.new_connection && a.depth > 1 {
            return Err(Error::config(
                "--depth",
                a.depth,
                "cannot pipeline with --new-connection (one request per connection); use --depth 1",
            ));
        }
        let (req, resp) = request_response(&a.request_size, &a.response_size)?;
        for (flag, sizes) in [("--request-size", &req), ("--response-size", &resp)] {
            if let Some(&big) = sizes
                .iter()
                .find(|&&s| s * a.depth as usize > MAX_IN_FLIGHT_BYTES && a.depth > 1)
            {
                return Err(Error::config(
                    flag,
                    big,
                    format!(
                        "{} in flight (--depth) × {big} B exceeds {} KiB of socket buffer and could deadlock; lower --depth or the size",
                        a.depth,
                        MAX_IN_FLIGHT_BYTES >> 10
                    ),
                ));
            }
        }
        Self::new(w, &a.common, product(&req, &resp), &Rates::Closed)
    }

    /// `sockbench connect`.
    pub fn connect(a: &ConnectArgs) -> Result<Plan> {
        let (req, resp) = request_response(&a.request_size, &a.response_size)?;
        Self::new(
            Workload::Connect,
            &a.common,
            product(&req, &resp),
            &Rates::Closed,
        )
    }

    /// `sockbench load`.
    pub fn load(a: &LoadArgs) -> Result<Plan> {
        let (req, resp) = request_response(&a.request_size, &a.response_size)?;
        let given = unique("--rate", a.rate.iter().copied(), |r| r.to_string())?;
        let rates = match given.as_slice() {
            [RateArg::Sweep] => Rates::Sweep,
            list if list.contains(&RateArg::Sweep) => {
                return Err(Error::config(
                    "--rate",
                    "sweep",
                    "finds its own rates; give either sweep or a list of rates",
                ));
            }
            list => Rates::List(
                list.iter()
                    .filter_map(|r| match r {
                        RateArg::PerSecond(r) => Some(*r),
                        RateArg::Sweep => None,
                    })
                    .collect(),
            ),
        };
        let sweep = rates == Rates::Sweep;
        if a.common.verify {
            return Err(Error::config(
                "--verify",
                "on",
                "load does not check payloads (its loops read byte counts); leave --verify out",
            ));
        }
        if a.common.pairs > 1 {
            return Err(Error::config(
                "--pairs",
                a.common.pairs,
                "load runs one event loop per side; spread the load with --connections",
            ));
        }
        // Each connection takes a descriptor on each side (both in this
        // process in thread mode), plus the run's own.
        let limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map_or(1024, |(soft, _)| soft);
        let most = (limit.saturating_sub(64) / 2).max(1);
        if u64::from(a.connections) > most {
            return Err(Error::config(
                "--connections",
                a.connections,
                format!(
                    "needs two descriptors each and the limit (ulimit -n) is {limit}: at most {most}"
                ),
            ));
        }
        let w = Workload::Load {
            connections: a.connections,
            arrival: a.arrival,
            sweep,
        };
        Self::new(w, &a.common, product(&req, &resp), &rates)
    }

    /// `sockbench throughput`.
    pub fn throughput(a: &ThroughputArgs) -> Result<Plan> {
        let sizes = unique("--size", a.size.iter().copied(), |s| s.to_string())?;
        let both = a.direction == crate::cli::Direction::Both;
        Self::new(
            Workload::Throughput { both },
            &a.common,
            sizes.iter().map(|&s| (s, s)).collect(),
            &Rates::Closed,
        )
    }

    /// (server CPU, client CPU) of pair `p`.
    pub fn placement(&self, p: usize) -> (usize, usize) {
        (
            self.server_cpus[p % self.server_cpus.len()],
            self.client_cpus[p % self.client_cpus.len()],
        )
    }

    /// Every pair's placement, as recorded: `s0c1` or `s0c1 s1c0`.
    pub fn placement_label(&self) -> String {
        (0..self.pairs)
            .map(|p| {
                let (s, c) = self.placement(p);
                format!("s{s}c{c}")
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}
