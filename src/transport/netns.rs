//! Stage: transport set-up. `--netns`: containers without Docker. The
//! server and the client each get their own network namespace, joined by a
//! veth pair (`veth`), or each by a veth pair to a Linux bridge in a third
//! namespace (`bridge`, the shape of Docker's default network). Addresses
//! come from 198.18.0.0/24 and fd00:5b::/64 and exist only inside those
//! namespaces; the host's namespace and links are never touched.
//!
//! Path-bound AF_UNIX sockets cross namespaces (the file system is shared,
//! as a volume shares a socket file between containers); abstract names do
//! not (they belong to one network namespace).
//!
//! Links are configured with iproute2's `ip`, run inside each namespace.
//! The namespaces are anonymous (see [`crate::sys::netns`]): they, their
//! links and their addresses disappear when the [`Topology`] is dropped or
//! the process dies, however it dies.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::process::Command;

use crate::error::{Error, Result};
use crate::spec::{MAX_SYSCTLS, NetnsMode, Sysctl};
use crate::sys::netns;

/// Where set-up puts each end, for a run with `--netns`. Copied into every
/// [`super::TransportOpts`]; the descriptors are the [`Topology`]'s and are
/// valid while it lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub mode: NetnsMode,
    pub server_ns: RawFd,
    pub client_ns: RawFd,
}

/// Server address on the link between the namespaces (RFC 2544's
/// benchmarking range, never routed).
pub const SERVER_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// Client address on that link.
pub const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// Server IPv6 address (unique local).
pub const SERVER_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x5b, 0, 0, 0, 0, 0, 1);
/// Client IPv6 address.
pub const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x5b, 0, 0, 0, 0, 0, 2);

/// The namespaces of one run and the links between them.
#[derive(Debug)]
pub struct Topology {
    mode: NetnsMode,
    server: OwnedFd,
    client: OwnedFd,
    /// The bridge's namespace (`bridge` only), kept alive with the others.
    _switch: Option<OwnedFd>,
}

