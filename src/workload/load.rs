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

use super::{END, Fleet, PinnedPair, SINK_IDLE, Span, Stop, TrialUsage};
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

/// How requests and responses are framed on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// A byte stream: requests and responses are counted in bytes and
    /// answered in order, so the oldest request is the one answered.
    Stream,
    /// One message per request and per response (udp4, uds-dgram,
    /// uds-seqpacket): each carries its request's sequence number after the
    /// marker byte, so a response finds its request whatever was lost or
    /// reordered, and a request never answered is counted lost.
    Messages,
}

impl Framing {
    /// How `kind` frames requests: messages where it keeps boundaries.
    pub fn of(kind: crate::spec::TransportKind) -> Self {
        if kind.is_stream() {
            Framing::Stream
        } else {
            Framing::Messages
        }
    }
}

/// Bytes at the front of a message: the marker ([`DATA`](super::DATA) or
/// [`END`]) and the request's sequence number (little-endian `u64`).
pub use crate::spec::LOAD_HEADER as HEADER;

/// Requests on one connection, by sequence number: their intended and
/// actual send times, in a table of `cap` slots (sequence modulo `cap`).
/// Sequence numbers go on rising across trials, so a late answer to a
/// request of an earlier trial never matches one of this trial.
#[derive(Debug)]
struct Books {
    intended: Box<[u64]>,
    sent: Box<[u64]>,
    /// Messages: the sequence number + 1 of the request in each slot while
    /// it is unanswered, 0 once answered or counted lost.
    open: Box<[u64]>,
    /// The next request's sequence number.
    next: u64,
    /// Streams: the oldest unanswered request (answers come in order).
    oldest: u64,
}

impl Books {
    fn new(cap: usize) -> Self {
        Self {
            intended: vec![0; cap].into_boxed_slice(),
            sent: vec![0; cap].into_boxed_slice(),
            open: vec![0; cap].into_boxed_slice(),
            next: 0,
            oldest: 0,
        }
    }

    #[inline]
    fn slot(&self, seq: u64) -> usize {
        (seq % self.intended.len() as u64) as usize
    }

    /// Book the next request of a stream; false when `cap` are unanswered.
    #[inline]
    fn push_stream(&mut self, intended: u64, sent: u64) -> bool {
        if self.next - self.oldest == self.intended.len() as u64 {
            return false;
        }
        let at = self.slot(self.next);
        (self.intended[at], self.sent[at]) = (intended, sent);
        self.next += 1;
        true
    }

    /// The oldest unanswered request of a stream: (intended, sent).
    #[inline]
    fn pop_stream(&mut self) -> (u64, u64) {
        let at = self.slot(self.oldest);
        self.oldest += 1;
        (self.intended[at], self.sent[at])
    }

    /// Book the next message request, returning its sequence number and
    /// whether it displaced a request `cap` older that was never answered
    /// (that one is lost).
    #[inline]
    fn push_message(&mut self, intended: u64, sent: u64) -> (u64, bool) {
        let seq = self.next;
        let at = self.slot(seq);
        let displaced = self.open[at] != 0;
        (self.intended[at], self.sent[at], self.open[at]) = (intended, sent, seq + 1);
        self.next += 1;
        (seq, displaced)
    }

    /// The request a message response names, if it is still unanswered.
    #[inline]
    fn answer(&mut self, seq: u64) -> Option<(u64, u64)> {
        let at = self.slot(seq);
        if self.open[at] != seq.wrapping_add(1) {
            return None; // answered, counted lost, or of an earlier trial
        }
        self.open[at] = 0;
        Some((self.intended[at], self.sent[at]))
    }

    /// Forget every request (between trials: nothing is in flight, or what
    /// is was counted lost).
    fn clear(&mut self) {
        self.open.fill(0);
        self.oldest = self.next;
    }
}

