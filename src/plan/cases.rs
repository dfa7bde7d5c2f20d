//! Stage: config. Arguments → the cases of a plan: the transports asked
//! for (and what `all` leaves out, and why), each size checked against what
//! the transport can carry, every knob and rate combination, the CPUs, the
//! budget; every refusal one `Error::Config` naming the flag.

use std::path::Path;
use std::time::Duration;

use crate::affinity;
use crate::cli::{Common, TransportArg};
use crate::error::{Error, Result};
use crate::spec::{Job, LOAD_HEADER, NetnsMode, Trace, TransportKind, Wait, size_label};
use crate::transport::{TransportOpts, datagram_limit};

use super::knobs::knob_product;
use super::lists::unique;
use super::sysctl::check_sysctls;
use super::{Budget, Case, Plan, Precision, Rates, UDP4_MAX, Workload, limits};

impl Plan {
    /// The plan of `workload` over `sizes` (request, response) and `rates`,
    /// with the common arguments `c`.
    pub(super) fn new(
        workload: Workload,
        c: &Common,
        sizes: Vec<(usize, usize)>,
        rates: &Rates,
    ) -> Result<Plan> {
        let rates: &[u64] = match rates {
            Rates::List(list) => list,
            // A closed loop, or a sweep's cases before it finds their rates.
            Rates::Closed | Rates::Sweep => &[0],
        };
        let mut transports = asked_transports(c)?;
        let (dims, total) = limits::case_count(c, transports.len(), sizes.len(), rates.len());
        limits::check_count(&dims, total)?;
        let mut knobs = knob_product(c)?;
        let mut notes = Vec::new();
        let trace_ids = super::trace::trace_ids(workload, c, &mut knobs, &mut notes)?;
        let base = knobs[0];
        let sysctls = check_sysctls(c)?;
        let mut left_out: Vec<String> = Vec::new();
        admit_for(workload, c, &mut transports, &mut left_out)?;
        let netns = netns_modes(c)?;
        if netns.iter().any(|&m| m != NetnsMode::Off) {
            let ok = TransportKind::is_addressed;
            let why = "has no address to reach across --netns; allowed there";
            admit(
                &mut transports,
                &mut left_out,
                ok,
                refusal(why, ok),
                "no address to reach across --netns",
            )?;
        }
        super::trace::stamped_transports(c, &knobs, &transports, &mut notes)?;
        let mut cases = Vec::new();
        for &(transport, strict) in &transports {
            if !queue_fits(workload, transport, strict, &sysctls, &mut left_out)? {
                continue;
            }
            for &(size, response) in &sizes {
                if !size_fits(workload, transport, strict, (size, response), &mut left_out)? {
                    continue;
                }
                for &rate in rates {
                    for &netns in &netns {
                        for &knobs in &knobs {
                            if knobs.trace == Trace::Stamp && !transport.is_packet() {
                                continue;
                            }
                            cases.push(Case {
                                transport,
                                size,
                                response,
                                netns,
                                rate,
                                knobs,
                            });
                        }
                    }
                }
            }
        }
        if cases.is_empty() {
            return Err(Error::config(
                "--transport",
                "all",
                format!(
                    "no transport can run this workload at these sizes: {}",
                    left_out.join(", ")
                ),
            ));
        }
        if !left_out.is_empty() {
            let which = if c.transport.contains(&TransportArg::Ladder) {
                "ladder"
            } else {
                "all"
            };
            notes.push(format!(
                "--transport {which}: left out {}",
                left_out.join("; ")
            ));
        }
        check_cpus(c)?;
        limits::check_fit(workload, &cases, c.pairs as usize, limits::largest(&dims))?;
        let budget = budget(c)?;
        let precision = precision(c, workload)?;
        if c.retry_disturbed && c.pairs > 1 {
            return Err(Error::config(
                "--pairs",
                c.pairs,
                "--retry-disturbed runs one pair (its first client decides to run a round again)",
            ));
        }
        if let (Workload::Load { sweep: false, .. }, Budget::Duration(d)) = (workload, budget) {
            limits::check_rates(rates, d, c.trials)?;
        }
        Ok(Plan {
            workload,
            notes,
            cases,
            budget,
            warmup: c.warmup,
            warmup_time: c.warmup_time,
            trials: c.trials,
            precision,
            retry_disturbed: c.retry_disturbed,
            server_cpus: c.server_cpu.clone(),
            client_cpus: c.client_cpu.clone(),
            pairs: c.pairs as usize,
            mode: base.mode,
            base,
            sysctls,
            trace_ids,
            server_exit_after: c.fault_server_exit_after,
            opts: TransportOpts {
                nodelay: base.nodelay,
                timeout: c.timeout,
                wait: base.wait,
                ..TransportOpts::default()
            },
            verify: c.verify,
            format: c.format,
            wide: c.wide,
            progress: c.progress,
            quiet: c.quiet,
            no_warn: c.no_warn.clone(),
            out: c.out.clone(),
        })
    }
}

