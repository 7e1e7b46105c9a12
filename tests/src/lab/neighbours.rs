//! Every neighbour on a lab link is known from the start: each interface gets a permanent
//! neighbour entry for every other address on its segment.
//!
//! On a real path a host resolved its gateway long before a peer connects, and a remote peer
//! needs no resolution at all. In the lab the first packet to each neighbour would wait for
//! ARP, and an impaired link delays ARP's round trip like any other: a first TCP connect from
//! a host with a 20 ms uplink to a bootnode with another took 162 ms, the next ones 81 ms. So
//! without this the lab charged every first contact one round trip more than a real network
//! does, and timings measured in it (a node's start to its first connection, a punch) with it.
//!
//! The entries are read off the live namespaces (`ip -j addr`), so every shape of lab gets
//! them without knowing its links.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::Command;

use serde_json::Value;

use super::{LabError, netns};

/// One IPv4 address of one interface, and the interface's hardware address.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Address {
    namespace: String,
    dev: String,
    ip: Ipv4Addr,
    prefix_len: u8,
    mac: String,
}

impl Address {
    /// Whether `other` is on this address's subnet.
    fn shares_subnet_with(&self, other: &Address) -> bool {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.prefix_len))
            .unwrap_or(0);
        u32::from(self.ip) & mask == u32::from(other.ip) & mask
    }
}

/// Gives every interface of `namespaces` a permanent neighbour entry for each address of
/// another namespace on its subnet.
pub(super) fn pin(namespaces: &[String]) -> Result<(), LabError> {
    let mut addresses = Vec::new();
    for namespace in namespaces {
        let output = Command::new("ip")
            .args(["-n", namespace, "-j", "addr", "show"])
            .output()
            .map_err(|source| {
                LabError::io(format!("listing the addresses of {namespace}"), source)
            })?;
        let listed: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        addresses.extend(parse(namespace, &listed));
    }
    let mut scripts: BTreeMap<&str, String> = BTreeMap::new();
    for own in &addresses {
        for other in &addresses {
            if other.namespace != own.namespace && own.shares_subnet_with(other) {
                scripts
                    .entry(&own.namespace)
                    .or_default()
                    .push_str(&format!(
                        "neigh replace {} lladdr {} dev {} nud permanent\n",
                        other.ip, other.mac, own.dev
                    ));
            }
        }
    }
    for (namespace, script) in scripts {
        netns::run(netns::ip(Some(namespace)), &script)?;
    }
    Ok(())
}

/// The IPv4 addresses of `ip -j addr show`'s output, on interfaces with a hardware address.
fn parse(namespace: &str, listed: &Value) -> Vec<Address> {
    let Some(links) = listed.as_array() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for link in links {
        let (Some(dev), Some(mac)) = (link["ifname"].as_str(), link["address"].as_str()) else {
            continue;
        };
        if mac.is_empty() || mac == "00:00:00:00:00:00" {
            continue;
        }
        for info in link["addr_info"].as_array().into_iter().flatten() {
            let ip = info["local"].as_str().and_then(|ip| ip.parse().ok());
            let prefix_len = info["prefixlen"]
                .as_u64()
                .and_then(|p| u8::try_from(p).ok());
            if let (Some("inet"), Some(ip), Some(prefix_len)) =
                (info["family"].as_str(), ip, prefix_len)
                && prefix_len <= 32
            {
                out.push(Address {
                    namespace: namespace.to_owned(),
                    dev: dev.to_owned(),
                    ip,
                    prefix_len,
                    mac: mac.to_owned(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_addresses_of_interfaces_with_a_hardware_address_are_read() {
        let listed: Value = serde_json::from_str(
            r#"[
              {"ifname":"lo","address":"00:00:00:00:00:00","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8}]},
              {"ifname":"eth0","address":"8a:a2:a1:86:8e:8f","addr_info":[
                {"family":"inet","local":"192.168.2.2","prefixlen":24},
                {"family":"inet6","local":"fe80::1","prefixlen":64}]}
            ]"#,
        )
        .unwrap();
        let read = parse("lab-bob", &listed);
        assert_eq!(
            read,
            [Address {
                namespace: "lab-bob".to_owned(),
                dev: "eth0".to_owned(),
                ip: Ipv4Addr::new(192, 168, 2, 2),
                prefix_len: 24,
                mac: "8a:a2:a1:86:8e:8f".to_owned(),
            }]
        );
        let gateway = Address {
            ip: Ipv4Addr::new(192, 168, 2, 1),
            ..read[0].clone()
        };
        let elsewhere = Address {
            ip: Ipv4Addr::new(192, 168, 1, 1),
            ..read[0].clone()
        };
        assert!(read[0].shares_subnet_with(&gateway));
        assert!(!read[0].shares_subnet_with(&elsewhere));
    }
}
