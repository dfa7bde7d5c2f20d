//! Stage: entry point (display). Live progress on stderr while a run
//! measures: the case and round under way with the case's figure so far
//! (its median and CI, as iperf3 gives each interval), elapsed time and the
//! ETA of the whole run, and before it starts what `--duration` means for the total.
//! Drawn by a thread of its own that only reads the run's counters
//! ([`Watch`]), a few times a second: nothing is drawn from inside a timed
//! region, and the measuring threads never wait for the display.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sockbench::plan::{Budget, Plan, Workload};
use sockbench::report::table::gbit;
use sockbench::report::text::wrap;
use sockbench::spec::size_label;
use sockbench::stats;
use sockbench::workload::run::Watch;

/// With `--precision`, past `--trials`: how often a log gets a line.
const PRECISION_LINE_EVERY: Duration = Duration::from_secs(5);

/// How often the display is redrawn.
const TICK: Duration = Duration::from_millis(250);

/// A progress display for one run; cleared when dropped.
pub struct Drawing {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// What the run will take: one line, said before it starts.
pub fn estimate(plan: &Plan) -> String {
    let (cases, rounds) = (plan.cases.len(), plan.trials);
    let cases = match cases {
        1 => "1 case".to_string(),
        n => format!("{n} cases"),
    };
    if let Some(p) = plan.precision {
        return format!(
            "{cases} × at least {rounds} rounds, then more until every 95% CI is within ±{}% of its value, \
             or until another round would pass --max-time {}",
            100.0 * p.target,
            humantime::format_duration(p.max_time)
        );
    }
    let per_case = match plan.budget {
        Budget::Duration(d) => Some(d),
        Budget::Iterations(_) => None,
    };
    match per_case {
        Some(d) => {
            let timed = d * plan.cases.len() as u32;
            // Warm-up per case, and a few ms of set-up and untimed warm-up per trial.
            let all = planned_time(plan).unwrap_or(timed);
            format!(
                "{cases} × {rounds} rounds: --duration {} of timed work per case ({} per trial), {} in all; about {} with warm-up",
                humantime::format_duration(d),
                humantime::format_duration(round_ms(d / rounds)),
                humantime::format_duration(round_ms(timed)),
                humantime::format_duration(Duration::from_secs(all.as_secs().max(1)))
            )
        }
        None => format!(
            "{cases} × {rounds} rounds (an operation count per case: the time it takes is not known ahead)"
        ),
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

impl Drawing {
    /// Say what the run will take and start drawing its progress: a live
    /// line on a terminal, else one plain line per round (for a log).
    pub fn start(plan: &Plan, watch: Arc<Watch>) -> Drawing {
        let total = (plan.cases.len() as u64) * u64::from(plan.trials);
        let names: Vec<String> = plan
            .cases
            .iter()
            .map(|c| {
                if c.response != c.size && c.response > 0 {
                    format!(
                        "{} {}/{}",
                        c.transport,
                        size_label(c.size),
                        size_label(c.response)
                    )
                } else {
                    format!("{} {}", c.transport, size_label(c.size))
                }
            })
            .collect();
        let (cases, rounds) = (plan.cases.len(), plan.trials);
        let precision = plan.precision;
        let transfer = matches!(plan.workload, Workload::Throughput { .. });
        let pairs = plan.pairs;
        let terminal = std::io::stderr().is_terminal();
        let bar = terminal.then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            // The counts and the time left first, then the case, cut to
            // the terminal's width (`wide_msg`): a line never wraps. No
            // bar: the counts say as much, and a bar would not fit 60
            // columns beside them.
            bar.set_style(
                ProgressStyle::with_template("{prefix} {wide_msg}").expect("a valid template"),
            );
            sockbench::cleanup::display_says_interrupts(true);
            bar
        });
        let planned = planned_time(plan);
        match &bar {
            // Wrapped to the terminal's width, as the warnings are.
            Some(b) => {
                let text = match console::Term::stderr().size_checked() {
                    Some((_, c)) => {
                        wrap(&estimate(plan), usize::from(c).saturating_sub(1).max(20), 2)
                    }
                    None => estimate(plan),
                };
                for line in text.lines() {
                    b.println(line);
                }
            }
            None => say(&estimate(plan)),
        }
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("progress".into())
                .spawn(move || {
                    let started = Instant::now();
                    let mut said_rounds = 0;
                    let mut last_said = Instant::now();
                    let mut said_interrupt = false;
                    // The first trial's end: the time left is measured from
                    // there (warm-ups come before it), and the plan's
                    // estimate stands in until then.
                    let mut first: Option<(Instant, u64)> = None;
                    while !stop.load(Relaxed) {
                        let done = watch.trials_done.load(Relaxed);
                        let warmed = watch.warmed.load(Relaxed);
                        if done > 0 && first.is_none() {
                            first = Some((Instant::now(), done));
                        }
                        // (--precision has no planned total: its line shows the CI instead.)
                        let left = match first {
                            Some((t, d)) if done > d && precision.is_none() => {
                                t.elapsed().mul_f64(total.saturating_sub(done) as f64 / (done - d) as f64)
                            }
                            _ => planned.map_or(Duration::ZERO, |p| p.saturating_sub(started.elapsed())),
                        };
                        match &bar {
                            Some(bar) => {
                                if sockbench::cleanup::stop_requested() && !said_interrupt {
                                    bar.println(sockbench::cleanup::INTERRUPTED);
                                    said_interrupt = true;
                                }
                                bar.set_prefix(match precision {
                                    Some(p) => format!(
                                        "{done} trials, {} elapsed, {}",
                                        secs(started.elapsed()),
                                        widest(&watch, p.target)
                                    ),
                                    None => format!(
                                        "{done}/{total} trials, {} elapsed, ~{} left",
                                        secs(started.elapsed()),
                                        secs(left)
                                    ),
                                });
                                if warmed < cases && done == 0 {
                                    bar.set_message(format!("warming up case {} of {cases}", warmed + 1));
                                } else {
                                    let case = watch.case.load(Relaxed).min(cases - 1);
                                    let round = done / cases as u64 + 1;
                                    // The round, the case of the last trial and its figure so far.
                                    let so_far = so_far(&watch, case, transfer, pairs);
                                    bar.set_message(match precision {
                                        Some(_) => format!("round {round} (at least {rounds}), {}{so_far}", names[case]),
                                        None => format!(
                                            "round {}/{rounds}, {}{so_far}",
                                            round.min(u64::from(rounds)),
                                            names[case],
                                        ),
                                    });
                                }
                                bar.set_position(done);
                            }
                            None => {
                                let complete = done / cases as u64;
                                // With --precision the rounds can run to hundreds: past
                                // --trials, a line every few seconds.
                                let due = precision.is_none()
                                    || complete <= u64::from(rounds)
                                    || last_said.elapsed() >= PRECISION_LINE_EVERY;
                                if complete > said_rounds && due {
                                    said_rounds = complete;
                                    last_said = Instant::now();
                                    say(&match precision {
                                        Some(p) => format!(
                                            "round {complete} done, {} elapsed, {}",
                                            secs(started.elapsed()),
                                            widest(&watch, p.target)
                                        ),
                                        None => format!(
                                            "round {complete} of {rounds} done, {} elapsed, about {} left{}",
                                            secs(started.elapsed()),
                                            secs(left),
                                            // The last trial's figure, as iperf3 shows each interval.
                                            match watch.figures(watch.case.load(Relaxed)).0.last() {
                                                Some(&v) => format!(
                                                    "; last trial {}{}",
                                                    figure(v, transfer),
                                                    if pairs > 1 { ", pair 1" } else { "" }
                                                ),
                                                None => String::new(),
                                            }
                                        ),
                                    });
                                }
                            }
                        }
                        std::thread::sleep(TICK);
                    }
                    if let Some(bar) = bar {
                        // A Ctrl-C between the last tick and the end (a run it
                        // aborted at once) is said too, before the line goes.
                        if sockbench::cleanup::stop_requested() && !said_interrupt {
                            bar.println(sockbench::cleanup::INTERRUPTED);
                        }
                        bar.finish_and_clear();
                        sockbench::cleanup::display_says_interrupts(false);
                    }
                })
                .ok()
        };
        Drawing { stop, thread }
    }
}