/// The transports asked for, each marked strict (named: it must run as
/// asked) or not (added by `all`: left out, with a note, where it cannot).
fn asked_transports(c: &Common) -> Result<Vec<(TransportKind, bool)>> {
    let named = unique(
        "--transport",
        c.transport.iter().filter_map(|t| match t {
            TransportArg::One(k) => Some(*k),
            TransportArg::All | TransportArg::Ladder => None,
        }),
        |k| k.name().to_string(),
    )?;
    let mut transports: Vec<(TransportKind, bool)> = named.iter().map(|&k| (k, true)).collect();
    if c.transport.contains(&TransportArg::All) {
        transports.extend(
            TransportKind::ALL
                .into_iter()
                .filter(|&k| k.in_all() && !named.contains(&k))
                .map(|k| (k, false)),
        );
    }
    if c.transport.contains(&TransportArg::Ladder) {
        for k in TransportKind::LADDER {
            if !transports.iter().any(|&(t, _)| t == k) {
                transports.push((k, false));
            }
        }
    }
    Ok(transports)
}

/// `--netns` modes, each once; any but `off` needs the privilege to make
/// network namespaces (tried in a throwaway one).
fn netns_modes(c: &Common) -> Result<Vec<NetnsMode>> {
    let netns = unique("--netns", c.netns.iter().copied(), |m| m.name().to_string())?;
    if let Some(&m) = netns.iter().find(|&&m| m != NetnsMode::Off)
        && let Err(e) = crate::sys::netns::create()
    {
        return Err(Error::config(
            "--netns",
            m.name(),
            format!(
                "makes private network namespaces, and unshare(CLONE_NEWNET) failed here ({e}); \
                 it needs CAP_SYS_ADMIN and CAP_NET_ADMIN (run as root), or leave --netns out"
            ),
        ));
    }
    Ok(netns)
}

/// The refusal of a named transport the run cannot use: `why`, and the
/// transports `allowed` admits.
fn refusal(
    why: &'static str,
    allowed: fn(TransportKind) -> bool,
) -> impl Fn(TransportKind) -> Error {
    move |k| {
        Error::config(
            "--transport",
            k,
            format!("{why}: {}", TransportKind::names_where(allowed)),
        )
    }
}

/// Keep the transports the workload can run; refuse what cannot be asked
/// of a connection per request.
fn admit_for(
    workload: Workload,
    c: &Common,
    transports: &mut Vec<(TransportKind, bool)>,
    left_out: &mut Vec<String>,
) -> Result<()> {
    if workload.job() == Job::Accept {
        for (flag, given) in [
            ("--sndbuf", c.sndbuf.first().map(|v| v.to_string())),
            ("--rcvbuf", c.rcvbuf.first().map(|v| v.to_string())),
            ("--busy-poll", c.busy_poll.first().map(|v| v.to_string())),
        ] {
            if let Some(v) = given {
                return Err(Error::config(
                    flag,
                    v,
                    "socket options are set on pairs kept open; a new connection per request takes the system's defaults; leave it out",
                ));
            }
        }
        if c.wait.contains(&Wait::Spin) {
            return Err(Error::config(
                "--wait",
                "spin",
                "connection set-up (connect/accept) is measured blocking; use --wait block",
            ));
        }
        let ok = TransportKind::is_connection_oriented;
        let why = "has no connections to open per request; allowed";
        admit(
            transports,
            left_out,
            ok,
            refusal(why, ok),
            "no connections to open per request",
        )?;
    }
    if workload != Workload::Latency {
        let ok = |k: TransportKind| !k.is_rung();
        let why =
            "carries one message each way at a time, for `latency` (ping-pong) only; allowed here";
        admit(transports, left_out, ok, refusal(why, ok), "latency only")?;
    }
    let waits = |&(k, _): &(TransportKind, bool)| k.waits_its_own_way();
    if c.wait.contains(&Wait::Spin)
        && let Some(&(k, _)) = transports.iter().find(|t| waits(t))
    {
        return Err(Error::config(
            "--wait",
            "spin",
            format!(
                "{k} waits as its name says (shm-spin spins, futex sleeps); --wait applies to sockets and pipes: leave it out or name {k} in a run of its own"
            ),
        ));
    }
    if transports
        .iter()
        .any(|(k, _)| *k == TransportKind::Tcp4Sockmap)
        && let Err(e) = crate::sys::bpf::Redirect::probe()
    {
        let why = format!(
            "loads a BPF sk_msg program into a sockmap, and bpf(BPF_MAP_CREATE) failed here ({e}); it needs CAP_BPF and CAP_NET_ADMIN (run as root), or leave it out"
        );
        let ok = |k: TransportKind| k != TransportKind::Tcp4Sockmap;
        admit(
            transports,
            left_out,
            ok,
            |k| Error::config("--transport", k, why.clone()),
            "needs CAP_BPF and CAP_NET_ADMIN: run as root",
        )?;
    }
    if workload.job() == Job::Load {
        let ok = TransportKind::carries_load;
        let why =
            "load runs over sockets (one descriptor per connection for its event loop); allowed";
        admit(
            transports,
            left_out,
            ok,
            refusal(why, ok),
            "load runs over sockets only",
        )?;
    }
    Ok(())
}

