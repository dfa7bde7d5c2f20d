//! Stage: workloads. A [`PinnedPair`] is one connected pair of endpoints with
//! an echo server pinned to its CPU, in a thread or a forked process, and a
//! control channel (an AF_UNIX socketpair, never timed) that starts and ends
//! each trial. The same server code runs in both modes. Knows no files or
//! statistics beyond the histogram it is handed.

pub mod pingpong;

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::unistd::Pid;

use crate::error::{Error, Result};
use crate::sys::process::{self, ThreadUsage};
use crate::transport::{
    self, AnyEndpoint, Buffers, Cause, Endpoint, Fault, SocketDir, TransportKind, TransportOpts,
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

/// What one pair is: transport, message size, options, server placement.
#[derive(Debug, Clone, Copy)]
pub struct PairSpec {
    pub kind: TransportKind,
    pub size: usize,
    pub opts: TransportOpts,
    pub mode: Mode,
    pub server_cpu: usize,
}

/// CPU accounting for one trial, both sides.
#[derive(Debug, Clone, Copy, Default)]
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
        let add = |a: &mut ThreadUsage, b: &ThreadUsage| {
            a.user_ns += b.user_ns;
            a.sys_ns += b.sys_ns;
            a.vcsw += b.vcsw;
            a.ivcsw += b.ivcsw;
        };
        add(&mut self.client, &o.client);
        add(&mut self.server, &o.server);
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

const CALLS: [&str; 4] = ["send", "recv", "read", "write"];

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

fn total_calls(ep: &impl Endpoint) -> u64 {
    let (s, r) = ep.calls();
    s + r
}

/// The echo server, in a thread or a forked child: pin, say hello, then run
/// trials until told to stop or the control channel closes. Returns the
/// exit status a child would have.
fn serve<E: Endpoint>(ep: &mut E, ctrl: &mut UnixStream, size: usize, cpu: usize) -> i32 {
    let pinned = affinity::pin("server", cpu).is_ok();
    if write_msg(ctrl, [HELLO, u64::from(!pinned), 0, 0, 0, 0, 0, 0]).is_err() || !pinned {
        return 1;
    }
    let mut buf = vec![0u8; size];
    loop {
        let n = match read_msg(ctrl) {
            Ok(m) => m[0],
            Err(_) => return 0,
        };
        if n == 0 {
            return 0;
        }
        let calls0 = total_calls(ep);
        let u0 = ThreadUsage::now().unwrap_or_default();
        if write_msg(ctrl, [READY, 0, 0, 0, 0, 0, 0, 0]).is_err() {
            return 1;
        }
        for _ in 0..n {
            if let Err(f) = ep.recv_msg(&mut buf).and_then(|()| ep.send_msg(&buf)) {
                let _ = write_msg(ctrl, encode_fault(&f));
                return 1;
            }
        }
        let u = ThreadUsage::now().unwrap_or_default().since(u0);
        let [a, b, c, d] = usage_words(u);
        let calls = total_calls(ep) - calls0;
        if write_msg(ctrl, [DONE, a, b, c, d, calls, 0, 0]).is_err() {
            return 1;
        }
    }
}

#[derive(Debug)]
enum Server {
    Thread(Option<JoinHandle<()>>),
    Process(Pid),
}

/// A connected, pinned client/server pair. The caller's thread is the client
/// (pin it first); the server echoes every message back.
#[derive(Debug)]
pub struct PinnedPair {
    spec: PairSpec,
    client: AnyEndpoint,
    ctrl: UnixStream,
    server: Server,
    buffers: Buffers,
    tx: Vec<u8>,
    rx: Vec<u8>,
    seq: u8,
}

impl PinnedPair {
    /// Connect a pair and start its server, pinned to `spec.server_cpu`.
    /// Path-bound AF_UNIX transports need `dir`.
    pub fn new(spec: PairSpec, dir: Option<&SocketDir>) -> Result<Self> {
        let conn = transport::connect_pair(spec.kind, spec.size, &spec.opts, dir)?;
        let setup_err = |op: &'static str, source| Error::Setup {
            op,
            target: "control socketpair".into(),
            transport: spec.kind.name(),
            size: spec.size,
            source,
        };
        let (ctrl, mut server_ctrl) = UnixStream::pair().map_err(|e| setup_err("socketpair", e))?;
        ctrl.set_read_timeout(Some(spec.opts.timeout))
            .map_err(|e| setup_err("setsockopt", e))?;
        let mut server_ep = conn.server;
        let (size, cpu) = (spec.size, spec.server_cpu);
        let server = match spec.mode {
            Mode::Thread => {
                let handle = std::thread::Builder::new()
                    .name(format!("server-{}", spec.kind))
                    .spawn(move || {
                        with_endpoint!(&mut server_ep, ep => serve(ep, &mut server_ctrl, size, cpu));
                    })
                    .map_err(|e| setup_err("spawn", e))?;
                Server::Thread(Some(handle))
            }
            Mode::Process => {
                let mut keep = server_ep.raw_fds();
                keep.push(server_ctrl.as_raw_fd());
                let pid = process::fork_child(&keep, move || {
                    with_endpoint!(&mut server_ep, ep => serve(ep, &mut server_ctrl, size, cpu))
                })
                .map_err(|e| setup_err("fork", e))?;
                cleanup::add_child(pid);
                Server::Process(pid)
            }
        };
        let mut pair = PinnedPair {
            spec,
            client: conn.client,
            ctrl,
            server,
            buffers: conn.buffers,
            tx: vec![0u8; spec.size],
            rx: vec![0u8; spec.size],
            seq: 0,
        };
        let hello = pair.reply(HELLO)?;
        if hello[1] != 0 {
            return Err(Error::Pin {
                role: "server",
                cpu,
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

    /// Socket buffer sizes in force on the client end.
    pub fn buffers(&self) -> Buffers {
        self.buffers
    }

    /// One trial: tell the server to echo `n` messages, meet it at the
    /// barrier (its READY), run `body` on the client end, and collect both
    /// sides' CPU accounting.
    pub fn trial<R>(
        &mut self,
        n: u64,
        body: impl FnOnce(&mut AnyEndpoint, &mut [u8], &mut [u8], &mut u8) -> Result<R, Fault>,
    ) -> Result<(R, TrialUsage)> {
        write_msg(&mut self.ctrl, [n, 0, 0, 0, 0, 0, 0, 0]).map_err(|e| self.ctrl_error(e))?;
        self.reply(READY)?;
        let calls0 = with_endpoint!(&self.client, ep => total_calls(ep));
        let u0 = ThreadUsage::now().unwrap_or_default();
        let out = body(&mut self.client, &mut self.tx, &mut self.rx, &mut self.seq);
        let u1 = ThreadUsage::now().unwrap_or_default();
        let out = out.map_err(|f| self.run_error("client", f))?;
        let done = self.reply(DONE)?;
        let usage = TrialUsage {
            client: u1.since(u0),
            server: usage_from(&done[1..5]),
            client_calls: with_endpoint!(&self.client, ep => total_calls(ep)) - calls0,
            server_calls: done[5],
        };
        Ok((out, usage))
    }

    /// Wait for the server's `tag` reply; a FAULT or a dead server becomes an error.
    fn reply(&mut self, tag: u64) -> Result<Msg> {
        match read_msg(&mut self.ctrl) {
            Ok(m) if m[0] == tag => Ok(m),
            Ok(m) if m[0] == FAULT => Err(self.server_fault(&m)),
            Ok(m) => Err(self.ctrl_error(std::io::Error::other(format!(
                "unexpected control message {}",
                m[0]
            )))),
            Err(e) => Err(self.ctrl_error(e)),
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
            Server::Thread(_) => String::new(),
        }
    }

    fn ctrl_error(&mut self, e: std::io::Error) -> Error {
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
            call: "read",
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
        self.client.shutdown();
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
