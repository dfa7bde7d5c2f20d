//! Stage: transport data path. Why a data-path call failed, as the error
//! message names it: the OS's reason, a timeout, a peer that closed, a
//! length that is not the message's, a foreign connection.

use std::fmt;
use std::io;
use std::time::Duration;

/// Why a data-path call failed.
#[derive(Debug)]
pub enum Cause {
    /// The OS said no.
    Os(io::Error),
    /// Nothing arrived (or nothing could be sent) within the timeout.
    TimedOut(Duration),
    /// The peer closed its end (EOF, EPIPE, ECONNRESET, ECONNREFUSED).
    PeerClosed,
    /// A datagram of the wrong length was sent or received.
    Length { got: usize, want: usize },
    /// `--verify`: the echoed payload differs from what was sent.
    Corrupt { offset: usize },
    /// A connection to the run's listener came from another process
    /// (described here), not from the run's client.
    Foreign(String),
    /// Fault injection (`--fault-server-exit-after`, for tests): the server
    /// stops here, as a crashed one would, and says nothing.
    Injected,
    /// `load`: more requests in flight than the client keeps account of;
    /// the server has fallen that far behind the schedule.
    Backlog(usize),
}

/// A failed data-path call: which call, and why.
#[derive(Debug)]
pub struct Fault {
    /// The libc call: `send`, `recv`, `read` or `write`.
    pub call: &'static str,
    /// What went wrong.
    pub cause: Cause,
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Os(e) => write!(f, "{e}"),
            Cause::TimedOut(t) => write!(
                f,
                "no progress for {} (the peer is stuck or gone)",
                humantime::format_duration(*t)
            ),
            Cause::PeerClosed => f.write_str("the peer closed its end"),
            Cause::Length { got, want } => {
                write!(
                    f,
                    "message boundary broken: {got} B where {want} B were expected"
                )
            }
            Cause::Corrupt { offset } => {
                write!(
                    f,
                    "echoed payload differs from the one sent at byte {offset}"
                )
            }
            Cause::Injected => f.write_str("fault injection: the server stopped here"),
            Cause::Backlog(n) => write!(
                f,
                "over {n} requests in flight: the server fell that far behind the schedule (lower --rate)"
            ),
            Cause::Foreign(who) => write!(
                f,
                "a foreign process connected to the run's listener ({who}); any local user can reach a loopback TCP port or an abstract socket name, and --netns isolates a run"
            ),
        }
    }
}

impl Fault {
    /// The injected death of a server (see [`Cause::Injected`]).
    pub fn injected() -> Self {
        Fault {
            call: "recv",
            cause: Cause::Injected,
        }
    }

    /// Classify a failed call: EAGAIN after a socket timeout is a timeout;
    /// EPIPE, ECONNRESET and ECONNREFUSED mean the peer is gone.
    pub fn from_io(call: &'static str, e: io::Error, timeout: Duration) -> Self {
        let cause = match e.raw_os_error() {
            Some(libc::EAGAIN) => Cause::TimedOut(timeout),
            Some(libc::EPIPE | libc::ECONNRESET | libc::ECONNREFUSED) => Cause::PeerClosed,
            _ => Cause::Os(e),
        };
        Fault { call, cause }
    }
}
