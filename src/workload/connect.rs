//! Stage: timed loop. A new connection per request, as nginx opens one
//! towards an upstream by default: the client times socket → connect →
//! send request → receive response → close; the server accepts, answers and
//! closes first (so TCP's TIME_WAIT lands on the server side).

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::pingpong::{check_echo, fill_pattern};
use super::{ClientEnd, PinnedPair, TrialUsage};
use crate::samples::Heartbeat;
use crate::transport::{Dialer, Endpoint, Fault, Listener};
use crate::with_endpoint;

/// Server side: `n` times accept, receive a `size`-byte request, send
/// `response` bytes, close. Returns the system calls made.
pub fn serve(
    l: &Listener,
    n: u64,
    buf: &mut [u8],
    size: usize,
    response: usize,
) -> Result<u64, Fault> {
    let mut calls = 0;
    for _ in 0..n {
        let mut ep = l
            .accept()
            .map_err(|e| Fault::from_io("accept", e, l.timeout()))?;
        with_endpoint!(&mut ep, e => {
            e.recv_msg(&mut buf[..size])?;
            e.send_msg(&buf[..response])?;
        });
        calls += 2 + ep.calls(); // accept, close, data calls
    }
    Ok(calls)
}

/// Client side: `n` timed transactions, each on a new connection; `calls`
/// counts every system call the client makes. Returns the loop's wall time.
#[inline(never)]
pub fn transact<const VERIFY: bool>(
    (dialer, calls): (&Dialer, &mut u64),
    n: u64,
    tx: &mut [u8],
    rx: &mut [u8],
    hist: &mut Histogram<u64>,
    beat: &mut Heartbeat<'_>,
    seq: &mut u8,
) -> Result<Duration, Fault> {
    let start = Instant::now();
    let per_dial = dialer.calls_per_dial() + 1; // + close
    for _ in 0..n {
        if VERIFY {
            fill_pattern(tx, *seq);
            *seq = seq.wrapping_add(1);
        }
        let t0 = Instant::now();
        let mut ep = dialer
            .dial()
            .map_err(|(call, e)| Fault::from_io(call, e, dialer.opts().timeout))?;
        with_endpoint!(&mut ep, e => {
            e.send_msg(tx)?;
            e.recv_msg(rx)?;
        });
        let data_calls = ep.calls();
        drop(ep);
        let t1 = Instant::now();
        hist.saturating_record(t1.duration_since(t0).as_nanos() as u64);
        beat.tick();
        *calls += per_dial + data_calls;
        if VERIFY {
            check_echo(tx, rx)?;
        }
    }
    Ok(start.elapsed())
}

impl PinnedPair {
    /// `n` timed transactions on new connections (the pair's job must be Accept).
    pub fn record_connect(
        &mut self,
        n: u64,
        hist: &mut Histogram<u64>,
        beat: &mut Heartbeat<'_>,
        verify: bool,
    ) -> crate::Result<(TrialUsage, Duration)> {
        let (elapsed, usage, _) = self.trial(n, false, |c, tx, rx, seq| {
            let ClientEnd::Dialing { dialer, calls } = c else {
                unreachable!("connect runs on a dialing pair")
            };
            if verify {
                transact::<true>((dialer, calls), n, tx, rx, hist, beat, seq)
            } else {
                transact::<false>((dialer, calls), n, tx, rx, hist, beat, seq)
            }
        })?;
        Ok((usage, elapsed))
    }
}
