//! Stage: workloads. The server of a pair, the same code in a thread or a
//! forked child: pin, say hello, then for every `Trial` command run the
//! pair's job until the client's end marker and report its accounting (or
//! the fault that ended it) on the control channel. Knows no statistics.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::PairSpec;
use super::control::{Command, Control, Reply, ServerReport};
use super::load::{self, LoadServer};
use super::pingpong;
use super::stream::{self, Sunk};
use crate::affinity;
use crate::samples::Heartbeat;
use crate::spec::Job;
use crate::sys::buf::PageBuf;
use crate::sys::process::ThreadUsage;
use crate::transport::{AnyEndpoint, Cause, Fault, Listener};
use crate::with_endpoint;

/// How long the server may take to hand a reply to the control channel
/// (it is never full: one reply per command).
const REPLY_WITHIN: Duration = Duration::from_secs(5);

/// The server's resource: a connected end (plus a second end on the same
/// socket for Duplex's sender), or a listener (Accept).
#[derive(Debug)]
pub(super) enum ServerEnd {
    KeptOpen(AnyEndpoint, Option<AnyEndpoint>),
    Listening(Listener),
    /// `load`: many connections, served from one event loop.
    Many(LoadServer),
}

impl ServerEnd {
    /// Descriptors a forked server keeps.
    pub(super) fn raw_fds(&self) -> Vec<std::os::fd::RawFd> {
        match self {
            ServerEnd::KeptOpen(ep, second) => {
                let mut fds = ep.raw_fds();
                fds.extend(second.iter().flat_map(AnyEndpoint::raw_fds));
                fds
            }
            ServerEnd::Listening(l) => vec![std::os::fd::AsRawFd::as_raw_fd(&l.fd())],
            ServerEnd::Many(m) => m.eps.iter().flat_map(AnyEndpoint::raw_fds).collect(),
        }
    }
}

/// The server: pin, say hello, then run trials until told to stop or the
/// control channel closes. Returns the exit status a child would have.
pub(super) fn serve(end: &mut ServerEnd, ctrl: &mut Control, spec: &PairSpec) -> i32 {
    let pinned = affinity::pin("server", spec.server_cpu).is_ok();
    if ctrl
        .send_reply(
            &Reply::Hello {
                pinned,
                tid: nix::unistd::gettid().as_raw() as u32,
            },
            REPLY_WITHIN,
        )
        .is_err()
        || !pinned
    {
        return 1;
    }
    let mut buf = PageBuf::zeroed(spec.buffer_len());
    // Duplex: the sender's messages; load: the responses' bytes.
    let mut buf2 = PageBuf::zeroed(match spec.job {
        Job::Duplex => spec.size,
        // Streams: bytes to write from; messages: one whole response.
        Job::Load => match load::Framing::of(spec.kind) {
            load::Framing::Stream => spec.response.min(load::CHUNK),
            load::Framing::Messages => spec.response.max(load::HEADER),
        },
        _ => 0,
    });
    let mut left = spec.server_exit_after.unwrap_or(u64::MAX);
    loop {
        let verify = match ctrl.recv_command() {
            Ok(Command::Trial { verify }) => verify,
            Ok(Command::Stop) | Err(_) => return 0,
        };
        let u0 = ThreadUsage::now().unwrap_or_default();
        if ctrl.send_reply(&Reply::Ready, REPLY_WITHIN).is_err() {
            return 1;
        }
        match serve_trial(end, spec, verify, &mut left, &mut buf, &mut buf2) {
            Ok(mut r) => {
                let mut u = ThreadUsage::now().unwrap_or_default().since(u0);
                u.add(&r.usage); // a helper thread's CPU
                r.usage = u;
                if ctrl.send_reply(&Reply::Done(r), REPLY_WITHIN).is_err() {
                    return 1;
                }
            }
            // The injected death: no reply at all, as a crash would give.
            Err(Fault {
                cause: Cause::Injected,
                ..
            }) => return 1,
            Err(f) => {
                let _ = ctrl.send_reply(&Reply::Fault(f), REPLY_WITHIN);
                return 1;
            }
        }
    }
}

