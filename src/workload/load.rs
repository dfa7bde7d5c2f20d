//! Stage: timed loop. Open-loop load (`sockbench load`): requests leave on
//! a fixed schedule at `--rate` per second, spread round-robin over C
//! connections, whatever the responses do, and each is timed from its
//! *intended* send time to the end of its response, so a stalled server
//! shows as every request that waited for it (no coordinated omission).
//! Client and server each run one pinned event loop (epoll, non-blocking
//! calls with `MSG_DONTWAIT`), as nginx's and gunicorn's workers do: the one
//! place sockbench leaves blocking calls, because one thread must keep C
//! connections busy and keep the schedule while responses are outstanding.
//!
//! Nothing is allocated, formatted or locked inside the loops: every ring
//! and histogram is made before the trial. The sender sleeps in
//! `epoll_pwait2` until the next intended time (`--wait block`, timer slack
//! 1 ns) or polls without sleeping (`--wait spin`, as sockperf and wrk2
//! pace); the server always sleeps in `epoll_wait` between events, as real
//! servers do. How late each send left is recorded, as the workload's own
//! resolution.

use std::os::fd::BorrowedFd;
use std::time::Duration;

use hdrhistogram::Histogram;
use rand::{RngExt, SeedableRng};

use super::{END, Fleet, PinnedPair, Span, Stop, TrialUsage};
use crate::clock;
use crate::error::Result;
use crate::samples::{Heartbeat, new_histogram};
use crate::spec::{Arrival, Wait};
use crate::sys::buf::PageBuf;
use crate::sys::epoll::{self, Epoll, Event};
use crate::sys::io;
use crate::transport::{AnyEndpoint, Cause, Fault};

/// Requests in flight, over all connections, that the client keeps account
/// of; beyond, the server has fallen too far behind the schedule and the
/// trial fails (lower `--rate`).
pub const MAX_IN_FLIGHT: usize = 1 << 18;

/// A send that leaves more than this after its intended time is counted late.
pub const LATE_NS: u64 = 100_000;

/// Bytes read or written per call.
pub const CHUNK: usize = 64 << 10;

/// Intended send times: `rate` per second from `start`, evenly spaced
/// (constant) or with exponential gaps (Poisson arrivals, seeded).
#[derive(Debug)]
pub struct Schedule {
    start: u64,
    rate: u64,
    arrival: Arrival,
    i: u64,
    next: u64,
    rng: rand::rngs::SmallRng,
}

impl Schedule {
    /// The schedule of a trial starting at `start` (ns).
    pub fn new(start: u64, rate: u64, arrival: Arrival, seed: u64) -> Self {
        Self {
            start,
            rate: rate.max(1),
            arrival,
            i: 0,
            next: start,
            rng: rand::rngs::SmallRng::seed_from_u64(seed),
        }
    }

    /// When the next request is due (ns).
    #[inline]
    pub fn next(&self) -> u64 {
        self.next
    }

    /// Move to the request after it.
    #[inline]
    pub fn advance(&mut self) {
        self.i += 1;
        self.next = match self.arrival {
            // From the start each time, so rounding never drifts.
            Arrival::Constant => {
                self.start + (u128::from(self.i) * 1_000_000_000 / u128::from(self.rate)) as u64
            }
            Arrival::Poisson => {
                let u: f64 = self.rng.random();
                let gap = -(1.0 - u).ln() * 1e9 / self.rate as f64;
                self.next + gap as u64
            }
        };
    }
}

/// Requests in flight on one connection: their intended and actual send
/// times, oldest first (responses come back in order on a stream).
#[derive(Debug)]
struct Ring {
    intended: Box<[u64]>,
    sent: Box<[u64]>,
    head: usize,
    len: usize,
}

impl Ring {
    fn new(cap: usize) -> Self {
        Self {
            intended: vec![0; cap].into_boxed_slice(),
            sent: vec![0; cap].into_boxed_slice(),
            head: 0,
            len: 0,
        }
    }

    #[inline]
    fn push(&mut self, intended: u64, sent: u64) -> bool {
        let cap = self.intended.len();
        if self.len == cap {
            return false;
        }
        let at = (self.head + self.len) % cap;
        self.intended[at] = intended;
        self.sent[at] = sent;
        self.len += 1;
        true
    }

    #[inline]
    fn pop(&mut self) -> (u64, u64) {
        let at = self.head;
        self.head = (self.head + 1) % self.intended.len();
        self.len -= 1;
        (self.intended[at], self.sent[at])
    }
}

