//! Ethereum Node Records as peerfind reads them: the keys peerfind adds to EIP-778, decoding of
//! records that arrive from the network or from a user, and the conversions between a record and
//! libp2p's identities and addresses.
//!
//! One secp256k1 key is both the ENR's "v4" identity and the libp2p identity, so a record names
//! its PeerId, and a PeerId (which inlines its public key) names its node id.
//!
//! Building, persisting and updating the node's *own* record lives in the `peerfind` crate; this
//! module is everything about reading records, shared by every behaviour.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use base64::Engine as _;
use enr::{EnrKeyUnambiguous, EnrPublicKey, NodeId};
use libp2p::{Multiaddr, PeerId, identity, multiaddr::Protocol};

/// The signing key of every record peerfind handles (EIP-778 "v4", secp256k1).
pub type SigningKey = enr::k256::ecdsa::SigningKey;

/// An Ethereum Node Record signed with the "v4" scheme.
pub type Enr = enr::Enr<SigningKey>;

/// EIP-778 caps a record at 300 bytes; peerfind never accepts or produces a larger one.
pub const MAX_RECORD_SIZE: usize = 300;

/// UDP port of the QUIC v1 listener on `ip` (an RLP integer, like `udp`). Not an EIP-778 key,
/// but the one Ethereum clients use for QUIC.
pub const QUIC_KEY: &str = "quic";

/// UDP port of the QUIC v1 listener on `ip6`.
pub const QUIC6_KEY: &str = "quic6";

/// Present while the node believes it sits behind a NAT: strangers cannot dial it at its
/// advertised address and should ask a bootnode for an introduction instead.
/// Its value is [`NAT_VALUE`]; readers treat the key's presence as the flag.
pub const NAT_KEY: &str = "nat";

/// The value of [`NAT_KEY`]: the RLP integer 1 (the single byte `0x01`). Other values are
/// reserved for future NAT kinds.
pub const NAT_VALUE: u8 = 1;

/// How the node's NAT maps its TCP listen port ([`NatMapping`] as an RLP integer), present
/// only beside [`NAT_KEY`] and only once two bootnodes saw the port: strangers learn up
/// front whether a punch towards the record's address can work.
pub const TCP_MAPPING_KEY: &str = "nat-tcp";

/// The same for the QUIC listen port (UDP).
pub const QUIC_MAPPING_KEY: &str = "nat-quic";

/// How a NAT maps a host's port, as bootnodes in different places see it. It decides what
/// can reach the host: with one mapping for every destination, a peer that learns it (the
/// record's address) finds the NAT open once the host sent towards that peer (a hole punch);
/// with one per destination, the address a bootnode saw is no use to anyone else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NatMapping {
    /// Every bootnode sees the same ip:port (endpoint-independent mapping, RFC 4787).
    EndpointIndependent,
    /// Bootnodes see different ports (a symmetric NAT: address- or address-and-port-dependent
    /// mapping).
    VariesByDestination,
}

impl NatMapping {
    /// Its value in the record.
    pub fn to_value(self) -> u8 {
        match self {
            NatMapping::EndpointIndependent => 1,
            NatMapping::VariesByDestination => 2,
        }
    }

    /// The mapping a record's value names; other values are reserved and read as unknown.
    pub fn from_value(value: u8) -> Option<Self> {
        match value {
            1 => Some(NatMapping::EndpointIndependent),
            2 => Some(NatMapping::VariesByDestination),
            _ => None,
        }
    }

    /// The record key that carries the mapping of `transport`'s port.
    pub fn key(transport: Transport) -> &'static str {
        match transport {
            Transport::Tcp => TCP_MAPPING_KEY,
            Transport::Quic => QUIC_MAPPING_KEY,
        }
    }
}

impl std::fmt::Display for NatMapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NatMapping::EndpointIndependent => "endpoint-independent",
            NatMapping::VariesByDestination => "varies-by-destination",
        })
    }
}

