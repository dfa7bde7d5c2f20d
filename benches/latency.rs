//! Bench: ping-pong round-trip latency. Group `pingpong`, one function per
//! transport, one parameter per message size; one iteration is one round
//! trip (2 × size bytes). Every round trip also goes into an HDR histogram,
//! written as tail side files next to criterion's output.

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sockbench::spec::Job;
use sockbench::spec::TransportKind;
use sockbench::workload::{PinnedPair, Stop};

fn pingpong(c: &mut Criterion) {
    let setup = common::Setup::from_env();
    let mut group = c.benchmark_group("pingpong");
    // Every socket and the pipe (`all`); the ladder's own rungs are
    // `sockbench explain`'s (tcp4-sockmap needs root).
    for kind in TransportKind::ALL.into_iter().filter(|k| k.in_all()) {
        for &size in setup.profile.latency_sizes() {
            setup.define(
                &mut group,
                "pingpong",
                &size.to_string(),
                setup.spec(kind, size, size, Job::Echo),
                Throughput::Bytes(2 * size as u64),
                PinnedPair::connect,
                |p, n, h, beat| {
                    p.record(Stop::count(n), h, beat, false)
                        .map(|(s, _)| s.elapsed())
                },
            );
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = pingpong
}
criterion_main!(benches);
