//! Stage: workloads. A [`PinnedPair`] is a client end and a server pinned to
//! its CPU, in a thread or a forked process, plus a control channel (an
//! AF_UNIX socketpair, never timed) that starts and ends each trial. The
//! server has one of three jobs: echo (ping-pong, request/response), sink
//! (one-way transfer) or accept (a new connection per request). The same
//! server code runs in both modes. Knows no files or statistics beyond the
//! histogram it is handed.

pub mod barrier;
pub mod connect;
pub mod pingpong;
pub mod run;
pub mod stream;

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::unistd::Pid;

use crate::error::{Error, Result};
use crate::sys::process::{self, ThreadUsage};
use crate::transport::{
    self, AnyEndpoint, Buffers, Cause, Dialer, Fault, Listener, NameGuard, SocketDir,
    TransportKind, TransportOpts,
};
use crate::{affinity, cleanup, with_endpoint};

/// Where the echo server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A thread of this process (default).
    Thread,
    /// A forked child process, as nginx and gunicorn are separate processes.
    Process,
}

/// What the server does with each trial's `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Job {
    /// Receive a request of `size` bytes, send a response of `response` bytes, n times.
    Echo,
    /// Receive n messages of `size` bytes and send nothing (one-way transfer).
    Sink,
    /// Accept n connections; on each, receive a request, send a response, close.
    Accept,
    /// Receive n messages and, from a second thread, send n at the same time
    /// (`throughput --direction both`).
    Duplex,
}

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
            server_exit_after: None,
        }
    }
}

/// How long a datagram sink waits for more before it takes the transfer as
/// ended (a lost end marker must not cost the full `--timeout`).
pub const SINK_IDLE: Duration = Duration::from_millis(250);

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

/// Set when the watchdog killed servers that stopped making progress, so
/// the resulting error can say why the server died.
pub static WATCHDOG_FIRED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

// Control messages: eight little-endian u64 words. Client → server: [n, ..]
// runs a trial of n echoes, n = 0 ends the server. Server → client: a tag
// and its fields.
const HELLO: u64 = 1;
const READY: u64 = 2;
const DONE: u64 = 3;
const FAULT: u64 = 4;
type Msg = [u64; 8];

fn write_msg(s: &mut UnixStream, m: Msg) -> std::io::Result<()> {
    let mut b = [0u8; 64];
    for (chunk, w) in b.chunks_exact_mut(8).zip(m) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    s.write_all(&b)
}

fn read_msg(s: &mut UnixStream) -> std::io::Result<Msg> {
    let mut b = [0u8; 64];
    s.read_exact(&mut b)?;
    let mut m = [0u64; 8];
    for (w, chunk) in m.iter_mut().zip(b.chunks_exact(8)) {
        *w = u64::from_le_bytes(chunk.try_into().expect("8-byte chunk"));
    }
    Ok(m)
}

const CALLS: [&str; 9] = [
    "send",
    "recv",
    "read",
    "write",
    "accept",
    "connect",
    "socket",
    "setsockopt",
    "fcntl",
];

fn encode_fault(f: &Fault) -> Msg {
    let call = CALLS.iter().position(|c| *c == f.call).unwrap_or(0) as u64;
    let (code, a, b) = match &f.cause {
        Cause::Os(e) => (0, e.raw_os_error().unwrap_or(0) as u64, 0),
        Cause::TimedOut(t) => (1, t.as_nanos() as u64, 0),
        Cause::PeerClosed => (2, 0, 0),
        Cause::Length { got, want } => (3, *got as u64, *want as u64),
        Cause::Corrupt { offset } => (4, *offset as u64, 0),
    };
    [FAULT, call, code, a, b, 0, 0, 0]
}

fn decode_fault(m: &Msg) -> Fault {
    let cause = match m[2] {
        0 => Cause::Os(std::io::Error::from_raw_os_error(m[3] as i32)),
        1 => Cause::TimedOut(Duration::from_nanos(m[3])),
        2 => Cause::PeerClosed,
        3 => Cause::Length {
            got: m[3] as usize,
            want: m[4] as usize,
        },
        _ => Cause::Corrupt {
            offset: m[3] as usize,
        },
    };
    Fault {
        call: CALLS.get(m[1] as usize).copied().unwrap_or("send"),
        cause,
    }
}

fn usage_words(u: ThreadUsage) -> [u64; 4] {
    [
        u.user_ns as u64,
        u.sys_ns as u64,
        u.vcsw as u64,
        u.ivcsw as u64,
    ]
}

