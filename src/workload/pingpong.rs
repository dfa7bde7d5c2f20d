//! Stage: timed loop. Ping-pong latency: the client sends one message, the
//! server echoes it, the client times the round trip. Cases are interleaved
//! round by round (A B … B A), so ratios between transports are measured
//! under the same conditions. The timed interval holds one send and one
//! receive and nothing else: no allocation, formatting, locks or logging.

use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::{Mode, PairSpec, PinnedPair, TrialUsage};
use crate::error::{Error, Result};
use crate::plan::{Budget, Plan};
use crate::samples::{Heartbeat, new_histogram};
use crate::transport::{Buffers, Cause, Endpoint, Fault, SocketDir, TransportKind};
use crate::{affinity, cleanup, clock, with_endpoint};

/// Round trips run, untimed, before every trial after switching cases.
pub const TRIAL_WARMUP: u64 = 50;

/// `n` timed round trips, each recorded into `hist`. With `VERIFY`, every
/// message carries a fresh pattern that is checked after the interval.
#[inline(never)]
pub fn timed<E: Endpoint, const VERIFY: bool>(
    ep: &mut E,
    n: u64,
    tx: &mut [u8],
    rx: &mut [u8],
    hist: &mut Histogram<u64>,
    beat: &mut Heartbeat<'_>,
    seq: &mut u8,
) -> Result<(), Fault> {
    for _ in 0..n {
        if VERIFY {
            fill_pattern(tx, *seq);
            *seq = seq.wrapping_add(1);
        }
        let t0 = Instant::now();
        ep.send_msg(tx)?;
        ep.recv_msg(rx)?;
        let t1 = Instant::now();
        hist.saturating_record(t1.duration_since(t0).as_nanos() as u64);
        beat.tick();
        if VERIFY && let Some(offset) = tx.iter().zip(rx.iter()).position(|(a, b)| a != b) {
            return Err(Fault {
                call: "recv",
                cause: Cause::Corrupt { offset },
            });
        }
    }
    Ok(())
}

/// `n` round trips timed as one batch (for criterion, which wants totals).
#[inline(never)]
pub fn batch<E: Endpoint>(
    ep: &mut E,
    n: u64,
    tx: &mut [u8],
    rx: &mut [u8],
) -> Result<Duration, Fault> {
    let t0 = Instant::now();
    for _ in 0..n {
        ep.send_msg(tx)?;
        ep.recv_msg(rx)?;
    }
    Ok(t0.elapsed())
}

/// A pattern that differs per message and per byte position.
pub fn fill_pattern(buf: &mut [u8], seq: u8) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31).wrapping_add(seq) ^ ((i >> 8) as u8);
    }
}

impl PinnedPair {
    /// `n` timed round trips recorded into `hist` (see [`timed`]).
    pub fn record(
        &mut self,
        n: u64,
        hist: &mut Histogram<u64>,
        beat: &mut Heartbeat<'_>,
        verify: bool,
    ) -> Result<TrialUsage> {
        let (_, usage) = self.trial(n, |ep, tx, rx, seq| {
            with_endpoint!(ep, e => if verify {
                timed::<_, true>(e, n, tx, rx, hist, beat, seq)
            } else {
                timed::<_, false>(e, n, tx, rx, hist, beat, seq)
            })
        })?;
        Ok(usage)
    }

    /// `n` round trips timed as one batch (see [`batch`]).
    pub fn round_trips(&mut self, n: u64) -> Result<Duration> {
        let (elapsed, _) = self.trial(
            n,
            |ep, tx, rx, _| with_endpoint!(ep, e => batch(e, n, tx, rx)),
        )?;
        Ok(elapsed)
    }
}

/// One trial's figures, kept for confidence intervals and paired ratios.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct TrialPoint {
    /// Round (0-based); trials of different cases in one round are paired.
    pub round: u32,
    /// Round trips timed.
    pub n: u64,
    /// Median RTT of the trial.
    pub p50_ns: u64,
    /// Mean RTT of the trial.
    pub mean_ns: f64,
}

/// Everything measured for one (transport, size) case.
#[derive(Debug)]
pub struct CaseOutcome {
    pub kind: TransportKind,
    pub size: usize,
    /// Every timed round trip of every trial.
    pub hist: Histogram<u64>,
    pub trials: Vec<TrialPoint>,
    /// CPU and syscall accounting summed over the timed trials.
    pub usage: TrialUsage,
    pub buffers: Buffers,
}

/// A whole `latency` run.
#[derive(Debug)]
pub struct LatencyRun {
    pub cases: Vec<CaseOutcome>,
    /// Median cost of one clock read on the client CPU, ns.
    pub clock_read_ns: f64,
    /// Wall time of the measurement.
    pub elapsed: Duration,
}

