//! Shared criterion settings for the benches: the quick/full profile and
//! placement from the environment, the size lists, and `define()`, which
//! registers one bench on one pinned pair (built only if the filter selects
//! it, outside the timed closure) and writes its HDR tail files.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput, measurement::WallTime};
use hdrhistogram::Histogram;
use sockbench::cli::{Switch, parse_cpu};
use sockbench::plan::BenchProfile;
use sockbench::report::Fingerprint;
use sockbench::samples::{Heartbeat, new_histogram};
use sockbench::spec::{Job, Mode, TransportKind, Wait};
use sockbench::transport::{SocketDir, TransportOpts};
use sockbench::workload::pair::ClientEnd;
use sockbench::workload::{PairSpec, PinnedPair};

fn die(msg: String) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(2)
}

/// Read `SOCKBENCH_<name>` with the library's own parser for the flag it
/// stands for, or the default; a bad value stops the bench with one line.
fn var<T>(name: &str, default: T, parse: impl Fn(&str) -> Result<T, String>) -> T {
    match std::env::var(name) {
        Err(_) => default,
        Ok(v) => parse(&v).unwrap_or_else(|why| die(format!("{name}={v}: {why}"))),
    }
}

/// A value of a clap value enum of the library (mode, wait, on/off).
fn choice<T: clap::ValueEnum>(s: &str) -> Result<T, String> {
    T::from_str(s, false).map_err(|_| {
        let names: Vec<String> = T::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value().map(|p| p.get_name().to_string()))
            .collect();
        format!("allowed: {}", names.join(", "))
    })
}

/// `SOCKBENCH_PROFILE`: the library's [`BenchProfile`] (`full` by default).
pub fn profile() -> BenchProfile {
    var(
        "SOCKBENCH_PROFILE",
        BenchProfile::Full,
        BenchProfile::from_name,
    )
}

/// Criterion settings of the profile (command-line flags still override them).
pub fn criterion() -> Criterion {
    let t = profile().timing();
    Criterion::default()
        .warm_up_time(t.warm_up)
        .measurement_time(t.measurement)
        .sample_size(t.samples)
        .nresamples(t.resamples)
}

/// Placement and options: SOCKBENCH_SERVER_CPU (0), SOCKBENCH_CLIENT_CPU (1),
/// SOCKBENCH_MODE (thread|process), SOCKBENCH_WAIT (block|spin),
/// SOCKBENCH_NODELAY (on|off). Pins the bench thread (the client).
pub struct Setup {
    pub server_cpu: usize,
    pub client_cpu: usize,
    pub mode: Mode,
    pub opts: TransportOpts,
    pub profile: BenchProfile,
    pub dir: SocketDir,
    side: SideFiles,
    /// Why tcp6 cannot run here (no ::1), if it cannot: its benches are skipped.
    no_ipv6: Option<String>,
}

impl Setup {
    pub fn from_env() -> Self {
        // Ctrl-C during `cargo bench` removes the socket directory and kills
        // forked servers, as it does for the command.
        sockbench::cleanup::install_signal_handler(sockbench::cleanup::OnInterrupt::Abort);
        let s = Setup {
            server_cpu: var("SOCKBENCH_SERVER_CPU", 0, parse_cpu),
            client_cpu: var("SOCKBENCH_CLIENT_CPU", 1, parse_cpu),
            mode: var("SOCKBENCH_MODE", Mode::Thread, choice),
            opts: TransportOpts {
                nodelay: var("SOCKBENCH_NODELAY", Switch::On, choice) == Switch::On,
                timeout: Duration::from_secs(5),
                wait: var("SOCKBENCH_WAIT", Wait::Block, choice),
                ..TransportOpts::default()
            },
            profile: profile(),
            dir: SocketDir::new().unwrap_or_else(|e| die(e.to_string())),
            side: SideFiles::from_args(),
            no_ipv6: std::net::TcpListener::bind("[::1]:0")
                .err()
                .map(|e| e.to_string()),
        };
        // If the bench is killed, a reaper child removes the socket directory.
        if let Err(e) = sockbench::cleanup::start_reaper() {
            die(format!("fork the cleanup reaper: {e}"));
        }
        if let Some(why) = &s.no_ipv6 {
            eprintln!("skipping the tcp6 benches: IPv6 is unavailable here (bind [::1]:0: {why})");
        }
        if let Err(e) = sockbench::affinity::pin("client", s.client_cpu) {
            die(format!("SOCKBENCH_CLIENT_CPU={}: {e}", s.client_cpu));
        }
        s
    }