fn usage_from(w: &[u64]) -> ThreadUsage {
    ThreadUsage {
        user_ns: w[0] as i64,
        sys_ns: w[1] as i64,
        vcsw: w[2] as i64,
        ivcsw: w[3] as i64,
    }
}

/// The server's resource: a connected end (plus a second end on the same
/// socket for Duplex), or a listener (Accept).
#[derive(Debug)]
enum ServerEnd {
    Connected(AnyEndpoint, Option<AnyEndpoint>),
    Listening(Listener),
}

impl ServerEnd {
    fn raw_fds(&self) -> Vec<std::os::fd::RawFd> {
        match self {
            ServerEnd::Connected(ep, second) => {
                let mut fds = ep.raw_fds();
                fds.extend(second.iter().flat_map(AnyEndpoint::raw_fds));
                fds
            }
            ServerEnd::Listening(l) => vec![l.fd().as_raw_fd()],
        }
    }
}

/// The client's resource: a connected end, or a dialer plus the calls it made.
#[derive(Debug)]
pub enum ClientEnd {
    /// One connection for the whole run.
    Connected(AnyEndpoint),
    /// A new connection per request.
    Dialing { dialer: Dialer, calls: u64 },
}

impl ClientEnd {
    /// Data-path and connection system calls made so far.
    pub fn calls(&self) -> u64 {
        match self {
            ClientEnd::Connected(ep) => ep.calls(),
            ClientEnd::Dialing { calls, .. } => *calls,
        }
    }
}

/// What the server reports at the end of a trial.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerReport {
    /// Messages (Sink) or requests (Echo, Accept) the server handled.
    pub delivered: u64,
    /// `CLOCK_MONOTONIC` ns when the server finished (Sink: last message).
    pub end_ns: u64,
}

/// What one trial did on the server side.
struct ServerTrial {
    delivered: u64,
    end_ns: u64,
    calls: u64,
    /// CPU of a helper thread (Duplex's sender), added to the server's.
    helper: ThreadUsage,
}

/// Send `n` messages from a helper thread while the caller receives: the
/// helper inherits the caller's CPU pin. Returns the helper's result, its
/// CPU usage and its system calls.
fn send_beside<R>(
    tx: &mut AnyEndpoint,
    n: u64,
    buf: &mut [u8],
    verify: bool,
    stream: bool,
    receive: impl FnOnce() -> R,
) -> (R, Result<(), Fault>, ThreadUsage, u64) {
    std::thread::scope(|s| {
        let sender = s.spawn(move || {
            let beat = std::sync::atomic::AtomicU64::new(0);
            let (calls0, u0) = (tx.calls(), ThreadUsage::now().unwrap_or_default());
            let r = with_endpoint!(tx, e => stream::blast(e, n, buf, stream, verify, &mut crate::samples::Heartbeat::new(&beat)));
            (r, ThreadUsage::now().unwrap_or_default().since(u0), tx.calls() - calls0)
        });
        let received = receive();
        let (r, usage, calls) = sender
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        (received, r, usage, calls)
    })
}

/// One trial on the server.
fn serve_trial(
    end: &mut ServerEnd,
    spec: &PairSpec,
    n: u64,
    verify: bool,
    buf: &mut [u8],
    buf2: &mut [u8],
) -> Result<ServerTrial, Fault> {
    let stream = spec.kind.is_stream();
    match end {
        ServerEnd::Connected(ep, second) => {
            let calls0 = ep.calls();
            let mut helper = ThreadUsage::default();
            let mut helper_calls = 0;
            let (delivered, end_ns) = match (spec.job, second) {
                (Job::Duplex, Some(tx)) => {
                    let (got, sent, u, c) = send_beside(
                        tx,
                        n,
                        &mut buf2[..spec.size],
                        verify,
                        stream,
                        || with_endpoint!(ep, e => stream::sink(e, n, &mut buf[..spec.size], stream, verify)),
                    );
                    sent?;
                    (helper, helper_calls) = (u, c);
                    got?
                }
                (Job::Sink, _) => {
                    with_endpoint!(ep, e => stream::sink(e, n, &mut buf[..spec.size], stream, verify))?
                }
                _ => {
                    with_endpoint!(ep, e => pingpong::echo(e, n, buf, spec.size, spec.response))?;
                    (n, crate::clock::now_ns())
                }
            };
            Ok(ServerTrial {
                delivered,
                end_ns,
                calls: ep.calls() - calls0 + helper_calls,
                helper,
            })
        }
        ServerEnd::Listening(l) => {
            let calls = connect::serve(l, n, buf, spec.size, spec.response)?;
            Ok(ServerTrial {
                delivered: n,
                end_ns: crate::clock::now_ns(),
                calls,
                helper: ThreadUsage::default(),
            })
        }
    }
}

