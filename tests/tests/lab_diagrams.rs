//! The design note's first two diagrams across real NATs, with the real binary in each host.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use peerfind_proto::v1 as pb;
use peerfind_tests::lab::{Host, Lab, NatMode, Placement, Topology};
use peerfind_tests::process::strip_p2p;
use peerfind_tests::scenario::{
    self, WAIT, bootnode, listen, peer, peer_id, peer_watched, record_with,
};

fn multiaddr(record: &serde_json::Value) -> String {
    strip_p2p(record["multiaddrs"][0].as_str().unwrap()).to_owned()
}

/// "Non-NAT simple case": Alice on the public segment says hello, the bootnode gossips her
/// record to Charlie, Charlie dials her at exactly the address in it, and they exchange
/// records.
async fn charlie_reaches_public_alice_directly(transport: &str) {
    let lab = Lab::up(Topology::new(Placement::Public, Placement::Public)).expect("lab");
    let (mut boot, enr) = bootnode(&lab, &[transport]).await.unwrap();

    let mut alice = peer(&lab, Host::Alice, &enr, &listen(transport)).unwrap();
    let alice_id = peer_id(&mut alice).await.unwrap();
    let record = record_with(&mut alice, transport).await.unwrap();
    assert_eq!(record["ip"], lab.ip(Host::Alice).to_string());
    assert_eq!(record[transport], scenario::PORT);

    // Charlie is watched from his start: every connection he opens is in his events.
    let mut charlie = peer_watched(&lab, Host::Charlie, &boot, &enr, &listen(transport))
        .await
        .unwrap();
    let charlie_id = peer_id(&mut charlie).await.unwrap();
    charlie
        .until("charlie connected directly to alice", WAIT, |s| {
            s.direct_to(&alice_id).then_some(())
        })
        .await
        .unwrap();
    let dialed = charlie
        .until("charlie dialed alice", WAIT, |s| {
            s.events
                .connection_opened(&alice_id, pb::Direction::Outbound)
        })
        .await
        .unwrap();
    assert_eq!(strip_p2p(&dialed.remote_addr), multiaddr(&record));
    alice
        .until("alice holds charlie's record", WAIT, |s| {
            s.holds_record_of(&charlie_id).then_some(())
        })
        .await
        .unwrap();

    scenario::stop_all(&mut [&mut charlie, &mut alice, &mut boot]).await;
}

#[tokio::test]
async fn lab_charlie_reaches_public_alice_directly_over_tcp() {
    charlie_reaches_public_alice_directly("tcp").await;
}

#[tokio::test]
async fn lab_charlie_reaches_public_alice_directly_over_quic() {
    charlie_reaches_public_alice_directly("quic").await;
}

/// "NAT problem": Alice behind nat-a learns the address nat-a maps her to, which is nat-a's
/// public address and the port the bootnode saw; Charlie, a stranger to nat-a, dials that
/// address and nothing answers. Alice runs without NAT detection here (no AutoNAT, the
/// default 2-minute window), so her record carries no `nat` flag and Charlie does try; and
/// she dials no peers (`--max-peers 0`), since her own dial to Charlie would open nat-a for
/// him.
async fn charlie_cannot_dial_alice_behind_a_nat(transport: &str) {
    let topology = Topology::new(
        Placement::BehindNat(NatMode::EndpointIndependent),
        Placement::Public,
    );
    let lab = Lab::up(topology).expect("lab");
    let (mut boot, enr) = bootnode(&lab, &[transport]).await.unwrap();

    let mut args = listen(transport);
    args.extend(["--autonat", "false", "--max-peers", "0"].map(String::from));
    let mut alice = peer(&lab, Host::Alice, &enr, &args).unwrap();
    let boot_id = peer_id(&mut boot).await.unwrap();
    // What the bootnode observed: the remote address of its connection from alice, which it
    // reports to her in identify (identify has no event: polled).
    let observed = alice
        .until_polled("the bootnode's identify", WAIT, |s| {
            let identify = s.peer(&boot_id)?.identify.as_ref()?;
            (!identify.observed_addr.is_empty()).then(|| identify.observed_addr.clone())
        })
        .await
        .unwrap();
    let observed = strip_p2p(&observed).to_owned();

    let record = record_with(&mut alice, transport).await.unwrap();
    let alice_id = record["peer_id"].as_str().unwrap().to_owned();
    let nat_a = lab.public_ip(Host::Alice).to_string();
    assert_eq!(
        record["ip"], nat_a,
        "alice's record holds nat-a's public address"
    );
    assert_eq!(
        multiaddr(&record),
        observed,
        "and the port nat-a mapped, as the bootnode saw it"
    );
    assert_eq!(record["nat"], false);

    // Charlie is watched from his start: every connection he ever had is in his events.
    let mut charlie = peer_watched(&lab, Host::Charlie, &boot, &enr, &listen(transport))
        .await
        .unwrap();
    charlie
        .until_polled("charlie dials alice at her record's addresses", WAIT, |s| {
            (s.holds_record_of(&alice_id) && s.counts().direct_dials >= 1).then_some(())
        })
        .await
        .unwrap();
    // "Hmm Alice didn't respond": nat-a drops the unsolicited connection.
    charlie
        .until("charlie's dial to alice fails", WAIT, |s| {
            s.events
                .dials_failed()
                .iter()
                .any(|d| d.peer_id == alice_id)
                .then_some(())
        })
        .await
        .expect("charlie's dial to alice fails");
    let state = charlie.state().await.unwrap();
    assert_eq!(state.events.missed(), 0);
    assert!(
        state.events.connection_changes_with(&alice_id).is_empty()
            && state
                .peer(&alice_id)
                .is_some_and(|p| p.connection() == pb::ConnectionState::None),
        "charlie never reached alice: {:?}",
        state.peer(&alice_id)
    );

    scenario::stop_all(&mut [&mut charlie, &mut alice, &mut boot]).await;
}

#[tokio::test]
async fn lab_charlie_cannot_dial_alice_behind_a_nat_over_tcp() {
    charlie_cannot_dial_alice_behind_a_nat("tcp").await;
}

#[tokio::test]
async fn lab_charlie_cannot_dial_alice_behind_a_nat_over_quic() {
    charlie_cannot_dial_alice_behind_a_nat("quic").await;
}
