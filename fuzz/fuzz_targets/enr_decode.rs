//! Records from the network: the wire form (RLP bytes) and the text form (`enr:…`), then
//! everything peerfind reads from a record that decoded.
//!
//! A mutated record almost never keeps a valid signature, so the readers would only ever see
//! the seeds. But anyone can sign any content with their own key: an input that starts with a
//! zero byte (which neither form can) is the content of a record, signed here with a fixed
//! key, as pairs of a key and its value's raw RLP, each prefixed with its length in one byte.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use peerfind_behaviours::enr_ext::{self, Enr, SigningKey};

/// The key the content records are signed with.
static KEY: LazyLock<SigningKey> =
    LazyLock::new(|| SigningKey::from_slice(&[7; 32]).expect("a valid secp256k1 scalar"));

fuzz_target!(|data: &[u8]| {
    if let [0, content @ ..] = data {
        if let Some(enr) = signed(content) {
            read_all(&enr);
            let _ = enr_ext::decode_bytes(&enr_ext::encode_bytes(&enr));
        }
        return;
    }
    if let Ok(enr) = enr_ext::decode_bytes(data) {
        read_all(&enr);
        // What decoded can be sent on.
        let _ = enr_ext::decode_bytes(&enr_ext::encode_bytes(&enr));
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(enr) = enr_ext::decode_text(text)
    {
        read_all(&enr);
    }
});

/// A record with `content`'s pairs, signed with [`KEY`]; `None` when the pairs do not parse or
/// the record builder refuses them (a value that is not RLP, a record over 300 bytes).
fn signed(mut content: &[u8]) -> Option<Enr> {
    let mut builder = Enr::builder();
    while !content.is_empty() {
        let (key, rest) = take(content)?;
        let (value, rest) = take(rest)?;
        builder.add_value_rlp(key, bytes::Bytes::copy_from_slice(value));
        content = rest;
    }
    builder.build(&*KEY).ok()
}

/// A length-prefixed slice from the front of `input`, and what follows it.
fn take(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&len, rest) = input.split_first()?;
    (rest.len() >= usize::from(len)).then(|| rest.split_at(usize::from(len)))
}

fn read_all(enr: &Enr) {
    let _ = enr_ext::is_natted(enr);
    let _ = (enr_ext::quic4(enr), enr_ext::quic6(enr));
    if let Ok(peer) = enr_ext::peer_id(enr) {
        let _ = enr_ext::node_id(&peer);
        for addr in enr_ext::multiaddrs(enr, peer) {
            if let Some((ip, _, _)) = enr_ext::socket_of(&addr) {
                let _ = enr_ext::is_unusable(&ip);
            }
        }
    }
}
