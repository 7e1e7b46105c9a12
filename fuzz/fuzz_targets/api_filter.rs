//! `ListPeers`' filters as any API client may send them: two strings, split from the input at
//! its first NUL byte (lossy UTF-8, as gRPC strings arrive already checked as UTF-8).
//!
//! The server's own filter module is compiled in here as it is (it uses nothing else of the
//! node), so this target needs neither the node crate nor its gRPC stack.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../node/src/api/filter.rs"]
mod filter;

fuzz_target!(|data: &[u8]| {
    let (a, b) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let (peer_id, node_id) = (String::from_utf8_lossy(a), String::from_utf8_lossy(b));
    match filter::Filter::parse(&peer_id, &node_id) {
        // A refusal repeats at most a bounded part of what was sent.
        Err(e) => {
            let message = e.to_string();
            assert!(message.len() < 1024, "{} bytes", message.len());
        }
        Ok(filter) => {
            // The filter names what it matches ("no known peer has …"); it is no filter only
            // when both fields are blank; a peer with the very ids asked for passes it.
            let _ = filter.to_string();
            let (peer_id, node_id) = (peer_id.trim(), node_id.trim());
            assert_eq!(filter.is_empty(), peer_id.is_empty() && node_id.is_empty());
            if !peer_id.is_empty() {
                let peer = peer_id.parse().expect("the filter parsed it");
                assert!(filter.matches(&peer, node_id), "{filter}");
            }
        }
    }
});