/// Why a record was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    /// The text does not start with `enr:`.
    #[error("an ENR text starts with \"enr:\"")]
    MissingPrefix,
    /// The text after `enr:` is not URL-safe base64 without padding.
    #[error("the text after \"enr:\" is not URL-safe base64 without padding: {0}")]
    Base64(#[from] base64::DecodeError),
    /// Larger than EIP-778 allows.
    #[error("the record is {len} bytes, EIP-778 allows at most {MAX_RECORD_SIZE}")]
    TooLarge {
        /// Size of the offending input.
        len: usize,
    },
    /// The signature does not match the record's content and public key.
    #[error("the signature does not match the record's content and public key")]
    InvalidSignature,
    /// The record decoded but bytes remain after it.
    #[error("{extra} unexpected bytes after the record")]
    TrailingBytes {
        /// How many bytes follow the record.
        extra: usize,
    },
    /// The record's public key is not a valid libp2p secp256k1 key.
    #[error("the record's public key is not a valid secp256k1 key")]
    InvalidKey,
    /// Not a valid RLP-encoded v4 record.
    #[error("not a valid v4 record: {0}")]
    Malformed(alloy_rlp::Error),
}

/// Decodes a record received as raw RLP bytes (the wire form), verifying its size, signature
/// and that nothing follows it.
pub fn decode_bytes(bytes: &[u8]) -> Result<Enr, RecordError> {
    if bytes.len() > MAX_RECORD_SIZE {
        return Err(RecordError::TooLarge { len: bytes.len() });
    }
    let mut rest = bytes;
    let enr = <Enr as alloy_rlp::Decodable>::decode(&mut rest).map_err(|e| match e {
        alloy_rlp::Error::Custom("Invalid Signature") => RecordError::InvalidSignature,
        other => RecordError::Malformed(other),
    })?;
    if !rest.is_empty() {
        return Err(RecordError::TrailingBytes { extra: rest.len() });
    }
    Ok(enr)
}

/// Decodes a record's text form, `enr:` followed by URL-safe base64 of the RLP bytes.
pub fn decode_text(text: &str) -> Result<Enr, RecordError> {
    let body = text
        .trim()
        .strip_prefix("enr:")
        .ok_or(RecordError::MissingPrefix)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(body)?;
    decode_bytes(&bytes)
}

/// The record's RLP bytes, its wire form.
pub fn encode_bytes(enr: &Enr) -> Vec<u8> {
    alloy_rlp::encode(enr)
}

/// The libp2p PeerId of the key that signed `enr`. Fails only if libp2p refuses a key the ENR
/// library accepted, which no valid record triggers; it is still an error, not a panic.
pub fn peer_id(enr: &Enr) -> Result<PeerId, RecordError> {
    let compressed = enr.public_key().encode();
    identity::secp256k1::PublicKey::try_from_bytes(compressed.as_ref())
        .map(|pk| PeerId::from_public_key(&identity::PublicKey::from(pk)))
        .map_err(|_| RecordError::InvalidKey)
}

/// The node id of a PeerId, when the PeerId inlines a secp256k1 key (every peerfind node's
/// does). Other key types (ed25519 peers of other libp2p meshes) have no node id.
pub fn node_id(peer_id: &PeerId) -> Option<NodeId> {
    let multihash = peer_id.as_ref();
    // Code 0x00 is the identity multihash: the digest is the protobuf-encoded public key.
    if multihash.code() != 0x00 {
        return None;
    }
    let public = identity::PublicKey::try_decode_protobuf(multihash.digest()).ok()?;
    let secp = public.try_into_secp256k1().ok()?;
    let verifying = SigningKey::decode_public(&secp.to_bytes()).ok()?;
    Some(NodeId::from(verifying))
}

/// Whether the record carries the `nat` flag.
pub fn is_natted(enr: &Enr) -> bool {
    enr.get_raw_rlp(NAT_KEY).is_some()
}

/// How the record's NAT maps its `transport` port, when it says (only a NAT'd record does).
pub fn nat_mapping(enr: &Enr, transport: Transport) -> Option<NatMapping> {
    if !is_natted(enr) {
        return None;
    }
    enr.get_decodable::<u8>(NatMapping::key(transport))
        .and_then(Result::ok)
        .and_then(NatMapping::from_value)
}

/// The QUIC port on the record's IPv4 address.
pub fn quic4(enr: &Enr) -> Option<u16> {
    enr.get_decodable::<u16>(QUIC_KEY).and_then(Result::ok)
}

/// The QUIC port on the record's IPv6 address.
pub fn quic6(enr: &Enr) -> Option<u16> {
    enr.get_decodable::<u16>(QUIC6_KEY).and_then(Result::ok)
}