/// One client connection's state.
#[derive(Debug)]
struct ClientConn {
    ring: Ring,
    /// Request bytes not yet accepted by the kernel.
    to_send: usize,
    /// Bytes of the oldest response received so far.
    got: usize,
    /// Watching for writable (the kernel refused part of a request).
    want_out: bool,
}

/// The client's state, allocated once per pair, before any timing.
#[derive(Debug)]
pub struct LoadScratch {
    conns: Vec<ClientConn>,
    events: Vec<Event>,
    rx: PageBuf,
    tx: PageBuf,
    /// Service time of every request: its actual send to its response.
    pub service: Histogram<u64>,
    /// How late every send left after its intended time.
    pub lateness: Histogram<u64>,
}

impl LoadScratch {
    /// For `connections` connections carrying `size`-byte requests.
    pub fn new(connections: usize, size: usize) -> Self {
        let per = (MAX_IN_FLIGHT / connections.max(1)).max(64);
        Self {
            conns: (0..connections)
                .map(|_| ClientConn {
                    ring: Ring::new(per),
                    to_send: 0,
                    got: 0,
                    want_out: false,
                })
                .collect(),
            events: vec![epoll::empty_event(); connections.max(1)],
            rx: PageBuf::zeroed(CHUNK),
            tx: PageBuf::zeroed(size.max(CHUNK)),
            service: new_histogram(),
            lateness: new_histogram(),
        }
    }
}

/// What a client trial did, beside the latencies it recorded.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadTrial {
    /// Responses received (`ops`), from the first intended send to the last response.
    pub span: Span,
    /// Requests sent.
    pub sent: u64,
    /// Sends that left more than [`LATE_NS`] after their intended time.
    pub late: u64,
    /// Most requests in flight at once.
    pub max_in_flight: u64,
    /// System calls made (sends, receives, waits).
    pub calls: u64,
}

/// The parameters of a client trial.
#[derive(Debug, Clone, Copy)]
pub struct Offered {
    pub rate: u64,
    pub arrival: Arrival,
    pub wait: Wait,
    pub size: usize,
    pub response: usize,
    pub timeout: Duration,
    pub seed: u64,
}

/// The socket of a connection (load runs on sockets only; the plan refuses pipes).
#[inline]
pub(super) fn fd_of(e: &AnyEndpoint) -> BorrowedFd<'_> {
    e.socket_fd().expect("load runs on sockets")
}

fn would_block(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EAGAIN)
}

fn interrupted(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EINTR)
}

/// Hand a connection's unsent bytes to the kernel, as far as it takes
/// them; watch for writable while it does not.
#[inline]
#[allow(clippy::too_many_arguments)]
fn flush(
    fd: BorrowedFd<'_>,
    token: u64,
    ep: &Epoll,
    to_send: &mut usize,
    want_out: &mut bool,
    tx: &[u8],
    calls: &mut u64,
    timeout: Duration,
) -> Result<(), Fault> {
    while *to_send > 0 {
        *calls += 1;
        match io::send(fd, &tx[..(*to_send).min(tx.len())], libc::MSG_DONTWAIT) {
            Ok(n) => *to_send -= n,
            Err(e) if interrupted(&e) => {}
            Err(e) if would_block(&e) => break,
            Err(e) => return Err(Fault::from_io("send", e, timeout)),
        }
    }
    let want = *to_send > 0;
    if want != *want_out {
        let ev = if want {
            epoll::IN | epoll::OUT
        } else {
            epoll::IN
        };
        ep.modify(fd, token, ev).map_err(|e| Fault {
            call: "epoll_ctl",
            cause: Cause::Os(e),
        })?;
        *want_out = want;
    }
    Ok(())
}

/// Read what `fd` has; every complete response pops its request and records
/// its latency from the intended time (`hist`) and from the send (`service`).
#[inline]
#[allow(clippy::too_many_arguments)]
fn receive(
    fd: BorrowedFd<'_>,
    c: &mut ClientConn,
    rx: &mut [u8],
    response: usize,
    hist: &mut Histogram<u64>,
    service: &mut Histogram<u64>,
    beat: &mut Heartbeat<'_>,
    calls: &mut u64,
    timeout: Duration,
) -> Result<u64, Fault> {
    let mut done = 0;
    loop {
        *calls += 1;
        let n = match io::recv(fd, rx, libc::MSG_DONTWAIT) {
            Ok(0) => {
                return Err(Fault {
                    call: "recv",
                    cause: Cause::PeerClosed,
                });
            }
            Ok(n) => n,
            Err(e) if interrupted(&e) => continue,
            Err(e) if would_block(&e) => return Ok(done),
            Err(e) => return Err(Fault::from_io("recv", e, timeout)),
        };
        let now = clock::now_ns();
        let mut left = n;
        while left > 0 {
            let take = (response - c.got).min(left);
            c.got += take;
            left -= take;
            if c.got == response {
                c.got = 0;
                if c.ring.len == 0 {
                    return Err(Fault {
                        call: "recv",
                        cause: Cause::Length {
                            got: response,
                            want: 0,
                        },
                    });
                }
                let (intended, sent) = c.ring.pop();
                hist.saturating_record(now.saturating_sub(intended).max(1));
                service.saturating_record(now.saturating_sub(sent).max(1));
                done += 1;
                beat.tick();
            }
        }
        if n < rx.len() {
            return Ok(done);
        }
    }
}