impl Topology {
    /// Build the namespaces and links for `mode` (not `Off`). Needs
    /// CAP_SYS_ADMIN and CAP_NET_ADMIN, the veth (and bridge) kernel
    /// support, and iproute2's `ip`.
    pub fn new(mode: NetnsMode) -> Result<Topology> {
        let fail = |step: &str, reason: String| Error::Netns {
            mode: mode.name(),
            step: step.to_string(),
            reason,
        };
        let make = || {
            netns::create().map_err(|e| {
                let hint = if e.raw_os_error() == Some(libc::EPERM) {
                    "; needs CAP_SYS_ADMIN and CAP_NET_ADMIN (run as root); the other --netns off runs need neither"
                } else {
                    ""
                };
                fail("unshare(CLONE_NEWNET)", format!("{e}{hint}"))
            })
        };
        let (server, client) = (make()?, make()?);
        let switch = if mode == NetnsMode::Bridge {
            Some(make()?)
        } else {
            None
        };
        let ip = |ns: &OwnedFd, args: &[&str]| -> Result<()> {
            let mut cmd = Command::new("ip");
            cmd.args(args);
            netns::command_in(&mut cmd, ns.as_raw_fd());
            let step = format!("ip {}", args.join(" "));
            let out = cmd.output().map_err(|e| {
                let hint = if e.kind() == std::io::ErrorKind::NotFound {
                    "; needs iproute2's `ip` on PATH (apt-get install iproute2)"
                } else {
                    ""
                };
                fail(&step, format!("{e}{hint}"))
            })?;
            if !out.status.success() {
                let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
                return Err(fail(&step, why));
            }
            Ok(())
        };
        // `ip ... netns <path>` opens the path: our descriptor, seen from `ip`.
        let path = |ns: &OwnedFd| format!("/proc/{}/fd/{}", std::process::id(), ns.as_raw_fd());
        // Each end: the veth end named `dev` inside `ns`, with its addresses.
        let end = |ns: &OwnedFd, dev: &str, v4: Ipv4Addr, v6: Ipv6Addr| -> Result<()> {
            ip(ns, &["link", "set", "lo", "up"])?;
            ip(ns, &["addr", "add", &format!("{v4}/24"), "dev", dev])?;
            ip(
                ns,
                &[
                    "-6",
                    "addr",
                    "add",
                    &format!("{v6}/64"),
                    "dev",
                    dev,
                    "nodad",
                ],
            )?;
            ip(ns, &["link", "set", dev, "up"])
        };
        match &switch {
            None => {
                ip(
                    &client,
                    &[
                        "link", "add", "sbc0", "type", "veth", "peer", "name", "sbs0",
                    ],
                )?;
                ip(&client, &["link", "set", "sbs0", "netns", &path(&server)])?;
            }
            Some(sw) => {
                ip(sw, &["link", "add", "sbbr", "type", "bridge"])?;
                for (ns, dev, port) in [(&client, "sbc0", "sbcp"), (&server, "sbs0", "sbsp")] {
                    ip(
                        sw,
                        &["link", "add", port, "type", "veth", "peer", "name", dev],
                    )?;
                    ip(sw, &["link", "set", dev, "netns", &path(ns)])?;
                    ip(sw, &["link", "set", port, "master", "sbbr"])?;
                    ip(sw, &["link", "set", port, "up"])?;
                }
                ip(sw, &["link", "set", "sbbr", "up"])?;
            }
        }
        end(&client, "sbc0", CLIENT_V4, CLIENT_V6)?;
        end(&server, "sbs0", SERVER_V4, SERVER_V6)?;
        // Until the kernel has activated the new links' queues, packets are
        // dropped: wait for a datagram to get through before measuring.
        probe(&server, &client)
            .map_err(|e| fail("probe 198.18.0.1 from the client's namespace", e))?;
        Ok(Topology {
            mode,
            server,
            client,
            _switch: switch,
        })
    }

    /// What [`super::TransportOpts::netns`] carries.
    pub fn placement(&self) -> Placement {
        Placement {
            mode: self.mode,
            server_ns: self.server.as_raw_fd(),
            client_ns: self.client.as_raw_fd(),
        }
    }
}

/// Send a UDP datagram from the client's namespace to the server's every
/// 10 ms until one arrives (at most 2 s).
fn probe(server: &OwnedFd, client: &OwnedFd) -> std::result::Result<(), String> {
    use std::net::{SocketAddr, UdpSocket};
    let bind = |ns: &OwnedFd, ip: Ipv4Addr| {
        netns::within(ns.as_raw_fd(), || {
            UdpSocket::bind(SocketAddr::from((ip, 0)))
        })
        .and_then(|r| r)
        .map_err(|e| e.to_string())
    };
    let (rx, tx) = (bind(server, SERVER_V4)?, bind(client, CLIENT_V4)?);
    let to = rx.local_addr().map_err(|e| e.to_string())?;
    rx.set_read_timeout(Some(std::time::Duration::from_millis(10)))
        .map_err(|e| e.to_string())?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut buf = [0u8; 8];
    while std::time::Instant::now() < deadline {
        tx.send_to(b"sockbench", to).map_err(|e| e.to_string())?;
        if rx.recv(&mut buf).is_ok() {
            return Ok(());
        }
    }
    Err("no datagram got through in 2 s".into())
}

impl Placement {
    /// Move the calling thread into the client's namespace: the sockets it
    /// makes from now on (client ends, per-request connections) are there.
    pub fn enter_client(&self) -> Result<()> {
        netns::enter(self.client_ns).map_err(|e| Error::Netns {
            mode: self.mode.name(),
            step: "setns(client namespace)".into(),
            reason: e.to_string(),
        })
    }

