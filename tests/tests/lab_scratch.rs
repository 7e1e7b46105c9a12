#![allow(clippy::unwrap_used)]
use peerfind_tests::lab::{Host, Lab, NatMode, Placement, Topology};
use std::net::{Ipv4Addr, UdpSocket};
use std::time::Instant;

#[test]
fn lab_scratch_timing() {
    for placement in [
        Placement::Public,
        Placement::BehindNat(NatMode::EndpointIndependent),
    ] {
        let t0 = Instant::now();
        let lab = Lab::up(Topology::new(placement, Placement::Public)).unwrap();
        let up = t0.elapsed();
        if std::env::var("SETTLE").is_ok() {
            std::thread::sleep(std::time::Duration::from_millis(
                std::env::var("SETTLE").unwrap().parse().unwrap(),
            ));
        }
        let s = |h| {
            lab.in_host(h, || UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)))
                .unwrap()
                .unwrap()
        };
        let (a, b, c) = (s(Host::Alice), s(Host::Bootnode), s(Host::Charlie));
        let mut buf = [0u8; 100];
        let t = Instant::now();
        c.send_to(
            b"x",
            (lab.ip(Host::Bootnode), b.local_addr().unwrap().port()),
        )
        .unwrap();
        b.recv_from(&mut buf).unwrap();
        let c2b = t.elapsed();
        let t = Instant::now();
        a.send_to(
            b"x",
            (lab.ip(Host::Bootnode), b.local_addr().unwrap().port()),
        )
        .unwrap();
        b.recv_from(&mut buf).unwrap();
        let a2b = t.elapsed();
        let t = Instant::now();
        a.send_to(
            b"x",
            (lab.ip(Host::Charlie), c.local_addr().unwrap().port()),
        )
        .unwrap();
        c.recv_from(&mut buf).unwrap();
        let a2c = t.elapsed();
        let t = Instant::now();
        drop(lab);
        eprintln!(
            "{placement:?}: up {up:?} c2b {c2b:?} a2b {a2b:?} a2c {a2c:?} down {:?}",
            t.elapsed()
        );
    }
}
