//! Wiring a new lab: its links (veth pairs, or TAP pairs for impaired links), the public
//! segment's bridge, every interface's address and route, and then the routers' rule sets and
//! forwarding.
//!
//! Separate from `mod.rs`, which makes and removes labs and answers questions about them: this
//! is the one-time set-up [`Lab::up`] runs once the namespaces exist, and the one place that
//! knows how the diagram in the lab's module doc becomes interfaces.

use std::net::Ipv4Addr;

use super::{Host, Lab, LabError, PREFIX_LEN, impair, netns, router};

/// The public segment's bridge, inside the public namespace.
const BRIDGE: &str = "br0";

/// A host's one interface (a router has [`router::WAN`] and [`router::LAN`] instead).
const ETH: &str = "eth0";

/// The first interface index the lab gives a veth end: above the few a namespace numbers
/// itself (loopback is 1, the bridge and TAP devices take the next ones).
const FIRST_INDEX: u32 = 100;

impl Lab {
    /// Makes the links (veth pairs, or TAP pairs for impaired links) and the bridge, and gives
    /// every interface its address and route.
    pub(super) fn wire(&mut self) -> Result<(), LabError> {
        let public = self.namespaces[0].clone();
        // Each veth end is made directly in its namespace, so names never meet in the
        // namespace the lab runs from, and every host can call its interface eth0.
        let mut links = String::new();
        let mut bridge = format!("link set lo up\nlink add name {BRIDGE} type bridge\n");
        let mut scripts = Vec::new();
        let mut impaired = Vec::new();
        // Both ends of a veth pair get their own interface index, unique in the lab. Fresh
        // namespaces would otherwise number both ends 2, and the kernel takes a veth whose
        // index equals its peer's for an unstacked device: its carrier change then waits for
        // the link watch, up to a second, and a bridge port stays disabled until then.
        let mut index = FIRST_INDEX;
        for host in self.topology.hosts() {
            let ns = self.netns(host).to_owned();
            let mut script = String::from("link set lo up\n");
            let up = |script: &mut String, dev: &str, addr: Ipv4Addr| {
                script.push_str(&format!(
                    "addr add {addr}/{PREFIX_LEN} dev {dev}\nlink set {dev} up\n"
                ));
            };
            // The host's uplink: its interface, and the namespace and interface at the other end.
            let (dev, peer_ns, peer_dev) = match (host.router(), host.lan_host()) {
                // A router: its WAN on the public segment; its LAN comes with its host's uplink.
                (None, Some(_)) => {
                    up(&mut script, router::WAN, host.public_address());
                    up(&mut script, router::LAN, host.lan_gateway());
                    (router::WAN, public.clone(), host.name())
                }
                // Alice or Bob behind a router: the uplink is the whole LAN.
                (Some(router), None) if self.topology.nat(host).is_some() => {
                    up(&mut script, ETH, host.lan_address());
                    script.push_str(&format!("route add default via {}\n", host.lan_gateway()));
                    (ETH, self.netns(router).to_owned(), router::LAN)
                }
                _ => {
                    up(&mut script, ETH, host.public_address());
                    (ETH, public.clone(), host.name())
                }
            };
            if peer_ns == public {
                bridge.push_str(&format!(
                    "link set {peer_dev} master {BRIDGE}\nlink set {peer_dev} up\n"
                ));
            }
            match self.topology.uplink(host) {
                Some(impairment) => impaired.push((ns.clone(), dev, peer_ns, peer_dev, impairment)),
                None => {
                    links.push_str(&format!(
                        "link add name {peer_dev} index {index} netns {peer_ns} type veth \
                         peer name {dev} index {} netns {ns}\n",
                        index + 1
                    ));
                    index += 2;
                }
            }
            scripts.push((ns, script));
        }
        bridge.push_str(&format!("link set {BRIDGE} up\n"));
        if !links.is_empty() {
            netns::run(netns::ip(None), &links)?;
        }
        for (ns, dev, peer_ns, peer_dev, impairment) in impaired {
            let host_end = impair::End {
                netns: &ns,
                device: dev,
            };
            let peer_end = impair::End {
                netns: &peer_ns,
                device: peer_dev,
            };
            self.wires
                .push(impair::Wire::start(host_end, peer_end, impairment)?);
        }
        // The namespaces are independent now: configure them side by side. The bridge comes
        // last, so that its ports find their peers up and can forward at once.
        let started: Vec<_> = scripts
            .iter()
            .map(|(ns, script)| netns::start(netns::ip(Some(ns)), script))
            .collect();
        let mut first_error = None;
        for started in started {
            if let Err(error) = started.and_then(netns::finish) {
                first_error.get_or_insert(error);
            }
        }
        if let Some(error) = first_error {
            return Err(error);
        }
        netns::run(netns::ip(Some(&public)), &bridge)?;
        // A link's state reaches the bridge and the qdisc through the kernel's link watch, which
        // may lag by a second; a frame sent before is dropped (the first ARP request,
        // typically). The indexes above make that rare; make sure every link is up and every
        // bridge port forwards.
        for ns in &self.namespaces {
            netns::wait_until_links_up(ns)?;
        }
        Ok(())
    }

    /// Loads the routers' rule sets and turns forwarding on in them.
    pub(super) fn start_routers(&self) -> Result<(), LabError> {
        for router in [Host::NatA, Host::NatB] {
            let (Some(ns), Some(lan_host)) = (self.namespace(router), router.lan_host()) else {
                continue;
            };
            let Some(mode) = self.topology.nat(router) else {
                continue;
            };
            let mut nft = self.command(router, "nft");
            nft.args(["-f", "-"]);
            netns::run(nft, &router::ruleset(mode, lan_host.lan_address()))?;
            // Only now, so that no packet is ever forwarded past an empty rule set. The thread
            // in the namespace sees that namespace's /proc/sys/net.
            netns::enter(ns, || std::fs::write("/proc/sys/net/ipv4/ip_forward", "1"))?
                .map_err(|source| LabError::io(format!("turning on forwarding in {ns}"), source))?;
        }
        Ok(())
    }
}
