//! Stage: transport set-up and data path. The two rungs below every
//! socket: `shm-spin` and `futex` move each message through a page both
//! ends map (shared before the server is forked), one copy in and one copy
//! out, and publish it by a release store of a sequence number. With
//! `shm-spin` the receiver spins on that word: no system call, nothing but
//! cache lines between the CPUs (the floor any IPC can reach). With `futex`
//! the receiver sleeps in `futex(FUTEX_WAIT)` and the sender wakes it:
//! the cost of waking the peer, with no socket and no pipe.
//!
//! Each direction is a lane its sender owns: the sequence word (line 0),
//! the sender's CPU (line 1), a closed flag (line 2), the message from byte
//! 256. Ping-pong only: a lane holds one message, handed back by the answer.

use std::hint::spin_loop;
use std::sync::Arc;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::time::{Duration, Instant};

use super::fault::{Cause, Fault};
use super::{AnyEndpoint, Buffers, Connected, Ctx, Endpoint, TransportOpts};
use crate::error::Result;
use crate::sys::shm::{self, SharedRegion};

const SEQ: usize = 0;
const CPU: usize = 64;
const CLOSED: usize = 128;
const DATA: usize = 256;
/// Spins between looks at the clock while waiting.
const SPINS_PER_CLOCK_READ: u32 = 4096;
/// Longest single futex sleep: how late a missed close can be seen.
const CLOSE_CHECK: Duration = Duration::from_millis(100);

/// How a receiver waits for the next message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiter {
    /// Spin on the sequence word (yielding the CPU only when the peer
    /// shares it: two spinners on one CPU would wait out time slices).
    Spin,
    /// Sleep in `futex(FUTEX_WAIT)`; the sender calls `futex(FUTEX_WAKE)`.
    Futex,
}

/// One end of a shared-memory pair.
#[derive(Debug)]
pub struct SharedEnd {
    region: Arc<SharedRegion>,
    tx: usize,
    rx: usize,
    cap: usize,
    sent: u32,
    seen: u32,
    waiter: Waiter,
    timeout: Duration,
    /// System calls each way: `futex` wakes (send), `futex` waits or
    /// `sched_yield`s (receive).
    sends: u64,
    recvs: u64,
}

/// A connected pair over one shared region sized for `size`-byte messages.
pub(super) fn pair(
    waiter: Waiter,
    size: usize,
    opts: &TransportOpts,
    ctx: Ctx,
) -> Result<Connected> {
    let lane = (DATA + size).next_multiple_of(4096);
    let region =
        Arc::new(SharedRegion::new(2 * lane).map_err(ctx.err("mmap", "MAP_SHARED|MAP_ANONYMOUS"))?);
    let end = |tx: usize, rx: usize| SharedEnd {
        region: region.clone(),
        tx,
        rx,
        cap: lane - DATA,
        sent: 0,
        seen: 0,
        waiter,
        timeout: opts.timeout,
        sends: 0,
        recvs: 0,
    };
    Ok(Connected {
        client: AnyEndpoint::Shared(end(0, lane)),
        server: AnyEndpoint::Shared(end(lane, 0)),
        buffers: Buffers {
            sndbuf_bytes: lane - DATA,
            rcvbuf_bytes: lane - DATA,
        },
    })
}