/// One client connection's state.
#[derive(Debug)]
struct ClientConn {
    books: Books,
    /// Streams: request bytes not yet accepted by the kernel. Messages:
    /// requests booked but not yet sent (the newest `to_send`).
    to_send: usize,
    /// Streams: bytes of the oldest response received so far.
    got: usize,
    /// Watching for writable (the kernel refused a request or part of one).
    want_out: bool,
    /// Messages: the sequence number of this trial's end marker, and
    /// whether the server has acknowledged it.
    end_seq: u64,
    ended: bool,
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
    /// For `connections` connections carrying `size`-byte requests and
    /// `response`-byte responses.
    pub fn new(connections: usize, size: usize, response: usize) -> Self {
        let per = (MAX_IN_FLIGHT / connections.max(1)).max(64);
        Self {
            conns: (0..connections)
                .map(|_| ClientConn {
                    books: Books::new(per),
                    to_send: 0,
                    got: 0,
                    want_out: false,
                    end_seq: 0,
                    ended: false,
                })
                .collect(),
            events: vec![epoll::empty_event(); connections.max(1)],
            // A message is read whole: room for the largest response.
            rx: PageBuf::zeroed(response.max(CHUNK)),
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
    /// Messages: requests never answered (no response within [`SINK_IDLE`]
    /// of the last send or response, or none before `MAX_IN_FLIGHT` later
    /// requests on all connections). Always 0 on a stream.
    pub lost: u64,
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
    pub framing: Framing,
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

/// Watch `fd` for writable too, or no longer, as `want` says.
#[inline]
fn watch_out(
    fd: BorrowedFd<'_>,
    token: u64,
    ep: &Epoll,
    want: bool,
    want_out: &mut bool,
) -> Result<(), Fault> {
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

/// Hand a stream's unsent bytes to the kernel, as far as it takes them;
/// watch for writable while it does not.
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
    watch_out(fd, token, ep, *to_send > 0, want_out)
}

/// Write a message's header: `marker` and the sequence number `seq`.
#[inline]
fn header(msg: &mut [u8], marker: u8, seq: u64) {
    msg[0] = marker;
    msg[1..HEADER].copy_from_slice(&seq.to_le_bytes());
}

/// A message's sequence number.
#[inline]
fn seq_of(msg: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&msg[1..HEADER]);
    u64::from_le_bytes(b)
}

/// One non-blocking receive into `buf`: `Some(bytes)`, or `None` when
/// nothing is there now; EINTR is retried (each try a call), end-of-file
/// is the peer gone.
#[inline]
fn recv_now(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    calls: &mut u64,
    timeout: Duration,
) -> Result<Option<usize>, Fault> {
    loop {
        *calls += 1;
        return match io::recv(fd, buf, libc::MSG_DONTWAIT) {
            Ok(0) => Err(Fault {
                call: "recv",
                cause: Cause::PeerClosed,
            }),
            Ok(n) => Ok(Some(n)),
            Err(e) if interrupted(&e) => continue,
            Err(e) if would_block(&e) => Ok(None),
            Err(e) => Err(Fault::from_io("recv", e, timeout)),
        };
    }
}

/// The marker and sequence number of the `n`-byte message at the front of
/// `msg`, which must be [`HEADER`] bytes for an end marker and `data`
/// bytes otherwise.
#[inline]
fn message(msg: &[u8], n: usize, data: usize) -> Result<(u8, u64), Fault> {
    let (marker, want) = match msg.first() {
        Some(&END) => (END, HEADER),
        _ => (super::DATA, data),
    };
    if n != want {
        return Err(Fault {
            call: "recv",
            cause: Cause::Length { got: n, want },
        });
    }
    Ok((marker, seq_of(msg)))
}

/// Send one message; `Ok(false)` when the kernel has no room for it now
/// (EAGAIN, or ENOBUFS from a full device queue).
#[inline]
fn send_message(
    fd: BorrowedFd<'_>,
    msg: &[u8],
    calls: &mut u64,
    timeout: Duration,
) -> Result<bool, Fault> {
    loop {
        *calls += 1;
        match io::send(fd, msg, libc::MSG_DONTWAIT) {
            Ok(_) => return Ok(true),
            Err(e) if interrupted(&e) => {}
            Err(e) if would_block(&e) || e.raw_os_error() == Some(libc::ENOBUFS) => {
                return Ok(false);
            }
            Err(e) => return Err(Fault::from_io("send", e, timeout)),
        }
    }
}

/// Send a connection's booked, unsent message requests (the newest
/// `to_send`), as far as the kernel takes them; watch for writable while
/// it does not.
#[inline]
#[allow(clippy::too_many_arguments)]
fn flush_messages(
    fd: BorrowedFd<'_>,
    token: u64,
    ep: &Epoll,
    c: &mut ClientConn,
    tx: &mut [u8],
    size: usize,
    calls: &mut u64,
    timeout: Duration,
) -> Result<(), Fault> {
    while c.to_send > 0 {
        header(tx, super::DATA, c.books.next - c.to_send as u64);
        if !send_message(fd, &tx[..size], calls, timeout)? {
            break;
        }
        c.to_send -= 1;
    }
    watch_out(fd, token, ep, c.to_send > 0, &mut c.want_out)
}

/// Hand a client connection's unsent requests to the kernel, in its framing.
#[inline]
fn send_owed(
    fd: BorrowedFd<'_>,
    token: u64,
    ep: &Epoll,
    c: &mut ClientConn,
    tx: &mut [u8],
    o: Offered,
    calls: &mut u64,
) -> Result<(), Fault> {
    match o.framing {
        Framing::Messages => flush_messages(fd, token, ep, c, tx, o.size, calls, o.timeout),
        Framing::Stream => flush(
            fd,
            token,
            ep,
            &mut c.to_send,
            &mut c.want_out,
            tx,
            calls,
            o.timeout,
        ),
    }
}

/// Read what `fd` has; every complete response pops its request and records
/// its latency from the intended time (`hist`) and from the send
/// (`service`). Returns the requests answered.
#[inline]
#[allow(clippy::too_many_arguments)]
fn receive(
    fd: BorrowedFd<'_>,
    framing: Framing,
    c: &mut ClientConn,
    rx: &mut [u8],
    response: usize,
    hist: &mut Histogram<u64>,
    service: &mut Histogram<u64>,
    beat: &mut Heartbeat<'_>,
    calls: &mut u64,
    timeout: Duration,
) -> Result<u64, Fault> {
    let mut answered = 0;
    let mut record = |intended: u64, sent: u64, now: u64| {
        hist.saturating_record(now.saturating_sub(intended).max(1));
        service.saturating_record(now.saturating_sub(sent).max(1));
        beat.tick();
    };
    loop {
        let Some(n) = recv_now(fd, rx, calls, timeout)? else {
            return Ok(answered);
        };
        let now = clock::now_ns();
        if framing == Framing::Messages {
            // One whole message per call.
            let (marker, seq) = message(rx, n, response)?;
            if marker == END {
                c.ended |= seq == c.end_seq;
            } else if let Some((intended, sent)) = c.books.answer(seq) {
                record(intended, sent, now);
                answered += 1;
            }
            continue;
        }
        let mut left = n;
        while left > 0 {
            let take = (response - c.got).min(left);
            c.got += take;
            left -= take;
            if c.got == response {
                c.got = 0;
                if c.books.oldest == c.books.next {
                    return Err(Fault {
                        call: "recv",
                        cause: Cause::Length {
                            got: response,
                            want: 0,
                        },
                    });
                }
                let (intended, sent) = c.books.pop_stream();
                record(intended, sent, now);
                answered += 1;
            }
        }
        if n < rx.len() {
            return Ok(answered);
        }
    }
}

/// Client side of one trial over `eps` (one per connection, each watched by
/// `ep` with its index as token): send on the schedule until `stop` (its
/// count of requests, or no intended time at or after its deadline), wait
/// for every response (messages: until none has come for [`SINK_IDLE`];
/// the rest are lost), then send each connection the end marker.
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
        c.books.clear();
        (c.to_send, c.got) = (0, 0);
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
    let messages = o.framing == Framing::Messages;
    let timeout_ns = o.timeout.as_nanos() as u64;
    // Messages: how long the client waits, after its last send, for an
    // answer before it counts what is unanswered as lost.
    let idle_ns = (SINK_IDLE.as_nanos() as u64).min(timeout_ns / 2);
    let start = clock::now_ns();
    let deadline = stop.time.map(|d| start.saturating_add(d.as_nanos() as u64));
    let mut sched = Schedule::new(start, o.rate, o.arrival, o.seed);
    let mut t = LoadTrial::default();
    let (mut in_flight, mut last_progress, mut last_response) = (0u64, start, start);
    let mut sends_ended: Option<u64> = None;
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
            let (c, fd) = (&mut conns[i], fd_of(&eps[i]));
            if messages {
                let (_, displaced) = c.books.push_message(intended, now);
                if displaced {
                    t.lost += 1;
                    in_flight -= 1;
                }
                c.to_send += 1;
            } else {
                if !c.books.push_stream(intended, now) {
                    return Err(Fault {
                        call: "send",
                        cause: Cause::Backlog(MAX_IN_FLIGHT),
                    });
                }
                c.to_send += o.size;
            }
            send_owed(fd, i as u64, ep, c, tx, o, &mut t.calls)?;
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
        if !sending && sends_ended.is_none() {
            sends_ended = Some(now);
        }
        // Messages: what no answer came for, after the last send and the
        // last answer, is lost.
        let give_up = sends_ended.map(|e| e.max(last_progress) + idle_ns);
        if messages && give_up.is_some_and(|g| now >= g) {
            t.lost += in_flight;
            for c in conns.iter_mut() {
                c.books.clear();
            }
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
            (Wait::Block, false) => {
                let until = (last_progress + timeout_ns).min(give_up.unwrap_or(u64::MAX));
                until.saturating_sub(now)
            }
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
            let (c, fd) = (&mut conns[i], fd_of(&eps[i]));
            if epoll::events(e) & epoll::OUT != 0 {
                send_owed(fd, i as u64, ep, c, tx, o, &mut t.calls)?;
            }
            if epoll::events(e) & !epoll::OUT != 0 {
                let got = receive(
                    fd,
                    o.framing,
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
    if messages {
        end_messages(eps, ep, conns, events, rx, tx, o, &mut t.calls)?;
    } else {
        for e in eps {
            send_end(fd_of(e), &mut tx[..o.size], o.timeout)?;
            t.calls += 1;
        }
    }
    Ok(t)
}

/// How often an unacknowledged end marker is sent again (a datagram, it
/// may have been dropped by a full receive queue).
const END_AGAIN: Duration = Duration::from_millis(20);

/// The end marker on every message connection: a header-only message
/// with a sequence number of its own, sent until the server acknowledges
/// it with the same, within `timeout`. Late answers that arrive meanwhile
/// are read and ignored (their requests were counted lost).
#[allow(clippy::too_many_arguments)]
fn end_messages(
    eps: &[AnyEndpoint],
    ep: &Epoll,
    conns: &mut [ClientConn],
    events: &mut [Event],
    rx: &mut [u8],
    tx: &mut [u8],
    o: Offered,
    calls: &mut u64,
) -> Result<(), Fault> {
    for c in conns.iter_mut() {
        c.end_seq = c.books.next;
        c.books.next += 1;
        c.ended = false;
    }
    let until = std::time::Instant::now() + o.timeout;
    let (mut none, mut service) = (new_histogram(), new_histogram());
    let idle = std::sync::atomic::AtomicU64::new(0);
    let mut beat = Heartbeat::new(&idle);
    let mut again = std::time::Instant::now();
    loop {
        if std::time::Instant::now() >= again {
            for (c, e) in conns.iter().zip(eps).filter(|(c, _)| !c.ended) {
                header(tx, END, c.end_seq);
                send_message(fd_of(e), &tx[..HEADER], calls, o.timeout)?;
            }
            tx[0] = super::DATA;
            again = std::time::Instant::now() + END_AGAIN;
        }
        if conns.iter().all(|c| c.ended) {
            return Ok(());
        }
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(Fault {
                call: "recv",
                cause: Cause::TimedOut(o.timeout),
            });
        }
        *calls += 1;
        let ready = match ep.wait(events, left.min(END_AGAIN)) {
            Ok(k) => k,
            Err(e) if interrupted(&e) => 0,
            Err(e) => {
                return Err(Fault {
                    call: "epoll_wait",
                    cause: Cause::Os(e),
                });
            }
        };
        for e in &events[..ready] {
            let i = epoll::token(e) as usize;
            if epoll::events(e) & !epoll::OUT != 0 {
                receive(
                    fd_of(&eps[i]),
                    Framing::Messages,
                    &mut conns[i],
                    rx,
                    o.response,
                    &mut none,
                    &mut service,
                    &mut beat,
                    calls,
                    o.timeout,
                )?;
            }
        }
    }
}

/// The end marker on a stream with nothing in flight: a request whose
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
    /// Streams: bytes of the current request received so far.
    got: usize,
    /// Streams: the current request is the end marker. Messages: the
    /// acknowledgement of this trial's end marker has yet to leave.
    ending: bool,
    /// The end marker has arrived.
    ended: bool,
    /// Streams: response bytes owed. Messages: 1 while the answer to
    /// `owed` (marker, sequence number) waits for room.
    owe: usize,
    owed: (u8, u64),
    want_out: bool,
    /// Messages: one past the sequence number of the last end marker
    /// taken, across trials: a repeat of it is acknowledged again and not
    /// taken for the end of a later trial.
    last_end: u64,
}

/// Server side of one trial: answer every `size`-byte request on any of
/// `eps` with `response` bytes, from one event loop, until every connection
/// has sent its end marker. `buf` receives; responses are written from
/// `resp` (its first [`HEADER`] bytes rewritten per message). Returns the
/// requests answered and the system calls made. `limit`: requests before
/// an injected death. It always sleeps in `epoll_wait` between events, as
/// nginx's and gunicorn's workers do (`--wait` is the load generator's
/// choice, not the server's).
#[allow(clippy::too_many_arguments)]
pub fn serve(
    eps: &[AnyEndpoint],
    ep: &Epoll,
    framing: Framing,
    st: &mut [ServerConn],
    events: &mut [Event],
    buf: &mut [u8],
    resp: &mut [u8],
    size: usize,
    response: usize,
    limit: u64,
    timeout: Duration,
) -> Result<(u64, u64), Fault> {
    for c in st.iter_mut() {
        *c = ServerConn {
            last_end: c.last_end,
            ..ServerConn::default()
        };
    }
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
            if framing == Framing::Messages {
                let fresh_end = answer_messages(
                    fd,
                    i as u64,
                    ep,
                    c,
                    buf,
                    resp,
                    size,
                    response,
                    limit,
                    &mut served,
                    &mut calls,
                    timeout,
                )?;
                ended += usize::from(fresh_end);
                continue;
            }
            if epoll::events(e) & !epoll::OUT != 0 && !c.ended {
                while let Some(n) = recv_now(fd, buf, &mut calls, timeout)? {
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
                &resp[..response.min(CHUNK)],
                &mut calls,
                timeout,
            )?;
        }
    }
    Ok((served, calls))
}

/// The server's turn on a message connection: send the answer that waited
/// for room, then answer each request (and acknowledge each end marker)
/// until none is left or the kernel has no room. Returns whether an end
/// marker of this trial arrived for the first time.
#[allow(clippy::too_many_arguments)]
fn answer_messages(
    fd: BorrowedFd<'_>,
    token: u64,
    ep: &Epoll,
    c: &mut ServerConn,
    buf: &mut [u8],
    resp: &mut [u8],
    size: usize,
    response: usize,
    limit: u64,
    served: &mut u64,
    calls: &mut u64,
    timeout: Duration,
) -> Result<bool, Fault> {
    let mut fresh_end = false;
    let reply = |resp: &mut [u8], (marker, seq): (u8, u64), calls: &mut u64| {
        header(resp, marker, seq);
        let len = if marker == END { HEADER } else { response };
        send_message(fd, &resp[..len], calls, timeout)
    };
    loop {
        if c.owe > 0 {
            if !reply(resp, c.owed, calls)? {
                break;
            }
            c.owe = 0;
            // The trial's end counts once its acknowledgement has left.
            fresh_end |= std::mem::take(&mut c.ending);
        }
        let Some(n) = recv_now(fd, buf, calls, timeout)? else {
            break;
        };
        let (marker, seq) = message(buf, n, size)?;
        if marker == END {
            if seq >= c.last_end && !c.ended {
                (c.last_end, c.ended, c.ending) = (seq + 1, true, true);
            }
        } else {
            if *served == limit {
                return Err(Fault::injected());
            }
            *served += 1;
        }
        (c.owe, c.owed) = (1, (marker, seq));
    }
    watch_out(fd, token, ep, c.owe > 0, &mut c.want_out)?;
    Ok(fresh_end)
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
            framing: Framing::of(spec.kind),
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
        framing: Framing,
        buf: &mut [u8],
        resp: &mut [u8],
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
            framing,
            &mut self.st,
            &mut self.events,
            buf,
            resp,
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
    fn a_full_stream_book_refuses_and_pops_in_order() {
        let mut b = Books::new(2);
        assert!(b.push_stream(1, 10) && b.push_stream(2, 20));
        assert!(!b.push_stream(3, 30));
        assert_eq!(b.pop_stream(), (1, 10));
        assert!(b.push_stream(3, 30));
        assert_eq!((b.pop_stream(), b.pop_stream()), ((2, 20), (3, 30)));
    }

    #[test]
    fn a_message_answer_finds_its_request_once_and_a_displaced_one_is_lost() {
        let mut b = Books::new(2);
        let (s0, lost0) = b.push_message(1, 10);
        let (s1, _) = b.push_message(2, 20);
        assert!(!lost0);
        // Out of order, and a repeat of an answer matches nothing.
        assert_eq!(b.answer(s1), Some((2, 20)));
        assert_eq!(b.answer(s1), None);
        // s0 is never answered: the request two later takes its slot.
        let (_, lost) = b.push_message(3, 30);
        assert!(lost, "s0 was unanswered when its slot was reused");
        let (s3, lost) = b.push_message(4, 40);
        assert!(!lost, "s1 was answered");
        assert_eq!(b.answer(s0), None, "a late answer to a lost request");
        assert_eq!(b.answer(s3), Some((4, 40)));
        // Between trials every booking is forgotten; numbers go on rising.
        b.clear();
        assert_eq!(b.answer(s3 - 1), None);
        assert_eq!(b.push_message(5, 50).0, s3 + 1);
    }
}
