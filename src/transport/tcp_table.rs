//! Stage: transport set-up (accounting). The TCP connection table of the
//! calling thread's network namespace (/proc/thread-self/net/tcp and tcp6):
//! TIME_WAIT sockets per side of a listening port, and the connection a
//! peer's port belongs to. Read only between trials or after a failure,
//! never while timing.

/// TCP sockets in TIME_WAIT on one listening port, by the side that holds
/// them: the server's (local port = the listening port) or the client's
/// (an ephemeral local port, remote port = the listening port). Only the
/// side that closes first goes through TIME_WAIT.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TimeWait {
    pub server: usize,
    pub client: usize,
}

/// One row of /proc/net/tcp{,6}: local port, remote port, state, uid, inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TcpRow {
    pub(super) local_port: u16,
    pub(super) remote_port: u16,
    pub(super) state: u8,
    pub(super) uid: u32,
    pub(super) inode: u64,
}

/// The TCP sockets of the calling thread's network namespace.
fn rows() -> Vec<TcpRow> {
    let port = |a: &str| {
        a.rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok())
    };
    ["/proc/thread-self/net/tcp", "/proc/thread-self/net/tcp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|t| {
            t.lines()
                .skip(1)
                .filter_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    Some(TcpRow {
                        local_port: port(f.get(1)?)?,
                        remote_port: port(f.get(2)?)?,
                        state: u8::from_str_radix(f.get(3)?, 16).ok()?,
                        uid: f.get(7)?.parse().ok()?,
                        inode: f.get(9)?.parse().ok()?,
                    })
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The TCP connections in TIME_WAIT (state 06) on `port` now, as (local,
/// remote) port pairs, in the calling thread's network namespace. Taken when
/// a listener is made, so that [`time_wait_sockets`] leaves out sockets of
/// earlier connections whose port number the listener happened to reuse.
pub fn time_wait_before(port: u16) -> Vec<(u16, u16)> {
    rows()
        .into_iter()
        .filter(|r| r.state == 0x06 && (r.local_port == port || r.remote_port == port))
        .map(|r| (r.local_port, r.remote_port))
        .collect()
}

/// TCP sockets in TIME_WAIT (state 06) on `port`, per side, in the calling
/// thread's network namespace, but for those listed in `before`.
pub fn time_wait_sockets(port: u16, before: &[(u16, u16)]) -> TimeWait {
    let mut tw = TimeWait::default();
    for r in rows().into_iter().filter(|r| r.state == 0x06) {
        if before.contains(&(r.local_port, r.remote_port)) {
            continue;
        }
        if r.local_port == port {
            tw.server += 1;
        } else if r.remote_port == port {
            tw.client += 1;
        }
    }
    tw
}

/// The established (or closing) connection whose local port is `local`
/// and remote port `remote`, if the table holds it.
pub(super) fn connection(local: u16, remote: u16) -> Option<TcpRow> {
    rows()
        .into_iter()
        .find(|r| r.local_port == local && r.remote_port == remote && r.state == 0x01)
}
