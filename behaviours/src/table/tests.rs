#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;

use super::*;
use crate::enr_ext::{SigningKey, peer_id};

fn key() -> SigningKey {
    SigningKey::from_slice(&libp2p::identity::secp256k1::SecretKey::generate().to_bytes()).unwrap()
}

fn record(key: &SigningKey, seq: u64, port: u16) -> (Enr, PeerId) {
    record_at(key, seq, Ipv4Addr::LOCALHOST, port)
}

fn record_at(key: &SigningKey, seq: u64, ip: Ipv4Addr, port: u16) -> (Enr, PeerId) {
    let enr = Enr::builder()
        .seq(seq)
        .ip4(ip)
        .tcp4(port)
        .build(key)
        .unwrap();
    let peer = peer_id(&enr).unwrap();
    (enr, peer)
}

fn record_without_ip(key: &SigningKey) -> (Enr, PeerId) {
    let enr = Enr::builder().build(key).unwrap();
    let peer = peer_id(&enr).unwrap();
    (enr, peer)
}

fn table(capacity: usize) -> Table {
    table_with(capacity, capacity)
}

fn table_with(capacity: usize, max_per_group: usize) -> Table {
    let local = Enr::builder().build(&key()).unwrap().node_id();
    Table::new(
        Config {
            capacity,
            ttl: Duration::from_secs(60),
            max_per_group,
        },
        local,
    )
}

/// `enr` announced by its owner, grouped by its own IP.
fn announce(t: &mut Table, enr: &Enr, peer: PeerId, at: Instant) -> Result<Inserted, Refused> {
    let group = Group::of_record(enr);
    t.insert(enr.clone(), peer, Source::Announced, group, at)
}