    /// A pair of `job` for `kind` with `size`-byte requests and `response`-byte responses.
    pub fn spec(&self, kind: TransportKind, size: usize, response: usize, job: Job) -> PairSpec {
        PairSpec {
            response,
            job,
            ..PairSpec::echo(kind, size, self.opts, self.mode, self.server_cpu)
        }
    }

    /// Register `<group>/<kind>/<param>` on a pair built by `make` from
    /// `spec`. `run` does `n` operations and returns the time they took; the
    /// latencies it records during criterion's measured samples (not its
    /// warm-up) become the bench's tail side files.
    #[allow(clippy::too_many_arguments)]
    pub fn define<C: ClientEnd>(
        &self,
        group: &mut BenchmarkGroup<'_, WallTime>,
        group_name: &str,
        param: &str,
        spec: PairSpec,
        throughput: Throughput,
        make: fn(PairSpec, Option<&SocketDir>) -> sockbench::Result<PinnedPair<C>>,
        mut run: impl FnMut(
            &mut PinnedPair<C>,
            u64,
            &mut Histogram<u64>,
            &mut Heartbeat<'_>,
        ) -> sockbench::Result<Duration>,
    ) {
        let (kind, size) = (spec.kind, spec.size);
        if kind == TransportKind::Tcp6 && self.no_ipv6.is_some() {
            return;
        }
        for s in [spec.size, spec.response] {
            if sockbench::plan::check_size(kind, s, "--size").is_err() {
                return; // e.g. udp4 above 65,507 B: a refusal, not a benchmark
            }
        }
        let mut pair: Option<PinnedPair<C>> = None;
        let mut tails = Tails::new(self.side.samples);
        let beat = AtomicU64::new(0);
        group.throughput(throughput);
        group.bench_with_input(BenchmarkId::new(kind.name(), param), &size, |b, _| {
            let p = pair.get_or_insert_with(|| {
                make(spec, Some(&self.dir)).unwrap_or_else(|e| die(format!("{kind} {size} B: {e}")))
            });
            let mut beat = Heartbeat::new(&beat);
            b.iter_custom(|n| {
                let h = tails.next_call();
                run(p, n, h, &mut beat).unwrap_or_else(|e| die(e.to_string()))
            });
        });
        if pair.is_some() && !tails.is_empty() {
            self.side
                .write(&format!("{group_name}/{}/{param}", kind.name()), &tails);
        }
    }
}

/// Latencies per `iter_custom` call, split into criterion's measured
/// samples (its last `samples` calls) and its warm-up (every call before).
struct Tails {
    samples: usize,
    measured: VecDeque<Histogram<u64>>,
    warmup: Histogram<u64>,
}

impl Tails {
    fn new(samples: usize) -> Self {
        Tails {
            samples,
            measured: VecDeque::with_capacity(samples + 1),
            warmup: new_histogram(),
        }
    }

    /// The histogram for the next call; older calls than the last `samples`
    /// belong to the warm-up.
    fn next_call(&mut self) -> &mut Histogram<u64> {
        if self.measured.len() == self.samples
            && let Some(old) = self.measured.pop_front()
        {
            self.warmup.add(&old).expect("histograms share bounds");
        }
        self.measured.push_back(new_histogram());
        self.measured.back_mut().expect("just pushed")
    }

