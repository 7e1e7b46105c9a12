#![allow(clippy::unwrap_used)]

use super::*;

fn addr(s: &str) -> Multiaddr {
    s.parse().unwrap()
}

/// A guard for a node on the internet (listening on all interfaces, one public one) whose
/// bootnode is public too.
fn public_node(bootnode: PeerId) -> Guard {
    let mut guard = Guard::new(
        [&addr("/ip4/0.0.0.0/tcp/9000")],
        [(
            bootnode,
            &addr(&format!("/ip4/8.8.4.4/tcp/9000/p2p/{bootnode}")),
        )],
    );
    // What listening on all interfaces reports: loopback, and a public interface.
    guard.listening_on(&addr("/ip4/127.0.0.1/tcp/9000"));
    guard.listening_on(&addr("/ip4/9.9.9.9/tcp/9000"));
    guard
}

fn dial(peer: PeerId, s: &str) -> Multiaddr {
    addr(&format!("{s}/p2p/{peer}"))
}

#[test]
fn rule_1_a_circuit_is_not_vetted_and_a_name_is_resolved_only_for_a_bootnode() {
    let boot = PeerId::random();
    let mut guard = public_node(boot);
    let now = Instant::now();
    let relay = PeerId::random();
    let circuit = format!(
        "/ip4/127.0.0.2/tcp/1/p2p/{relay}/p2p-circuit/p2p/{}",
        PeerId::random()
    );
    assert_eq!(guard.check(&addr(&circuit), now), Ok(()));
    assert_eq!(
        guard.check(&dial(boot, "/dns4/boot.example/tcp/9000"), now),
        Ok(())
    );
    // A stranger's candidate naming a host, or a dial naming no peer: no lookup.
    for a in [
        dial(PeerId::random(), "/dns4/victim.example/tcp/9000"),
        dial(PeerId::random(), "/dnsaddr/victim.example"),
        addr("/dns/victim.example/udp/9000/quic-v1"),
    ] {
        assert_eq!(guard.check(&a, now), Err(Refusal::Name), "{a}");
    }
    assert_eq!(guard.refused()["dial_name"], 3);
}

#[test]
fn rule_2_unroutable_destinations_are_refused() {
    let mut guard = public_node(PeerId::random());
    let now = Instant::now();
    for a in [
        "/ip4/0.0.0.0/tcp/9000",
        "/ip4/224.0.0.1/udp/9000/quic-v1",
        "/ip4/255.255.255.255/tcp/1",
        "/ip6/::/tcp/9000",
        "/ip4/8.8.8.8/tcp/0",
    ] {
        assert!(
            matches!(guard.check(&addr(a), now), Err(Refusal::Unroutable(_))),
            "{a}"
        );
    }
    assert_eq!(guard.refused()["dial_unroutable"], 5);
}

#[test]
fn rule_4_a_public_node_dials_no_special_range_not_even_its_own_loopback() {
    let mut guard = public_node(PeerId::random());
    let now = Instant::now();
    let peer = PeerId::random();
    guard.vouch(peer, vec!["127.0.0.1".parse().unwrap()]);
    for a in [
        "/ip4/127.0.0.1/tcp/6379",
        "/ip4/10.0.0.5/tcp/9000",
        "/ip4/192.168.1.1/tcp/80",
        "/ip6/fe80::1/tcp/9000",
    ] {
        assert!(
            matches!(
                guard.check(&dial(peer, a), now),
                Err(Refusal::NotOurNetwork(..))
            ),
            "{a}"
        );
    }
}

#[test]
fn rule_4_a_node_on_a_range_dials_into_it() {
    let now = Instant::now();
    // Compose: the bootnode on the bridge network.
    let boot = PeerId::random();
    let mut guard = Guard::new(
        [&addr("/ip4/0.0.0.0/tcp/9000")],
        [(boot, &addr(&format!("/ip4/172.20.0.2/tcp/9000/p2p/{boot}")))],
    );
    assert_eq!(guard.check(&addr("/ip4/172.20.0.7/tcp/9000"), now), Ok(()));
    // Kubernetes: an interface in the pod network.
    guard.listening_on(&addr("/ip4/10.244.1.9/tcp/9000"));
    assert_eq!(guard.check(&addr("/ip4/10.244.2.3/tcp/9000"), now), Ok(()));
    // A test on loopback: told to listen there.
    let mut local = Guard::new([&addr("/ip4/127.0.0.1/tcp/0")], []);
    assert_eq!(local.check(&addr("/ip4/127.0.0.1/tcp/9001"), now), Ok(()));
}

