//! Stage: workloads. The control channel between a client and its server
//! (an AF_UNIX socketpair, never timed): typed messages in fixed 128-byte
//! frames, decoded strictly (an unknown tag, call or cause is an error,
//! never a guess), and read against one deadline that signals do not extend.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::sys::process::ThreadUsage;
use crate::transport::{Cause, Fault};

const WORDS: usize = 16;
type Frame = [u64; WORDS];

/// Client → server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Serve one trial, until the client's end marker; `verify` checks the
    /// sequence numbers a transfer carries.
    Trial { verify: bool },
    /// End the server.
    Stop,
}

/// What the server reports at the end of a trial.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerReport {
    /// CPU of the server (and of its sending helper thread, for Duplex).
    pub usage: ThreadUsage,
    /// Data-path (and connection) system calls the server made.
    pub calls: u64,
    /// Messages or requests the server received, end marker not counted.
    pub delivered: u64,
    /// Messages the server sent (Duplex's sender), end marker not counted.
    pub sent: u64,
    /// `CLOCK_MONOTONIC` ns when the server's part ended: at the end marker,
    /// or at the last datagram received when a lost marker ended a datagram
    /// transfer on the idle limit.
    pub end_ns: u64,
    /// A datagram transfer ended on the idle limit (its end marker was lost).
    pub idle_ended: bool,
}

/// Server → client.
#[derive(Debug)]
pub enum Reply {
    /// The server started; `pinned`: it runs on its CPU; `tid`: the thread
    /// that serves (for counters of its kernel events).
    Hello { pinned: bool, tid: u32 },
    /// The server is about to serve the trial (the barrier).
    Ready,
    /// The trial ended at the client's end marker.
    Done(ServerReport),
    /// A data-path call failed on the server; the server has ended.
    Fault(Fault),
}

const TRIAL: u64 = 1;
const STOP: u64 = 2;
const HELLO: u64 = 11;
const READY: u64 = 12;
const DONE: u64 = 13;
const FAULT: u64 = 14;

/// Every call a server fault can name, by wire index.
const CALLS: [&str; 16] = [
    "send",
    "recv",
    "read",
    "write",
    "accept",
    "connect",
    "socket",
    "setsockopt",
    "fcntl",
    "poll",
    "close",
    "epoll_create",
    "epoll_ctl",
    "epoll_wait",
    "futex",
    "spin",
];

fn malformed(what: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("control message: {what}"),
    )
}

impl Command {
    fn encode(self) -> Frame {
        let mut f = [0; WORDS];
        match self {
            Command::Trial { verify } => (f[0], f[1]) = (TRIAL, u64::from(verify)),
            Command::Stop => f[0] = STOP,
        }
        f
    }

    fn decode(f: &Frame) -> io::Result<Command> {
        match f[0] {
            TRIAL => Ok(Command::Trial { verify: f[1] != 0 }),
            STOP => Ok(Command::Stop),
            t => Err(malformed(format!("unknown command tag {t}"))),
        }
    }
}

impl Reply {
    fn encode(&self) -> Frame {
        let mut f = [0; WORDS];
        match self {
            Reply::Hello { pinned, tid } => {
                (f[0], f[1], f[2]) = (HELLO, u64::from(*pinned), u64::from(*tid))
            }
            Reply::Ready => f[0] = READY,
            Reply::Done(r) => {
                let u = &r.usage;
                f[..10].copy_from_slice(&[
                    DONE,
                    u.user_ns as u64,
                    u.sys_ns as u64,
                    u.vcsw as u64,
                    u.ivcsw as u64,
                    r.calls,
                    r.delivered,
                    r.sent,
                    r.end_ns,
                    u64::from(r.idle_ended),
                ]);
            }
            Reply::Fault(fault) => {
                // A call outside the list cannot be named: the decoder
                // refuses the index rather than guess.
                let call = CALLS
                    .iter()
                    .position(|c| *c == fault.call)
                    .map_or(u64::MAX, |i| i as u64);
                let (code, a, b) = match &fault.cause {
                    Cause::Os(e) => (0, e.raw_os_error().unwrap_or(0) as u64, 0),
                    Cause::TimedOut(t) => (1, t.as_nanos() as u64, 0),
                    Cause::PeerClosed => (2, 0, 0),
                    Cause::Length { got, want } => (3, *got as u64, *want as u64),
                    Cause::Corrupt { offset } => (4, *offset as u64, 0),
                    Cause::Foreign(who) => (5, 0, put_text(&mut f, who)),
                    Cause::Injected => (6, 0, 0),
                    Cause::Backlog(n) => (7, *n as u64, 0),
                };
                f[..5].copy_from_slice(&[FAULT, call, code, a, b]);
            }
        }
        f
    }