/// A pipelined datagram or seqpacket transport needs a queue as deep as
/// `--depth`: the host's `net.unix.max_dgram_qlen`, or the smallest value
/// `--sysctl` gives it in the cases' namespaces. False: left out (`all`).
fn queue_fits(
    workload: Workload,
    transport: TransportKind,
    strict: bool,
    sysctls: &[crate::spec::Sysctl],
    left_out: &mut Vec<String>,
) -> Result<bool> {
    let depth = workload.depth();
    let queued = matches!(
        transport,
        TransportKind::UdsDgram | TransportKind::UdsSeqpacket
    );
    if depth <= 1 || !queued {
        return Ok(true);
    }
    let given: Vec<u32> = sysctls
        .iter()
        .filter(|x| x.name == "net.unix.max_dgram_qlen")
        .flat_map(|x| x.values.iter().filter_map(|v| v.parse().ok()))
        .collect();
    let qlen: u32 = given.iter().copied().min().unwrap_or_else(|| {
        read_sysctl("net/unix/max_dgram_qlen")
            .and_then(|v| v.parse().ok())
            .unwrap_or(10)
    });
    if depth <= qlen {
        return Ok(true);
    }
    if !strict {
        left_out.push(format!(
            "{transport} (queues at most {qlen} messages, under --depth {depth})"
        ));
        return Ok(false);
    }
    Err(Error::config(
        "--depth",
        depth,
        format!(
            "{transport} queues at most net.unix.max_dgram_qlen = {qlen} messages; lower --depth, or run with --sysctl net.unix.max_dgram_qlen={depth} (in private namespaces; the host keeps its value)"
        ),
    ))
}

