#![allow(clippy::unwrap_used)]

use super::*;

fn addr() -> Multiaddr {
    "/ip4/198.51.100.101/udp/9000/quic-v1".parse().unwrap()
}

/// A dial-back that reached us.
const REACHABLE: Tested = Tested {
    reachable: true,
    vouched: true,
};

/// A dial-back that failed, on an address a bootnode saw us at.
const UNREACHABLE: Tested = Tested {
    reachable: false,
    vouched: true,
};

fn detector() -> Detector {
    Detector::new(Config::default(), Instant::now())
}

#[tokio::test(start_paused = true)]
async fn no_stranger_within_the_window_after_a_bootnode_means_private() {
    let mut d = detector();
    assert_eq!(d.deadline(), None, "no window before a bootnode");
    d.bootnode_connected(Instant::now());
    let deadline = d.deadline().unwrap();
    assert_eq!(d.on_deadline(Instant::now()), None, "not yet");

    tokio::time::sleep_until(deadline).await;
    let change = d.on_deadline(Instant::now()).unwrap();
    assert_eq!((change.from, change.to), (Status::Unknown, Status::Private));
    assert_eq!(
        change.reason,
        Reason::NoStrangerWithin {
            window: DEFAULT_WINDOW
        }
    );
    assert!(change.reason.to_string().contains("within 120 s"));
    assert_eq!(d.status().2, Instant::now(), "since the window closed");
    assert_eq!(d.deadline(), None);
}

#[tokio::test(start_paused = true)]
async fn a_later_bootnode_does_not_move_the_window() {
    let mut d = detector();
    d.bootnode_connected(Instant::now());
    let first = d.deadline().unwrap();
    tokio::time::advance(Duration::from_secs(60)).await;
    d.bootnode_connected(Instant::now());
    assert_eq!(d.deadline(), Some(first));
}

#[tokio::test(start_paused = true)]
async fn a_stranger_inside_the_window_means_public_and_closes_it() {
    let mut d = detector();
    d.bootnode_connected(Instant::now());
    tokio::time::advance(Duration::from_secs(30)).await;
    let change = d
        .stranger_connected(PeerId::random(), Instant::now())
        .unwrap();
    assert_eq!(change.to, Status::Public);
    tokio::time::advance(DEFAULT_WINDOW).await;
    assert_eq!(d.on_deadline(Instant::now()), None);
    assert_eq!(d.status().0, Status::Public);
}

#[tokio::test(start_paused = true)]
async fn a_stranger_after_the_window_clears_private() {
    let mut d = detector();
    d.bootnode_connected(Instant::now());
    tokio::time::advance(DEFAULT_WINDOW).await;
    d.on_deadline(Instant::now()).unwrap();
    let change = d
        .stranger_connected(PeerId::random(), Instant::now())
        .unwrap();
    assert_eq!((change.from, change.to), (Status::Private, Status::Public));
}

#[tokio::test(start_paused = true)]
async fn autonat_decides_in_seconds_and_a_reachable_address_outranks_an_unreachable_one() {
    let mut d = detector();
    d.bootnode_connected(Instant::now());
    tokio::time::advance(Duration::from_secs(10)).await;
    let server = PeerId::random();
    let change = d
        .autonat_result(addr(), server, UNREACHABLE, Instant::now())
        .unwrap();
    assert_eq!(change.to, Status::Private);
    assert_eq!(d.deadline(), None, "the heuristic is no longer needed");

    let change = d
        .autonat_result(addr(), server, REACHABLE, Instant::now())
        .unwrap();
    assert_eq!(change.to, Status::Public);
    assert_eq!(
        d.autonat_result(addr(), server, UNREACHABLE, Instant::now()),
        None
    );
    assert_eq!(d.status().0, Status::Public);
}

#[tokio::test(start_paused = true)]
async fn public_by_autonat_is_never_undone_by_the_window() {
    let mut d = detector();
    d.bootnode_connected(Instant::now());
    d.autonat_result(addr(), PeerId::random(), REACHABLE, Instant::now())
        .unwrap();
    tokio::time::advance(DEFAULT_WINDOW * 2).await;
    assert_eq!(d.on_deadline(Instant::now()), None);
    assert_eq!(d.status().0, Status::Public);
}