    /// Run `f` (a socket's creation, a look at /proc/thread-self/net)
    /// inside the server's namespace.
    pub fn server<T>(&self, f: impl FnOnce() -> std::io::Result<T>) -> std::io::Result<T> {
        netns::within(self.server_ns, f)?
    }
}

/// The sysctl values of one `--sysctl` combination: (index of each
/// sysctl's value, in the run's order; the values to write, by /proc/sys path).
pub type Tuning = ([u8; MAX_SYSCTLS], Vec<(String, String)>);

/// Every namespace a run uses: one [`Topology`] per `--netns` mode other
/// than `off`, and, with `--sysctl`, one private namespace per combination
/// of sysctl values, where client and server of its cases both live (lo
/// up, the values written). Shared by the client threads.
#[derive(Debug, Default)]
pub struct Namespaces {
    topologies: Vec<(NetnsMode, Topology)>,
    tuned: Vec<([u8; MAX_SYSCTLS], OwnedFd)>,
}

/// Why a `--sysctl` cannot be used, for the one-line refusal.
#[derive(Debug)]
pub enum SysctlRefusal {
    /// No private namespace could be made (not root).
    NoNamespace(std::io::Error),
    /// No such sysctl on this kernel.
    Unknown,
    /// The kernel refused this value.
    Value(String, std::io::Error),
}

/// What the kernel made of a `--sysctl`: host-wide (its values are tried
/// on the host later, only when the user allows host sysctls), or per
/// network namespace with each value as the kernel reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SysctlProbe {
    Host,
    PerNamespace(Vec<String>),
}

/// Check `sysctls` before anything runs: each must exist, and is either
/// per network namespace (present and writable in a fresh one, and then
/// every value given must be taken there; each is read back) or
/// host-wide. Values are written only inside a throwaway namespace; the
/// host's are never touched here.
pub fn check_sysctls(
    sysctls: &[Sysctl],
) -> std::result::Result<Vec<SysctlProbe>, (usize, SysctlRefusal)> {
    let ns = netns::create().map_err(|e| (0, SysctlRefusal::NoNamespace(e)))?;
    for (i, s) in sysctls.iter().enumerate() {
        if !std::path::Path::new(&s.path()).exists() {
            return Err((i, SysctlRefusal::Unknown));
        }
    }
    netns::within(ns.as_raw_fd(), || {
        let mut out = Vec::new();
        for (i, s) in sysctls.iter().enumerate() {
            let path = s.path();
            if std::fs::OpenOptions::new().write(true).open(&path).is_err() {
                out.push(SysctlProbe::Host);
                continue;
            }
            let mut held = Vec::new();
            for v in &s.values {
                let refused = |e| (i, SysctlRefusal::Value(v.clone(), e));
                crate::sys::sysctl::write_value(&path, v).map_err(refused)?;
                held.push(crate::sys::sysctl::read_value(&path).map_err(refused)?);
            }
            out.push(SysctlProbe::PerNamespace(held));
        }
        Ok(out)
    })
    .map_err(|e| (0, SysctlRefusal::NoNamespace(e)))?
}

/// A private namespace with `lo` up and `values` written in it.
fn tuned_namespace(values: &[(String, String)]) -> Result<OwnedFd> {
    let fail = |step: String, reason: String| Error::Netns {
        mode: "sysctl",
        step,
        reason,
    };
    let ns = netns::create().map_err(|e| fail("unshare(CLONE_NEWNET)".into(), e.to_string()))?;
    let mut cmd = Command::new("ip");
    cmd.args(["link", "set", "lo", "up"]);
    netns::command_in(&mut cmd, ns.as_raw_fd());
    let out = cmd
        .output()
        .map_err(|e| fail("ip link set lo up".into(), e.to_string()))?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(fail("ip link set lo up".into(), why));
    }
    netns::within(ns.as_raw_fd(), || -> Result<()> {
        for (path, v) in values {
            std::fs::write(path, v)
                .map_err(|e| fail(format!("write {v:?} to {path}"), e.to_string()))?;
        }
        Ok(())
    })
    .map_err(|e| fail("setns".into(), e.to_string()))??;
    Ok(ns)
}

