//! Stage: workloads. The life of a [`PinnedPair`]: make the transport, start
//! the server (a pinned thread, or a forked child), run trials over the
//! control channel, notice a server that died, turn faults into errors that
//! name the side and the call, and tear down within a bound. The client's
//! end is a type parameter: [`KeptOpen`] (one connection for the whole
//! run) or [`Dialing`] (a new connection per request), so each workload's
//! loop can only be run on the pair it needs.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::unistd::Pid;

use super::control::{Command, Control, Reply, ServerReport};
use super::load::{self, LoadScratch, LoadServer};
use super::server::{self, ServerEnd};
use super::{PairSpec, SINK_IDLE, TrialUsage};
use crate::error::{Error, Result};
use crate::spec::{Job, Mode};
use crate::sys::buf::PageBuf;
use crate::sys::epoll::Epoll;
use crate::sys::process::{self, ThreadUsage};
use crate::transport::{self, AnyEndpoint, Buffers, Dialer, Fault, NameGuard, SocketDir};
use crate::{affinity, cleanup};

/// How long an error may wait for the server's own account of it (its
/// fault report, or how its process ended) before it is reported as is.
const EXPLAIN_WITHIN: Duration = Duration::from_millis(500);
/// How long a server that was told to stop may take before it is killed
/// (process) or left to finish on its own (thread).
const STOP_WITHIN: Duration = Duration::from_millis(500);
/// How long the control channel may take to accept a command.
const SEND_WITHIN: Duration = Duration::from_secs(1);

/// The client end of a pair with one connection for the whole run.
#[derive(Debug)]
pub struct KeptOpen {
    pub(super) ep: AnyEndpoint,
    /// Duplex: a second end on the same socket that receives while `ep` sends.
    pub(super) rx: Option<AnyEndpoint>,
}

/// The client end of a pair that opens a new connection per request.
#[derive(Debug)]
pub struct Dialing {
    pub(super) dialer: Dialer,
    /// System calls made by the dialing loop so far.
    pub(super) calls: u64,
    /// The listener's socket file, unlinked when the pair goes.
    _name: NameGuard,
}

/// The client end of a `load` pair: C connections, the event loop that
/// watches them, and its state, all made before any timing.
#[derive(Debug)]
pub struct Fleet {
    pub(super) eps: Vec<AnyEndpoint>,
    pub(super) epoll: Epoll,
    pub(super) scratch: LoadScratch,
    /// System calls made by the load loop so far.
    pub(super) calls: u64,
}

/// What every client end offers the pair.
pub trait ClientEnd: std::fmt::Debug + Send {
    /// Data-path and connection system calls made so far.
    fn calls(&self) -> u64;
    /// Wake a server blocked on this end (end-of-file), at teardown.
    fn shutdown(&self) {}
}

impl ClientEnd for KeptOpen {
    fn calls(&self) -> u64 {
        self.ep.calls() + self.rx.as_ref().map_or(0, AnyEndpoint::calls)
    }
    fn shutdown(&self) {
        self.ep.shutdown();
    }
}

impl ClientEnd for Fleet {
    fn calls(&self) -> u64 {
        self.calls
    }
    fn shutdown(&self) {
        for e in &self.eps {
            e.shutdown();
        }
    }
}

impl ClientEnd for Dialing {
    fn calls(&self) -> u64 {
        self.calls
    }
}

/// Where the server runs, and whether it has ended.
#[derive(Debug)]
enum Proc {
    Thread(Option<JoinHandle<()>>),
    Process(Pid),
    /// The server process ended and was reaped; how it ended.
    Reaped(String),
}

/// A client end and its pinned server. The caller's thread is the client
/// (pin it first).
#[derive(Debug)]
pub struct PinnedPair<C: ClientEnd> {
    spec: PairSpec,
    pub(super) client: C,
    ctrl: Control,
    proc: Proc,
    /// A trial failed: teardown does not wait for the server.
    failed: bool,
    buffers: Buffers,
    tx: PageBuf,
    rx: PageBuf,
    seq: u8,
    /// The thread that serves (its kernel events are counted with the
    /// client's under `--trace count`).
    server_tid: u32,
}

