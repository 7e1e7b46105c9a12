//! The ENR exchange's settings and their defaults.
//!
//! Separate from `behaviour.rs` so that the settings a node chooses read on their own, apart
//! from the rules that use them.

use std::time::Duration;

use super::admission::Trust;
use super::protocol::MAX_RECORDS_PER_MESSAGE;
use super::rate::Rates;
use crate::table;

/// Default [`Config::fanout`]: every connected peer when a bootnode has few, a random 16 when
/// it has many; with a few hops that reaches thousands of peers without a storm.
pub const DEFAULT_FANOUT: usize = 16;

/// Default [`Config::find_max`]: one full message of records.
pub const DEFAULT_FIND_MAX: u32 = MAX_RECORDS_PER_MESSAGE as u32;

/// Default [`Config::announce_interval`]: well inside the table TTL (30 min), so a live peer's
/// record never expires at the peers it is connected to.
pub const DEFAULT_ANNOUNCE_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// Settings of the ENR exchange.
#[derive(Debug, Clone)]
pub struct Config {
    /// Pass every new or updated record on to connected peers ("Meet Alice"). Bootnodes do;
    /// ordinary peers only answer requests. Default: off.
    pub pass_on: bool,
    /// Whose passed-on records are taken (admission rule 4): a node's configured bootnodes.
    /// Default: [`Trust::Nobody`], only records announced by their owners.
    pub trust: Trust,
    /// Peers each gossiped record goes to. Default: [`DEFAULT_FANOUT`].
    pub fanout: usize,
    /// Records asked of each newly connected peer. Default: [`DEFAULT_FIND_MAX`].
    pub find_max: u32,
    /// How often the own record is announced again. Default: [`DEFAULT_ANNOUNCE_INTERVAL`].
    pub announce_interval: Duration,
    /// Limits of the record table.
    pub table: table::Config,
    /// Requests a peer, and an address block, may send per minute (`rate.rs`). Default:
    /// [`Rates::default`].
    pub rates: Rates,
    /// Greet a peer (announce, find) only once its identify lists [`PROTOCOL`], reported
    /// through [`Behaviour::on_identified`], and gossip only to such peers; off: greet every
    /// peer on connect. Default: off (a swarm without identify). A node turns it on: peers
    /// that are not peerfind never get streams they would refuse, and a peer's first streams
    /// are identify and ping, as from any libp2p node (py-libp2p's QUIC fails when four
    /// streams, two of them refused, arrive the instant the connection is up).
    ///
    /// [`PROTOCOL`]: super::protocol::PROTOCOL
    /// [`Behaviour::on_identified`]: super::Behaviour::on_identified
    pub await_identify: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            pass_on: false,
            trust: Trust::default(),
            fanout: DEFAULT_FANOUT,
            find_max: DEFAULT_FIND_MAX,
            announce_interval: DEFAULT_ANNOUNCE_INTERVAL,
            table: table::Config::default(),
            rates: Rates::default(),
            await_identify: false,
        }
    }
}