/// Client side of one trial over `eps` (one per connection, each watched by
/// `ep` with its index as token): send on the schedule until `stop` (its
/// count of requests, or no intended time at or after its deadline), wait
/// for every response, then send each connection the end marker.
#[allow(clippy::too_many_arguments)]
pub fn drive(
    eps: &[AnyEndpoint],
    ep: &Epoll,
    s: &mut LoadScratch,
    o: Offered,
    stop: Stop,
    hist: &mut Histogram<u64>,
    beat: &mut Heartbeat<'_>,
) -> Result<LoadTrial, Fault> {
    let n = eps.len() as u64;
    for c in &mut s.conns {
        (c.ring.head, c.ring.len, c.to_send, c.got) = (0, 0, 0, 0);
    }
    s.service.reset();
    s.lateness.reset();
    let LoadScratch {
        conns,
        events,
        rx,
        tx,
        service,
        lateness,
    } = s;
    let start = clock::now_ns();
    let deadline = stop.time.map(|d| start.saturating_add(d.as_nanos() as u64));
    let mut sched = Schedule::new(start, o.rate, o.arrival, o.seed);
    let mut t = LoadTrial::default();
    let (mut in_flight, mut last_progress, mut last_response) = (0u64, start, start);
    let timeout_ns = o.timeout.as_nanos() as u64;
    loop {
        let mut now = clock::now_ns();
        // Every request that is due leaves now, late or not.
        while t.sent < stop.ops && deadline.is_none_or(|d| sched.next() < d) && sched.next() <= now
        {
            let i = (t.sent % n) as usize;
            let intended = sched.next();
            let late_by = now - intended;
            lateness.saturating_record(late_by.max(1));
            t.late += u64::from(late_by > LATE_NS);
            let c = &mut conns[i];
            if !c.ring.push(intended, now) {
                return Err(Fault {
                    call: "send",
                    cause: Cause::Backlog(MAX_IN_FLIGHT),
                });
            }
            c.to_send += o.size;
            flush(
                fd_of(&eps[i]),
                i as u64,
                ep,
                &mut c.to_send,
                &mut c.want_out,
                tx,
                &mut t.calls,
                o.timeout,
            )?;
            t.sent += 1;
            in_flight += 1;
            t.max_in_flight = t.max_in_flight.max(in_flight);
            sched.advance();
            now = clock::now_ns();
        }
        let sending = t.sent < stop.ops && deadline.is_none_or(|d| sched.next() < d);
        if !sending && in_flight == 0 {
            break;
        }
        if in_flight > 0 && now.saturating_sub(last_progress) > timeout_ns {
            return Err(Fault {
                call: "recv",
                cause: Cause::TimedOut(o.timeout),
            });
        }
        let sleep = match (o.wait, sending) {
            (Wait::Spin, _) => 0,
            (Wait::Block, true) => sched.next().saturating_sub(now),
            (Wait::Block, false) => timeout_ns.saturating_sub(now - last_progress),
        };
        t.calls += 1;
        let ready = match ep.wait(events, Duration::from_nanos(sleep)) {
            Ok(k) => k,
            Err(e) if interrupted(&e) => 0,
            Err(e) => {
                return Err(Fault {
                    call: "epoll_wait",
                    cause: Cause::Os(e),
                });
            }
        };
        if in_flight == 0 {
            last_progress = clock::now_ns(); // nothing owed: nothing is late
        }
        for e in &events[..ready] {
            let i = epoll::token(e) as usize;
            let c = &mut conns[i];
            if epoll::events(e) & epoll::OUT != 0 {
                flush(
                    fd_of(&eps[i]),
                    i as u64,
                    ep,
                    &mut c.to_send,
                    &mut c.want_out,
                    tx,
                    &mut t.calls,
                    o.timeout,
                )?;
            }
            if epoll::events(e) & !epoll::OUT != 0 {
                let got = receive(
                    fd_of(&eps[i]),
                    c,
                    rx,
                    o.response,
                    hist,
                    service,
                    beat,
                    &mut t.calls,
                    o.timeout,
                )?;
                if got > 0 {
                    in_flight -= got;
                    t.span.ops += got;
                    last_progress = clock::now_ns();
                    last_response = last_progress;
                }
            }
        }
    }
    t.span.start_ns = start;
    t.span.end_ns = last_response.max(start + 1);
    for e in eps {
        send_end(fd_of(e), &mut tx[..o.size], o.timeout)?;
        t.calls += 1;
    }
    Ok(t)
}

