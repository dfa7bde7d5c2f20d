//! Stage: vocabulary. The words every stage uses: which transport, how calls
//! wait, where the ends live (`--netns`), where the server runs, what it
//! does. Plain values with their names, below everything that uses them
//! (cli, plan, transport, workload, report); knows no sockets, files or
//! statistics.

use std::fmt;
use std::str::FromStr;

/// Every transport sockbench measures. `name()` is the stable string used in
/// output, benchmark ids and file names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(into = "&'static str")]
pub enum TransportKind {
    /// TCP over 127.0.0.1.
    Tcp4,
    /// TCP over ::1.
    Tcp6,
    /// UDP over 127.0.0.1.
    Udp4,
    /// AF_UNIX SOCK_STREAM bound to a path.
    UdsStream,
    /// AF_UNIX SOCK_DGRAM bound to paths.
    UdsDgram,
    /// AF_UNIX SOCK_SEQPACKET bound to a path.
    UdsSeqpacket,
    /// AF_UNIX SOCK_STREAM in the abstract namespace.
    UdsAbstract,
    /// `socketpair(AF_UNIX, SOCK_STREAM)`: no address, no lookup.
    Socketpair,
    /// Two pipes, one per direction.
    Pipe,
    /// TCP over 127.0.0.1 whose data a BPF sockmap `sk_msg` program hands
    /// straight to the peer socket's receive queue, never as a segment: no
    /// skb, IP, loopback device, softirq or TCP receive processing (root).
    Tcp4Sockmap,
    /// A page both ends map; the receiver sleeps in `futex` and the sender
    /// wakes it: the wake-up with no socket or pipe.
    Futex,
    /// A page both ends map; the receiver spins on a cache line: no system
    /// call, the floor any IPC can reach.
    ShmSpin,
}

impl TransportKind {
    /// All transports, in the order used for output.
    pub const ALL: [TransportKind; 12] = [
        TransportKind::Tcp4,
        TransportKind::Tcp6,
        TransportKind::Udp4,
        TransportKind::UdsStream,
        TransportKind::UdsDgram,
        TransportKind::UdsSeqpacket,
        TransportKind::UdsAbstract,
        TransportKind::Socketpair,
        TransportKind::Pipe,
        TransportKind::Tcp4Sockmap,
        TransportKind::Futex,
        TransportKind::ShmSpin,
    ];

    /// The ladder of mechanisms, cheapest first (`sockbench explain`):
    /// each rung adds one layer of the path to the one below it.
    pub const LADDER: [TransportKind; 8] = [
        TransportKind::ShmSpin,
        TransportKind::Futex,
        TransportKind::Pipe,
        TransportKind::Socketpair,
        TransportKind::UdsStream,
        TransportKind::Tcp4Sockmap,
        TransportKind::Tcp4,
        TransportKind::Udp4,
    ];