/// Every libp2p address the record advertises (TCP and QUIC v1, IPv4 and IPv6), each ending
/// in `/p2p/<peer>` (the record's PeerId, see [`peer_id`]).
pub fn multiaddrs(enr: &Enr, peer: PeerId) -> Vec<Multiaddr> {
    let mut out = Vec::new();
    let mut push = |ip: IpAddr, port: Option<u16>, quic: bool| {
        let Some(port) = port else { return };
        let mut addr = Multiaddr::from(ip);
        if quic {
            addr.push(Protocol::Udp(port));
            addr.push(Protocol::QuicV1);
        } else {
            addr.push(Protocol::Tcp(port));
        }
        addr.push(Protocol::P2p(peer));
        out.push(addr);
    };
    if let Some(ip) = enr.ip4() {
        push(ip.into(), enr.tcp4(), false);
        push(ip.into(), quic4(enr), true);
    }
    if let Some(ip) = enr.ip6() {
        push(ip.into(), enr.tcp6(), false);
        push(ip.into(), quic6(enr), true);
    }
    out
}

/// An address's transport, as far as the record cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// TCP (`tcp` / `tcp6` keys).
    Tcp,
    /// QUIC v1 over UDP (`quic` / `quic6` keys).
    Quic,
}

impl Transport {
    /// Its lower-case name, as logs and the API write it.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Quic => "quic",
        }
    }
}

/// Splits a plain transport address (`/ip4|ip6/…/tcp/N` or `/ip4|ip6/…/udp/N/quic-v1`, with an
/// optional trailing `/p2p/…`) into what a record can hold. Anything else (relayed addresses,
/// DNS names, websockets) has no place in a record.
pub fn socket_of(addr: &Multiaddr) -> Option<(IpAddr, u16, Transport)> {
    let mut iter = addr.iter();
    let ip: IpAddr = match iter.next()? {
        Protocol::Ip4(ip) => ip.into(),
        Protocol::Ip6(ip) => ip.into(),
        _ => return None,
    };
    let (port, transport) = match (iter.next()?, iter.next()) {
        (Protocol::Tcp(port), None | Some(Protocol::P2p(_))) => (port, Transport::Tcp),
        (Protocol::Udp(port), Some(Protocol::QuicV1)) => match iter.next() {
            None | Some(Protocol::P2p(_)) => (port, Transport::Quic),
            _ => return None,
        },
        _ => return None,
    };
    match iter.next() {
        None => Some((ip, port, transport)),
        _ => None,
    }
}