/// `enr` passed on by a bootnode.
fn pass_on(t: &mut Table, enr: &Enr, peer: PeerId, at: Instant) -> Result<Inserted, Refused> {
    let from = Source::Gossip {
        from: PeerId::random(),
    };
    t.insert(enr.clone(), peer, from, Group::of_record(enr), at)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn a_newer_seq_replaces_the_held_record() {
    let (mut t, k, now) = (table(8), key(), Instant::now());
    let (old, peer) = record(&k, 1, 1000);
    let (new, _) = record(&k, 2, 2000);
    assert_eq!(announce(&mut t, &old, peer, now), Ok(Inserted::New));
    assert_eq!(
        announce(&mut t, &new, peer, now),
        Ok(Inserted::Updated { old_seq: 1 })
    );
    assert_eq!(t.get_by_peer(&peer).unwrap().enr.tcp4(), Some(2000));
}

#[test]
fn an_older_seq_is_refused_as_stale_and_changes_nothing() {
    let (mut t, k, now) = (table(8), key(), Instant::now());
    let (new, peer) = record(&k, 5, 5000);
    let (old, _) = record(&k, 4, 4000);
    announce(&mut t, &new, peer, now).unwrap();
    assert_eq!(
        announce(&mut t, &old, peer, now),
        Err(Refused::Stale { held: 5, got: 4 })
    );
    assert_eq!(t.get_by_peer(&peer).unwrap().enr.tcp4(), Some(5000));
}

#[test]
fn the_same_seq_with_other_content_is_a_conflict_and_the_first_is_kept() {
    let (mut t, k, now) = (table(8), key(), Instant::now());
    let (first, peer) = record(&k, 3, 3000);
    let (other, _) = record(&k, 3, 3001);
    announce(&mut t, &first, peer, now).unwrap();
    assert_eq!(
        announce(&mut t, &other, peer, now),
        Err(Refused::Conflict { seq: 3 })
    );
    // The same record again (re-signed, so other bytes) only refreshes.
    let later = now + secs(10);
    assert_eq!(
        announce(&mut t, &first, peer, later),
        Ok(Inserted::Refreshed)
    );
    assert_eq!(t.get_by_peer(&peer).unwrap().refreshed, later);
    assert_eq!(t.get_by_peer(&peer).unwrap().enr.tcp4(), Some(3000));
}

#[test]
fn rule_4_only_the_owner_refreshes_a_record_others_pass_on_again() {
    let (mut t, k, now) = (table(8), key(), Instant::now());
    let (enr, peer) = record(&k, 1, 1000);
    assert_eq!(pass_on(&mut t, &enr, peer, now), Ok(Inserted::New));
    assert_eq!(t.get_by_peer(&peer).unwrap().owner_seen, None);
    assert_eq!(
        pass_on(&mut t, &enr, peer, now + secs(30)),
        Ok(Inserted::Known)
    );
    assert_eq!(t.get_by_peer(&peer).unwrap().refreshed, now, "no refresh");
    assert_eq!(
        t.expire(now + secs(60)).len(),
        1,
        "passed on again and again, it still lives one TTL"
    );

    let (enr, peer) = record(&key(), 1, 1001);
    pass_on(&mut t, &enr, peer, now).unwrap();
    let later = now + secs(30);
    assert_eq!(announce(&mut t, &enr, peer, later), Ok(Inserted::Refreshed));
    let entry = t.get_by_peer(&peer).unwrap();
    assert_eq!((entry.refreshed, entry.owner_seen), (later, Some(later)));
}

#[test]
fn rule_4_the_mesh_renews_a_held_record_without_decoding_it() {
    let (mut t, now) = (table(8), Instant::now());
    let (enr, peer) = record(&key(), 1, 1000);
    let raw = enr_ext::encode_bytes(&enr);
    assert!(!t.renew(&raw, now), "nothing held");
    pass_on(&mut t, &enr, peer, now).unwrap();
    assert!(t.renew(&raw, now + secs(30)));
    let entry = t.get_by_peer(&peer).unwrap();
    assert_eq!((entry.refreshed, entry.owner_seen), (now + secs(30), None));
    assert!(t.expire(now + secs(60)).is_empty());
}

#[test]
fn first_hand_records_are_those_whose_owner_we_saw_within_the_ttl() {
    let (mut t, now) = (table(8), Instant::now());
    let (announced, pa) = record(&key(), 1, 1);
    let (passed, pp) = record(&key(), 1, 2);
    let (connected, pc) = record(&key(), 1, 3);
    announce(&mut t, &announced, pa, now).unwrap();
    pass_on(&mut t, &passed, pp, now).unwrap();
    pass_on(&mut t, &connected, pc, now).unwrap();
    t.connected(pc, now);
    let first_hand = |t: &Table, at| {
        let mut peers: Vec<PeerId> = t.first_hand(at).map(|e| e.peer_id).collect();
        peers.sort();
        peers
    };
    let mut both = vec![pa, pc];
    both.sort();
    assert_eq!(first_hand(&t, now + secs(10)), both);
    // A renewal keeps a record, but does not make it first-hand again.
    t.renew(&enr_ext::encode_bytes(&announced), now + secs(59));
    assert_eq!(first_hand(&t, now + secs(61)), vec![pc]);
}

#[test]
fn the_own_record_is_never_stored() {
    let k = key();
    let own = Enr::builder().build(&k).unwrap();
    let mut t = Table::new(Config::default(), own.node_id());
    let peer = peer_id(&own).unwrap();
    assert_eq!(
        announce(&mut t, &own, peer, Instant::now()),
        Err(Refused::Own)
    );
    assert!(t.is_empty());
}

#[test]
fn a_full_table_evicts_the_least_recently_refreshed_record() {
    let (mut t, now) = (table(2), Instant::now());
    let (a, b, c) = (key(), key(), key());
    let (ra, pa) = record(&a, 1, 1);
    let (rb, pb) = record(&b, 1, 2);
    let (rc, pc) = record(&c, 1, 3);
    announce(&mut t, &ra, pa, now).unwrap();
    announce(&mut t, &rb, pb, now + secs(1)).unwrap();
    // Refresh a: now b is the stalest.
    announce(&mut t, &ra, pa, now + secs(2)).unwrap();
    announce(&mut t, &rc, pc, now + secs(3)).unwrap();
    assert_eq!(t.len(), 2);
    assert!(t.get_by_peer(&pa).is_some());
    assert!(t.get_by_peer(&pb).is_none());
    assert!(t.get_by_peer(&pc).is_some());
}

#[test]
fn rule_5_a_full_table_evicts_from_the_largest_group_first() {
    let (mut t, now) = (table(4), Instant::now());
    // The honest record, oldest of all, alone in its /24.
    let (honest, ph) = record_at(&key(), 1, Ipv4Addr::new(198, 51, 100, 7), 1);
    announce(&mut t, &honest, ph, now).unwrap();
    let flood = Ipv4Addr::new(203, 0, 113, 1);
    let mut flooded = Vec::new();
    for i in 0..5 {
        let (enr, peer) = record_at(&key(), 1, flood, 10 + i);
        announce(&mut t, &enr, peer, now + secs(1 + u64::from(i))).unwrap();
        flooded.push(peer);
    }
    assert!(t.get_by_peer(&ph).is_some(), "the flood evicted its own");
    assert_eq!(t.in_group(&Group::of(flood.into())), 3);
    assert!(t.get_by_peer(&flooded[0]).is_none() && t.get_by_peer(&flooded[1]).is_none());
}

#[test]
fn rule_5_a_record_whose_owner_is_connected_is_evicted_last() {
    let (mut t, now) = (table(2), Instant::now());
    let (ra, pa) = record(&key(), 1, 1);
    let (rb, pb) = record(&key(), 1, 2);
    let (rc, pc) = record(&key(), 1, 3);
    announce(&mut t, &ra, pa, now).unwrap();
    t.connected(pa, now);
    announce(&mut t, &rb, pb, now + secs(1)).unwrap();
    // a is the stalest and its group as large as b's, but a is connected.
    announce(&mut t, &rc, pc, now + secs(2)).unwrap();
    assert!(t.get_by_peer(&pa).is_some());
    assert!(t.get_by_peer(&pb).is_none());
}

#[test]
fn rule_5_a_record_naming_no_ip_is_evicted_before_one_naming_an_ip() {
    let (mut t, now) = (table(2), Instant::now());
    let (ra, pa) = record(&key(), 1, 1);
    let (rb, pb) = record_without_ip(&key());
    let (rc, pc) = record(&key(), 1, 3);
    announce(&mut t, &ra, pa, now).unwrap();
    // Announced over a connection from 127.0.0.1: a's group, and fresher than a.
    let group = Group::of(Ipv4Addr::LOCALHOST.into());
    t.insert(rb, pb, Source::Announced, group, now + secs(1))
        .unwrap();
    announce(&mut t, &rc, pc, now + secs(2)).unwrap();
    assert!(t.get_by_peer(&pa).is_some());
    assert!(t.get_by_peer(&pb).is_none());
}

#[test]
fn rule_8_a_new_record_beyond_its_groups_cap_is_refused() {
    let (mut t, now) = (table_with(16, 2), Instant::now());
    let ip = Ipv4Addr::new(198, 51, 100, 1);
    let group = Group::of(ip.into());
    let (ra, pa) = record_at(&key(), 1, ip, 1);
    let (rb, pb) = record_at(&key(), 1, Ipv4Addr::new(198, 51, 100, 200), 2);
    let (rc, pc) = record_at(&key(), 1, Ipv4Addr::new(198, 51, 100, 99), 3);
    announce(&mut t, &ra, pa, now).unwrap();
    announce(&mut t, &rb, pb, now).unwrap();
    assert_eq!(
        announce(&mut t, &rc, pc, now),
        Err(Refused::GroupFull { group })
    );
    assert_eq!((t.len(), t.in_group(&group)), (2, 2));
    // Another /24 has room.
    let (rd, pd) = record_at(&key(), 1, Ipv4Addr::new(198, 51, 101, 1), 4);
    assert_eq!(announce(&mut t, &rd, pd, now), Ok(Inserted::New));
}

#[test]
fn rule_8_a_held_node_may_update_its_record_in_a_full_group() {
    let (mut t, k, now) = (table_with(16, 1), key(), Instant::now());
    let (old, peer) = record(&k, 1, 1000);
    let (new, _) = record(&k, 2, 2000);
    announce(&mut t, &old, peer, now).unwrap();
    assert_eq!(
        announce(&mut t, &new, peer, now),
        Ok(Inserted::Updated { old_seq: 1 })
    );
    assert_eq!(announce(&mut t, &new, peer, now), Ok(Inserted::Refreshed));
    // Moving to another group moves its count.
    let (moved, _) = record_at(&k, 3, Ipv4Addr::new(192, 0, 2, 1), 3000);
    announce(&mut t, &moved, peer, now).unwrap();
    assert_eq!(t.in_group(&Group::of(Ipv4Addr::LOCALHOST.into())), 0);
    assert_eq!(t.in_group(&Group::of_record(&moved)), 1);
}

#[test]
fn rule_8_records_without_a_known_address_are_capped_together() {
    let (mut t, now) = (table_with(16, 2), Instant::now());
    for _ in 0..2 {
        let (enr, peer) = record_without_ip(&key());
        assert_eq!(pass_on(&mut t, &enr, peer, now), Ok(Inserted::New));
    }
    let (enr, peer) = record_without_ip(&key());
    assert_eq!(
        pass_on(&mut t, &enr, peer, now),
        Err(Refused::GroupFull {
            group: Group::NoAddress
        })
    );
    // Announced naming no IP, it counts in its connection's group instead.
    let from = Group::of(Ipv4Addr::new(192, 0, 2, 9).into());
    assert_eq!(
        t.insert(enr, peer, Source::Announced, from, now),
        Ok(Inserted::New)
    );
    assert_eq!(t.get_by_peer(&peer).unwrap().group, from);
}

#[test]
fn groups_are_ipv4_slash_24_and_ipv6_slash_64() {
    let g = |ip: &str| Group::of(ip.parse().unwrap());
    assert_eq!(g("198.51.100.1"), g("198.51.100.254"));
    assert_ne!(g("198.51.100.1"), g("198.51.101.1"));
    assert_eq!(g("2001:db8:1:2::1"), g("2001:db8:1:2:ffff::9"));
    assert_ne!(g("2001:db8:1:2::1"), g("2001:db8:1:3::1"));
    assert_eq!(g("::ffff:198.51.100.1"), g("198.51.100.9"));
    assert_eq!(g("198.51.100.1").to_string(), "198.51.100.0/24");
    assert_eq!(g("2001:db8:1:2::1").to_string(), "2001:db8:1:2::/64");
}

#[test]
fn records_expire_when_not_refreshed_within_the_ttl() {
    let (mut t, now) = (table(8), Instant::now());
    let (a, b) = (key(), key());
    let (ra, pa) = record(&a, 1, 1);
    let (rb, pb) = record(&b, 1, 2);
    announce(&mut t, &ra, pa, now).unwrap();
    announce(&mut t, &rb, pb, now).unwrap();
    announce(&mut t, &ra, pa, now + secs(30)).unwrap();
    let expired = t.expire(now + secs(60));
    assert_eq!(expired.len(), 1);
    assert!(t.get_by_peer(&pa).is_some());
    assert!(t.get_by_peer(&pb).is_none());
    assert!(t.groups.values().all(|n| *n == 1), "counts follow removals");
}

#[test]
fn rule_6_a_connected_owner_keeps_its_record_alive_and_its_close_refreshes_it() {
    let (mut t, now) = (table(8), Instant::now());
    let (enr, peer) = record(&key(), 1, 1);
    pass_on(&mut t, &enr, peer, now).unwrap();
    t.connected(peer, now + secs(10));
    assert_eq!(
        t.get_by_peer(&peer).unwrap().owner_seen,
        Some(now + secs(10))
    );
    assert!(t.expire(now + secs(100)).is_empty(), "connected");
    t.disconnected(&peer, now + secs(150));
    assert!(t.expire(now + secs(200)).is_empty(), "closed 50 s ago");
    assert_eq!(t.expire(now + secs(210)).len(), 1);
}

#[test]
fn held_bytes_are_known_without_decoding_and_only_while_held() {
    let (mut t, k, now) = (table(8), key(), Instant::now());
    let (old, peer) = record(&k, 1, 1000);
    let (new, _) = record(&k, 2, 2000);
    let (old_raw, new_raw) = (enr_ext::encode_bytes(&old), enr_ext::encode_bytes(&new));
    assert!(!t.holds(&old_raw), "nothing held");
    announce(&mut t, &old, peer, now).unwrap();
    assert!(t.holds(&old_raw));
    let mut flipped = old_raw.clone();
    if let Some(last) = flipped.last_mut() {
        *last ^= 1;
    }
    assert!(!t.holds(&flipped), "other bytes");
    assert!(!t.holds(&new_raw), "not held yet");
    let later = now + secs(30);
    announce(&mut t, &new, peer, later).unwrap();
    assert!(t.holds(&new_raw));
    assert!(!t.holds(&old_raw), "replaced");
    t.expire(later + secs(60));
    assert!(!t.holds(&new_raw), "expired");
    assert!(t.by_raw.is_empty() && t.groups.is_empty());
}