impl PinnedPair<KeptOpen> {
    /// Connect and start the server (echo, sink or duplex), pinned to
    /// `spec.server_cpu`. Path-bound AF_UNIX transports need `dir`.
    pub fn connect(spec: PairSpec, dir: Option<&SocketDir>) -> Result<Self> {
        assert_ne!(
            spec.job,
            Job::Accept,
            "an accepting pair dials (PinnedPair::dial)"
        );
        let setup_err = setup_err(&spec);
        let mut conn = transport::connect_pair(spec.kind, spec.size, &spec.opts, dir)?;
        let transfer = matches!(spec.job, Job::Sink | Job::Duplex);
        if transfer && !spec.kind.is_stream() {
            // A lost end marker must not cost the full --timeout.
            conn.server
                .set_recv_timeout(SINK_IDLE)
                .map_err(|e| setup_err("setsockopt", e))?;
        }
        let (rx, server_tx) = if spec.job == Job::Duplex {
            let mut rx = conn.client.try_clone().map_err(|e| setup_err("dup", e))?;
            if !spec.kind.is_stream() {
                rx.set_recv_timeout(SINK_IDLE)
                    .map_err(|e| setup_err("setsockopt", e))?;
            }
            let tx = conn.server.try_clone().map_err(|e| setup_err("dup", e))?;
            (Some(rx), Some(tx))
        } else {
            (None, None)
        };
        let client = KeptOpen {
            ep: conn.client,
            rx,
        };
        Self::start(
            spec,
            client,
            ServerEnd::KeptOpen(conn.server, server_tx),
            conn.buffers,
        )
    }
}

impl PinnedPair<Dialing> {
    /// Listen and start the accepting server, pinned to `spec.server_cpu`.
    pub fn dial(spec: PairSpec, dir: Option<&SocketDir>) -> Result<Self> {
        assert_eq!(spec.job, Job::Accept, "only an accepting pair dials");
        let (listener, dialer, name) = transport::listen(spec.kind, spec.size, &spec.opts, dir)?;
        let buffers = crate::sys::socket::buffers(listener.fd())
            .map(|(s, r)| Buffers {
                sndbuf_bytes: s,
                rcvbuf_bytes: r,
            })
            .unwrap_or_default();
        let client = Dialing {
            dialer,
            calls: 0,
            _name: name,
        };
        Self::start(spec, client, ServerEnd::Listening(listener), buffers)
    }

    /// The TCP port the server listens on, for TIME_WAIT accounting.
    pub fn listen_port(&self) -> Option<u16> {
        self.client.dialer.addr().port()
    }
}

impl PinnedPair<Fleet> {
    /// Open `spec.connections` connections and start the server that
    /// answers them all from one event loop, pinned to `spec.server_cpu`.
    pub fn fleet(spec: PairSpec, dir: Option<&SocketDir>) -> Result<Self> {
        assert_eq!(spec.job, Job::Load, "only a load pair keeps a fleet");
        let setup_err = setup_err(&spec);
        let (mut client, mut server) = (Vec::new(), Vec::new());
        let mut buffers = Buffers::default();
        for _ in 0..spec.connections {
            let conn = transport::connect_pair(spec.kind, spec.size, &spec.opts, dir)?;
            buffers = conn.buffers;
            client.push(conn.client);
            server.push(conn.server);
        }
        let epoll = Epoll::new().map_err(|e| setup_err("epoll_create", e))?;
        for (i, e) in client.iter().enumerate() {
            epoll
                .add(load::fd_of(e), i as u64, crate::sys::epoll::IN)
                .map_err(|e| setup_err("epoll_ctl", e))?;
        }
        let fleet = Fleet {
            scratch: LoadScratch::new(client.len(), spec.size, spec.response),
            eps: client,
            epoll,
            calls: 0,
        };
        Self::start(
            spec,
            fleet,
            ServerEnd::Many(LoadServer::new(server)),
            buffers,
        )
    }
}

fn setup_err(spec: &PairSpec) -> impl Fn(&'static str, std::io::Error) -> Error {
    let (transport, size) = (spec.kind.name(), spec.size);
    move |op, source| Error::Setup {
        op,
        target: "control socketpair".into(),
        transport,
        size,
        source,
    }
}

impl<C: ClientEnd> PinnedPair<C> {
    fn start(
        spec: PairSpec,
        client: C,
        mut server_end: ServerEnd,
        buffers: Buffers,
    ) -> Result<Self> {
        let setup_err = setup_err(&spec);
        let (ctrl, mut server_ctrl) = Control::pair().map_err(|e| setup_err("socketpair", e))?;
        let proc = match spec.mode {
            Mode::Thread => {
                let handle = std::thread::Builder::new()
                    .name(format!("server-{}", spec.kind))
                    .spawn(move || {
                        server::serve(&mut server_end, &mut server_ctrl, &spec);
                    })
                    .map_err(|e| setup_err("spawn", e))?;
                Proc::Thread(Some(handle))
            }
            Mode::Process => {
                let mut keep = server_end.raw_fds();
                keep.push(server_ctrl.raw_fd());
                let pid = process::fork_child(&keep, "sb-server", move || {
                    server::serve(&mut server_end, &mut server_ctrl, &spec)
                })
                .map_err(|e| setup_err("fork", e))?;
                cleanup::add_child(pid);
                Proc::Process(pid)
            }
        };
        let mut pair = PinnedPair {
            spec,
            client,
            ctrl,
            proc,
            failed: false,
            buffers,
            tx: PageBuf::zeroed(spec.size),
            rx: PageBuf::zeroed(spec.response),
            seq: 0,
            server_tid: 0,
        };
        match pair.reply("hello")? {
            Reply::Hello { pinned: true, tid } => {
                pair.server_tid = tid;
                Ok(pair)
            }
            Reply::Hello { pinned: false, .. } => Err(Error::Pin {
                role: "server",
                cpu: spec.server_cpu,
                reason: format!(
                    "the server could not pin itself (allowed CPUs: {})",
                    affinity::format_list(&affinity::available())
                ),
            }),
            other => Err(pair.unexpected(other)),
        }
    }