    fn is_empty(&self) -> bool {
        self.measured.iter().all(Histogram::is_empty)
    }

    fn merged(&self) -> Histogram<u64> {
        let mut h = new_histogram();
        for m in &self.measured {
            h.add(m).expect("histograms share bounds");
        }
        h
    }
}

/// Where criterion keeps a bench's results, and which baseline directories
/// the HDR side files go to: always `new`, plus the saved baseline (`base`,
/// or `--save-baseline NAME`) unless the run compares (`--baseline`) or
/// discards. Nothing in `--test`/`--list` runs.
struct SideFiles {
    root: PathBuf,
    dirs: Vec<String>,
    env: Option<Fingerprint>,
    /// Criterion's sample count: its measured `iter_custom` calls per bench.
    samples: usize,
}

impl SideFiles {
    fn from_args() -> Self {
        let args: Vec<String> = std::env::args().collect();
        let value = |flag: &str| {
            args.iter().enumerate().find_map(|(i, a)| {
                a.strip_prefix(&format!("{flag}="))
                    .map(str::to_string)
                    .or_else(|| (a == flag).then(|| args.get(i + 1).cloned()).flatten())
            })
        };
        let has = |flag: &str| {
            args.iter()
                .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
        };
        let quiet = has("--test") || has("--list") || has("--profile-time");
        let mut dirs = vec!["new".to_string()];
        if !(has("--baseline") || has("--baseline-lenient") || has("--discard-baseline")) {
            dirs.push(value("--save-baseline").unwrap_or_else(|| "base".into()));
        }
        let samples = value("--sample-size")
            .and_then(|v| v.parse().ok())
            .unwrap_or(profile().timing().samples);
        SideFiles {
            root: criterion_home(),
            dirs: if quiet { Vec::new() } else { dirs },
            env: (!quiet).then(Fingerprint::take),
            samples,
        }
    }

    /// tails.json (percentiles), tails.hgrm (µs) and env.json next to
    /// criterion's own files for `id` (`pingpong/tcp4/64`).
    fn write(&self, id: &str, t: &Tails) {
        let measured = t.merged();
        let tails = serde_json::json!({
            "id": id,
            "note": format!(
                "every operation timed in criterion's {} measured samples (its warm-up apart, under \"warmup\"); ns",
                t.measured.len()
            ),
            "samples": t.measured.len(),
            "summary": sockbench::stats::summarize(&measured),
            "warmup": (!t.warmup.is_empty()).then(|| sockbench::stats::summarize(&t.warmup)),
        });
        for d in &self.dirs {
            let dir = self.root.join(id).join(d);
            let written = std::fs::create_dir_all(&dir)
                .and_then(|()| {
                    std::fs::write(
                        dir.join("tails.json"),
                        serde_json::to_string_pretty(&tails).expect("json"),
                    )
                })
                .and_then(|()| {
                    std::fs::write(
                        dir.join("tails.hgrm"),
                        sockbench::report::files::hgrm_string(&measured),
                    )
                })
                .and_then(|()| {
                    std::fs::write(
                        dir.join("env.json"),
                        serde_json::to_string_pretty(&self.env).expect("json"),
                    )
                });
            if let Err(e) = written {
                eprintln!(
                    "warning: could not write tail files to {}: {e}",
                    dir.display()
                );
            }
        }
    }
}

/// Criterion's output directory, found the way criterion finds it.
fn criterion_home() -> PathBuf {
    if let Some(v) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(v);
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(t).join("criterion");
    }
    let from_metadata = std::env::var_os("CARGO").and_then(|cargo| {
        let out = std::process::Command::new(cargo)
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .output()
            .ok()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        Some(PathBuf::from(v["target_directory"].as_str()?).join("criterion"))
    });
    from_metadata.unwrap_or_else(|| PathBuf::from("target/criterion"))
}
