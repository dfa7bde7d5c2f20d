//! Stage: timed loop. Ping-pong and request/response over one kept-alive
//! connection: the client sends a request, the server answers, the client
//! times the round trip. With `--depth K`, K requests stay in flight. The
//! timed interval holds the send and the receive and nothing else: no
//! allocation, formatting, locks or logging.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::{ClientEnd, PinnedPair};
use crate::samples::Heartbeat;
use crate::transport::{Cause, Endpoint, Fault};
use crate::with_endpoint;

/// Server side: receive `size`-byte requests and answer each with the first
/// `response` bytes of `buf`, `n` times.
#[inline(never)]
pub fn echo<E: Endpoint>(
    ep: &mut E,
    n: u64,
    buf: &mut [u8],
    size: usize,
    response: usize,
) -> Result<(), Fault> {
    for _ in 0..n {
        ep.recv_msg(&mut buf[..size])?;
        ep.send_msg(&buf[..response])?;
    }
    Ok(())
}

/// `n` timed round trips, each recorded into `hist`. With `VERIFY`, every
/// request carries a fresh pattern, checked (as far as the response echoes
/// it) after the interval. Returns the loop's wall time (for criterion).
#[inline(never)]
pub fn timed<E: Endpoint, const VERIFY: bool>(
    ep: &mut E,
    n: u64,
    tx: &mut [u8],
    rx: &mut [u8],
    hist: &mut Histogram<u64>,
    beat: &mut Heartbeat<'_>,
    seq: &mut u8,
) -> Result<Duration, Fault> {
    let start = Instant::now();
    for _ in 0..n {
        if VERIFY {
            fill_pattern(tx, *seq);
            *seq = seq.wrapping_add(1);
        }
        let t0 = Instant::now();
        ep.send_msg(tx)?;
        ep.recv_msg(rx)?;
        let t1 = Instant::now();
        hist.saturating_record(t1.duration_since(t0).as_nanos() as u64);
        beat.tick();
        if VERIFY {
            check_echo(tx, rx)?;
        }
    }
    Ok(start.elapsed())
}

/// `n` requests with `sent_at.len()` (the depth) kept in flight: prime the
/// pipe, then for every response received send the next request. Each
/// request's latency runs from its send to its response.
#[inline(never)]
pub fn pipelined<E: Endpoint>(
    ep: &mut E,
    n: u64,
    tx: &[u8],
    rx: &mut [u8],
    hist: &mut Histogram<u64>,
    beat: &mut Heartbeat<'_>,
    sent_at: &mut [Instant],
) -> Result<Duration, Fault> {
    let start = Instant::now();
    let depth = sent_at.len() as u64;
    for i in 0..depth.min(n) {
        sent_at[i as usize] = Instant::now();
        ep.send_msg(tx)?;
    }
    for i in 0..n {
        ep.recv_msg(rx)?;
        let t = Instant::now();
        let slot = (i % depth) as usize;
        hist.saturating_record(t.duration_since(sent_at[slot]).as_nanos() as u64);
        beat.tick();
        if i + depth < n {
            sent_at[slot] = Instant::now();
            ep.send_msg(tx)?;
        }
    }
    Ok(start.elapsed())
}

/// `n` round trips timed as one batch (for criterion, which wants totals).
#[inline(never)]
pub fn batch<E: Endpoint>(
    ep: &mut E,
    n: u64,
    tx: &mut [u8],
    rx: &mut [u8],
) -> Result<Duration, Fault> {
    let t0 = Instant::now();
    for _ in 0..n {
        ep.send_msg(tx)?;
        ep.recv_msg(rx)?;
    }
    Ok(t0.elapsed())
}

/// A pattern that differs per message and per byte position.
pub fn fill_pattern(buf: &mut [u8], seq: u8) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31).wrapping_add(seq) ^ ((i >> 8) as u8);
    }
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

fn connected(c: &mut ClientEnd) -> &mut crate::transport::AnyEndpoint {
    match c {
        ClientEnd::Connected(ep) => ep,
        ClientEnd::Dialing { .. } => unreachable!("ping-pong runs on a connected pair"),
    }
}

impl PinnedPair {
    /// `n` timed round trips recorded into `hist` (see [`timed`]); returns
    /// the trial's accounting and the loop's wall time.
    pub fn record(
        &mut self,
        n: u64,
        hist: &mut Histogram<u64>,
        beat: &mut Heartbeat<'_>,
        verify: bool,
    ) -> crate::Result<(super::TrialUsage, Duration)> {
        let (elapsed, usage, _) = self.trial(n, false, |c, tx, rx, seq| {
            with_endpoint!(connected(c), e => if verify {
                timed::<_, true>(e, n, tx, rx, hist, beat, seq)
            } else {
                timed::<_, false>(e, n, tx, rx, hist, beat, seq)
            })
        })?;
        Ok((usage, elapsed))
    }

    /// `n` requests with `sent_at.len()` in flight (see [`pipelined`]).
    pub fn record_pipelined(
        &mut self,
        n: u64,
        hist: &mut Histogram<u64>,
        beat: &mut Heartbeat<'_>,
        sent_at: &mut [Instant],
    ) -> crate::Result<(super::TrialUsage, Duration)> {
        let (elapsed, usage, _) = self.trial(n, false, |c, tx, rx, _| {
            with_endpoint!(connected(c), e => pipelined(e, n, tx, rx, hist, beat, sent_at))
        })?;
        Ok((usage, elapsed))
    }

    /// `n` round trips timed as one batch (see [`batch`]).
    pub fn round_trips(&mut self, n: u64) -> crate::Result<Duration> {
        let (elapsed, _, _) = self.trial(
            n,
            false,
            |c, tx, rx, _| with_endpoint!(connected(c), e => batch(e, n, tx, rx)),
        )?;
        Ok(elapsed)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    /// An in-memory endpoint that answers every request at once and tracks
    /// how many requests are in flight.
    struct Counting {
        queue: VecDeque<Vec<u8>>,
        in_flight: u64,
        max_in_flight: u64,
        at_recv: Vec<u64>,
    }

    impl Endpoint for Counting {
        fn send_msg(&mut self, buf: &[u8]) -> Result<(), Fault> {
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
    fn depth_keeps_exactly_k_in_flight() {
        for (depth, n) in [(1usize, 10u64), (4, 100), (16, 100), (8, 5)] {
            let mut ep = Counting {
                queue: VecDeque::new(),
                in_flight: 0,
                max_in_flight: 0,
                at_recv: Vec::new(),
            };
            let mut hist = crate::samples::new_histogram();
            let shared = std::sync::atomic::AtomicU64::new(0);
            let mut sent_at = vec![Instant::now(); depth];
            pipelined(
                &mut ep,
                n,
                &[1u8; 8],
                &mut [0u8; 8],
                &mut hist,
                &mut Heartbeat::new(&shared),
                &mut sent_at,
            )
            .unwrap();
            assert_eq!(hist.len(), n, "one latency per request");
            assert_eq!(ep.in_flight, 0, "every request answered");
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

    #[test]
    fn corrupt_echo_is_caught() {
        let mut a = [0u8; 300];
        fill_pattern(&mut a, 3);
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
