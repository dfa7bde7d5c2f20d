//! Bench: request/response over one kept-alive connection, 512 B requests
//! and 16 KiB responses (a small HTTP request and a page). Group `rr`, one
//! function per transport, parameter `<request>x<response>`.

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sockbench::spec::Job;
use sockbench::spec::TransportKind;
use sockbench::workload::{PinnedPair, Stop};

const SIZES: [(usize, usize); 1] = [(512, 16 << 10)];

fn rr(c: &mut Criterion) {
    let setup = common::Setup::from_env();
    let mut group = c.benchmark_group("rr");
    // Every socket and the pipe (`all`); the ladder's own rungs are
    // `sockbench explain`'s (tcp4-sockmap needs root).
    for kind in TransportKind::ALL.into_iter().filter(|k| k.in_all()) {
        for (req, resp) in SIZES {
            setup.define(
                &mut group,
                "rr",
                &format!("{req}x{resp}"),
                setup.spec(kind, req, resp, Job::Echo),
                Throughput::Bytes((req + resp) as u64),
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
    targets = rr
}
criterion_main!(benches);