/// The end marker on a connection with nothing in flight: a request whose
/// first byte is [`END`], written whole within `timeout`.
fn send_end(fd: BorrowedFd<'_>, msg: &mut [u8], timeout: Duration) -> Result<(), Fault> {
    msg[0] = END;
    let mut off = 0;
    let until = std::time::Instant::now() + timeout;
    let r = loop {
        if off == msg.len() {
            break Ok(());
        }
        match io::send(fd, &msg[off..], libc::MSG_DONTWAIT) {
            Ok(n) => off += n,
            Err(e) if interrupted(&e) => {}
            Err(e) if would_block(&e) => {
                let left = until.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break Err(Fault {
                        call: "send",
                        cause: Cause::TimedOut(timeout),
                    });
                }
                let _ = io::poll_one(fd, libc::POLLOUT, left);
            }
            Err(e) => break Err(Fault::from_io("send", e, timeout)),
        }
    };
    msg[0] = super::DATA;
    r
}

/// One server connection's state.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerConn {
    /// Bytes of the current request received so far.
    got: usize,
    /// The current request is the end marker.
    ending: bool,
    /// The end marker has arrived.
    ended: bool,
    /// Response bytes owed.
    owe: usize,
    want_out: bool,
}

/// Server side of one trial: answer every `size`-byte request on any of
/// `eps` with `response` bytes, from one event loop, until every connection
/// has sent its end marker. `buf` receives; responses are written from
/// `zeros`. Returns the requests answered and the system calls made.
/// `limit`: requests before an injected death. It always sleeps in
/// `epoll_wait` between events, as nginx's and gunicorn's workers do
/// (`--wait` is the load generator's choice, not the server's).
#[allow(clippy::too_many_arguments)]
pub fn serve(
    eps: &[AnyEndpoint],
    ep: &Epoll,
    st: &mut [ServerConn],
    events: &mut [Event],
    buf: &mut [u8],
    zeros: &[u8],
    size: usize,
    response: usize,
    limit: u64,
    timeout: Duration,
) -> Result<(u64, u64), Fault> {
    st.fill(ServerConn::default());
    let (mut served, mut calls, mut ended) = (0u64, 0u64, 0usize);
    let mut quiet_since = std::time::Instant::now();
    while ended < eps.len() {
        calls += 1;
        let ready = match ep.wait(events, timeout) {
            Ok(k) => k,
            Err(e) if interrupted(&e) => 0,
            Err(e) => {
                return Err(Fault {
                    call: "epoll_wait",
                    cause: Cause::Os(e),
                });
            }
        };
        if ready == 0 {
            if quiet_since.elapsed() >= timeout {
                return Err(Fault {
                    call: "recv",
                    cause: Cause::TimedOut(timeout),
                });
            }
            continue;
        }
        quiet_since = std::time::Instant::now();
        for e in &events[..ready] {
            let i = epoll::token(e) as usize;
            let (fd, c) = (fd_of(&eps[i]), &mut st[i]);
            if epoll::events(e) & !epoll::OUT != 0 && !c.ended {
                loop {
                    calls += 1;
                    let n = match io::recv(fd, buf, libc::MSG_DONTWAIT) {
                        Ok(0) => {
                            return Err(Fault {
                                call: "recv",
                                cause: Cause::PeerClosed,
                            });
                        }
                        Ok(n) => n,
                        Err(e) if interrupted(&e) => continue,
                        Err(e) if would_block(&e) => break,
                        Err(e) => return Err(Fault::from_io("recv", e, timeout)),
                    };
                    let mut pos = 0;
                    while pos < n && !c.ended {
                        if c.got == 0 {
                            c.ending = buf[pos] == END;
                        }
                        let take = (size - c.got).min(n - pos);
                        c.got += take;
                        pos += take;
                        if c.got == size {
                            c.got = 0;
                            if c.ending {
                                c.ended = true;
                                ended += 1;
                            } else {
                                if served == limit {
                                    return Err(Fault::injected());
                                }
                                served += 1;
                                c.owe += response;
                            }
                        }
                    }
                    if n < buf.len() || c.ended {
                        break;
                    }
                }
            }
            flush(
                fd,
                i as u64,
                ep,
                &mut c.owe,
                &mut c.want_out,
                zeros,
                &mut calls,
                timeout,
            )?;
        }
    }
    Ok((served, calls))
}

