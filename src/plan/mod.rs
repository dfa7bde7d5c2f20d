//! Stage: config. Raw arguments → a validated [`Plan`]: every case the run
//! will measure, with sizes each transport can carry and CPUs that exist.
//! Bad input becomes `Error::Config` naming the flag, the value and what is
//! allowed. Creates nothing.

mod limits;

pub use limits::MAX_CASES;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::affinity;
use crate::cli::Common;
use crate::cli::{
    ConnectArgs, Format, LatencyArgs, LoadArgs, Progress, RrArgs, Switch, ThroughputArgs,
    TransportArg,
};
use crate::error::{Error, Result};
use crate::spec::{Arrival, Job, Knobs, LOAD_HEADER, MAX_SYSCTLS, Mode, RateArg, Sysctl};
use crate::spec::{NetnsMode, TransportKind, Wait, size_label};
use crate::transport::{TransportOpts, datagram_limit};

/// Largest UDP payload over IPv4: 65,535 − 20 (IP header) − 8 (UDP header).
pub const UDP4_MAX: usize = 65_507;

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
    pub trials: u32,
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

    fn new(
        workload: Workload,
        c: &Common,
        sizes: Vec<(usize, usize)>,
        rates: &Rates,
    ) -> Result<Plan> {
        let rates: &[u64] = match rates {
            Rates::List(list) => list,
            // A closed loop, or a sweep's cases before it finds their rates.
            Rates::Closed | Rates::Sweep => &[0],
        };
        // Named transports must run as asked; those `all` adds are left out,
        // with a note, where they cannot.
        let named = unique(
            "--transport",
            c.transport.iter().filter_map(|t| match t {
                TransportArg::One(k) => Some(*k),
                TransportArg::All => None,
            }),
            |k| k.name().to_string(),
        )?;
        let all = c.transport.contains(&TransportArg::All);
        let mut transports: Vec<(TransportKind, bool)> = named.iter().map(|&k| (k, true)).collect();
        if all {
            transports.extend(
                TransportKind::ALL
                    .into_iter()
                    .filter(|k| !named.contains(k))
                    .map(|k| (k, false)),
            );
        }
        let (dims, total) = limits::case_count(c, transports.len(), sizes.len(), rates.len());
        limits::check_count(&dims, total)?;
        let knobs = knob_product(c)?;
        let base = knobs[0];
        let sysctls = check_sysctls(c)?;
        if workload.job() == Job::Accept {
            for (flag, given) in [
                ("--sndbuf", c.sndbuf.first().map(|v| v.to_string())),
                ("--rcvbuf", c.rcvbuf.first().map(|v| v.to_string())),
                ("--busy-poll", c.busy_poll.first().map(|v| v.to_string())),
            ] {
                if let Some(v) = given {
                    return Err(Error::config(
                        flag,
                        v,
                        "socket options are set on pairs kept open; a new connection per request takes the system's defaults; leave it out",
                    ));
                }
            }
        }
        let mut left_out: Vec<String> = Vec::new();
        let accept = workload.job() == Job::Accept;
        if accept {
            if c.wait.contains(&Wait::Spin) {
                return Err(Error::config(
                    "--wait",
                    "spin",
                    "connection set-up (connect/accept) is measured blocking; use --wait block",
                ));
            }
            admit(
                &mut transports,
                &mut left_out,
                TransportKind::is_connection_oriented,
                |k| {
                    Error::config(
                        "--transport",
                        k,
                        format!(
                            "has no connections to open per request; allowed: {}",
                            TransportKind::names_where(TransportKind::is_connection_oriented)
                        ),
                    )
                },
                "no connections to open per request",
            )?;
        }
        if workload.job() == Job::Load {
            admit(
                &mut transports,
                &mut left_out,
                TransportKind::carries_load,
                |k| {
                    Error::config(
                        "--transport",
                        k,
                        format!(
                            "load runs over sockets (one descriptor per connection for its event loop); allowed: {}",
                            TransportKind::names_where(TransportKind::carries_load)
                        ),
                    )
                },
                "load runs over sockets only",
            )?;
        }
        let netns = unique("--netns", c.netns.iter().copied(), |m| m.name().to_string())?;
        if let Some(&m) = netns.iter().find(|&&m| m != NetnsMode::Off)
            && let Err(e) = crate::sys::netns::create()
        {
            return Err(Error::config(
                "--netns",
                m.name(),
                format!(
                    "makes private network namespaces, and unshare(CLONE_NEWNET) failed here ({e}); \
                     it needs CAP_SYS_ADMIN and CAP_NET_ADMIN (run as root), or leave --netns out"
                ),
            ));
        }
        if netns.iter().any(|&m| m != NetnsMode::Off) {
            admit(
                &mut transports,
                &mut left_out,
                TransportKind::is_addressed,
                |k| {
                    Error::config(
                        "--transport",
                        k,
                        format!(
                            "has no address to reach across --netns; allowed there: {}",
                            TransportKind::names_where(TransportKind::is_addressed)
                        ),
                    )
                },
                "no address to reach across --netns",
            )?;
        }
        let depth = workload.depth();
        let (size_flag, response_flag) = match workload {
            Workload::Latency | Workload::Throughput { .. } => ("--size", "--size"),
            _ => ("--request-size", "--response-size"),
        };
        let mut cases = Vec::new();
        for &(transport, strict) in &transports {
            if depth > 1
                && matches!(
                    transport,
                    TransportKind::UdsDgram | TransportKind::UdsSeqpacket
                )
            {
                // The smallest queue any case runs with: the host's, or
                // the values `--sysctl` gives it in the cases' namespaces.
                let given: Vec<u32> = sysctls
                    .iter()
                    .filter(|x| x.name == "net.unix.max_dgram_qlen")
                    .flat_map(|x| x.values.iter().filter_map(|v| v.parse().ok()))
                    .collect();
                let qlen: u32 = given.iter().copied().min().unwrap_or_else(|| {
                    read_sysctl("net/unix/max_dgram_qlen")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(10)
                });
                if depth > qlen {
                    if !strict {
                        left_out.push(format!(
                            "{transport} (queues at most {qlen} messages, under --depth {depth})"
                        ));
                        continue;
                    }
                    return Err(Error::config(
                        "--depth",
                        depth,
                        format!(
                            "{transport} queues at most net.unix.max_dgram_qlen = {qlen} messages; lower --depth, or run with --sysctl net.unix.max_dgram_qlen={depth} (in private namespaces; the host keeps its value)"
                        ),
                    ));
                }
            }
            for &(size, response) in &sizes {
                let mut fits = check_size(transport, size, size_flag);
                if workload.job() == Job::Load && !transport.is_stream() {
                    // Each message carries its request's sequence number.
                    let least = LOAD_HEADER;
                    for (flag, s) in [(size_flag, size), (response_flag, response)] {
                        if fits.is_ok() && s < least {
                            fits = Err(Error::config(
                                flag,
                                s,
                                format!(
                                    "load over {transport} numbers each message in its first {least} B; at least {least}"
                                ),
                            ));
                        }
                    }
                }
                if fits.is_ok() && !matches!(workload.job(), Job::Sink | Job::Duplex) {
                    fits = check_size(transport, response, response_flag);
                }
                match fits {
                    Err(Error::Config { .. }) if !strict => {
                        let least = LOAD_HEADER;
                        left_out.push(
                            if workload.job() == Job::Load && size.min(response) < least {
                                format!(
                                    "{transport} at {} (under {least} B, no room for a sequence number)",
                                    size_label(size.min(response))
                                )
                            } else {
                                format!(
                                    "{transport} at {} (too large for it)",
                                    size_label(size.max(response))
                                )
                            },
                        );
                        continue;
                    }
                    other => other?,
                }
                for &rate in rates {
                    for &netns in &netns {
                        for &knobs in &knobs {
                            cases.push(Case {
                                transport,
                                size,
                                response,
                                netns,
                                rate,
                                knobs,
                            });
                        }
                    }
                }
            }
        }
        if cases.is_empty() {
            return Err(Error::config(
                "--transport",
                "all",
                format!(
                    "no transport can run this workload at these sizes: {}",
                    left_out.join(", ")
                ),
            ));
        }
        let notes = if left_out.is_empty() {
            Vec::new()
        } else {
            vec![format!("--transport all: left out {}", left_out.join("; "))]
        };
        let cpus = affinity::available();
        for &cpu in &c.server_cpu {
            check_cpu("--server-cpu", cpu, &cpus)?;
        }
        for &(server, client) in &c.placement {
            check_cpu("--placement", server, &cpus)?;
            check_cpu("--placement", client, &cpus)?;
        }
        for &cpu in &c.client_cpu {
            check_cpu("--client-cpu", cpu, &cpus)?;
        }
        limits::check_fit(workload, &cases, c.pairs as usize, limits::largest(&dims))?;
        let budget = match (c.iterations, c.duration) {
            (Some(n), _) => {
                if n < u64::from(c.trials) {
                    return Err(Error::config(
                        "--iterations",
                        n,
                        format!(
                            "fewer than --trials ({}); every trial needs at least one operation",
                            c.trials
                        ),
                    ));
                }
                Budget::Iterations(n)
            }
            (None, Some(d)) => Budget::Duration(d),
            (None, None) => Budget::Duration(Duration::from_secs(1)),
        };
        if let (Workload::Load { sweep: false, .. }, Budget::Duration(d)) = (workload, budget) {
            limits::check_rates(rates, d, c.trials)?;
        }
        Ok(Plan {
            workload,
            notes,
            cases,
            budget,
            warmup: c.warmup,
            warmup_time: c.warmup_time,
            trials: c.trials,
            server_cpus: c.server_cpu.clone(),
            client_cpus: c.client_cpu.clone(),
            pairs: c.pairs as usize,
            mode: base.mode,
            base,
            sysctls,
            server_exit_after: c.fault_server_exit_after,
            opts: TransportOpts {
                nodelay: base.nodelay,
                timeout: c.timeout,
                wait: base.wait,
                ..TransportOpts::default()
            },
            verify: c.verify,
            format: c.format,
            wide: c.wide,
            progress: c.progress,
            quiet: c.quiet,
            out: c.out.clone(),
        })
    }

    /// (server CPU, client CPU) of pair `p`.
    pub fn placement(&self, p: usize) -> (usize, usize) {
        (
            self.server_cpus[p % self.server_cpus.len()],
            self.client_cpus[p % self.client_cpus.len()],
        )
    }

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
fn knob_product(c: &Common) -> Result<Vec<Knobs>> {
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
                            for &bp in &busy_poll {
                                for &sy in &sysctl {
                                    let k = Knobs {
                                        nodelay: n == Switch::On,
                                        wait: w,
                                        mode: m,
                                        placement: p,
                                        sndbuf: sb,
                                        rcvbuf: rb,
                                        busy_poll: bp,
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

/// `--sysctl`, before anything runs: at most [`MAX_SYSCTLS`] names, each
/// once and each value once, none with `--netns` (each value has a
/// namespace of its own), and each per network namespace and accepted by
/// the kernel, tried in a throwaway namespace (the host's values are never
/// written).
fn check_sysctls(c: &Common) -> Result<Vec<Sysctl>> {
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

/// `--request-size` and `--response-size`, each without repeats.
fn request_response(req: &[usize], resp: &[usize]) -> Result<(Vec<usize>, Vec<usize>)> {
    let show = |s: &usize| s.to_string();
    Ok((
        unique("--request-size", req.iter().copied(), show)?,
        unique("--response-size", resp.iter().copied(), show)?,
    ))
}

/// Every (request, response) combination, request-major.
fn product(req: &[usize], resp: &[usize]) -> Vec<(usize, usize)> {
    req.iter()
        .flat_map(|&q| resp.iter().map(move |&r| (q, r)))
        .collect()
}

/// Keep order; a value given twice is an error (it would be measured twice
/// and reported as two cases with the same name).
fn unique<T: Copy + Eq + std::hash::Hash>(
    flag: &'static str,
    items: impl Iterator<Item = T>,
    show: impl Fn(&T) -> String,
) -> Result<Vec<T>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for it in items {
        if !seen.insert(it) {
            return Err(Error::config(
                flag,
                show(&it),
                "given twice; list each value once",
            ));
        }
        out.push(it);
    }
    Ok(out)
}

/// Keep the transports `allowed` admits; one named by the user that it
/// does not is an error (`refuse`), one `all` added is left out with `why`.
fn admit(
    transports: &mut Vec<(TransportKind, bool)>,
    left_out: &mut Vec<String>,
    allowed: impl Fn(TransportKind) -> bool,
    refuse: impl Fn(TransportKind) -> Error,
    why: &str,
) -> Result<()> {
    if let Some(&(k, _)) = transports
        .iter()
        .find(|&&(k, strict)| strict && !allowed(k))
    {
        return Err(refuse(k));
    }
    let out: Vec<&str> = transports
        .iter()
        .filter(|&&(k, _)| !allowed(k))
        .map(|(k, _)| k.name())
        .collect();
    if !out.is_empty() {
        left_out.push(format!("{} ({why})", out.join(", ")));
    }
    transports.retain(|&(k, _)| allowed(k));
    Ok(())
}

/// Refuse sizes a transport cannot carry, with the limit and what raises
/// it; `flag` is the flag the size came from.
pub fn check_size(kind: TransportKind, size: usize, flag: &'static str) -> Result<()> {
    if kind == TransportKind::Udp4 && size > UDP4_MAX {
        return Err(Error::config(
            flag,
            size,
            format!(
                "udp4 carries at most {UDP4_MAX} B per datagram (the IPv4 limit); use a smaller size or a stream transport"
            ),
        ));
    }
    match datagram_limit(kind, size) {
        Ok(None) => Ok(()),
        Ok(Some(limit)) => Err(Error::config(
            flag,
            size,
            format!(
                "{kind} carries at most {limit} B per message here, even with SO_SNDBUF raised to net.core.wmem_max ({}); \
                 raise it with `sysctl -w net.core.wmem_max=<bytes>` or use a smaller size",
                read_sysctl("net/core/wmem_max").unwrap_or_else(|| "?".into())
            ),
        )),
        Err(e) => Err(Error::Setup {
            op: "probe",
            target: "message size limit".into(),
            transport: kind.name(),
            size,
            source: e,
        }),
    }
}

fn read_sysctl(path: &str) -> Option<String> {
    std::fs::read_to_string(Path::new("/proc/sys").join(path))
        .ok()
        .map(|s| s.trim().to_string())
}

fn check_cpu(flag: &'static str, cpu: usize, cpus: &[usize]) -> Result<()> {
    if cpus.contains(&cpu) {
        return Ok(());
    }
    Err(Error::config(
        flag,
        cpu,
        format!(
            "CPU {cpu} is not online or not allowed for this process; allowed: {}",
            affinity::format_list(cpus)
        ),
    ))
}

/// The `cargo bench` suite's profiles (`SOCKBENCH_PROFILE`): which sizes
/// each bench measures and how long criterion spends on each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchProfile {
    /// Every size, 0.5 s warm-up, 2 s of sampling, 40 samples (the default).
    Full,
    /// Fewer sizes, 0.2 s warm-up, 0.5 s of sampling, 15 samples.
    Quick,
}

/// Criterion's timing of one [`BenchProfile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchTiming {
    pub warm_up: Duration,
    pub measurement: Duration,
    pub samples: usize,
    /// Bootstrap resamples of criterion's analysis (its default, 100,000,
    /// costs several seconds per benchmark).
    pub resamples: usize,
}

impl BenchProfile {
    /// `full` or `quick`.
    pub fn from_name(name: &str) -> std::result::Result<Self, String> {
        match name {
            "full" => Ok(BenchProfile::Full),
            "quick" => Ok(BenchProfile::Quick),
            _ => Err("allowed: full, quick".into()),
        }
    }

    /// Ping-pong, rr and connect message sizes.
    pub fn latency_sizes(self) -> &'static [usize] {
        match self {
            BenchProfile::Full => &[1, 64, 512, 4 << 10, 16 << 10, 64 << 10],
            BenchProfile::Quick => &[1, 64, 4 << 10, 64 << 10],
        }
    }

    /// Throughput write sizes.
    pub fn throughput_sizes(self) -> &'static [usize] {
        match self {
            BenchProfile::Full => &[64, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20],
            BenchProfile::Quick => &[64, 4 << 10, 64 << 10, 1 << 20],
        }
    }

    /// Criterion's timing.
    pub fn timing(self) -> BenchTiming {
        match self {
            BenchProfile::Full => BenchTiming {
                warm_up: Duration::from_millis(500),
                measurement: Duration::from_secs(2),
                samples: 40,
                resamples: 20_000,
            },
            BenchProfile::Quick => BenchTiming {
                warm_up: Duration::from_millis(200),
                measurement: Duration::from_millis(500),
                samples: 15,
                resamples: 5_000,
            },
        }
    }

    /// The profile as the README states it: `0.5 s warm-up, 2 s sampling, 40 samples`.
    pub fn describe(self) -> String {
        let t = self.timing();
        let s = |d: Duration| format!("{} s", d.as_secs_f64());
        format!(
            "{} warm-up, {} sampling, {} samples",
            s(t.warm_up),
            s(t.measurement),
            t.samples
        )
    }
}
