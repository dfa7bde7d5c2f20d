//! Stage: timed loop. Ping-pong and request/response over one kept-alive
//! connection: the client sends a request, the server answers, the client
//! times the round trip. With `--depth K`, K requests stay in flight. The
//! timed interval holds the send and the receive and nothing else: no
//! allocation, formatting, locks or logging; the stopping rule is looked at
//! after each latency is recorded.

use std::time::Instant;

use hdrhistogram::Histogram;

use super::tracing::Stamps;
use super::{DATA, END, KeptOpen, PinnedPair, Span, Stop, TrialUsage};
use crate::clock;
use crate::samples::Heartbeat;
use crate::sys::tstamp::{self, realtime_ns};
use crate::transport::{Cause, Endpoint, Fault};
use crate::with_endpoint;

/// Server side: receive `size`-byte requests and answer each with the first
/// `response` bytes of `buf`, until the end marker (which gets no answer);
/// returns the requests answered. `limit`: operations left before an
/// injected death ([`Fault::injected`]; `u64::MAX`: none).
#[inline(never)]
pub fn echo<E: Endpoint>(
    ep: &mut E,
    buf: &mut [u8],
    size: usize,
    response: usize,
    limit: u64,
) -> Result<u64, Fault> {
    let mut n = 0;
    loop {
        ep.recv_msg(&mut buf[..size])?;
        if buf[0] == END {
            return Ok(n);
        }
        if n == limit {
            return Err(Fault::injected());
        }
        ep.send_msg(&buf[..response])?;
        n += 1;
    }
}

/// Send the end marker: a full-size message whose first byte is [`END`].
pub fn send_end<E: Endpoint>(ep: &mut E, tx: &mut [u8]) -> Result<(), Fault> {
    tx[0] = END;
    let r = ep.send_msg(tx);
    tx[0] = DATA;
    r
}

