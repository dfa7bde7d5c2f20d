//! Stage: config. clap derive: argv → raw arguments. Parses units (sizes,
//! durations) and names; no I/O and no cross-flag validation (that is `plan`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::spec::Mode;
use crate::spec::{NetnsMode, RateArg, TransportKind, Wait};

mod values;
pub use values::*;

/// What `sockbench --help` ends with.
pub const EXAMPLES: &str = "\
Examples:
  sockbench latency -t tcp4,uds-stream -s 64,4K,64K        UDS vs TCP round trips, three sizes
  sockbench throughput -t tcp4,uds-stream -s 64K -d 10s    bytes/s one way
  sockbench load -t tcp4,uds-stream --rate sweep           open-loop latency up to each knee
  sockbench latency -t tcp4 --nodelay on,off --control     a knob, with an A/A control
  sockbench explain                                        where the µs of a round trip go (root)
  sockbench latency -t tcp4 --out results/my-run           keep summary.json, .csv, .hgrm

Each subcommand has its own --help. Results: docs/reading-results.md.";

/// Largest message sockbench sends: 1 MiB.
pub const MAX_SIZE: usize = 1 << 20;

/// Loopback socket benchmarks: how much a Unix domain socket saves over TCP.
#[derive(Debug, Parser)]
#[command(
    name = "sockbench",
    version = concat!(
        env!("CARGO_PKG_VERSION"),
        " (git ",
        env!("SOCKBENCH_GIT_REVISION"),
        ")"
    ),
    about,
    propagate_version = true,
    arg_required_else_help = true,
    after_help = EXAMPLES
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ping-pong round-trip latency over loopback transports.
    Latency(LatencyArgs),
    /// Where the microseconds of a round trip go: `latency` over the ladder
    /// of mechanisms (shm-spin, futex, pipe, socketpair, uds-stream,
    /// tcp4-sockmap, tcp4, udp4), cross-CPU and same-CPU, 64 B and 64 KiB,
    /// each layer the paired difference of two rungs.
    Explain(LatencyArgs),
    /// Request/response with different sizes each way, kept-alive or a new
    /// connection per request, with requests pipelined (--depth).
    Rr(RrArgs),
    /// Connection cost: connect, send a request, receive a response, close.
    Connect(ConnectArgs),
    /// One-way bulk transfer: bytes and messages per second, CPU per message.
    Throughput(ThroughputArgs),
    /// Latency under load: requests sent on a fixed schedule (open loop)
    /// over many connections, timed from when each was due.
    Load(LoadArgs),
    /// Print the environment fingerprint (JSON) recorded with every result.
    Env,
    /// Restore host-wide sysctls left changed by a run that did not finish
    /// (killed before it could restore them; see --allow-host-sysctl).
    RestoreSysctl,
}

/// Output format on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned table for people.
    Table,
    /// One JSON document (summary.json's content), nothing else.
    Json,
    /// summary.csv's content.
    Csv,
}

/// Which way a transfer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Direction {
    /// Client writes, server reads.
    One,
    /// Both write and read at once (a second thread on each side).
    Both,
}

/// Whether to draw live progress on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Progress {
    /// When stderr is a terminal.
    Auto,
    /// Always (also into a file or a pipe).
    Always,
    /// Never.
    Never,
}

/// On/off switch for socket options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

