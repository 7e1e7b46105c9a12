//! Wiring a new lab: its links (veth pairs, or TAP pairs for impaired links), the public
//! segment's bridge, every interface's address and route, and then the routers' rule sets and
//! forwarding.
//!
//! Separate from `mod.rs`, which makes and removes labs and answers questions about them: this
//! is the one-time set-up [`Lab::up`] runs once the namespaces exist, and the one place that
//! knows how the diagram in the lab's module doc becomes interfaces.

use std::net::Ipv4Addr;

use super::{Host, Lab, LabError, NatMode, PREFIX_LEN, impair, netns, router};

/// The public segment's bridge, inside the public namespace.
const BRIDGE: &str = "br0";

/// A host's one interface (a router has [`router::WAN`] and [`router::LAN`] instead).
const ETH: &str = "eth0";

/// Whether bridged frames pass the IP firewall, per namespace; present when the kernel has
/// bridge netfilter.
const BRIDGE_NF_CALL_IPTABLES: &str = "/proc/sys/net/bridge/bridge-nf-call-iptables";

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
            let address = self.topology.address(host);
            // The host's uplink: its interface, a router's WAN. The LAN side of a router comes
            // with its hosts' uplinks: one host's is the router's LAN itself; several hosts'
            // are ports of a bridge that is the router's LAN.
            let dev = if self.topology.mode(host).is_some() {
                up(&mut script, router::WAN, address);
                let lan_hosts = self.topology.lan_hosts(host);
                if lan_hosts.len() > 1 {
                    script.push_str(&format!("link add name {} type bridge\n", router::LAN));
                    for lan_host in lan_hosts {
                        script.push_str(&format!(
                            "link set {0} master {1}\nlink set {0} up\n",
                            lan_host.name(),
                            router::LAN
                        ));
                    }
                }
                up(&mut script, router::LAN, self.topology.lan_gateway(host));
                router::WAN
            } else {
                up(&mut script, ETH, address);
                ETH
            };
            if let Some(upstream) = self.topology.upstream(host) {
                script.push_str(&format!(
                    "route add default via {}\n",
                    self.topology.lan_gateway(upstream)
                ));
            }
            let (peer_ns, peer_dev) = self.far_end(host);
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

    /// The far end of `host`'s uplink: its router's LAN (or, when that LAN holds several
    /// hosts, the router's bridge port named after the host), or the public bridge's port
    /// named after the host.
    pub(super) fn far_end(&self, host: Host) -> (String, &'static str) {
        match self.topology.upstream(host) {
            Some(router) if self.topology.lan_hosts(router).len() > 1 => {
                (self.netns(router).to_owned(), host.name())
            }
            Some(router) => (self.netns(router).to_owned(), router::LAN),
            None => (self.public_netns(), host.name()),
        }
    }

    /// What `router`, which works in `mode`, loads: its addresses, its first LAN host and
    /// whether it hairpins.
    pub(super) fn router_setup(&self, router: Host, mode: NatMode) -> router::Setup {
        let first = self.topology.lan_hosts(router).first().copied();
        router::Setup {
            mode,
            wan_addr: self.topology.address(router),
            lan_host: first.map_or(Ipv4Addr::UNSPECIFIED, |host| self.topology.address(host)),
            hairpin: self.topology.hairpin(),
        }
    }

    /// Loads the routers' rule sets and turns forwarding on in them.
    pub(super) fn start_routers(&self) -> Result<(), LabError> {
        for router in self.topology.hosts() {
            let Some(mode) = self.topology.mode(router) else {
                continue;
            };
            let ns = self.netns(router);
            let mut nft = self.command(router, "nft");
            nft.args(["-f", "-"]);
            netns::run(nft, &router::ruleset(&self.router_setup(router, mode)))?;
            // Only now, so that no packet is ever forwarded past an empty rule set. The thread
            // in the namespace sees that namespace's /proc/sys/net. A bridged LAN's frames
            // between its hosts must not pass the router's IP firewall, which the kernel's
            // bridge netfilter would do; where that exists, it is turned off.
            netns::enter(ns, || {
                let bridge_nf = std::path::Path::new(BRIDGE_NF_CALL_IPTABLES);
                if bridge_nf.exists() {
                    std::fs::write(bridge_nf, "0")?;
                }
                std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
            })?
            .map_err(|source| LabError::io(format!("turning on forwarding in {ns}"), source))?;
        }
        Ok(())
    }
}