    /// What this pair is.
    pub fn spec(&self) -> &PairSpec {
        &self.spec
    }

    /// Socket buffer sizes in force on the client end (the listener's for Accept).
    pub fn buffers(&self) -> Buffers {
        self.buffers
    }

    /// The thread that serves (a thread of this process, or a forked one).
    pub fn server_tid(&self) -> u32 {
        self.server_tid
    }

    /// One trial: tell the server to serve, meet it at the barrier (its
    /// READY), run `body` on the client end (which ends the trial with the
    /// end marker), and collect both sides' CPU accounting and the server's
    /// report.
    pub fn trial<R>(
        &mut self,
        verify: bool,
        body: impl FnOnce(&mut C, &mut [u8], &mut [u8], &mut u8) -> Result<R, Fault>,
    ) -> Result<(R, TrialUsage, ServerReport)> {
        let r = self.trial_inner(verify, body);
        self.failed |= r.is_err();
        r
    }

    fn trial_inner<R>(
        &mut self,
        verify: bool,
        body: impl FnOnce(&mut C, &mut [u8], &mut [u8], &mut u8) -> Result<R, Fault>,
    ) -> Result<(R, TrialUsage, ServerReport)> {
        self.ctrl
            .send_command(Command::Trial { verify }, SEND_WITHIN)
            .map_err(|e| self.ctrl_error("write", "the trial command", e))?;
        match self.reply("the server's ready")? {
            Reply::Ready => {}
            other => return Err(self.unexpected(other)),
        }
        let calls0 = self.client.calls();
        let u0 = ThreadUsage::now().unwrap_or_default();
        let out = body(&mut self.client, &mut self.tx, &mut self.rx, &mut self.seq);
        let u1 = ThreadUsage::now().unwrap_or_default();
        let out = out.map_err(|f| self.run_error(f))?;
        // The server may still be waiting out a datagram sink's idle limit.
        let report =
            match self.reply_within("the server's report", self.spec.opts.timeout + SINK_IDLE)? {
                Reply::Done(r) => r,
                other => return Err(self.unexpected(other)),
            };
        let usage = TrialUsage {
            client: u1.since(u0),
            server: report.usage,
            client_calls: self.client.calls() - calls0,
            server_calls: report.calls,
        };
        Ok((out, usage, report))
    }

