//! Stage: timed loop. A new connection per request, as nginx opens one
//! towards an upstream without keepalive: the client times socket →
//! connect → send request → receive response → wait for end-of-file →
//! close. The server accepts, receives, answers and closes, so it always
//! closes first (TCP's TIME_WAIT lands on the server's side, never on a
//! client port), and the client closes only after reading to end-of-file.

use std::time::Instant;

use hdrhistogram::Histogram;

use super::pingpong::{check_echo, fill_pattern};
use super::{DATA, Dialing, END, PinnedPair, Span, Stop, TrialUsage};
use crate::clock;
use crate::samples::Heartbeat;
use crate::transport::{AnyEndpoint, Cause, Dialer, Endpoint, Fault, Listener};
use crate::with_endpoint;

/// Server side: accept, receive a `size`-byte request, send `response`
/// bytes, close; until a connection brings the end marker (closed without
/// an answer). Returns the transactions served and the system calls made;
/// `limit`: transactions before an injected death. A failed
/// transaction whose peer was not the run's client is reported as a
/// foreign connection.
pub fn serve(
    l: &Listener,
    buf: &mut [u8],
    size: usize,
    response: usize,
    limit: u64,
) -> Result<(u64, u64), Fault> {
    let mut calls = 0;
    let mut n = 0;
    loop {
        let mut ep = l
            .accept()
            .map_err(|e| Fault::from_io("accept", e, l.timeout()))?;
        let got = with_endpoint!(&mut ep, e => e.recv_msg(&mut buf[..size]));
        if let Err(f) = got {
            return Err(foreign_or(l, &ep, f));
        }
        if !l.token().carried_by(&buf[..size]) {
            return Err(foreign(l, &ep));
        }
        if buf[0] == END {
            calls += l.calls_per_accept() + ep.calls();
            return Ok((n, calls));
        }
        if n == limit {
            return Err(Fault::injected());
        }
        let sent = with_endpoint!(&mut ep, e => e.send_msg(&buf[..response]));
        if let Err(f) = sent {
            return Err(foreign_or(l, &ep, f));
        }
        calls += l.calls_per_accept() + ep.calls();
        drop(ep); // the server closes first
        n += 1;
    }
}

/// The fault of a failed transaction, or, if the peer was another
/// process's, the foreign connection that caused it.
#[cold]
fn foreign_or(l: &Listener, ep: &AnyEndpoint, f: Fault) -> Fault {
    match l.foreign_peer(ep) {
        Some(who) => Fault {
            call: "accept",
            cause: Cause::Foreign(who),
        },
        None => f,
    }
}

/// A request without the run's token: a foreign connection, named as well
/// as it can be (port and uid, or pid and uid).
#[cold]
fn foreign(l: &Listener, ep: &AnyEndpoint) -> Fault {
    let who = l.foreign_peer(ep).unwrap_or_else(|| {
        let port = ep
            .socket_fd()
            .and_then(|fd| crate::sys::socket::peer_port(fd).ok());
        match port {
            Some(p) => format!("port {p}; its request lacked the run's token"),
            None => "its request lacked the run's token".into(),
        }
    });
    Fault {
        call: "accept",
        cause: Cause::Foreign(who),
    }
}

/// One transaction on a fresh connection: send, receive the response,
/// wait for the server's close, close. `calls` counts the client's calls.
#[inline(always)]
fn transaction(
    dialer: &Dialer,
    calls: &mut u64,
    tx: &[u8],
    rx: &mut [u8],
    answered: bool,
) -> Result<(), Fault> {
    let mut ep = dialer
        .dial()
        .map_err(|(call, e)| Fault::from_io(call, e, dialer.opts().timeout))?;
    with_endpoint!(&mut ep, e => {
        e.send_msg(tx)?;
        if answered {
            e.recv_msg(rx)?;
        }
        e.recv_eof()?;
    });
    *calls += dialer.calls_per_dial() + 1 + ep.calls(); // + close
    drop(ep);
    Ok(())
}

/// Client side: timed transactions, each on a new connection, until
/// `stop`; then one untimed connection carrying the end marker.
#[inline(never)]
pub fn transact<const VERIFY: bool>(
    (dialer, calls): (&Dialer, &mut u64),
    stop: Stop,
    tx: &mut [u8],
    rx: &mut [u8],
    hist: &mut Histogram<u64>,
    beat: &mut Heartbeat<'_>,
    seq: &mut u8,
) -> Result<Span, Fault> {
    tx[0] = DATA;
    dialer.token().stamp(tx);
    let start_ns = clock::now_ns();
    let deadline = stop.deadline(Instant::now());
    let mut ops = 0;
    while ops < stop.ops {
        if VERIFY {
            fill_pattern(tx, *seq);
            dialer.token().stamp(tx);
            *seq = seq.wrapping_add(1);
        }
        let t0 = Instant::now();
        transaction(dialer, calls, tx, rx, true)?;
        let t1 = Instant::now();
        hist.saturating_record(t1.duration_since(t0).as_nanos() as u64);
        beat.tick();
        ops += 1;
        if VERIFY {
            check_echo(tx, rx)?;
        }
        if deadline.is_some_and(|d| t1 >= d) {
            break;
        }
    }
    let end_ns = clock::now_ns();
    tx[0] = END;
    let ended = transaction(dialer, &mut 0, tx, rx, false);
    tx[0] = DATA;
    ended?;
    Ok(Span {
        ops,
        start_ns,
        end_ns,
    })
}

impl PinnedPair<Dialing> {
    /// Timed transactions on new connections until `stop`.
    pub fn record_connect(
        &mut self,
        stop: Stop,
        hist: &mut Histogram<u64>,
        beat: &mut Heartbeat<'_>,
        verify: bool,
    ) -> crate::Result<(Span, TrialUsage)> {
        let (span, usage, report) = self.trial(false, |c, tx, rx, seq| {
            let d = (&c.dialer, &mut c.calls);
            if verify {
                transact::<true>(d, stop, tx, rx, hist, beat, seq)
            } else {
                transact::<false>(d, stop, tx, rx, hist, beat, seq)
            }
        })?;
        // Every request the server answered is one the client sent: one
        // more is a foreign request that carried the token's bytes (a
        // request too short to carry much of it).
        if report.delivered != span.ops {
            return Err(crate::Error::Run {
                side: "server",
                call: "accept",
                transport: self.spec().kind.name(),
                size: self.spec().size,
                cause: Cause::Foreign(format!(
                    "the server answered {} requests and the client sent {}",
                    report.delivered, span.ops
                ))
                .to_string(),
            });
        }
        Ok((span, usage))
    }
}
