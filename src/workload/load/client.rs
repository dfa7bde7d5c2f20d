//! Stage: timed loop (open-loop load). The client's event loop: requests
//! leave on the schedule, spread round-robin over the connections, whatever
//! the responses do; each response is timed from its request's intended
//! send time and from its actual one; then each connection gets the end
//! marker. Nothing is allocated, formatted or locked inside the loop.

use std::os::fd::BorrowedFd;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::event_loop::{Loop, fd_of, interrupted, would_block};
use super::framing::{Books, Framing, HEADER, header, message};
use super::schedule::Schedule;
use super::{CHUNK, LATE_NS, LoadTrial, MAX_IN_FLIGHT, Offered};
use crate::clock;
use crate::samples::{Heartbeat, new_histogram};
use crate::spec::Wait;
use crate::sys::buf::PageBuf;
use crate::sys::epoll::{self, Epoll, Event};
use crate::sys::io;
use crate::transport::{AnyEndpoint, Cause, Fault};
use crate::workload::{DATA, END, SINK_IDLE, Stop};

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

/// Where a response's latencies go: from the intended send (`hist`), from
/// the actual one (`service`), and a tick for whoever watches progress.
struct Record<'h, 'b> {
    hist: &'h mut Histogram<u64>,
    service: &'h mut Histogram<u64>,
    beat: &'h mut Heartbeat<'b>,
}

impl Record<'_, '_> {
    #[inline]
    fn answered(&mut self, intended: u64, sent: u64, now: u64) {
        self.hist
            .saturating_record(now.saturating_sub(intended).max(1));
        self.service
            .saturating_record(now.saturating_sub(sent).max(1));
        self.beat.tick();
    }
}

/// Send a connection's booked, unsent message requests (the newest
/// `to_send`), as far as the kernel takes them; watch for writable while
/// it does not.
#[inline]
fn flush_messages(
    lp: &mut Loop<'_>,
    (fd, token): (BorrowedFd<'_>, u64),
    c: &mut ClientConn,
    tx: &mut [u8],
    size: usize,
) -> Result<(), Fault> {
    while c.to_send > 0 {
        header(tx, DATA, c.books.next - c.to_send as u64);
        if !lp.send_message(fd, &tx[..size])? {
            break;
        }
        c.to_send -= 1;
    }
    lp.watch_out(fd, token, c.to_send > 0, &mut c.want_out)
}

/// Hand a client connection's unsent requests to the kernel, in its framing.
#[inline]
fn send_owed(
    lp: &mut Loop<'_>,
    conn: (BorrowedFd<'_>, u64),
    c: &mut ClientConn,
    tx: &mut [u8],
    o: Offered,
) -> Result<(), Fault> {
    match o.framing {
        Framing::Messages => flush_messages(lp, conn, c, tx, o.size),
        Framing::Stream => lp.flush(conn.0, conn.1, &mut c.to_send, &mut c.want_out, tx),
    }
}

/// Read what `fd` has; every complete response pops its request and is
/// recorded. Returns the requests answered.
#[inline]
fn receive(
    lp: &mut Loop<'_>,
    fd: BorrowedFd<'_>,
    (framing, response): (Framing, usize),
    c: &mut ClientConn,
    rx: &mut [u8],
    rec: &mut Record<'_, '_>,
) -> Result<u64, Fault> {
    let mut answered = 0;
    loop {
        let Some(n) = lp.recv_now(fd, rx)? else {
            return Ok(answered);
        };
        let now = clock::now_ns();
        if framing == Framing::Messages {
            // One whole message per call.
            let (marker, seq) = message(rx, n, response)?;
            if marker == END {
                c.ended |= seq == c.end_seq;
            } else if let Some((intended, sent)) = c.books.answer(seq) {
                rec.answered(intended, sent, now);
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
                rec.answered(intended, sent, now);
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
    let mut rec = Record {
        hist,
        service,
        beat,
    };
    let mut lp = Loop::new(ep, o.timeout);
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
            send_owed(&mut lp, (fd, i as u64), c, tx, o)?;
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
        let ready = lp.wait(events, Duration::from_nanos(sleep))?;
        if in_flight == 0 {
            last_progress = clock::now_ns(); // nothing owed: nothing is late
        }
        for e in &events[..ready] {
            let i = epoll::token(e) as usize;
            let (c, fd) = (&mut conns[i], fd_of(&eps[i]));
            if epoll::events(e) & epoll::OUT != 0 {
                send_owed(&mut lp, (fd, i as u64), c, tx, o)?;
            }
            if epoll::events(e) & !epoll::OUT != 0 {
                let got = receive(&mut lp, fd, (o.framing, o.response), c, rx, &mut rec)?;
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
        end_messages(eps, &mut lp, conns, events, rx, tx, o)?;
    } else {
        for e in eps {
            send_end(fd_of(e), &mut tx[..o.size], o.timeout)?;
            lp.calls += 1;
        }
    }
    t.calls = lp.calls;
    Ok(t)
}

/// How often an unacknowledged end marker is sent again (a datagram, it
/// may have been dropped by a full receive queue).
const END_AGAIN: Duration = Duration::from_millis(20);

/// The end marker on every message connection: a header-only message
/// with a sequence number of its own, sent until the server acknowledges
/// it with the same, within the loop's timeout. Late answers that arrive
/// meanwhile are read and ignored (their requests were counted lost).
fn end_messages(
    eps: &[AnyEndpoint],
    lp: &mut Loop<'_>,
    conns: &mut [ClientConn],
    events: &mut [Event],
    rx: &mut [u8],
    tx: &mut [u8],
    o: Offered,
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
    let mut ignored = Record {
        hist: &mut none,
        service: &mut service,
        beat: &mut beat,
    };
    let mut again = std::time::Instant::now();
    loop {
        if std::time::Instant::now() >= again {
            for (c, e) in conns.iter().zip(eps).filter(|(c, _)| !c.ended) {
                header(tx, END, c.end_seq);
                lp.send_message(fd_of(e), &tx[..HEADER])?;
            }
            tx[0] = DATA;
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
        let ready = lp.wait(events, left.min(END_AGAIN))?;
        for e in &events[..ready] {
            let i = epoll::token(e) as usize;
            if epoll::events(e) & !epoll::OUT != 0 {
                let framing = (Framing::Messages, o.response);
                receive(lp, fd_of(&eps[i]), framing, &mut conns[i], rx, &mut ignored)?;
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
    msg[0] = DATA;
    r
}