#[test]
fn each_change_is_reported_once() {
    let mut d = detector();
    let p = PeerId::random();
    assert!(d.stranger_connected(p, Instant::now()).is_some());
    assert!(d.stranger_connected(p, Instant::now()).is_none());
}

#[tokio::test(start_paused = true)]
async fn a_translated_address_means_private_at_once_until_a_stranger_reaches_us() {
    let mut d = detector();
    d.bootnode_connected(Instant::now());
    assert_eq!(d.translated(), None);
    tokio::time::advance(Duration::from_millis(80)).await;
    let boot = PeerId::random();
    let change = d
        .address_confirmed(addr(), Witness::Bootnode(boot), true, Instant::now())
        .unwrap();
    assert_eq!((change.from, change.to), (Status::Unknown, Status::Private));
    assert!(
        change.reason.to_string().contains("translated"),
        "{}",
        change.reason
    );
    assert_eq!(d.translated(), Some(true));
    assert_eq!(
        d.address_confirmed(addr(), Witness::Bootnode(boot), true, Instant::now()),
        None
    );
    // A dial-back behind a translating NAT passes an address-restricted one too: no proof.
    assert_eq!(
        d.autonat_result(addr(), boot, REACHABLE, Instant::now()),
        None
    );
    assert_eq!(d.status().0, Status::Private);
    // A stranger's connection is: revised to public, and it stays.
    let change = d
        .stranger_connected(PeerId::random(), Instant::now())
        .unwrap();
    assert_eq!(change.to, Status::Public);
    assert_eq!(
        d.address_confirmed(addr(), Witness::Bootnode(boot), true, Instant::now()),
        None
    );
    assert_eq!(d.status().0, Status::Public);
}

#[tokio::test(start_paused = true)]
async fn a_dial_back_before_the_translation_was_seen_is_taken_back_by_it() {
    let mut d = detector();
    d.bootnode_connected(Instant::now());
    let boot = PeerId::random();
    let change = d
        .autonat_result(addr(), boot, REACHABLE, Instant::now())
        .unwrap();
    assert_eq!(change.to, Status::Public);
    let change = d
        .address_confirmed(addr(), Witness::Bootnode(boot), true, Instant::now())
        .unwrap();
    assert_eq!((change.from, change.to), (Status::Public, Status::Private));
    assert!(matches!(change.reason, Reason::AddressTranslated { .. }));
    assert_eq!(
        d.autonat_result(addr(), boot, REACHABLE, Instant::now()),
        None
    );
    assert_eq!(d.status().0, Status::Private);
}

#[tokio::test(start_paused = true)]
async fn an_untranslated_dial_back_is_public_and_stays_so() {
    let mut d = detector();
    d.bootnode_connected(Instant::now());
    let boot = PeerId::random();
    d.address_confirmed(addr(), Witness::Bootnode(boot), false, Instant::now());
    let change = d
        .autonat_result(addr(), boot, REACHABLE, Instant::now())
        .unwrap();
    assert_eq!(change.to, Status::Public);
    assert_eq!(
        d.autonat_result(addr(), boot, UNREACHABLE, Instant::now()),
        None
    );
    assert_eq!(d.status().0, Status::Public);
}