#[test]
fn rules_3_and_5_bootnodes_and_vouched_ips_pass_without_budget() {
    let boot = PeerId::random();
    let mut guard = public_node(boot);
    let now = Instant::now();
    let peer = PeerId::random();
    guard.vouch(peer, vec!["1.2.3.4".parse().unwrap()]);
    for _ in 0..100 {
        assert_eq!(
            guard.check(&dial(peer, "/ip4/1.2.3.4/tcp/9000"), now),
            Ok(())
        );
        assert_eq!(
            guard.check(&dial(boot, "/ip4/8.8.4.4/tcp/9000"), now),
            Ok(())
        );
    }
    // Another peer's proven IP is not this peer's.
    let other = PeerId::random();
    for _ in 0..BUDGET_PER_BLOCK {
        assert_eq!(
            guard.check(&dial(other, "/ip4/1.2.3.4/tcp/9000"), now),
            Ok(())
        );
    }
    assert!(
        guard
            .check(&dial(other, "/ip4/1.2.3.4/tcp/9000"), now)
            .is_err()
    );
}

#[test]
fn rule_5_a_new_vouch_replaces_the_old_ips() {
    let mut guard = public_node(PeerId::random());
    let now = Instant::now();
    let peer = PeerId::random();
    guard.vouch(peer, vec!["1.2.3.4".parse().unwrap()]);
    guard.vouch(peer, vec!["5.6.7.8".parse().unwrap()]);
    for _ in 0..=BUDGET_PER_BLOCK {
        let _ = guard.check(&dial(peer, "/ip4/1.2.3.4/tcp/9000"), now);
    }
    assert!(
        guard
            .check(&dial(peer, "/ip4/1.2.3.4/tcp/9000"), now)
            .is_err(),
        "the old IP is budgeted again"
    );
}

#[test]
fn rule_6_an_ip_a_connection_comes_from_passes_while_connected() {
    let mut guard = public_node(PeerId::random());
    let now = Instant::now();
    let ip: IpAddr = "1.2.3.4".parse().unwrap();
    guard.connected(ip);
    guard.connected(ip);
    for _ in 0..100 {
        assert_eq!(guard.check(&addr("/ip4/1.2.3.4/tcp/40000"), now), Ok(()));
    }
    guard.disconnected(ip);
    assert_eq!(guard.check(&addr("/ip4/1.2.3.4/tcp/40000"), now), Ok(()));
    guard.disconnected(ip);
    for _ in 0..BUDGET_PER_BLOCK {
        let _ = guard.check(&addr("/ip4/1.2.3.4/tcp/40000"), now);
    }
    assert!(guard.check(&addr("/ip4/1.2.3.4/tcp/40000"), now).is_err());
}

#[test]
fn rule_7_unproven_dials_to_one_block_stop_at_its_budget_until_the_window_passes() {
    let mut guard = public_node(PeerId::random());
    let t0 = Instant::now();
    let stranger = PeerId::random();
    // DCUtR's candidates: a victim's /24, every port.
    let results: Vec<_> = (1..=400)
        .map(|port| {
            guard.check(
                &dial(stranger, &format!("/ip4/5.5.5.{}/tcp/{port}", port % 250)),
                t0,
            )
        })
        .collect();
    let passed = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(passed, BUDGET_PER_BLOCK as usize);
    assert_eq!(
        guard.refused()["dial_over_budget"],
        400 - u64::from(BUDGET_PER_BLOCK)
    );
    // The next window.
    assert_eq!(
        guard.check(&dial(stranger, "/ip4/5.5.5.9/tcp/1"), t0 + BUDGET_WINDOW),
        Ok(())
    );
}

#[test]
fn rule_7_unproven_dials_in_all_stop_at_the_total() {
    let mut guard = public_node(PeerId::random());
    let now = Instant::now();
    // A thousand victims, one per block.
    let passed = (0..1000u32)
        .filter(|i| {
            let a = format!("/ip4/5.{}.{}.1/tcp/9000", i / 256, i % 256);
            guard.check(&addr(&a), now).is_ok()
        })
        .count();
    assert_eq!(passed, BUDGET_TOTAL as usize);
}

#[test]
fn vouched_peers_are_bounded() {
    let mut guard = public_node(PeerId::random());
    for _ in 0..MAX_VOUCHED + 10 {
        guard.vouch(PeerId::random(), vec!["1.2.3.4".parse().unwrap()]);
    }
    assert_eq!(guard.vouched.len(), MAX_VOUCHED);
}

#[test]
fn rule_3_a_bootnode_named_by_dns_passes_at_whatever_ip_it_resolves_to() {
    let boot = PeerId::random();
    let mut guard = Guard::new(
        [&addr("/ip4/0.0.0.0/tcp/9000")],
        [(
            boot,
            &addr(&format!("/dns4/boot.example/tcp/9000/p2p/{boot}")),
        )],
    );
    let now = Instant::now();
    for _ in 0..100 {
        assert_eq!(
            guard.check(&dial(boot, "/ip4/10.96.0.7/tcp/9000"), now),
            Ok(())
        );
    }
    assert!(
        guard
            .check(&dial(boot, "/ip4/0.0.0.0/tcp/9000"), now)
            .is_err(),
        "never an unroutable one"
    );
    assert!(
        guard
            .check(&dial(PeerId::random(), "/ip4/10.96.0.7/tcp/9000"), now)
            .is_err(),
        "another peer there is on a range this node is not on"
    );
}
