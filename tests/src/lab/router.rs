//! The routers' nftables rule sets, one per [`NatMode`].
//!
//! The rules live in `container/router.nft`, shared with the router containers of
//! `compose.yaml`, so the lab and the containers run the same NAT. Every mode shares one
//! firewall: the router itself accepts only loopback, replies and its LAN (not for its public
//! address); forwarding accepts replies and LAN to WAN, and LAN to LAN when it hairpins.
//! Unsolicited packets are dropped, never rejected (the file says why).

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::NatMode;

/// The router's interface on the public segment.
pub(super) const WAN: &str = "wan0";
/// The router's interface on its LAN: a bridge when the LAN holds two hosts, whose ports are
/// named after them.
pub(super) const LAN: &str = "lan0";

/// The shared rule file. Lines ending in `#mode: A B` belong to those modes only, lines
/// ending in `#hairpin` to routers that hairpin.
const RULES: &str = include_str!("../../../container/router.nft");

/// The tag that marks a line as belonging to some modes only (an nft comment).
const MODE_TAG: &str = "#mode:";

/// The tag that marks a line as belonging to routers that hairpin only (an nft comment).
const HAIRPIN_TAG: &str = "#hairpin";

/// The name `container/router.nft` (and the router image's `NAT_MODE`) gives `mode`.
pub(super) fn mode_name(mode: NatMode) -> &'static str {
    match mode {
        NatMode::EndpointIndependent => "eim",
        NatMode::Symmetric => "symmetric",
        NatMode::SymmetricSequential => "symmetric-sequential",
        NatMode::SymmetricPreserving => "symmetric-preserving",
        NatMode::FullCone => "full-cone",
        NatMode::AddressRestricted => "address-restricted",
        NatMode::UdpBlocked => "udp-blocked",
        NatMode::Upnp => "upnp",
    }
}

/// What one router's rule set is made for: the definitions `container/router.nft` expects,
/// and which of its lines apply.
#[derive(Clone, Copy, Debug)]
pub(super) struct Setup {
    /// How the router maps and filters.
    pub(super) mode: NatMode,
    /// Its address on the WAN: its public address, or a carrier address for a home router.
    pub(super) wan_addr: Ipv4Addr,
    /// The LAN host unsolicited packets go to in the modes that forward them: the first one.
    pub(super) lan_host: Ipv4Addr,
    /// Whether it hairpins.
    pub(super) hairpin: bool,
}

/// `nft -f` input that replaces the router's translation: `setup`'s, or with `port`, every
/// mapping on that one public port (a NAT that rebinds its host to another port).
pub(super) fn remap(setup: &Setup, port: Option<u16>) -> String {
    let mut script = defines(setup);
    script.push_str("flush chain ip nat postrouting\n");
    let rules = match port {
        // A port applies to TCP and UDP only; anything else keeps plain masquerade.
        Some(port) => vec![
            format!("oifname \"{WAN}\" meta l4proto {{ tcp, udp }} masquerade to :{port}"),
            format!("oifname \"{WAN}\" masquerade"),
        ],
        None => chain_rules(&ruleset(setup), "postrouting"),
    };
    for rule in rules {
        let _ = writeln!(script, "add rule ip nat postrouting {rule}");
    }
    script
}

/// The rules of the chain called `chain` in `rules` (an `nft -f` text as [`ruleset`] makes),
/// without the chain's hook line and comments.
fn chain_rules(rules: &str, chain: &str) -> Vec<String> {
    let opening = format!("chain {chain} {{");
    rules
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default().trim())
        .skip_while(|line| *line != opening)
        .skip(1)
        .take_while(|line| *line != "}")
        .filter(|line| !line.is_empty() && !line.starts_with("type "))
        .map(str::to_owned)
        .collect()
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

/// The definitions `container/router.nft` expects, as `nft -f` input.
fn defines(setup: &Setup) -> String {
    // The router's interfaces have the same names in every lab router.
    format!(
        "define wan = \"{WAN}\"\ndefine wan_addr = {}\ndefine lan = \"{LAN}\"\ndefine lan_host = {}\n",
        setup.wan_addr, setup.lan_host
    )
}

