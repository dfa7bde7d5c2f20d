//! A hostile environment: a file or symlink where a socket would go, a full
//! socket buffer, a datagram too big, a host without IPv6. Each gives a
//! clear, bounded error and touches nothing it did not make.

mod util;

use std::process::Command;
use std::time::{Duration, Instant};

use sockbench::spec::{TransportKind, Wait};
use sockbench::transport::{Cause, Endpoint, SocketDir, TransportOpts, connect_pair};
use sockbench::with_endpoint;

/// Something foreign where the first socket of a fresh directory would be
/// bound: bind fails with "Address already in use", and the file (or the
/// symlink and its target) is left exactly as it was.
#[test]
fn occupied_socket_path_is_an_error_and_left_alone() {
    let parent = util::private_tmp();
    let target = parent.path().join("target");
    std::fs::write(&target, "keep me").unwrap();
    for (kind, first) in [
        (TransportKind::UdsStream, "l0.sock"),
        (TransportKind::UdsSeqpacket, "l0.sock"),
        (TransportKind::UdsDgram, "c0.sock"),
    ] {
        for link in [false, true] {
            let dir = SocketDir::new_in(parent.path()).unwrap();
            let squat = dir.path().join(first);
            if link {
                std::os::unix::fs::symlink(&target, &squat).unwrap();
            } else {
                std::fs::write(&squat, "foreign").unwrap();
            }
            let e = connect_pair(kind, 64, &util::opts(), Some(&dir))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("bind") && e.contains(first) && e.contains("Address already in use"),
                "{kind}: {e}"
            );
            let meta = std::fs::symlink_metadata(&squat).unwrap();
            assert_eq!(
                meta.file_type().is_symlink(),
                link,
                "{kind}: left as it was"
            );
            assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
            if !link {
                assert_eq!(std::fs::read_to_string(&squat).unwrap(), "foreign");
            }
            let path = dir.path().to_path_buf();
            drop(dir); // cannot remove a directory holding a foreign file
            std::fs::remove_file(&squat).unwrap();
            std::fs::remove_dir(&path).unwrap();
        }
    }
}

/// Send until the peer's buffer is full while it never reads: the send
/// fails with a timeout after `--timeout`, blocking or spinning, never hangs.
#[test]
fn full_socket_buffer_gives_a_bounded_timeout() {
    let dir = SocketDir::new().unwrap();
    for wait in [Wait::Block, Wait::Spin] {
        for kind in [
            TransportKind::Tcp4,
            TransportKind::UdsStream,
            TransportKind::UdsSeqpacket,
            TransportKind::UdsDgram,
            TransportKind::Socketpair,
        ] {
            let opts = TransportOpts {
                timeout: Duration::from_millis(300),
                wait,
                ..util::opts()
            };
            let c = connect_pair(kind, 60_000, &opts, Some(&dir)).unwrap();
            let mut client = c.client;
            let _server = c.server; // alive, never reading
            let buf = vec![7u8; 60_000];
            let t0 = Instant::now();
            let fault = with_endpoint!(&mut client, ep => loop {
                if let Err(f) = ep.send_msg(&buf) {
                    break f;
                }
                assert!(t0.elapsed() < Duration::from_secs(30), "{kind} {wait:?}: never filled");
            });
            assert!(
                matches!(fault.cause, Cause::TimedOut(_)),
                "{kind} {wait:?}: {:?}",
                fault
            );
            assert_eq!(fault.call, "send");
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "{kind} {wait:?}: bounded"
            );
        }
    }
}

/// A datagram larger than the transport carries: EMSGSIZE, named.
#[test]
fn oversize_datagram_is_emsgsize() {
    let dir = SocketDir::new().unwrap();
    for (kind, size) in [
        (TransportKind::Udp4, 70_000),
        (TransportKind::UdsDgram, 4 << 20),
    ] {
        let c = connect_pair(kind, 64, &util::opts(), Some(&dir)).unwrap();
        let mut client = c.client;
        let f = with_endpoint!(&mut client, ep => ep.send_msg(&vec![0u8; size])).unwrap_err();
        assert_eq!(f.call, "send", "{kind}");
        assert!(
            matches!(&f.cause, Cause::Os(e) if e.raw_os_error() == Some(libc::EMSGSIZE)),
            "{kind}: {f:?}"
        );
        // The pair still works for a message that fits.
        let mut server = c.server;
        with_endpoint!(&mut client, ep => ep.send_msg(&[1u8; 64])).unwrap();
        let mut got = [0u8; 64];
        with_endpoint!(&mut server, ep => ep.recv_msg(&mut got)).unwrap();
        assert_eq!(got, [1u8; 64]);
    }
}

/// In a network namespace whose IPv6 is switched off, tcp6 fails at set-up
/// with one line that says so; tcp4 still runs there. Needs root (unshare).
#[test]
fn tcp6_without_ipv6_is_a_clear_error() {
    let script = "ip link set lo up && echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6 \
                  && echo 1 > /proc/sys/net/ipv6/conf/lo/disable_ipv6 && exec \"$@\"";
    let tmp = util::private_tmp();
    let run = |transport: &str| {
        Command::new("unshare")
            .args(["--net", "sh", "-c", script, "sh"])
            .arg(env!("CARGO_BIN_EXE_sockbench"))
            .args(["latency", "-t", transport])
            .args(util::QUICK)
            .env("TMPDIR", tmp.path())
            .output()
            .unwrap()
    };
    if !util::can_make_netns() {
        return;
    }
    let out = run("tcp6");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("tcp6") && err.contains("IPv6 is unavailable"),
        "{err}"
    );
    let out = run("tcp4");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(util::leftovers(tmp.path()).is_empty());
}