/// Flags every workload takes.
#[derive(Debug, Args)]
pub struct Common {
    /// Transports, comma-separated: tcp4, tcp6, udp4, uds-stream, uds-dgram,
    /// uds-seqpacket, uds-abstract, socketpair, pipe; or `all` (every one
    /// that can run the workload at the sizes given; one line names what is
    /// left out and why). `latency` also takes the ladder's rungs by name
    /// (see `sockbench explain`): tcp4-sockmap (root), futex, shm-spin; or
    /// `ladder` (all eight rungs).
    #[arg(long, short, value_delimiter = ',', value_parser = parse_transport, default_value = "tcp4,uds-stream")]
    pub transport: Vec<TransportArg>,
    /// Timed operations per case (round trips, requests or messages), split over the trials
    /// (with --precision, each round past --trials adds one more trial's share).
    #[arg(long, short = 'n', value_parser = parse_count, conflicts_with = "duration", allow_hyphen_values = true)]
    pub iterations: Option<u64>,
    /// Timed run length per case (split over the trials): 2s, 500ms. Default 1s.
    /// With --precision, each round past --trials adds one more trial's share.
    #[arg(long, short = 'd', value_parser = parse_duration, allow_hyphen_values = true)]
    pub duration: Option<Duration>,
    /// Untimed operations per case before the first trial.
    #[arg(long, value_parser = parse_whole, default_value = "1000", allow_hyphen_values = true)]
    pub warmup: u64,
    /// Untimed warm-up time per case; both --warmup and this must be met.
    #[arg(long, value_parser = parse_duration_or_zero, default_value = "200ms", allow_hyphen_values = true)]
    pub warmup_time: Duration,
    /// Interleaved rounds; every case runs one trial per round.
    #[arg(long, value_parser = parse_trials, default_value = "10", allow_hyphen_values = true)]
    pub trials: u32,
    /// Precision on demand: after --trials rounds, keep running rounds until
    /// every ratio of the run's main metric (or, with none, every case's
    /// median) has a 95% CI half-width within this share of its value (2%,
    /// 0.5%; a CI needs 5 rounds), or until --max-time. One pair.
    #[arg(long, value_parser = parse_precision, allow_hyphen_values = true, value_name = "PERCENT")]
    pub precision: Option<f64>,
    /// With --precision: the longest the rounds may take; a round that
    /// would end past it is not started (30s, 10m). Default 10m.
    #[arg(long, value_parser = parse_duration, requires = "precision", allow_hyphen_values = true)]
    pub max_time: Option<Duration>,
    /// Run a round again (at most twice) when one of its trials shared a
    /// measured CPU with other tasks, or lost it to the hypervisor, for
    /// over 15% of its time; the disturbed attempt's figures are dropped
    /// and the count is recorded (rounds_retried). One pair.
    #[arg(long)]
    pub retry_disturbed: bool,
    /// CPU(s) the servers are pinned to; with --pairs, pair i takes the i-th (cycling).
    #[arg(long, value_delimiter = ',', value_parser = parse_cpu, default_value = "0", allow_hyphen_values = true)]
    pub server_cpu: Vec<usize>,
    /// CPU(s) the clients are pinned to (may equal the server's); cycles like --server-cpu.
    #[arg(long, value_delimiter = ',', value_parser = parse_cpu, default_value = "1", allow_hyphen_values = true)]
    pub client_cpu: Vec<usize>,
    /// Pinned client/server pairs running at once.
    #[arg(long, value_parser = parse_pairs, default_value = "1", allow_hyphen_values = true)]
    pub pairs: u32,
    /// Server in a thread of this process, or in a forked process. A list
    /// (`thread,process`) runs every case in each, interleaved, with
    /// ratios to the first.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "thread")]
    pub mode: Vec<Mode>,
    /// Blocking calls, or non-blocking calls retried in a busy loop; a list
    /// (`block,spin`) is a case dimension, like --mode.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "block")]
    pub wait: Vec<Wait>,
    /// TCP_NODELAY on TCP sockets (off shows Nagle/delayed-ACK stalls); a
    /// list (`on,off`) is a case dimension, like --mode.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "on")]
    pub nodelay: Vec<Switch>,
    /// Server CPU/client CPU per case, a case dimension: `0/1,0/0` runs
    /// every case cross-core and same-core, interleaved, with ratios to the
    /// first (one pair; instead of --server-cpu and --client-cpu).
    #[arg(long, value_delimiter = ',', value_parser = parse_placement,
          conflicts_with_all = ["server_cpu", "client_cpu"])]
    pub placement: Vec<(usize, usize)>,
    /// SO_SNDBUF asked for on both ends of each socket pair (a list is a
    /// case dimension, like --mode); the kernel doubles it and caps it at
    /// net.core.wmem_max; the granted size is recorded (sndbuf_bytes).
    #[arg(long, value_delimiter = ',', value_parser = parse_buffer)]
    pub sndbuf: Vec<usize>,
    /// SO_RCVBUF, likewise (capped at net.core.rmem_max).
    #[arg(long, value_delimiter = ',', value_parser = parse_buffer)]
    pub rcvbuf: Vec<usize>,
    /// SO_BUSY_POLL in µs on both ends (a list is a case dimension).
    #[arg(long, value_delimiter = ',', value_parser = parse_busy_poll)]
    pub busy_poll: Vec<u32>,
    /// Trace the path, in trials of their own: `count` counts kernel events
    /// (tracepoints) in the client's and the server's threads during each
    /// trial (root, one pair); `split` times the client's send call apart from the rest of the
    /// round trip (ping-pong); `stamp` splits each round trip with the
    /// kernel's software timestamps (SO_TIMESTAMPING; ping-pong over tcp4,
    /// tcp6, udp4). A list (`off,count,split,stamp`) runs every case
    /// each way, interleaved, so the figures sit beside untraced times and
    /// the cost of tracing is a ratio.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "off")]
    pub trace: Vec<crate::spec::Trace>,
    /// `--trace` was not given to `explain`: counting is left out with a
    /// note where it cannot run, instead of refused.
    #[arg(skip)]
    pub trace_if_able: bool,
    /// A per-network-namespace sysctl and its values, NAME=V1,V2 (repeat
    /// for more, up to 4): each value runs in a private network namespace
    /// made for its cases (client and server both, lo up), interleaved, with
    /// ratios to the first value. The host's values never change; host-wide
    /// names (net.core.rmem_default, ...) are refused.
    #[arg(long = "sysctl", value_parser = parse_sysctl, value_name = "NAME=V1,V2")]
    pub sysctl: Vec<crate::spec::Sysctl>,
    /// Let --sysctl change host-wide sysctls (net.core.busy_poll,
    /// net.core.rmem_default, ...): each value is set on the host before each
    /// trial of its cases (and its set-up and warm-up) and the original put
    /// back after, and on every exit path; the originals are journaled in
    /// /run/sockbench first, and a run that finds a journal left by a killed
    /// run restores it and says so (root, one pair).
    #[arg(long)]
    pub allow_host_sysctl: bool,
    /// A/A control: a second copy of each baseline case (every knob at its
    /// first value) runs in the same rounds; its ratio to the baseline
    /// should be 1, and its CI is the run's own resolution.
    #[arg(long)]
    pub control: bool,
    /// Containers without Docker: each server in its own network namespace,
    /// each client in another, joined by a veth pair or through a Linux
    /// bridge (needs root). TCP/UDP then cross the link; path sockets are
    /// shared through the file system; abstract names do not cross.
    /// A list runs every case in each, interleaved (`off,veth,bridge`).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "off")]
    pub netns: Vec<NetnsMode>,
    /// Longest wait for a peer before the run fails (SO_RCVTIMEO/SO_SNDTIMEO): 10ms to 1h.
    #[arg(long, value_parser = parse_timeout, default_value = "5s", allow_hyphen_values = true)]
    pub timeout: Duration,
    /// Check every byte (or, for transfers, every sequence number) outside the timed interval.
    #[arg(long)]
    pub verify: bool,
    /// Fault injection for tests (hidden): every server ends, silently,
    /// after this many operations, warm-up included.
    #[arg(long, hide = true, value_parser = parse_count)]
    pub fault_server_exit_after: Option<u64>,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// The table with every column (the default fits 80 columns).
    #[arg(long)]
    pub wide: bool,
    /// Live progress on stderr: case, round, elapsed time and ETA.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: Progress,
    /// No warnings on stderr (they are still written into summary.json).
    #[arg(long, short)]
    pub quiet: bool,
    /// Leave these kinds of warning off stderr (comma-separated codes, as
    /// summary.json names them: virtualized, wide-ci, disturbed, ...); they
    /// are still written into summary.json.
    #[arg(long, value_delimiter = ',', value_parser = parse_warning_code, value_name = "CODE")]
    pub no_warn: Vec<&'static str>,
    /// Write summary.json, summary.csv, env.json (and one .hgrm per latency
    /// case) into this new (or empty) directory, atomically.
    #[arg(long, short)]
    pub out: Option<PathBuf>,
}

