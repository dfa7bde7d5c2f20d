//! Transport tests: every transport carries every size intact in both
//! modes, datagram boundaries hold, and a message that fits the buffer costs
//! exactly one send and one receive call per side.

mod util;

use std::time::Duration;

use sockbench::samples::{Heartbeat, new_histogram};
use sockbench::spec::Mode;
use sockbench::spec::TransportKind;
use sockbench::transport::{AnyEndpoint, Cause, Endpoint, SocketDir, TransportOpts, connect_pair};
use sockbench::with_endpoint;
use sockbench::workload::pingpong::fill_pattern;
use sockbench::workload::{PinnedPair, Stop};

fn echo_all_sizes(mode: Mode) {
    let dir = SocketDir::new().unwrap();
    sockbench::affinity::pin("client", util::cpus().1).unwrap();
    let beat = std::sync::atomic::AtomicU64::new(0);
    for kind in util::transports() {
        for size in util::sizes(kind) {
            let mut pair = PinnedPair::connect(util::spec(kind, size, mode), Some(&dir))
                .unwrap_or_else(|e| panic!("{kind} {size}: {e}"));
            let mut h = new_histogram();
            let n = if size > 4096 { 5 } else { 50 };
            let (_, usage) = pair
                .record(Stop::count(n), &mut h, &mut Heartbeat::new(&beat), true)
                .unwrap_or_else(|e| panic!("{kind} {size} B {mode:?}: {e}"));
            assert_eq!(h.len(), n, "{kind} {size}: one sample per round trip");
            assert!(h.min() > 0, "{kind} {size}: RTTs are positive");
            match kind {
                // No system call: the data crosses as cache lines.
                TransportKind::ShmSpin => assert_eq!(usage.client_calls, 0, "{kind} {size}"),
                // One wake per message sent (and the end marker's), a sleep
                // only when the answer is not there yet.
                TransportKind::Futex => assert!(
                    (n + 1..=2 * n + 1).contains(&usage.client_calls),
                    "{kind} {size}: {} calls",
                    usage.client_calls
                ),
                _ => assert!(
                    usage.client_calls >= 2 * n,
                    "{kind} {size}: at least one call each way"
                ),
            }
        }
    }
    drop(dir);
}

#[test]
fn every_transport_echoes_every_size_verified_thread_mode() {
    echo_all_sizes(Mode::Thread);
}

#[test]
fn every_transport_echoes_every_size_verified_process_mode() {
    echo_all_sizes(Mode::Process);
}

/// The server's bytes reach the client and the client's reach the server,
/// checked on both sides with different patterns (so an echo of the client's
/// own buffer could not pass).
#[test]
fn payload_integrity_both_directions() {
    let dir = SocketDir::new().unwrap();
    for kind in util::transports() {
        for size in util::sizes(kind) {
            let c = connect_pair(kind, size, &TransportOpts::default(), Some(&dir)).unwrap();
            let (mut client, mut server) = (c.client, c.server);
            std::thread::scope(|s| {
                s.spawn(|| {
                    let (mut got, mut want) = (vec![0u8; size], vec![0u8; size]);
                    with_endpoint!(&mut server, ep => {
                        ep.recv_msg(&mut got).unwrap();
                        fill_pattern(&mut want, 1);
                        assert!(got == want, "{kind} {size}: client→server payload differs");
                        fill_pattern(&mut want, 2);
                        ep.send_msg(&want).unwrap();
                    });
                });
                let (mut tx, mut rx, mut want) =
                    (vec![0u8; size], vec![0u8; size], vec![0u8; size]);
                fill_pattern(&mut tx, 1);
                fill_pattern(&mut want, 2);
                with_endpoint!(&mut client, ep => {
                    ep.send_msg(&tx).unwrap();
                    ep.recv_msg(&mut rx).unwrap();
                });
                assert!(rx == want, "{kind} {size}: server→client payload differs");
            });
        }
    }
}

fn datagram_pair(kind: TransportKind, dir: &SocketDir) -> (AnyEndpoint, AnyEndpoint) {
    let opts = TransportOpts {
        timeout: Duration::from_millis(500),
        ..TransportOpts::default()
    };
    let c = connect_pair(kind, 64, &opts, Some(dir)).unwrap();
    (c.client, c.server)
}

