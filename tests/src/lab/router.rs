//! The routers' nftables rule sets, one per [`NatMode`].
//!
//! Every mode shares one firewall: the router itself accepts only loopback, replies and its LAN;
//! forwarding accepts replies and LAN to WAN. Unsolicited packets are dropped, never rejected: a
//! reject leaves a conntrack entry behind, and the host's later outgoing packet then gets a
//! different public port, which makes hole punching fail depending on timing.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::NatMode;

/// The router's interface on the public segment.
pub(super) const WAN: &str = "wan0";
/// The router's interface on its LAN.
pub(super) const LAN: &str = "lan0";

/// The translation of a router in `mode`. Plain masquerade keeps the source port when it is
/// free, so every destination sees the same public port: endpoint-independent mapping.
/// `fully-random` picks a new port for each new conntrack entry, that is for each
/// destination: symmetric mapping.
fn masquerade(mode: NatMode) -> &'static str {
    match mode {
        NatMode::EndpointIndependent | NatMode::FullCone => "masquerade",
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

/// The rule set for a router in `mode` whose LAN holds `lan_host`, as `nft -f` input.
pub(super) fn ruleset(mode: NatMode, lan_host: Ipv4Addr) -> String {
    let masquerade = masquerade(mode);
    // Full cone forwards everything arriving on the WAN to the one LAN host.
    let (dnat, accept_dnat) = match mode {
        NatMode::FullCone => (
            format!("iifname \"{WAN}\" meta l4proto {{ tcp, udp }} dnat to {lan_host}"),
            format!("iifname \"{WAN}\" ct status dnat accept"),
        ),
        NatMode::EndpointIndependent | NatMode::Symmetric => (String::new(), String::new()),
    };
    let mut rules = String::new();
    // Writing to a String cannot fail.
    let _ = write!(
        rules,
        r#"table ip nat {{
    chain prerouting {{
        type nat hook prerouting priority dstnat; policy accept;
        {dnat}
    }}
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        oifname "{WAN}" {masquerade}
    }}
}}
table inet fw {{
    chain input {{
        type filter hook input priority filter; policy drop;
        iifname "lo" accept
        ct state established,related accept
        iifname "{LAN}" accept
    }}
    chain forward {{
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        iifname "{LAN}" oifname "{WAN}" accept
        {accept_dnat}
    }}
}}
"#
    );
    rules
}