/// One element of `--transport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportArg {
    /// A transport named on its own: it runs, or the run is refused.
    One(TransportKind),
    /// `all`: every transport that can run the workload.
    All,
    /// `ladder`: the rungs of `sockbench explain` ([`TransportKind::LADDER`]);
    /// one that cannot run here is left out with a note.
    Ladder,
}

/// Parse argv. `explain` is `latency` with the ladder's defaults: every
/// rung, cross-CPU and same-CPU, 64 B and 64 KiB.
pub fn parse_from<I, T>(argv: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::{CommandFactory, FromArgMatches};
    let mut cmd = Cli::command().mut_subcommand("explain", |c| {
        c.mut_arg("transport", |a| a.default_value("ladder"))
            .mut_arg("placement", |a| a.default_value("0/1,0/0"))
            .mut_arg("size", |a| a.default_value("64,64K"))
            .mut_arg("trace", |a| a.default_value("off,count,split,stamp"))
    });
    let matches = cmd.try_get_matches_from_mut(argv)?;
    let mut cli = Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))?;
    if let (Command::Explain(a), Some(m)) =
        (&mut cli.command, matches.subcommand_matches("explain"))
    {
        a.common.trace_if_able =
            m.value_source("trace") == Some(clap::parser::ValueSource::DefaultValue);
    }
    Ok(cli)
}

