//! Bootnodes by name, as compose, Kubernetes and libp2p's bootstrap lists give them: a peer
//! joins through `/dns4/…` and `/dns/…` names and through a `/dnsaddr/…` list, resolved by a
//! name server in the lab (nothing leaves the machine), over TCP and QUIC.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use peerfind_tests::dns::{NameServer, Zone};
use peerfind_tests::lab::{Host, Lab, Placement, Topology};
use peerfind_tests::process::Peerfind;
use peerfind_tests::scenario::{self, PORT, WAIT, bootnode, listen, peer_id};

/// Starts a peer in Alice's host given only `bootnodes` (no record), and waits until it holds
/// a connection to the bootnode over both transports.
async fn joins_over_both_transports(lab: &Lab, bootnodes: &[String]) -> Peerfind {
    let mut cmd = lab.tokio_command(Host::Alice, peerfind_tests::process::binary());
    cmd.arg("run");
    for b in bootnodes {
        cmd.args(["--bootnode", b]);
    }
    cmd.args(listen("tcp")).args(listen("quic"));
    let mut alice = Peerfind::start("alice", cmd)
        .unwrap()
        .in_host(lab.dialer(Host::Alice));
    alice
        .until("the bootnode connected over QUIC and TCP", WAIT, |s| {
            s.status
                .bootnodes
                .iter()
                .any(|b| b.transports == ["quic", "tcp"])
                .then_some(())
        })
        .await
        .unwrap_or_else(|e| panic!("{bootnodes:?}: {e:#}"));
    alice
}

#[tokio::test]
async fn lab_a_peer_joins_through_dns4_dns_and_dnsaddr_bootnodes() {
    let lab = Lab::up(Topology::new(Placement::Public, Placement::Public)).expect("lab");
    let (mut boot, _) = bootnode(&lab, &["tcp", "quic"]).await.unwrap();
    let id = peer_id(&mut boot).await.unwrap();
    let ip = lab.ip(Host::Bootnode);
    // The list names one address by IP and one by name: both kinds occur in the wild.
    let list = [
        format!("dnsaddr=/ip4/{ip}/tcp/{PORT}/p2p/{id}"),
        format!("dnsaddr=/dns4/boot.example/udp/{PORT}/quic-v1/p2p/{id}"),
    ];
    let zone = Zone::default()
        .a("boot.example", ip)
        .txt("_dnsaddr.boot.example", &list);
    let _names = NameServer::serve(&lab, Host::Bootnode, Host::Alice, zone)
        .await
        .unwrap();

    let mut by_name = joins_over_both_transports(
        &lab,
        &[
            format!("/dns4/boot.example/tcp/{PORT}/p2p/{id}"),
            format!("/dns/boot.example/udp/{PORT}/quic-v1/p2p/{id}"),
        ],
    )
    .await;
    by_name.stop().await.unwrap();

    let mut by_list =
        joins_over_both_transports(&lab, &[format!("/dnsaddr/boot.example/p2p/{id}")]).await;
    let status = by_list.state().await.unwrap().status;
    let listed = &status.bootnodes[0];
    assert_eq!(listed.peer_id, id);
    assert_eq!(listed.addrs.len(), 2, "the list's two entries: {listed:?}");
    scenario::stop_all(&mut [&mut by_list, &mut boot]).await;
}