    fn decode(f: &Frame) -> io::Result<Reply> {
        Ok(match f[0] {
            HELLO => Reply::Hello {
                pinned: f[1] != 0,
                tid: f[2] as u32,
            },
            READY => Reply::Ready,
            DONE => Reply::Done(ServerReport {
                usage: ThreadUsage {
                    user_ns: f[1] as i64,
                    sys_ns: f[2] as i64,
                    vcsw: f[3] as i64,
                    ivcsw: f[4] as i64,
                },
                calls: f[5],
                delivered: f[6],
                sent: f[7],
                end_ns: f[8],
                idle_ended: match f[9] {
                    0 => false,
                    1 => true,
                    x => return Err(malformed(format!("idle flag {x}"))),
                },
            }),
            FAULT => {
                let call = usize::try_from(f[1])
                    .ok()
                    .and_then(|i| CALLS.get(i).copied())
                    .ok_or_else(|| malformed(format!("unknown call index {}", f[1])))?;
                let cause = match f[2] {
                    0 => Cause::Os(io::Error::from_raw_os_error(f[3] as i32)),
                    1 => Cause::TimedOut(Duration::from_nanos(f[3])),
                    2 => Cause::PeerClosed,
                    3 => Cause::Length {
                        got: f[3] as usize,
                        want: f[4] as usize,
                    },
                    4 => Cause::Corrupt {
                        offset: f[3] as usize,
                    },
                    5 => Cause::Foreign(foreign_from(f)),
                    6 => Cause::Injected,
                    7 => Cause::Backlog(f[3] as usize),
                    c => return Err(malformed(format!("unknown fault cause {c}"))),
                };
                Reply::Fault(Fault { call, cause })
            }
            t => return Err(malformed(format!("unknown reply tag {t}"))),
        })
    }
}

/// A foreign peer's description travels as text in the frame's tail words.
const TEXT_WORDS: std::ops::Range<usize> = 5..WORDS;

/// Write `text` (cut to fit) into the tail words; returns its length.
fn put_text(f: &mut Frame, text: &str) -> u64 {
    let mut bytes = [0u8; (WORDS - TEXT_WORDS.start) * 8];
    let n = text.len().min(bytes.len());
    bytes[..n].copy_from_slice(&text.as_bytes()[..n]);
    for (w, chunk) in f[TEXT_WORDS].iter_mut().zip(bytes.chunks_exact(8)) {
        *w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
    }
    n as u64
}

fn foreign_from(f: &Frame) -> String {
    let bytes: Vec<u8> = f[TEXT_WORDS].iter().flat_map(|w| w.to_le_bytes()).collect();
    let n = (f[4] as usize).min(bytes.len());
    String::from_utf8_lossy(&bytes[..n]).into_owned()
}

