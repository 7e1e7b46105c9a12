//! Which observed address a node takes for its own, on loopback with the real binary: only
//! one seen on a connection that left from the listen port.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use peerfind_tests::local::{self, LISTEN, WAIT};
use peerfind_tests::process::{Peerfind, field};

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

    let mut alice = Peerfind::start(
        "alice",
        Peerfind::command(["run", "--bootnode", &boot_addr].iter().chain(&LISTEN)),
    )
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
    // serve: her dial-back connection reached it. The API reports NAT verdicts, not AutoNAT's
    // single tests, and a bootnode has no verdict: the log tells.
    boot.wait_for("AutoNAT test done", WAIT, |l| l["reachable"] == true)
        .await
        .expect("alice dials the bootnode back");
    // Alice heard what the bootnode saw on that connection, and did not take it. The API
    // does not report observations a node ignored: the log does.
    let ignored = alice
        .wait_for(
            "observed address not taken: the connection did not leave from the listen port",
            WAIT,
            |l| field(l, "peer") == boot_id,
        )
        .await
        .expect("the bootnode reports the dial-back's port");
    assert_ne!(
        field(&ignored, "observed"),
        alice_listen,
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
    // The API reports the record now, not every record the node had: the log keeps them.
    let port = alice_listen.rsplit('/').next().unwrap();
    alice
        .wait_for("local record updated", WAIT, |u| {
            field(u, "tcp") == format!("Some({port})")
        })
        .await
        .expect("the record's changes are logged");
    for update in alice.lines_with("local record updated") {
        let tcp = field(&update, "tcp");
        assert!(
            tcp == "None" || tcp == format!("Some({port})"),
            "the record only ever held the listen port: {update}"
        );
    }

    alice.stop().await.unwrap();
    boot.stop().await.unwrap();
}