/// A trial's figure as the table gives it
/// ([`TrialPoint::figure`](sockbench::workload::outcome::TrialPoint::figure)):
/// a transfer's rate (bytes/s) in Gbit/s, else a p50 (ns) in µs.
fn figure(v: f64, transfer: bool) -> String {
    if transfer {
        format!("{} Gbit/s", gbit(v * 8.0 / 1e9))
    } else {
        format!("p50 {:.2} µs", v / 1e3)
    }
}

/// A case's figure so far, live: the median of its trials' figures and the
/// half-width of its 95% CI (from order statistics, once it has 6 trials),
/// as iperf3 gives each interval: "tcp4 64: p50 53.21 µs ±1.1%".
fn so_far(watch: &Watch, case: usize, transfer: bool, pairs: usize) -> String {
    let (kept, n) = watch.figures(case);
    if kept.is_empty() {
        return String::new();
    }
    let m = stats::median(&kept);
    let ci = stats::median_ci_order(&kept)
        .map(|c| format!(" ±{:.1}%", 50.0 * (c.high - c.low) / m))
        .unwrap_or_default();
    let last = match n > kept.len() {
        true => format!(" (its last {} trials)", kept.len()),
        false => String::new(),
    };
    // With --pairs, the first pair's trials (the table adds or averages all).
    let whose = match pairs {
        1 => String::new(),
        n => format!(" (pair 1 of {n})"),
    };
    format!(": {}{ci}{last}{whose}", figure(m, transfer))
}

/// `--precision`: the widest watched CI half-width after the last round,
/// beside the target ("widest CI ±3.4% (want ±2%)").
fn widest(watch: &Watch, target: f64) -> String {
    let h = f64::from_bits(watch.widest.load(Relaxed));
    if h > 0.0 {
        format!("widest CI ±{:.1}% (want ±{}%)", 100.0 * h, 100.0 * target)
    } else {
        format!("CIs from 5 rounds (want ±{}%)", 100.0 * target)
    }
}

/// A duration to the second, as people read it: 3s, 1m 12s.
fn secs(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// The plan's estimate of the whole run, where it has one.
fn planned_time(plan: &Plan) -> Option<Duration> {
    let Budget::Duration(d) = plan.budget else {
        return None;
    };
    let cases = plan.cases.len() as u32;
    Some(d * cases + plan.warmup_time * cases + Duration::from_millis(3) * (cases * plan.trials))
}

/// One line on stderr, never a panic.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

impl Drop for Drawing {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