/// Timed round trips, each recorded into `hist`, until `stop`; then the end
/// marker. With `VERIFY`, every request carries a fresh pattern, checked
/// (as far as the response echoes it) after the interval. With `SPLIT`
/// (`--trace split`), the send call's own time goes into `sent` too: one
/// more clock read between the send and the receive.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
pub fn timed<E: Endpoint, const VERIFY: bool, const SPLIT: bool>(
    ep: &mut E,
    stop: Stop,
    tx: &mut [u8],
    rx: &mut [u8],
    (hist, mut sent): (&mut Histogram<u64>, Option<&mut Histogram<u64>>),
    beat: &mut Heartbeat<'_>,
    seq: &mut u8,
) -> Result<Span, Fault> {
    tx[0] = DATA;
    let start_ns = clock::now_ns();
    let start = Instant::now();
    let deadline = stop.deadline(start);
    let mut ops = 0;
    while ops < stop.ops {
        if VERIFY {
            fill_pattern(tx, *seq);
            *seq = seq.wrapping_add(1);
        }
        let t0 = Instant::now();
        ep.send_msg(tx)?;
        if SPLIT && let Some(sent) = sent.as_deref_mut() {
            sent.saturating_record(t0.elapsed().as_nanos() as u64);
        }
        ep.recv_msg(rx)?;
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
    send_end(ep, tx)?;
    Ok(Span {
        ops,
        start_ns,
        end_ns,
    })
}

/// Round trips until `stop` with the kernel's stamps (`--trace stamp`):
/// `CLOCK_REALTIME` read before and after the send call and after the
/// receive, the reply's receive stamp taken with it, and the request's
/// transmit stamps read from the error queue after the round trip (outside
/// its spans); each round trip's spans go into `stamps`.
#[inline(never)]
pub fn stamped<E: Endpoint, const VERIFY: bool>(
    ep: &mut E,
    stop: Stop,
    (tx, rx, seq): (&mut [u8], &mut [u8], &mut u8),
    (hist, stamps): (&mut Histogram<u64>, &mut Stamps),
    beat: &mut Heartbeat<'_>,
) -> Result<Span, Fault> {
    tx[0] = DATA;
    ep.sent_stamps()?;
    let start_ns = clock::now_ns();
    let deadline = stop.deadline(Instant::now());
    let mut ops = 0;
    while ops < stop.ops {
        if VERIFY {
            fill_pattern(tx, *seq);
            *seq = seq.wrapping_add(1);
        }
        let t0 = realtime_ns();
        ep.send_msg(tx)?;
        let t3 = realtime_ns();
        let at = ep.recv_msg_stamped(rx)?;
        let t5 = realtime_ns();
        hist.saturating_record(t5.saturating_sub(t0));
        stamps.record(t0, ep.sent_stamps()?, t3, at, t5);
        beat.tick();
        ops += 1;
        if VERIFY {
            check_echo(tx, rx)?;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
    }
    let end_ns = clock::now_ns();
    send_end(ep, tx)?;
    Ok(Span {
        ops,
        start_ns,
        end_ns,
    })
}

/// Requests with `sent_at.len()` (the depth) kept in flight, until `stop`:
/// prime the pipe, then for every response received send the next request;
/// once the rule says stop, drain what is in flight and send the end
/// marker. Each request's latency runs from its send to its response.
#[inline(never)]
pub fn pipelined<E: Endpoint>(
    ep: &mut E,
    stop: Stop,
    tx: &mut [u8],
    rx: &mut [u8],
    hist: &mut Histogram<u64>,
    beat: &mut Heartbeat<'_>,
    sent_at: &mut [Instant],
) -> Result<Span, Fault> {
    tx[0] = DATA;
    let depth = sent_at.len() as u64;
    let start_ns = clock::now_ns();
    let start = Instant::now();
    let deadline = stop.deadline(start);
    let mut sent = 0;
    while sent < depth.min(stop.ops) {
        sent_at[sent as usize] = Instant::now();
        ep.send_msg(tx)?;
        sent += 1;
    }
    let mut done = 0;
    let mut open = true;
    while done < sent {
        ep.recv_msg(rx)?;
        let t = Instant::now();
        let slot = (done % depth) as usize;
        hist.saturating_record(t.duration_since(sent_at[slot]).as_nanos() as u64);
        beat.tick();
        done += 1;
        open = open && sent < stop.ops && deadline.is_none_or(|d| t < d);
        if open {
            sent_at[slot] = Instant::now();
            ep.send_msg(tx)?;
            sent += 1;
        }
    }
    let end_ns = clock::now_ns();
    send_end(ep, tx)?;
    Ok(Span {
        ops: done,
        start_ns,
        end_ns,
    })
}

/// A pattern that differs per message and per byte position. The first
/// byte stays [`DATA`]: it is the message's marker.
pub fn fill_pattern(buf: &mut [u8], seq: u8) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31).wrapping_add(seq) ^ ((i >> 8) as u8);
    }
    buf[0] = DATA;
}

/// The response must start with the request (the server echoes its buffer).
pub fn check_echo(tx: &[u8], rx: &[u8]) -> Result<(), Fault> {
    let n = tx.len().min(rx.len());
    match tx[..n].iter().zip(&rx[..n]).position(|(a, b)| a != b) {
        None => Ok(()),
        Some(offset) => Err(Fault {
            call: "recv",
            cause: Cause::Corrupt { offset },
        }),
    }
}

impl PinnedPair<KeptOpen> {
    /// Timed round trips until `stop`, recorded into `hist` (see [`timed`]).
    /// Round trips until `stop`, each recorded into `hist` (see [`timed`]).
    pub fn record(
        &mut self,
        stop: Stop,
        hist: &mut Histogram<u64>,
        beat: &mut Heartbeat<'_>,
        verify: bool,
    ) -> crate::Result<(Span, TrialUsage)> {
        self.record_split(stop, (hist, None), beat, verify)
    }

    /// Round trips until `stop` (see [`timed`]); with `sent`, the send
    /// call's own time of each too (`--trace split`).
    pub fn record_split(
        &mut self,
        stop: Stop,
        (hist, sent): (&mut Histogram<u64>, Option<&mut Histogram<u64>>),
        beat: &mut Heartbeat<'_>,
        verify: bool,
    ) -> crate::Result<(Span, TrialUsage)> {
        let split = sent.is_some();
        let (span, usage, _) = self.trial(false, |c, tx, rx, seq| {
            let h = (&mut *hist, sent);
            with_endpoint!(&mut c.ep, e => match (verify, split) {
                (true, false) => timed::<_, true, false>(e, stop, tx, rx, h, beat, seq),
                (false, false) => timed::<_, false, false>(e, stop, tx, rx, h, beat, seq),
                (true, true) => timed::<_, true, true>(e, stop, tx, rx, h, beat, seq),
                (false, true) => timed::<_, false, true>(e, stop, tx, rx, h, beat, seq),
            })
        })?;
        Ok((span, usage))
    }