    /// Fail if the server has ended (a killed process, a thread that
    /// stopped): checked before every trial, so a dead server is noticed
    /// while the run works on other cases, not only at its own next trial.
    pub fn check_alive(&mut self) -> Result<()> {
        match self.ended() {
            None => Ok(()),
            Some(cause) => {
                self.failed = true;
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

    /// How the server ended, if it has (a process is reaped here).
    fn ended(&mut self) -> Option<String> {
        match &self.proc {
            Proc::Process(pid) => {
                let pid = *pid;
                let how = process::try_reap(pid)?;
                cleanup::remove_child(pid);
                self.proc = Proc::Reaped(how);
                self.ended()
            }
            Proc::Reaped(how) => Some(format!("the server process {how}")),
            Proc::Thread(Some(h)) if h.is_finished() => {
                Some("the server thread has ended".to_string())
            }
            Proc::Thread(_) => None,
        }
    }

    /// The server's next reply; a fault or a dead server becomes an error.
    fn reply(&mut self, what: &'static str) -> Result<Reply> {
        self.reply_within(what, self.spec.opts.timeout)
    }

    /// The same, waiting at most `within`.
    fn reply_within(&mut self, what: &'static str, within: Duration) -> Result<Reply> {
        match self.ctrl.recv_reply(within) {
            Ok(Reply::Fault(f)) => Err(self.server_fault(f)),
            Ok(r) => Ok(r),
            Err(e) => Err(self.ctrl_error("read", what, e)),
        }
    }

    fn unexpected(&mut self, r: Reply) -> Error {
        self.ctrl_error(
            "read",
            "a reply",
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("control message out of turn: {r:?}"),
            ),
        )
    }

    fn server_fault(&mut self, f: Fault) -> Error {
        Error::Run {
            side: "server",
            call: f.call,
            transport: self.spec.kind.name(),
            size: self.spec.size,
            cause: f.cause.to_string(),
        }
    }

    /// How the server ended, if it has (within `until`), for error messages.
    fn server_state(&mut self, until: Instant) -> String {
        loop {
            if let Some(how) = self.ended() {
                return format!("; {how}");
            }
            if Instant::now() >= until {
                return String::new();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// A failed control-channel `call` while exchanging `what`.
    fn ctrl_error(&mut self, call: &'static str, what: &str, e: std::io::Error) -> Error {
        self.failed = true;
        let why = match e.kind() {
            std::io::ErrorKind::UnexpectedEof => "the server is gone".to_string(),
            std::io::ErrorKind::TimedOut => format!(
                "the server did not answer within {}",
                humantime::format_duration(self.spec.opts.timeout)
            ),
            _ => e.to_string(),
        };
        let state = self.server_state(Instant::now() + EXPLAIN_WITHIN);
        Error::Run {
            side: "control",
            call,
            transport: self.spec.kind.name(),
            size: self.spec.size,
            cause: format!("waiting for {what}: {why}{state}"),
        }
    }

    /// A client-side fault; if the server reported one, that is the root
    /// cause. Waits at most [`EXPLAIN_WITHIN`] for either account.
    fn run_error(&mut self, f: Fault) -> Error {
        self.failed = true;
        let until = Instant::now() + EXPLAIN_WITHIN;
        if let Ok(Reply::Fault(sf)) = self.ctrl.recv_reply(EXPLAIN_WITHIN) {
            return self.server_fault(sf);
        }
        let state = self.server_state(until);
        Error::Run {
            side: "client",
            call: f.call,
            transport: self.spec.kind.name(),
            size: self.spec.size,
            cause: format!("{}{state}", f.cause),
        }
    }
}

impl<C: ClientEnd> Drop for PinnedPair<C> {
    /// Tell the server to stop and wake it if it is blocked on the data
    /// path. A server that does not end within `STOP_WITHIN` (at once,
    /// after a failed trial) is killed (process) or left to end on its own
    /// timeout (thread), so teardown never outlasts that bound.
    fn drop(&mut self) {
        let _ = self
            .ctrl
            .send_command(Command::Stop, Duration::from_millis(10));
        self.client.shutdown();
        let within = if self.failed {
            Duration::ZERO
        } else {
            STOP_WITHIN
        };
        let closed = self.ctrl.wait_closed(within);
        match &mut self.proc {
            Proc::Thread(h) => {
                if let Some(h) = h.take()
                    && (closed || h.is_finished())
                {
                    let _ = h.join();
                } // else: detached; it ends at its own timeout
            }
            Proc::Process(pid) => {
                let pid = *pid;
                if !closed || process::try_reap(pid).is_none() {
                    if !closed {
                        process::kill_child(pid);
                    }
                    process::reap(pid);
                }
                cleanup::remove_child(pid);
            }
            Proc::Reaped(_) => {}
        }
    }
}

/// A pinned pair of the kind its job needs: kept open, dialing a new
/// connection per request, or a fleet of connections (`load`).
#[derive(Debug)]
pub(super) enum AnyPair {
    KeptOpen(PinnedPair<KeptOpen>),
    Dialing(PinnedPair<Dialing>),
    Fleet(PinnedPair<Fleet>),
}

impl AnyPair {
    pub(super) fn new(spec: PairSpec, dir: Option<&SocketDir>) -> Result<AnyPair> {
        Ok(match spec.job {
            Job::Accept => AnyPair::Dialing(PinnedPair::dial(spec, dir)?),
            Job::Load => AnyPair::Fleet(PinnedPair::fleet(spec, dir)?),
            _ => AnyPair::KeptOpen(PinnedPair::connect(spec, dir)?),
        })
    }

    pub(super) fn check_alive(&mut self) -> Result<()> {
        match self {
            AnyPair::KeptOpen(p) => p.check_alive(),
            AnyPair::Dialing(p) => p.check_alive(),
            AnyPair::Fleet(p) => p.check_alive(),
        }
    }

    pub(super) fn buffers(&self) -> Buffers {
        match self {
            AnyPair::KeptOpen(p) => p.buffers(),
            AnyPair::Dialing(p) => p.buffers(),
            AnyPair::Fleet(p) => p.buffers(),
        }
    }

    pub(super) fn server_tid(&self) -> u32 {
        match self {
            AnyPair::KeptOpen(p) => p.server_tid(),
            AnyPair::Dialing(p) => p.server_tid(),
            AnyPair::Fleet(p) => p.server_tid(),
        }
    }

    pub(super) fn listen_port(&self) -> Option<u16> {
        match self {
            AnyPair::KeptOpen(_) | AnyPair::Fleet(_) => None,
            AnyPair::Dialing(p) => p.listen_port(),
        }
    }
}
