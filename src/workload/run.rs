//! Stage: timed loop orchestration, for every workload. Pins one client
//! thread per pair (`--pairs`), starts one pinned pair per case on each,
//! warms every case up, then runs `--trials` rounds. Each round runs the
//! plan's schedule, in which the cases a ratio compares are adjacent, forward
//! in even rounds and backward in odd ones (A B … B A); the client threads
//! meet at a barrier before each trial so that concurrent pairs overlap.
//! Every trial is stamped with its start and end. Results of concurrent
//! pairs are merged after the threads have joined.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::barrier::AbortBarrier;
use super::case_env::CaseEnv;
use super::load::LoadTrial;
use super::outcome::merge;
pub use super::outcome::{CaseOutcome, LoadOutcome, Reached, Run, TrialPoint};
use super::pair::AnyPair;
pub use super::rounds::{RETRIES_PER_ROUND, Watch, Widest, round_order, share};
use super::rounds::{disturbed, enough};
use super::{PairSpec, Stop, TrialUsage};
use crate::error::{Error, Result};
use crate::plan::{Budget, Plan, Workload};
use crate::samples::{BeatCell, Heartbeat, new_histogram};
use crate::spec::TransportKind;
use crate::spec::{Mode, Trace};
use crate::sys::process::Resources;
use crate::transport::{Namespaces, SocketDir, TimeWait, time_wait_before, time_wait_sockets};
use crate::{affinity, cleanup, clock};

/// Operations run, untimed, before every trial after switching cases.
pub const TRIAL_WARMUP: u64 = 50;

/// How often a transfer's sender looks at the clock when a trial is
/// bounded by time: about once per this long, never inside a send.
const CLOCK_CHECK_NS: f64 = 20_000.0;