    /// Ask the kernel to stamp the client socket's packets (`--trace
    /// stamp`), for the socket's life, when the pair is made; then wait
    /// (up to the timeout) until received packets are stamped: the first
    /// socket to ask turns that on for every packet, from a work queue,
    /// later.
    pub fn stamp(&mut self) -> crate::Result<()> {
        let fd = self
            .client
            .ep
            .socket_fd()
            .expect("the plan stamps sockets only");
        let timeout = self.spec().opts.timeout;
        let err = |e| crate::error::Error::Setup {
            op: "setsockopt",
            target: "SO_TIMESTAMPING".into(),
            transport: self.spec().kind.name(),
            size: self.spec().size,
            source: e,
        };
        tstamp::enable(fd, true).map_err(err)?;
        match tstamp::wait_for_receive_stamps(timeout) {
            Ok(true) => Ok(()),
            Ok(false) => Err(err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the kernel stamped no received packet within {timeout:?}"),
            ))),
            Err(e) => Err(err(e)),
        }
    }

    /// Round trips until `stop` with the kernel's stamps (see [`stamped`]
    /// and [`Self::stamp`]).
    pub fn record_stamped(
        &mut self,
        stop: Stop,
        (hist, stamps): (&mut Histogram<u64>, &mut Stamps),
        beat: &mut Heartbeat<'_>,
        verify: bool,
    ) -> crate::Result<(Span, TrialUsage)> {
        let (span, usage, _) = self.trial(false, |c, tx, rx, seq| {
            let (io, h) = ((tx, rx, seq), (hist, stamps));
            with_endpoint!(&mut c.ep, e => if verify {
                stamped::<_, true>(e, stop, io, h, beat)
            } else {
                stamped::<_, false>(e, stop, io, h, beat)
            })
        })?;
        Ok((span, usage))
    }

    /// Requests with `sent_at.len()` in flight until `stop` (see [`pipelined`]).
    pub fn record_pipelined(
        &mut self,
        stop: Stop,
        hist: &mut Histogram<u64>,
        beat: &mut Heartbeat<'_>,
        sent_at: &mut [Instant],
    ) -> crate::Result<(Span, TrialUsage)> {
        let (span, usage, _) = self.trial(false, |c, tx, rx, _| {
            with_endpoint!(&mut c.ep, e => pipelined(e, stop, tx, rx, hist, beat, sent_at))
        })?;
        Ok((span, usage))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::time::Duration;

    use super::*;

    /// An in-memory endpoint that answers every request at once and tracks
    /// how many requests are in flight.
    #[derive(Default)]
    struct Counting {
        queue: VecDeque<Vec<u8>>,
        in_flight: u64,
        max_in_flight: u64,
        at_recv: Vec<u64>,
        ends: u64,
    }

    impl Endpoint for Counting {
        fn send_msg(&mut self, buf: &[u8]) -> Result<(), Fault> {
            if buf[0] == END {
                self.ends += 1;
                return Ok(());
            }
            assert_eq!(self.ends, 0, "nothing after the end marker");
            self.queue.push_back(buf.to_vec());
            self.in_flight += 1;
            self.max_in_flight = self.max_in_flight.max(self.in_flight);
            Ok(())
        }
        fn recv_msg(&mut self, buf: &mut [u8]) -> Result<(), Fault> {
            self.at_recv.push(self.in_flight);
            let m = self
                .queue
                .pop_front()
                .expect("a response is only awaited for a request sent");
            buf.copy_from_slice(&m[..buf.len()]);
            self.in_flight -= 1;
            Ok(())
        }
        fn calls(&self) -> (u64, u64) {
            (0, 0)
        }
    }

    #[test]
    fn depth_keeps_exactly_k_in_flight_then_ends() {
        for (depth, n) in [(1usize, 10u64), (4, 100), (16, 100), (8, 5)] {
            let mut ep = Counting::default();
            let mut hist = crate::samples::new_histogram();
            let shared = std::sync::atomic::AtomicU64::new(0);
            let mut sent_at = vec![Instant::now(); depth];
            let span = pipelined(
                &mut ep,
                Stop::count(n),
                &mut [0u8; 8],
                &mut [0u8; 8],
                &mut hist,
                &mut Heartbeat::new(&shared),
                &mut sent_at,
            )
            .unwrap();
            assert_eq!((span.ops, hist.len()), (n, n), "one latency per request");
            assert_eq!(ep.in_flight, 0, "every request answered");
            assert_eq!(ep.ends, 1, "one end marker, after the last answer");
            assert_eq!(ep.max_in_flight, (depth as u64).min(n));
            // Until the tail drains, every receive happens with exactly K in flight.
            let full = n.saturating_sub(depth as u64) as usize + 1;
            assert!(
                ep.at_recv[..full.min(ep.at_recv.len())]
                    .iter()
                    .all(|&k| k == (depth as u64).min(n)),
                "{:?}",
                ep.at_recv
            );
        }
    }

    /// A time budget holds: the loop stops at the first latency taken after
    /// the deadline, and an echo server stops at the marker.
    #[test]
    fn time_stops_the_loop_and_the_marker_stops_the_server() {
        let mut ep = Counting::default();
        let mut hist = crate::samples::new_histogram();
        let mut sent = crate::samples::new_histogram();
        let shared = std::sync::atomic::AtomicU64::new(0);
        let t0 = Instant::now();
        let span = timed::<_, true, true>(
            &mut ep,
            Stop::time(Duration::from_millis(30)),
            &mut [0u8; 16],
            &mut [0u8; 16],
            (&mut hist, Some(&mut sent)),
            &mut Heartbeat::new(&shared),
            &mut 0,
        )
        .unwrap();
        // --trace split: one send time per round trip, none longer than its round trip.
        assert_eq!(sent.len(), hist.len());
        assert!(sent.max() <= hist.max() && sent.min() <= hist.min());
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(30) && took < Duration::from_secs(2),
            "{took:?}"
        );
        assert!(span.ops > 10 && span.ops == hist.len(), "{span:?}");
        assert!(span.end_ns - span.start_ns >= 30_000_000, "{span:?}");
        assert_eq!(ep.ends, 1);

        // The server side: three requests answered, then the marker.
        struct Feed(VecDeque<u8>, u64);
        impl Endpoint for Feed {
            fn send_msg(&mut self, _: &[u8]) -> Result<(), Fault> {
                self.1 += 1;
                Ok(())
            }
            fn recv_msg(&mut self, buf: &mut [u8]) -> Result<(), Fault> {
                buf[0] = self.0.pop_front().expect("read past the marker");
                Ok(())
            }
            fn calls(&self) -> (u64, u64) {
                (0, 0)
            }
        }
        let mut f = Feed([DATA, DATA, DATA, END, DATA].into(), 0);
        assert_eq!(echo(&mut f, &mut [0u8; 4], 4, 4, u64::MAX).unwrap(), 3);
        assert_eq!(
            (f.1, f.0.len()),
            (3, 1),
            "no answer to the marker, nothing read after it"
        );
        let mut f = Feed([DATA, DATA, DATA].into(), 0);
        let died = echo(&mut f, &mut [0u8; 4], 4, 4, 2).unwrap_err();
        assert!(matches!(died.cause, Cause::Injected), "{died:?}");
    }

    #[test]
    fn corrupt_echo_is_caught() {
        let mut a = [0u8; 300];
        fill_pattern(&mut a, 3);
        assert_eq!(a[0], DATA, "the marker byte is kept");
        let mut b = a;
        assert!(check_echo(&a, &b).is_ok());
        b[257] ^= 1;
        let f = check_echo(&a, &b).unwrap_err();
        assert!(matches!(f.cause, Cause::Corrupt { offset: 257 }));
        let mut c = [0u8; 300];
        fill_pattern(&mut c, 4);
        assert_ne!(a, c, "consecutive messages carry different patterns");
    }
}