/// Whether an address is one a stranger could never use: unspecified, or multicast.
pub fn is_unusable(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4 == &Ipv4Addr::UNSPECIFIED || v4.is_multicast() || v4.is_broadcast(),
        IpAddr::V6(v6) => v6 == &Ipv6Addr::UNSPECIFIED || v6.is_multicast(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        let secret = identity::secp256k1::SecretKey::generate();
        SigningKey::from_slice(&secret.to_bytes()).unwrap()
    }

    #[test]
    fn node_id_and_peer_id_convert_both_ways_through_one_key() {
        let secret = identity::secp256k1::SecretKey::generate();
        let signing = SigningKey::from_slice(&secret.to_bytes()).unwrap();
        let keypair = identity::Keypair::from(identity::secp256k1::Keypair::from(secret));
        let enr = Enr::builder().build(&signing).unwrap();

        let from_libp2p = keypair.public().to_peer_id();
        assert_eq!(peer_id(&enr).unwrap(), from_libp2p);
        assert_eq!(node_id(&from_libp2p), Some(enr.node_id()));
        assert!(from_libp2p.to_base58().starts_with("16Uiu2"));
    }

    #[test]
    fn the_nat_mapping_is_read_per_transport_only_beside_the_nat_flag() {
        let k = key();
        let with = |nat: bool, tcp: u8, quic: u8| {
            let mut b = Enr::builder();
            if nat {
                b.add_value(NAT_KEY, &NAT_VALUE);
            }
            b.add_value(TCP_MAPPING_KEY, &tcp)
                .add_value(QUIC_MAPPING_KEY, &quic)
                .build(&k)
                .unwrap()
        };
        let natted = with(true, 1, 2);
        assert_eq!(
            nat_mapping(&natted, Transport::Tcp),
            Some(NatMapping::EndpointIndependent)
        );
        assert_eq!(
            nat_mapping(&natted, Transport::Quic),
            Some(NatMapping::VariesByDestination)
        );
        // Without the flag the keys mean nothing; a reserved value reads as unknown.
        assert_eq!(nat_mapping(&with(false, 1, 2), Transport::Tcp), None);
        assert_eq!(nat_mapping(&with(true, 0, 7), Transport::Quic), None);
        for m in [
            NatMapping::EndpointIndependent,
            NatMapping::VariesByDestination,
        ] {
            assert_eq!(NatMapping::from_value(m.to_value()), Some(m));
        }
    }

    #[test]
    fn a_peer_id_of_another_key_type_has_no_node_id() {
        let ed = identity::Keypair::generate_ed25519().public().to_peer_id();
        assert_eq!(node_id(&ed), None);
    }

    #[test]
    fn every_address_key_survives_encode_and_decode() {
        let k = key();
        let enr = Enr::builder()
            .ip4(Ipv4Addr::new(198, 51, 100, 7))
            .tcp4(9000)
            .udp4(9001)
            .ip6("2001:db8::7".parse().unwrap())
            .tcp6(9002)
            .udp6(9003)
            .add_value(QUIC_KEY, &9004u16)
            .add_value(QUIC6_KEY, &9005u16)
            .add_value(NAT_KEY, &NAT_VALUE)
            .add_value(TCP_MAPPING_KEY, &1u8)
            .add_value(QUIC_MAPPING_KEY, &2u8)
            .build(&k)
            .unwrap();
        assert!(
            enr.size() <= MAX_RECORD_SIZE,
            "largest record is {} bytes",
            enr.size()
        );

        let back = decode_bytes(&encode_bytes(&enr)).unwrap();
        let text = decode_text(&enr.to_base64()).unwrap();
        for decoded in [back, text] {
            assert_eq!(decoded.ip4(), Some(Ipv4Addr::new(198, 51, 100, 7)));
            assert_eq!(decoded.tcp4(), Some(9000));
            assert_eq!(decoded.udp4(), Some(9001));
            assert_eq!(decoded.ip6(), Some("2001:db8::7".parse().unwrap()));
            assert_eq!(decoded.tcp6(), Some(9002));
            assert_eq!(decoded.udp6(), Some(9003));
            assert_eq!(quic4(&decoded), Some(9004));
            assert_eq!(quic6(&decoded), Some(9005));
            assert!(is_natted(&decoded));
            assert_eq!(decoded.seq(), enr.seq());
            assert_eq!(decoded.node_id(), enr.node_id());
        }
        assert_eq!(multiaddrs(&enr, peer_id(&enr).unwrap()).len(), 4);
    }

    #[test]
    fn a_malformed_text_record_names_its_problem() {
        let good = Enr::builder().build(&key()).unwrap().to_base64();
        assert_eq!(decode_text("abc"), Err(RecordError::MissingPrefix));
        assert!(matches!(
            decode_text("enr:***"),
            Err(RecordError::Base64(_))
        ));
        assert!(matches!(
            decode_text("enr:AAAA"),
            Err(RecordError::Malformed(_))
        ));
        // Flip one byte of the signature: still well-formed RLP, but no longer signed.
        let mut bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&good[4..])
            .unwrap();
        bytes[10] ^= 0x01;
        assert_eq!(decode_bytes(&bytes), Err(RecordError::InvalidSignature));
        let mut long = encode_bytes(&decode_text(&good).unwrap());
        long.extend_from_slice(&[0xc0, 0x80]);
        assert_eq!(
            decode_bytes(&long),
            Err(RecordError::TrailingBytes { extra: 2 })
        );
        assert!(matches!(
            decode_bytes(&[0u8; 301]),
            Err(RecordError::TooLarge { len: 301 })
        ));
    }

    #[test]
    fn only_plain_tcp_and_quic_addresses_fit_a_record() {
        let tcp: Multiaddr = "/ip4/1.2.3.4/tcp/5".parse().unwrap();
        let quic: Multiaddr = "/ip6/::1/udp/7/quic-v1".parse().unwrap();
        let relayed: Multiaddr = "/ip4/1.2.3.4/tcp/5/p2p-circuit".parse().unwrap();
        let udp: Multiaddr = "/ip4/1.2.3.4/udp/5".parse().unwrap();
        assert_eq!(
            socket_of(&tcp),
            Some(("1.2.3.4".parse().unwrap(), 5, Transport::Tcp))
        );
        assert_eq!(
            socket_of(&quic),
            Some(("::1".parse().unwrap(), 7, Transport::Quic))
        );
        assert_eq!(socket_of(&relayed), None);
        assert_eq!(socket_of(&udp), None);
    }
}
