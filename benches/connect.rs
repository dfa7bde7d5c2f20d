//! Bench: connection cost. One iteration is socket → connect → 64 B request
//! → 64 B response → close on a new connection. Group `connect`, one
//! function per connection-oriented transport; throughput in transactions.

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sockbench::spec::Job;
use sockbench::spec::TransportKind;
use sockbench::workload::{PinnedPair, Stop};

fn connect(c: &mut Criterion) {
    let setup = common::Setup::from_env();
    let mut group = c.benchmark_group("connect");
    for kind in TransportKind::ALL
        .into_iter()
        .filter(|k| k.is_connection_oriented())
    {
        setup.define(
            &mut group,
            "connect",
            "64",
            setup.spec(kind, 64, 64, Job::Accept),
            Throughput::Elements(1),
            PinnedPair::dial,
            |p, n, h, beat| {
                p.record_connect(Stop::count(n), h, beat, false)
                    .map(|(s, _)| s.elapsed())
            },
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = connect
}
criterion_main!(benches);