#[tokio::test(start_paused = true)]
async fn an_untranslated_address_is_no_verdict_and_a_public_node_stays_public() {
    let mut d = detector();
    d.bootnode_connected(Instant::now());
    let boot = PeerId::random();
    assert_eq!(
        d.address_confirmed(addr(), Witness::Bootnode(boot), false, Instant::now()),
        None
    );
    assert_eq!(d.status().0, Status::Unknown);
    assert_eq!(d.translated(), Some(false));
    assert!(d.deadline().is_some(), "the window still runs");
    d.stranger_connected(PeerId::random(), Instant::now())
        .unwrap();
    assert_eq!(
        d.address_confirmed(addr(), Witness::Bootnode(boot), true, Instant::now()),
        None,
        "a stranger reached us: a translation does not undo that"
    );
    assert_eq!(d.status().0, Status::Public);
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_address_no_bootnode_saw_us_at_is_no_verdict() {
    let mut d = detector();
    d.bootnode_connected(Instant::now());
    let named_by_a_stranger = Tested {
        reachable: false,
        vouched: false,
    };
    assert_eq!(
        d.autonat_result(
            addr(),
            PeerId::random(),
            named_by_a_stranger,
            Instant::now()
        ),
        None
    );
    assert_eq!(d.status().0, Status::Unknown);
    assert!(d.deadline().is_some(), "the window still runs");
}

#[tokio::test(start_paused = true)]
async fn an_address_only_observers_confirmed_is_no_verdict() {
    let mut d = detector();
    d.bootnode_connected(Instant::now());
    assert_eq!(
        d.address_confirmed(addr(), Witness::Groups(4), true, Instant::now()),
        None
    );
    assert_eq!(d.status().0, Status::Unknown);
    assert_eq!(d.translated(), None, "nor does it say we are translated");
}

/// The router's public address and the port it forwards to us.
fn mapped() -> Multiaddr {
    "/ip4/198.51.100.101/tcp/9100".parse().unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_port_mapping_a_dial_back_reached_makes_a_translated_node_public_at_the_mapped_address() {
    let mut d = detector();
    d.bootnode_connected(Instant::now());
    let bootnode = PeerId::random();
    d.address_confirmed(mapped(), Witness::Bootnode(bootnode), true, Instant::now())
        .unwrap();
    assert_eq!(d.status().0, Status::Private, "rule 5 first");

    tokio::time::advance(Duration::from_millis(300)).await;
    let server = PeerId::random();
    let change = d
        .mapping_verified(mapped(), server, Instant::now())
        .unwrap();
    assert_eq!((change.from, change.to), (Status::Private, Status::Public));
    assert_eq!(
        change.reason,
        Reason::PortMappingVerified {
            addr: mapped(),
            server
        }
    );
    assert!(change.reason.to_string().contains("forwards"));
    assert_eq!(d.status().2, Instant::now());
    assert_eq!(d.deadline(), None, "the window is closed");
}

#[tokio::test(start_paused = true)]
async fn a_verified_port_mapping_outranks_later_failed_tests_translations_and_the_window() {
    let mut d = detector();
    d.bootnode_connected(Instant::now());
    d.mapping_verified(mapped(), PeerId::random(), Instant::now())
        .unwrap();
    // A test of another address of ours (the NAT's own mapping on QUIC, say) fails.
    assert_eq!(
        d.autonat_result(addr(), PeerId::random(), UNREACHABLE, Instant::now()),
        None
    );
    let bootnode = Witness::Bootnode(PeerId::random());
    assert_eq!(
        d.address_confirmed(mapped(), bootnode, true, Instant::now()),
        None
    );
    tokio::time::advance(DEFAULT_WINDOW * 2).await;
    assert_eq!(d.on_deadline(Instant::now()), None);
    assert_eq!(d.status().0, Status::Public);
    assert!(matches!(d.status().1, Reason::PortMappingVerified { .. }));
}

#[tokio::test(start_paused = true)]
async fn a_port_mapping_verified_after_autonat_said_public_is_no_second_change() {
    let mut d = detector();
    d.autonat_result(mapped(), PeerId::random(), REACHABLE, Instant::now())
        .unwrap();
    assert_eq!(
        d.mapping_verified(mapped(), PeerId::random(), Instant::now()),
        None
    );
}

#[tokio::test(start_paused = true)]
async fn a_verified_port_mapping_stays_public_behind_the_translation() {
    let mut d = detector();
    d.bootnode_connected(Instant::now());
    let bootnode = Witness::Bootnode(PeerId::random());
    d.address_confirmed(addr(), bootnode, true, Instant::now())
        .unwrap();
    d.mapping_verified(mapped(), PeerId::random(), Instant::now())
        .unwrap();
    // Every later observation through the NAT is translated again: rule 5 keeps out.
    for _ in 0..3 {
        assert_eq!(
            d.address_confirmed(addr(), bootnode, true, Instant::now()),
            None
        );
    }
    assert_eq!(d.translated(), Some(true));
    // The mapping still counts as a reachable address: a failed test is no verdict.
    assert_eq!(
        d.autonat_result(addr(), PeerId::random(), UNREACHABLE, Instant::now()),
        None
    );
    // Rule 2 still gives nothing behind the translation, and takes nothing either.
    assert_eq!(
        d.autonat_result(addr(), PeerId::random(), REACHABLE, Instant::now()),
        None
    );
    assert_eq!(d.status().0, Status::Public);
    assert!(matches!(d.status().1, Reason::PortMappingVerified { .. }));
}
