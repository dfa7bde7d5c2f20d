//! Bench: ping-pong round-trip latency, group `pingpong`, one function per
//! transport, one parameter per message size. Each iteration is one round
//! trip (2 × size bytes moved).

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use sockbench::transport::{SocketDir, TransportKind};

/// Sizes swept by the latency bench.
const SIZES: [usize; 6] = [1, 64, 512, 4 << 10, 16 << 10, 64 << 10];

fn pingpong(c: &mut Criterion) {
    let setup = common::Setup::from_env();
    let dir = SocketDir::new().expect("private socket directory");
    let mut group = c.benchmark_group("pingpong");
    for kind in TransportKind::ALL {
        for size in SIZES {
            common::define(&mut group, &setup, &dir, kind, size);
        }
    }
    group.finish();
}

criterion_group!(benches, pingpong);
criterion_main!(benches);