/// The rule set for a router made for `setup`, as `nft -f` input: the definitions the file
/// expects, then its lines for the router's mode, and its hairpin lines when it hairpins.
pub(super) fn ruleset(setup: &Setup) -> String {
    let name = mode_name(setup.mode);
    let mut rules = defines(setup);
    for line in RULES.lines() {
        let keep = match line.split_once(MODE_TAG) {
            Some((_, modes)) => modes.split_whitespace().any(|m| m == name),
            None if line.trim_end().ends_with(HAIRPIN_TAG) => setup.hairpin,
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
    const WAN_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 101);

    fn setup(mode: NatMode, hairpin: bool) -> Setup {
        Setup {
            mode,
            wan_addr: WAN_ADDR,
            lan_host: HOST,
            hairpin,
        }
    }

    fn without_comments(rules: &str) -> Vec<String> {
        rules
            .lines()
            .map(|l| l.split('#').next().unwrap_or_default().trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect()
    }

    fn rule_lines(mode: NatMode) -> Vec<String> {
        without_comments(&ruleset(&setup(mode, false)))
    }

    fn has(lines: &[String], rule: &str) -> bool {
        lines.iter().any(|l| l == rule)
    }

    #[test]
    fn each_mode_gets_its_own_mapping_and_only_full_cone_forwards_unsolicited_packets() {
        let eim = rule_lines(NatMode::EndpointIndependent);
        let symmetric = rule_lines(NatMode::Symmetric);
        let cone = rule_lines(NatMode::FullCone);
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
        let sequential = rule_lines(NatMode::SymmetricSequential);
        assert!(sequential.iter().any(|l| l.contains("numgen inc")));
        let preserving = rule_lines(NatMode::SymmetricPreserving);
        assert!(preserving.iter().any(|l| l.contains("add @mapped")));
        for lines in [&sequential, &preserving] {
            // The fallback for other protocols comes after the mode's own translation.
            let rules = chain_rules(&lines.join("\n"), "postrouting");
            assert_eq!(
                rules.last().map(String::as_str),
                Some("oifname $wan masquerade")
            );
            assert!(!lines.iter().any(|l| l.contains("dnat")));
        }
        let upnp = rule_lines(NatMode::Upnp);
        assert!(has(&upnp, "oifname $wan masquerade"));
        assert!(has(&upnp, "jump miniupnpd"));
        assert!(!eim.iter().any(|l| l.contains("miniupnpd")));
        for lines in [&eim, &symmetric, &cone, &restricted, &blocked, &upnp] {
            assert!(
                !lines
                    .iter()
                    .any(|l| l.contains("numgen") || l.contains("@mapped"))
            );
        }
        for lines in [
            &eim,
            &symmetric,
            &cone,
            &restricted,
            &blocked,
            &sequential,
            &preserving,
            &upnp,
        ] {
            assert!(has(lines, "define wan = \"wan0\""));
            assert!(has(lines, "define wan_addr = 198.51.100.101"));
            assert!(has(lines, "define lan_host = 192.168.1.2"));
            assert!(has(
                lines,
                "type filter hook input priority filter; policy drop;"
            ));
            assert!(has(lines, "iifname $lan ip daddr $wan_addr drop"));
            assert!(!lines.iter().any(|l| l.contains("hairpin")));
        }
    }

    #[test]
    fn a_hairpinning_router_gets_the_hairpin_lines_in_every_mode() {
        for mode in [NatMode::EndpointIndependent, NatMode::Symmetric] {
            let lines = without_comments(&ruleset(&setup(mode, true)));
            assert!(has(
                &lines,
                "iifname $lan ip daddr $wan_addr meta l4proto { tcp, udp } dnat ip addr . port to meta l4proto . th dport map @hairpin"
            ));
            assert!(lines.iter().any(|l| l.contains(
                "snat to $wan_addr : ip saddr . meta l4proto . th sport map @hairpin_from"
            )));
            assert!(has(
                &lines,
                "iifname $lan oifname $lan ct status dnat snat to $wan_addr"
            ));
            assert!(has(&lines, "oifname $lan icmp type redirect drop"));
            // Every chain and table the hairpin lines open is closed again.
            let opened = lines.iter().filter(|l| l.ends_with('{')).count();
            let closed = lines.iter().filter(|l| l.as_str() == "}").count();
            assert_eq!(opened, closed);
        }
    }

    #[test]
    fn remapping_back_restores_the_mode_s_translation_only() {
        let script = remap(&setup(NatMode::SymmetricPreserving, true), None);
        let adds: Vec<&str> = script
            .lines()
            .filter(|l| l.starts_with("add rule"))
            .collect();
        assert_eq!(adds.len(), 3, "{script}");
        assert!(adds.iter().all(|l| !l.contains("snat to $wan_addr")));
        assert!(script.contains("define wan_addr = 198.51.100.101"));
        let pinned = remap(&setup(NatMode::EndpointIndependent, false), Some(4242));
        assert!(pinned.contains("masquerade to :4242"));
    }
}
