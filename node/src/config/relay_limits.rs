//! The limits of a bootnode's circuit relay v2 server, as flags.
//!
//! rust-libp2p's relay defaults fit one peer per IP address: besides 128 reservations in all,
//! each IP gets a bucket of 60 reservations (and 60 circuits) refilled at one a minute. Behind
//! a carrier-grade or office NAT hundreds of peers share one IP, so the 61st refuses with
//! RESOURCE_LIMIT_EXCEEDED and then one a minute gets through. A bootnode's defaults here let
//! one IP fill every slot ([`DEFAULT_PER_IP_BURST`] = [`DEFAULT_MAX_RESERVATIONS`]) and refill
//! one a second, far above the renewals (one per peer per 30-odd minutes) of that many peers;
//! the totals bound the memory and the per-peer limits (rust-libp2p's: 30 per 2 minutes) a
//! single misbehaving peer. What one subnet holds at once is capped below the total
//! (`crate::swarm::relay_per_subnet`).

use std::num::NonZeroU32;
use std::time::Duration;

use libp2p::relay;

/// Default `--relay-max-reservations`: reservations held at once, each a few hundred bytes
/// and one connection that exists anyway; enough for a bootnode's NAT'd peers.
pub const DEFAULT_MAX_RESERVATIONS: usize = 1024;

/// Default `--relay-max-circuits`: circuits relayed at once, each two streams and buffers.
pub const DEFAULT_MAX_CIRCUITS: usize = 256;

/// Default `--relay-max-circuits-per-peer`: a peer rarely talks to more than a few NAT'd
/// peers through one bootnode at once.
pub const DEFAULT_MAX_CIRCUITS_PER_PEER: usize = 16;

/// Default `--relay-per-ip-burst`: reservations, and separately circuits, one IP may start
/// back to back; as many as the bootnode holds, so peers sharing one IP are never refused
/// while there is room.
pub const DEFAULT_PER_IP_BURST: u32 = 1024;

/// Default `--relay-per-ip-refill`: one more per IP this often, once the burst is spent.
pub const DEFAULT_PER_IP_REFILL: Duration = Duration::from_secs(1);

/// Per-peer bucket (rust-libp2p's default): 30 reservations or circuits, one more every 2
/// minutes; a well-behaved peer renews its reservation well within that.
const PER_PEER_BURST: u32 = 30;
const PER_PEER_REFILL: Duration = Duration::from_secs(120);

/// How long one relayed circuit may last. Relay v2's default (2 minutes) is enough to
/// coordinate a hole punch but not to keep two peers behind hard NATs in touch, which is what
/// the relayed fallback is for; when a circuit ends, the peers dial a new one.
pub const MAX_CIRCUIT_DURATION: Duration = Duration::from_secs(60 * 60);

/// How many bytes one relayed circuit may carry (relay v2's default: 128 KiB). Enough for
/// records, pings and a light application for the hour a circuit lasts.
pub const MAX_CIRCUIT_BYTES: u64 = 64 * 1024 * 1024;