impl SharedEnd {
    /// Bound receives by `timeout` instead of `--timeout`.
    pub fn set_recv_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Tell the peer this end is gone (a waiting peer wakes with
    /// [`Cause::PeerClosed`]): `shutdown`, never a drop, since the parent
    /// of a forked server drops its copy of the server's end.
    pub fn close(&self) {
        self.region.word(self.tx + CLOSED).store(1, Release);
        let _ = shm::futex_wake(self.region.word(self.tx + SEQ));
    }

    #[cold]
    fn fault(cause: Cause) -> Fault {
        Fault {
            call: "futex",
            cause,
        }
    }

    /// Wait until the peer has published message `self.seen + 1`.
    #[inline]
    fn wait(&mut self) -> Result<(), Fault> {
        let seq = self.region.word(self.rx + SEQ);
        if seq.load(Acquire) != self.seen {
            return Ok(());
        }
        let closed = self.region.word(self.rx + CLOSED);
        // A message published before the close still counts.
        let gone = |seen: u32| {
            if seq.load(Acquire) != seen {
                Ok(())
            } else {
                Err(Self::fault(Cause::PeerClosed))
            }
        };
        match self.waiter {
            Waiter::Futex => {
                // One deadline for the whole wait, however often a signal
                // or a spurious wake-up ends a sleep; each sleep is at most
                // CLOSE_CHECK long, so a close whose wake-up came between
                // the look at the flag and the sleep is seen soon.
                let deadline = Instant::now() + self.timeout;
                loop {
                    if closed.load(Acquire) != 0 {
                        return gone(self.seen);
                    }
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(Self::fault(Cause::TimedOut(self.timeout)));
                    }
                    self.recvs += 1;
                    match shm::futex_wait(seq, self.seen, left.min(CLOSE_CHECK)) {
                        Err(e) if e.raw_os_error() != Some(libc::ETIMEDOUT) => {
                            return Err(Self::fault(Cause::Os(e)));
                        }
                        _ => {}
                    }
                    if seq.load(Acquire) != self.seen {
                        return Ok(());
                    }
                }
            }
            Waiter::Spin => {
                // Publish this end's CPU (one store when it moved) and see
                // whether the peer's is the same.
                let mine = shm::current_cpu() + 1;
                let cpu = self.region.word(self.tx + CPU);
                if cpu.load(Relaxed) != mine {
                    cpu.store(mine, Relaxed);
                }
                let shares_cpu = self.region.word(self.rx + CPU).load(Relaxed) == mine;
                let mut since: Option<Instant> = None;
                let mut n = 0u32;
                loop {
                    if seq.load(Acquire) != self.seen {
                        return Ok(());
                    }
                    if closed.load(Acquire) != 0 {
                        return gone(self.seen);
                    }
                    if shares_cpu {
                        shm::yield_cpu();
                        self.recvs += 1;
                    } else {
                        spin_loop();
                    }
                    n += 1;
                    if n.is_multiple_of(SPINS_PER_CLOCK_READ) {
                        let start = *since.get_or_insert_with(Instant::now);
                        if start.elapsed() > self.timeout {
                            return Err(Fault {
                                call: "spin",
                                cause: Cause::TimedOut(self.timeout),
                            });
                        }
                    }
                }
            }
        }
    }
}

impl Endpoint for SharedEnd {
    #[inline]
    fn send_msg(&mut self, buf: &[u8]) -> Result<(), Fault> {
        if buf.len() > self.cap {
            return Err(Fault {
                call: "send",
                cause: Cause::Length {
                    got: buf.len(),
                    want: self.cap,
                },
            });
        }
        self.region.copy_in(self.tx + DATA, buf);
        self.sent = self.sent.wrapping_add(1);
        let seq = self.region.word(self.tx + SEQ);
        seq.store(self.sent, Release);
        if self.waiter == Waiter::Futex {
            self.sends += 1;
            shm::futex_wake(seq).map_err(|e| Self::fault(Cause::Os(e)))?;
        }
        Ok(())
    }

    #[inline]
    fn recv_msg(&mut self, buf: &mut [u8]) -> Result<(), Fault> {
        if buf.len() > self.cap {
            return Err(Fault {
                call: "recv",
                cause: Cause::Length {
                    got: buf.len(),
                    want: self.cap,
                },
            });
        }
        self.wait()?;
        self.seen = self.seen.wrapping_add(1);
        self.region.copy_out(self.rx + DATA, buf);
        Ok(())
    }

