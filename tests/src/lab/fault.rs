//! Faults a test puts into a running lab: a router that forwards nothing, a link that goes
//! down and up, a NAT that moves its host to another public port.

use super::{Host, Lab, LabError, PUBLIC_ROLE, netns, router};

impl Lab {
    /// Makes `router` drop every packet it would forward, both ways (`on`), or forward again.
    /// Its mappings (conntrack) stay as they were, as in a router whose uplink stalls.
    ///
    /// # Panics
    ///
    /// As [`Lab::netns`], when `router` is not part of this lab.
    pub fn blackhole(&self, router: Host, on: bool) -> Result<(), LabError> {
        let script = if on {
            router::blackhole()
        } else {
            format!("delete table inet {}\n", router::BLACKHOLE_TABLE)
        };
        let mut nft = self.command(router, "nft");
        nft.args(["-f", "-"]);
        netns::run(nft, &script)
    }

    /// Sets `host`'s uplink down or up at its far end (the bridge port for a host on the
    /// public segment or a router's WAN, the router's LAN for a host behind it), as a cable
    /// pulled and plugged back. Returns once the link forwards again when `up`.
    ///
    /// # Panics
    ///
    /// As [`Lab::netns`].
    pub fn set_link(&self, host: Host, up: bool) -> Result<(), LabError> {
        let (ns, dev) = self.far_end(host);
        let state = if up { "up" } else { "down" };
        netns::run(netns::ip(Some(&ns)), &format!("link set {dev} {state}\n"))?;
        if up {
            netns::wait_until_links_up(&ns)?;
            netns::wait_until_links_up(self.netns(host))?;
        }
        Ok(())
    }

    /// Changes the public port `router` maps its host to: with `Some(port)`, every new mapping
    /// uses that port; with `None`, the router maps as its mode says again. The router forgets
    /// its mappings (conntrack) at once, as a NAT that restarts or rebinds does, so the host's
    /// next packet, on any connection, leaves with the new mapping.
    ///
    /// # Panics
    ///
    /// As [`Lab::netns`].
    pub fn remap(&self, router: Host, port: Option<u16>) -> Result<(), LabError> {
        let Some(mode) = self.topology.mode(router) else {
            return Err(LabError::io(
                format!("remapping {router}"),
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "no NAT here"),
            ));
        };
        let mut nft = self.command(router, "nft");
        nft.args(["-f", "-"]);
        netns::run(nft, &router::remap(&self.router_setup(router, mode), port))?;
        let mut conntrack = self.command(router, "conntrack");
        conntrack.arg("-F");
        netns::run(conntrack, "")
    }

    /// The namespace of the public segment's bridge.
    pub(super) fn public_netns(&self) -> String {
        format!("{}-{PUBLIC_ROLE}", self.prefix)
    }
}