/// One trial: the job until the end marker. `left`: operations before an
/// injected death, counted across trials (warm-up included).
fn serve_trial(
    end: &mut ServerEnd,
    spec: &PairSpec,
    verify: bool,
    left: &mut u64,
    buf: &mut [u8],
    buf2: &mut [u8],
) -> Result<ServerReport, Fault> {
    let stream = spec.kind.is_stream();
    let limit = *left;
    let (ep, second) = match end {
        ServerEnd::Listening(l) => {
            let (n, calls) = super::connect::serve(l, buf, spec.size, spec.response, limit)?;
            *left -= n.min(*left);
            return Ok(ServerReport {
                calls,
                delivered: n,
                end_ns: crate::clock::now_ns(),
                ..ServerReport::default()
            });
        }
        ServerEnd::Many(m) => {
            let answering = load::Answering {
                framing: load::Framing::of(spec.kind),
                size: spec.size,
                response: spec.response,
                limit,
                served: 0,
            };
            let (n, calls) = m.trial((buf, buf2), answering, spec.opts.timeout)?;
            *left -= n.min(*left);
            return Ok(ServerReport {
                calls,
                delivered: n,
                end_ns: crate::clock::now_ns(),
                ..ServerReport::default()
            });
        }
        ServerEnd::KeptOpen(ep, second) => (ep, second),
    };
    let calls0 = ep.calls();
    let mut report = ServerReport::default();
    let sunk = match (spec.job, second) {
        (Job::Duplex, Some(tx)) => {
            let (got, sent, usage, calls) = send_beside(
                tx,
                &mut buf2[..spec.size],
                verify,
                |stop| {
                    let got = with_endpoint!(ep, e => stream::sink(e, &mut buf[..spec.size], stream, verify, limit));
                    stop.store(true, Relaxed);
                    got
                },
            );
            (report.usage, report.sent) = (usage, sent?);
            report.calls += calls;
            got?
        }
        (Job::Sink, _) => {
            with_endpoint!(ep, e => stream::sink(e, &mut buf[..spec.size], stream, verify, limit))?
        }
        _ => Sunk {
            delivered: with_endpoint!(ep, e => pingpong::echo(e, buf, spec.size, spec.response, limit))?,
            end_ns: crate::clock::now_ns(),
            idle_ended: false,
        },
    };
    *left -= sunk.delivered.min(*left);
    report.delivered = sunk.delivered;
    report.end_ns = sunk.end_ns;
    report.idle_ended = sunk.idle_ended;
    report.calls += ep.calls() - calls0;
    Ok(report)
}

/// Send messages from a helper thread (which inherits the caller's CPU
/// pin) while `receive` runs on the caller's; the helper stops when
/// `receive` raises the flag it is handed, then sends its end marker.
/// Returns what `receive` returned, the messages sent (or the send's
/// fault), and the helper's CPU and system calls.
fn send_beside<R>(
    tx: &mut AnyEndpoint,
    buf: &mut [u8],
    verify: bool,
    receive: impl FnOnce(&AtomicBool) -> R,
) -> (R, Result<u64, Fault>, ThreadUsage, u64) {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let sender = s.spawn(|| {
            let idle = AtomicU64::new(0);
            let (calls0, u0) = (tx.calls(), ThreadUsage::now().unwrap_or_default());
            let r = with_endpoint!(tx, e => stream::blast(e, buf, verify, &mut Heartbeat::new(&idle), |_| !stop.load(Relaxed)));
            (
                r,
                ThreadUsage::now().unwrap_or_default().since(u0),
                tx.calls() - calls0,
            )
        });
        let received = receive(&stop);
        stop.store(true, Relaxed); // also when `receive` failed
        let (r, usage, calls) = sender
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        (received, r, usage, calls)
    })
}