/// Run every case of `plan`; path-bound AF_UNIX cases bind in `dir`. A
/// first Ctrl-C ([`cleanup::stop_requested`]) ends the run after the trial
/// under way; the result keeps the complete rounds. With `--precision`,
/// rounds go on until `widest` is within the target, or until another
/// round would pass `--max-time` (always at least `--trials` rounds).
pub fn run(
    plan: &Plan,
    dir: Option<&SocketDir>,
    watch: Option<&Watch>,
    widest: Option<Widest<'_>>,
) -> Result<Run> {
    // `--netns`: the namespaces live until this returns (or the process dies).
    let ns = &Namespaces::new(plan.cases.iter().map(|c| c.netns), &plan.tunings())?;
    let beats: Vec<BeatCell> = (0..plan.pairs).map(|_| BeatCell::default()).collect();
    let barrier = AbortBarrier::new(plan.pairs);
    let started = Instant::now();
    let origin_ns = clock::now_ns();
    // Pipes take no SO_RCVTIMEO: in process mode a stopped server would block
    // the client for ever, so a watchdog kills servers that stop progressing.
    let supervise = plan
        .cases
        .iter()
        .any(|c| c.knobs.mode == Mode::Process && c.transport == TransportKind::Pipe);
    let fired = AtomicBool::new(false);
    let results: Vec<Result<Measured>> = std::thread::scope(|s| {
        let mut handles = Vec::new();
        for (p, beat) in beats.iter().enumerate() {
            let barrier = &barrier;
            let h = std::thread::Builder::new()
                .name(format!("client-{p}"))
                .spawn_scoped(s, move || {
                    let r = measure(
                        plan,
                        p,
                        (dir, ns),
                        (&beat.0, barrier),
                        origin_ns,
                        (watch, widest),
                    );
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
        if supervise {
            watchdog(&handles, &beats, plan.opts.timeout, &fired);
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
    if let Some(mut e) = first_err {
        if fired.load(Relaxed)
            && let Error::Run { cause, .. } = &mut e
        {
            cause.push_str(&format!(
                " (sockbench's watchdog killed the server after {} without progress)",
                humantime::format_duration(plan.opts.timeout)
            ));
        }
        return Err(e);
    }
    let clock_read_ns = ok.first().map_or(0.0, |(_, c, _, _)| *c);
    let precision = ok.first().and_then(|(_, _, r, _)| r.clone());
    let retried = ok.first().map_or(0, |(_, _, _, n)| *n);
    let mut per_pair = ok.into_iter().map(|(v, _, _, _)| v);
    let mut cases = per_pair.next().unwrap_or_default();
    for other in per_pair {
        for (into, from) in cases.iter_mut().zip(other) {
            merge(into, from);
        }
    }
    // Concurrent pairs stop at the same trial, so they hold the same rounds;
    // keep only rounds every pair completed.
    let rounds = cases.iter().map(|c| c.trials.len()).min().unwrap_or(0);
    for c in &mut cases {
        c.trials.truncate(rounds);
    }
    // Per-trial latency figures of concurrent pairs: the mean over pairs.
    for t in cases.iter_mut().flat_map(|c| c.trials.iter_mut()) {
        t.p50_ns /= plan.pairs as u64;
        t.p99_ns /= plan.pairs as u64;
        t.mean_ns /= plan.pairs as f64;
        t.elapsed_ns = t.end_ns.saturating_sub(t.start_ns).max(1);
    }
    Ok(Run {
        cases,
        clock_read_ns,
        elapsed: started.elapsed(),
        rounds: rounds as u32,
        precision,
        retried,
    })
}

/// What one client thread measured: each case's outcome, the clock's read
/// cost, (first client, `--precision`) how the rounds ended,
/// and (`--retry-disturbed`) how many rounds it ran again.
type Measured = (Vec<CaseOutcome>, f64, Option<Reached>, u32);

fn watchdog<T>(
    clients: &[std::thread::ScopedJoinHandle<'_, T>],
    beats: &[BeatCell],
    timeout: Duration,
    fired: &AtomicBool,
) {
    let total = || beats.iter().map(|b| b.0.load(Relaxed)).sum::<u64>();
    let (mut last, mut since) = (total(), Instant::now());
    while !clients.iter().all(|c| c.is_finished()) {
        std::thread::sleep(Duration::from_millis(100));
        let now = total();
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() > timeout {
            fired.store(true, Relaxed);
            cleanup::kill_children();
            since = Instant::now();
        }
    }
}

/// Scratch state of one client thread, allocated before any timing.
struct Scratch<'a> {
    hist: Histogram<u64>,
    /// `--trace split`: each send call's own time.
    sent: Histogram<u64>,
    /// `--trace stamp`: each round trip's spans.
    stamps: super::tracing::Stamps,
    sent_at: Vec<Instant>,
    beat: Heartbeat<'a>,
    /// `load`: the schedule's seed, one per trial.
    seed: u64,
}

/// What one trial gave, before it becomes a [`TrialPoint`].
struct TrialOut {
    usage: TrialUsage,
    ops: u64,
    start_ns: u64,
    end_ns: u64,
    delivered: u64,
    sent: u64,
    idle_ended: bool,
    load: Option<LoadTrial>,
}

/// One trial of the plan's workload on `pair`, until `stop`.
fn trial(
    pair: &mut AnyPair,
    (plan, trace): (&Plan, Trace),
    stop: Stop,
    s: &mut Scratch<'_>,
) -> Result<TrialOut> {
    s.hist.reset();
    s.sent.reset();
    s.stamps.reset();
    let (span, usage) = match pair {
        AnyPair::Dialing(p) => p.record_connect(stop, &mut s.hist, &mut s.beat, plan.verify)?,
        AnyPair::KeptOpen(p) => match plan.workload {
            Workload::Throughput { .. } => {
                let t = p.transfer(stop, plan.verify, &mut s.beat)?;
                return Ok(TrialOut {
                    usage: t.usage,
                    ops: t.sent,
                    start_ns: t.start_ns,
                    end_ns: t.start_ns + t.elapsed_ns(),
                    delivered: t.delivered,
                    sent: t.sent,
                    idle_ended: t.idle_ended,
                    load: None,
                });
            }
            w if w.depth() > 1 => {
                p.record_pipelined(stop, &mut s.hist, &mut s.beat, &mut s.sent_at)?
            }
            _ if trace == Trace::Stamp => {
                p.record_stamped(stop, (&mut s.hist, &mut s.stamps), &mut s.beat, plan.verify)?
            }
            _ => {
                let sent = (trace == Trace::Split).then_some(&mut s.sent);
                p.record_split(stop, (&mut s.hist, sent), &mut s.beat, plan.verify)?
            }
        },
        AnyPair::Fleet(p) => {
            s.seed += 1;
            let (t, usage) = p.record_load(stop, &mut s.hist, &mut s.beat, s.seed)?;
            return Ok(TrialOut {
                usage,
                ops: t.span.ops,
                start_ns: t.span.start_ns,
                end_ns: t.span.end_ns,
                delivered: t.span.ops,
                sent: t.sent,
                idle_ended: false,
                load: Some(t),
            });
        }
    };
    Ok(TrialOut {
        usage,
        ops: span.ops,
        start_ns: span.start_ns,
        end_ns: span.end_ns.max(span.start_ns + 1),
        delivered: span.ops,
        sent: span.ops,
        idle_ended: false,
        load: None,
    })
}

/// One client thread: everything from pinning to tearing its pairs down.
/// Every phase of a case (set-up, warm-up, each trial, the TIME_WAIT
/// count) runs in the case's environment, entered through [`CaseEnv`].
fn measure(
    plan: &Plan,
    p: usize,
    (dir, ns): (Option<&SocketDir>, &Namespaces),
    (beat, barrier): (&std::sync::atomic::AtomicU64, &AbortBarrier),
    origin_ns: u64,
    (watch, widest): (Option<&Watch>, Option<Widest<'_>>),
) -> Result<Measured> {
    let (server_cpu, client_cpu) = plan.placement(p);
    affinity::pin("client", client_cpu)?;
    // Sockets a client makes belong to the namespace its thread is in: it
    // enters its case's before building the pair and before every trial.
    let places = ns.client()?;
    let env = CaseEnv::new(plan, &places);
    let clock_read_ns = clock::read_cost_ns();
    // `--trace count`: the client thread's and its server's kernel events
    // (one pair: the plan refuses more).
    let client_tid = nix::unistd::gettid().as_raw() as u32;
    let mut pairs = Vec::with_capacity(plan.cases.len());
    for c in &plan.cases {
        // A first Ctrl-C before any round is complete aborts: nothing is
        // kept, and set-up is not finished first.
        if cleanup::stop_requested() {
            return Err(Error::Interrupted);
        }
        let inside = env.enter(c)?;
        let mut spec = PairSpec::for_case(plan, c, server_cpu);
        spec.opts.netns = ns.placement(c.netns);
        let mut pair = AnyPair::new(spec, dir);
        if let (Ok(AnyPair::KeptOpen(p)), Trace::Stamp) = (&mut pair, c.knobs.trace) {
            p.stamp()?;
        }
        inside.leave()?;
        pairs.push(pair?);
    }
    // TIME_WAIT sockets already on each listener's port (earlier users of
    // the port number), per side, so that only this run's are counted.
    let mut tw_before = Vec::with_capacity(pairs.len());
    for (pair, case) in pairs.iter().zip(&plan.cases) {
        tw_before.push(match pair.listen_port() {
            None => (Vec::new(), Vec::new()),
            Some(port) => (
                env.on_server_side(case, || time_wait_before(port))?,
                time_wait_before(port),
            ),
        });
    }
    let mut s = Scratch {
        hist: new_histogram(),
        sent: new_histogram(),
        stamps: super::tracing::Stamps::default(),
        sent_at: vec![Instant::now(); plan.workload.depth() as usize],
        beat: Heartbeat::new(beat),
        seed: 0,
    };
    // Warm every case up; a transfer's sender then looks at the clock about
    // every CLOCK_CHECK_NS.
    let mut check_every = Vec::with_capacity(pairs.len());
    for (pair, case) in pairs.iter_mut().zip(&plan.cases) {
        let inside = env.enter(case)?;
        let per_op_ns = warm_up(pair, (plan, case.knobs.trace), &mut s);
        inside.leave()?;
        let per_op_ns = per_op_ns?;
        if p == 0
            && let Some(w) = watch
        {
            w.warmed.fetch_add(1, Relaxed);
        }
        check_every.push(
            ((CLOCK_CHECK_NS / per_op_ns.max(1.0)) as u64)
                .clamp(1, 4096)
                .next_power_of_two(),
        );
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
            load: matches!(pair, AnyPair::Fleet(_)).then(LoadOutcome::new),
        })
        .collect();
    let schedule = plan.schedule();
    // A round's figures are kept only once the round is complete: a stop
    // (first Ctrl-C) in the middle of one keeps the complete rounds only.
    let mut pending: Vec<Option<(TrialPoint, TrialUsage)>> = vec![None; pairs.len()];
    let mut pending_hist: Vec<Histogram<u64>> = (0..pairs.len()).map(|_| new_histogram()).collect();
    let mut pending_load: Vec<Option<LoadOutcome>> = pairs
        .iter()
        .map(|p| matches!(p, AnyPair::Fleet(_)).then(LoadOutcome::new))
        .collect();
    // `--precision`: rounds beyond --trials until the CIs are narrow enough.
    let last = if plan.precision.is_some() {
        u32::MAX
    } else {
        plan.trials
    };
    let rounds_started = Instant::now();
    let mut reached = None;
    let mut retried = 0;
    'rounds: for round in 0..last {
        let mut attempts = 0;
        'attempt: loop {
            let order = round_order(&schedule, round);
            for i in order {
                if cleanup::stop_requested() {
                    barrier.abort(); // the other pairs stop at this same trial
                    break 'rounds;
                }
                for p in &mut pairs {
                    p.check_alive()?;
                }
                // Client 0 samples the (shared) process, untimed, before the
                // trial's warm-up; `merge` keeps pair 0's figures.
                let resources = if p == 0 {
                    Resources::now().unwrap_or_default()
                } else {
                    Resources::default()
                };
                let inside = env.enter(&plan.cases[i])?;
                let warm = match pairs[i] {
                    AnyPair::Fleet(_) => Stop {
                        time: Some(LOAD_TRIAL_WARMUP),
                        ..Stop::count(TRIAL_WARMUP)
                    },
                    _ => Stop::count(TRIAL_WARMUP),
                };
                let trace = plan.cases[i].knobs.trace;
                trial(&mut pairs[i], (plan, trace), warm, &mut s)?;
                if barrier.wait().is_err() {
                    if cleanup::stop_requested() {
                        break 'rounds;
                    }
                    return Err(Error::Interrupted);
                }
                let stop = match plan.budget {
                    Budget::Iterations(total) => Stop::count(share(total, plan.trials, round)),
                    Budget::Duration(d) => Stop {
                        check_every: check_every[i],
                        ..Stop::time(d / plan.trials)
                    },
                };
                let tids = [client_tid, pairs[i].server_tid()];
                let cpu = super::tracing::CpuWatch::start();
                let (t, events) = super::tracing::counted(plan, &plan.cases[i], tids, || {
                    trial(&mut pairs[i], (plan, trace), stop, &mut s)
                })?;
                let interference = cpu.finish(plan, &plan.cases[i], p, &t.usage);
                inside.leave()?;
                pending_hist[i]
                    .add(&s.hist)
                    .expect("histograms share bounds");
                if let (Some(lt), Some(pl), AnyPair::Fleet(fp)) =
                    (t.load, &mut pending_load[i], &pairs[i])
                {
                    pl.add_trial(&lt, fp.load_scratch());
                }
                let q = |f: f64| {
                    if s.hist.is_empty() {
                        0
                    } else {
                        s.hist.value_at_quantile(f)
                    }
                };
                let point = TrialPoint {
                    round,
                    start_ns: t.start_ns.saturating_sub(origin_ns),
                    end_ns: t.end_ns.saturating_sub(origin_ns),
                    n: t.ops,
                    p50_ns: q(0.5),
                    p99_ns: q(0.99),
                    mean_ns: if s.hist.is_empty() {
                        0.0
                    } else {
                        s.hist.mean()
                    },
                    elapsed_ns: t.end_ns.saturating_sub(t.start_ns).max(1),
                    delivered: t.delivered,
                    sent: t.sent,
                    idle_ended: t.idle_ended,
                    resources,
                    events,
                    send_p50_ns: super::tracing::send_median(trace, &s.sent),
                    stamps: s.stamps.medians(),
                    interference,
                };
                if p == 0
                    && let Some(w) = watch
                {
                    w.trial_done(round, i, point.figure(plan.cases[i].size));
                }
                pending[i] = Some((point, t.usage));
            }
            // `--retry-disturbed`: a round in which some trial shared a
            // measured CPU is run again (its figures dropped), a few times.
            let points = pending.iter().flatten().map(|(t, _)| t);
            if plan.retry_disturbed && attempts < RETRIES_PER_ROUND && disturbed(points) {
                attempts += 1;
                retried += 1;
                if p == 0
                    && let Some(w) = watch
                {
                    w.round_dropped(schedule.len());
                }
                pending.iter_mut().for_each(|p| *p = None);
                pending_hist.iter_mut().for_each(Histogram::reset);
                pending_load
                    .iter_mut()
                    .flatten()
                    .for_each(LoadOutcome::reset);
                continue 'attempt;
            }
            break;
        }
        for (((o, p), h), l) in outcomes
            .iter_mut()
            .zip(&mut pending)
            .zip(&mut pending_hist)
            .zip(&mut pending_load)
        {
            if let Some((point, usage)) = p.take() {
                o.trials.push(point);
                o.usage.add(&usage);
                o.hist.add(&*h).expect("histograms share bounds");
                h.reset();
                if let (Some(into), Some(l)) = (&mut o.load, l) {
                    into.add(l);
                    l.reset();
                }
            }
        }
        if let (Some(target), Some(widest)) = (plan.precision, widest) {
            let now = widest(&outcomes);
            if let Some(w) = watch {
                w.widest
                    .store(now.as_ref().map_or(0.0, |x| x.0).to_bits(), Relaxed);
            }
            reached = enough(
                target,
                now,
                round + 1,
                plan.trials,
                rounds_started.elapsed(),
            );
            if reached.is_some() {
                break;
            }
        }
    }
    for ((o, pair), (on_server, on_client)) in outcomes.iter_mut().zip(&pairs).zip(&tw_before) {
        // Each side's TIME_WAIT sockets, in that side's namespace.
        if let Some(port) = pair.listen_port() {
            let server =
                env.on_server_side(&o.case, || time_wait_sockets(port, on_server).server)?;
            let client = time_wait_sockets(port, on_client).client;
            o.time_wait = Some(TimeWait { server, client });
        }
    }
    drop(pairs);
    Ok((outcomes, clock_read_ns, reached, retried))
}

/// Warm a pair up until both the count and the time of the plan are met
/// (an open-loop `load` case: its time only, at its rate); returns the wall
/// time per operation of the last chunk (ns). A first Ctrl-C ends it.
fn warm_up(pair: &mut AnyPair, (plan, trace): (&Plan, Trace), s: &mut Scratch<'_>) -> Result<f64> {
    let start = Instant::now();
    let mut done = 0u64;
    let open_loop = matches!(pair, AnyPair::Fleet(_));
    loop {
        if cleanup::stop_requested() {
            return Err(Error::Interrupted);
        }
        let chunk = match plan.warmup.saturating_sub(done) {
            0 => 200, // count met, time not yet
            left => left.clamp(10, 1000),
        };
        let stop = if open_loop {
            // Requests leave at the case's rate: a count could take hours.
            Stop::time(
                plan.warmup_time
                    .saturating_sub(start.elapsed())
                    .clamp(LOAD_WARMUP_MIN, LOAD_WARMUP_CHUNK),
            )
        } else {
            Stop::count(chunk)
        };
        let t = trial(pair, (plan, trace), stop, s)?;
        done += t.ops;
        let count_met = open_loop || done >= plan.warmup;
        if count_met && start.elapsed() >= plan.warmup_time {
            return Ok((t.end_ns - t.start_ns) as f64 / t.ops.max(1) as f64);
        }
    }
}

/// An open-loop case's warm-up runs for `--warmup-time` in chunks of at
/// most this long (a Ctrl-C is answered between them), and at least one
/// chunk this long.
const LOAD_WARMUP_CHUNK: Duration = Duration::from_millis(100);
const LOAD_WARMUP_MIN: Duration = Duration::from_millis(20);

/// The untimed operations before a trial: [`TRIAL_WARMUP`], and for an
/// open-loop case no longer than this.
const LOAD_TRIAL_WARMUP: Duration = Duration::from_millis(20);
