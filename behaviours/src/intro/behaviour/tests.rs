#![allow(clippy::unwrap_used)]

use super::*;
use crate::enr_ext::SigningKey;

fn record(ip4: Option<[u8; 4]>, ip6: Option<&str>) -> Enr {
    let secret = libp2p::identity::secp256k1::SecretKey::generate();
    let key = SigningKey::from_slice(&secret.to_bytes()).unwrap();
    let mut builder = Enr::builder();
    if let Some(ip) = ip4 {
        builder.ip4(ip.into()).tcp4(9000);
    }
    if let Some(ip) = ip6 {
        builder.ip6(ip.parse().unwrap()).tcp6(9000);
    }
    builder.build(&key).unwrap()
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

#[test]
fn a_bootnode_vouches_only_for_ips_it_sees_the_requester_at() {
    let at = record(Some([198, 51, 100, 7]), None);
    assert_eq!(vouch(&at, &ips(&["198.51.100.7"])), Ok(()));
    assert_eq!(
        vouch(&at, &ips(&["203.0.113.9"])),
        Err(BadRecord::NotObserved {
            named: "198.51.100.7".parse().unwrap()
        }),
        "another IP"
    );
    assert!(vouch(&at, &[]).is_err(), "relayed only: no IP seen");
    assert_eq!(
        vouch(&at, &ips(&["::ffff:198.51.100.7"])),
        Ok(()),
        "v4-mapped"
    );
}

#[test]
fn every_ip_of_a_dual_stack_record_must_be_seen() {
    let both = record(Some([198, 51, 100, 7]), Some("2001:db8::7"));
    assert!(vouch(&both, &ips(&["198.51.100.7"])).is_err());
    assert_eq!(vouch(&both, &ips(&["198.51.100.7", "2001:db8::7"])), Ok(()));
}

#[test]
fn a_record_without_an_ip_is_vouched_for_but_refused_as_undialable() {
    let none = record(None, None);
    assert_eq!(vouch(&none, &[]), Ok(()));
    let bytes = enr_ext::encode_bytes(&none);
    assert_eq!(check_record(&bytes, None).err(), Some(BadRecord::NoAddress));
}

#[test]
fn lan_addresses_go_only_to_a_target_behind_the_requesters_nat() {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let nat: IpAddr = Ipv4Addr::new(198, 51, 100, 101).into();
    let mapped: IpAddr = Ipv4Addr::new(198, 51, 100, 101).to_ipv6_mapped().into();
    let other: IpAddr = Ipv4Addr::new(198, 51, 100, 102).into();
    assert!(super::behind_one_nat(&[nat], &[other, nat]));
    assert!(
        super::behind_one_nat(&[mapped], &[nat]),
        "one IP, two spellings"
    );
    assert!(!super::behind_one_nat(&[nat], &[other]));
    assert!(
        !super::behind_one_nat(&[], &[nat]),
        "a requester seen nowhere"
    );
    assert!(!super::behind_one_nat(&[Ipv6Addr::LOCALHOST.into()], &[]));
}
