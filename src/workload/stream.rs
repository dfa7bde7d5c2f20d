//! Stage: timed loop. One-way bulk transfer for throughput: the client
//! writes messages until its stopping rule says stop, then an end marker;
//! the server reads until the marker. Streams must deliver every byte;
//! datagrams may be lost (UDP), so the server counts what arrived, and a
//! lost marker ends the transfer on an idle limit, stamped at the last
//! datagram that did arrive.

use std::time::Instant;

use super::pingpong::send_end;
use super::{DATA, END, KeptOpen, PinnedPair, Span, Stop, TrialUsage};
use crate::clock;
use crate::samples::Heartbeat;
use crate::sys::process::ThreadUsage;
use crate::transport::{Cause, Endpoint, Fault};
use crate::with_endpoint;

/// Sequence number a message carries in bytes 1..9 with `--verify`
/// (messages shorter than 9 bytes carry none).
fn seq_of(buf: &[u8]) -> Option<u64> {
    buf.get(1..9)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
}

/// How a sink ended: data messages received (the marker not counted), and
/// the `CLOCK_MONOTONIC` time the transfer ended: at the end marker, or,
/// when the marker was lost (`idle_ended`), at the last datagram received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sunk {
    pub delivered: u64,
    pub end_ns: u64,
    pub idle_ended: bool,
}

/// Receive messages of `buf.len()` bytes until the end marker. A stream
/// must deliver 0, 1, 2, ... in order; a datagram transfer may lose some,
/// and ends on [`super::SINK_IDLE`] without a datagram if the marker itself is
/// lost (the receiving end's bound must be set to it). With `verify`,
/// sequence numbers must rise (a gap is loss, a repeat or step back is
/// corruption). `limit`: messages left before an injected death
/// ([`Fault::injected`]).
#[inline(never)]
pub fn sink<E: Endpoint>(
    ep: &mut E,
    buf: &mut [u8],
    stream: bool,
    verify: bool,
    limit: u64,
) -> Result<Sunk, Fault> {
    let bad = |offset| Fault {
        call: "recv",
        cause: Cause::Corrupt { offset },
    };
    let mut n = 0u64;
    if stream {
        loop {
            ep.recv_msg(buf)?;
            if buf[0] == END {
                return Ok(Sunk {
                    delivered: n,
                    end_ns: clock::now_ns(),
                    idle_ended: false,
                });
            }
            if verify && seq_of(buf).is_some_and(|s| s != n) {
                return Err(bad(1));
            }
            if n == limit {
                return Err(Fault::injected());
            }
            n += 1;
        }
    }
    // Datagrams: the time of the last one is kept (one clock read each),
    // because only the idle limit can say that it was the last.
    let mut last: Option<u64> = None;
    let mut last_ns = clock::now_ns();
    loop {
        match ep.recv_msg(buf) {
            Ok(()) if buf[0] == END => {
                return Ok(Sunk {
                    delivered: n,
                    end_ns: clock::now_ns(),
                    idle_ended: false,
                });
            }
            Ok(()) => {
                last_ns = clock::now_ns();
                if verify && let Some(s) = seq_of(buf) {
                    if last.is_some_and(|l| s <= l) {
                        return Err(bad(1));
                    }
                    last = Some(s);
                }
                if n == limit {
                    return Err(Fault::injected());
                }
                n += 1;
            }
            Err(Fault {
                cause: Cause::TimedOut(_),
                ..
            }) => {
                return Ok(Sunk {
                    delivered: n,
                    end_ns: last_ns,
                    idle_ended: true,
                });
            }
            Err(f) => return Err(f),
        }
    }
}

/// Send messages of `tx`, numbered with `verify`, while `more(i)` allows
/// the `i`-th; then the end marker. Returns the data messages sent.
#[inline(always)]
pub fn blast<E: Endpoint>(
    ep: &mut E,
    tx: &mut [u8],
    verify: bool,
    beat: &mut Heartbeat<'_>,
    mut more: impl FnMut(u64) -> bool,
) -> Result<u64, Fault> {
    tx[0] = DATA;
    let mut i = 0;
    while more(i) {
        if verify && let Some(b) = tx.get_mut(1..9) {
            b.copy_from_slice(&i.to_le_bytes());
        }
        ep.send_msg(tx)?;
        beat.tick();
        i += 1;
    }
    send_end(ep, tx)?;
    Ok(i)
}