impl PinnedPair<Fleet> {
    /// One trial at the pair's offered rate until `stop`: every latency from
    /// the intended send time into `hist`, the service times and the
    /// sender's lateness into the fleet's scratch (`load_scratch`).
    pub fn record_load(
        &mut self,
        stop: Stop,
        hist: &mut Histogram<u64>,
        beat: &mut Heartbeat<'_>,
        seed: u64,
    ) -> Result<(LoadTrial, TrialUsage)> {
        let spec = *self.spec();
        let o = Offered {
            rate: spec.rate,
            arrival: spec.arrival,
            wait: spec.opts.wait,
            size: spec.size,
            response: spec.response,
            timeout: spec.opts.timeout,
            seed,
        };
        // Wake at the intended time, not up to 50 µs after it.
        let _ = nix::sys::prctl::set_timerslack(1);
        let (t, usage, _) = self.trial(false, |f, _, _, _| {
            let t = drive(&f.eps, &f.epoll, &mut f.scratch, o, stop, hist, beat)?;
            f.calls += t.calls;
            Ok(t)
        })?;
        Ok((t, usage))
    }

    /// The service times and lateness of the last trial.
    pub fn load_scratch(&self) -> &LoadScratch {
        &self.client.scratch
    }
}

/// The server's end of a load pair: its connections and their event loop
/// (made in the server's own thread or process, at its first trial).
#[derive(Debug)]
pub struct LoadServer {
    pub(super) eps: Vec<AnyEndpoint>,
    ep: Option<Epoll>,
    st: Vec<ServerConn>,
    events: Vec<Event>,
}

impl LoadServer {
    pub(super) fn new(eps: Vec<AnyEndpoint>) -> Self {
        let n = eps.len();
        Self {
            eps,
            ep: None,
            st: vec![ServerConn::default(); n],
            events: vec![epoll::empty_event(); n.max(1)],
        }
    }

    /// One trial (see [`serve`]).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn trial(
        &mut self,
        buf: &mut [u8],
        zeros: &[u8],
        size: usize,
        response: usize,
        limit: u64,
        timeout: Duration,
    ) -> Result<(u64, u64), Fault> {
        if self.ep.is_none() {
            let ep = Epoll::new().map_err(|e| Fault {
                call: "epoll_create",
                cause: Cause::Os(e),
            })?;
            for (i, e) in self.eps.iter().enumerate() {
                ep.add(fd_of(e), i as u64, epoll::IN).map_err(|e| Fault {
                    call: "epoll_ctl",
                    cause: Cause::Os(e),
                })?;
            }
            self.ep = Some(ep);
        }
        let ep = self.ep.as_ref().expect("made above");
        serve(
            &self.eps,
            ep,
            &mut self.st,
            &mut self.events,
            buf,
            zeros,
            size,
            response,
            limit,
            timeout,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_constant_schedule_keeps_its_rate_without_drift() {
        let mut s = Schedule::new(1_000, 3, Arrival::Constant, 0);
        let mut times = vec![s.next()];
        for _ in 0..6 {
            s.advance();
            times.push(s.next());
        }
        // 1/3 s apart, computed from the start: no accumulated rounding.
        assert_eq!(
            times,
            [
                1_000,
                333_334_333,
                666_667_666,
                1_000_001_000,
                1_333_334_333,
                1_666_667_666,
                2_000_001_000
            ]
        );
    }

    #[test]
    fn poisson_gaps_average_one_over_the_rate() {
        let mut s = Schedule::new(0, 10_000, Arrival::Poisson, 7);
        let mut gaps = Vec::new();
        for _ in 0..100_000 {
            let before = s.next();
            s.advance();
            gaps.push((s.next() - before) as f64);
        }
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        assert!((mean - 100_000.0).abs() < 1_500.0, "mean gap {mean} ns");
        // Exponential: the standard deviation equals the mean.
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        assert!(
            (var.sqrt() / mean - 1.0).abs() < 0.03,
            "sd/mean {}",
            var.sqrt() / mean
        );
    }

    #[test]
    fn a_full_ring_refuses_and_pops_in_order() {
        let mut r = Ring::new(2);
        assert!(r.push(1, 10) && r.push(2, 20));
        assert!(!r.push(3, 30));
        assert_eq!(r.pop(), (1, 10));
        assert!(r.push(3, 30));
        assert_eq!((r.pop(), r.pop()), ((2, 20), (3, 30)));
    }
}
