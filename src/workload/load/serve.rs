//! Stage: timed loop (open-loop load). The server's event loop: every
//! request on any connection answered with its response, from one thread
//! that sleeps in `epoll_wait` between events, as nginx's and gunicorn's
//! workers do (`--wait` is the load generator's choice, not the server's),
//! until every connection has sent its end marker.

use std::os::fd::BorrowedFd;
use std::time::Duration;

use super::CHUNK;
use super::event_loop::{Loop, fd_of};
use super::framing::{Framing, HEADER, header, message};
use crate::sys::epoll::{self, Epoll, Event};
use crate::transport::{AnyEndpoint, Cause, Fault};
use crate::workload::END;

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

/// What the server answers in a trial, and how many it has answered.
#[derive(Debug, Clone, Copy)]
pub struct Answering {
    pub framing: Framing,
    /// Request and response sizes, bytes.
    pub size: usize,
    pub response: usize,
    /// Requests before an injected death (`--fault-server-exit-after`).
    pub limit: u64,
    /// Requests answered so far in the trial.
    pub served: u64,
}

impl Answering {
    /// One more request to answer; the injected death when the limit is met.
    #[inline]
    fn take(&mut self) -> Result<(), Fault> {
        if self.served == self.limit {
            return Err(Fault::injected());
        }
        self.served += 1;
        Ok(())
    }
}

/// Server side of one trial: answer every request on any of `eps` from
/// one event loop, until every connection has sent its end marker. `buf`
/// receives; responses are written from `resp` (its first [`HEADER`] bytes
/// rewritten per message). Returns the requests answered and the system
/// calls made.
pub fn serve(
    eps: &[AnyEndpoint],
    ep: &Epoll,
    st: &mut [ServerConn],
    events: &mut [Event],
    (buf, resp): (&mut [u8], &mut [u8]),
    mut a: Answering,
    timeout: Duration,
) -> Result<(u64, u64), Fault> {
    for c in st.iter_mut() {
        *c = ServerConn {
            last_end: c.last_end,
            ..ServerConn::default()
        };
    }
    a.served = 0;
    let mut lp = Loop::new(ep, timeout);
    let mut ended = 0usize;
    let mut quiet_since = std::time::Instant::now();
    while ended < eps.len() {
        let ready = lp.wait(events, timeout)?;
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
            if a.framing == Framing::Messages {
                let fresh_end = answer_messages(&mut lp, (fd, i as u64), c, buf, resp, &mut a)?;
                ended += usize::from(fresh_end);
                continue;
            }
            if epoll::events(e) & !epoll::OUT != 0 && !c.ended {
                while let Some(n) = lp.recv_now(fd, buf)? {
                    let mut pos = 0;
                    while pos < n && !c.ended {
                        if c.got == 0 {
                            c.ending = buf[pos] == END;
                        }
                        let take = (a.size - c.got).min(n - pos);
                        c.got += take;
                        pos += take;
                        if c.got == a.size {
                            c.got = 0;
                            if c.ending {
                                c.ended = true;
                                ended += 1;
                            } else {
                                a.take()?;
                                c.owe += a.response;
                            }
                        }
                    }
                    if n < buf.len() || c.ended {
                        break;
                    }
                }
            }
            let chunk = &resp[..a.response.min(CHUNK)];
            lp.flush(fd, i as u64, &mut c.owe, &mut c.want_out, chunk)?;
        }
    }
    Ok((a.served, lp.calls))
}

/// The server's turn on a message connection: send the answer that waited
/// for room, then answer each request (and acknowledge each end marker)
/// until none is left or the kernel has no room. Returns whether an end
/// marker of this trial arrived for the first time.
fn answer_messages(
    lp: &mut Loop<'_>,
    (fd, token): (BorrowedFd<'_>, u64),
    c: &mut ServerConn,
    buf: &mut [u8],
    resp: &mut [u8],
    a: &mut Answering,
) -> Result<bool, Fault> {
    let mut fresh_end = false;
    let response = a.response;
    let reply = |lp: &mut Loop<'_>, resp: &mut [u8], (marker, seq): (u8, u64)| {
        header(resp, marker, seq);
        let len = if marker == END { HEADER } else { response };
        lp.send_message(fd, &resp[..len])
    };
    loop {
        if c.owe > 0 {
            if !reply(lp, resp, c.owed)? {
                break;
            }
            c.owe = 0;
            // The trial's end counts once its acknowledgement has left.
            fresh_end |= std::mem::take(&mut c.ending);
        }
        let Some(n) = lp.recv_now(fd, buf)? else {
            break;
        };
        let (marker, seq) = message(buf, n, a.size)?;
        if marker == END {
            if seq >= c.last_end && !c.ended {
                (c.last_end, c.ended, c.ending) = (seq + 1, true, true);
            }
        } else {
            a.take()?;
        }
        (c.owe, c.owed) = (1, (marker, seq));
    }
    lp.watch_out(fd, token, c.owe > 0, &mut c.want_out)?;
    Ok(fresh_end)
}

/// The server's end of a load pair: its connections and their event loop
/// (made in the server's own thread or process, at its first trial).
#[derive(Debug)]
pub struct LoadServer {
    pub(in crate::workload) eps: Vec<AnyEndpoint>,
    ep: Option<Epoll>,
    st: Vec<ServerConn>,
    events: Vec<Event>,
}

impl LoadServer {
    pub(in crate::workload) fn new(eps: Vec<AnyEndpoint>) -> Self {
        let n = eps.len();
        Self {
            eps,
            ep: None,
            st: vec![ServerConn::default(); n],
            events: vec![epoll::empty_event(); n.max(1)],
        }
    }

    /// One trial (see [`serve`]).
    pub(in crate::workload) fn trial(
        &mut self,
        bufs: (&mut [u8], &mut [u8]),
        a: Answering,
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
            &mut self.st,
            &mut self.events,
            bufs,
            a,
            timeout,
        )
    }
}
