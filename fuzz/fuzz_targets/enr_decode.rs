//! Records from the network: the wire form (RLP bytes) and the text form (`enr:…`), then
//! everything peerfind reads from a record that decoded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerfind_behaviours::enr_ext;

fuzz_target!(|data: &[u8]| {
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

fn read_all(enr: &enr_ext::Enr) {
    let _ = enr_ext::is_natted(enr);
    let _ = (enr_ext::quic4(enr), enr_ext::quic6(enr));
    if let Ok(peer) = enr_ext::peer_id(enr) {
        let _ = enr_ext::node_id(&peer);
        for addr in enr_ext::multiaddrs(enr, peer) {
            let _ = enr_ext::socket_of(&addr);
        }
    }
}