    fn calls(&self) -> (u64, u64) {
        (self.sends, self.recvs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::TransportKind;

    fn ends(waiter: Waiter, size: usize, timeout: Duration) -> (SharedEnd, SharedEnd) {
        let opts = TransportOpts {
            timeout,
            ..TransportOpts::default()
        };
        let ctx = Ctx::new(TransportKind::ShmSpin, size, &opts);
        match pair(waiter, size, &opts, ctx).unwrap() {
            Connected {
                client: AnyEndpoint::Shared(c),
                server: AnyEndpoint::Shared(s),
                ..
            } => (c, s),
            _ => unreachable!("a shared pair"),
        }
    }

    /// Every byte of every message arrives, each way, in order, for both
    /// waiters, across threads.
    #[test]
    fn messages_arrive_whole_and_in_order_both_ways() {
        for waiter in [Waiter::Spin, Waiter::Futex] {
            let (mut c, mut s) = ends(waiter, 5000, Duration::from_secs(10));
            let server = std::thread::spawn(move || {
                let mut b = vec![0u8; 5000];
                for _ in 0..500 {
                    s.recv_msg(&mut b).unwrap();
                    b.reverse();
                    s.send_msg(&b).unwrap();
                }
                s
            });
            let mut rx = vec![0u8; 5000];
            for i in 0..500u32 {
                let tx: Vec<u8> = (0..5000u32).map(|j| (i * 7 + j) as u8).collect();
                c.send_msg(&tx).unwrap();
                c.recv_msg(&mut rx).unwrap();
                let mut want = tx.clone();
                want.reverse();
                assert_eq!(rx, want, "{waiter:?} message {i}");
            }
            let s = server.join().unwrap();
            if waiter == Waiter::Futex {
                // One wake per message sent: the wake-up is the point of this rung.
                assert_eq!(c.calls().0, 500);
                assert_eq!(s.calls().0, 500);
            }
        }
    }

    /// A receiver whose peer says nothing gives up at its timeout; one
    /// whose peer closed says so at once.
    #[test]
    fn a_silent_peer_times_out_and_a_closed_one_is_named() {
        for waiter in [Waiter::Spin, Waiter::Futex] {
            let (mut c, s) = ends(waiter, 64, Duration::from_millis(50));
            let t0 = Instant::now();
            let e = c.recv_msg(&mut [0u8; 64]).unwrap_err();
            assert!(matches!(e.cause, Cause::TimedOut(_)), "{waiter:?}: {e:?}");
            assert!(t0.elapsed() < Duration::from_secs(5), "{waiter:?}");
            s.close();
            let e = c.recv_msg(&mut [0u8; 64]).unwrap_err();
            assert!(matches!(e.cause, Cause::PeerClosed), "{waiter:?}: {e:?}");
        }
    }

    /// A close whose wake-up is lost (it came before the receiver slept)
    /// is still seen within a sleep's bound, not at the timeout; and a
    /// message published before the close is delivered, not lost to it.
    #[test]
    fn a_close_without_its_wake_up_is_seen_and_a_last_message_kept() {
        let (mut c, s) = ends(Waiter::Futex, 64, Duration::from_secs(30));
        s.region.word(s.tx + CLOSED).store(1, Release); // no FUTEX_WAKE
        let t0 = Instant::now();
        let e = c.recv_msg(&mut [0u8; 64]).unwrap_err();
        assert!(matches!(e.cause, Cause::PeerClosed), "{e:?}");
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        for waiter in [Waiter::Spin, Waiter::Futex] {
            let (mut c, mut s) = ends(waiter, 64, Duration::from_secs(30));
            s.send_msg(&[7u8; 64]).unwrap();
            s.close();
            let mut b = [0u8; 64];
            c.recv_msg(&mut b).unwrap();
            assert_eq!(b, [7u8; 64], "{waiter:?}");
            let e = c.recv_msg(&mut b).unwrap_err();
            assert!(matches!(e.cause, Cause::PeerClosed), "{waiter:?}: {e:?}");
        }
    }

    /// A message larger than the lane is refused, not written past it.
    #[test]
    fn a_message_larger_than_the_lane_is_refused() {
        let (mut c, _s) = ends(Waiter::Spin, 64, Duration::from_secs(1));
        let big = vec![0u8; 8192];
        let e = c.send_msg(&big).unwrap_err();
        assert!(matches!(e.cause, Cause::Length { .. }), "{e:?}");
    }
}
