//! Resource leaks: 1,000 pair set-ups and tear-downs leave no descriptor,
//! thread or child process behind. Its own test binary, so no other test
//! opens descriptors meanwhile.

mod util;

use sockbench::transport::{SocketDir, TransportKind};
use sockbench::workload::{Mode, PinnedPair};

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn no_fd_thread_or_child_growth_over_1000_setups() {
    let dir = SocketDir::new().unwrap();
    // One of each first, so lazily opened descriptors are counted in the baseline.
    for kind in TransportKind::ALL {
        drop(PinnedPair::new(util::spec(kind, 64, Mode::Thread), Some(&dir)).unwrap());
    }
    let (fd0, th0) = (fds(), threads());
    for i in 0..1000 {
        let kind = TransportKind::ALL[i % TransportKind::ALL.len()];
        // Every tenth pair forks its server, to cover process mode too.
        let mode = if i % 10 == 0 {
            Mode::Process
        } else {
            Mode::Thread
        };
        let pair = PinnedPair::new(util::spec(kind, 64, mode), Some(&dir)).unwrap();
        drop(pair);
    }
    assert_eq!(fds(), fd0, "descriptors after 1,000 set-ups");
    // A joined thread leaves /proc's count a moment after pthread_join
    // returns (the kernel releases it after waking the joiner): allow that
    // moment, not a thread that stays.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while threads() != th0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(threads(), th0, "threads after 1,000 set-ups");
    assert!(
        util::children(std::process::id()).is_empty(),
        "no child process left"
    );
    let dir_path = dir.path().to_path_buf();
    assert!(util::leftovers(&dir_path).is_empty(), "no socket file left");
    drop(dir);
    assert!(!dir_path.exists(), "socket directory removed");
}
