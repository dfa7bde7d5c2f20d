//! Stage: system calls (kernel events). Counts of software tracepoints in
//! a pair's two threads, through `perf_event_open` (no `perf` binary,
//! no hardware counters): system calls, context switches, wake-ups, IPIs,
//! NET_RX softirqs, packets handed to a device, skb copies to user space,
//! data-ready callbacks. Counting costs time on the path it counts, so a
//! case that counts (`--trace count`) is a case of its own, beside the
//! untraced one.
//!
//! A tracepoint is named to `perf_event_open` by its id, which only tracefs
//! tells. Where tracefs is not mounted, a child process mounts it in a
//! mount namespace of its own, reads the ids and exits: the host's mounts
//! never change.

use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The events counted, with their tracepoints (and filter).
pub const EVENTS: [(&str, &str, Option<&str>); 8] = [
    ("syscalls", "raw_syscalls/sys_enter", None),
    ("context_switches", "sched/sched_switch", None),
    ("wakeups", "sched/sched_waking", None),
    ("ipis", "ipi/ipi_send_cpu", None),
    ("net_rx_softirqs", "irq/softirq_entry", Some("vec == 3")),
    ("device_xmits", "net/net_dev_xmit", None),
    ("skb_copies_to_user", "skb/skb_copy_datagram_iovec", None),
    ("data_ready", "sock/sk_data_ready", None),
];

/// Counts of [`EVENTS`] over one trial, in the client's and the server's threads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct EventCounts {
    /// System calls entered (raw_syscalls:sys_enter).
    pub syscalls: u64,
    /// Context switches (sched:sched_switch).
    pub context_switches: u64,
    /// Wake-ups asked for, in the waker (sched:sched_waking; the wake-up itself
    /// may run on the woken CPU, in its idle task).
    pub wakeups: u64,
    /// Inter-processor interrupts sent to one CPU (ipi:ipi_send_cpu).
    pub ipis: u64,
    /// NET_RX softirqs run (irq:softirq_entry, vec 3).
    pub net_rx_softirqs: u64,
    /// Packets handed to a network device (net:net_dev_xmit; lo for loopback).
    pub device_xmits: u64,
    /// skb data copied to user space (skb:skb_copy_datagram_iovec).
    pub skb_copies_to_user: u64,
    /// A socket's data-ready callback (sock:sk_data_ready).
    pub data_ready: u64,
}

impl EventCounts {
    fn from_array(a: [u64; 8]) -> Self {
        Self {
            syscalls: a[0],
            context_switches: a[1],
            wakeups: a[2],
            ipis: a[3],
            net_rx_softirqs: a[4],
            device_xmits: a[5],
            skb_copies_to_user: a[6],
            data_ready: a[7],
        }
    }

    /// The counts in [`EVENTS`] order.
    pub fn as_array(&self) -> [u64; 8] {
        [
            self.syscalls,
            self.context_switches,
            self.wakeups,
            self.ipis,
            self.net_rx_softirqs,
            self.device_xmits,
            self.skb_copies_to_user,
            self.data_ready,
        ]
    }

    /// Add another trial's counts.
    pub fn add(&mut self, o: &EventCounts) {
        let (a, b) = (self.as_array(), o.as_array());
        *self = Self::from_array(std::array::from_fn(|i| a[i] + b[i]));
    }
}

/// Where tracefs is mounted now, if it is.
fn mounted_tracefs() -> Option<String> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (_, at, fs) = (f.next()?, f.next()?, f.next()?);
        (fs == "tracefs").then(|| at.to_string())
    })
}

/// What tracefs says: the tracepoints' ids, and the tracers this kernel
/// has (`function_graph` among them, or not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracefs {
    pub ids: [u64; 8],
    /// `available_tracers`, as the kernel lists them ("blk function nop").
    pub tracers: String,
}

impl Tracefs {
    /// Whether the function_graph tracer exists here (deeper tracing than
    /// sockbench's counts; sockbench does not use it yet).
    pub fn has_function_graph(&self) -> bool {
        self.tracers
            .split_whitespace()
            .any(|t| t == "function_graph")
    }
}

