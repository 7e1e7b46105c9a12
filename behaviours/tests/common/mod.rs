//! What the behaviour tests share: identities and swarms over libp2p's in-memory transport.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use libp2p::core::transport::{MemoryTransport, Transport as _, upgrade::Version};
use libp2p::identity::{Keypair, secp256k1};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{Multiaddr, Swarm, plaintext, yamux};
use peerfind_behaviours::enr_ext::{Enr, SigningKey};

/// One secp256k1 key as a node has it: the libp2p identity and the record's signer.
pub(crate) fn identity() -> (Keypair, SigningKey) {
    let secret = secp256k1::SecretKey::generate();
    let signing = SigningKey::from_slice(&secret.to_bytes()).unwrap();
    (Keypair::from(secp256k1::Keypair::from(secret)), signing)
}

/// A swarm of `behaviour` over the in-memory transport (plaintext, yamux); connections stay
/// open for a minute without traffic, longer than any test.
pub(crate) fn swarm<B: NetworkBehaviour>(key: Keypair, behaviour: B) -> Swarm<B> {
    libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|k| {
            MemoryTransport::default()
                .upgrade(Version::V1)
                .authenticate(plaintext::Config::new(k))
                .multiplex(yamux::Config::default())
        })
        .unwrap()
        .with_behaviour(|_| behaviour)
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

#[allow(dead_code)] // not every test binary uses it
/// A record of `key` with `seq` and no address, as a node's first hello: the in-memory
/// transport shows no IP to prove an address by (`gossip` admission rule 3).
pub(crate) fn record(key: &SigningKey, seq: u64) -> Enr {
    Enr::builder().seq(seq).build(key).unwrap()
}

/// A record of `key` with `seq`, at a TCP address on the documentation network.
#[allow(dead_code)] // not every test binary uses it
pub(crate) fn record_at(key: &SigningKey, seq: u64) -> Enr {
    Enr::builder()
        .seq(seq)
        .ip4([198, 51, 100, 7].into())
        .tcp4(9000)
        .build(key)
        .unwrap()
}

/// Makes `swarm` listen on a fresh in-memory address, and returns it.
pub(crate) fn listen<B: NetworkBehaviour>(swarm: &mut Swarm<B>) -> Multiaddr {
    let addr: Multiaddr = format!("/memory/{}", rand::random::<u64>())
        .parse()
        .unwrap();
    swarm.listen_on(addr.clone()).unwrap();
    addr
}
