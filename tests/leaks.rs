//! Resource leaks: 10,000 pair set-ups and tear-downs of every transport
//! leave no descriptor, thread, child process or memory behind. Its own
//! test binary, so no other test opens descriptors meanwhile.
//! `SOCKBENCH_LEAK_CYCLES` changes the count (default 10,000).

mod util;

use std::time::{Duration, Instant};

use sockbench::spec::Mode;
use sockbench::spec::TransportKind;
use sockbench::sys::process::Resources;
use sockbench::transport::SocketDir;
use sockbench::workload::PinnedPair;

/// 16 KiB messages: a pair holds two 16 KiB buffers, so leaking even one
/// pair in a hundred would show as ≥ 3 MiB over 10,000 cycles.
const SIZE: usize = 16 << 10;
/// Resident memory one transport's cycles may add (allocator and page
/// cache noise, not a per-cycle leak).
const RSS_SLACK_KIB: u64 = 3 << 10;

fn cycle(kind: TransportKind, i: usize, dir: &SocketDir) {
    // Every hundredth pair forks its server, to cover process mode too.
    let mode = if i.is_multiple_of(100) {
        Mode::Process
    } else {
        Mode::Thread
    };
    let pair = PinnedPair::connect(util::spec(kind, SIZE, mode), Some(dir))
        .unwrap_or_else(|e| panic!("{kind} cycle {i}: {e}"));
    drop(pair);
}

/// Resources once joined threads have left /proc's count: the kernel
/// releases a thread a moment after waking its joiner.
fn settled(threads: u64) -> Resources {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let r = Resources::now().unwrap();
        if r.threads == threads || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn no_fd_thread_child_or_memory_growth_over_10000_setups_per_transport() {
    let cycles: usize = std::env::var("SOCKBENCH_LEAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = SocketDir::new().unwrap();
    // Warm up every transport first, so lazily made state (allocator
    // arenas, cached thread stacks) is in the baseline.
    for kind in util::transports() {
        for i in 0..200 {
            cycle(kind, i + 1, &dir);
        }
    }
    let start = settled(Resources::now().unwrap().threads);
    for kind in util::transports() {
        let before = settled(start.threads);
        let t0 = Instant::now();
        for i in 0..cycles {
            cycle(kind, i, &dir);
        }
        let after = settled(start.threads);
        eprintln!(
            "{kind}: {cycles} set-ups in {:.1?}; fds {}→{}, threads {}→{}, RSS {}→{} KiB",
            t0.elapsed(),
            before.fds,
            after.fds,
            before.threads,
            after.threads,
            before.rss_kib,
            after.rss_kib
        );
        assert_eq!(after.fds, start.fds, "{kind}: descriptors");
        assert_eq!(after.threads, start.threads, "{kind}: threads");
        assert!(
            after.rss_kib <= before.rss_kib + RSS_SLACK_KIB,
            "{kind}: resident memory grew from {} to {} KiB",
            before.rss_kib,
            after.rss_kib
        );
        assert!(
            util::children(std::process::id()).is_empty(),
            "{kind}: no child process left"
        );
    }
    let dir_path = dir.path().to_path_buf();
    assert!(util::leftovers(&dir_path).is_empty(), "no socket file left");
    drop(dir);
    assert!(!dir_path.exists(), "socket directory removed");
}
