//! The routers' nftables rule sets, one per [`NatMode`].
//!
//! The rules live in `container/router.nft`, shared with the router containers of
//! `compose.yaml`, so the lab and the containers run the same NAT. Every mode shares one
//! firewall: the router itself accepts only loopback, replies and its LAN; forwarding accepts
//! replies and LAN to WAN. Unsolicited packets are dropped, never rejected (the file says why).

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::NatMode;

/// The router's interface on the public segment.
pub(super) const WAN: &str = "wan0";
/// The router's interface on its LAN.
pub(super) const LAN: &str = "lan0";

/// The shared rule file. Lines ending in `#mode: A B` belong to those modes only.
const RULES: &str = include_str!("../../../container/router.nft");

/// The tag that marks a line as belonging to some modes only (an nft comment).
const MODE_TAG: &str = "#mode:";

/// The name `container/router.nft` (and the router image's `NAT_MODE`) gives `mode`.
pub(super) fn mode_name(mode: NatMode) -> &'static str {
    match mode {
        NatMode::EndpointIndependent => "eim",
        NatMode::Symmetric => "symmetric",
        NatMode::FullCone => "full-cone",
        NatMode::AddressRestricted => "address-restricted",
        NatMode::UdpBlocked => "udp-blocked",
        NatMode::Upnp => "upnp",
    }
}

/// The translation of a router in `mode`, as `container/router.nft` writes it. Plain masquerade keeps the source port when it is
/// free, so every destination sees the same public port: endpoint-independent mapping.
/// `fully-random` picks a new port for each new conntrack entry, that is for each
/// destination: symmetric mapping.
fn masquerade(mode: NatMode) -> &'static str {
    match mode {
        NatMode::EndpointIndependent
        | NatMode::FullCone
        | NatMode::AddressRestricted
        | NatMode::UdpBlocked
        | NatMode::Upnp => "masquerade",
        NatMode::Symmetric => "masquerade fully-random",
    }
}

/// `nft -f` input that replaces the router's translation: `mode`'s, or with `port`, every
/// mapping on that one public port (a NAT that rebinds its host to another port).
pub(super) fn remap(mode: NatMode, port: Option<u16>) -> String {
    let flush = "flush chain ip nat postrouting\n";
    let rule = |what: &str| format!("add rule ip nat postrouting oifname \"{WAN}\" {what}\n");
    match port {
        // A port applies to TCP and UDP only; anything else keeps plain masquerade.
        Some(port) => format!(
            "{flush}{}{}",
            rule(&format!(
                "meta l4proto {{ tcp, udp }} masquerade to :{port}"
            )),
            rule("masquerade")
        ),
        None => format!("{flush}{}", rule(masquerade(mode))),
    }
}

/// The table that drops everything the router would forward, both ways: `nft -f` input
/// that adds it. It hooks in before the firewall, so not even replies pass.
pub(super) const BLACKHOLE_TABLE: &str = "fault";

/// `nft -f` input that makes the router a black hole (see [`BLACKHOLE_TABLE`]).
pub(super) fn blackhole() -> String {
    format!(
        "table inet {BLACKHOLE_TABLE} {{\n    chain forward {{\n        type filter hook forward priority filter - 10; policy drop;\n    }}\n}}\n"
    )
}

/// The rule set for a router in `mode` whose LAN holds `lan_host`, as `nft -f` input: the
/// definitions the file expects, then its lines for `mode`.
pub(super) fn ruleset(mode: NatMode, lan_host: Ipv4Addr) -> String {
    let name = mode_name(mode);
    let mut rules = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(rules, "define wan = \"{WAN}\"");
    let _ = writeln!(rules, "define lan = \"{LAN}\"");
    let _ = writeln!(rules, "define lan_host = {lan_host}");
    for line in RULES.lines() {
        let keep = match line.split_once(MODE_TAG) {
            Some((_, modes)) => modes.split_whitespace().any(|m| m == name),
            None => true,
        };
        if keep {
            rules.push_str(line);
            rules.push('\n');
        }
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 2);

    fn rule_lines(mode: NatMode) -> Vec<String> {
        ruleset(mode, HOST)
            .lines()
            .map(|l| l.split('#').next().unwrap_or_default().trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect()
    }

    #[test]
    fn each_mode_gets_its_own_mapping_and_only_full_cone_forwards_unsolicited_packets() {
        let eim = rule_lines(NatMode::EndpointIndependent);
        let symmetric = rule_lines(NatMode::Symmetric);
        let cone = rule_lines(NatMode::FullCone);
        let has = |lines: &[String], rule: &str| lines.iter().any(|l| l == rule);
        assert!(has(&eim, "oifname $wan masquerade"));
        assert!(
            !eim.iter()
                .any(|l| l.contains("fully-random") || l.contains("dnat"))
        );
        assert!(has(&symmetric, "oifname $wan masquerade fully-random"));
        assert!(!has(&symmetric, "oifname $wan masquerade"));
        assert!(!symmetric.iter().any(|l| l.contains("dnat")));
        assert!(has(&cone, "oifname $wan masquerade"));
        assert!(has(
            &cone,
            "iifname $wan meta l4proto { tcp, udp } dnat to $lan_host"
        ));
        assert!(has(&cone, "iifname $wan ct status dnat accept"));
        let restricted = rule_lines(NatMode::AddressRestricted);
        assert!(has(
            &restricted,
            "oifname $wan update @contacted { ip daddr } masquerade"
        ));
        assert!(has(
            &restricted,
            "iifname $wan ip saddr @contacted meta l4proto { tcp, udp } dnat to $lan_host"
        ));
        assert!(!has(&restricted, "oifname $wan masquerade"));
        assert!(!eim.iter().any(|l| l.contains("@contacted")));
        let blocked = rule_lines(NatMode::UdpBlocked);
        assert!(has(
            &blocked,
            "iifname $lan oifname $wan meta l4proto udp drop"
        ));
        assert!(has(&blocked, "oifname $wan masquerade"));
        assert!(!eim.iter().any(|l| l.contains("udp drop")));
        let upnp = rule_lines(NatMode::Upnp);
        assert!(has(&upnp, "oifname $wan masquerade"));
        assert!(has(&upnp, "jump miniupnpd"));
        assert!(!eim.iter().any(|l| l.contains("miniupnpd")));
        for lines in [&eim, &symmetric, &cone, &restricted, &blocked, &upnp] {
            assert!(has(lines, "define wan = \"wan0\""));
            assert!(has(lines, "define lan_host = 192.168.1.2"));
            assert!(has(
                lines,
                "type filter hook input priority filter; policy drop;"
            ));
        }
    }
}