    /// Stable name.
    pub fn name(self) -> &'static str {
        match self {
            TransportKind::Tcp4 => "tcp4",
            TransportKind::Tcp6 => "tcp6",
            TransportKind::Udp4 => "udp4",
            TransportKind::UdsStream => "uds-stream",
            TransportKind::UdsDgram => "uds-dgram",
            TransportKind::UdsSeqpacket => "uds-seqpacket",
            TransportKind::UdsAbstract => "uds-abstract",
            TransportKind::Socketpair => "socketpair",
            TransportKind::Pipe => "pipe",
            TransportKind::Tcp4Sockmap => "tcp4-sockmap",
            TransportKind::Futex => "futex",
            TransportKind::ShmSpin => "shm-spin",
        }
    }

    /// Whether the transport is a byte stream (no message boundaries).
    pub fn is_stream(self) -> bool {
        !matches!(
            self,
            TransportKind::Udp4
                | TransportKind::UdsDgram
                | TransportKind::UdsSeqpacket
                | TransportKind::Futex
                | TransportKind::ShmSpin
        )
    }

    /// Whether `all` includes it: every socket and the pipe. The ladder's
    /// own rungs (tcp4-sockmap, futex, shm-spin) run when named.
    pub fn in_all(self) -> bool {
        !self.is_rung()
    }

    /// Whether it is one of the ladder's own rungs: it carries one message
    /// each way at a time (ping-pong, `latency` only), and has no address.
    pub fn is_rung(self) -> bool {
        matches!(
            self,
            TransportKind::Tcp4Sockmap | TransportKind::Futex | TransportKind::ShmSpin
        )
    }

    /// Whether the receiver's wait is the transport itself (shm-spin spins,
    /// futex sleeps), so `--wait` does not apply.
    pub fn waits_its_own_way(self) -> bool {
        matches!(self, TransportKind::Futex | TransportKind::ShmSpin)
    }

    /// Whether the transport is a plain TCP socket (data through IP).
    pub fn is_tcp(self) -> bool {
        matches!(self, TransportKind::Tcp4 | TransportKind::Tcp6)
    }

    /// Whether its messages go through IP and a device as packets, which
    /// the kernel can stamp (`--trace stamp`): tcp4, tcp6, udp4.
    pub fn is_packet(self) -> bool {
        self.is_tcp() || self == TransportKind::Udp4
    }

    /// Whether the transport is an AF_UNIX socket with an address (path or abstract).
    pub fn is_uds(self) -> bool {
        matches!(
            self,
            TransportKind::UdsStream
                | TransportKind::UdsDgram
                | TransportKind::UdsSeqpacket
                | TransportKind::UdsAbstract
        )
    }

    /// Whether the transport has connections (listen/accept/connect), so a
    /// workload can open one per request.
    pub fn is_connection_oriented(self) -> bool {
        matches!(
            self,
            TransportKind::Tcp4
                | TransportKind::Tcp6
                | TransportKind::UdsStream
                | TransportKind::UdsSeqpacket
                | TransportKind::UdsAbstract
        )
    }

    /// Whether set-up binds a path inside the private socket directory.
    pub fn needs_dir(self) -> bool {
        matches!(
            self,
            TransportKind::UdsStream | TransportKind::UdsDgram | TransportKind::UdsSeqpacket
        )
    }

    /// The comma-separated list of names, for error messages and help.
    pub fn all_names() -> String {
        Self::names_where(|_| true)
    }

    /// The names of the transports that `allowed` admits, comma-separated:
    /// every "allowed: ..." list in an error is derived from the kinds.
    pub fn names_where(allowed: impl Fn(TransportKind) -> bool) -> String {
        Self::ALL
            .into_iter()
            .filter(|&k| allowed(k))
            .map(Self::name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether `load` can run over it: a socket, one descriptor per
    /// connection for its event loop to watch (not the pipe pair).
    pub fn carries_load(self) -> bool {
        self != TransportKind::Pipe && !self.is_rung()
    }

    /// Whether the transport has an address another network namespace can
    /// reach (`--netns`): not socketpair, pipe, or the ladder's rungs.
    pub fn is_addressed(self) -> bool {
        !matches!(self, TransportKind::Socketpair | TransportKind::Pipe) && !self.is_rung()
    }
}

impl From<TransportKind> for &'static str {
    fn from(k: TransportKind) -> Self {
        k.name()
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TransportKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown transport; allowed: {}", Self::all_names()))
    }
}

/// How blocking calls wait.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, clap::ValueEnum, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Wait {
    /// Blocking calls: the thread sleeps until data arrives (the default).
    Block,
    /// Non-blocking calls retried in a busy loop: no wake-up cost.
    Spin,
}

/// Whether a case counts kernel events in its trials (`--trace`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, clap::ValueEnum, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Trace {
    /// Untraced (the default).
    Off,
    /// Count tracepoints (system calls, switches, wake-ups, IPIs, NET_RX
    /// softirqs, device transmits, skb copies, data-ready) in the client's
    /// and the server's threads during each trial: a case of its own,
    /// beside the untraced one.
    Count,
    /// Time the client's send call apart from the rest of each round trip
    /// (one more clock read per round trip): ping-pong only.
    Split,
    /// Kernel software timestamps (`SO_TIMESTAMPING`) on the client's
    /// socket: each round trip split at the device queue, the device, the
    /// send call's return and the reply's receive stamp. Ping-pong
    /// over TCP and UDP only.
    Stamp,
}

/// How the server's namespace is joined to the client's.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum NetnsMode {
    /// Server and client in the same namespace as sockbench (loopback).
    Off,
    /// One veth pair between the two namespaces.
    Veth,
    /// A veth pair from each namespace to a Linux bridge in a third one.
    Bridge,
}

impl NetnsMode {
    pub fn name(self) -> &'static str {
        match self {
            NetnsMode::Off => "off",
            NetnsMode::Veth => "veth",
            NetnsMode::Bridge => "bridge",
        }
    }
}

/// Where the echo server runs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, clap::ValueEnum, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A thread of this process (default).
    Thread,
    /// A forked child process, as nginx and gunicorn are separate processes.
    Process,
}

/// Most `--sysctl` flags a run takes.
pub const MAX_SYSCTLS: usize = 4;

