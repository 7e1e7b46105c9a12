//! Port mapping's wiring (`crate::reach::mapping` holds its rules): the IGD client's events,
//! AutoNAT's test of a mapped address, what a verified mapping changes (the record, NAT rule
//! 6), and the mappings' removal when the node stops.

use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use peerfind_behaviours::enr_ext;

use super::Node;
use crate::igd::{self, mapped};
use crate::reach::mapping::State;
use crate::status;

/// How long the node's shutdown waits for the gateway to delete every mapping: a round trip
/// or two on the LAN per mapping. A gateway that has not answered by then keeps a mapping
/// until its lease ends (`crate::igd::gateway::LEASE`).
const UNMAP_GRACE: Duration = Duration::from_secs(1);

impl Node {
    /// What the IGD client found: no gateway, an unroutable one, a mapping, or a lost one.
    pub(super) fn on_port_mapping(&mut self, event: igd::Event) {
        let (change, addr) = match event {
            igd::Event::NewExternalAddr {
                local_addr,
                external_addr,
            } => {
                tracing::info!(local = %local_addr, external = %external_addr, "the router maps a port to us; AutoNAT tests it");
                (
                    self.port_mapping.mapped(external_addr.clone()),
                    external_addr,
                )
            }
            igd::Event::ExpiredExternalAddr { external_addr, .. } => {
                tracing::info!(external = %external_addr, "port mapping lost: the router refused its renewal");
                let why = "the router refused its renewal".to_owned();
                let change = self.port_mapping.failed(&external_addr, why);
                (change, external_addr)
            }
            igd::Event::GatewayNotFound => {
                // Most hosts have no gateway, or one with UPnP off: normal operation.
                tracing::info!("no UPnP gateway answered: no port mapping");
                let change = self.port_mapping.no_gateway();
                return self.on_mapping_change(change, None);
            }
            igd::Event::NonRoutableGateway => {
                tracing::info!("the UPnP gateway is behind another NAT: no port mapping");
                let change = self.port_mapping.not_routable();
                return self.on_mapping_change(change, None);
            }
        };
        self.on_mapping_change(change, Some(addr));
    }

    /// Reports a change of the port-mapping state: event, counter.
    fn on_mapping_change(&mut self, change: Option<State>, addr: Option<Multiaddr>) {
        let Some(state) = change else { return };
        *self
            .counters
            .port_mapping
            .entry(state.to_string())
            .or_default() += 1;
        let detail = self.port_mapping.state().1.to_owned();
        self.hub.publish(status::Event::PortMapping {
            state,
            addr,
            detail,
        });
    }

    /// AutoNAT's test of `tested` by `server` ended. When `tested` stands for a mapped address
    /// (`crate::igd`), this is that mapping's test (mapping rules 4 and 5, NAT rule
    /// 6) and true is returned: NAT rules 2 and 3 are not asked.
    pub(super) fn on_mapping_tested(
        &mut self,
        tested: &Multiaddr,
        server: PeerId,
        reachable: bool,
    ) -> bool {
        let Some(external) = mapped(tested, *self.swarm.local_peer_id()) else {
            return false;
        };
        if !self.port_mapping.is_mapped(&external) {
            // Lost since it was proposed: the test says nothing about a mapping we hold.
            return true;
        }
        if !reachable {
            tracing::info!(%external, %server, "port mapping not reached by a dial-back");
            let why = format!("AutoNAT server {server} could not reach us there");
            let change = self.port_mapping.failed(&external, why);
            self.on_mapping_change(change, Some(external));
            return true;
        }
        tracing::info!(%external, %server, "port mapping verified: a dial-back reached us there");
        // AutoNAT confirmed the candidate; the swarm holds the address itself.
        self.swarm.remove_external_address(tested);
        self.swarm.add_external_address(external.clone());
        let change = self.port_mapping.verified(&external);
        self.on_mapping_change(change, Some(external.clone()));
        let now = tokio::time::Instant::now();
        let change = self.nat.mapping_verified(external.clone(), server, now);
        self.on_nat_change(change);
        // `--external-addr` is the operator's word: nothing replaces it in the record.
        if let Some((ip, port, transport)) = enr_ext::socket_of(&external)
            && self.config.external_addr.is_empty()
        {
            self.change_record("port mapping verified", |c| {
                c.set_socket(ip, port, transport);
            });
        }
        true
    }

    /// The port-mapping state for the API.
    pub(super) fn port_mapping_status(&self) -> status::PortMappingState {
        let (state, detail) = self.port_mapping.state();
        let (mapped, verified) = self.port_mapping.addrs();
        status::PortMappingState {
            state,
            detail: detail.to_owned(),
            mapped,
            verified,
        }
    }

    /// On shutdown: asks the IGD client to delete every mapping and waits for it at most
    /// [`UNMAP_GRACE`]. Nothing to do, and no wait, when the router granted none.
    pub(super) async fn unmap_ports(&mut self) {
        let Some(client) = self.swarm.behaviour().port_mapping.as_ref() else {
            return;
        };
        if !self.port_mapping.granted() {
            return;
        }
        let (mapped, _) = self.port_mapping.addrs();
        tracing::info!(?mapped, "removing port mappings");
        let done = client.unmap_all();
        if tokio::time::timeout(UNMAP_GRACE, done).await.is_err() {
            tracing::info!("the gateway did not remove every mapping in time: left to their lease");
        }
    }
}
