//! Stage: timed loop orchestration, for every workload. Pins one client
//! thread per pair (`--pairs`), starts one pinned pair per case on each,
//! warms every case up, then runs `--trials` rounds in A B … B A order (odd
//! rounds reversed), the client threads meeting at a barrier before each
//! trial so that concurrent pairs overlap. Results of concurrent pairs are
//! merged after the threads have joined.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::barrier::AbortBarrier;
use super::{Job, Mode, PinnedPair, TrialUsage};
use crate::error::{Error, Result};
use crate::plan::{Budget, Case, Plan, Workload};
use crate::samples::{Heartbeat, new_histogram};
use crate::sys::process::Resources;
use crate::transport::{Buffers, Namespaces, SocketDir, TransportKind};
use crate::{affinity, cleanup, clock};

/// Operations run, untimed, before every trial after switching cases.
pub const TRIAL_WARMUP: u64 = 50;

/// One trial's figures, kept for confidence intervals and paired ratios.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct TrialPoint {
    /// Round (0-based); trials of different cases in one round are paired.
    pub round: u32,
    /// Operations timed (over all pairs).
    pub n: u64,
    /// Median latency of the trial (mean of the pairs' medians), ns; 0 for transfers.
    pub p50_ns: u64,
    /// Mean latency of the trial, ns; 0 for transfers.
    pub mean_ns: f64,
    /// 99th percentile of the trial (mean of the pairs'), ns; 0 for transfers.
    pub p99_ns: u64,
    /// Wall time of the trial (the slowest pair), ns.
    pub elapsed_ns: u64,
    /// Messages the servers received (transfers) or requests served.
    pub delivered: u64,
    /// This process's memory, descriptors and threads just before the trial.
    #[serde(flatten)]
    pub resources: Resources,
}

/// Everything measured for one case.
#[derive(Debug)]
pub struct CaseOutcome {
    pub case: Case,
    /// Every timed latency of every trial and pair (empty for transfers).
    pub hist: Histogram<u64>,
    pub trials: Vec<TrialPoint>,
    /// CPU and syscall accounting summed over the timed trials and pairs.
    pub usage: TrialUsage,
    pub buffers: Buffers,
    /// TCP sockets left in TIME_WAIT on the listening port(s) after the case (connect).
    pub time_wait: Option<usize>,
}

/// A whole run.
#[derive(Debug)]
pub struct Run {
    pub cases: Vec<CaseOutcome>,
    /// Median cost of one clock read on the (first) client CPU, ns.
    pub clock_read_ns: f64,
    /// Wall time of the measurement.
    pub elapsed: Duration,
}

