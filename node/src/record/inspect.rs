//! `peerfind enr decode`: every field of a record, for people and for scripts.

use peerfind_behaviours::enr_ext::{self, Enr, RecordError, Transport};
use serde::Serialize;

/// A record's fields, as `peerfind enr decode` shows them.
#[derive(Debug, Serialize)]
pub struct Decoded {
    /// The record's text form.
    pub enr: String,
    /// Keccak-256 of the public key, hex.
    pub node_id: String,
    /// The libp2p PeerId of the same key.
    pub peer_id: String,
    /// Sequence number.
    pub seq: u64,
    /// Identity scheme (always `v4`).
    pub id: String,
    /// Compressed secp256k1 public key, hex.
    pub public_key: String,
    /// IPv4 address.
    pub ip: Option<String>,
    /// TCP port on `ip`.
    pub tcp: Option<u16>,
    /// UDP port on `ip`.
    pub udp: Option<u16>,
    /// QUIC port on `ip`.
    pub quic: Option<u16>,
    /// IPv6 address.
    pub ip6: Option<String>,
    /// TCP port on `ip6`.
    pub tcp6: Option<u16>,
    /// UDP port on `ip6`.
    pub udp6: Option<u16>,
    /// QUIC port on `ip6`.
    pub quic6: Option<u16>,
    /// The `nat` flag.
    pub nat: bool,
    /// How the NAT maps the TCP port (`nat-tcp`), when the record says.
    pub nat_tcp: Option<String>,
    /// How the NAT maps the QUIC port (`nat-quic`), when the record says.
    pub nat_quic: Option<String>,
    /// libp2p addresses the record gives.
    pub multiaddrs: Vec<String>,
    /// Keys peerfind does not know, with their raw RLP value in hex.
    pub other_keys: Vec<(String, String)>,
    /// Encoded size in bytes (EIP-778 allows 300).
    pub size: usize,
}

const KNOWN_KEYS: &[&str] = &[
    "id",
    "secp256k1",
    "ip",
    "tcp",
    "udp",
    "ip6",
    "tcp6",
    "udp6",
    enr_ext::QUIC_KEY,
    enr_ext::QUIC6_KEY,
    enr_ext::NAT_KEY,
    enr_ext::TCP_MAPPING_KEY,
    enr_ext::QUIC_MAPPING_KEY,
];

/// Decodes and verifies `text`; the error names what is wrong with it.
pub fn decode(text: &str) -> Result<Decoded, RecordError> {
    let enr = enr_ext::decode_text(text)?;
    describe(&enr)
}

fn describe(enr: &Enr) -> Result<Decoded, RecordError> {
    use enr::EnrPublicKey as _;
    let peer_id = enr_ext::peer_id(enr)?;
    let other_keys = enr
        .iter()
        .filter(|(k, _)| {
            !KNOWN_KEYS
                .iter()
                .any(|known| known.as_bytes() == k.as_slice())
        })
        .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), hex::encode(v)))
        .collect();
    Ok(Decoded {
        enr: enr.to_base64(),
        node_id: hex::encode(enr.node_id().raw()),
        peer_id: peer_id.to_string(),
        seq: enr.seq(),
        id: enr.id().unwrap_or_default(),
        public_key: hex::encode(enr.public_key().encode()),
        ip: enr.ip4().map(|ip| ip.to_string()),
        tcp: enr.tcp4(),
        udp: enr.udp4(),
        quic: enr_ext::quic4(enr),
        ip6: enr.ip6().map(|ip| ip.to_string()),
        tcp6: enr.tcp6(),
        udp6: enr.udp6(),
        quic6: enr_ext::quic6(enr),
        nat: enr_ext::is_natted(enr),
        nat_tcp: enr_ext::nat_mapping(enr, Transport::Tcp).map(|m| m.to_string()),
        nat_quic: enr_ext::nat_mapping(enr, Transport::Quic).map(|m| m.to_string()),
        multiaddrs: enr_ext::multiaddrs(enr, peer_id)
            .iter()
            .map(ToString::to_string)
            .collect(),
        other_keys,
        size: enr.size(),
    })
}

impl std::fmt::Display for Decoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
            v.as_ref()
                .map_or_else(|| "-".to_owned(), ToString::to_string)
        }
        writeln!(f, "node id     {}", self.node_id)?;
        writeln!(f, "peer id     {}", self.peer_id)?;
        writeln!(f, "seq         {}", self.seq)?;
        writeln!(f, "id          {}", self.id)?;
        writeln!(f, "public key  {}", self.public_key)?;
        writeln!(f, "ip          {}", opt(&self.ip))?;
        writeln!(f, "tcp         {}", opt(&self.tcp))?;
        writeln!(f, "udp         {}", opt(&self.udp))?;
        writeln!(f, "quic        {}", opt(&self.quic))?;
        writeln!(f, "ip6         {}", opt(&self.ip6))?;
        writeln!(f, "tcp6        {}", opt(&self.tcp6))?;
        writeln!(f, "udp6        {}", opt(&self.udp6))?;
        writeln!(f, "quic6       {}", opt(&self.quic6))?;
        writeln!(
            f,
            "nat         {}",
            if self.nat { "yes (behind a NAT)" } else { "no" }
        )?;
        writeln!(f, "nat-tcp     {}", opt(&self.nat_tcp))?;
        writeln!(f, "nat-quic    {}", opt(&self.nat_quic))?;
        for (k, v) in &self.other_keys {
            writeln!(f, "{k:<11} {v} (raw RLP)")?;
        }
        for m in &self.multiaddrs {
            writeln!(f, "multiaddr   {m}")?;
        }
        write!(f, "size        {} bytes", self.size)
    }
}
