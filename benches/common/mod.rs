//! Shared criterion settings for the benches: placement from the
//! environment, the size lists, and `define()`, which registers one pinned
//! pair per (transport, size) and builds it only if the filter selects it.
#![allow(dead_code)]

use std::time::Duration;

use criterion::{BenchmarkGroup, BenchmarkId, Throughput, measurement::WallTime};
use sockbench::transport::{SocketDir, TransportKind, TransportOpts, Wait};
use sockbench::workload::{Mode, PairSpec, PinnedPair};

/// Read a `SOCKBENCH_*` variable, or the default; a bad value stops the bench.
fn var<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v.parse().unwrap_or_else(|_| {
            eprintln!("error: {name}={v}: not a valid value");
            std::process::exit(2)
        }),
        Err(_) => default,
    }
}

/// Placement and options, from SOCKBENCH_SERVER_CPU (0), SOCKBENCH_CLIENT_CPU
/// (1), SOCKBENCH_MODE (thread|process), SOCKBENCH_WAIT (block|spin),
/// SOCKBENCH_NODELAY (on|off).
pub struct Setup {
    pub server_cpu: usize,
    pub client_cpu: usize,
    pub mode: Mode,
    pub opts: TransportOpts,
}

impl Setup {
    pub fn from_env() -> Self {
        let mode = match var("SOCKBENCH_MODE", "thread".to_string()).as_str() {
            "thread" => Mode::Thread,
            "process" => Mode::Process,
            v => {
                eprintln!("error: SOCKBENCH_MODE={v}: allowed: thread, process");
                std::process::exit(2)
            }
        };
        let wait = match var("SOCKBENCH_WAIT", "block".to_string()).as_str() {
            "block" => Wait::Block,
            "spin" => Wait::Spin,
            v => {
                eprintln!("error: SOCKBENCH_WAIT={v}: allowed: block, spin");
                std::process::exit(2)
            }
        };
        let nodelay = match var("SOCKBENCH_NODELAY", "on".to_string()).as_str() {
            "on" => true,
            "off" => false,
            v => {
                eprintln!("error: SOCKBENCH_NODELAY={v}: allowed: on, off");
                std::process::exit(2)
            }
        };
        let s = Setup {
            server_cpu: var("SOCKBENCH_SERVER_CPU", 0),
            client_cpu: var("SOCKBENCH_CLIENT_CPU", 1),
            mode,
            opts: TransportOpts {
                nodelay,
                timeout: Duration::from_secs(5),
                wait,
            },
        };
        if let Err(e) = sockbench::affinity::pin("client", s.client_cpu) {
            eprintln!("error: SOCKBENCH_CLIENT_CPU: {e}");
            std::process::exit(2)
        }
        s
    }

    pub fn spec(&self, kind: TransportKind, size: usize) -> PairSpec {
        PairSpec::echo(kind, size, self.opts, self.mode, self.server_cpu)
    }
}

/// Register `pingpong/<transport>/<size>`: the pair is built on first use
/// (outside the timed closure) and the closure only runs the round trips.
pub fn define(
    group: &mut BenchmarkGroup<'_, WallTime>,
    setup: &Setup,
    dir: &SocketDir,
    kind: TransportKind,
    size: usize,
) {
    if sockbench::plan::check_size(kind, size).is_err() {
        return; // e.g. udp4 above 65,507 B: not a benchmark, a refusal
    }
    group.throughput(Throughput::Bytes(2 * size as u64));
    let mut pair: Option<PinnedPair> = None;
    group.bench_with_input(BenchmarkId::new(kind.name(), size), &size, |b, _| {
        let p = pair.get_or_insert_with(|| {
            PinnedPair::new(setup.spec(kind, size), Some(dir))
                .unwrap_or_else(|e| panic!("{kind} {size} B: {e}"))
        });
        b.iter_custom(|n| p.round_trips(n).unwrap_or_else(|e| panic!("{e}")));
    });
}
