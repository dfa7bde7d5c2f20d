//! EINTR: a storm of signals whose handler has no SA_RESTART (so every
//! blocking call they interrupt returns EINTR, timed sockets included) hits
//! the client and server threads, or the forked server, during every
//! workload; every operation still completes, verified. Its own test binary:
//! the handler is process-wide.

mod util;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use sockbench::samples::{Heartbeat, new_histogram};
use sockbench::spec::TransportKind;
use sockbench::spec::{Job, Mode};
use sockbench::transport::SocketDir;
use sockbench::workload::{PairSpec, PinnedPair, Stop};

static CAUGHT: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_usr1(_: libc::c_int) {
    CAUGHT.fetch_add(1, Relaxed);
}

/// Threads of this process doing the measurement: the client (named
/// `eintr-client`) and thread-mode servers (`server-*`).
fn targets() -> Vec<libc::pid_t> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter(|t| {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            comm.starts_with("server-") || comm.starts_with("eintr-client")
        })
        .filter_map(|t| t.file_name().to_str()?.parse().ok())
        .collect()
}

/// Longest the storm may take, on a machine busy with other work too: on
/// an idle one it takes about 6 s. A hang is a failure, not a stuck CI.
const BOUND: Duration = Duration::from_secs(240);

/// Every transport and workload, both modes, verified, while the storm runs.
fn workloads(server_cpu: usize, client_cpu: usize, dir: &SocketDir) {
    sockbench::affinity::pin("client", client_cpu).unwrap();
    let beat = AtomicU64::new(0);
    let mut hist = new_histogram();
    for mode in [Mode::Thread, Mode::Process] {
        for kind in util::transports() {
            let what = format!("{kind} {mode:?}");
            let echo = PairSpec::echo(kind, 1000, util::opts(), mode, server_cpu);
            let mut pair =
                PinnedPair::connect(echo, Some(dir)).unwrap_or_else(|e| panic!("{what}: {e}"));
            pair.record(
                Stop::count(3000),
                &mut hist,
                &mut Heartbeat::new(&beat),
                true,
            )
            .unwrap_or_else(|e| panic!("{what} echo: {e}"));
            drop(pair);
            if kind.is_rung() {
                continue; // ping-pong only
            }
            let sink = PairSpec {
                job: Job::Sink,
                ..echo
            };
            let mut pair = PinnedPair::connect(sink, Some(dir)).unwrap();
            let t = pair
                .transfer(Stop::count(3000), true, &mut Heartbeat::new(&beat))
                .unwrap_or_else(|e| panic!("{what} transfer: {e}"));
            if kind.is_stream() || kind == TransportKind::UdsSeqpacket {
                assert_eq!(t.delivered, 3000, "{what}: every message delivered");
            }
            drop(pair);
            if kind.is_connection_oriented() {
                let accept = PairSpec {
                    job: Job::Accept,
                    response: 64,
                    ..echo
                };
                let mut pair = PinnedPair::dial(accept, Some(dir)).unwrap();
                pair.record_connect(
                    Stop::count(300),
                    &mut hist,
                    &mut Heartbeat::new(&beat),
                    true,
                )
                .unwrap_or_else(|e| panic!("{what} connect: {e}"));
            }
        }
    }
}

/// Every blocking call of every workload is interrupted over and over
/// (about 5,000 signals a second to each measuring thread and forked
/// server) and still completes, verified, within a bound: an interrupted
/// wait counts against its one deadline and is never simply restarted.
#[test]
fn signal_storm_interrupts_nothing_that_matters() {
    let action = SigAction::new(
        SigHandler::Handler(on_usr1),
        SaFlags::empty(), // no SA_RESTART
        SigSet::empty(),
    );
    // SAFETY: the handler only increments an atomic.
    unsafe { sigaction(Signal::SIGUSR1, &action) }.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let storm = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let pid = std::process::id() as libc::pid_t;
            while !stop.load(Relaxed) {
                for tid in targets() {
                    // SAFETY: tgkill takes plain integers.
                    unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, libc::SIGUSR1) };
                }
                for child in util::servers(std::process::id()) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(child as i32),
                        Signal::SIGUSR1,
                    );
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    };
    let (server_cpu, client_cpu) = util::cpus();
    let (done, finished) = std::sync::mpsc::channel();
    // Not joined unless it finishes: a hang leaves it blocked and fails the test.
    let body = std::thread::Builder::new()
        .name("eintr-client".into())
        .spawn(move || {
            let dir = SocketDir::new().unwrap();
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                workloads(server_cpu, client_cpu, &dir)
            }));
            let _ = done.send(r.map_err(|p| {
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            }));
        })
        .unwrap();
    let t0 = Instant::now();
    let outcome = finished.recv_timeout(BOUND);
    stop.store(true, Relaxed);
    storm.join().unwrap();
    match outcome {
        Ok(Ok(())) => {
            body.join().unwrap();
        }
        Ok(Err(msg)) => panic!("{msg}"),
        Err(_) => {
            panic!("the storm did not end within {BOUND:?}: a wait restarted by signals never ends")
        }
    }
    let caught = CAUGHT.load(Relaxed);
    eprintln!(
        "{caught} signals handled in this process in {:?}",
        t0.elapsed()
    );
    assert!(
        caught > 1000,
        "the storm was too weak to prove anything: {caught}"
    );
}
