//! Wrappers around parts of libp2p that need one thing changed for peerfind: an upstream bug,
//! or upstream behaviour that a peer implementation we interoperate with cannot take.
//!
//! Each file says at its top what it works around, the upstream issue or behaviour, and the
//! libp2p version it was written against (the workspace's `libp2p = "0.57.1"`), and has a
//! test that holds the wrapped crate to that behaviour: when an upgrade fixes it, that test
//! fails and says the wrapper may go. Nothing here knows peerfind's state; `crate::swarm`
//! puts them in place of the originals.
//!
//! - `identify`: identify tells a relayed peer no observed address (js-libp2p rejects the
//!   `/p2p/<id>` libp2p tells).
//! - `relay_client`: the relay client hears nothing from a relay whose slot we gave back
//!   (libp2p-relay's client panics on a late answer).
//! - `quic_fin`: a QUIC answer's finish leaves after the answer (py-libp2p loses an answer
//!   that arrives with its finish).
//! - `quic_wake`: a QUIC answer polls its connection once more (libp2p-ping leaves the read of
//!   the next ping on a stream unpolled, and over QUIC nothing else wakes it).
//! - `stream_muxer`: the muxer both QUIC wrappers are, each writing only its stream.
//! - `gossipsub_gate`: gossipsub hears of a connection only once the peer shows it speaks
//!   gossipsub (gossipsub opens a stream to every peer).

pub mod gossipsub_gate;
pub mod identify;
pub mod quic_fin;
pub mod quic_wake;
pub mod relay_client;
pub mod stream_muxer;