impl Namespaces {
    /// Build a topology for each distinct mode in `modes` (none for
    /// `off`), and a tuned namespace for each of `tunings`.
    pub fn new(modes: impl Iterator<Item = NetnsMode>, tunings: &[Tuning]) -> Result<Self> {
        let mut ns = Namespaces::default();
        for mode in modes {
            if mode != NetnsMode::Off && ns.placement(mode).is_none() {
                ns.topologies.push((mode, Topology::new(mode)?));
            }
        }
        for (key, values) in tunings {
            ns.tuned.push((*key, tuned_namespace(values)?));
        }
        Ok(ns)
    }

    /// The tuned namespace of a sysctl combination, if the run has any.
    fn tuned(&self, key: [u8; MAX_SYSCTLS]) -> Option<RawFd> {
        self.tuned
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, fd)| fd.as_raw_fd())
    }

    /// Where set-up puts the ends of a `mode` case (`None` for `off`).
    pub fn placement(&self, mode: NetnsMode) -> Option<Placement> {
        self.topologies
            .iter()
            .find(|(m, _)| *m == mode)
            .map(|(_, t)| t.placement())
    }

    /// For one client thread: remembers the thread's own namespace, for `off`.
    pub fn client(&self) -> Result<ClientPlaces<'_>> {
        let home = if self.topologies.is_empty() && self.tuned.is_empty() {
            None
        } else {
            Some(netns::current().map_err(|e| Error::Netns {
                mode: "off",
                step: "open /proc/thread-self/ns/net".into(),
                reason: e.to_string(),
            })?)
        };
        Ok(ClientPlaces { ns: self, home })
    }
}

/// Moves one client thread into the namespace of the case it works on.
#[derive(Debug)]
pub struct ClientPlaces<'a> {
    ns: &'a Namespaces,
    home: Option<OwnedFd>,
}

impl ClientPlaces<'_> {
    /// Enter the client namespace of a `mode` case with sysctl values
    /// `tuning` (for `off` without `--sysctl`, the thread's own). No system
    /// call when the run has neither.
    pub fn enter(&self, mode: NetnsMode, tuning: [u8; MAX_SYSCTLS]) -> Result<()> {
        if let Some(fd) = self.ns.tuned(tuning) {
            return netns::enter(fd).map_err(|e| Error::Netns {
                mode: "sysctl",
                step: "setns(tuned namespace)".into(),
                reason: e.to_string(),
            });
        }
        match (self.ns.placement(mode), &self.home) {
            (Some(p), _) => p.enter_client(),
            (None, Some(home)) => netns::enter(home.as_raw_fd()).map_err(|e| Error::Netns {
                mode: "off",
                step: "setns(own namespace)".into(),
                reason: e.to_string(),
            }),
            (None, None) => Ok(()),
        }
    }

    /// Run `f` (a look at /proc/thread-self/net) in the namespace of a
    /// `mode` case's server: its own under `--netns`, else the thread's.
    pub fn on_server_side<T>(
        &self,
        mode: NetnsMode,
        tuning: [u8; MAX_SYSCTLS],
        f: impl FnOnce() -> T,
    ) -> Result<T> {
        if self.ns.tuned(tuning).is_some() {
            // Client and server share the tuned namespace.
            self.enter(mode, tuning)?;
            return Ok(f());
        }
        match self.ns.placement(mode) {
            Some(p) => p.server(|| Ok(f())).map_err(|e| Error::Netns {
                mode: mode.name(),
                step: "setns(server namespace)".into(),
                reason: e.to_string(),
            }),
            None => {
                self.enter(mode, tuning)?;
                Ok(f())
            }
        }
    }
}
