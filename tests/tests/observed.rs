//! Which observed address a node takes for its own, on loopback with the real binary: only
//! one seen on a connection that left from the listen port.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use peerfind_proto::v1 as pb;
use peerfind_tests::local::{self, LISTEN, WAIT};
use peerfind_tests::process::Peerfind;

/// A bootnode that advertises another address than the one its peers reach it at (a
/// forwarded port, a container) asks them, through AutoNAT, to dial it back at the address
/// they see. Alice's dial-back leaves from a fresh port while her first connection to the
/// bootnode stays open: a second connection to her bootnode, from a port nobody can reach
/// her at. The bootnode reports that port to her like any other; she must not take it.
#[tokio::test]
async fn a_second_connection_to_the_bootnode_from_another_port_never_moves_the_record() {
    let mut boot = Peerfind::start(
        "bootnode",
        Peerfind::command(
            ["bootnode", "--external-addr", "/ip4/127.0.0.1/tcp/1"]
                .iter()
                .chain(&LISTEN),
        ),
    )
    .unwrap();
    let (boot_id, boot_tcp) = boot
        .until_polled("the bootnode listening on tcp", WAIT, |s| {
            let tcp = s.status.listen_addrs.iter().find(|a| a.contains("/tcp/"))?;
            Some((s.status.peer_id.clone(), tcp.clone()))
        })
        .await
        .unwrap();
    let boot_addr = format!("{boot_tcp}/p2p/{boot_id}");

    // Alice is watched from her start: every record she ever had is in her events.
    let mut alice = local::watched(&boot, || {
        Peerfind::start(
            "alice",
            Peerfind::command(["run", "--bootnode", &boot_addr].iter().chain(&LISTEN)),
        )
    })
    .await
    .unwrap();
    let alice_listen = alice
        .until_polled("alice listening on tcp", WAIT, |s| {
            s.status
                .listen_addrs
                .iter()
                .find(|a| a.contains("/tcp/"))
                .cloned()
        })
        .await
        .unwrap();

    // The bootnode's AutoNAT test of the address Alice sees it at, which only Alice can
    // serve: her dial-back connection reached it. (A bootnode has no NAT verdict: its API
    // reports the single tests.)
    boot.until("a reachable AutoNAT test", WAIT, |s| {
        s.events
            .autonat_tests()
            .iter()
            .any(|t| t.reachable)
            .then_some(())
    })
    .await
    .expect("alice dials the bootnode back");
    // Alice heard what the bootnode saw on that connection, and did not take it: it was not
    // seen on a connection that left from her listen port.
    let ignored = alice
        .until("the bootnode's report of the dial-back's port", WAIT, |s| {
            s.events.kinds().find_map(|k| match k {
                pb::event::Kind::ObservedAddressIgnored(o)
                    if o.peer_id == boot_id && o.reason() == pb::IgnoredBecause::OtherPort =>
                {
                    Some(o.addr.clone())
                }
                _ => None,
            })
        })
        .await
        .expect("the bootnode reports the dial-back's port");
    assert_ne!(
        ignored, alice_listen,
        "the dial-back left from another port"
    );

    let addr = alice.api_addr().await.unwrap();
    let mut api = local::api_client(addr).await.unwrap();
    let status = local::status(&mut api).await.unwrap();
    let tcp: Vec<&String> = status
        .observed_addrs
        .iter()
        .filter(|a| a.contains("/tcp/"))
        .collect();
    assert_eq!(tcp, vec![&alice_listen], "{status:?}");
    // Every record she had, from her events (watched since her start).
    let port = alice_listen.rsplit('/').next().unwrap();
    let tcp_ports = |r: &pb::OwnRecordChanged| -> Vec<String> {
        r.addrs
            .iter()
            .filter_map(|a| a.split("/tcp/").nth(1))
            .map(|p| p.split('/').next().unwrap_or_default().to_owned())
            .collect()
    };
    let records = alice
        .until("a record with the listen port", WAIT, |s| {
            let records = s.events.own_records();
            records
                .iter()
                .any(|r| tcp_ports(r) == [port])
                .then(|| records.into_iter().cloned().collect::<Vec<_>>())
        })
        .await
        .expect("the record's changes are reported");
    for record in &records {
        assert!(
            tcp_ports(record).iter().all(|p| p == port),
            "the record only ever held the listen port: {record:?}"
        );
    }

    alice.stop().await.unwrap();
    boot.stop().await.unwrap();
}