/// The server, in a thread or a forked child: pin, say hello, then run
/// trials until told to stop or the control channel closes. Returns the
/// exit status a child would have.
fn serve(end: &mut ServerEnd, ctrl: &mut UnixStream, spec: &PairSpec) -> i32 {
    let pinned = affinity::pin("server", spec.server_cpu).is_ok();
    if write_msg(ctrl, [HELLO, u64::from(!pinned), 0, 0, 0, 0, 0, 0]).is_err() || !pinned {
        return 1;
    }
    let mut buf = vec![0u8; spec.size.max(spec.response)];
    let mut buf2 = vec![
        0u8;
        if spec.job == Job::Duplex {
            spec.size
        } else {
            0
        }
    ];
    let mut left = spec.server_exit_after;
    loop {
        let (n, verify) = match read_msg(ctrl) {
            Ok(m) => (m[0], m[1] != 0),
            Err(_) => return 0,
        };
        if n == 0 {
            return 0;
        }
        let u0 = ThreadUsage::now().unwrap_or_default();
        if write_msg(ctrl, [READY, 0, 0, 0, 0, 0, 0, 0]).is_err() {
            return 1;
        }
        let n = left.map_or(n, |l| l.min(n));
        let served = serve_trial(end, spec, n, verify, &mut buf, &mut buf2);
        if let Some(l) = &mut left {
            *l -= n;
            if *l == 0 {
                return 1; // the injected death: no DONE, no FAULT
            }
        }
        match served {
            Ok(t) => {
                let mut u = ThreadUsage::now().unwrap_or_default().since(u0);
                u.add(&t.helper);
                let [a, b, c, d] = usage_words(u);
                if write_msg(ctrl, [DONE, a, b, c, d, t.calls, t.delivered, t.end_ns]).is_err() {
                    return 1;
                }
            }
            Err(f) => {
                let _ = write_msg(ctrl, encode_fault(&f));
                return 1;
            }
        }
    }
}

#[derive(Debug)]
enum Server {
    Thread(Option<JoinHandle<()>>),
    Process(Pid),
}

/// A client end and its pinned server. The caller's thread is the client
/// (pin it first).
#[derive(Debug)]
pub struct PinnedPair {
    spec: PairSpec,
    client: ClientEnd,
    ctrl: UnixStream,
    server: Server,
    buffers: Buffers,
    tx: Vec<u8>,
    rx: Vec<u8>,
    seq: u8,
    /// Duplex: a second client end that receives while the first sends.
    client_rx: Option<AnyEndpoint>,
    _name: Option<NameGuard>,
}