#[test]
fn datagram_boundaries_are_kept_and_checked() {
    let dir = SocketDir::new().unwrap();
    for kind in [
        TransportKind::Udp4,
        TransportKind::UdsDgram,
        TransportKind::UdsSeqpacket,
    ] {
        let (mut a, mut b) = datagram_pair(kind, &dir);
        let (AnyEndpoint::Datagram(a), AnyEndpoint::Datagram(b)) = (&mut a, &mut b) else {
            panic!("{kind} must be a datagram endpoint");
        };
        for n in [10, 20, 30] {
            a.send_msg(&vec![n as u8; n]).unwrap();
        }
        for n in [10, 20, 30] {
            let mut buf = vec![0u8; n];
            b.recv_msg(&mut buf)
                .unwrap_or_else(|f| panic!("{kind} message of {n}: {:?}", f.cause));
            assert!(
                buf.iter().all(|&x| x == n as u8),
                "{kind}: message {n} intact"
            );
        }
        // A longer message than expected is reported, not silently cut.
        a.send_msg(&[7u8; 30]).unwrap();
        let mut short = [0u8; 20];
        let f = b.recv_msg(&mut short).unwrap_err();
        assert!(
            matches!(f.cause, Cause::Length { got: 30, want: 20 }),
            "{kind}: got {:?}",
            f.cause
        );
        // Nothing arrives: the bounded wait ends in a timeout, not a hang.
        let f = b.recv_msg(&mut short).unwrap_err();
        assert!(
            matches!(f.cause, Cause::TimedOut(_)),
            "{kind}: got {:?}",
            f.cause
        );
    }
}

#[test]
fn streams_have_no_boundaries() {
    let dir = SocketDir::new().unwrap();
    for kind in util::transports().into_iter().filter(|k| k.is_stream()) {
        let c = connect_pair(kind, 30, &TransportOpts::default(), Some(&dir)).unwrap();
        let (mut a, mut b) = (c.client, c.server);
        with_endpoint!(&mut a, ep => { ep.send_msg(&[1u8; 10]).unwrap(); ep.send_msg(&[2u8; 20]).unwrap(); });
        let mut buf = [0u8; 30];
        with_endpoint!(&mut b, ep => ep.recv_msg(&mut buf).unwrap());
        assert_eq!(&buf[..10], &[1u8; 10], "{kind}");
        assert_eq!(&buf[10..], &[2u8; 20], "{kind}");
    }
}

/// Messages that fit the socket buffer: one send and one receive call per
/// message on each side, as sockperf and netperf would make.
#[test]
fn one_send_and_one_receive_call_per_message() {
    let dir = SocketDir::new().unwrap();
    sockbench::affinity::pin("client", util::cpus().1).unwrap();
    let beat = std::sync::atomic::AtomicU64::new(0);
    // The shared-memory rungs make no send or receive call (see
    // every_transport_echoes_every_size_verified_thread_mode).
    for kind in util::transports()
        .into_iter()
        .filter(|k| !k.waits_its_own_way())
    {
        for size in [1, 64, 4096] {
            let mut pair =
                PinnedPair::connect(util::spec(kind, size, Mode::Thread), Some(&dir)).unwrap();
            let n = 200;
            let (_, u) = pair
                .record(
                    Stop::count(n),
                    &mut new_histogram(),
                    &mut Heartbeat::new(&beat),
                    false,
                )
                .unwrap();
            // Plus the end marker: one more send (client) and receive (server).
            assert_eq!(u.client_calls, 2 * n + 1, "{kind} {size} B client calls");
            assert_eq!(u.server_calls, 2 * n + 1, "{kind} {size} B server calls");
        }
    }
}

#[test]
fn connection_refused_and_peer_close_are_reported() {
    let dir = SocketDir::new().unwrap();
    for kind in util::transports() {
        let c = connect_pair(
            kind,
            8,
            &TransportOpts {
                timeout: Duration::from_millis(300),
                ..TransportOpts::default()
            },
            Some(&dir),
        )
        .unwrap();
        let mut client = c.client;
        drop(c.server);
        let mut buf = [0u8; 8];
        let f = with_endpoint!(&mut client, ep => ep.recv_msg(&mut buf)).unwrap_err();
        assert!(
            matches!(f.cause, Cause::PeerClosed | Cause::TimedOut(_)),
            "{kind}: a closed peer gives EOF or a bounded wait, got {:?}",
            f.cause
        );
    }
}

/// The socket directory is fresh and private, holds nothing after set-up,
/// and a foreign file or symlink in TMPDIR is neither followed nor removed.
#[test]
fn socket_directory_is_private_and_foreign_files_are_untouched() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = util::private_tmp();
    let decoy = tmp.path().join("sockbench-decoy");
    std::fs::write(tmp.path().join("victim"), "keep").unwrap();
    std::os::unix::fs::symlink(tmp.path().join("victim"), &decoy).unwrap();
    let dir = SocketDir::new_in(tmp.path()).unwrap();
    let mode = std::fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "socket directory mode");
    assert!(dir.path().starts_with(tmp.path()));
    for kind in [
        TransportKind::UdsStream,
        TransportKind::UdsDgram,
        TransportKind::UdsSeqpacket,
    ] {
        let _c = connect_pair(kind, 64, &TransportOpts::default(), Some(&dir)).unwrap();
        assert!(
            util::leftovers(dir.path()).is_empty(),
            "{kind}: socket files are unlinked once connected"
        );
    }
    let path = dir.path().to_path_buf();
    drop(dir);
    assert!(!path.exists(), "socket directory removed");
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("victim")).unwrap(),
        "keep"
    );
    assert!(
        std::fs::symlink_metadata(&decoy)
            .unwrap()
            .file_type()
            .is_symlink(),
        "decoy symlink left alone"
    );
}