/// A per-network-namespace sysctl and the values a run gives it
/// (`--sysctl net.ipv4.tcp_autocorking=1,0`), each applied inside a
/// private namespace made for the cases that run with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysctl {
    /// Dotted name, `net.ipv4.tcp_autocorking`.
    pub name: String,
    /// The values, as given on the command line until the plan has tried
    /// them; then as the kernel reads each back (`0x10` is `16`), with
    /// runs of whitespace as one space.
    pub values: Vec<String>,
    /// The name its ratios and labels go by: the last component
    /// (`tcp_autocorking`), or the whole name where two of a run's
    /// sysctls end alike (`net.ipv4.conf.all.rp_filter`).
    pub label: String,
    /// Host-wide (`--allow-host-sysctl`): set on the host around each trial
    /// of its cases and restored after, not in a private namespace.
    pub host: bool,
}

impl Sysctl {
    /// A sysctl of this name with these values, labelled by its last
    /// component.
    pub fn new(name: String, values: Vec<String>) -> Self {
        let label = name.rsplit('.').next().unwrap_or(&name).to_string();
        Sysctl {
            name,
            values,
            label,
            host: false,
        }
    }

    /// The name a knob goes by in ratios and labels (see `label`).
    pub fn knob(&self) -> &str {
        &self.label
    }

    /// Its file under /proc/sys.
    pub fn path(&self) -> String {
        sysctl_path(&self.name)
    }

    /// A value as the kernel shows it, in one line: whitespace runs
    /// (tcp_rmem's tabs, a newline) become one space.
    pub fn as_held(read_back: &str) -> String {
        read_back.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// The file under /proc/sys of a dotted sysctl name.
pub fn sysctl_path(name: &str) -> String {
    format!("/proc/sys/{}", name.replace('.', "/"))
}

/// What a case runs with beyond its transport and sizes: socket options,
/// how calls wait, where the server runs, which CPUs, which sysctl values.
/// Each is a case dimension when its flag takes a list (`--nodelay
/// on,off`, `--wait block,spin`, `--mode thread,process`, `--placement
/// 0/1,0/0`, `--sndbuf`, `--rcvbuf`, `--busy-poll`, `--sysctl`); the plan's
/// cases hold every combination, interleaved in the same rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Knobs {
    /// `TCP_NODELAY` on TCP sockets.
    pub nodelay: bool,
    pub wait: Wait,
    pub mode: Mode,
    /// `--placement`: (server CPU, client CPU) of this case; `None` takes
    /// the run's `--server-cpu`/`--client-cpu` (per pair).
    pub placement: Option<(usize, usize)>,
    /// `--sndbuf`, `--rcvbuf` (bytes asked for), `--busy-poll` (µs); `None`:
    /// the system's defaults.
    pub sndbuf: Option<usize>,
    pub rcvbuf: Option<usize>,
    pub busy_poll: Option<u32>,
    /// `--trace`: whether the case's trials count kernel events.
    pub trace: Trace,
    /// `--sysctl`: the index of each sysctl's value (in the run's list of
    /// sysctls, in order); unused entries are 0.
    pub sysctl: [u8; MAX_SYSCTLS],
    /// `--control`: 1 for the A/A copy of the baseline case (the same
    /// knobs, run as a case of its own in the same rounds), 0 otherwise.
    pub copy: u8,
}

/// One knob of a run: the socket, wait, mode and placement knobs every
/// run has, in the order their values nest, then the run's sysctls (by
/// index into its list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Knob {
    Nodelay,
    Wait,
    Mode,
    Placement,
    Sndbuf,
    Rcvbuf,
    BusyPoll,
    Trace,
    Sysctl(usize),
}

/// The knobs every run has, in the order their values nest.
pub const KNOBS: [Knob; 8] = [
    Knob::Nodelay,
    Knob::Wait,
    Knob::Mode,
    Knob::Placement,
    Knob::Sndbuf,
    Knob::Rcvbuf,
    Knob::BusyPoll,
    Knob::Trace,
];

impl Knob {
    /// Its name as on the command line (`nodelay`, `busy-poll`), or the
    /// sysctl's label.
    pub fn name(self, sysctls: &[Sysctl]) -> String {
        match self {
            Knob::Nodelay => "nodelay".into(),
            Knob::Wait => "wait".into(),
            Knob::Mode => "mode".into(),
            Knob::Placement => "placement".into(),
            Knob::Sndbuf => "sndbuf".into(),
            Knob::Rcvbuf => "rcvbuf".into(),
            Knob::BusyPoll => "busy-poll".into(),
            Knob::Trace => "trace".into(),
            Knob::Sysctl(i) => sysctls[i].knob().to_string(),
        }
    }
}