/// The client's sender: [`blast`] until `stop`, reading the clock once per
/// `stop.check_every` messages (a power of two), never inside a send.
#[inline(never)]
pub fn blast_until<E: Endpoint>(
    ep: &mut E,
    tx: &mut [u8],
    verify: bool,
    beat: &mut Heartbeat<'_>,
    stop: Stop,
) -> Result<Span, Fault> {
    let start_ns = clock::now_ns();
    let deadline = stop.deadline(Instant::now());
    let mask = stop.check_every.max(1).next_power_of_two() - 1;
    let ops = blast(ep, tx, verify, beat, |i| {
        i < stop.ops && (i & mask != 0 || deadline.is_none_or(|d| Instant::now() < d))
    })?;
    Ok(Span {
        ops,
        start_ns,
        end_ns: clock::now_ns(),
    })
}

/// What one transfer trial measured.
#[derive(Debug, Clone, Copy)]
pub struct Transfer {
    pub usage: TrialUsage,
    /// From the client's first send to the last receive (the end marker, or
    /// the last datagram before an idle ending), `CLOCK_MONOTONIC` ns.
    pub start_ns: u64,
    pub end_ns: u64,
    /// Data messages sent (both ways for Duplex).
    pub sent: u64,
    /// Data messages received (by both ends, for Duplex).
    pub delivered: u64,
    /// A receiver ended on its idle limit: an end marker was lost.
    pub idle_ended: bool,
}

impl Transfer {
    /// Wall time of the transfer, ns (at least 1).
    pub fn elapsed_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns).max(1)
    }
}