fn read_tracefs(root: &str) -> io::Result<Tracefs> {
    Ok(Tracefs {
        ids: read_ids(root)?,
        tracers: std::fs::read_to_string(format!("{root}/available_tracers"))
            .unwrap_or_default()
            .trim()
            .to_string(),
    })
}

fn read_ids(root: &str) -> io::Result<[u64; 8]> {
    let mut ids = [0u64; 8];
    for (i, (_, tp, _)) in EVENTS.iter().enumerate() {
        let path = format!("{root}/events/{tp}/id");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
        ids[i] = text
            .trim()
            .parse()
            .map_err(|_| io::Error::other(format!("{path}: not a number")))?;
    }
    Ok(ids)
}

/// The tracepoints' ids: from tracefs where it is mounted, else from a
/// child that mounts it privately (root).
pub fn tracepoint_ids() -> io::Result<[u64; 8]> {
    tracefs().map(|t| t.ids)
}

/// What tracefs says (ids and tracers), read where it is mounted, else by a
/// child that mounts it in a mount namespace of its own (root).
pub fn tracefs() -> io::Result<Tracefs> {
    if let Some(root) = mounted_tracefs() {
        return read_tracefs(&root);
    }
    let (rd, wr) = crate::sys::socket::pipe()?;
    let wfd = wr.as_raw_fd();
    let child = crate::sys::process::fork_child(&[wfd], "sb-tracefs", move || {
        use nix::mount::{MsFlags, mount};
        // SAFETY: `wfd` is the pipe's write end, kept open across the fork.
        let mut out = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(wfd) });
        let result = (|| -> io::Result<Tracefs> {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                None::<&str>,
            )?;
            mount(
                Some("tracefs"),
                "/sys/kernel/tracing",
                Some("tracefs"),
                MsFlags::empty(),
                None::<&str>,
            )?;
            read_tracefs("/sys/kernel/tracing")
        })();
        let text = match result {
            Ok(t) => format!("{}|{}", t.ids.map(|i| i.to_string()).join(" "), t.tracers),
            Err(e) => format!("error {e}"),
        };
        let _ = std::io::Write::write_all(&mut out, text.as_bytes());
        0
    })?;
    drop(wr);
    let mut text = String::new();
    let read = std::fs::File::from(rd).read_to_string(&mut text);
    crate::sys::process::reap(child);
    read?;
    if let Some(e) = text.strip_prefix("error ") {
        return Err(io::Error::other(format!("mounting tracefs privately: {e}")));
    }
    let (ids, tracers) = text.split_once('|').unwrap_or((&text, ""));
    let ids: Vec<u64> = ids
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    Ok(Tracefs {
        ids: ids
            .try_into()
            .map_err(|_| io::Error::other("the tracefs helper said nothing"))?,
        tracers: tracers.trim().to_string(),
    })
}

const PERF_TYPE_TRACEPOINT: u32 = 2;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
const IOC_ENABLE: libc::c_ulong = 0x2400;
const IOC_DISABLE: libc::c_ulong = 0x2401;
const IOC_RESET: libc::c_ulong = 0x2403;
const IOC_SET_FILTER: libc::c_ulong = 0x4008_2406;

/// `struct perf_event_attr` as of its first version (64 bytes).
#[repr(C)]
struct Attr {
    kind: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    /// Bit 0: start disabled.
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
}