/// Run every case of `plan`: pin the client, start one pinned pair per case,
/// warm each up, then run `plan.trials` interleaved rounds.
pub fn run(plan: &Plan) -> Result<LatencyRun> {
    let dir = if plan.cases.iter().any(|c| c.transport.needs_dir()) {
        Some(SocketDir::new()?)
    } else {
        None
    };
    let beat = AtomicU64::new(0);
    let started = Instant::now();
    // Pipes take no SO_RCVTIMEO: in process mode a stopped server would block
    // the client for ever, so a watchdog kills servers that stop progressing.
    let watch = plan.mode == Mode::Process
        && plan
            .cases
            .iter()
            .any(|c| c.transport == TransportKind::Pipe);
    let (cases, clock_read_ns) = std::thread::scope(|s| {
        let client = std::thread::Builder::new()
            .name("client".into())
            .spawn_scoped(s, || measure(plan, dir.as_ref(), &beat))
            .map_err(|e| Error::Setup {
                op: "spawn",
                target: "client thread".into(),
                transport: "-",
                size: 0,
                source: e,
            })?;
        if watch {
            watchdog(&client, &beat, plan.opts.timeout);
        }
        client
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })?;
    Ok(LatencyRun {
        cases,
        clock_read_ns,
        elapsed: started.elapsed(),
    })
}

fn watchdog<T>(client: &std::thread::ScopedJoinHandle<'_, T>, beat: &AtomicU64, timeout: Duration) {
    use std::sync::atomic::Ordering::Relaxed;
    let (mut last, mut since) = (beat.load(Relaxed), Instant::now());
    while !client.is_finished() {
        std::thread::sleep(Duration::from_secs(1));
        let now = beat.load(Relaxed);
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() > timeout {
            super::WATCHDOG_FIRED.store(true, Relaxed);
            cleanup::kill_children();
            since = Instant::now();
        }
    }
}

/// The client thread: everything from pinning to tearing the pairs down.
fn measure(
    plan: &Plan,
    dir: Option<&SocketDir>,
    beat: &AtomicU64,
) -> Result<(Vec<CaseOutcome>, f64)> {
    affinity::pin("client", plan.client_cpu)?;
    let clock_read_ns = clock::read_cost_ns();
    let mut pairs = plan
        .cases
        .iter()
        .map(|c| {
            let spec = PairSpec {
                kind: c.transport,
                size: c.size,
                opts: plan.opts,
                mode: plan.mode,
                server_cpu: plan.server_cpu,
            };
            PinnedPair::new(spec, dir)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut scratch = new_histogram();
    let mut beat = Heartbeat::new(beat);
    let mut per_trial = Vec::with_capacity(pairs.len());
    for p in &mut pairs {
        let est_ns = warm_up(p, plan, &mut scratch, &mut beat)?;
        per_trial.push(match plan.budget {
            Budget::Iterations(_) => 0,
            Budget::Duration(d) => {
                ((d.as_nanos() as f64 / f64::from(plan.trials)) / est_ns.max(1.0)).max(1.0) as u64
            }
        });
    }
    let mut outcomes: Vec<CaseOutcome> = pairs
        .iter()
        .map(|p| CaseOutcome {
            kind: p.spec().kind,
            size: p.spec().size,
            hist: new_histogram(),
            trials: Vec::with_capacity(plan.trials as usize),
            usage: TrialUsage::default(),
            buffers: p.buffers(),
        })
        .collect();
    for round in 0..plan.trials {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..pairs.len()).collect()
        } else {
            (0..pairs.len()).rev().collect()
        };
        for i in order {
            let n = match plan.budget {
                Budget::Iterations(total) => share(total, plan.trials, round),
                Budget::Duration(_) => per_trial[i],
            };
            scratch.reset();
            pairs[i].record(TRIAL_WARMUP.min(n), &mut scratch, &mut beat, plan.verify)?;
            scratch.reset();
            let usage = pairs[i].record(n, &mut scratch, &mut beat, plan.verify)?;
            let o = &mut outcomes[i];
            o.hist.add(&scratch).expect("histograms share bounds");
            o.usage.add(&usage);
            o.trials.push(TrialPoint {
                round,
                n,
                p50_ns: scratch.value_at_quantile(0.5),
                mean_ns: scratch.mean(),
            });
        }
    }
    drop(pairs);
    Ok((outcomes, clock_read_ns))
}

/// Round trips in trial `round` when `total` are split over `trials`.
pub fn share(total: u64, trials: u32, round: u32) -> u64 {
    let t = u64::from(trials);
    total / t + u64::from(u64::from(round) < total % t)
}

/// Warm a pair up until both the count and the time of the plan are met;
/// returns the mean RTT of the last chunk (ns), for sizing duration trials.
fn warm_up(
    p: &mut PinnedPair,
    plan: &Plan,
    scratch: &mut Histogram<u64>,
    beat: &mut Heartbeat<'_>,
) -> Result<f64> {
    let start = Instant::now();
    let mut done = 0u64;
    loop {
        let chunk = match plan.warmup.saturating_sub(done) {
            0 => 200, // count met, time not yet
            left => left.clamp(10, 1000),
        };
        scratch.reset();
        p.record(chunk, scratch, beat, plan.verify)?;
        done += chunk;
        if done >= plan.warmup && start.elapsed() >= plan.warmup_time {
            return Ok(scratch.mean());
        }
    }
}