impl PinnedPair {
    /// Connect (or listen, for [`Job::Accept`]) and start the server, pinned
    /// to `spec.server_cpu`. Path-bound AF_UNIX transports need `dir`.
    pub fn new(spec: PairSpec, dir: Option<&SocketDir>) -> Result<Self> {
        let setup_err = |op: &'static str, source| Error::Setup {
            op,
            target: "control socketpair".into(),
            transport: spec.kind.name(),
            size: spec.size,
            source,
        };
        let mut client_rx = None;
        let (client, server_end, buffers, name) = if spec.job == Job::Accept {
            let (listener, dialer, name) =
                transport::listen(spec.kind, spec.size, &spec.opts, dir)?;
            let buffers = crate::sys::socket::buffers(listener.fd())
                .map(|(s, r)| Buffers {
                    sndbuf_bytes: s,
                    rcvbuf_bytes: r,
                })
                .unwrap_or_default();
            (
                ClientEnd::Dialing { dialer, calls: 0 },
                ServerEnd::Listening(listener),
                buffers,
                Some(name),
            )
        } else {
            let mut conn = transport::connect_pair(spec.kind, spec.size, &spec.opts, dir)?;
            let duplex = spec.job == Job::Duplex;
            if matches!(spec.job, Job::Sink | Job::Duplex) && !spec.kind.is_stream() {
                conn.server
                    .set_recv_timeout(SINK_IDLE)
                    .map_err(|e| setup_err("setsockopt", e))?;
                if duplex {
                    conn.client
                        .set_recv_timeout(SINK_IDLE)
                        .map_err(|e| setup_err("setsockopt", e))?;
                }
            }
            let server_tx = if duplex {
                client_rx = Some(conn.client.try_clone().map_err(|e| setup_err("dup", e))?);
                Some(conn.server.try_clone().map_err(|e| setup_err("dup", e))?)
            } else {
                None
            };
            (
                ClientEnd::Connected(conn.client),
                ServerEnd::Connected(conn.server, server_tx),
                conn.buffers,
                None,
            )
        };
        let (ctrl, mut server_ctrl) = UnixStream::pair().map_err(|e| setup_err("socketpair", e))?;
        ctrl.set_read_timeout(Some(spec.opts.timeout))
            .map_err(|e| setup_err("setsockopt", e))?;
        let mut server_end = server_end;
        let server = match spec.mode {
            Mode::Thread => {
                let handle = std::thread::Builder::new()
                    .name(format!("server-{}", spec.kind))
                    .spawn(move || {
                        serve(&mut server_end, &mut server_ctrl, &spec);
                    })
                    .map_err(|e| setup_err("spawn", e))?;
                Server::Thread(Some(handle))
            }
            Mode::Process => {
                let mut keep = server_end.raw_fds();
                keep.push(server_ctrl.as_raw_fd());
                let pid = process::fork_child(&keep, move || {
                    serve(&mut server_end, &mut server_ctrl, &spec)
                })
                .map_err(|e| setup_err("fork", e))?;
                cleanup::add_child(pid);
                Server::Process(pid)
            }
        };
        let mut pair = PinnedPair {
            spec,
            client,
            ctrl,
            server,
            buffers,
            tx: vec![0u8; spec.size],
            rx: vec![0u8; spec.response],
            seq: 0,
            client_rx,
            _name: name,
        };
        let hello = pair.reply(HELLO)?;
        if hello[1] != 0 {
            return Err(Error::Pin {
                role: "server",
                cpu: spec.server_cpu,
                reason: format!(
                    "the server could not pin itself (allowed CPUs: {})",
                    affinity::format_list(&affinity::available())
                ),
            });
        }
        Ok(pair)
    }

    /// What this pair is.
    pub fn spec(&self) -> &PairSpec {
        &self.spec
    }

    /// Socket buffer sizes in force on the client end (the listener's for Accept).
    pub fn buffers(&self) -> Buffers {
        self.buffers
    }

    /// The TCP port the server listens on (Accept over TCP), for TIME_WAIT accounting.
    pub fn listen_port(&self) -> Option<u16> {
        match &self.client {
            ClientEnd::Dialing { dialer, .. } => dialer.addr().port(),
            ClientEnd::Connected(_) => None,
        }
    }

    /// One trial: tell the server to handle `n` messages, meet it at the
    /// barrier (its READY), run `body` on the client end, and collect both
    /// sides' CPU accounting and the server's report.
    pub fn trial<R>(
        &mut self,
        n: u64,
        verify: bool,
        body: impl FnOnce(&mut ClientEnd, &mut [u8], &mut [u8], &mut u8) -> Result<R, Fault>,
    ) -> Result<(R, TrialUsage, ServerReport)> {
        write_msg(&mut self.ctrl, [n, u64::from(verify), 0, 0, 0, 0, 0, 0])
            .map_err(|e| self.ctrl_error("write", e))?;
        self.reply(READY)?;
        let calls0 = self.client.calls();
        let u0 = ThreadUsage::now().unwrap_or_default();
        let out = body(&mut self.client, &mut self.tx, &mut self.rx, &mut self.seq);
        let u1 = ThreadUsage::now().unwrap_or_default();
        let out = out.map_err(|f| self.run_error("client", f))?;
        let done = self.reply(DONE)?;
        let usage = TrialUsage {
            client: u1.since(u0),
            server: usage_from(&done[1..5]),
            client_calls: self.client.calls() - calls0,
            server_calls: done[5],
        };
        let report = ServerReport {
            delivered: done[6],
            end_ns: done[7],
        };
        Ok((out, usage, report))
    }

    /// Fail if the server has ended (a killed process, a thread that
    /// stopped): checked before every trial, so a dead server is noticed
    /// while the run works on other cases, not only at its own next trial.
    pub fn check_alive(&mut self) -> Result<()> {
        let ended = match &self.server {
            Server::Process(pid) if pid.as_raw() > 0 => process::try_reap(*pid).map(|how| {
                cleanup::remove_child(*pid);
                format!("the server process {how}")
            }),
            Server::Process(_) => Some("the server process has ended".to_string()),
            Server::Thread(Some(h)) if h.is_finished() => {
                Some("the server thread has ended".to_string())
            }
            Server::Thread(_) => None,
        };
        match ended {
            None => Ok(()),
            Some(cause) => {
                self.server = Server::Process(Pid::from_raw(0));
                Err(Error::Run {
                    side: "server",
                    call: "waitpid",
                    transport: self.spec.kind.name(),
                    size: self.spec.size,
                    cause,
                })
            }
        }
    }

    /// Wait for the server's `tag` reply; a FAULT or a dead server becomes an error.
    fn reply(&mut self, tag: u64) -> Result<Msg> {
        match read_msg(&mut self.ctrl) {
            Ok(m) if m[0] == tag => Ok(m),
            Ok(m) if m[0] == FAULT => Err(self.server_fault(&m)),
            Ok(m) => Err(self.ctrl_error(
                "read",
                std::io::Error::other(format!("unexpected control message {}", m[0])),
            )),
            Err(e) => Err(self.ctrl_error("read", e)),
        }
    }

    fn server_fault(&mut self, m: &Msg) -> Error {
        let f = decode_fault(m);
        Error::Run {
            side: "server",
            call: f.call,
            transport: self.spec.kind.name(),
            size: self.spec.size,
            cause: f.cause.to_string(),
        }
    }

    /// How the server ended, if it has (process mode), for error messages.
    fn server_state(&mut self) -> String {
        match self.server {
            Server::Process(pid) => {
                let deadline = Instant::now() + Duration::from_millis(200);
                loop {
                    if let Some(how) = process::try_reap(pid) {
                        cleanup::remove_child(pid);
                        self.server = Server::Process(Pid::from_raw(0));
                        let why = if WATCHDOG_FIRED.load(std::sync::atomic::Ordering::Relaxed) {
                            format!(
                                " by sockbench's watchdog after {} without progress",
                                humantime::format_duration(self.spec.opts.timeout)
                            )
                        } else {
                            String::new()
                        };
                        return format!("; server process {how}{why}");
                    }
                    if Instant::now() > deadline {
                        return String::new();
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            Server::Thread(Some(ref h)) => {
                let deadline = Instant::now() + Duration::from_millis(200);
                while !h.is_finished() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(5));
                }
                if h.is_finished() {
                    "; the server thread has ended".to_string()
                } else {
                    String::new()
                }
            }
            Server::Thread(None) => String::new(),
        }
    }

    fn ctrl_error(&mut self, call: &'static str, e: std::io::Error) -> Error {
        let what = match e.kind() {
            std::io::ErrorKind::UnexpectedEof => "the server is gone".to_string(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => format!(
                "the server did not answer within {}",
                humantime::format_duration(self.spec.opts.timeout)
            ),
            _ => e.to_string(),
        };
        let state = self.server_state();
        Error::Run {
            side: "control",
            call,
            transport: self.spec.kind.name(),
            size: self.spec.size,
            cause: format!("{what}{state}"),
        }
    }

    /// A client-side fault; if the server reported one, that is the root cause.
    fn run_error(&mut self, side: &'static str, f: Fault) -> Error {
        let _ = self.ctrl.set_read_timeout(Some(Duration::from_millis(500)));
        if let Ok(m) = read_msg(&mut self.ctrl)
            && m[0] == FAULT
        {
            return self.server_fault(&m);
        }
        let state = self.server_state();
        Error::Run {
            side,
            call: f.call,
            transport: self.spec.kind.name(),
            size: self.spec.size,
            cause: format!("{}{state}", f.cause),
        }
    }
}

impl Drop for PinnedPair {
    fn drop(&mut self) {
        let _ = write_msg(&mut self.ctrl, [0; 8]);
        if let ClientEnd::Connected(ep) = &self.client {
            ep.shutdown();
        }
        match &mut self.server {
            Server::Thread(h) => {
                if let Some(h) = h.take() {
                    let _ = h.join();
                }
            }
            Server::Process(pid) if pid.as_raw() > 0 => {
                let pid = *pid;
                let deadline = Instant::now() + Duration::from_secs(1);
                while process::try_reap(pid).is_none() {
                    if Instant::now() > deadline {
                        process::kill_child(pid);
                        process::reap(pid);
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                cleanup::remove_child(pid);
            }
            Server::Process(_) => {}
        }
    }
}