#[derive(Debug, Args)]
pub struct LatencyArgs {
    #[command(flatten)]
    pub common: Common,
    /// Message sizes, comma-separated: 64, 4K, 64KiB, 1MiB (1 B to 1 MiB).
    #[arg(long, short, value_delimiter = ',', value_parser = parse_size, default_value = "64", allow_hyphen_values = true)]
    pub size: Vec<usize>,
}

#[derive(Debug, Args)]
pub struct RrArgs {
    #[command(flatten)]
    pub common: Common,
    /// Request sizes, comma-separated (client → server).
    #[arg(long, value_delimiter = ',', value_parser = parse_size, default_value = "512", allow_hyphen_values = true)]
    pub request_size: Vec<usize>,
    /// Response sizes, comma-separated (server → client).
    #[arg(long, value_delimiter = ',', value_parser = parse_size, default_value = "16K", allow_hyphen_values = true)]
    pub response_size: Vec<usize>,
    /// Requests kept in flight per pair (pipelining), 1 to 1024.
    #[arg(long, value_parser = parse_depth, default_value = "1", allow_hyphen_values = true)]
    pub depth: u32,
    /// A new connection per request (as nginx does towards an upstream by default).
    #[arg(long)]
    pub new_connection: bool,
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    #[command(flatten)]
    pub common: Common,
    /// Request sizes, comma-separated.
    #[arg(long, value_delimiter = ',', value_parser = parse_size, default_value = "64", allow_hyphen_values = true)]
    pub request_size: Vec<usize>,
    /// Response sizes, comma-separated.
    #[arg(long, value_delimiter = ',', value_parser = parse_size, default_value = "64", allow_hyphen_values = true)]
    pub response_size: Vec<usize>,
}

#[derive(Debug, Args)]
pub struct ThroughputArgs {
    #[command(flatten)]
    pub common: Common,
    /// Write sizes, comma-separated: 1 B to 1 MiB (64, 4K, 64KiB, 1MiB).
    #[arg(long, short, value_delimiter = ',', value_parser = parse_size, default_value = "64,4K,64K", allow_hyphen_values = true)]
    pub size: Vec<usize>,
    /// `one`: client → server; `both`: both ways at once.
    #[arg(long, value_enum, default_value = "one")]
    pub direction: Direction,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    #[command(flatten)]
    pub common: Common,
    /// Offered request rates in total, comma-separated: 5000, 20k, 1.5k
    /// (each is a case, interleaved like every other dimension); or `sweep`:
    /// from 10% of the closed-loop rate up by ×1.25 until each case saturates.
    #[arg(long, value_delimiter = ',', value_parser = parse_rate, default_value = "5k", allow_hyphen_values = true)]
    pub rate: Vec<RateArg>,
    /// Connections the requests are spread over, round-robin.
    #[arg(long, value_parser = parse_connections, default_value = "16", allow_hyphen_values = true)]
    pub connections: u32,
    /// How requests are spaced: evenly, or as a Poisson process.
    #[arg(long, value_enum, default_value = "constant")]
    pub arrival: crate::spec::Arrival,
    /// Request sizes, comma-separated (client → server).
    #[arg(long, value_delimiter = ',', value_parser = parse_size, default_value = "512", allow_hyphen_values = true)]
    pub request_size: Vec<usize>,
    /// Response sizes, comma-separated (server → client).
    #[arg(long, value_delimiter = ',', value_parser = parse_size, default_value = "16K", allow_hyphen_values = true)]
    pub response_size: Vec<usize>,
}