fn open_one(id: u64, tid: u32) -> io::Result<OwnedFd> {
    let attr = Attr {
        kind: PERF_TYPE_TRACEPOINT,
        size: std::mem::size_of::<Attr>() as u32,
        config: id,
        sample_period: 0,
        sample_type: 0,
        read_format: 0,
        flags: 1,
        wakeup_events: 0,
        bp_type: 0,
        config1: 0,
    };
    // SAFETY: `attr` is a valid perf_event_attr of the size it states; a
    // thread id with CPU -1 counts that thread wherever it runs (in its
    // system calls and in the interrupts and softirqs that run while it is
    // current); no group.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const Attr,
            tid as libc::pid_t,
            -1 as libc::c_int,
            -1 as libc::c_int,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor; no one else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn ioctl(fd: &OwnedFd, req: libc::c_ulong) -> io::Result<()> {
    // SAFETY: a perf event descriptor and an argument-less request.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req as _, 0) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Counters of every [`EVENTS`] entry in each of a set of threads: what
/// those threads do and what runs while they are current (the softirq a
/// loopback send raises runs in the sender's call). Work deferred to
/// another task (ksoftirqd) or done in an idle CPU's interrupt is not
/// theirs, and not counted; nor is any other process's.
#[derive(Debug)]
pub struct Counters {
    /// One descriptor per (event, thread).
    fds: Vec<(usize, OwnedFd)>,
}

impl Counters {
    /// Open (disabled) counters of every event in each of `tids`. Needs
    /// CAP_PERFMON (or root) where kernel.perf_event_paranoid is above 0.
    pub fn open(ids: &[u64; 8], tids: &[u32]) -> io::Result<Self> {
        let mut fds = Vec::new();
        for (i, &id) in ids.iter().enumerate() {
            for &tid in tids {
                let fd = open_one(id, tid)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", EVENTS[i].1)))?;
                if let Some(filter) = EVENTS[i].2 {
                    let c = std::ffi::CString::new(filter).expect("no NUL");
                    // SAFETY: a perf event descriptor and a NUL-terminated string.
                    let r = unsafe { libc::ioctl(fd.as_raw_fd(), IOC_SET_FILTER as _, c.as_ptr()) };
                    if r < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                fds.push((i, fd));
            }
        }
        Ok(Self { fds })
    }

    /// Zero and start every counter.
    pub fn start(&self) -> io::Result<()> {
        for (_, fd) in &self.fds {
            ioctl(fd, IOC_RESET)?;
            ioctl(fd, IOC_ENABLE)?;
        }
        Ok(())
    }

    /// Stop every counter and read the totals over the threads.
    pub fn stop(&self) -> io::Result<EventCounts> {
        for (_, fd) in &self.fds {
            ioctl(fd, IOC_DISABLE)?;
        }
        let mut sums = [0u64; 8];
        for (i, fd) in &self.fds {
            let mut v = [0u8; 8];
            let n = crate::sys::io::read(std::os::fd::AsFd::as_fd(fd), &mut v)?;
            if n != 8 {
                return Err(io::Error::other("a short read of a perf counter"));
            }
            sums[*i] += u64::from_ne_bytes(v);
        }
        Ok(EventCounts::from_array(sums))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counting a thread's system calls sees them, another thread's are
    /// not its, and a stopped counter stays still. Root only (skipped
    /// otherwise).
    #[test]
    fn counters_see_their_threads_system_calls_only() {
        let mounted = mounted_tracefs();
        let ids = match tracefs() {
            Ok(t) => {
                // Every tracefs lists at least the `nop` tracer.
                assert!(t.tracers.split_whitespace().any(|x| x == "nop"), "{t:?}");
                t.ids
            }
            Err(e) => {
                eprintln!("skipping: no tracepoint ids here ({e})");
                return;
            }
        };
        let me = nix::unistd::gettid().as_raw() as u32;
        let c = Counters::open(&ids, &[me]).unwrap();
        c.start().unwrap();
        for _ in 0..1000 {
            // SAFETY: getppid has no arguments and cannot fail.
            unsafe { libc::getppid() };
        }
        // Another thread's calls are not this one's.
        std::thread::spawn(|| {
            for _ in 0..5000 {
                // SAFETY: as above.
                unsafe { libc::getppid() };
            }
        })
        .join()
        .unwrap();
        let n = c.stop().unwrap();
        assert!((1000..4000).contains(&n.syscalls), "{n:?}");
        let again = c.stop().unwrap();
        assert_eq!(again.syscalls, n.syscalls, "a stopped counter moved");
        assert_eq!(mounted_tracefs(), mounted, "the host's mounts changed");
    }

    #[test]
    fn function_graph_is_found_by_name_only() {
        let t = |tracers: &str| Tracefs {
            ids: [0; 8],
            tracers: tracers.into(),
        };
        assert!(!t("blk function nop").has_function_graph());
        assert!(t("blk function_graph function nop").has_function_graph());
        assert!(!t("").has_function_graph());
    }
}
