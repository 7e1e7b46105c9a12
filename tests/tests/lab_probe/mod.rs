//! UDP probes between lab hosts, shared by the lab's own tests (`lab_self*.rs`): sockets made
//! inside a host, and waits for a datagram that are bounded, never sleeps.

// Each test binary that includes this module uses a part of it.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::Duration;

use peerfind_tests::lab::{Host, Lab, NatMode, Placement, Topology};

/// How long a datagram that should arrive may take. Far above the lab's sub-millisecond
/// latency; it only bounds a test that would otherwise hang.
pub(crate) const ARRIVAL: Duration = Duration::from_secs(5);

/// How long a test waits to be sure a datagram that should be dropped did not arrive.
pub(crate) const SILENCE: Duration = Duration::from_millis(1500);

pub(crate) fn up(alice: Placement, bob: Placement) -> Lab {
    Lab::up(Topology::new(alice, bob)).expect("the lab comes up")
}

pub(crate) fn behind(mode: NatMode) -> Placement {
    Placement::BehindNat(mode)
}

/// A UDP socket on a fresh port inside `host`.
pub(crate) fn socket(lab: &Lab, host: Host) -> UdpSocket {
    let socket = lab
        .in_host(host, || UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)))
        .unwrap()
        .unwrap();
    socket.set_read_timeout(Some(ARRIVAL)).unwrap();
    socket
}

/// The address `socket` in `host` is reached at by the host's neighbours.
pub(crate) fn address(lab: &Lab, host: Host, socket: &UdpSocket) -> SocketAddrV4 {
    SocketAddrV4::new(lab.ip(host), socket.local_addr().unwrap().port())
}

/// `recv_from` that goes on after a signal. A socket with a read timeout is never restarted
/// after a signal handler runs, whatever `SA_RESTART` says (signal(7)); once any test of this
/// binary has spawned a child through tokio, its SIGCHLD handler runs whenever one of the
/// labs' `ip` or `nft` commands exits, on whichever thread is waiting here.
pub(crate) fn recv_from(
    socket: &UdpSocket,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr)> {
    loop {
        match socket.recv_from(buf) {
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            result => return result,
        }
    }
}

/// Waits for one datagram and returns its payload and the source the receiver saw.
pub(crate) fn receive(socket: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = [0u8; 1500];
    let (len, from) = recv_from(socket, &mut buf).expect("a datagram arrives in time");
    (buf[..len].to_vec(), from)
}

/// Whether a datagram arrives within `SILENCE`.
pub(crate) fn arrives_soon(socket: &UdpSocket) -> bool {
    socket.set_read_timeout(Some(SILENCE)).unwrap();
    let mut buf = [0u8; 1500];
    let result = recv_from(socket, &mut buf);
    socket.set_read_timeout(Some(ARRIVAL)).unwrap();
    match result {
        Ok(_) => true,
        Err(error)
            if matches!(
                error.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            false
        }
        Err(error) => panic!("receiving failed: {error}"),
    }
}

/// Alice sends from one socket to the bootnode and to Charlie; returns Alice's local port and
/// the source each observer saw.
pub(crate) fn observed_by_two(lab: &Lab) -> (u16, SocketAddr, SocketAddr) {
    let alice = socket(lab, Host::Alice);
    let bootnode = socket(lab, Host::Bootnode);
    let charlie = socket(lab, Host::Charlie);
    alice
        .send_to(b"to bootnode", address(lab, Host::Bootnode, &bootnode))
        .unwrap();
    alice
        .send_to(b"to charlie", address(lab, Host::Charlie, &charlie))
        .unwrap();
    let (payload, seen_by_bootnode) = receive(&bootnode);
    assert_eq!(payload, b"to bootnode");
    let (payload, seen_by_charlie) = receive(&charlie);
    assert_eq!(payload, b"to charlie");
    (
        alice.local_addr().unwrap().port(),
        seen_by_bootnode,
        seen_by_charlie,
    )
}