impl Knobs {
    /// The value of knob `k`, as written on the command line (`on`,
    /// `spin`, `process`, `0/1`, `64K`; a sysctl's value as the kernel
    /// holds it, spaces as `_`).
    pub fn value(&self, k: Knob, sysctls: &[Sysctl]) -> String {
        match k {
            Knob::Nodelay => if self.nodelay { "on" } else { "off" }.to_string(),
            Knob::Wait => format!("{:?}", self.wait).to_lowercase(),
            Knob::Mode => format!("{:?}", self.mode).to_lowercase(),
            Knob::Placement => self
                .placement
                .map_or_else(String::new, |(s, c)| format!("{s}/{c}")),
            Knob::Sndbuf => self.sndbuf.map_or_else(String::new, size_label),
            Knob::Rcvbuf => self.rcvbuf.map_or_else(String::new, size_label),
            Knob::BusyPoll => self.busy_poll.map_or_else(String::new, |us| us.to_string()),
            Knob::Trace => format!("{:?}", self.trace).to_lowercase(),
            // One word: whitespace inside a value (tcp_rmem's three
            // numbers) becomes `_`, so labels split on spaces.
            Knob::Sysctl(i) => sysctls[i].values[usize::from(self.sysctl[i])]
                .split_whitespace()
                .collect::<Vec<_>>()
                .join("_"),
        }
    }

    /// Every knob of a run: [`KNOBS`], then its sysctls.
    pub fn names(sysctls: &[Sysctl]) -> Vec<Knob> {
        KNOBS
            .into_iter()
            .chain((0..sysctls.len()).map(Knob::Sysctl))
            .collect()
    }

    /// The knobs that differ between `self` and `other` (the A/A copy aside).
    pub fn differences(&self, other: &Knobs, sysctls: &[Sysctl]) -> Vec<Knob> {
        Self::names(sysctls)
            .into_iter()
            .filter(|&k| self.value(k, sysctls) != other.value(k, sysctls))
            .collect()
    }

    /// `nodelay=off wait=spin`: the knobs where `self` differs from
    /// `base`, and `A/A` for a control copy; empty for the baseline.
    pub fn label(&self, base: &Knobs, sysctls: &[Sysctl]) -> String {
        let mut parts: Vec<String> = self
            .differences(base, sysctls)
            .into_iter()
            .map(|k| format!("{}={}", k.name(sysctls), self.value(k, sysctls)))
            .collect();
        if self.copy > 0 {
            parts.push("A/A".into());
        }
        parts.join(" ")
    }
}

/// What the server does in a trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Job {
    /// Receive a request of `size` bytes, send a response of `response` bytes.
    Echo,
    /// Receive messages of `size` bytes and send nothing (one-way transfer).
    Sink,
    /// Accept a connection; on it, receive a request, send a response, close.
    Accept,
    /// Receive messages and, from a second thread, send them at the same
    /// time (`throughput --direction both`).
    Duplex,
    /// Answer requests on many connections from one event loop (`load`).
    Load,
}

/// How `load` spaces its requests in time.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Arrival {
    /// Evenly: one request every 1/rate seconds.
    Constant,
    /// A Poisson process: exponential gaps averaging 1/rate (independent clients).
    Poisson,
}

/// Highest `--rate`: one event loop cannot schedule sends closer than 1 µs apart.
pub const MAX_RATE: u64 = 1_000_000;

/// One `--rate` value: requests per second, or `sweep` (the rates are found
/// by stepping up to each case's knee).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateArg {
    PerSecond(u64),
    Sweep,
}

impl fmt::Display for RateArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateArg::PerSecond(r) => write!(f, "{r}"),
            RateArg::Sweep => f.write_str("sweep"),
        }
    }
}

/// Bytes at the front of every `load` message on a transport that keeps
/// message boundaries: the marker byte and the request's sequence number
/// (little-endian `u64`). A message is at least this long.
pub const LOAD_HEADER: usize = 9;

/// Size in the units people write: 64, 4K, 1M.
pub fn size_label(b: usize) -> String {
    match b {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{}M", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{}K", b >> 10),
        b => b.to_string(),
    }
}

/// Every warning's code (report::warnings writes them), for `--no-warn`.
pub const WARNING_CODES: [&str; 20] = [
    "debug-build",
    "too-few-rounds",
    "shared-cpu",
    "spin-shared-cpu",
    "pairs-share-cpus",
    "one-cpu",
    "governor",
    "virtualized",
    "clock-cost",
    "noisy-tail",
    "wide-ci",
    "saturated",
    "lost-requests",
    "time-wait-client",
    "loss",
    "idle-ended",
    "outlier-trial",
    "disturbed",
    "aa-control",
    "precision-short",
];
