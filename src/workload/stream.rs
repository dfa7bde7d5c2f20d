//! Stage: timed loop. One-way bulk transfer for throughput: the client
//! writes `n` messages, the server reads them. Streams must deliver every
//! byte; datagrams may be lost (UDP), so the server counts what arrived and
//! the client ends each trial with one end-marker datagram.

use super::{ClientEnd, PinnedPair, TrialUsage};
use crate::samples::Heartbeat;
use crate::sys::process::ThreadUsage;
use crate::transport::{Cause, Endpoint, Fault};
use crate::with_endpoint;

/// First byte of a datagram that ends a transfer (data messages carry 0).
pub const END_MARKER: u8 = 1;

/// Sequence number a message carries in bytes 1..9 with `--verify`
/// (messages shorter than 9 bytes carry none).
fn seq_of(buf: &[u8]) -> Option<u64> {
    buf.get(1..9)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
}

/// Server side: receive `n` messages of `buf.len()` bytes. A stream must
/// deliver exactly `n` in order. A datagram transfer ends at the end marker
/// or after an idle timeout (a lost marker); with `verify`, sequence
/// numbers must rise (a gap is loss, a repeat or step back is corruption).
/// Returns the data messages received and the `CLOCK_MONOTONIC` time (ns)
/// the transfer ended: at the last receive, or, after an idle timeout,
/// that much earlier.
#[inline(never)]
pub fn sink<E: Endpoint>(
    ep: &mut E,
    n: u64,
    buf: &mut [u8],
    stream: bool,
    verify: bool,
) -> Result<(u64, u64), Fault> {
    let bad = |offset| Fault {
        call: "recv",
        cause: Cause::Corrupt { offset },
    };
    if stream {
        for i in 0..n {
            ep.recv_msg(buf)?;
            if verify && seq_of(buf).is_some_and(|s| s != i) {
                return Err(bad(1));
            }
        }
        return Ok((n, crate::clock::now_ns()));
    }
    let mut got = 0u64;
    let mut last: Option<u64> = None;
    loop {
        match ep.recv_msg(buf) {
            Ok(()) if buf[0] == END_MARKER => return Ok((got, crate::clock::now_ns())),
            Ok(()) => {
                if verify && let Some(s) = seq_of(buf) {
                    if last.is_some_and(|l| s <= l) || s >= n {
                        return Err(bad(1));
                    }
                    last = Some(s);
                }
                got += 1;
            }
            Err(Fault {
                cause: Cause::TimedOut(_),
                ..
            }) => {
                let idle = super::SINK_IDLE.as_nanos() as u64;
                return Ok((got, crate::clock::now_ns().saturating_sub(idle)));
            }
            Err(f) => return Err(f),
        }
    }
}

/// Client side: send `n` messages of `tx`, numbered with `verify`; a
/// datagram transfer then sends one end marker.
#[inline(never)]
pub fn blast<E: Endpoint>(
    ep: &mut E,
    n: u64,
    tx: &mut [u8],
    stream: bool,
    verify: bool,
    beat: &mut Heartbeat<'_>,
) -> Result<(), Fault> {
    tx[0] = 0;
    for i in 0..n {
        if verify && let Some(b) = tx.get_mut(1..9) {
            b.copy_from_slice(&i.to_le_bytes());
        }
        ep.send_msg(tx)?;
        beat.tick();
    }
    if !stream {
        tx[0] = END_MARKER;
        let sent = ep.send_msg(tx);
        tx[0] = 0;
        sent?;
    }
    Ok(())
}

/// What one transfer trial measured.
#[derive(Debug, Clone, Copy)]
pub struct Transfer {
    pub usage: TrialUsage,
    /// From the client's first send to the server's last receive (the end
    /// marker, or the last data message before an idle timeout), ns.
    pub elapsed_ns: u64,
    /// Data messages received (by both ends, for Duplex).
    pub delivered: u64,
}

impl PinnedPair {
    /// One trial of `n` one-way messages (job Sink), or of `n` each way at
    /// once (job Duplex: a helper thread on the client's CPU receives while
    /// this one sends; its CPU and calls count as the client's).
    pub fn transfer(
        &mut self,
        n: u64,
        verify: bool,
        beat: &mut Heartbeat<'_>,
    ) -> crate::Result<Transfer> {
        let stream = self.spec().kind.is_stream();
        let size = self.spec().size;
        let mut second = self.client_rx.take();
        let result = self.trial(n, verify, |c, tx, rx, _| {
            let ClientEnd::Connected(ep) = c else {
                unreachable!("a transfer runs on a connected pair")
            };
            let start = crate::clock::now_ns();
            let Some(rx_ep) = second.as_mut() else {
                with_endpoint!(ep, e => blast(e, n, tx, stream, verify, beat))?;
                return Ok((start, Downstream::default()));
            };
            std::thread::scope(|s| {
                let receiver = s.spawn(|| {
                    let (calls0, u0) = (rx_ep.calls(), ThreadUsage::now().unwrap_or_default());
                    let got =
                        with_endpoint!(rx_ep, e => sink(e, n, &mut rx[..size], stream, verify));
                    (
                        got,
                        ThreadUsage::now().unwrap_or_default().since(u0),
                        rx_ep.calls() - calls0,
                    )
                });
                let sent = with_endpoint!(ep, e => blast(e, n, tx, stream, verify, beat));
                let (got, usage, calls) = receiver
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p));
                sent?;
                let (delivered, end_ns) = got?;
                Ok((
                    start,
                    Downstream {
                        usage,
                        calls,
                        delivered,
                        end_ns,
                    },
                ))
            })
        });
        self.client_rx = second;
        let ((start_ns, down), mut usage, report) = result?;
        usage.client.add(&down.usage);
        usage.client_calls += down.calls;
        Ok(Transfer {
            usage,
            elapsed_ns: report
                .end_ns
                .max(down.end_ns)
                .saturating_sub(start_ns)
                .max(1),
            delivered: report.delivered + down.delivered,
        })
    }
}

/// What the client's receiving thread saw in a Duplex trial.
#[derive(Debug, Default, Clone, Copy)]
struct Downstream {
    usage: ThreadUsage,
    calls: u64,
    delivered: u64,
    end_ns: u64,
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
        m[0] = if marker { END_MARKER } else { 0 };
        m[1..9].copy_from_slice(&seq.to_le_bytes());
        m
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
        let (got, _) = sink(&mut f, 5, &mut [0u8; 16], false, true).unwrap();
        assert_eq!(got, 4);
        assert_eq!(f.0.len(), 1, "stops at the marker");
        // The marker itself lost: the idle timeout ends the transfer.
        let mut f = Feed([0, 1].map(|s| msg(s, false)).into_iter().collect());
        assert_eq!(sink(&mut f, 5, &mut [0u8; 16], false, true).unwrap().0, 2);
    }

    #[test]
    fn duplicates_and_reordering_are_corruption() {
        for seqs in [[0, 1, 1], [0, 2, 1], [0, 1, 7]] {
            let mut f = Feed(seqs.map(|s| msg(s, false)).into_iter().collect());
            let e = sink(&mut f, 5, &mut [0u8; 16], false, true).unwrap_err();
            assert!(matches!(e.cause, Cause::Corrupt { .. }), "{seqs:?}");
        }
        // A stream must deliver 0, 1, 2, ... exactly.
        let mut f = Feed([0, 2].map(|s| msg(s, false)).into_iter().collect());
        assert!(matches!(
            sink(&mut f, 2, &mut [0u8; 16], true, true)
                .unwrap_err()
                .cause,
            Cause::Corrupt { .. }
        ));
    }
}