/// Bootnodes: limits of the circuit relay v2 server.
#[derive(Debug, Clone, clap::Args)]
pub struct RelayLimits {
    /// Bootnodes: relay reservations held at once (one per NAT'd peer).
    #[arg(long, env = "PEERFIND_RELAY_MAX_RESERVATIONS", default_value_t = DEFAULT_MAX_RESERVATIONS)]
    pub relay_max_reservations: usize,
    /// Bootnodes: relay reservations held at once for one subnet (an IPv4 /24 or IPv6 /64),
    /// so one machine or provider's block cannot take every slot. Default: a quarter of
    /// `--relay-max-reservations`, room for the many NAT'd peers one carrier-grade NAT puts
    /// behind one address.
    #[arg(long, env = "PEERFIND_RELAY_MAX_RESERVATIONS_PER_SUBNET", value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub relay_max_reservations_per_subnet: Option<usize>,
    /// Bootnodes: circuits relayed at once.
    #[arg(long, env = "PEERFIND_RELAY_MAX_CIRCUITS", default_value_t = DEFAULT_MAX_CIRCUITS)]
    pub relay_max_circuits: usize,
    /// Bootnodes: circuits relayed at once for one peer.
    #[arg(long, env = "PEERFIND_RELAY_MAX_CIRCUITS_PER_PEER", default_value_t = DEFAULT_MAX_CIRCUITS_PER_PEER)]
    pub relay_max_circuits_per_peer: usize,
    /// Bootnodes: reservations, and circuits, one IP address may open back to back. Many
    /// peers behind one NAT share its IP; keep this at least as large as the number of such
    /// peers.
    #[arg(long, env = "PEERFIND_RELAY_PER_IP_BURST", default_value_t = DEFAULT_PER_IP_BURST, value_parser = clap::value_parser!(u32).range(1..))]
    pub relay_per_ip_burst: u32,
    /// Bootnodes: once an IP spent its burst, it gets one more reservation (and circuit) this
    /// often, e.g. `1s`.
    #[arg(long, env = "PEERFIND_RELAY_PER_IP_REFILL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub relay_per_ip_refill: Duration,
}

impl Default for RelayLimits {
    fn default() -> Self {
        Self {
            relay_max_reservations: DEFAULT_MAX_RESERVATIONS,
            relay_max_reservations_per_subnet: None,
            relay_max_circuits: DEFAULT_MAX_CIRCUITS,
            relay_max_circuits_per_peer: DEFAULT_MAX_CIRCUITS_PER_PEER,
            relay_per_ip_burst: DEFAULT_PER_IP_BURST,
            relay_per_ip_refill: DEFAULT_PER_IP_REFILL,
        }
    }
}

impl RelayLimits {
    /// The relay server's configuration: rust-libp2p's rate limiters replaced by ours.
    pub fn relay_config(&self) -> relay::Config {
        let per_ip = NonZeroU32::new(self.relay_per_ip_burst).unwrap_or(NonZeroU32::MIN);
        let per_peer = NonZeroU32::new(PER_PEER_BURST).unwrap_or(NonZeroU32::MIN);
        relay::Config {
            max_reservations: self.relay_max_reservations,
            max_circuits: self.relay_max_circuits,
            max_circuits_per_peer: self.relay_max_circuits_per_peer,
            max_circuit_duration: MAX_CIRCUIT_DURATION,
            max_circuit_bytes: MAX_CIRCUIT_BYTES,
            reservation_rate_limiters: Vec::new(),
            circuit_src_rate_limiters: Vec::new(),
            ..Default::default()
        }
        .reservation_rate_per_peer(per_peer, PER_PEER_REFILL)
        .circuit_src_per_peer(per_peer, PER_PEER_REFILL)
        .reservation_rate_per_ip(per_ip, self.relay_per_ip_refill)
        .circuit_src_per_ip(per_ip, self.relay_per_ip_refill)
    }

    /// Reservations one subnet may hold at once (`crate::swarm::relay_per_subnet`).
    pub fn max_reservations_per_subnet(&self) -> usize {
        self.relay_max_reservations_per_subnet
            .unwrap_or(self.relay_max_reservations / 4)
            .max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_ip_may_fill_every_reservation_slot_by_default() {
        let limits = RelayLimits::default();
        assert!(limits.relay_per_ip_burst as usize >= limits.relay_max_reservations);
        let config = limits.relay_config();
        assert_eq!(config.max_reservations, DEFAULT_MAX_RESERVATIONS);
        // Ours replace rust-libp2p's two of each kind: one per peer, one per IP.
        assert_eq!(config.reservation_rate_limiters.len(), 2);
        assert_eq!(config.circuit_src_rate_limiters.len(), 2);
        assert_eq!(
            limits.max_reservations_per_subnet(),
            DEFAULT_MAX_RESERVATIONS / 4
        );
    }
}