/// Whether `transport` carries a request of `size` and a response of
/// `response` bytes (a `load` message also its sequence number). False:
/// left out (`all`), with why; refused if the transport was named.
fn size_fits(
    workload: Workload,
    transport: TransportKind,
    strict: bool,
    (size, response): (usize, usize),
    left_out: &mut Vec<String>,
) -> Result<bool> {
    let (size_flag, response_flag) = match workload {
        Workload::Latency | Workload::Throughput { .. } => ("--size", "--size"),
        _ => ("--request-size", "--response-size"),
    };
    let numbered = workload.job() == Job::Load && !transport.is_stream();
    let mut fits = check_size(transport, size, size_flag);
    if numbered {
        // Each message carries its request's sequence number.
        let least = LOAD_HEADER;
        for (flag, s) in [(size_flag, size), (response_flag, response)] {
            if fits.is_ok() && s < least {
                fits = Err(Error::config(
                    flag,
                    s,
                    format!(
                        "load over {transport} numbers each message in its first {least} B; at least {least}"
                    ),
                ));
            }
        }
    }
    if fits.is_ok() && !matches!(workload.job(), Job::Sink | Job::Duplex) {
        fits = check_size(transport, response, response_flag);
    }
    match fits {
        Ok(()) => Ok(true),
        Err(Error::Config { .. }) if !strict => {
            let least = LOAD_HEADER;
            left_out.push(if numbered && size.min(response) < least {
                format!(
                    "{transport} at {} (under {least} B, no room for a sequence number)",
                    size_label(size.min(response))
                )
            } else {
                format!(
                    "{transport} at {} (too large for it)",
                    size_label(size.max(response))
                )
            });
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Every CPU named (`--server-cpu`, `--client-cpu`, `--placement`) is one
/// this process may run on.
fn check_cpus(c: &Common) -> Result<()> {
    let cpus = affinity::available();
    for &cpu in &c.server_cpu {
        check_cpu("--server-cpu", cpu, &cpus)?;
    }
    for &(server, client) in &c.placement {
        check_cpu("--placement", server, &cpus)?;
        check_cpu("--placement", client, &cpus)?;
    }
    for &cpu in &c.client_cpu {
        check_cpu("--client-cpu", cpu, &cpus)?;
    }
    Ok(())
}

/// How much each case measures: `-n` operations (at least one a trial) or
/// `-d` of time (1 s by default).
fn budget(c: &Common) -> Result<Budget> {
    Ok(match (c.iterations, c.duration) {
        (Some(n), _) => {
            if n < u64::from(c.trials) {
                return Err(Error::config(
                    "--iterations",
                    n,
                    format!(
                        "fewer than --trials ({}); every trial needs at least one operation",
                        c.trials
                    ),
                ));
            }
            Budget::Iterations(n)
        }
        (None, Some(d)) => Budget::Duration(d),
        (None, None) => Budget::Duration(Duration::from_secs(1)),
    })
}

/// `--precision` and `--max-time`: one pair (the first client decides,
/// after each round, whether another is needed), not a load sweep (its
/// steps are runs of their own).
fn precision(c: &Common, workload: Workload) -> Result<Option<Precision>> {
    let Some(target) = c.precision else {
        return Ok(None);
    };
    let shown = format!("{}%", target * 100.0);
    if c.pairs > 1 {
        return Err(Error::config(
            "--precision",
            shown,
            format!(
                "runs one pair (its first client decides when to stop); --pairs {} asks for more",
                c.pairs
            ),
        ));
    }
    if workload.sweeps() {
        return Err(Error::config(
            "--precision",
            shown,
            "a load sweep's steps are runs of their own; give --rate a list of rates",
        ));
    }
    Ok(Some(Precision {
        target,
        max_time: c.max_time.unwrap_or(super::DEFAULT_MAX_TIME),
    }))
}

/// Keep the transports `allowed` admits; one named by the user that it
/// does not is an error (`refuse`), one `all` added is left out with `why`.
fn admit(
    transports: &mut Vec<(TransportKind, bool)>,
    left_out: &mut Vec<String>,
    allowed: impl Fn(TransportKind) -> bool,
    refuse: impl Fn(TransportKind) -> Error,
    why: &str,
) -> Result<()> {
    if let Some(&(k, _)) = transports
        .iter()
        .find(|&&(k, strict)| strict && !allowed(k))
    {
        return Err(refuse(k));
    }
    let out: Vec<&str> = transports
        .iter()
        .filter(|&&(k, _)| !allowed(k))
        .map(|(k, _)| k.name())
        .collect();
    if !out.is_empty() {
        left_out.push(format!("{} ({why})", out.join(", ")));
    }
    transports.retain(|&(k, _)| allowed(k));
    Ok(())
}

/// Refuse sizes a transport cannot carry, with the limit and what raises
/// it; `flag` is the flag the size came from.
pub fn check_size(kind: TransportKind, size: usize, flag: &'static str) -> Result<()> {
    if kind == TransportKind::Udp4 && size > UDP4_MAX {
        return Err(Error::config(
            flag,
            size,
            format!(
                "udp4 carries at most {UDP4_MAX} B per datagram (the IPv4 limit); use a smaller size or a stream transport"
            ),
        ));
    }
    match datagram_limit(kind, size) {
        Ok(None) => Ok(()),
        Ok(Some(limit)) => Err(Error::config(
            flag,
            size,
            format!(
                "{kind} carries at most {limit} B per message here, even with SO_SNDBUF raised to net.core.wmem_max ({}); \
                 raise it with `sysctl -w net.core.wmem_max=<bytes>` or use a smaller size",
                read_sysctl("net/core/wmem_max").unwrap_or_else(|| "?".into())
            ),
        )),
        Err(e) => Err(Error::Setup {
            op: "probe",
            target: "message size limit".into(),
            transport: kind.name(),
            size,
            source: e,
        }),
    }
}

fn read_sysctl(path: &str) -> Option<String> {
    std::fs::read_to_string(Path::new("/proc/sys").join(path))
        .ok()
        .map(|s| s.trim().to_string())
}

fn check_cpu(flag: &'static str, cpu: usize, cpus: &[usize]) -> Result<()> {
    if cpus.contains(&cpu) {
        return Ok(());
    }
    Err(Error::config(
        flag,
        cpu,
        format!(
            "CPU {cpu} is not online or not allowed for this process; allowed: {}",
            affinity::format_list(cpus)
        ),
    ))
}
