//! Bench: one-way bulk transfer. Group `stream`, one function per transport,
//! one parameter per write size; one iteration is one write, timed from the
//! client's first send to the server's last receive. (For udp4, criterion's
//! rate counts bytes sent; `sockbench throughput` reports delivered bytes
//! and loss.)

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sockbench::spec::Job;
use sockbench::spec::TransportKind;
use sockbench::workload::{PinnedPair, Stop};

fn stream(c: &mut Criterion) {
    let setup = common::Setup::from_env();
    let mut group = c.benchmark_group("stream");
    // Every socket and the pipe (`all`); the ladder's own rungs are
    // `sockbench explain`'s (tcp4-sockmap needs root).
    for kind in TransportKind::ALL.into_iter().filter(|k| k.in_all()) {
        for &size in setup.profile.throughput_sizes() {
            setup.define(
                &mut group,
                "stream",
                &size.to_string(),
                setup.spec(kind, size, size, Job::Sink),
                Throughput::Bytes(size as u64),
                PinnedPair::connect,
                |p, n, _, beat| {
                    p.transfer(Stop::count(n), false, beat)
                        .map(|t| std::time::Duration::from_nanos(t.elapsed_ns()))
                },
            );
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = stream
}
criterion_main!(benches);