impl PinnedPair<KeptOpen> {
    /// One transfer trial until `stop` (job Sink), or one each way at once
    /// (job Duplex: a helper thread on the client's CPU receives while this
    /// one sends; its CPU and calls count as the client's).
    pub fn transfer(
        &mut self,
        stop: Stop,
        verify: bool,
        beat: &mut Heartbeat<'_>,
    ) -> crate::Result<Transfer> {
        let stream = self.spec().kind.is_stream();
        let size = self.spec().size;
        let ((span, down), mut usage, report) = self.trial(verify, |c, tx, rx, _| {
            let Some(rx_ep) = c.rx.as_mut() else {
                let span = with_endpoint!(&mut c.ep, e => blast_until(e, tx, verify, beat, stop))?;
                return Ok((span, None));
            };
            std::thread::scope(|s| {
                let receiver = s.spawn(|| {
                    let (calls0, u0) = (rx_ep.calls(), ThreadUsage::now().unwrap_or_default());
                    let got = with_endpoint!(rx_ep, e => sink(e, &mut rx[..size], stream, verify, u64::MAX));
                    (
                        got,
                        ThreadUsage::now().unwrap_or_default().since(u0),
                        rx_ep.calls() - calls0,
                    )
                });
                let sent = with_endpoint!(&mut c.ep, e => blast_until(e, tx, verify, beat, stop));
                let (got, usage, calls) = receiver
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p));
                let span = sent?;
                Ok((span, Some((usage, calls, got?))))
            })
        })?;
        if let Some((u, calls, _)) = down {
            usage.client.add(&u);
            usage.client_calls += calls;
        }
        let mut t = Transfer {
            usage,
            start_ns: span.start_ns,
            end_ns: report.end_ns,
            sent: span.ops + report.sent,
            delivered: report.delivered,
            idle_ended: report.idle_ended,
        };
        if let Some((_, _, got)) = down {
            t.delivered += got.delivered;
            t.end_ns = t.end_ns.max(got.end_ns);
            t.idle_ended |= got.idle_ended;
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    /// Hands out pre-made datagrams, then times out.
    struct Feed(VecDeque<Vec<u8>>);

    impl Endpoint for Feed {
        fn send_msg(&mut self, _: &[u8]) -> Result<(), Fault> {
            Ok(())
        }
        fn recv_msg(&mut self, buf: &mut [u8]) -> Result<(), Fault> {
            match self.0.pop_front() {
                Some(m) => {
                    buf.copy_from_slice(&m);
                    Ok(())
                }
                None => Err(Fault {
                    call: "recv",
                    cause: Cause::TimedOut(std::time::Duration::from_millis(1)),
                }),
            }
        }
        fn calls(&self) -> (u64, u64) {
            (0, 0)
        }
    }

    fn msg(seq: u64, marker: bool) -> Vec<u8> {
        let mut m = vec![0u8; 16];
        m[0] = if marker { END } else { DATA };
        m[1..9].copy_from_slice(&seq.to_le_bytes());
        m
    }

    fn delivered(s: Sunk) -> (u64, bool) {
        (s.delivered, s.idle_ended)
    }

    #[test]
    fn datagram_sink_counts_loss_and_stops_at_the_marker() {
        // 5 sent, #2 lost, then the marker; a datagram after the marker belongs to the next trial.
        let mut f = Feed(
            [0, 1, 3, 4]
                .map(|s| msg(s, false))
                .into_iter()
                .chain([msg(0, true), msg(9, false)])
                .collect(),
        );
        let got = sink(&mut f, &mut [0u8; 16], false, true, u64::MAX).unwrap();
        assert_eq!(delivered(got), (4, false));
        assert_eq!(f.0.len(), 1, "stops at the marker");
    }

    /// The marker itself lost: the idle limit ends the transfer, flagged,
    /// and stamped at the last datagram received, not at the limit.
    #[test]
    fn a_lost_marker_ends_at_the_last_datagram() {
        let mut f = Feed([0, 1].map(|s| msg(s, false)).into_iter().collect());
        let before = clock::now_ns();
        let got = sink(&mut f, &mut [0u8; 16], false, true, u64::MAX).unwrap();
        let after = clock::now_ns();
        assert_eq!(delivered(got), (2, true));
        assert!(
            (before..=after).contains(&got.end_ns),
            "{before} {} {after}",
            got.end_ns
        );
    }

    #[test]
    fn duplicates_and_reordering_are_corruption() {
        for seqs in [[0, 1, 1], [0, 2, 1]] {
            let mut f = Feed(seqs.map(|s| msg(s, false)).into_iter().collect());
            let e = sink(&mut f, &mut [0u8; 16], false, true, u64::MAX).unwrap_err();
            assert!(matches!(e.cause, Cause::Corrupt { .. }), "{seqs:?}");
        }
        // A stream must deliver 0, 1, 2, ... exactly, then the marker.
        let mut f = Feed([0, 2].map(|s| msg(s, false)).into_iter().collect());
        assert!(matches!(
            sink(&mut f, &mut [0u8; 16], true, true, u64::MAX)
                .unwrap_err()
                .cause,
            Cause::Corrupt { .. }
        ));
        let mut f = Feed([msg(0, false), msg(1, false), msg(0, true)].into());
        assert_eq!(
            delivered(sink(&mut f, &mut [0u8; 16], true, true, u64::MAX).unwrap()),
            (2, false)
        );
    }

    /// The sender reads the clock once per `check_every` messages and ends
    /// with exactly one marker.
    #[test]
    fn blast_stops_on_count_or_time_and_ends_with_the_marker() {
        #[derive(Default)]
        struct Count(u64, u64);
        impl Endpoint for Count {
            fn send_msg(&mut self, b: &[u8]) -> Result<(), Fault> {
                if b[0] == END {
                    self.1 += 1
                } else {
                    self.0 += 1
                }
                Ok(())
            }
            fn recv_msg(&mut self, _: &mut [u8]) -> Result<(), Fault> {
                unreachable!()
            }
            fn calls(&self) -> (u64, u64) {
                (0, 0)
            }
        }
        let shared = std::sync::atomic::AtomicU64::new(0);
        let mut c = Count::default();
        let span = blast_until(
            &mut c,
            &mut [0u8; 8],
            true,
            &mut Heartbeat::new(&shared),
            Stop::count(77),
        )
        .unwrap();
        assert_eq!((span.ops, c.0, c.1), (77, 77, 1));
        let mut c = Count::default();
        let stop = Stop {
            check_every: 64,
            ..Stop::time(std::time::Duration::from_millis(20))
        };
        let t0 = Instant::now();
        let span = blast_until(
            &mut c,
            &mut [0u8; 8],
            false,
            &mut Heartbeat::new(&shared),
            stop,
        )
        .unwrap();
        assert!(t0.elapsed() >= std::time::Duration::from_millis(20));
        assert_eq!(
            span.ops % 64,
            0,
            "stops only where it looks at the clock: {}",
            span.ops
        );
        assert_eq!(c.1, 1);
    }
}