/// Run every case of `plan`.
pub fn run(plan: &Plan) -> Result<Run> {
    // `--netns`: the namespaces live until this returns (or the process dies).
    let ns = Namespaces::new(plan.cases.iter().map(|c| c.netns))?;
    let dir = if plan.cases.iter().any(|c| c.transport.needs_dir()) {
        Some(SocketDir::new()?)
    } else {
        None
    };
    let beats: Vec<AtomicU64> = (0..plan.pairs).map(|_| AtomicU64::new(0)).collect();
    let barrier = AbortBarrier::new(plan.pairs);
    let started = Instant::now();
    // Pipes take no SO_RCVTIMEO: in process mode a stopped server would block
    // the client for ever, so a watchdog kills servers that stop progressing.
    let watch = plan.mode == Mode::Process
        && plan
            .cases
            .iter()
            .any(|c| c.transport == TransportKind::Pipe);
    let results: Vec<Result<(Vec<CaseOutcome>, f64)>> = std::thread::scope(|s| {
        let mut handles = Vec::new();
        for (p, beat) in beats.iter().enumerate() {
            let (barrier, dir, ns) = (&barrier, dir.as_ref(), &ns);
            let h = std::thread::Builder::new()
                .name(format!("client-{p}"))
                .spawn_scoped(s, move || {
                    let r = measure(plan, p, dir, ns, beat, barrier);
                    if r.is_err() {
                        barrier.abort();
                    }
                    r
                });
            match h {
                Ok(h) => handles.push(h),
                Err(e) => {
                    barrier.abort();
                    return vec![Err(Error::Setup {
                        op: "spawn",
                        target: "client thread".into(),
                        transport: "-",
                        size: 0,
                        source: e,
                    })];
                }
            }
        }
        if watch {
            watchdog(&handles, &beats, plan.opts.timeout);
        }
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    // Report the first real failure, not a thread that stopped because of it.
    let mut ok = Vec::new();
    let mut first_err = None;
    for r in results {
        match r {
            Ok(v) => ok.push(v),
            Err(Error::Interrupted) if first_err.is_some() => {}
            Err(Error::Interrupted) => first_err = Some(Error::Interrupted),
            Err(e) => {
                if matches!(first_err, None | Some(Error::Interrupted)) {
                    first_err = Some(e);
                }
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let clock_read_ns = ok.first().map_or(0.0, |(_, c)| *c);
    let mut per_pair = ok.into_iter().map(|(v, _)| v);
    let mut cases = per_pair.next().unwrap_or_default();
    for other in per_pair {
        for (into, from) in cases.iter_mut().zip(other) {
            merge(into, from);
        }
    }
    // Per-trial latency figures of concurrent pairs: the mean over pairs.
    for t in cases.iter_mut().flat_map(|c| c.trials.iter_mut()) {
        t.p50_ns /= plan.pairs as u64;
        t.p99_ns /= plan.pairs as u64;
        t.mean_ns /= plan.pairs as f64;
    }
    Ok(Run {
        cases,
        clock_read_ns,
        elapsed: started.elapsed(),
    })
}

/// Fold a concurrent pair's outcome of the same case into `into`.
fn merge(into: &mut CaseOutcome, from: CaseOutcome) {
    into.hist.add(&from.hist).expect("histograms share bounds");
    into.usage.add(&from.usage);
    into.time_wait = match (into.time_wait, from.time_wait) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    for (a, b) in into.trials.iter_mut().zip(&from.trials) {
        a.n += b.n;
        a.delivered += b.delivered;
        a.elapsed_ns = a.elapsed_ns.max(b.elapsed_ns);
        a.p50_ns += b.p50_ns;
        a.p99_ns += b.p99_ns;
        a.mean_ns += b.mean_ns;
    }
}

fn watchdog<T>(
    clients: &[std::thread::ScopedJoinHandle<'_, T>],
    beats: &[AtomicU64],
    timeout: Duration,
) {
    let total = || beats.iter().map(|b| b.load(Relaxed)).sum::<u64>();
    let (mut last, mut since) = (total(), Instant::now());
    while !clients.iter().all(|c| c.is_finished()) {
        std::thread::sleep(Duration::from_secs(1));
        let now = total();
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() > timeout {
            super::WATCHDOG_FIRED.store(true, Relaxed);
            cleanup::kill_children();
            since = Instant::now();
        }
    }
}

/// Scratch state of one client thread, allocated before any timing.
struct Scratch<'a> {
    hist: Histogram<u64>,
    sent_at: Vec<Instant>,
    beat: Heartbeat<'a>,
}

/// What one trial gave, before it becomes a [`TrialPoint`].
struct TrialOut {
    usage: TrialUsage,
    elapsed_ns: u64,
    delivered: u64,
}

/// Run `n` operations of the plan's workload on `pair`.
fn trial(pair: &mut PinnedPair, plan: &Plan, n: u64, s: &mut Scratch<'_>) -> Result<TrialOut> {
    s.hist.reset();
    let ns = |d: Duration| d.as_nanos() as u64;
    let (usage, delivered, elapsed_ns) = match (plan.workload, pair.spec().job) {
        (Workload::Throughput { .. }, _) => {
            let t = pair.transfer(n, plan.verify, &mut s.beat)?;
            (t.usage, t.delivered, t.elapsed_ns)
        }
        (_, Job::Accept) => {
            let (u, d) = pair.record_connect(n, &mut s.hist, &mut s.beat, plan.verify)?;
            (u, n, ns(d))
        }
        (w, _) if w.depth() > 1 => {
            let (u, d) = pair.record_pipelined(n, &mut s.hist, &mut s.beat, &mut s.sent_at)?;
            (u, n, ns(d))
        }
        _ => {
            let (u, d) = pair.record(n, &mut s.hist, &mut s.beat, plan.verify)?;
            (u, n, ns(d))
        }
    };
    Ok(TrialOut {
        usage,
        elapsed_ns,
        delivered,
    })
}

/// One client thread: everything from pinning to tearing its pairs down.
fn measure(
    plan: &Plan,
    p: usize,
    dir: Option<&SocketDir>,
    ns: &Namespaces,
    beat: &AtomicU64,
    barrier: &AbortBarrier,
) -> Result<(Vec<CaseOutcome>, f64)> {
    let (server_cpu, client_cpu) = plan.placement(p);
    affinity::pin("client", client_cpu)?;
    // Sockets a client makes belong to the namespace its thread is in: it
    // enters its case's before building the pair and before every trial.
    let places = ns.client()?;
    let clock_read_ns = clock::read_cost_ns();
    let mut pairs = plan
        .cases
        .iter()
        .map(|c| {
            places.enter(c.netns)?;
            let mut spec = plan.pair_spec(c, server_cpu);
            spec.opts.netns = ns.placement(c.netns);
            PinnedPair::new(spec, dir)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut s = Scratch {
        hist: new_histogram(),
        sent_at: vec![Instant::now(); plan.workload.depth() as usize],
        beat: Heartbeat::new(beat),
    };
    let aborted = |_| Error::Interrupted;
    let mut per_trial = Vec::with_capacity(pairs.len());
    for (pair, case) in pairs.iter_mut().zip(&plan.cases) {
        places.enter(case.netns)?;
        let est_ns = warm_up(pair, plan, &mut s)?;
        per_trial.push(match plan.budget {
            Budget::Iterations(_) => 0,
            Budget::Duration(d) => {
                ((d.as_nanos() as f64 / f64::from(plan.trials)) / est_ns.max(1.0)).max(1.0) as u64
            }
        });
    }
    let mut outcomes: Vec<CaseOutcome> = pairs
        .iter()
        .zip(&plan.cases)
        .map(|(pair, case)| CaseOutcome {
            case: *case,
            hist: new_histogram(),
            trials: Vec::with_capacity(plan.trials as usize),
            usage: TrialUsage::default(),
            buffers: pair.buffers(),
            time_wait: None,
        })
        .collect();
    for round in 0..plan.trials {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..pairs.len()).collect()
        } else {
            (0..pairs.len()).rev().collect()
        };
        for i in order {
            for p in &mut pairs {
                p.check_alive()?;
            }
            let n = match plan.budget {
                Budget::Iterations(total) => share(total, plan.trials, round),
                Budget::Duration(_) => per_trial[i],
            };
            places.enter(plan.cases[i].netns)?;
            trial(&mut pairs[i], plan, TRIAL_WARMUP.min(n), &mut s)?;
            // Client 0 samples the (shared) process, untimed; `merge` keeps
            // pair 0's figures.
            let resources = if p == 0 {
                Resources::now().unwrap_or_default()
            } else {
                Resources::default()
            };
            barrier.wait().map_err(aborted)?;
            let t = trial(&mut pairs[i], plan, n, &mut s)?;
            let o = &mut outcomes[i];
            o.hist.add(&s.hist).expect("histograms share bounds");
            o.usage.add(&t.usage);
            let q = |f: f64| {
                if s.hist.is_empty() {
                    0
                } else {
                    s.hist.value_at_quantile(f)
                }
            };
            o.trials.push(TrialPoint {
                round,
                n,
                p50_ns: q(0.5),
                p99_ns: q(0.99),
                mean_ns: if s.hist.is_empty() {
                    0.0
                } else {
                    s.hist.mean()
                },
                elapsed_ns: t.elapsed_ns,
                delivered: t.delivered,
                resources,
            });
        }
    }
    for (o, pair) in outcomes.iter_mut().zip(&pairs) {
        // TIME_WAIT sits with the side that closes first: the server's.
        if let Some(port) = pair.listen_port() {
            o.time_wait = Some(
                places
                    .on_server_side(o.case.netns, || crate::transport::time_wait_sockets(port))?,
            );
        }
    }
    drop(pairs);
    Ok((outcomes, clock_read_ns))
}

/// Operations in trial `round` when `total` are split over `trials`.
pub fn share(total: u64, trials: u32, round: u32) -> u64 {
    let t = u64::from(trials);
    total / t + u64::from(u64::from(round) < total % t)
}

/// Warm a pair up until both the count and the time of the plan are met;
/// returns the wall time per operation of the last chunk (ns), for sizing
/// duration-based trials.
fn warm_up(pair: &mut PinnedPair, plan: &Plan, s: &mut Scratch<'_>) -> Result<f64> {
    let start = Instant::now();
    let mut done = 0u64;
    loop {
        let chunk = match plan.warmup.saturating_sub(done) {
            0 => 200, // count met, time not yet
            left => left.clamp(10, 1000),
        };
        let t = trial(pair, plan, chunk, s)?;
        done += chunk;
        if done >= plan.warmup && start.elapsed() >= plan.warmup_time {
            return Ok(t.elapsed_ns as f64 / chunk as f64);
        }
    }
}