/// One non-blocking call, retried while a signal interrupts it, but never
/// past `deadline` (`TimedOut`): a storm of EINTR cannot stretch a wait.
/// `Ok(None)`: it would block (wait for readiness, then call again).
fn until(
    deadline: Option<Instant>,
    mut call: impl FnMut() -> io::Result<usize>,
) -> io::Result<Option<usize>> {
    loop {
        match call() {
            Ok(n) => return Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(io::ErrorKind::TimedOut.into());
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// One end of the control channel. Non-blocking underneath: every read and
/// write waits with `poll`, against a deadline fixed when the wait began.
#[derive(Debug)]
pub struct Control(UnixStream);

impl Control {
    /// A connected pair of ends.
    pub fn pair() -> io::Result<(Control, Control)> {
        let (a, b) = UnixStream::pair()?;
        a.set_nonblocking(true)?;
        b.set_nonblocking(true)?;
        Ok((Control(a), Control(b)))
    }

    /// The descriptor (a forked server keeps it).
    pub fn raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    /// Send a command; fails if it cannot be written `within` (the peer's
    /// buffer is never full in this request/reply protocol).
    pub fn send_command(&mut self, c: Command, within: Duration) -> io::Result<()> {
        self.write_frame(&c.encode(), Instant::now() + within)
    }

    /// Send a reply.
    pub fn send_reply(&mut self, r: &Reply, within: Duration) -> io::Result<()> {
        self.write_frame(&r.encode(), Instant::now() + within)
    }

    /// The server's wait for its next command: as long as it takes (the
    /// client may be busy with other cases); ends with EOF when the client's
    /// end closes.
    pub fn recv_command(&mut self) -> io::Result<Command> {
        Command::decode(&self.read_frame(None)?)
    }

    /// The client's wait for a reply: `TimedOut` once `within` has passed,
    /// however many signals arrive meanwhile; EOF when the server is gone.
    pub fn recv_reply(&mut self, within: Duration) -> io::Result<Reply> {
        Reply::decode(&self.read_frame(Some(Instant::now() + within))?)
    }

    /// Wait until the other end closes (the server has returned), at most
    /// `within`; whatever arrives meanwhile is discarded. True if it closed.
    pub fn wait_closed(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            match self.read_frame(Some(deadline)) {
                Ok(_) => continue,
                Err(e) => return e.kind() == io::ErrorKind::UnexpectedEof,
            }
        }
    }

    fn read_frame(&mut self, deadline: Option<Instant>) -> io::Result<Frame> {
        let mut b = [0u8; WORDS * 8];
        let mut off = 0;
        while off < b.len() {
            let sock = &mut self.0;
            match until(deadline, || sock.read(&mut b[off..]))? {
                Some(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Some(n) => off += n,
                None => self.wait(libc::POLLIN, deadline)?,
            }
        }
        let mut f = [0u64; WORDS];
        for (w, chunk) in f.iter_mut().zip(b.chunks_exact(8)) {
            *w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        }
        Ok(f)
    }

    fn write_frame(&mut self, f: &Frame, deadline: Instant) -> io::Result<()> {
        let b: Vec<u8> = f.iter().flat_map(|w| w.to_le_bytes()).collect();
        let mut off = 0;
        while off < b.len() {
            let sock = &mut self.0;
            match until(Some(deadline), || sock.write(&b[off..]))? {
                Some(n) => off += n,
                None => self.wait(libc::POLLOUT, Some(deadline))?,
            }
        }
        Ok(())
    }

    /// Wait for readiness until `deadline` (or for ever): a signal wakes
    /// the poll early, and the next poll gets only what is left.
    fn wait(&self, events: libc::c_short, deadline: Option<Instant>) -> io::Result<()> {
        const FOREVER_STEP: Duration = Duration::from_secs(3600);
        let left = match deadline {
            None => FOREVER_STEP,
            Some(d) => d
                .checked_duration_since(Instant::now())
                .filter(|l| !l.is_zero())
                .ok_or(io::ErrorKind::TimedOut)?,
        };
        match crate::sys::io::poll_one(self.0.as_fd(), events, left) {
            Ok(_) => Ok(()), // ready, or time to look at the deadline again
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(r: Reply) -> Reply {
        Reply::decode(&r.encode()).unwrap()
    }

    #[test]
    fn every_message_survives_the_wire() {
        for c in [
            Command::Trial { verify: true },
            Command::Trial { verify: false },
            Command::Stop,
        ] {
            assert_eq!(Command::decode(&c.encode()).unwrap(), c);
        }
        let report = ServerReport {
            usage: ThreadUsage {
                user_ns: 1,
                sys_ns: 2,
                vcsw: 3,
                ivcsw: 4,
            },
            calls: 5,
            delivered: 6,
            sent: 7,
            end_ns: 8,
            idle_ended: true,
        };
        assert!(matches!(round_trip(Reply::Done(report)), Reply::Done(r) if r == report));
        assert!(matches!(
            round_trip(Reply::Hello {
                pinned: true,
                tid: 4242
            }),
            Reply::Hello {
                pinned: true,
                tid: 4242
            }
        ));
        for cause in [
            Cause::TimedOut(Duration::from_millis(7)),
            Cause::PeerClosed,
            Cause::Length { got: 3, want: 9 },
            Cause::Corrupt { offset: 12 },
            Cause::Os(io::Error::from_raw_os_error(libc::EMSGSIZE)),
            Cause::Foreign("pid 42 (uid 1000)".into()),
            Cause::Backlog(1 << 18),
        ] {
            let want = cause.to_string();
            let Reply::Fault(f) = round_trip(Reply::Fault(Fault {
                call: "accept",
                cause,
            })) else {
                panic!("not a fault")
            };
            assert_eq!((f.call, f.cause.to_string()), ("accept", want));
        }
    }

    #[test]
    fn unknown_values_are_errors_not_guesses() {
        let mut f = [0u64; WORDS];
        f[0] = 99;
        assert!(Reply::decode(&f).is_err(), "unknown tag");
        assert!(Command::decode(&f).is_err(), "unknown command");
        f[0] = FAULT;
        f[1] = 999;
        assert!(Reply::decode(&f).is_err(), "unknown call index");
        f[1] = 0;
        f[2] = 77;
        assert!(Reply::decode(&f).is_err(), "unknown cause");
        let unlisted = Reply::Fault(Fault {
            call: "not-a-listed-call",
            cause: Cause::PeerClosed,
        });
        assert!(Reply::decode(&unlisted.encode()).is_err(), "unlisted call");
    }

    /// A call that a signal interrupts every time (strace's EINTR
    /// injection) is retried only until its deadline.
    #[test]
    fn every_retry_counts_against_one_deadline() {
        let t0 = Instant::now();
        let mut calls = 0u64;
        // Interrupted every time; were the deadline ignored, the loop would
        // end only when the calls stop failing, and the test would fail.
        let r = until(Some(t0 + Duration::from_millis(50)), || {
            calls += 1;
            if calls > 200_000_000 {
                return Ok(1);
            }
            Err(io::Error::from(io::ErrorKind::Interrupted))
        });
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::TimedOut);
        assert!(calls > 1, "retried");
        assert!(t0.elapsed() < Duration::from_secs(5));
        assert_eq!(until(None, || Ok(3)).unwrap(), Some(3));
        let would_block = || Err(io::Error::from(io::ErrorKind::WouldBlock));
        assert_eq!(until(Some(t0), would_block).unwrap(), None);
    }

    /// A reply that never comes ends the wait at its deadline, even while
    /// signals keep interrupting it.
    #[test]
    fn a_reply_wait_ends_at_its_deadline() {
        let (mut a, _b) = Control::pair().unwrap();
        let t0 = Instant::now();
        let e = a.recv_reply(Duration::from_millis(100)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(t0.elapsed() < Duration::from_secs(2));
        let (mut a, b) = Control::pair().unwrap();
        drop(b);
        assert_eq!(
            a.recv_reply(Duration::from_secs(5)).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }
}
